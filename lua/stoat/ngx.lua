-- stoat.ngx: stoat as the state of OpenResty handlers.
--
--   init_by_lua_block        { require "stoat.ngx" }          -- loads, opens nothing
--   init_worker_by_lua_block { require("stoat.ngx").open("/var/lib/app/db") }
--   exit_worker_by_lua_block { require("stoat.ngx").close() }
--   log_by_lua_block         { require("stoat.ngx").release() }
--
--   local sngx = require "stoat.ngx"
--   local cache = sngx.dict("cache")      -- was: local cache = ngx.shared.cache
--   cache:set("k", "v", 60); local v, flags = cache:get("k")
--   for k, v in sngx.pairs{ prefix = "user:", yield_every = 100 } do ... end
--   assert(sngx.update(function(txn) ... end, { durable = true }))
--
-- What it owns:
--
--   * Open per worker (open, db, close). A handle belongs to the process
--     that opened it, so the database is opened in init_worker_by_lua
--     (open refuses the init phase, the master, with a message saying so)
--     and closed in exit_worker_by_lua. While another process holds the
--     directory (`busy`: today the previous workers during a reload or a
--     binary upgrade), open retries on a timer with backoff (slower after
--     `retry_for` seconds) and logs one line when it starts waiting and one
--     when it has opened; meanwhile db() waits in the phases that can
--     yield (for `wait` seconds), so requests that reach a new worker early
--     are served late, not failed.
--   * Durable writes that do not block the event loop (sync, and the
--     durable option of update and dict): the database is written with
--     sync = "none" and then made durable by stoat_sync (an fsync of the
--     WAL) run on a thread of nginx's thread pool (`thread_pool` directive,
--     name "stoat" by default) through ngx.run_worker_thread and
--     stoat/thread.lua. Without a thread pool (or outside nginx, or in a
--     phase that cannot yield) it is a plain call, which blocks.
--   * Request scope: pairs, view and update register what they open in
--     ngx.ctx; release() (from log_by_lua, which runs for every request,
--     aborted or failed ones too) and on_abort() close what is still open,
--     so a request ended by its client or by an error releases its
--     snapshot at once, not at the next garbage collection.
--   * dict(name): an object with the methods and return conventions of
--     ngx.shared.DICT over the key prefix name .. ":" (stoat/shdict.lua).
--
-- State: one registry of databases per worker (Lua state); nothing global
-- in C. Everything here runs on the worker's event loop except
-- stoat.thread's sync, which runs on a pool thread against the same
-- thread-safe C handle.

local ffi = require "ffi"
local stoat = require "stoat"
local base = require "stoat.base"
local txn_mod = require "stoat.txn"

local C = base.C
local ffi_cast = ffi.cast
local raise = base.raise
local run, finish = txn_mod.run, txn_mod.finish
local type, tostring, tonumber, pcall, setmetatable, rawget, pairs =
      type, tostring, tonumber, pcall, setmetatable, rawget, pairs
local format = string.format
local _G = _G

pcall(ffi.cdef, "unsigned int geteuid(void);")

local M = {}

local READ_ONLY = C.STOAT_TXN_READ_ONLY
local CLOSED = base.CLOSED

-- The ngx API table when running inside nginx (looked up at call time:
-- the module may be loaded before, or outside, nginx).
local function ngx_api()
    return rawget(_G, "ngx")
end

-- Phases in which ngx.sleep and ngx.run_worker_thread may yield.
local YIELDABLE = { rewrite = true, access = true, content = true, timer = true }
-- Phases that belong to a request (ngx.ctx is the request's).
local REQUEST = { set = true, rewrite = true, access = true, content = true,
                  header_filter = true, body_filter = true, log = true, balancer = true }

local function phase()
    local ngx = ngx_api()
    return ngx ~= nil and ngx.get_phase ~= nil and ngx.get_phase() or nil
end

local function log(level, ...)
    local ngx = ngx_api()
    if ngx ~= nil and ngx.log ~= nil then
        ngx.log(ngx[level], ...)
    end
end

local function worker_pid()
    local ngx = ngx_api()
    if ngx ~= nil and ngx.worker ~= nil then
        return ngx.worker.pid()
    end
    return 0
end

-- Seconds since some fixed point, for deadlines (ngx.now is cached per
-- event-loop iteration, which is precise enough for them).
local function now()
    local ngx = ngx_api()
    if ngx ~= nil and ngx.now ~= nil then
        return ngx.now()
    end
    return os.time()
end

----------------------------------------------------------------------
-- Open per worker
----------------------------------------------------------------------

-- Registry of this worker's databases, by directory: entries
-- { dir, opts, db, state = "opening" | "open" | "failed" | "closed",
--   err, tries, started, deadline, delay, wait, pool, inflight }.
local entries = {}
local default_entry
local entry_of_db = setmetatable({}, { __mode = "k" })

M.DEFAULTS = { retry_for = 60, wait = 10, thread_pool = "stoat" }

local check_open_how = base.options_checker({ retry_for = "number", wait = "number",
                                              thread_pool = "string", thread_module = "string",
                                              default = "boolean" })

-- A hint for the log line of a failed open.
local function hint(err)
    if err:find("ermission denied", 1, true) or err:find("EACCES", 1, true) then
        return format(" (the worker user, uid %d, must be able to write the directory: set "
                      .. "nginx's `user` directive or chown the directory to that user)",
                      tonumber(ffi.C.geteuid()))
    elseif err:find("^forked") then
        return " (a handle opened before fork: open in init_worker_by_lua)"
    end
    return ""
end

local try_open

local function retry(premature, e)
    if premature or e.state ~= "opening" then
        return
    end
    try_open(e)
end

-- One attempt to open e; on `busy` schedules the next one (in nginx):
-- with backoff up to 0.5 s, after retry_for seconds every 2 s (logged
-- once), until it opens or the worker exits.
function try_open(e)
    local db, err = stoat.open(e.dir, e.opts)
    e.tries = e.tries + 1
    if db ~= nil then
        e.db, e.state, e.err = db, "open", nil
        entry_of_db[db] = e
        if e.tries > 1 then
            log("NOTICE", "stoat: worker ", worker_pid(), " opened ", e.dir, " after ", e.tries,
                " tries (", format("%.3f", now() - e.started), " s)")
        else
            log("NOTICE", "stoat: worker ", worker_pid(), " opened ", e.dir)
        end
        return db
    end
    e.err = err
    local ngx = ngx_api()
    if err:find("^busy") and ngx ~= nil and ngx.timer ~= nil and not ngx.worker.exiting() then
        if e.tries == 1 then
            log("WARN", "stoat: ", e.dir, " is held by another process (", err, "); worker ",
                worker_pid(), " retries (requests wait up to ", e.wait, " s for it)")
        end
        if now() >= e.deadline and not e.late then
            e.late = true
            log("ERR", "stoat: worker ", worker_pid(), " still cannot open ", e.dir, " after ",
                e.retry_for, " s: ", err, "; retrying every 2 s")
        end
        local ok, terr = ngx.timer.at(e.late and 2 or e.delay, retry, e)
        e.delay = e.delay * 2 > 0.5 and 0.5 or e.delay * 2
        if ok then
            return nil, err
        end
        err = "busy: cannot schedule a retry (" .. tostring(terr) .. "): " .. err
        e.err = err
    end
    e.state = "failed"
    log("ERR", "stoat: worker ", worker_pid(), " cannot open ", e.dir, ": ", err, hint(err))
    return nil, err
end

-- Opens the database in dir for this worker (call it in
-- init_worker_by_lua). opts: stoat.open's options (multi_process is
-- true by default, as nginx runs several workers). how: retry_for
-- (seconds of quick retries on `busy`, default 60; then every 2 s, with an
-- error logged), wait (seconds db() waits in
-- a request for an open in progress, default 10), thread_pool (the
-- nginx thread pool for durable syncs, default "stoat"), thread_module
-- (what the pool thread runs: require(it).sync(addr), default
-- "stoat.thread"; for wrappers and tests), default (make it
-- the database of db(), dict() and friends without a dir; true for the
-- first one opened). Returns db, or nil, err (the open goes on in the
-- background while err is `busy`: db() then waits for it). Refuses the
-- init phase (the master process) with a message.
function M.open(dir, opts, how)
    base.check_string(dir, "stoat.ngx.open: dir", 1)
    check_open_how(how, "stoat.ngx.open", 1)
    if phase() == "init" then
        raise(1, "stoat.ngx.open: open the database in init_worker_by_lua, not init_by_lua (a "
              .. "handle opened in the master process is refused in the workers: forked)")
    end
    local e = entries[dir]
    if e ~= nil and (e.state == "open" or e.state == "opening") then
        if e.db ~= nil then
            return e.db
        end
        return nil, e.err
    end
    how = how or {}
    -- Every worker of nginx opens the directory: multi_process (the
    -- library's default too) unless the caller says otherwise.
    local o = { multi_process = true }
    for k, v in pairs(opts or {}) do
        o[k] = v
    end
    e = { dir = dir, opts = o, state = "opening", tries = 0, started = now(), delay = 0.01,
          retry_for = how.retry_for or M.DEFAULTS.retry_for, wait = how.wait or M.DEFAULTS.wait,
          pool = how.thread_pool or M.DEFAULTS.thread_pool,
          thread_module = how.thread_module or "stoat.thread", inflight = 0 }
    e.deadline = e.started + e.retry_for
    entries[dir] = e
    if how.default or (how.default == nil and default_entry == nil) then
        default_entry = e
    end
    return try_open(e)
end

local function entry(dir)
    if dir == nil then
        return default_entry
    end
    return entries[dir]
end

-- Waits (yielding, where the phase allows) for e's open in progress.
local function wait_open(e)
    local ngx = ngx_api()
    if e.state ~= "opening" or not YIELDABLE[phase()] then
        return
    end
    local deadline = now() + e.wait
    local pause = 0.002
    repeat
        ngx.sleep(pause)
        pause = pause * 2 > 0.05 and 0.05 or pause * 2
    until e.state ~= "opening" or now() >= deadline
end

-- The open database of dir (default: the default one): db | nil, err.
-- While its open is retrying, waits for it in the phases that can yield.
function M.db(dir)
    local e = entry(dir)
    if e == nil then
        return nil, "closed: no database opened with stoat.ngx.open"
            .. (dir and " for " .. dir or "")
    end
    if e.db ~= nil then
        return e.db
    end
    wait_open(e)
    if e.db ~= nil then
        return e.db
    end
    if e.state == "opening" then
        return nil, "busy: " .. e.dir .. " is not open yet in this worker (retrying): "
                    .. tostring(e.err)
    end
    return nil, e.err or CLOSED
end

-- Closes this worker's databases (or the one of dir): for
-- exit_worker_by_lua. A database with a durable sync still running on a
-- pool thread is left to the process exit (closing it would free the
-- handle under the thread). Returns true, or nil, err of the last failure.
function M.close(dir)
    local rok, rerr = true, nil
    for d, e in pairs(entries) do
        if dir == nil or d == dir then
            local db = e.db
            e.state, e.db = "closed", nil
            if db ~= nil then
                if e.inflight > 0 then
                    log("WARN", "stoat: worker ", worker_pid(), " leaves ", d, " open: ",
                        e.inflight, " sync(s) still running on pool threads")
                else
                    local ok, err = db:close()
                    if not ok then
                        rok, rerr = nil, err
                        log("ERR", "stoat: closing ", d, ": ", err)
                    end
                end
            end
            entries[d] = nil
            if default_entry == e then
                default_entry = nil
            end
        end
    end
    return rok, rerr
end

-- What this worker knows of the database of dir (default: the default
-- one), for status pages and logs: { dir, state = "opening" | "open" |
-- "failed", tries, err, inflight (syncs running on pool threads) }, or nil.
function M.status(dir)
    local e = entry(dir)
    if e == nil then
        return nil
    end
    return { dir = e.dir, state = e.state, tries = e.tries, err = e.err, inflight = e.inflight }
end

----------------------------------------------------------------------
-- Durable writes
----------------------------------------------------------------------

local pools_missing = {} -- pool name -> true once nginx said it has none

-- Counters, for the specs and for anyone curious: fsyncs run on a pool
-- thread, syncs run inline, syncs that waited for another request's
-- fsync instead of running their own, handles released by release().
M.counters = { thread_syncs = 0, inline_syncs = 0, shared_syncs = 0, released = 0 }

-- Per database, the fsyncs of this worker (group sync): started and done
-- count them; running is true while one runs; waiters wait on sema for
-- the next one to end; err is the failure of the one numbered err_at.
local groups = setmetatable({}, { __mode = "k" })

-- One fsync of db on a pool thread: true | nil, err | false, why (nginx
-- refused the call: no such pool, most likely).
local function thread_sync(ngx, e, db, pool)
    local addr = tonumber(ffi_cast("uintptr_t", db._ptr))
    if e then e.inflight = e.inflight + 1 end
    local ok, synced, err = ngx.run_worker_thread(pool, e and e.thread_module or "stoat.thread",
                                                  "sync", addr)
    if e then e.inflight = e.inflight - 1 end
    if not ok then
        return false, synced
    end
    M.counters.thread_syncs = M.counters.thread_syncs + 1
    if synced then
        return true
    end
    return nil, err
end

-- The group sync of db on pool threads: a request needs an fsync that
-- starts after its write; while one runs, the requests that come meanwhile
-- wait for the next, which one of them runs for all. true | nil, err |
-- false, why (see thread_sync).
local function group_sync(ngx, e, db, pool)
    local g = groups[db]
    if g == nil then
        g = { started = 0, done = 0, running = false, waiters = 0, err_at = 0, err = nil,
              sema = require("ngx.semaphore").new() }
        groups[db] = g
    end
    local need = g.started + 1
    local led = false
    while g.done < need do
        if not g.running then
            g.running, g.started, led = true, g.started + 1, true
            local ok, err = thread_sync(ngx, e, db, pool)
            g.running = false
            if ok == nil then
                g.err_at, g.err = g.started, err
            end
            g.done = g.started
            if g.waiters > 0 then
                g.sema:post(g.waiters)
            end
            if ok == false then
                return false, err
            end
        else
            g.waiters = g.waiters + 1
            local ok, err = g.sema:wait(60)
            g.waiters = g.waiters - 1
            if not ok then
                return nil, "busy: waiting for a sync: " .. tostring(err)
            end
        end
    end
    if not led then
        M.counters.shared_syncs = M.counters.shared_syncs + 1
    end
    if g.err_at >= need then
        return nil, g.err
    end
    return true
end

-- Makes everything committed so far in db (a stoat.ngx database or any
-- database object; default: the default one) durable, on a thread of the
-- nginx thread pool where there is one and the phase can yield (requests
-- that sync while an fsync runs share the next one), inline otherwise.
-- true | nil, err.
function M.sync(db)
    db = db or M.db()
    if db == nil then
        return nil, CLOSED
    end
    local e = entry_of_db[db]
    local pool = e and e.pool or M.DEFAULTS.thread_pool
    local ngx = ngx_api()
    if ngx ~= nil and ngx.run_worker_thread ~= nil and not pools_missing[pool]
            and YIELDABLE[phase()] and not db:is_closed() then
        local ok, err = group_sync(ngx, e, db, pool)
        if ok ~= false then
            return ok, err
        end
        -- nginx refused the call itself: say it once, then sync inline.
        pools_missing[pool] = true
        log("WARN", "stoat: no worker thread for durable syncs (", tostring(err),
            "): add `thread_pool ", pool, " threads=4;` to nginx.conf; syncing inline (blocks "
            .. "the event loop for each fsync)")
    end
    M.counters.inline_syncs = M.counters.inline_syncs + 1
    return db:sync()
end

----------------------------------------------------------------------
-- Request scope
----------------------------------------------------------------------

-- Registers obj (an iterator, kind "iter", or a transaction, "txn") with
-- the current request, so that release() closes it.
local function track(obj, kind)
    if not REQUEST[phase()] then
        return
    end
    local ctx = ngx_api().ctx
    local open = ctx.stoat_open
    if open == nil then
        open = {}
        ctx.stoat_open = open
    elseif #open >= 128 then
        -- a request running many transactions: forget the ended ones
        local live = {}
        for i = 1, #open, 2 do
            local o = open[i]
            if not (o.ended or o._ended or (o.node or o._node).dead) then
                live[#live + 1] = o
                live[#live + 1] = open[i + 1]
            end
        end
        open = live
        ctx.stoat_open = open
    end
    open[#open + 1] = obj
    open[#open + 1] = kind
end

-- Closes what pairs, view and update opened for this request and is
-- still open (an aborted or failed request's iterators and transactions),
-- releasing their snapshots now. Call it from log_by_lua (it runs for
-- every request); on_abort() calls it too. Returns the number closed.
function M.release()
    if not REQUEST[phase()] then
        return 0
    end
    local ctx = ngx_api().ctx
    local open = ctx.stoat_open
    if open == nil then
        return 0
    end
    ctx.stoat_open = nil
    local n = 0
    for i = 1, #open, 2 do
        local obj, kind = open[i], open[i + 1]
        if kind == "iter" then
            if not obj.ended and not obj.node.dead then
                obj:close()
                n = n + 1
            end
        elseif not obj._ended then
            finish(obj)
            n = n + 1
        end
    end
    M.counters.released = M.counters.released + n
    return n
end

-- Registers ngx.on_abort with a handler that releases this request's
-- handles and ends it with 499 (needs `lua_check_client_abort on`).
-- Returns ngx.on_abort's results.
function M.on_abort()
    local ngx = ngx_api()
    return ngx.on_abort(function()
        M.release()
        ngx.exit(499)
    end)
end

-- db given first or not: (db, x) or (x) with the default database.
local function db_and(a, b)
    if type(a) == "table" and a.update ~= nil and a.pairs ~= nil then
        return a, b
    end
    local db, err = M.db()
    if db == nil then
        return nil, err
    end
    return db, a
end

-- An iterator like db:pairs(opts) (db optional: the default database),
-- closed by release() if the request ends before the loop does. Raises
-- "closed: ..." or "busy: ..." when there is no database (as db:pairs).
function M.pairs(a, b)
    local db, opts = db_and(a, b)
    if db == nil then
        base.raise_failure(nil, opts)
    end
    local it = db:pairs(opts)
    track(it, "iter")
    return it
end

-- fn of view and update, run with its transaction tracked.
local function tracked(txn, fn)
    track(txn, "txn")
    return fn(txn)
end

-- db:view(fn) (db optional) with the transaction tracked.
function M.view(a, b)
    local db, fn = db_and(a, b)
    if db == nil then
        return nil, fn
    end
    if type(fn) ~= "function" then
        raise(1, "stoat.ngx.view: expected a function (got %s)", type(fn))
    end
    return run(db, tracked, READ_ONLY, 0, nil, fn)
end

-- Made durable by M.sync when durable; passes results through.
local function durable_results(db, durable, ok, ...)
    if durable and ok ~= nil then
        local synced, err = M.sync(db)
        if not synced then
            return nil, err
        end
    end
    return ok, ...
end

-- db:update(fn, opts) (db optional) with the transaction tracked;
-- opts: retries (as db:update), durable (sync after the commit, see sync).
function M.update(a, b, c)
    local db, fn, opts
    if type(a) == "table" and a.update ~= nil then
        db, fn, opts = a, b, c
    else
        local err
        db, err = M.db()
        if db == nil then
            return nil, err
        end
        fn, opts = a, b
    end
    if type(fn) ~= "function" then
        raise(1, "stoat.ngx.update: expected a function (got %s)", type(fn))
    end
    local retries, durable = 10, false
    if opts ~= nil then
        base.check_options(opts, { retries = "number", durable = "boolean" },
                           "stoat.ngx.update", 1)
        retries, durable = opts.retries or 10, opts.durable or false
    end
    return durable_results(db, durable, run(db, tracked, 0, retries, nil, fn))
end

-- An ngx.shared.DICT look-alike over a key prefix: see stoat/shdict.lua.
function M.dict(name, opts)
    return require("stoat.shdict").new(name, opts, 2)
end

return M
