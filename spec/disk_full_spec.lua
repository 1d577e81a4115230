-- A full disk, for real (issue 16, item 4): a size-limited tmpfs is
-- mounted (as root; the spec is pending otherwise), a filler file takes
-- part of it, and the database is filled through the Lua API until writes
-- answer "no space". Nothing acknowledged is lost, reads go on, and once
-- the filler is removed writes go on in the same handle, without a
-- reopen; a reopen finds every acknowledged write.

local ffi = require "ffi"
local stoat = require "stoat"
local h = require "helpers"

pcall(ffi.cdef, "unsigned int geteuid(void);")

local MIB = 1024 * 1024

-- A directory with a tmpfs of size_mib mounted on it, or nil and why not.
-- Its unmount and removal go on `cleanups` (run last first: busted keeps
-- only one `finally` per test).
local function small_fs(cleanups, size_mib)
    if ffi.C.geteuid() ~= 0 then
        return nil, "not root: mounting a small file system needs root"
    end
    local dir = h.tmpdir()
    cleanups[#cleanups + 1] = function() h.rmrf(dir) end
    local mnt = dir .. "/mnt"
    assert(os.execute("mkdir " .. h.shell_quote(mnt)) == 0)
    local rc = os.execute(("mount -t tmpfs -o size=%dm tmpfs %s 2>/dev/null"):format(size_mib,
                          h.shell_quote(mnt)))
    if rc ~= 0 then
        return nil, "mount -t tmpfs failed (no privilege for mounts here?)"
    end
    cleanups[#cleanups + 1] = function() os.execute("umount " .. h.shell_quote(mnt)) end
    return mnt
end

local function write_file(path, bytes)
    local f = assert(io.open(path, "wb"))
    local chunk = ("f"):rep(64 * 1024)
    for _ = 1, bytes / #chunk do
        assert(f:write(chunk))
    end
    assert(f:close())
end

-- Value i, generation g: small ones in the LSM, every 3rd one (2-6 KiB)
-- in the value log.
local function value(i, g)
    local head = ("%d/%d:"):format(i, g)
    local n = i % 3 == 0 and 2048 + (i * 37) % 4096 or 100 + i % 200
    return head .. ("v"):rep(n - #head)
end

-- Checks every key of the model (key -> value) by point reads and one scan.
local function check_model(db, model, what)
    local n = 0
    for k, v in pairs(model) do
        local got, err = db:get(k)
        assert(got == v, ("%s: key %s: %s"):format(what, k, got == nil and tostring(err) or
                          ("a different value of %d bytes"):format(#got)))
        n = n + 1
    end
    local seen = 0
    for k, v in db:pairs() do
        assert(model[k] == v, what .. ": scan met " .. k .. " with a value the model lacks")
        seen = seen + 1
    end
    assert.are.equal(n, seen, what .. ": keys seen by the scan")
end

describe("disk full", function()
    it("refuses writes with 'no space', loses nothing and resumes once space is freed",
       function()
        local cleanups = {}
        finally(function()
            for i = #cleanups, 1, -1 do pcall(cleanups[i]) end
        end)
        local mnt, why = small_fs(cleanups, 8)
        if not mnt then
            pending("skipped: " .. why)
            return
        end
        write_file(mnt .. "/filler", 3 * MIB)
        local path = mnt .. "/db"
        -- Values stored as they are: compressed, they would not fill the disk.
        local opts = { memtable_size = 256 * 1024, value_log_file_size = MIB,
                       base_level_size = MIB, table_size = 256 * 1024, cache_size = MIB,
                       value_log_compression = "none" }
        local db = assert(stoat.open(path, opts))
        cleanups[#cleanups + 1] = function() if not db:is_closed() then db:close() end end

        -- Fill: writes and small transactions until 40 in a row fail.
        local model, acked, refused, streak, i = {}, 0, 0, 0, 0
        local first_err
        while streak < 40 do
            i = i + 1
            assert(i < 100000, "the disk never filled")
            local k, v = ("k%05d"):format(i % 3000), value(i, 1)
            local ok, err
            if i % 5 == 0 then
                ok, err = db:update(function(txn)
                    assert(txn:set(k, v))
                    assert(txn:set("t" .. k, v))
                end)
            else
                ok, err = db:set(k, v)
            end
            if ok then
                model[k] = v
                if i % 5 == 0 then model["t" .. k] = v end
                acked, streak = acked + 1, 0
            else
                assert.matches("^no space", err)
                first_err = first_err or err
                refused, streak = refused + 1, streak + 1
            end
        end
        assert.is_true(acked > 100 and refused >= 40)

        -- A flush (background work) fails the same way, and does not hang.
        local flushed, ferr = db:flush()
        assert(flushed or ferr:match("^no space"), ferr)

        -- Reads go on, and see exactly what was acknowledged.
        check_model(db, model, "while full")

        -- Space freed: the same handle writes again.
        assert(os.remove(mnt .. "/filler"))
        for j = 1, 300 do
            local k, v = ("k%05d"):format(j), value(j, 2)
            local ok, err = db:set(k, v)
            assert(ok, ("write %d after space was freed: %s"):format(j, tostring(err)))
            model[k] = v
        end
        assert(db:flush())
        check_model(db, model, "after space was freed")

        assert(db:close())
        db = assert(stoat.open(path, opts))
        check_model(db, model, "after a reopen")
        print(("\ndisk full: %d writes acknowledged, %d refused (%s); flush while full: %s")
              :format(acked, refused, first_err:sub(1, 40), tostring(ferr or "ok")))
    end)
end)
