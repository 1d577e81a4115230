-- spec/support/nginx.lua: a real nginx (Debian's nginx + libnginx-mod-http-lua)
-- for the OpenResty specs, on 127.0.0.1 under a temporary prefix.
--
--   local nginx = require "support.nginx"
--   local srv = nginx.start{ workers = 1 }     -- raises when it cannot start
--   local status, body, headers = srv:request("GET", "/noop")
--   srv:reload(); srv:stop()
--
-- The prefix gets conf/nginx.conf (examples/openresty/nginx.conf with its
-- @WORDS@ filled in and the test locations of spec/support/ngx_test.lua
-- added), lua/ (a copy of the module, the example's app.lua and
-- ngx_test.lua: the worker user must read them, and a checkout under a
-- private home might not be readable), lib/libstoat.so and db/ (owned by
-- nobody when the specs run as root, since nginx then runs its workers as
-- nobody). HTTP goes through curl. available() says whether nginx and the
-- module are installed.

local h = require "helpers"

local M = {}

M.MODULES = "/usr/lib/nginx/modules"

local EXTRA = [[
        location = /t/put { content_by_lua_block { require("ngx_test").put() } }
        location = /t/get { content_by_lua_block { require("ngx_test").get() } }
        location = /t/durable { content_by_lua_block { require("ngx_test").durable() } }
        location = /t/tick { content_by_lua_block { require("ngx_test").tick() } }
        location = /t/fill { content_by_lua_block { require("ngx_test").fill() } }
        location = /t/scan { content_by_lua_block { require("ngx_test").scan() } }
        location = /t/count { content_by_lua_block { require("ngx_test").count() } }
        location = /t/missing { content_by_lua_block { require("ngx_test").missing() } }
        location = /t/live { content_by_lua_block { require("ngx_test").live() } }
        location = /t/compat { content_by_lua_block { require("ngx_test").compat() } }
        location = /t/pid { content_by_lua_block { ngx.say(ngx.worker.pid()) } }
]]

-- Whether nginx with the Lua module can run here, and why not.
function M.available()
    local f = io.open(M.MODULES .. "/ngx_http_lua_module.so", "rb")
    if not f then
        return false, "libnginx-mod-http-lua is not installed (make deps)"
    end
    f:close()
    local ok = h.run("command -v nginx && command -v curl")
    if not ok then
        return false, "nginx or curl is not installed (make deps)"
    end
    return true
end

-- A free TCP port on 127.0.0.1 (asked of the kernel through luasocket when
-- it is there, else a random high port).
local function free_port()
    local ok, socket = pcall(require, "socket")
    if ok then
        local s = socket.bind("127.0.0.1", 0)
        if s then
            local _, port = s:getsockname()
            s:close()
            return tonumber(port)
        end
    end
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000)
    return math.random(20000, 40000)
end

local function write_file(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
end

local function read_file(path)
    local f = io.open(path, "rb")
    if not f then
        return nil
    end
    local s = f:read("*a")
    f:close()
    return s
end

local Server = {}
Server.__index = Server

-- The nginx binary, by its absolute path (a binary upgrade re-executes
-- argv[0] without searching PATH).
local function nginx_binary()
    local f = io.popen("command -v nginx")
    local path = f:read("*l")
    f:close()
    return path or "/usr/sbin/nginx"
end

-- The nginx command line for this prefix, with args.
function Server:cmd(args)
    return ("%s -p %s -c conf/nginx.conf %s"):format(nginx_binary(), h.shell_quote(self.prefix),
                                                    args or "")
end

-- The master's pid (from the pid file), or nil.
function Server:master_pid(file)
    local s = read_file(self.prefix .. "/logs/" .. (file or "nginx.pid"))
    return s and tonumber(s:match("%d+"))
end

-- The pids of this master's worker processes.
function Server:worker_pids(master)
    master = master or self:master_pid()
    local _, out = h.run("ps -o pid= --ppid " .. tostring(master))
    local pids = {}
    for pid in out:gmatch("%d+") do
        pids[#pids + 1] = tonumber(pid)
    end
    return pids
end

-- status (number, 0 when no response), body, headers (lower-case names)
-- of one HTTP request; opts: body, timeout (seconds, default 10).
function Server:request(method, path, opts)
    opts = opts or {}
    local hdr, bodyfile = os.tmpname(), nil
    local data = ""
    if opts.body then
        bodyfile = os.tmpname()
        write_file(bodyfile, opts.body)
        data = "--data-binary @" .. h.shell_quote(bodyfile) .. " "
    end
    local f = assert(io.popen(("curl -s -o - -D %s -X %s --max-time %s %s%s 2>/dev/null"):format(
        hdr, method, tostring(opts.timeout or 10), data, h.shell_quote(self.url .. path))))
    local out = f:read("*a")
    f:close()
    if bodyfile then
        os.remove(bodyfile)
    end
    return self:parse(hdr, out)
end

function Server.parse(_, hdr, out)
    local text = read_file(hdr) or ""
    os.remove(hdr)
    local status = tonumber(text:match("^HTTP/%S+ (%d+)")) or 0
    local headers = {}
    for name, value in text:gmatch("\n([^:\r\n]+): ([^\r\n]*)") do
        headers[name:lower()] = value
    end
    return status, out, headers
end

-- The body of a GET that must answer 200 (asserts).
function Server:get_ok(path)
    local status, body = self:request("GET", path)
    assert(status == 200, ("GET %s: %d %s"):format(path, status, body))
    return body
end

-- Waits until nginx answers /noop (up to seconds, default 10).
function Server:wait_ready(seconds)
    for _ = 1, math.floor((seconds or 10) / 0.05) do
        local ok = h.run(("curl -fs --max-time 1 %s/noop"):format(self.url))
        if ok then
            return true
        end
        h.sleep(0.05)
    end
    error("nginx did not answer on " .. self.url .. ":\n" .. (self:log() or ""))
end

function Server:log()
    return read_file(self.prefix .. "/logs/error.log") or ""
end

-- Sends a signal to the master (HUP: reload, QUIT: graceful stop, USR2:
-- binary upgrade) through kill.
function Server:signal(sig, pid)
    assert(h.run(("kill -%s %d"):format(sig, pid or self:master_pid())))
end

-- nginx -s reload, then waits until every worker of the master is a new
-- one (the old ones have exited) or seconds pass.
function Server:reload()
    local old = {}
    for _, pid in ipairs(self:worker_pids()) do old[pid] = true end
    local ok, out = h.run(self:cmd("-s reload"))
    assert(ok, out)
    return old
end

-- Whether any of the pids in set (pid -> true) still runs.
function M.any_alive(set)
    for pid in pairs(set) do
        if h.run("kill -0 " .. pid) then
            return true
        end
    end
    return false
end

-- Stops nginx (graceful, then kill) and removes the prefix.
function Server:stop()
    if self.stopped then
        return
    end
    self.stopped = true
    local pids = {}
    for _, file in ipairs({ "nginx.pid", "nginx.pid.oldbin" }) do
        local p = self:master_pid(file)
        if p then pids[p] = true end
    end
    local workers = {}
    for pid in pairs(pids) do
        for _, w in ipairs(self:worker_pids(pid)) do workers[w] = true end
    end
    h.run(self:cmd("-s quit"))
    for _ = 1, 100 do
        if not M.any_alive(pids) then break end
        h.sleep(0.05)
    end
    for pid in pairs(pids) do
        h.run("kill -9 " .. pid .. " 2>/dev/null")
    end
    for pid in pairs(workers) do -- workers of a killed master, if any
        h.run("kill -9 " .. pid .. " 2>/dev/null")
    end
    if not os.getenv("STOAT_KEEP_NGINX") then
        h.rmrf(self.dir)
    end
end

-- Starts nginx: opts.workers (default 1), opts.thread_pool (false: no
-- thread_pool directive), opts.init and opts.init_worker (Lua for
-- init_by_lua and init_worker_by_lua instead of the example's),
-- opts.install (the module installed by `make install`, as from a rock,
-- with no libstoat.so on lua_package_cpath).
-- Returns a Server (raises with the error log when it cannot start).
function M.start(opts)
    opts = opts or {}
    local dir = h.tmpdir()
    local prefix = dir .. "/nginx"
    local root = h.root()
    local build = os.getenv("BUILD") or "build"
    for _, sub in ipairs({ "conf", "logs", "lua", "lib", "db" }) do
        assert(h.run("mkdir -p " .. h.shell_quote(prefix .. "/" .. sub)))
    end
    local copy = { root .. "/lua/stoat.lua", root .. "/lua/stoat",
                   root .. "/examples/openresty/app.lua", root .. "/spec/support/ngx_test.lua",
                   root .. "/spec/support/slow_thread.lua" }
    for i, path in ipairs(copy) do copy[i] = h.shell_quote(path) end
    if opts.install then
        -- as a rock tree: `make install` writes stoat/libpath.lua, and
        -- lua_package_cpath (LIB) points at an empty directory
        copy = { copy[3], copy[4], copy[5] }
        local ok, out = h.run(("make --no-print-directory -s -C %s install BUILD=%s LUADIR=%s "
                               .. "STOAT_LIBDIR=%s"):format(h.shell_quote(root), build,
                               h.shell_quote(prefix .. "/lua"), h.shell_quote(prefix .. "/clib")))
        assert(ok, out)
        assert(h.run(("cp %s %s/lua/"):format(table.concat(copy, " "), prefix)))
    else
        assert(h.run(("cp -r %s %s/lua/ && rm -f %s/lua/stoat/libpath.lua && "
                      .. "cp %s/%s/libstoat.so %s/lib/")
                     :format(table.concat(copy, " "), prefix, prefix, root, build, prefix)))
    end
    local user = ""
    if h.run("test \"$(id -u)\" = 0") then
        user = "user nobody nogroup;"
        assert(h.run(("chmod 755 %s && chown -R nobody:nogroup %s/db")
                     :format(h.shell_quote(dir), h.shell_quote(prefix))))
    end
    local port = opts.port or free_port()
    local conf = assert(read_file(root .. "/examples/openresty/nginx.conf"))
    local words = { MODULES = M.MODULES, LUA = prefix .. "/lua", LIB = prefix .. "/lib",
                    DB = prefix .. "/db", PORT = tostring(port),
                    WORKERS = tostring(opts.workers or 1),
                    USER = user, EXTRA = EXTRA, LISTEN_OPTS = "reuseport" }
    conf = conf:gsub("@([%u_]+)@", function(w) return words[w] end) -- others stay
    if opts.thread_pool == false then
        conf = conf:gsub("\nthread_pool [^\n]*", "\n")
    end
    if opts.init_worker then
        conf = conf:gsub("init_worker_by_lua_block {.-\n    }", function()
            return "init_worker_by_lua_block { "
                   .. opts.init_worker:gsub("@([%u_]+)@", function(w) return words[w] end) .. " }"
        end)
    end
    if opts.init then
        conf = conf:gsub("init_by_lua_block {.-\n    }", function()
            return "init_by_lua_block { " .. opts.init .. " }"
        end)
    end
    write_file(prefix .. "/conf/nginx.conf", conf)
    local self = setmetatable({ dir = dir, prefix = prefix, port = port,
                                url = "http://127.0.0.1:" .. port, db = prefix .. "/db" }, Server)
    local ok, out = h.run(self:cmd())
    if not ok then
        h.rmrf(dir)
        error("nginx did not start: " .. out)
    end
    self:wait_ready()
    return self
end

-- Runs a request in the background (curl); returns the file that holds
-- "<status> <body>" once it has ended (see bg_result).
function Server:request_bg(path, timeout)
    local out = os.tmpname()
    os.remove(out)
    assert(h.run(("(curl -s -o %s.body -w '%%{http_code}' --max-time %s %s > %s.code; "
                  .. "mv %s.code %s) >/dev/null 2>&1 &")
                 :format(out, tostring(timeout or 10), h.shell_quote(self.url .. path), out, out,
                         out)))
    return out
end

-- Whether the background request of file out has ended.
function M.bg_done(out)
    return read_file(out) ~= nil
end

-- status, body of the background request of file out, waiting for it.
function M.bg_result(out, seconds)
    for _ = 1, math.floor((seconds or 20) / 0.05) do
        if M.bg_done(out) then break end
        h.sleep(0.05)
    end
    local code = assert(read_file(out), "the background request did not end")
    local body = read_file(out .. ".body") or ""
    os.remove(out)
    os.remove(out .. ".body")
    return tonumber(code) or 0, body
end

-- Starts `luajit spec/support/http_load.lua` in the background: see there.
-- Returns the path of its output file; wait with M.wait_load.
function M.start_load(srv, tag, seconds, path)
    local out = srv.dir .. "/load-" .. tag .. ".txt"
    local cmd = ("luajit spec/support/http_load.lua %s %s %s %s > %s 2>&1 &"):format(
        h.shell_quote(srv.url), h.shell_quote(path or "/t/put"), h.shell_quote(tag),
        tostring(seconds), h.shell_quote(out))
    assert(h.run(cmd))
    return out
end

-- Waits for a load's output file to end with its "done" line; returns
-- { acked = {keys}, failed = {lines}, dropped = n }.
function M.wait_load(out, seconds)
    local text
    for _ = 1, math.floor((seconds or 60) / 0.1) do
        text = read_file(out) or ""
        if text:find("\ndone\n$") or text:find("^done\n$") then
            break
        end
        h.sleep(0.1)
    end
    assert(text and (text:find("\ndone\n$") or text:find("^done\n$")),
           "the load did not finish: " .. tostring(text):sub(-500))
    local r = { acked = {}, failed = {}, dropped = 0 }
    for line in text:gmatch("[^\n]+") do
        local word, rest = line:match("^(%S+) ?(.*)$")
        if word == "ok" then
            r.acked[#r.acked + 1] = rest
        elseif word == "fail" then
            r.failed[#r.failed + 1] = rest
        elseif word == "dropped" then
            r.dropped = r.dropped + 1
        end
    end
    return r
end

return M
