-- stoat.ngx and its dict (stoat.shdict) outside nginx: the registry of
-- databases, inline syncs, and the ngx.shared.DICT look-alike's storage.
-- spec/openresty_spec.lua runs them inside a real nginx (the retries on
-- `busy`, the thread pool, request scope, and the dict call for call
-- against ngx.shared.DICT).

local h = require "helpers"
local sngx = require "stoat.ngx"

-- A fresh directory opened through stoat.ngx (closed at the end).
local function open(finally, opts, how)
    local dir = h.scratch(finally) .. "/db"
    local db, err = sngx.open(dir, opts or { sync = "none" }, how)
    assert(db, err)
    finally(function() sngx.close() end)
    return db, dir
end

describe("stoat.ngx", function()
    it("opens a database once per directory and finds it by directory or default", function()
        local db, dir = open(finally)
        assert.are.equal(db, sngx.open(dir))
        assert.are.equal(db, sngx.db())
        assert.are.equal(db, sngx.db(dir))
        assert.matches("^closed: no database opened", select(2, sngx.db("/nowhere")))
    end)

    it("closes its databases and forgets them", function()
        local db, dir = open(finally)
        assert.is_true(sngx.close())
        assert.is_true(db:is_closed())
        assert.is_nil(sngx.db(dir))
    end)

    it("returns busy at once outside nginx when another handle holds the directory "
       .. "exclusively", function()
        local _, dir = open(finally)
        sngx.close()
        local stoat = require "stoat"
        local holder = assert(stoat.open(dir, { multi_process = false }))
        finally(function() holder:close() end)
        local db, err = sngx.open(dir)
        assert.is_nil(db)
        assert.matches("^busy", err)
        assert.matches("^busy", select(2, sngx.db(dir)))
    end)

    it("syncs inline outside nginx", function()
        local db = open(finally)
        local before = sngx.counters.inline_syncs
        assert.is_true(db:set("k", "v"))
        assert.is_true(sngx.sync(db))
        assert.are.equal(before + 1, sngx.counters.inline_syncs)
    end)

    it("runs update and view on the default database, durable on request", function()
        open(finally)
        assert.are.equal(7, sngx.update(function(txn)
            assert(txn:set("k", "v"))
            return 7
        end, { durable = true }))
        assert.are.equal("v", sngx.view(function(txn) return txn:get("k") end))
        local seen = {}
        for k, v in sngx.pairs{ prefix = "k" } do seen[#seen + 1] = k .. v end
        assert.are.same({ "kv" }, seen)
        assert.are.equal(0, sngx.release()) -- no request here
        assert.has_error(function() sngx.update(function() end, { bogus = true }) end)
    end)
end)

describe("stoat.ngx.dict", function()
    it("keeps the Lua type of values and their user flags", function()
        open(finally)
        local d = sngx.dict("t")
        assert.are.same({ true, nil, false }, { d:set("s", "x") })
        assert.is_true(d:set("n", -2.5, 0, 42))
        assert.is_true(d:set("b", false))
        assert.is_true(d:set("f", "with flags", 0, 4294967295))
        assert.are.equal("x", d:get("s"))
        assert.are.equal(1, select("#", d:get("s"))) -- no flags: one value
        assert.are.same({ -2.5, 42 }, { d:get("n") })
        assert.are.equal(false, d:get("b"))
        assert.are.same({ "with flags", 4294967295 }, { d:get("f") })
        assert.are.same({ nil, "bad value type" }, { d:set("fn", print) })
    end)

    it("stores tables as JSON when lua-cjson is installed", function()
        if not pcall(require, "cjson") then
            pending("lua-cjson is not installed")
            return
        end
        open(finally)
        local d = sngx.dict("j")
        assert.is_true(d:set("doc", { a = { 1, 2 }, b = "x" }))
        assert.are.same({ a = { 1, 2 }, b = "x" }, d:get("doc"))
        local plain = sngx.dict("p", { json = false })
        assert.are.same({ nil, "bad value type" }, { plain:set("doc", {}) })
    end)

    it("stores string values as they are, under name .. ':'", function()
        local db = open(finally)
        local d = sngx.dict("cache")
        assert.is_true(d:set("k", "v"))
        assert.are.equal("v", db:get("cache:k"))
        assert.is_true(db:set("cache:other", "w"))
        assert.are.equal("w", d:get("other"))
        assert.are.same({ "k", "other" }, d:get_keys())
    end)

    it("increments numbers atomically, keeping flags and expiry", function()
        open(finally)
        local d = sngx.dict("c")
        assert.are.same({ nil, "not found" }, { d:incr("n", 1) })
        assert.are.same({ 5, nil, false }, { d:incr("n", 4, 1, 100) })
        assert.are.equal(1, select("#", d:incr("n", 1)))
        assert.are.equal(7, d:incr("n", 1))
        local ttl = d:ttl("n")
        assert.is_true(ttl > 99 and ttl <= 100.01, tostring(ttl))
        assert.is_true(d:set("s", "text"))
        assert.are.same({ nil, "not a number" }, { d:incr("s", 1) })
        assert.is_true(d:set("fl", 1, 0, 9))
        assert.are.equal(3, d:incr("fl", 2))
        assert.are.same({ 3, 9 }, { d:get("fl") })
    end)

    it("answers add, replace, ttl and expire as ngx.shared.DICT does", function()
        open(finally)
        local d = sngx.dict("a")
        assert.are.same({ true, nil, false }, { d:add("k", "v") })
        assert.are.same({ false, "exists", false }, { d:add("k", "w") })
        assert.are.same({ false, "not found", false }, { d:replace("x", "w") })
        assert.are.same({ true, nil, false }, { d:replace("k", "w", 0.2) })
        assert.are.same({ nil, "not found" }, { d:ttl("x") })
        assert.are.same({ nil, "not found" }, { d:expire("x", 1) })
        h.sleep(0.3)
        assert.is_nil(d:get("k"))
        assert.are.same({ true, nil, false }, { d:add("k", "again") }) -- expired is absent
        assert.is_true(d:expire("k", 0))
        assert.are.equal(0, d:ttl("k"))
        assert.has_error(function() d:set("k", "v", -1) end)
        assert.has_error(function() d:expire("k") end)
        assert.has_error(function() d:incr("k", 1, nil, 5) end)
    end)

    it("refuses empty and nil keys, and stringifies others, as ngx.shared.DICT", function()
        open(finally)
        local d = sngx.dict("k")
        assert.are.same({ nil, "nil key" }, { d:set(nil, "v") })
        assert.are.same({ nil, "empty key" }, { d:get("") })
        assert.is_true(d:set(12, "twelve"))
        assert.are.equal("twelve", d:get("12"))
    end)

    it("lists and flushes only its own keys", function()
        local db = open(finally)
        local a, b = sngx.dict("a"), sngx.dict("b")
        for i = 1, 5 do
            assert.is_true(a:set("k" .. i, i))
            assert.is_true(b:set("k" .. i, i))
        end
        assert.are.same({ "k1", "k2" }, a:get_keys(2))
        assert.are.equal(5, #a:get_keys(0))
        a:flush_all()
        assert.are.same({}, a:get_keys(0))
        assert.are.equal(5, #b:get_keys())
        assert.are.equal(5, db:count{ prefix = "b:" })
    end)

    it("fails like a closed database when the database is closed", function()
        open(finally)
        local d = sngx.dict("x")
        sngx.close()
        assert.are.same({ nil, "closed: no database opened with stoat.ngx.open" }, { d:get("k") })
        local ok, err, forcible = d:set("k", "v")
        assert.are.same({ false, false }, { ok, forcible })
        assert.matches("^closed", err)
    end)

    it("refuses a database with a codec", function()
        local dir = h.scratch(finally)
        local db = assert(require("stoat").open(dir .. "/db", { codec = "json" }))
        finally(function() db:close() end)
        assert.has_error(function() sngx.dict("x", { db = db }) end)
    end)
end)
