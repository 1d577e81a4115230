-- Key/value separation through the Lua face: big values round trip through
-- the value log, db:gc returns the bytes it reclaimed, the value-log options
-- are accepted by name, and keys-only iteration never needs a value.

local stoat = require "stoat"
local h = require "helpers"

-- Values of 256 bytes and more leave the LSM tree; 1 MiB value-log files;
-- GC only when asked; values stored as they are (these specs measure raw
-- sizes and find values' bytes in the files; compression has its own).
local VLOG = { value_threshold = 256, value_log_file_size = 1024 * 1024, auto_gc = false,
               value_log_compression = "none" }

local function with(opts)
    local t = {}
    for k, v in pairs(VLOG) do t[k] = v end
    for k, v in pairs(opts or {}) do t[k] = v end
    return t
end

-- A value of len bytes that names key and round.
local function value_of(key, round, len)
    local unit = ("%s#%d;"):format(key, round)
    return (unit:rep(math.ceil(len / #unit))):sub(1, len)
end

-- Names (sorted) and total size of the *.vlog files in dir.
local function vlog_files(dir)
    local ok, out = h.run("ls " .. h.shell_quote(dir))
    assert(ok, out)
    local names, total = {}, 0
    for name in out:gmatch("[^\n]+") do
        if name:match("^%d+%.vlog$") then
            local f = assert(io.open(dir .. "/" .. name, "rb"))
            total = total + f:seek("end")
            f:close()
            names[#names + 1] = name
        end
    end
    table.sort(names)
    return names, total
end

local function read_file(path)
    local f = assert(io.open(path, "rb"))
    local data = f:read("*a")
    f:close()
    return data
end

local function write_at(path, offset, bytes)
    local f = assert(io.open(path, "r+b"))
    f:seek("set", offset)
    f:write(bytes)
    f:close()
end

local function fill(db, n, round, len)
    local b = db:batch()
    for i = 1, n do
        local key = ("k%05d"):format(i)
        assert.is_true(b:set(key, value_of(key, round, len)))
    end
    assert.is_true(b:commit())
end

local function check(db, n, round, len)
    for i = 1, n do
        local key = ("k%05d"):format(i)
        assert.are.equal(value_of(key, round, len), db:get(key))
    end
end

describe("value log", function()
    it("stores values compressed with value_log_compression and reads them back", function()
        local sizes = {}
        for _, codec in ipairs({ "none", "lz4", "zstd" }) do
            local db = h.open_db(finally, with({ value_log_compression = codec }))
            fill(db, 200, 1, 4000)
            check(db, 200, 1, 4000)
            sizes[codec] = db:stats().vlog_bytes
            db:close()
        end
        assert.is_true(sizes.none > 200 * 4000)
        assert.is_true(sizes.lz4 < sizes.none / 4)
        assert.is_true(sizes.zstd < sizes.none / 4)
    end)

    it("round trips values at and above value_threshold", function()
        local db, path = h.open_db(finally, VLOG)
        local values = { small = ("s"):rep(255), edge = ("e"):rep(256),
                         big = value_of("big", 1, 100000), huge = value_of("huge", 1, 3 * 2 ^ 20) }
        assert.is_true(db:set("small", values.small))
        assert.are.equal(0, db:stats().vlog_bytes)
        for _, key in ipairs({ "edge", "big", "huge" }) do
            assert.is_true(db:set(key, values[key]))
        end
        assert.is_true(db:stats().vlog_bytes > 3 * 2 ^ 20)
        local seen = db:view(function(txn)
            local t = {}
            for k, v in txn:pairs() do t[k] = v end
            return t
        end)
        assert.are.same(values, seen)
        assert.is_true(db:flush())
        db:close()
        db = assert(stoat.open(path, VLOG))
        for key, value in pairs(values) do
            assert.are.equal(value, db:get(key))
        end
        db:close()
    end)

    it("returns the bytes reclaimed from db:gc", function()
        local db, path = h.open_db(finally, VLOG)
        fill(db, 1000, 1, 1500)
        fill(db, 1000, 2, 1500)
        local _, before = vlog_files(path)
        local reclaimed, err = db:gc(0.3)
        assert.is_nil(err)
        assert.is_number(reclaimed)
        assert.is_true(reclaimed > 0)
        local _, after = vlog_files(path)
        assert.is_true(before - after <= reclaimed)
        assert.is_true(after < before * 0.6)
        assert.are.equal(0, db:gc(0.3))
        assert.are.equal(0, db:gc())
        check(db, 1000, 2, 1500)
    end)

    it("raises when db:gc gets a ratio outside (0, 1)", function()
        local db = h.open_db(finally, VLOG)
        for _, bad in ipairs({ 0, 1, -0.5, 1.5, "0.5", 0 / 0 }) do
            assert.has_error(function() db:gc(bad) end)
        end
    end)

    it("accepts the value-log options by name", function()
        local db, path = h.open_db(finally, with{ value_threshold = 100,
                                                  value_log_file_size = 2 * 2 ^ 20,
                                                  auto_gc = true, auto_gc_ratio = 0.3 })
        assert.is_true(db:set("k", ("v"):rep(100)))
        assert.is_true(db:stats().vlog_files == 1)
        db:close()
        assert.has_error(function() stoat.open(path, { value_threshold = "1k" }) end)
        assert.has_error(function() stoat.open(path, { auto_gc = "yes" }) end)
        assert.has_error(function() stoat.open(path, { auto_gc_ratio = "half" }) end)
        assert.has_error(function() stoat.open(path, { value_log_size = 2 ^ 20 }) end)
        for _, bad in ipairs({ { auto_gc_ratio = 1.5 }, { value_log_file_size = 1000 },
                               { value_threshold = 0 } }) do
            local none, err = stoat.open(path, bad)
            assert.is_nil(none)
            assert.matches("^invalid: ", err)
        end
    end)

    it("iterates keys only without reading the value log", function()
        local db, path = h.open_db(finally, VLOG)
        fill(db, 200, 1, 1000)
        assert.is_true(db:flush())
        db:close()
        -- Every value is gone: each file keeps only its 16-byte header.
        local names = vlog_files(path)
        assert.is_true(#names >= 1)
        for _, name in ipairs(names) do
            local header = read_file(path .. "/" .. name):sub(1, 16)
            local f = assert(io.open(path .. "/" .. name, "wb"))
            f:write(header)
            f:close()
        end
        db = assert(stoat.open(path, VLOG))
        local n = db:view(function(txn)
            local count = 0
            for k, v in txn:pairs{ keys_only = true } do
                assert.is_nil(v)
                count = count + (k == ("k%05d"):format(count + 1) and 1 or 0)
            end
            return count
        end)
        assert.are.equal(200, n)
        local ok, err = db:view(function(txn)
            for _ in txn:pairs() do end
        end)
        assert.is_nil(ok)
        assert.matches("^corruption: ", err)
        db:close()
    end)

    it("reports corruption for a damaged value and still reads the others", function()
        local db, path = h.open_db(finally, VLOG)
        fill(db, 300, 1, 2000)
        assert.is_true(db:flush())
        db:close()
        local victim = value_of("k00150", 1, 2000)
        local damaged = 0
        for _, name in ipairs((vlog_files(path))) do
            local at = read_file(path .. "/" .. name):find(victim, 1, true)
            if at then
                write_at(path .. "/" .. name, at - 1 + 1000, "\255")
                damaged = damaged + 1
            end
        end
        assert.are.equal(1, damaged)
        db = assert(stoat.open(path, VLOG))
        local none, err = db:get("k00150")
        assert.is_nil(none)
        assert.matches("^corruption: ", err)
        assert.are.equal(value_of("k00149", 1, 2000), db:get("k00149"))
        assert.are.equal(value_of("k00151", 1, 2000), db:get("k00151"))
        -- A scan yields the entries before it, then stops with corruption;
        -- keys_only never reads it.
        local seen = 0
        local ok, scan_err = db:view(function(txn)
            for k, v in txn:pairs() do
                assert.are.equal(value_of(k, 1, 2000), v)
                seen = seen + 1
            end
        end)
        assert.is_nil(ok)
        assert.matches("^corruption: ", scan_err)
        assert.are.equal(149, seen)
        assert.are.equal(300, db:count())
        db:close()
    end)
end)
