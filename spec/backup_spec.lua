-- stoat.backup in-process: a backup taken while writers change the
-- database is the snapshot of one version (the command cannot show this
-- yet: a second process cannot open a database that is open for writing).

local stoat = require "stoat"
local backup = require "stoat.backup"
local h = require "helpers"

local function key(i)
    return ("key:%05d"):format(i)
end

local function snapshot(db)
    local t = {}
    assert(db:view(function(txn)
        for k, v in txn:pairs() do t[k] = v end
        return true
    end))
    return t
end

local function count(t)
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    return n
end

-- Writers: overwrite keys before and after the backup's position, delete
-- some, add new ones, and push it all through flushes and compactions.
local function writer(db, seed)
    local round = 0
    return function()
        round = round + 1
        math.randomseed(seed + round)
        for _ = 1, 20 do
            assert(db:set(key(math.random(1, 2000)), ("changed %d "):format(round):rep(3)))
        end
        assert(db:delete(key(math.random(1, 2000))))
        assert(db:set(("new:%d:%d"):format(seed, round), ("n"):rep(1500)))
        if round % 5 == 0 then assert(db:flush()) end
        if round % 17 == 0 then assert(db:flatten()) end
    end, function() return round end
end

local function restore_into(finally, files)
    local path = h.scratch(finally) .. "/restored"
    local db = assert(stoat.open(path, h.SMALL))
    finally(function() db:close() end)
    local res, err = backup.restore(db, files, { dir = path })
    assert(res, err)
    return db, res
end

local function save(finally, chunks)
    local file = h.scratch(finally) .. "/backup"
    local f = assert(io.open(file, "wb"))
    f:write(table.concat(chunks))
    f:close()
    return file
end

describe("stoat.backup", function()
    local saved_target
    before_each(function()
        saved_target = backup.FRAME_TARGET
        backup.FRAME_TARGET = 4096 -- many frames, so writers run between them
    end)
    after_each(function()
        backup.FRAME_TARGET = saved_target
    end)

    it("writes the snapshot of one version while writers run, full and incremental",
       function()
        local db = h.open_db(finally, { value_threshold = 1024 })
        for i = 1, 2000 do
            assert(db:set(key(i), i % 10 == 0 and ("big"):rep(500) or ("v%d"):format(i)))
        end
        local expected = snapshot(db)
        local version = db:stats().last_version
        local write, rounds = writer(db, 1)
        local chunks = {}
        local info = assert(backup.write(db, function(s) chunks[#chunks + 1] = s end,
                                         { on_frame = write }))
        assert.is_true(rounds() > 10, "writers ran between frames")
        assert.are.equal(version, info.version)
        assert.are.equal(2000, info.entries)
        local full = save(finally, chunks)

        -- The incremental, with writers again, is the snapshot of its start.
        local expected2 = snapshot(db)
        local version2 = db:stats().last_version
        assert.are_not.same(expected, expected2)
        chunks = {}
        write = writer(db, 2)
        local info2 = assert(backup.write(db, function(s) chunks[#chunks + 1] = s end,
                                          { since = info.version, on_frame = write }))
        assert.are.equal(version2, info2.version)
        assert.is_true(info2.entries < 2000)
        local incr = save(finally, chunks)
        assert.are_not.same(expected2, snapshot(db))

        local r1 = restore_into(finally, { full })
        local got = snapshot(r1)
        assert.are.equal(count(expected), count(got))
        assert.are.same(expected, got)
        local r2, res = restore_into(finally, { full, incr })
        assert.are.equal(version2, res.version)
        assert.are.same(expected2, snapshot(r2))
    end)

    it("keeps expiry and user meta", function()
        local db = h.open_db(finally)
        assert(db:set("a", "1", { ttl = 500, meta = 42 }))
        assert(db:set("b", "2"))
        local chunks = {}
        assert(backup.write(db, function(s) chunks[#chunks + 1] = s end))
        local r = restore_into(finally, { save(finally, chunks) })
        local v, meta, expires = r:view(function(txn) return txn:get_meta("a") end)
        assert.are.equal("1", v)
        assert.are.equal(42, meta)
        assert.is_true(math.abs(expires - (os.time() + 500)) <= 2)
    end)
end)
