-- Time to live (issue 13): seconds as numbers with a millisecond
-- resolution, never shorter than asked; ttl(), expire(), and the expiry
-- that get_meta and pairs{meta = true} report.

local h = require "helpers"
local stoat = require "stoat"

describe("ttl", function()
    it("accepts a fraction of a second and expires after it", function()
        local db = h.open_db(finally)
        local t0 = stoat.now()
        assert.is_true(db:set("k", "v", { ttl = 0.25 }))
        local _, _, expires_at = db:get_meta("k")
        assert.is_true(expires_at >= t0 + 0.25 and expires_at <= stoat.now() + 0.252)
        assert.are.equal("v", db:get("k"))
        while stoat.now() < expires_at do h.sleep(0.01) end
        assert.is_nil(db:get("k"))
    end)

    it("never expires an entry before its ttl has passed", function()
        local db = h.open_db(finally)
        for i = 1, 20 do
            local t0 = stoat.now()
            -- a fraction of a millisecond-resolution ttl, long enough that a
            -- busy machine cannot let it run out before get_meta looks
            assert.is_true(db:set("k" .. i, "v", { ttl = 30.0035 }))
            local _, _, expires_at = db:get_meta("k" .. i)
            assert.is_true(expires_at >= t0 + 30.0035)
        end
    end)

    it("reports the seconds left with ttl() and 0 for no expiry", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("t", "v", { ttl = 100 }))
        assert.is_true(db:set("forever", "v"))
        local left = db:ttl("t")
        assert.is_true(left > 99 and left <= 100.002)
        assert.are.equal(0, db:ttl("forever"))
        assert.is_nil(db:ttl("absent"))
    end)

    it("reports ttl() inside a transaction, for its own writes too", function()
        local db = h.open_db(finally)
        local left = db:update(function(txn)
            txn:set("t", "v", { ttl = 5 })
            return txn:ttl("t")
        end)
        assert.is_true(left > 4.9 and left <= 5.002)
    end)

    it("gives a key a new ttl with expire(), keeping its value and meta", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "v", { meta = 7 }))
        assert.is_true(db:expire("k", 50))
        local value, meta, expires_at = db:get_meta("k")
        assert.are.same({ "v", 7 }, { value, meta })
        assert.is_true(expires_at > stoat.now() + 49)
    end)

    it("makes a key persistent with expire(key, 0)", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "v", { ttl = 50 }))
        assert.is_true(db:expire("k", 0))
        assert.are.equal(0, db:ttl("k"))
    end)

    it("answers nil, 'not found' when expire() is given an absent key", function()
        local db = h.open_db(finally)
        assert.are.same({ nil, "not found" }, { db:expire("absent", 5) })
        assert.are.same({ nil, "not found" }, { db:update(function(txn)
            return txn:expire("absent", 5)
        end) })
    end)

    it("raises when a ttl is negative, not a number or out of range", function()
        local db = h.open_db(finally)
        for _, bad in ipairs({ -1, 0 / 0, "5", stoat.MAX_TTL + 1 }) do
            assert.error_matches(function() db:set("k", "v", { ttl = bad }) end, "ttl", 1, true)
            assert.error_matches(function() db:expire("k", bad) end, "ttl", 1, true)
        end
        assert.is_true(db:set("k", "v", { ttl = stoat.MAX_TTL }))
    end)

    it("raises for an out-of-range ttl inside a closure", function()
        local db = h.open_db(finally)
        local ok, err = pcall(db.update, db, function(txn) txn:set("k", "v", { ttl = 2 ^ 60 }) end)
        assert.is_false(ok)
        assert.matches("'ttl'", err, 1, true)
    end)

    it("applies a ttl given to a batch", function()
        local db = h.open_db(finally)
        local b = db:batch()
        assert.is_true(b:set("k", "v", { ttl = 30 }))
        assert.is_true(b:commit())
        local left = db:ttl("k")
        assert.is_true(left > 29 and left <= 30.002)
    end)
end)
