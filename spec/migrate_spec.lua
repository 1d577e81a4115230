-- db:each_batch and db:migrate: resumable migrations, including runs in a
-- child process killed with SIGKILL at random points.

local stoat = require "stoat"
local h = require "helpers"

local q = h.shell_quote

local function snapshot(db, prefix)
    local t = {}
    assert(db:view(function(txn)
        for k, v in txn:pairs{ prefix = prefix } do t[k] = v end
        return true
    end))
    return t
end

-- The dpkg-like names of the trial: some sort after "v2:" (wget, xz, zlib).
local function names(n)
    local t = {}
    math.randomseed(1414)
    for i = 1, n do
        local len = math.random(3, 10)
        local c = {}
        for j = 1, len do c[j] = string.char(math.random(97, 122)) end
        t[i] = table.concat(c) .. i
    end
    t[#t + 1], t[#t + 2], t[#t + 3] = "wget", "xz-utils", "zlib1g"
    return t
end

local function fill(db, list)
    for _, name in ipairs(list) do
        assert(db:set("pkg:" .. name, "section-" .. name:sub(1, 1) .. ":" .. name))
    end
end

-- The trial's migration: pkg:NAME -> pkg:v2:NAME (inside the range it
-- walks) plus an index entry; count and log:NAME catch any repeat.
local function move(txn, key, value)
    local name = key:sub(5)
    txn:set("pkg:v2:" .. name, value)
    txn:set("idx:" .. value:sub(1, 9) .. ":" .. name, "")
    txn:set("log:" .. name, (txn:get("log:" .. name) or "") .. "x")
    txn:set("count", tostring(tonumber(txn:get("count") or "0") + 1))
    txn:delete(key)
end

describe("db:each_batch", function()
    it("visits every key of the snapshot once, not the keys it writes in its range",
       function()
        local db = h.open_db(finally)
        local list = names(1200)
        fill(db, list)
        local n, total = db:each_batch{ prefix = "pkg:", size = 100, state_key = "mig:pkg",
                                        fn = move }
        assert.are.equal(#list, n)
        assert.are.equal(#list, total)
        assert.are.equal(tostring(#list), db:get("count"))
        local moved = snapshot(db, "pkg:")
        for _, name in ipairs(list) do
            assert.is_nil(moved["pkg:" .. name])
            assert.is_string(moved["pkg:v2:" .. name])
            assert.are.equal("x", db:get("log:" .. name))
        end
        -- Done: a second call does nothing and says so.
        n, total = db:each_batch{ prefix = "pkg:", state_key = "mig:pkg", fn = move }
        assert.are.equal(0, n)
        assert.are.equal(#list, total)
        assert.are.equal(tostring(#list), db:get("count"))
    end)

    it("starts after `after` and walks without a state key too", function()
        local db = h.open_db(finally)
        for i = 1, 50 do assert(db:set(("k%02d"):format(i), "v")) end
        local seen = {}
        local n = assert(db:each_batch{ prefix = "k", after = "k10", size = 7,
                                        fn = function(_, key) seen[#seen + 1] = key end })
        assert.are.equal(40, n)
        assert.are.equal("k11", seen[1])
        assert.are.equal("k50", seen[40])
    end)

    it("stops at an error and resumes after the last committed batch", function()
        local db = h.open_db(finally)
        local list = names(500)
        fill(db, list)
        local calls = 0
        local n, err = db:each_batch{ prefix = "pkg:", size = 40, state_key = "s",
            fn = function(txn, key, value)
                calls = calls + 1
                if calls == 222 then error("boom") end
                move(txn, key, value)
            end }
        assert.is_nil(n)
        assert.matches("boom", err)
        -- 5 batches of 40 committed; the sixth was discarded whole.
        assert.are.equal("200", db:get("count"))
        n = assert(db:each_batch{ prefix = "pkg:", size = 40, state_key = "s", fn = move })
        assert.are.equal(#list - 200, n)
        assert.are.equal(tostring(#list), db:get("count"))
        for _, name in ipairs(list) do assert.are.equal("x", db:get("log:" .. name)) end
    end)

    it("stops when fn returns nil, err", function()
        local db = h.open_db(finally)
        fill(db, names(10))
        local n, err = db:each_batch{ prefix = "pkg:", state_key = "s",
                                      fn = function() return nil, "no thanks" end }
        assert.is_nil(n)
        assert.are.equal("no thanks", err)
        assert.is_nil(db:get("s"))
    end)

    it("splits a batch too big for one transaction", function()
        local db = h.open_db(finally, { max_txn_bytes = 64 * 1024 })
        for i = 1, 100 do assert(db:set(("k%03d"):format(i), "v")) end
        local n = assert(db:each_batch{ prefix = "k", size = 100, state_key = "s",
            fn = function(txn, key) txn:set("big:" .. key, ("x"):rep(5000)) end })
        assert.are.equal(100, n)
        assert.are.equal(100, #h.sorted_keys(snapshot(db, "big:")))
    end)

    it("raises on misuse", function()
        local db = h.open_db(finally)
        assert.has_error(function() db:each_batch{ prefix = "a" } end)
        assert.has_error(function() db:each_batch{ fn = print, bogus = 1 } end)
        assert.has_error(function() db:each_batch{ fn = print, size = 0 } end)
    end)
end)

describe("db:migrate", function()
    it("runs each migration once, in order, and records the done ids", function()
        local db = h.open_db(finally)
        local order = {}
        local list = {
            { id = "001_a", up = function(d) order[#order + 1] = "a"; return d:set("a", "1") end },
            { id = "002_b", up = function() order[#order + 1] = "b" end },
        }
        assert.are.same({ "001_a", "002_b" }, assert(db:migrate(list)))
        assert.are.same({ "a", "b" }, order)
        assert.are.same({}, assert(db:migrate(list)))
        assert.are.same({ "a", "b" }, order)
        assert.is_string(db:get("_stoat/migration/001_a"))
        list[3] = { id = "003_c", up = function() order[#order + 1] = "c" end }
        assert.are.same({ "003_c" }, assert(db:migrate(list)))
    end)

    it("stops at a failing migration without recording it, and goes on next time", function()
        local db = h.open_db(finally)
        local fail = true
        local list = {
            { id = "1", up = function() end },
            { id = "2", up = function() if fail then error("not yet") end end },
            { id = "3", up = function() end },
        }
        local ran, err = db:migrate(list)
        assert.is_nil(ran)
        assert.matches("migration 2 failed: .*not yet", err)
        assert.is_nil(db:get("_stoat/migration/2"))
        assert.is_nil(db:get("_stoat/migration/3"))
        fail = false
        assert.are.same({ "2", "3" }, assert(db:migrate(list)))
        assert.has_error(function() db:migrate{ { id = "x", up = 1 } } end)
        assert.has_error(function()
            db:migrate{ { id = "x", up = print }, { id = "x", up = print } }
        end)
    end)

    it("killed with SIGKILL at 20 random points and resumed, ends as an uninterrupted run",
       function()
        local scratch = h.scratch(finally)
        local root = h.root()
        local build = os.getenv("BUILD") or "build"
        if build:sub(1, 1) ~= "/" then build = root .. "/" .. build end
        local child = scratch .. "/child.lua"
        local f = assert(io.open(child, "w"))
        f:write(([[
package.path = %q .. "/lua/?.lua;" .. package.path
package.cpath = %q .. "/?.so;" .. package.cpath
local ffi = require "ffi"
ffi.cdef "int poll(void *fds, unsigned long nfds, int timeout);"
local stoat = require "stoat"
local dir, slow = arg[1], tonumber(arg[2])
local db = assert(stoat.open(dir, { create_if_missing = false, memtable_size = 1048576 }))
if arg[3] == "noop" then db:close(); return end
local function pause() if slow > 0 then ffi.C.poll(nil, 0, slow) end end
local function bump(txn, k)
    assert(txn:set(k, tostring(tonumber(txn:get(k) or "0") + 1)))
end
assert(db:migrate{
    { id = "001_move", up = function(d)
        return d:each_batch{ prefix = "pkg:", size = 10, state_key = "mig:001",
            fn = function(txn, key, value)
                pause()
                local name = key:sub(5)
                txn:set("pkg:v2:" .. name, value)
                txn:set("idx:" .. value:sub(1, 9) .. ":" .. name, "")
                txn:set("log:" .. name, (txn:get("log:" .. name) or "") .. "x")
                bump(txn, "count")
                txn:delete(key)
            end }
    end },
    { id = "002_index", up = function(d)
        return d:each_batch{ prefix = "idx:", size = 7, state_key = "mig:002",
            fn = function(txn, key)
                pause()
                txn:set("idx2:" .. key:sub(5), "1")
                bump(txn, "count2")
            end }
    end },
})
assert(db:close())
]]):format(root, build))
        f:close()
        local list = names(300)
        local src = scratch .. "/src"
        local db = assert(stoat.open(src, h.SMALL))
        fill(db, list)
        assert(db:close())
        local killed, whole = scratch .. "/killed", scratch .. "/whole"
        assert(h.run(("cp -r %s %s && cp -r %s %s"):format(q(src), q(killed), q(src), q(whole))))
        local function run_child(dir, slow, timeout, extra)
            local prefix = timeout and ("timeout -s KILL %.3f "):format(timeout) or ""
            return h.run(("%sluajit %s %s %d %s"):format(prefix, q(child), q(dir), slow,
                                                          extra or ""))
        end
        local ok, out = run_child(whole, 0)
        assert.is_true(ok, out)

        local function progress(dir)
            -- The killed child's lock goes with its exit: wait for it.
            local d = assert(stoat.open(dir, { create_if_missing = false, open_timeout_ms = 5000 }))
            local p = (tonumber(d:get("count") or "0")) + (tonumber(d:get("count2") or "0"))
            d:close()
            return p
        end
        -- Kill points: after the child's start-up (measured here, so that a
        -- busy machine does not turn every kill into one before the start),
        -- within the next 80 ms, where it runs fn (3 ms a key) or commits:
        -- 20 kills cannot reach the end of the 2 x 303 keys.
        local now = require("stoat.cli.progress").now
        local startup = 0
        for _ = 1, 2 do
            local t0 = now()
            assert(run_child(killed, 0, nil, "noop"))
            startup = math.max(startup, now() - t0)
        end
        local full = 2 * #list
        local midway, last = 0, 0
        math.randomseed(os.time())
        for _ = 1, 20 do
            run_child(killed, 3, startup + math.random() * 0.08)
            local p = progress(killed)
            assert.is_true(p >= last, "progress never goes back")
            if p > 0 and p < full then midway = midway + 1 end
            last = p
        end
        assert.is_true(midway >= 10, ("only %d of 20 kills landed mid-migration"):format(midway))
        ok, out = run_child(killed, 0)
        assert.is_true(ok, out)

        local a = assert(stoat.open(killed, { create_if_missing = false }))
        local b = assert(stoat.open(whole, { create_if_missing = false }))
        local ta, tb = snapshot(a), snapshot(b)
        a:close()
        b:close()
        -- The done records hold the time they were written; only they differ.
        for _, id in ipairs({ "001_move", "002_index" }) do
            assert.is_string(ta["_stoat/migration/" .. id])
            ta["_stoat/migration/" .. id], tb["_stoat/migration/" .. id] = nil, nil
        end
        assert.are.equal(tostring(#list), ta.count)
        assert.are.equal(tostring(#list), ta.count2)
        for _, name in ipairs(list) do assert.are.equal("x", ta["log:" .. name]) end
        assert.are.same(tb, ta)
    end)
end)
