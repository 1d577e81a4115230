-- The reproducers of ../shared/reference/lua-trial.md (issue 13), one per
-- finding, each as the trial wrote it, checking what a user expects.

local h = require "helpers"
local stoat = require "stoat"

describe("trial", function()
    it("B1: an unchecked failed txn:set fails the whole update", function()
        local db = h.open_db(finally, { max_txn_entries = 1000 })
        local ok, err = db:update(function(txn)
            for i = 1, 1500 do txn:set(("k%06d"):format(i), "v") end -- result not checked
            return "imported"
        end)
        assert.is_nil(ok)
        assert.matches("^too big: ", err)
        assert.are.equal(0, db:count())
    end)

    it("B1: an unchecked set of an empty key fails the whole update", function()
        local db = h.open_db(finally)
        local ok, err = db:update(function(txn)
            txn:set("a", "1")
            txn:set("", "empty key")
            txn:set("b", "2")
        end)
        assert.is_nil(ok)
        assert.matches("^invalid: ", err)
        assert.are.same({ nil, nil }, { db:get("a"), db:get("b") })
    end)

    it("B4: assert(db:update(fn)) passes when fn returns nothing", function()
        local db = h.open_db(finally)
        assert.has_no.errors(function()
            assert(db:update(function(txn) txn:set("k", "v") end))
        end)
        assert.are.equal("v", db:get("k"))
    end)

    it("B5: misuse inside a closure raises with a traceback", function()
        local db = h.open_db(finally)
        local ok, err = pcall(db.view, db, function(txn)
            for _ in txn:pairs{ aftr = "x" } do end
        end)
        assert.is_false(ok)
        assert.matches("unknown option 'aftr'", err, 1, true)
        assert.matches("stack traceback:", err, 1, true)
    end)

    it("B5: a bug inside a closure raises", function()
        local db = h.open_db(finally)
        local ok, err = pcall(db.update, db, function()
            local cfg = nil -- luacheck: ignore 311
            return cfg.limit
        end)
        assert.is_false(ok)
        assert.matches("attempt to index", err, 1, true)
    end)

    it("B6: db:set with options takes a 20 MiB value like db:set without", function()
        local db = h.open_db(finally)
        local v = string.rep("x", 20 * 1024 * 1024)
        assert.is_true(db:set("a", v))
        assert.is_true(db:set("b", v, {}))
        assert.is_true(db:set("c", v, { ttl = 60 }))
        assert.are.equal(#v, #db:get("c"))
    end)

    it("B7: a ttl of 1 s set just before a second boundary lasts 1 s", function()
        local db = h.open_db(finally)
        while stoat.now() % 1 < 0.9 do h.sleep(0.01) end -- just before a second boundary
        local t0 = stoat.now()
        assert.is_true(db:set("session", "token", { ttl = 1 }))
        while db:get("session") do h.sleep(0.005) end
        assert.is_true(stoat.now() - t0 >= 1)
    end)

    it("B8: db:view raises on unknown options", function()
        local db = h.open_db(finally)
        assert.error_matches(function() db:view(function() return "ran" end, { retry = 3 }) end,
                             "db:view: unknown option 'retry'", 1, true)
    end)

    it("B8: a ttl out of range raises", function()
        local db = h.open_db(finally)
        assert.error_matches(function() db:set("k", "v", { ttl = 2 ^ 50 }) end, "'ttl'", 1,
                             true)
    end)

    it("B8: db:drop_prefix('') raises and deletes nothing", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("a", "1"))
        assert.error_matches(function() db:drop_prefix("") end, "use db:drop_all()", 1, true)
        assert.are.equal("1", db:get("a"))
    end)

    it("B8: db:close refuses while a batch holds uncommitted writes", function()
        local db = h.open_db(finally)
        local b = db:batch()
        assert.is_true(b:set("k", "v"))
        local ok, err = db:close()
        assert.is_nil(ok)
        assert.matches("^busy: 1 batch with uncommitted writes", err)
        assert.is_false(db:is_closed())
        assert.is_true(b:commit())
        assert.is_true(db:close())
    end)

    it("B9: a closure resumed after db:close gets closed from txn:get", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("a", "1"))
        local co = coroutine.create(function()
            return db:view(function(txn) coroutine.yield(); return txn:get("a") end)
        end)
        coroutine.resume(co)
        db:close()
        assert.are.same({ true, nil, "closed: the database was closed during the transaction" },
                        { coroutine.resume(co) })
    end)

    it("B9: an iterator resumed after db:close gets closed", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("a", "1"))
        assert.is_true(db:set("b", "2"))
        local co = coroutine.create(function()
            return db:view(function(txn)
                local n = 0
                for _ in txn:pairs() do n = n + 1; coroutine.yield() end
                return n
            end)
        end)
        coroutine.resume(co)
        db:close()
        local _, res, err = coroutine.resume(co)
        assert.is_nil(res)
        assert.matches("^closed: ", err)
    end)

    it("B10: requiring the module from PUC Lua says it needs LuaJIT", function()
        local ok, out = h.run("lua5.1 -e 'package.path = \"lua/?.lua;\" .. package.path' "
                              .. "-e 'require \"stoat\"'")
        assert.is_false(ok)
        assert.matches("stoat needs LuaJIT", out, 1, true)
    end)

    it("B3: value-log garbage left by a compaction under an open reader is reclaimed once "
       .. "it ends (issue 16)", function()
        -- Values stored as they are: the reclaimed bytes are checked raw.
        local db = h.open_db(finally, { value_log_file_size = 1024 * 1024, auto_gc = false,
                                        value_log_compression = "none" })
        for i = 1, 64 do assert(db:set("k" .. i, string.rep("a", 65536))) end
        assert(db:view(function()
            for i = 1, 64 do assert(db:set("k" .. i, string.rep("b", 65536))) end
            assert.are.equal(0, db:gc(0.1))
        end))
        assert.is_true(db:gc(0.1) > 4000000)
    end)
end)

-- B2 was left to the multi-process issue (11): an nginx reload starts new
-- workers while the old ones still hold the database. With multi_process
-- (what stoat.ngx opens with) the new process opens beside the old one;
-- spec/openresty_spec.lua runs the reload itself in a real nginx.
describe("trial, fixed by issue 11", function()
    it("B2: a second process opens the directory while the first holds it", function()
        local db, path = h.open_db(finally, { multi_process = true })
        assert(db:set("old", "worker"))
        local build = os.getenv("BUILD") or "build"
        local child = ("local stoat = require 'stoat'; local db = assert(stoat.open(%q, "
                       .. "{ multi_process = true })); io.write(db:get('old')); "
                       .. "assert(db:set('new', 'worker')); assert(db:close())"):format(path)
        local ok, out = h.run(("LUA_PATH='lua/?.lua;;' LUA_CPATH=%s luajit -e %s")
                              :format(h.shell_quote(build .. "/?.so;;"), h.shell_quote(child)))
        assert(ok, out)
        assert.are.equal("worker", out)
        assert.are.equal("worker", db:get("new"))
    end)
end)
