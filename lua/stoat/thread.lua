-- stoat.thread: what an nginx worker thread runs for stoat.ngx.
--
--   ngx.run_worker_thread(pool, "stoat.thread", "sync", addr)
--
-- ngx.run_worker_thread (lua-nginx-module >= 0.10.21, a `thread_pool`
-- directive required) runs require(module)[func](...) in a separate
-- LuaJIT state on a thread of the pool, with its arguments and results
-- copied: no cdata crosses, so the database is passed as its address, a
-- number (x86-64 user addresses fit a double exactly). The C database
-- handle is thread-safe (core/include/stoat.h), and the thread belongs to
-- the worker process that opened it, so no `forked` check trips.
--
-- The caller (stoat.ngx) guarantees the handle outlives the call: it
-- counts calls in flight and never closes a database with one running.
-- This file loads only the library and its declarations (stoat.base),
-- once per thread state; it keeps no other state.

local ffi = require "ffi"
local base = require "stoat.base"

local C = base.C
local ffi_cast, tonumber = ffi.cast, tonumber

local M = {}

-- The stoat_db * at address addr (a number from stoat.ngx).
local function db_at(addr)
    return ffi_cast("stoat_db *", addr)
end

-- Makes everything committed so far durable (stoat_sync: an fsync of the
-- WAL). Returns true, or false and "<word>: <detail>" (a worker thread
-- passes its results back copied; nil would end the list).
function M.sync(addr)
    local rc = C.stoat_sync(db_at(tonumber(addr)))
    if rc ~= 0 then
        return false, base.errstr(rc)
    end
    return true
end

return M
