-- stoat: the LuaJIT face of the stoat embedded key-value database.
--
--   local stoat = require "stoat"
--   local db = assert(stoat.open("/var/lib/app/db", { sync = "commit" }))
--   db:update(function(txn) txn:set("k", "v") end)
--   local v = db:view(function(txn) return txn:get("k") end)
--   for k, v in txn:pairs{ prefix = "user:" } do ... end   -- inside a closure
--   db:close()
--
-- This file owns the database object; transactions and iterators live in
-- stoat/txn.lua and stoat/iter.lua, batches in stoat/batch.lua, handle
-- lifetimes in stoat/handle.lua, the C declarations in stoat/cdef.lua.
-- Keys and values are Lua strings, binary-safe. Failures return nil and
-- "<word>: <detail>" (words: conflict, corruption, io, closed, too big,
-- busy, read only, no space, forked, invalid, out of memory, not
-- supported, exists, and not found from open); misuse raises; a missing
-- key is a plain nil.
--
-- A database object may be used by any number of coroutines of its Lua
-- state; each db:update/view runs its own transaction. Open the database
-- after fork (in OpenResty: init_worker_by_lua, not init_by_lua).

local ffi = require "ffi"
local base = require "stoat.base"
local handle = require "stoat.handle"
local options = require "stoat.options"
local txn = require "stoat.txn"
local batch = require "stoat.batch"

local C = base.C
local ffi_string = ffi.string
local fail, raise, check_string = base.fail, base.raise, base.check_string
local mem_out, len_out, txn_out = base.mem_out, base.len_out, base.txn_out
local u64_out = base.u64_out
local getmetatable, setmetatable, tonumber, ipairs = getmetatable, setmetatable, tonumber, ipairs

local stoat = {
    version = base.version,
    MAX_KEY_SIZE = base.defines.STOAT_MAX_KEY_SIZE,
    MAX_VALUE_SIZE = base.defines.STOAT_MAX_VALUE_SIZE,
}

local DB = {}
DB.__index = DB

-- The live C database of self, or raises (level: see base.raise).
local function live(self, level)
    if getmetatable(self) ~= DB then
        raise(level + 1, "expected a database as self (use db:method(), not db.method())")
    end
    if self._node.dead then
        raise(level + 1, "database is closed")
    end
    return self._ptr
end

-- Opens (creating by default) the database in directory dir. opts: every
-- field of stoat_options by name (see stoat/options.lua). db | nil, err.
function stoat.open(dir, opts)
    check_string(dir, "open: dir", 1)
    if dir:find("\0", 1, true) then
        raise(1, "open: dir must not contain a zero byte")
    end
    local o = options.build(opts, 1)
    local rc = C.stoat_open(dir, o, base.db_out)
    if rc ~= 0 then
        return fail(rc)
    end
    local node = handle.new(nil, base.db_out[0], C.stoat_close)
    return setmetatable({ _ptr = node.addr, _gc = handle.attach(node), _node = node, dir = dir },
                        DB)
end

-- Closes the database, after closing what is still open on it (iterators,
-- transactions, batches). true | nil, err (the sticky background error, if
-- there was one; the database is closed all the same). Idempotent.
function DB:close()
    if getmetatable(self) ~= DB then
        raise(1, "expected a database as self (use db:close(), not db.close())")
    end
    if self._node.dead then
        return true
    end
    local rc = handle.close_now(self._gc, self._node)
    if rc ~= 0 then
        return fail(rc)
    end
    return true
end

function DB:update(fn, opts)
    live(self, 1)
    return txn.update(self, fn, opts, 1)
end

function DB:view(fn)
    live(self, 1)
    return txn.view(self, fn, 1)
end

-- The latest value of key | nil | nil, err.
function DB:get(key)
    local ptr = live(self, 1)
    check_string(key, "db:get: key", 1)
    local rc = C.stoat_get(ptr, key, #key, mem_out, len_out)
    if rc == 0 then
        local p = mem_out[0]
        local value = ffi_string(p, len_out[0])
        C.stoat_free(p)
        return value
    elseif rc == C.STOAT_ENOTFOUND then
        return nil
    end
    return fail(rc)
end

-- A one-write transaction with a TTL or user-meta byte.
local function set_ex(ptr, key, value, ttl, meta)
    local rc = C.stoat_txn_begin(ptr, 0, txn_out)
    if rc ~= 0 then
        return fail(rc)
    end
    local t = txn_out[0]
    rc = C.stoat_txn_set_ex(t, key, #key, value, #value, ttl, meta)
    if rc == 0 then
        rc = C.stoat_txn_commit(t)
    end
    local ok, err = true, nil
    if rc ~= 0 then
        ok, err = fail(rc)
    end
    C.stoat_txn_discard(t)
    return ok, err
end

-- Sets key = value now; opts: { ttl = seconds, meta = 0..255 }. true | nil, err.
function DB:set(key, value, opts)
    local ptr = live(self, 1)
    check_string(key, "db:set: key", 1)
    check_string(value, "db:set: value", 1)
    if opts ~= nil then
        local ttl, meta = txn.set_options(opts, "db:set", 1)
        return set_ex(ptr, key, value, ttl, meta)
    end
    local rc = C.stoat_put(ptr, key, #key, value, #value)
    if rc ~= 0 then
        return fail(rc)
    end
    return true
end

function DB:delete(key)
    local ptr = live(self, 1)
    check_string(key, "db:delete: key", 1)
    local rc = C.stoat_delete(ptr, key, #key)
    if rc ~= 0 then
        return fail(rc)
    end
    return true
end

function DB:batch()
    live(self, 1)
    return batch.new(self)
end

-- Calls an argument-less C function of the database: true | nil, err.
local function simple(self, fn)
    local rc = fn(live(self, 2))
    if rc ~= 0 then
        return fail(rc)
    end
    return true
end

function DB:sync() return simple(self, C.stoat_sync) end
function DB:flush() return simple(self, C.stoat_flush) end
function DB:flatten() return simple(self, C.stoat_flatten) end

-- Value-log GC: loops by itself until no file has more than `ratio` garbage
-- (default 0.5); returns the bytes reclaimed, or nil, err.
function DB:gc(ratio)
    local ptr = live(self, 1)
    if ratio == nil then ratio = 0.5 end
    if type(ratio) ~= "number" or not (ratio > 0 and ratio < 1) then
        raise(1, "db:gc: ratio must be a number in (0, 1) (got %s)", tostring(ratio))
    end
    local rc = C.stoat_gc(ptr, ratio, u64_out)
    if rc ~= 0 then
        return fail(rc)
    end
    return tonumber(u64_out[0])
end
function DB:drop_all() return simple(self, C.stoat_drop_all) end

-- Deletes every key starting with prefix. true | nil, err.
function DB:drop_prefix(prefix)
    local ptr = live(self, 1)
    check_string(prefix, "db:drop_prefix: prefix", 1)
    local rc = C.stoat_drop_prefix(ptr, prefix, #prefix)
    if rc ~= 0 then
        return fail(rc)
    end
    return true
end

local STATS_FIELDS = {
    "memtables", "memtable_bytes", "block_cache_bytes", "block_cache_capacity",
    "block_cache_hits", "block_cache_misses", "open_files", "last_version", "flushes",
    "compactions", "stall_micros", "vlog_files", "vlog_bytes", "vlog_garbage_bytes",
    "txn_commits", "txn_conflicts", "table_entries", "table_deletions", "memtable_entries",
}

-- A snapshot of the statistics as a table: the stoat_stats fields by name
-- (numbers), and levels = { {tables =, bytes =}, ... } from L0 down.
function DB:stats()
    local ptr = live(self, 1)
    local s = ffi.new("stoat_stats")
    local rc = C.stoat_stats_get(ptr, s)
    if rc ~= 0 then
        return fail(rc)
    end
    local t = { levels = {} }
    for i = 0, s.num_levels - 1 do
        t.levels[i + 1] = { tables = tonumber(s.level_tables[i]),
                            bytes = tonumber(s.level_bytes[i]) }
    end
    for _, name in ipairs(STATS_FIELDS) do
        t[name] = tonumber(s[name])
    end
    return t
end

-- True once the database is closed (by close() or by closing its process).
function DB:is_closed()
    return self._node.dead
end

require("stoat.migrate").install(DB) -- db:each_batch, db:migrate

return stoat
