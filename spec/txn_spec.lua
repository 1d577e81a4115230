-- Transactions as closures: db:update, db:view, txn:get/set/delete,
-- conflicts and retries, closed transactions, coroutines.

local h = require "helpers"

describe("db:update", function()
    it("commits the writes when the closure returns", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("gone", "x"))
        db:update(function(txn)
            assert.is_true(txn:set("a", "1"))
            assert.is_true(txn:set("b", "2"))
            assert.is_true(txn:delete("gone"))
        end)
        assert.are.same({ "1", "2" }, { db:get("a"), db:get("b") })
        assert.is_nil(db:get("gone"))
    end)

    it("returns all the closure's values, nils included", function()
        local db = h.open_db(finally)
        local n, a, b, c, d = (function(...) return select("#", ...), ... end)(
            db:update(function() return 1, nil, "x", nil end))
        assert.are.same({ 4, 1, nil, "x", nil }, { n, a, b, c, d })
    end)

    it("returns true when the closure returns no values", function()
        local db = h.open_db(finally)
        assert.are.same({ true }, { db:update(function(txn) txn:set("k", "v") end) })
        assert.are.same({ true }, { db:view(function() end) })
        assert.are.equal("v", db:get("k"))
    end)

    it("sees its own writes before commit and hides them from others", function()
        local db = h.open_db(finally)
        db:update(function(txn)
            txn:set("k", "mine")
            assert.are.equal("mine", txn:get("k"))
            assert.is_nil(db:get("k"))
            txn:delete("k")
            assert.is_nil(txn:get("k"))
            txn:set("k", "again")
        end)
        assert.are.equal("again", db:get("k"))
    end)

    it("discards the writes and raises again when the closure raises", function()
        local db = h.open_db(finally)
        local ok, err = pcall(db.update, db, function(txn)
            txn:set("k", "v")
            error("boom")
        end)
        assert.is_false(ok)
        assert.matches("^[^\n]*txn_spec%.lua:%d+: boom\n", err)
        assert.is_nil(db:get("k"))
    end)

    it("keeps the traceback of where the closure raised", function()
        local db = h.open_db(finally)
        local function deep() error("deep down") end
        local ok, err = pcall(db.update, db, function() deep() end)
        assert.is_false(ok)
        assert.matches("stack traceback:", err, 1, true)
        assert.matches("in function 'deep'", err, 1, true)
    end)

    it("raises again from db:view when its closure raises", function()
        local db = h.open_db(finally)
        local ok, err = pcall(db.view, db, function() assert(false, "failed assert") end)
        assert.is_false(ok)
        assert.matches("failed assert", err, 1, true)
    end)

    it("raises nil again when the closure raises nil", function()
        local db = h.open_db(finally)
        local ok, err = pcall(db.update, db, function() error() end)
        assert.is_false(ok)
        assert.is_nil(err)
    end)

    it("raises a table error again unchanged", function()
        local db = h.open_db(finally)
        local e = { code = 42 }
        local ok, err = pcall(db.update, db, function() error(e) end)
        assert.is_false(ok)
        assert.are.equal(e, err)
    end)

    it("raises again the misuse of a pairs option inside the closure", function()
        local db = h.open_db(finally)
        local ok, err = pcall(db.update, db, function(txn)
            for _ in txn:pairs{ prefx = "a" } do end
        end)
        assert.is_false(ok)
        assert.matches("^[^\n]*txn_spec%.lua:%d+: stoat: txn:pairs: unknown option 'prefx'", err)
    end)

    it("runs the closure again when its commit conflicts", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("counter", "0"))
        local runs = 0
        local result = db:update(function(txn)
            runs = runs + 1
            local n = tonumber(txn:get("counter"))
            if runs == 1 then
                -- Another writer commits the key this transaction read.
                db:update(function(other) other:set("counter", "100") end)
            end
            txn:set("counter", tostring(n + 1))
            return n + 1
        end)
        assert.are.equal(2, runs)
        assert.are.equal(101, result)
        assert.are.equal("101", db:get("counter"))
    end)

    it("returns a conflict error when the retries run out", function()
        local db = h.open_db(finally)
        local runs = 0
        local ok, err = db:update(function(txn)
            runs = runs + 1
            txn:get("k")
            db:update(function(other) other:set("k", tostring(runs)) end)
            txn:set("k", "mine")
        end, { retries = 2 })
        assert.is_nil(ok)
        assert.matches("^conflict: ", err)
        assert.are.equal(3, runs)
        assert.are.equal("3", db:get("k"))
    end)

    it("tries once when retries is 0", function()
        local db = h.open_db(finally)
        local runs = 0
        local ok, err = db:update(function(txn)
            runs = runs + 1
            txn:get("k")
            db:set("k", "other")
            txn:set("k", "mine")
        end, { retries = 0 })
        assert.is_nil(ok)
        assert.matches("^conflict: ", err)
        assert.are.equal(1, runs)
    end)

    it("does not conflict when the other writer touched keys it did not read", function()
        local db = h.open_db(finally)
        local runs = 0
        db:update(function(txn)
            runs = runs + 1
            txn:get("a")
            db:set("b", "other")
            txn:set("a", "mine")
        end)
        assert.are.equal(1, runs)
        assert.are.same({ "mine", "other" }, { db:get("a"), db:get("b") })
    end)

    it("returns a too big error when the transaction is over its limit", function()
        local db = h.open_db(finally, { max_txn_entries = 10 })
        local ok, err = db:update(function(txn)
            for i = 1, 11 do
                local set_ok, set_err = txn:set("k" .. i, "v")
                if not set_ok then return nil, set_err end
            end
            return true
        end)
        assert.is_nil(ok)
        assert.matches("^too big: ", err)
        assert.is_nil(db:get("k1"))
    end)

    it("discards the writes when the closure returns nil and an error", function()
        local db = h.open_db(finally)
        local ok, err = db:update(function(txn)
            txn:set("k", "v")
            return nil, "not today"
        end)
        assert.are.same({ nil, "not today" }, { ok, err })
        assert.is_nil(db:get("k"))
        assert.are.equal(2, select("#", db:update(function(txn)
            txn:set("k", "v")
            return nil, nil
        end)))
        assert.are.equal("v", db:get("k"))
    end)

    it("raises when fn is not a function or an option is wrong", function()
        local db = h.open_db(finally)
        assert.error_matches(function() db:update("fn") end, "db:update: expected a function", 1,
                             true)
        assert.error_matches(function() db:update(function() end, { retry = 1 }) end,
                             "unknown option 'retry'", 1, true)
        assert.error_matches(function() db:update(function() end, { retries = -1 }) end,
                             "'retries'", 1, true)
        assert.error_matches(function() db:view(nil) end, "db:view: expected a function", 1,
                             true)
    end)
end)

describe("db:close inside a closure", function()
    it("makes update return a closed error and commit nothing", function()
        local db = h.open_db(finally)
        local ok, err = db:update(function(txn)
            txn:set("k", "v")
            db:close()
            return true
        end)
        assert.is_nil(ok)
        assert.matches("^closed: ", err)
        assert.is_true(db:is_closed())
    end)
end)

describe("db:view", function()
    it("reads one snapshot, blind to later commits", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "old"))
        local before, after = db:view(function(txn)
            local v1 = txn:get("k")
            db:set("k", "new")
            db:set("k2", "new")
            local keys = {}
            for k in txn:pairs{ keys_only = true } do keys[#keys + 1] = k end
            return v1 .. "/" .. txn:get("k"), table.concat(keys, ",")
        end)
        assert.are.equal("old/old", before)
        assert.are.equal("k", after)
        assert.are.equal("new", db:get("k"))
    end)

    it("returns a read only error when the closure writes", function()
        local db = h.open_db(finally)
        local ok, err = db:view(function(txn) return txn:set("k", "v") end)
        assert.is_nil(ok)
        assert.matches("^read only: ", err)
        ok, err = db:view(function(txn) return txn:delete("k") end)
        assert.is_nil(ok)
        assert.matches("^read only: ", err)
    end)

    it("returns the closure's values", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "v"))
        assert.are.same({ "v", nil, 3 }, { db:view(function(txn)
            return txn:get("k"), txn:get("absent"), 3
        end) })
    end)
end)

describe("txn", function()
    it("raises when used after its closure returned", function()
        local db = h.open_db(finally)
        local saved
        db:update(function(txn) saved = txn end)
        for _, call in ipairs({
            function() saved:get("k") end, function() saved:set("k", "v") end,
            function() saved:delete("k") end, function() saved:pairs() end,
            function() saved:get_meta("k") end, function() saved:read_version() end,
        }) do
            assert.error_matches(call, "transaction is closed", 1, true)
        end
    end)

    it("raises when a key or value is not a string", function()
        local db = h.open_db(finally)
        assert.error_matches(function() db:update(function(txn) txn:get(7) end) end,
                             "txn:get: key must be a string", 1, true)
        assert.error_matches(function() db:update(function(txn) txn:set("k", false) end) end,
                             "txn:set: value must be a string", 1, true)
        assert.error_matches(function() db:update(function(txn) txn.delete("k") end) end,
                             "expected a transaction as self", 1, true)
    end)

    it("returns invalid and too big errors for empty and oversized keys", function()
        local db = h.open_db(finally)
        local big = ("k"):rep(65537)
        local function first_error(fn)
            local results = { db:update(function(txn) return select(2, fn(txn)) end) }
            return results[1] or results[2]
        end
        assert.matches("^invalid: ", first_error(function(txn) return txn:get("") end))
        assert.matches("^invalid: ", first_error(function(txn) return txn:set("", "v") end))
        assert.matches("^too big: ", first_error(function(txn) return txn:set(big, "v") end))
        assert.matches("^too big: ", first_error(function(txn) return txn:delete(big) end))
    end)

    it("reports the read version, expiry and user meta", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "v"))
        db:update(function(txn) txn:set("m", "w", { meta = 9, ttl = 100 }) end)
        local value, meta, expires_at, version, read_version = db:view(function(txn)
            local v, m, e, ver = txn:get_meta("m")
            return v, m, e, ver, txn:read_version()
        end)
        assert.are.same({ "w", 9 }, { value, meta })
        assert.is_true(expires_at >= os.time() + 98 and expires_at <= os.time() + 101)
        assert.is_true(version >= 2 and version <= read_version)
        assert.is_nil(db:view(function(txn) return txn:get_meta("absent") end))
    end)
end)

describe("coroutines", function()
    it("run their own transactions when a closure yields mid-transaction", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("shared", "0"))
        local function worker(name)
            return coroutine.create(function()
                return db:update(function(txn)
                    txn:set(name, "started")
                    coroutine.yield("set")
                    assert.is_nil(db:get(name)) -- not committed yet
                    txn:set(name, "done")
                    local seen = {}
                    for k, v in txn:pairs{ prefix = name } do
                        seen[#seen + 1] = k .. "=" .. v
                        coroutine.yield("step")
                    end
                    return table.concat(seen, ",") .. ";" .. txn:get("shared")
                end)
            end)
        end
        local a, b = worker("a"), worker("b")
        local results = {}
        local steps = 0
        repeat
            local alive = false
            for name, co in pairs({ a = a, b = b }) do
                if coroutine.status(co) == "suspended" then
                    local ok, res = coroutine.resume(co)
                    assert.is_true(ok, res)
                    if coroutine.status(co) == "dead" then results[name] = res end
                    alive = true
                end
            end
            steps = steps + 1
        until not alive
        assert.is_true(steps > 3)
        assert.are.equal("a=done;0", results.a)
        assert.are.equal("b=done;0", results.b)
        assert.are.same({ "done", "done" }, { db:get("a"), db:get("b") })
    end)

    it("conflict and retry independently when yielding between read and write", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("n", "0"))
        local runs = 0
        local function incr()
            return coroutine.create(function()
                return db:update(function(txn)
                    runs = runs + 1
                    local n = tonumber(txn:get("n"))
                    coroutine.yield()
                    txn:set("n", tostring(n + 1))
                end)
            end)
        end
        local cos = { incr(), incr(), incr() }
        local pending = true
        while pending do
            pending = false
            for _, co in ipairs(cos) do
                if coroutine.status(co) == "suspended" then
                    assert.is_true((coroutine.resume(co)))
                    pending = true
                end
            end
        end
        assert.are.equal("3", db:get("n"))
        assert.is_true(runs > 3)
    end)
end)

describe("a failed write", function()
    it("dooms the update even when the closure returns normally", function()
        local db = h.open_db(finally)
        local ok, err = db:update(function(txn)
            txn:set("a", "1")
            txn:set("", "bad")
            return "done"
        end)
        assert.is_nil(ok)
        assert.matches("^invalid: ", err)
        assert.is_nil(db:get("a"))
    end)

    it("dooms the update when the failed set was caught with pcall", function()
        local db = h.open_db(finally)
        local ok, err = db:update(function(txn)
            pcall(txn.set, txn, ("k"):rep(65537), "v")
            txn:set("a", "1")
        end)
        assert.is_nil(ok)
        assert.matches("^too big: ", err)
        assert.is_nil(db:get("a"))
    end)

    it("dooms the update when a delete fails", function()
        local db = h.open_db(finally)
        local ok, err = db:update(function(txn)
            txn:delete("")
            txn:set("a", "1")
        end)
        assert.is_nil(ok)
        assert.matches("^invalid: ", err)
        assert.is_nil(db:get("a"))
    end)

    it("makes later writes fail with the first error", function()
        local db = h.open_db(finally)
        local first, later
        db:update(function(txn)
            first = select(2, txn:set("", "v"))
            later = select(2, txn:set("ok", "v"))
        end)
        assert.matches("^invalid: ", first)
        assert.are.equal(first, later)
    end)

    it("wins over the closure's own nil, err", function()
        local db = h.open_db(finally)
        local ok, err = db:update(function(txn)
            txn:set("", "v")
            return nil, "mine"
        end)
        assert.is_nil(ok)
        assert.matches("^invalid: ", err)
    end)

    it("is reported by db:view too", function()
        local db = h.open_db(finally)
        local ok, err = db:view(function(txn)
            txn:set("k", "v")
            return "read"
        end)
        assert.is_nil(ok)
        assert.matches("^read only: ", err)
    end)

    it("does not doom a later transaction", function()
        local db = h.open_db(finally)
        db:update(function(txn) txn:set("", "v") end)
        assert.is_true(db:update(function(txn) return txn:set("k", "v") end))
        assert.are.equal("v", db:get("k"))
    end)
end)

describe("db:view at a version", function()
    it("reads the database as it was after that commit", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "old"))
        local v1 = db:stats().last_version
        assert.is_true(db:set("k", "new"))
        assert.are.equal("old", db:view(function(txn) return txn:get("k") end, { at = v1 }))
        assert.are.equal(v1, db:view(function(txn) return txn:read_version() end, { at = v1 }))
        assert.are.equal("new", db:view(function(txn) return txn:get("k") end))
    end)

    it("raises when at is not a positive integer", function()
        local db = h.open_db(finally)
        assert.error_matches(function() db:view(function() end, { at = 0 }) end, "'at'", 1, true)
        assert.error_matches(function() db:view(function() end, { at = "1" }) end, "'at'", 1,
                             true)
    end)
end)

describe("nested db:update", function()
    it("is a separate transaction that commits at once", function()
        local db = h.open_db(finally)
        local ok = pcall(db.update, db, function(txn)
            txn:set("outer", "x")
            assert(db:update(function(inner) inner:set("inner", "y") end))
            error("outer fails")
        end)
        assert.is_false(ok)
        assert.are.same({ nil, "y" }, { db:get("outer"), db:get("inner") })
    end)
end)

describe("txn after db:close", function()
    it("raises misuse when its closure had returned before the close", function()
        local db = h.open_db(finally)
        local saved
        assert(db:update(function(txn) saved = txn end))
        db:close()
        assert.error_matches(function() saved:get("k") end, "transaction is closed", 1, true)
    end)
end)
