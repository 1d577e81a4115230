-- The writes users reach for first (issue 13): set(k, nil) deletes,
-- incr, add, replace, on the database and in a transaction.

local h = require "helpers"

describe("set", function()
    it("deletes the key when the value is nil, on the database", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "v"))
        assert.is_true(db:set("k", nil))
        assert.is_nil(db:get("k"))
    end)

    it("deletes the key when the value is nil, in a transaction and a batch", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("a", "1"))
        assert.is_true(db:set("b", "2"))
        assert(db:update(function(txn) assert(txn:set("a", nil)) end))
        local b = db:batch()
        assert.is_true(b:set("b", nil))
        assert.is_true(b:commit())
        assert.are.same({ nil, nil }, { db:get("a"), db:get("b") })
    end)
end)

describe("incr", function()
    it("starts from 0 and adds 1 by default", function()
        local db = h.open_db(finally)
        assert.are.equal(1, db:incr("n"))
        assert.are.equal(2, db:incr("n"))
        assert.are.equal("2", db:get("n"))
    end)

    it("adds by and starts from init", function()
        local db = h.open_db(finally)
        assert.are.equal(105, db:incr("n", 5, { init = 100 }))
        assert.are.equal(102.5, db:incr("n", -2.5, { init = 100 }))
    end)

    it("answers nil, 'not a number' for a value that is not a number", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("s", "abc"))
        local n, err = db:incr("s")
        assert.is_nil(n)
        assert.matches("^not a number", err)
        assert.are.equal("abc", db:get("s"))
    end)

    it("is atomic across transactions that interleave (retried on conflict)", function()
        local db = h.open_db(finally)
        local cos = {}
        for i = 1, 5 do
            cos[i] = coroutine.create(function()
                for _ = 1, 10 do
                    assert(db:update(function(txn)
                        local n = txn:incr("n")
                        coroutine.yield()
                        return n
                    end, { retries = 100 }))
                end
            end)
        end
        local alive = true
        while alive do
            alive = false
            for _, co in ipairs(cos) do
                if coroutine.status(co) == "suspended" then
                    assert(coroutine.resume(co))
                    alive = true
                end
            end
        end
        assert.are.equal("50", db:get("n"))
    end)

    it("keeps the key's expiry unless a ttl is given", function()
        local db = h.open_db(finally)
        assert.are.equal(1, db:incr("n", 1, { ttl = 60 }))
        assert.are.equal(2, db:incr("n"))
        local left = db:ttl("n")
        assert.is_true(left > 58 and left <= 60.002)
        assert.are.equal(3, db:incr("n", 1, { ttl = 0 }))
        assert.are.equal(0, db:ttl("n"))
    end)

    it("raises when by is not a number or an option is unknown", function()
        local db = h.open_db(finally)
        assert.error_matches(function() db:incr("n", "1") end, "by must be a number", 1, true)
        assert.error_matches(function() db:incr("n", 1, { inti = 0 }) end, "unknown option",
                             1, true)
        assert.error_matches(function() db:incr(5) end, "db:incr: key must be a string", 1, true)
    end)

    it("counts in a transaction, seeing its own increments", function()
        local db = h.open_db(finally)
        assert.are.same({ 1, 3 }, { db:update(function(txn)
            return txn:incr("n"), txn:incr("n", 2)
        end) })
    end)
end)

describe("add", function()
    it("sets the key when absent and answers nil, 'exists' when present", function()
        local db = h.open_db(finally)
        assert.is_true(db:add("k", "first"))
        assert.are.same({ nil, "exists" }, { db:add("k", "second") })
        assert.are.equal("first", db:get("k"))
    end)

    it("treats an expired key as absent", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "old", { ttl = 0.001 }))
        h.sleep(0.01)
        assert.is_true(db:add("k", "new"))
        assert.are.equal("new", db:get("k"))
    end)

    it("does not doom the transaction when the key exists", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "v"))
        assert.is_true(db:update(function(txn)
            assert.are.same({ nil, "exists" }, { txn:add("k", "w") })
            return txn:set("other", "x")
        end))
        assert.are.equal("x", db:get("other"))
    end)
end)

describe("replace", function()
    it("sets the key when present and answers nil, 'not found' when absent", function()
        local db = h.open_db(finally)
        assert.are.same({ nil, "not found" }, { db:replace("k", "v") })
        assert.is_nil(db:get("k"))
        assert.is_true(db:set("k", "v"))
        assert.is_true(db:replace("k", "w", { meta = 3 }))
        local value, meta = db:get_meta("k")
        assert.are.same({ "w", 3 }, { value, meta })
    end)

    it("works in a transaction", function()
        local db = h.open_db(finally)
        assert.are.same({ nil, "not found" }, { db:update(function(txn)
            return txn:replace("k", "v")
        end) })
    end)
end)

describe("db:get_meta", function()
    it("returns value, meta, expiry and version outside a transaction", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "v", { meta = 9 }))
        local value, meta, expires_at, version = db:get_meta("k")
        assert.are.same({ "v", 9, 0 }, { value, meta, expires_at })
        assert.are.equal(db:stats().last_version, version)
        assert.is_nil(db:get_meta("absent"))
    end)
end)
