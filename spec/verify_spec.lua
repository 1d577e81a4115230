-- `stoat verify`: sound databases exit 0; each kind of damaged file is
-- named, with the record and keys where the walk can tell.

local stoat = require "stoat"
local h = require "helpers"

local q = h.shell_quote

-- A closed database with tables, a value log (values stored as they are, so
-- that a fixed offset lands in a record) and a WAL.
local function make_db(finally)
    local path = h.scratch(finally) .. "/db"
    local db = assert(stoat.open(path, { memtable_size = 1024 * 1024, auto_gc = false,
                                         value_log_compression = "none" }))
    for i = 1, 300 do
        assert(db:set(("k%04d"):format(i), ("v%04d"):format(i):rep(i % 3 == 0 and 400 or 2)))
    end
    assert(db:flatten())
    for i = 1, 50 do assert(db:set(("w%04d"):format(i), ("w"):rep(20))) end
    assert(db:close())
    return path
end

local function flip(path, offset)
    local f = assert(io.open(path, "r+b"))
    local size = f:seek("end")
    if offset < 0 then offset = size + offset end
    f:seek("set", offset)
    local b = f:read(1)
    f:seek("set", offset)
    f:write(string.char((b:byte() + 0x55) % 256))
    f:close()
end

local function first(path, pattern)
    local p = io.popen("ls " .. q(path))
    for name in p:lines() do
        if name:match(pattern) then p:close(); return name end
    end
    p:close()
end

local function verify(path)
    return h.run("bin/stoat verify " .. q(path))
end

describe("stoat verify", function()
    it("exits 0 on a sound database", function()
        local path = make_db(finally)
        local ok, out = verify(path)
        assert.is_true(ok, out)
        assert.matches("is sound", out)
    end)

    it("names a damaged table, the block and the keys it could not read", function()
        local path = make_db(finally)
        local sst = first(path, "%.sst$")
        flip(path .. "/" .. sst, 100)
        local ok, out = verify(path)
        assert.is_false(ok)
        assert.matches(sst .. " %(L%d%): .*block at offset 0: bad checksum; keys k0001 .. "
                       .. "k0300 are not readable", out)
        assert.matches("is damaged: 1 problem", out)
    end)

    it("names a damaged value-log record, its offset and the key pointing to it", function()
        local path = make_db(finally)
        flip(path .. "/000001.vlog", 50000)
        local ok, out = verify(path)
        assert.is_false(ok)
        assert.matches("000001.vlog: value pointer of key k%d+ %(version %d+, from %d+%.sst in "
                       .. "L%d%) to offset %d+", out)
        assert.matches("bad record checksum at offset %d+", out)
    end)

    it("names a damaged WAL", function()
        local path = make_db(finally)
        local wal = first(path, "%.wal$")
        flip(path .. "/" .. wal, 40)
        local ok, out = verify(path)
        assert.is_false(ok)
        assert.matches(wal .. ": bad checksum at offset 16", out, 1, true)
        assert.matches("is damaged: it does not open", out)
    end)

    it("names a damaged MANIFEST", function()
        local path = make_db(finally)
        flip(path .. "/MANIFEST", 30)
        local ok, out = verify(path)
        assert.is_false(ok)
        assert.matches("MANIFEST: bad checksum at offset 16", out, 1, true)
    end)
end)
