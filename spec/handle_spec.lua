-- stoat.handle: handles are freed kids first, whatever order the GC picks.

local handle = require "stoat.handle"

-- A database node with a transaction and two iterators; frees are logged.
local function family()
    local log = {}
    local function free(addr) log[#log + 1] = addr end
    local db = handle.new(nil, "db", free)
    local txn = handle.new(db, "txn", free)
    local it1 = handle.new(txn, "it1", free)
    local it2 = handle.new(txn, "it2", free)
    return log, db, txn, it1, it2
end

describe("handle", function()
    it("frees nothing until the last kid goes when the parent is collected first", function()
        local log, db, txn, it1, it2 = family()
        handle.collect(db)
        handle.collect(txn)
        handle.collect(it1)
        assert.are.same({ "it1" }, log)
        handle.collect(it2)
        assert.are.same({ "it1", "it2", "txn", "db" }, log)
        assert.is_true(db.dead and txn.dead and it2.dead)
    end)

    it("keeps a parent whose kids are collected while it is alive", function()
        local log, db, txn, it1, it2 = family()
        handle.collect(it2)
        handle.collect(it1)
        assert.are.same({ "it2", "it1" }, log)
        assert.is_false(txn.dead)
        assert.are.equal(0, txn.live)
        handle.collect(txn)
        assert.are.same({ "it2", "it1", "txn" }, log)
        assert.is_false(db.dead)
    end)

    it("closes the kids first when a parent is closed", function()
        local log, db = family()
        assert.are.equal(0, handle.close(db))
        assert.are.equal("db", log[4])
        table.sort(log)
        assert.are.same({ "db", "it1", "it2", "txn" }, log)
    end)

    it("frees each handle once when close and finalizers mix", function()
        local log, db, txn, it1, it2 = family()
        handle.collect(txn)        -- orphan, waits for its iterators
        handle.close(it1)
        handle.close(db)           -- closes it2, which frees txn, then db
        handle.collect(it2)
        handle.collect(db)
        handle.close(txn)
        assert.are.same({ "it1", "it2", "txn", "db" }, log)
        assert.are.equal(0, db.live)
        assert.is_nil(next(db.kids))
    end)

    it("frees a handle when its token is collected", function()
        local log = {}
        local n = handle.new(nil, "x", function(addr) log[#log + 1] = addr end)
        local held = { token = handle.attach(n) } -- luacheck: ignore 241 (a GC root to drop)
        held.token = nil
        collectgarbage()
        collectgarbage()
        assert.are.same({ "x" }, log)
        assert.is_true(n.dead)
    end)

    it("does not free a newer handle at the same address when an old token is collected",
       function()
        local log = {}
        local function free(addr) log[#log + 1] = addr end
        local old = handle.new(nil, "addr", free)
        local held = { old = handle.attach(old) } -- luacheck: ignore 241 (a GC root to drop)
        handle.close(old)          -- closed by its parent, say: the token keeps its finalizer
        local new = handle.new(nil, "addr", free)
        local new_token = handle.attach(new)
        held.old = nil
        collectgarbage()
        collectgarbage()
        assert.are.same({ "addr" }, log)
        assert.is_false(new.dead)
        assert.are.equal(0, handle.close_now(new_token, new))
        assert.are.same({ "addr", "addr" }, log)
    end)

    it("returns the free function's code from close, once", function()
        local n = handle.new(nil, "x", function() return -4 end)
        assert.are.equal(-4, handle.close(n))
        assert.are.equal(0, handle.close(n))
    end)
end)
