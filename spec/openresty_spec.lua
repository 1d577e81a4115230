-- The OpenResty integration (issue 12): a real nginx (Debian's nginx +
-- libnginx-mod-http-lua) on 127.0.0.1 under a temporary prefix, running
-- examples/openresty/ and the test locations of spec/support/ngx_test.lua,
-- checked with real HTTP requests.
--
-- The checks with several workers (and the reload, upgrade and kill
-- checks with several workers) need several processes on one database
-- (issue 11): they run with 1 worker today, and with 2 and 4 once
-- helpers.multiprocess() says two processes can open one directory;
-- until then they are pending with "needs multi-process (issue 11)".

local h = require "helpers"
local nginx = require "support.nginx"
local cjson = require "cjson"

local available, why_not = nginx.available()
local MULTIPROCESS = h.multiprocess()
local NEEDS_MP = "needs multi-process (issue 11)"

-- The keys acked by a load that the database does not have.
local function missing(srv, keys)
    local status, body = srv:request("POST", "/t/missing", { body = table.concat(keys, "\n") })
    assert.are.equal(200, status, body)
    return tonumber(body:match("^(%d+)")), body
end

-- Waits (up to 10 s) until /t/live's field is at least n; returns /t/live.
local function wait_for(srv, field, n)
    local live
    for _ = 1, 200 do
        live = cjson.decode(srv:get_ok("/t/live"))
        if live[field] >= n then
            return live
        end
        h.sleep(0.05)
    end
    error(("/t/live: %s stayed below %d"):format(field, n))
end

-- Asserts a load result: no HTTP failure, at most max_dropped requests
-- without an answer, some acked, none of them lost.
local function check_load(srv, r, max_dropped)
    assert.are.same({}, r.failed)
    assert.is_true(r.dropped <= (max_dropped or 0), "dropped " .. r.dropped)
    assert.is_true(#r.acked > 10, "only " .. #r.acked .. " requests acked")
    local n, body = missing(srv, r.acked)
    assert.are.equal(0, n, body)
end

describe("openresty", function()
    if not available then
        pending("nginx is not available: " .. why_not)
        return
    end

    describe("with one worker", function()
        local srv
        setup(function() srv = nginx.start{ workers = 1 } end)
        teardown(function() if srv then srv:stop() end end)

        it("runs the example's counter", function()
            assert.are.equal(200, (srv:request("POST", "/counter/hits")))
            local _, body = srv:request("POST", "/counter/hits")
            assert.are.equal("2\n", body)
            assert.are.equal("2\n", srv:get_ok("/counter/hits"))
            assert.are.equal("0\n", srv:get_ok("/counter/none"))
        end)

        it("runs the example's session store with a ttl", function()
            local status, id = srv:request("POST", "/session?ttl=2", { body = "user=ada" })
            assert.are.equal(201, status)
            id = id:match("%x+")
            assert.are.equal("user=ada", srv:get_ok("/session/" .. id .. "?ttl=0.3"))
            h.sleep(0.5) -- the read slid the ttl down to 0.3 s
            assert.are.equal(404, (srv:request("GET", "/session/" .. id)))
            local _, other = srv:request("POST", "/session", { body = "x" })
            id = other:match("%x+")
            assert.are.equal(204, (srv:request("DELETE", "/session/" .. id)))
            assert.are.equal(404, (srv:request("GET", "/session/" .. id)))
        end)

        it("runs the example's document store and pages its listing", function()
            for i = 1, 5 do
                local status = srv:request("PUT", ("/doc/%03d"):format(i),
                                           { body = cjson.encode({ n = i, tags = { "a" } }) })
                assert.are.equal(204, status)
            end
            assert.are.equal(400, (srv:request("PUT", "/doc/bad", { body = "not json" })))
            assert.are.same({ n = 3, tags = { "a" } }, cjson.decode(srv:get_ok("/doc/003")))
            local page = cjson.decode(srv:get_ok("/docs?limit=2"))
            assert.are.same({ "001", "002" }, { page.items[1].id, page.items[2].id })
            assert.are.equal("002", page.next)
            page = cjson.decode(srv:get_ok("/docs?limit=2&after=004"))
            assert.are.equal(1, #page.items)
            assert.are.equal("005", page.items[1].id)
            assert.are.equal(cjson.null, page.next)
            assert.are.equal(204, (srv:request("DELETE", "/doc/005")))
            assert.are.equal(404, (srv:request("GET", "/doc/005")))
        end)

        it("gives the dict ngx.shared.DICT's results, call for call", function()
            local r = cjson.decode(srv:get_ok("/t/compat"))
            for i, op in ipairs(r.ops) do
                assert.are.equal(r.shdict[i], r.stoat[i], "op " .. i .. ": " .. op)
            end
        end)

        it("makes durable writes on the thread pool", function()
            local status, body, headers = srv:request("GET", "/t/durable?k=d1")
            assert.are.equal(200, status, body)
            assert.matches("^[1-9]%d* thread, 0 inline", headers["x-sync"])
            assert.are.equal("1\n", srv:get_ok("/t/get?k=d1"))
        end)

        it("keeps one snapshot across the yields of pairs{yield_every}, serving other "
           .. "requests meanwhile", function()
            assert.are.equal("ok\n", srv:get_ok("/t/fill?prefix=scan:&n=2000"))
            -- 20 yields of 0.1 s: 2 s
            local scanning = cjson.decode(srv:get_ok("/t/live")).scanning
            local scan = srv:request_bg("/t/scan?prefix=scan:&every=100&pause=0.1")
            wait_for(srv, "scanning", scanning + 1)
            for _ = 1, 3 do
                srv:get_ok("/t/tick")
            end
            srv:get_ok("/t/put?k=scan:zzz")
            assert.is_false(nginx.bg_done(scan), "the scan ended before the other requests")
            local status, body = nginx.bg_result(scan)
            assert.are.equal(200, status)
            local n, ticks = body:match("^(%d+) (%d+)")
            assert.are.equal("2000", n)      -- the snapshot taken at pairs()
            assert.is_true(tonumber(ticks) >= 3, body) -- served while the scan yielded
            assert.are.equal("2001\n", srv:get_ok("/t/count?prefix=scan:"))
        end)

        it("releases the snapshot of a request aborted by its client at once", function()
            srv:get_ok("/t/fill?prefix=abort:&n=2000")
            local before = cjson.decode(srv:get_ok("/t/live"))
            assert.are.equal(0, before.live)
            -- 20 yields of 0.2 s: 4 s, cut by the client after 0.4 s
            local status = srv:request("GET", "/t/scan?prefix=abort:&every=100&pause=0.2",
                                       { timeout = 0.4 })
            assert.are.equal(0, status)
            local live
            for _ = 1, 40 do
                live = cjson.decode(srv:get_ok("/t/live"))
                if live.live == 0 then break end
                h.sleep(0.05)
            end
            assert.are.equal(0, live.live)
            assert.are.equal(before.released + 1, live.released) -- closed, not collected
        end)
    end)

    it("answers other requests while a durable write's sync runs", function()
        local srv = nginx.start{ workers = 1, init_worker = [[
            require("stoat.ngx").open("@DB@", { sync = "none" },
                                      { thread_module = "slow_thread" }) ]] }
        finally(function() srv:stop() end)
        local durable = srv:request_bg("/t/durable?k=slow") -- its sync sleeps 1.5 s first
        wait_for(srv, "inflight", 1)
        assert.are.equal("ok\n", srv:get_ok("/noop"))
        assert.matches("^%d+\n$", srv:get_ok("/t/tick")) -- Lua handlers run too
        local live = cjson.decode(srv:get_ok("/t/live"))
        assert.are.equal(1, live.inflight) -- the sync still runs
        assert.is_false(nginx.bg_done(durable), "the durable write did not wait for its sync")
        local status, body = nginx.bg_result(durable)
        assert.are.equal(200, status, body)
        assert.are.equal("1\n", srv:get_ok("/t/get?k=slow"))
        -- durable writes that come while an fsync runs share the next one
        local before = cjson.decode(srv:get_ok("/t/live"))
        local writes = {}
        for i = 1, 6 do
            writes[i] = srv:request_bg("/t/durable?k=group" .. i)
        end
        for i = 1, 6 do
            status, body = nginx.bg_result(writes[i])
            assert.are.equal(200, status, body)
        end
        local after = cjson.decode(srv:get_ok("/t/live"))
        assert.is_true(after.thread_syncs - before.thread_syncs <= 3,
                       (after.thread_syncs - before.thread_syncs) .. " fsyncs for 6 writes")
        assert.is_true(after.shared_syncs - before.shared_syncs >= 3)
    end)

    it("syncs inline, saying so once in the log, without a thread pool", function()
        local srv = nginx.start{ workers = 1, thread_pool = false }
        finally(function() srv:stop() end)
        srv:request("GET", "/t/durable?k=a")
        local status, body, headers = srv:request("GET", "/t/durable?k=b")
        assert.are.equal(200, status, body)
        assert.are.equal("0 thread, 2 inline", headers["x-sync"])
        local _, count = srv:log():gsub("no worker thread for durable syncs", "")
        assert.are.equal(1, count)
    end)

    it("runs from an installed tree with lua_package_path alone", function()
        local srv = nginx.start{ workers = 1, install = true }
        finally(function() srv:stop() end)
        assert.is_nil(io.open(srv.prefix .. "/lib/libstoat.so"))
        assert.are.equal("1\n", select(2, srv:request("POST", "/counter/c")))
        local status, body, headers = srv:request("GET", "/t/durable?k=x") -- a pool thread too
        assert.are.equal(200, status, body)
        assert.matches("^1 thread", headers["x-sync"])
    end)

    it("refuses to open the database in init_by_lua, saying where to open it", function()
        local ok, err = pcall(nginx.start, { init = [[require("stoat.ngx").open("/tmp/nowhere")]] })
        assert.is_false(ok)
        assert.matches("open the database in init_worker_by_lua", err)
    end)

    it("waits for a database held by another process and logs it", function()
        local stoat = require "stoat"
        -- this process holds the database exclusively when the worker
        -- starts: no request fails meanwhile, they wait; the worker opens
        -- it once this process lets it go
        local dir = h.scratch(finally)
        local path = dir .. "/db"
        local db = assert(stoat.open(path, { multi_process = false }))
        h.run(("chmod 755 %s; chown -R nobody:nogroup %s 2>/dev/null")
              :format(h.shell_quote(dir), h.shell_quote(path)))
        local srv = nginx.start{ workers = 1, init_worker = ([[
            require("stoat.ngx").open(%q, { sync = "none" }, { retry_for = 0.3 }) ]])
                                                            :format(path) }
        finally(function() srv:stop() end)
        local put = srv:request_bg("/t/put?k=waited")
        h.sleep(0.6) -- past retry_for: it goes on retrying, slower
        assert.is_false(nginx.bg_done(put))
        db:close()
        local status, body = nginx.bg_result(put)
        assert.are.equal(200, status, body)
        local log = srv:log()
        assert.matches("db is held by another process", log)
        assert.matches("still cannot open [^\n]*db after 0.3 s", log)
        assert.matches("opened [^\n]*db after %d+ tries", log)
    end)

    for _, workers in ipairs({ 1, 2, 4 }) do
        describe(("with %d worker%s"):format(workers, workers > 1 and "s" or ""), function()
            -- THE switch: see the header and helpers.multiprocess.
            local function check(name, fn)
                if workers > 1 and not MULTIPROCESS then
                    pending(NEEDS_MP .. ": " .. name)
                else
                    it(name, fn)
                end
            end

            check("shows a write acknowledged by one worker to the next request in any "
                  .. "worker", function()
                local srv = nginx.start{ workers = workers }
                finally(function() srv:stop() end)
                local writers, readers = {}, {}
                for i = 1, 100 do
                    local status, body, hd = srv:request("GET", "/t/put?k=rw" .. i .. "&v=" .. i)
                    assert.are.equal(200, status, body)
                    writers[hd["x-worker"]] = true
                    status, body, hd = srv:request("GET", "/t/get?k=rw" .. i)
                    assert.are.equal(200, status, body)
                    assert.are.equal(i .. "\n", body)
                    readers[hd["x-worker"]] = true
                end
                if workers > 1 then
                    assert.is_true(#h.sorted_keys(writers) > 1, "one worker took every write")
                    assert.is_true(#h.sorted_keys(readers) > 1, "one worker took every read")
                end
            end)

            check("loses nothing and fails no request across a reload loop under load",
                  function()
                local srv = nginx.start{ workers = workers }
                finally(function() srv:stop() end)
                local loads = { nginx.start_load(srv, "r1", 3), nginx.start_load(srv, "r2", 3) }
                for _ = 1, 4 do
                    h.sleep(0.6)
                    srv:reload()
                end
                local all = { acked = {}, failed = {}, dropped = 0 }
                for _, out in ipairs(loads) do
                    local r = nginx.wait_load(out)
                    for _, k in ipairs(r.acked) do all.acked[#all.acked + 1] = k end
                    for _, f in ipairs(r.failed) do all.failed[#all.failed + 1] = f end
                    all.dropped = all.dropped + r.dropped
                end
                check_load(srv, all, 0)
                assert.are.equal(200, (srv:request("GET", "/t/put?k=after")))
            end)

            check("loses nothing across a binary upgrade (USR2, then QUIT of the old master) "
                  .. "under load", function()
                local srv = nginx.start{ workers = workers }
                finally(function() srv:stop() end)
                local old_master = srv:master_pid()
                local load = nginx.start_load(srv, "u", 3)
                h.sleep(0.5)
                srv:signal("USR2", old_master)
                local new_master
                for _ = 1, 100 do
                    new_master = srv:master_pid()
                    if new_master ~= old_master and srv:master_pid("nginx.pid.oldbin") then
                        break
                    end
                    h.sleep(0.05)
                end
                assert.are_not.equal(old_master, new_master)
                h.sleep(0.5)
                srv:signal("QUIT", old_master)
                check_load(srv, nginx.wait_load(load), 0)
                -- a graceful QUIT: the old master goes once its workers
                -- finished, which a loaded machine can make take seconds
                local old_alive = true
                for _ = 1, 200 do
                    old_alive = h.run("kill -0 " .. old_master)
                    if not old_alive then break end
                    h.sleep(0.05)
                end
                assert.is_false(old_alive)
                assert.are.equal(200, (srv:request("GET", "/t/put?k=after")))
            end)

            check("loses nothing acknowledged when a worker is killed during writes", function()
                local srv = nginx.start{ workers = workers }
                finally(function() srv:stop() end)
                local loads = { nginx.start_load(srv, "k1", 2.5), nginx.start_load(srv, "k2", 2.5) }
                h.sleep(0.8)
                local victim = srv:worker_pids()[1]
                assert(h.run("kill -9 " .. victim))
                local all = { acked = {}, failed = {}, dropped = 0 }
                for _, out in ipairs(loads) do
                    local r = nginx.wait_load(out)
                    for _, k in ipairs(r.acked) do all.acked[#all.acked + 1] = k end
                    for _, f in ipairs(r.failed) do all.failed[#all.failed + 1] = f end
                    all.dropped = all.dropped + r.dropped
                end
                -- a request in flight in the killed worker has no answer
                check_load(srv, all, #loads)
                local pids = srv:worker_pids()
                assert.are.equal(workers, #pids)
                for _, pid in ipairs(pids) do
                    assert.are_not.equal(victim, pid)
                end
                assert.are.equal(200, (srv:request("GET", "/t/put?k=after")))
            end)
        end)
    end
end)
