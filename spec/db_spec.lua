-- One-operation calls on the database: get, set, delete, TTL, limits,
-- batches, drop, stats, flush/flatten/sync.

local stoat = require "stoat"
local h = require "helpers"

describe("db:get/set/delete", function()
    it("reads back what was set and nil after a delete", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "v"))
        assert.are.equal("v", db:get("k"))
        assert.is_true(db:delete("k"))
        assert.is_nil(db:get("k"))
        assert.is_true(db:delete("never-set"))
    end)

    it("returns a plain nil when the key is absent", function()
        local db = h.open_db(finally)
        assert.are.equal(1, select("#", db:get("absent")))
        assert.is_nil(db:get("absent"))
    end)

    it("keeps keys and values with zero bytes intact", function()
        local db = h.open_db(finally)
        local key, value = "a\0b\0\255", "\0\0x\0"
        assert.is_true(db:set(key, value))
        assert.is_true(db:set("a", "short"))
        assert.are.equal(value, db:get(key))
        assert.are.equal("short", db:get("a"))
        assert.is_nil(db:get("a\0"))
    end)

    it("stores the empty value", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", ""))
        assert.are.equal("", db:get("k"))
    end)

    it("returns an invalid error when the key is empty", function()
        local db = h.open_db(finally)
        for _, call in ipairs({ "get", "delete" }) do
            local ok, err = db[call](db, "")
            assert.is_nil(ok)
            assert.matches("^invalid: ", err)
        end
        local ok, err = db:set("", "v")
        assert.is_nil(ok)
        assert.matches("^invalid: ", err)
    end)

    it("returns a too big error when the key is over the limit", function()
        local db = h.open_db(finally)
        local big = ("k"):rep(stoat.MAX_KEY_SIZE + 1)
        local ok, err = db:set(big, "v")
        assert.is_nil(ok)
        assert.matches("^too big: ", err)
        ok, err = db:get(big)
        assert.is_nil(ok)
        assert.matches("^too big: ", err)
        local max = ("k"):rep(stoat.MAX_KEY_SIZE)
        assert.is_true(db:set(max, "v"))
        assert.are.equal("v", db:get(max))
    end)

    it("round-trips a large value", function()
        local db = h.open_db(finally, { memtable_size = 8 * 1024 * 1024 })
        local value = ("0123456789abcdef"):rep(64 * 1024) -- 1 MiB
        assert.is_true(db:set("big", value))
        assert.are.equal(value, db:get("big"))
    end)

    it("raises when a key or value is not a string", function()
        local db = h.open_db(finally)
        assert.error_matches(function() db:get(1) end, "db:get: key must be a string", 1, true)
        assert.error_matches(function() db:set("k", 1) end, "db:set: value must be a string", 1,
                             true)
        assert.error_matches(function() db:set(nil, "v") end, "db:set: key must be a string", 1,
                             true)
        assert.error_matches(function() db:delete({}) end, "db:delete: key must be a string", 1,
                             true)
    end)

    it("raises when set options are unknown or out of range", function()
        local db = h.open_db(finally)
        assert.error_matches(function() db:set("k", "v", { tll = 1 }) end,
                             "unknown option 'tll'", 1, true)
        assert.error_matches(function() db:set("k", "v", { ttl = -1 }) end, "'ttl'", 1, true)
        assert.error_matches(function() db:set("k", "v", { ttl = 0 / 0 }) end, "'ttl'", 1, true)
        assert.error_matches(function() db:set("k", "v", { ttl = 1e300 }) end, "'ttl'", 1, true)
        assert.error_matches(function() db:set("k", "v", { meta = 256 }) end, "'meta'", 1, true)
        assert.error_matches(function() db:set("k", "v", { meta = "x" }) end, "'meta'", 1, true)
    end)

    it("stores the user-meta byte when set with meta", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "v", { meta = 200 }))
        local value, meta, expires_at = db:view(function(txn) return txn:get_meta("k") end)
        assert.are.same({ "v", 200, 0 }, { value, meta, expires_at })
    end)

    it("expires a key after its ttl", function()
        local db = h.open_db(finally)
        local t0 = os.time()
        assert.is_true(db:set("ttl", "v", { ttl = 1 }))
        assert.is_true(db:set("kept", "v"))
        local _, _, expires_at = db:view(function(txn) return txn:get_meta("ttl") end)
        assert.is_true(expires_at >= t0 + 1 and expires_at <= os.time() + 2)
        assert.are.equal("v", db:get("ttl"))
        -- Wait until the clock passes the expiry.
        while os.time() < expires_at do
            os.execute("sleep 0.1")
        end
        assert.is_nil(db:get("ttl"))
        assert.are.equal("v", db:get("kept"))
        local keys = db:view(function(txn)
            local t = {}
            for k in txn:pairs{ keys_only = true } do t[#t + 1] = k end
            return t
        end)
        assert.are.same({ "kept" }, keys)
    end)
end)

describe("db:batch", function()
    it("writes every entry when committed", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("gone", "x"))
        local b = db:batch()
        for i = 1, 2000 do
            assert.is_true(b:set(("k%05d"):format(i), ("v"):rep(i % 50)))
        end
        assert.is_true(b:set("ttl", "v", { ttl = 3600, meta = 1 }))
        assert.is_true(b:delete("gone"))
        assert.is_true(b:commit())
        assert.are.equal(("v"):rep(7), db:get("k00007"))
        assert.are.equal("", db:get("k02000"))
        assert.is_nil(db:get("gone"))
        local _, meta = db:view(function(txn) return txn:get_meta("ttl") end)
        assert.are.equal(1, meta)
    end)

    it("raises when used after commit or close", function()
        local db = h.open_db(finally)
        local b = db:batch()
        assert.is_true(b:commit())
        assert.error_matches(function() b:set("k", "v") end, "batch is closed", 1, true)
        assert.error_matches(function() b:commit() end, "batch is closed", 1, true)
        local c = db:batch()
        c:close()
        c:close()
        assert.error_matches(function() c:delete("k") end, "batch is closed", 1, true)
    end)

    it("returns an invalid error when a key is empty", function()
        local db = h.open_db(finally)
        local b = db:batch()
        local ok, err = b:set("", "v")
        assert.is_nil(ok)
        assert.matches("^invalid: ", err)
        b:close()
    end)

    it("fails with closed once its database is closed", function()
        local db = h.open_db(finally)
        local b = db:batch()
        assert.is_true(db:close())
        local ok, err = b:set("k", "v")
        assert.is_nil(ok)
        assert.matches("^closed: ", err)
        ok, err = b:commit()
        assert.is_nil(ok)
        assert.matches("^closed: ", err)
    end)
end)

describe("db:drop_prefix", function()
    it("deletes the keys with the prefix and only those", function()
        local db = h.open_db(finally)
        for _, k in ipairs({ "a", "ab", "abc", "b", "aa" }) do assert.is_true(db:set(k, k)) end
        assert.is_true(db:drop_prefix("ab"))
        assert.are.same({ "a", nil, nil, "b", "aa" },
                        { db:get("a"), db:get("ab"), db:get("abc"), db:get("b"), db:get("aa") })
    end)

    it("deletes everything with drop_all", function()
        local db = h.open_db(finally)
        for i = 1, 10 do assert.is_true(db:set("k" .. i, "v")) end
        assert.is_true(db:flush())
        assert.is_true(db:set("mem", "v"))
        assert.is_true(db:drop_all())
        local n = db:view(function(txn)
            local count = 0
            for _ in txn:pairs() do count = count + 1 end
            return count
        end)
        assert.are.equal(0, n)
    end)
end)

describe("db:stats", function()
    it("returns the counters and one entry per level", function()
        local db = h.open_db(finally, { num_levels = 4 })
        for i = 1, 100 do assert.is_true(db:set("k" .. i, ("v"):rep(100))) end
        assert.is_true(db:flatten())
        local s = assert(db:stats())
        assert.are.equal(4, #s.levels)
        local tables, bytes = 0, 0
        for _, level in ipairs(s.levels) do
            tables, bytes = tables + level.tables, bytes + level.bytes
        end
        assert.is_true(tables >= 1 and bytes > 0)
        assert.is_true(s.last_version >= 100)
        assert.is_true(s.flushes >= 1)
        for _, name in ipairs({ "memtables", "memtable_bytes", "block_cache_bytes",
                                "block_cache_capacity", "block_cache_hits", "block_cache_misses",
                                "open_files", "compactions", "stall_micros", "vlog_files",
                                "vlog_bytes", "vlog_garbage_bytes", "txn_commits",
                                "txn_conflicts" }) do
            assert.are.equal("number", type(s[name]), name)
        end
    end)
end)

describe("db:flush/flatten/sync", function()
    it("keeps the data readable across flush, flatten, sync and reopen", function()
        local db, path = h.open_db(finally)
        for i = 1, 200 do assert.is_true(db:set(("k%03d"):format(i), "v" .. i)) end
        assert.is_true(db:sync())
        assert.is_true(db:flush())
        assert.is_true(db:delete("k100"))
        assert.is_true(db:flatten())
        db:close()
        db = assert(stoat.open(path))
        assert.are.equal("v1", db:get("k001"))
        assert.are.equal("v200", db:get("k200"))
        assert.is_nil(db:get("k100"))
        db:close()
    end)
end)
