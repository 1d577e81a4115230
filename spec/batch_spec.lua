-- Batches (issue 13): a failed write dooms the batch; closing a database
-- refuses while a batch holds uncommitted writes.

local h = require "helpers"

describe("batch", function()
    it("writes nothing more and returns the first error after a failed set", function()
        local db = h.open_db(finally)
        local b = db:batch()
        assert.is_true(b:set("a", "1"))
        local ok, err = b:set("", "empty key")
        assert.is_nil(ok)
        assert.matches("^invalid: ", err)
        local ok2, err2 = b:set("b", "2")
        assert.is_nil(ok2)
        assert.are.equal(err, err2)
        local ok3, err3 = b:commit()
        assert.is_nil(ok3)
        assert.are.equal(err, err3)
        assert.are.same({ nil, nil }, { db:get("a"), db:get("b") })
    end)

    it("is ended by a commit that fails", function()
        local db = h.open_db(finally)
        local b = db:batch()
        b:delete("")
        assert.is_nil((b:commit()))
        assert.error_matches(function() b:set("k", "v") end, "batch is closed", 1, true)
    end)

    it("raises on misuse: a key or value of the wrong type", function()
        local db = h.open_db(finally)
        local b = db:batch()
        assert.error_matches(function() b:set(1, "v") end, "batch:set: key must be a string", 1,
                             true)
        assert.error_matches(function() b:set("k", {}) end, "batch:set: value must be", 1,
                             true)
        b:close()
    end)
end)

describe("db:close with a batch", function()
    it("closes when the open batch holds no writes", function()
        local db = h.open_db(finally)
        local b = db:batch()
        assert.is_true(db:close())
        assert.is_nil((b:commit()))
    end)

    it("closes once the batch with writes is closed", function()
        local db = h.open_db(finally)
        local b = db:batch()
        assert.is_true(b:set("k", "v"))
        assert.is_nil((db:close()))
        b:close()
        assert.is_true(db:close())
    end)

    it("closes when the batch with writes can no longer be reached", function()
        local db = h.open_db(finally)
        do
            local b = db:batch()
            assert.is_true(b:set("k", "v"))
        end
        assert.is_true(db:close())
    end)

    it("keeps the database usable after refusing", function()
        local db = h.open_db(finally)
        local b = db:batch()
        assert.is_true(b:set("k", "v"))
        assert.is_nil((db:close()))
        assert.is_true(db:set("x", "y"))
        assert.is_true(b:commit())
        assert.are.same({ "v", "y" }, { db:get("k"), db:get("x") })
    end)
end)
