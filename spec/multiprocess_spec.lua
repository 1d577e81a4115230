-- Several processes on one database from Lua (multi_process = true): a
-- child luajit process and this one see each other's commits at once,
-- conflicts are detected across them, and the `stoat` command joins a
-- database that live processes hold (a live backup), and value-log GC runs
-- in the background owner. core/test/mp_test.c
-- has the C side: kills, flushes, the bank across processes.

local h = require "helpers"
local stoat = require "stoat"

local MP = { multi_process = true, memtable_size = 256 * 1024 }

-- Runs a Lua chunk in a child luajit with the database at path open
-- (multi_process) as `db`; returns its output, raising if it failed.
local function in_child(path, chunk)
    local build = os.getenv("BUILD") or "build"
    local prog = ("local stoat = require 'stoat'; local db = assert(stoat.open(%q, "
                  .. "{ multi_process = true, memtable_size = 256 * 1024 })); %s; "
                  .. "assert(db:close())"):format(path, chunk)
    local ok, out = h.run(("LUA_PATH='lua/?.lua;;' LUA_CPATH=%s luajit -e %s")
                          :format(h.shell_quote(build .. "/?.so;;"), h.shell_quote(prog)))
    assert(ok, out)
    return out
end

local function stoat_cmd(args)
    return h.run("bin/stoat " .. args)
end

describe("multi_process", function()
    it("sees another process's commits at once, both ways", function()
        local db, path = h.open_db(finally, MP)
        db:set("parent", "p1")
        local out = in_child(path, "io.write(db:get('parent')); db:set('child', 'c1')")
        assert.are.equal("p1", out)
        assert.are.equal("c1", db:get("child"))
        -- A value of the value log (over 1 KiB) crosses too.
        in_child(path, "db:set('big', ('x'):rep(5000))")
        assert.are.equal(("x"):rep(5000), db:get("big"))
    end)

    it("detects a conflict with another process's commit", function()
        local db, path = h.open_db(finally, MP)
        db:set("n", "1")
        local res, err = db:update(function(txn)
            local n = tonumber(txn:get("n"))
            -- Another process changes n after this transaction read it.
            in_child(path, "db:set('n', '100')")
            txn:set("n", tostring(n + 1))
        end, { retries = 0 })
        assert.is_nil(res)
        assert.matches("conflict", tostring(err))
        assert.are.equal("100", db:get("n"))
    end)

    it("lets the stoat command join a live database: get, scan, backup", function()
        local db, path = h.open_db(finally, MP)
        for i = 1, 50 do
            db:set(("k%03d"):format(i), ("v"):rep(i * 40))
        end
        local ok, out = stoat_cmd("get " .. h.shell_quote(path) .. " k002")
        assert(ok, out)
        assert.are.equal(("v"):rep(80), out:gsub("\n$", ""))
        local bak = path .. ".bak"
        ok, out = h.run("{ bin/stoat backup " .. h.shell_quote(path) .. " > " .. h.shell_quote(bak)
                        .. "; }")
        assert(ok, out)
        local dir2 = h.tmpdir()
        finally(function() h.rmrf(dir2) end)
        ok, out = stoat_cmd("restore " .. h.shell_quote(dir2 .. "/db") .. " " .. h.shell_quote(bak))
        assert(ok, out)
        local copy = assert(stoat.open(dir2 .. "/db"))
        assert.are.equal(("v"):rep(2000), copy:get("k050"))
        assert.are.equal(50, copy:count())
        copy:close()
        -- The live handle goes on.
        db:set("after", "yes")
        assert.are.equal("yes", db:get("after"))
    end)

    it("collects value-log garbage in the background owner", function()
        -- No automatic GC: it could take the garbage before db:gc does.
        local db, path = h.open_db(finally, { multi_process = true, memtable_size = 256 * 1024,
                                              auto_gc = false })
        for round = 1, 3 do
            for i = 1, 40 do
                db:set(("g%02d"):format(i), (tostring(round)):rep(3000))
            end
        end
        -- This handle opened first: it is the owner, where gc runs.
        local n = assert(db:gc(0.3))
        assert.is_true(n > 0)
        local out = in_child(path, "io.write(db:get('g07'))")
        assert.are.equal(("3"):rep(3000), out)
        assert.are.equal(("3"):rep(3000), db:get("g40"))
        -- Another process is not the owner: it says where gc runs.
        out = in_child(path, "local ok, err = db:gc(0.3); io.write(tostring(err))")
        assert.matches("another process runs the background work", out)
    end)
end)

describe("stoat load into a live database", function()
    it("writes in transactions when another process holds it", function()
        local db, path = h.open_db(finally, MP)
        assert(db:set("held", "yes"))
        local input = path .. ".tsv"
        local f = assert(io.open(input, "w"))
        for i = 1, 50 do
            f:write(("load%03d\tv%d\n"):format(i, i))
        end
        f:close()
        local ok, out = stoat_cmd("load " .. h.shell_quote(path) .. " --format tsv "
                                  .. h.shell_quote(input))
        assert(ok, out)
        for i = 1, 50 do
            assert.are.equal("v" .. i, db:get(("load%03d"):format(i)))
        end
        -- --bulk cannot be honoured there (bulk loads run in the background
        -- owner, this process): it says so.
        ok, out = stoat_cmd("load " .. h.shell_quote(path) .. " --bulk --format tsv "
                            .. h.shell_quote(input))
        assert.is_false(ok)
        assert.matches("another process runs the background work", out)
    end)
end)

describe("stoat backup of a live database", function()
    it("equals a snapshot while another process writes", function()
        local db, path = h.open_db(finally, MP)
        assert(db:set("last", "0"))
        -- A writer in another process, until told to stop: each
        -- transaction writes k<i> and moves "last" to i, so any snapshot
        -- holds k1..k<last> exactly.
        local build = os.getenv("BUILD") or "build"
        local stop = path .. ".stop"
        local prog = ("local stoat = require 'stoat'; local db = assert(stoat.open(%q, "
                      .. "{ multi_process = true })); local i = 0; repeat i = i + 1; "
                      .. "assert(db:update(function(t) t:set('k' .. i, ('v'):rep(i %% 2000)); "
                      .. "t:set('last', tostring(i)) end)) until i %% 20 == 0 and io.open(%q); "
                      .. "assert(db:close()); io.write(i)"):format(path, stop)
        local writer = io.popen(("LUA_PATH='lua/?.lua;;' LUA_CPATH=%s luajit -e %s 2>&1")
                                :format(h.shell_quote(build .. "/?.so;;"), h.shell_quote(prog)))
        local t0 = os.time()
        while (tonumber(db:get("last")) or 0) < 100 and os.time() - t0 < 60 do
            h.sleep(0.05)
        end
        local bak = path .. ".bak"
        local ok, out = h.run("{ bin/stoat backup " .. h.shell_quote(path) .. " > "
                              .. h.shell_quote(bak) .. "; }")
        assert(io.open(stop, "w")):close()
        local wout = writer:read("*a")
        assert(writer:close(), wout)
        assert(ok, out)
        local written = assert(tonumber(wout), wout)
        local dir2 = h.tmpdir()
        finally(function() h.rmrf(dir2) end)
        ok, out = h.run("bin/stoat restore " .. h.shell_quote(dir2 .. "/db") .. " "
                        .. h.shell_quote(bak))
        assert(ok, out)
        local copy = assert(stoat.open(dir2 .. "/db"))
        local last = tonumber(copy:get("last"))
        assert.is_true(last >= 100 and last <= written,
                       ("backup taken mid-write: last %d of %d"):format(last, written))
        for i = 1, last do
            assert.are.equal(("v"):rep(i % 2000), copy:get("k" .. i))
        end
        assert.is_nil(copy:get("k" .. (last + 1)))
        assert.are.equal(last + 1, copy:count())
        copy:close()
    end)
end)
