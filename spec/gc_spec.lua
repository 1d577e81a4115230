-- Finalizers: handles dropped without close are freed by the GC, in an
-- order that respects C's rules (iterators, then transactions, then the db).

local stoat = require "stoat"
local h = require "helpers"

local function full_gc()
    collectgarbage()
    collectgarbage()
end

describe("finalizers", function()
    it("release the directory when a database is dropped without close", function()
        local path = h.scratch(finally) .. "/db"
        do
            local db = assert(stoat.open(path))
            assert.is_true(db:set("k", "v"))
        end
        full_gc()
        local db = assert(stoat.open(path))
        assert.are.equal("v", db:get("k"))
        db:close()
    end)

    it("free a database, transaction and iterator that become garbage together", function()
        local path = h.scratch(finally) .. "/db"
        local db0 = assert(stoat.open(path))
        for i = 1, 20 do assert.is_true(db0:set("k" .. i, "v")) end
        db0:close()
        for _ = 1, 20 do
            local co = coroutine.create(function()
                local db = assert(stoat.open(path))
                db:update(function(txn)
                    txn:set("pending", "x")
                    local gen = txn:pairs()
                    gen()
                    local gen2 = txn:pairs{ reverse = true }
                    gen2()
                    coroutine.yield()
                end)
            end)
            assert.is_true((coroutine.resume(co)))
            assert.are.equal("suspended", coroutine.status(co))
            co = nil -- luacheck: ignore 311
            full_gc()
        end
        local db = assert(stoat.open(path))
        assert.is_nil(db:get("pending"))
        assert.are.equal("v", db:get("k20"))
        db:close()
    end)

    it("free a transaction abandoned in a suspended coroutine", function()
        local db = h.open_db(finally)
        local co = coroutine.create(function()
            db:update(function(txn)
                txn:set("k", "v")
                local gen = txn:pairs()
                gen()
                coroutine.yield()
            end)
        end)
        assert.is_true((coroutine.resume(co)))
        assert.are.equal(1, db._node.live)
        co = nil -- luacheck: ignore 311
        full_gc()
        assert.are.equal(0, db._node.live)
        assert.is_nil(db:get("k"))
        assert.is_true(db:close())
    end)
end)

describe("db:close with open handles", function()
    it("closes the transaction and iterators of a suspended closure first", function()
        local db, path = h.open_db(finally)
        assert.is_true(db:set("a", "1"))
        assert.is_true(db:set("b", "2"))
        local co = coroutine.create(function()
            return db:view(function(txn)
                local gen = txn:pairs()
                local first = gen()
                coroutine.yield(first)
                return gen()
            end)
        end)
        local _, first = coroutine.resume(co)
        assert.are.equal("a", first)
        assert.is_true(db:close())
        local ok, res, err = coroutine.resume(co)
        assert.is_true(ok)
        assert.is_nil(res)
        assert.are.equal("closed: the database was closed during the transaction", err)
        local again = assert(stoat.open(path))
        again:close()
    end)
end)
