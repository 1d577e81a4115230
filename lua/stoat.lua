-- stoat: the LuaJIT face of the stoat embedded key-value database.
--
--   local stoat = require "stoat"
--   local db = assert(stoat.open("/var/lib/app/db", { sync = "commit" }))
--   assert(db:update(function(txn) assert(txn:set("k", "v")) end))
--   local v, err = db:get("k")
--   for k, v in db:pairs{ prefix = "user:" } do ... end
--   db:close()
--
-- This file owns the database object; transactions live in stoat/txn.lua,
-- iterators in stoat/iter.lua, batches in stoat/batch.lua, bulk loads in
-- stoat/loader.lua, the one write
-- body in stoat/write.lua, codecs in stoat/codec.lua, handle lifetimes in
-- stoat/handle.lua, the C declarations in stoat/cdef.lua. lua/README.md is
-- the API reference. Keys are Lua strings, binary-safe; values too,
-- unless the database has a codec. Failures return nil and
-- "<word>: <detail>" (words: conflict, corruption, io, closed, too big,
-- busy, read only, no space, forked, invalid, out of memory, not
-- supported, exists, not a number, bad key, and not found from open); the
-- conditional writes answer nil, "exists" (add) or nil, "not found"
-- (replace, expire); misuse raises; a missing key is a plain nil.
--
-- A database object may be used by any number of coroutines of its Lua
-- state; each db:update/view runs its own transaction. Open the database
-- after fork (in OpenResty: init_worker_by_lua, not init_by_lua).

if not jit then
    error("stoat needs LuaJIT (it uses the LuaJIT FFI); this is " .. _VERSION, 0)
end

local ffi = require "ffi"
local base = require "stoat.base"
local handle = require "stoat.handle"
local options = require "stoat.options"
local txn = require "stoat.txn"
local batch = require "stoat.batch"
local loader = require "stoat.loader"
local iter = require "stoat.iter"
local write = require "stoat.write"
local codec_mod = require "stoat.codec"
local seal = require "stoat.seal"

local C = base.C
local ffi_string = ffi.string
local fail, ok, raise, check_string = base.fail, base.ok, base.raise, base.check_string
local check_bytes, check_into = base.check_bytes, base.check_into
local mem_out, len_out, iter_out = base.mem_out, base.len_out, base.iter_out
local u64_out = base.u64_out
local CLOSED = base.CLOSED
local store, DB_KIND = write.store, write.DB
local run = txn.run
local getmetatable, setmetatable, tonumber, ipairs, pairs = getmetatable, setmetatable, tonumber,
                                                            ipairs, pairs
local type, tostring, collectgarbage = type, tostring, collectgarbage

local stoat = {
    version = base.version,
    MAX_KEY_SIZE = base.defines.STOAT_MAX_KEY_SIZE,
    MAX_VALUE_SIZE = base.defines.STOAT_MAX_VALUE_SIZE,
    MAX_TTL = base.defines.STOAT_MAX_TTL_MS / 1000,
    now = base.now,
}

local DB = {}
DB.__index = DB

-- The live C database of self, nil when it is closed, or raises on a
-- self that is not a database (level: see base.raise).
local function live(self, level)
    if getmetatable(self) ~= DB then
        raise(level + 1, "expected a database as self (use db:method(), not db.method())")
    end
    if self._node.dead then
        return nil
    end
    return self._ptr
end

-- Opens (creating by default) the database in directory dir. opts: every
-- field of stoat_options by name (see stoat/options.lua), and codec (see
-- stoat/codec.lua). db | nil, err.
function stoat.open(dir, opts)
    check_string(dir, "open: dir", 1)
    if dir:find("\0", 1, true) then
        raise(1, "open: dir must not contain a zero byte")
    end
    local codec
    if type(opts) == "table" and opts.codec ~= nil then
        codec = codec_mod.resolve(opts.codec, 1)
        local rest = {}
        for k, v in pairs(opts) do
            if k ~= "codec" then rest[k] = v end
        end
        opts = rest
    end
    local o, keep = options.build(opts, 1)
    -- _key_check (below): not the key, what tells it from others
    -- (stoat/seal.lua), so that stoat.backup seals a backup only under the
    -- key the database was opened with, which the caller gives again.
    local key = type(opts) == "table" and opts.encryption_key or nil
    local key_check
    if key ~= nil then
        local cok, check = pcall(seal.key_check, key)
        if not cok then
            return nil, tostring(check)
        end
        key_check = check
    end
    local rc = C.stoat_open(dir, o, base.db_out)
    options.keep_alive(keep)    -- the option strings outlive the call
    if rc ~= 0 then
        return fail(rc)
    end
    local node = handle.new(nil, base.db_out[0], C.stoat_close)
    -- _encrypted: opened with a key (an encrypted database opens only so).
    return setmetatable({ _ptr = node.addr, _gc = handle.attach(node), _node = node, dir = dir,
                          _codec = codec, _encrypted = key ~= nil, _key_check = key_check }, DB)
end

-- Changes the master key of the closed, encrypted database in dir from
-- old_key to new_key (strings of exactly 32 bytes): its data keys are
-- sealed again, no data file is rewritten; after a crash either key opens
-- it. true | nil, err ("bad key: ..." for a wrong old key or a database
-- that is not encrypted, "busy: ..." while a process has it open).
function stoat.rekey(dir, old_key, new_key)
    check_string(dir, "rekey: dir", 1)
    if dir:find("\0", 1, true) then
        raise(1, "rekey: dir must not contain a zero byte")
    end
    options.check_key(old_key, "rekey: old_key", 1)
    options.check_key(new_key, "rekey: new_key", 1)
    local rc = C.stoat_rekey(dir, old_key, new_key)
    return ok(rc)
end

-- The numbers of batches of node's with uncommitted writes and of its
-- unfinished bulk loads holding entries.
local function pending_batches(node)
    local n, loads = 0, 0
    for kid in pairs(node.kids) do
        if kid.pending then
            if kid.loader then
                loads = loads + 1
            else
                n = n + 1
            end
        end
    end
    return n, loads
end

-- Closes the database, after closing what is still open on it (iterators,
-- transactions: their closures then fail with "closed: ..."). Refuses, with
-- nil, "busy: ..." and the database left open, while a batch that can
-- still be committed holds uncommitted writes: commit or close it first.
-- true | nil, err (the sticky background error, if there was one; the
-- database is closed all the same). Idempotent.
function DB:close()
    if getmetatable(self) ~= DB then
        raise(1, "expected a database as self (use db:close(), not db.close())")
    end
    local node = self._node
    if node.dead then
        return true
    end
    if node.live > 0 then
        local n, loads = pending_batches(node)
        if n + loads > 0 then
            collectgarbage() -- batches nobody can reach any more are not in the way
            n, loads = pending_batches(node)
        end
        if n > 0 then
            return nil, ("busy: %d batch%s with uncommitted writes (commit or close %s first)")
                        :format(n, n == 1 and "" or "es", n == 1 and "it" or "them")
        elseif loads > 0 then
            return nil, ("busy: %d bulk load%s not finished (finish or abort %s first)")
                        :format(loads, loads == 1 and "" or "s", loads == 1 and "it" or "them")
        end
    end
    return ok(handle.close_now(self._gc, node))
end

-- Runs fn(txn) in a read-write transaction, committed when fn returns;
-- opts: { retries = 10 } (conflicts). See stoat/txn.lua for the contract.
function DB:update(fn, opts)
    local retries = txn.update_args(fn, opts, 1)
    if live(self, 1) == nil then
        return nil, CLOSED
    end
    return run(self, fn, 0, retries)
end

-- Runs fn(txn) in a read-only transaction; opts: { at = version } reads
-- the database as it was after that commit (as far as compaction kept it).
function DB:view(fn, opts)
    local at = txn.view_args(fn, opts, 1)
    if live(self, 1) == nil then
        return nil, CLOSED
    end
    return run(self, fn, C.STOAT_TXN_READ_ONLY, 0, at)
end

-- The latest value of key (a string or a string.buffer) | nil | nil, err.
-- With buf (a string.buffer; no codec), the value goes into buf (emptied
-- first) instead of a new string, and buf is returned.
function DB:get(key, buf)
    local ptr = live(self, 1)
    local k, klen = check_bytes(key, "db:get: key", 1)
    if buf ~= nil then
        check_into(buf, self._codec, "db:get", 1)
    end
    if ptr == nil then
        return nil, CLOSED
    end
    local rc = C.stoat_get(ptr, k, klen, mem_out, len_out)
    if rc == 0 then
        local p = mem_out[0]
        if buf ~= nil then
            buf:reset()
            buf:putcdata(p, len_out[0])
            C.stoat_free(p)
            return buf
        end
        local value = ffi_string(p, len_out[0])
        C.stoat_free(p)
        local codec = self._codec
        if codec ~= nil then
            return codec.decode(value)
        end
        return value
    elseif rc == C.STOAT_ENOTFOUND then
        return nil
    end
    return fail(rc)
end

-- Sets key = value now (value nil: deletes key); opts: { ttl = seconds,
-- meta = 0..255 }. The same limits with and without options. true | nil, err.
function DB:set(key, value, opts)
    local ptr = live(self, 1)
    if ptr == nil then
        return nil, CLOSED
    end
    return ok(store(DB_KIND, ptr, key, value, opts, self._codec, "db:set", 1))
end

function DB:delete(key)
    local ptr = live(self, 1)
    if ptr == nil then
        return nil, CLOSED
    end
    return ok(store(DB_KIND, ptr, key, nil, nil, nil, "db:delete", 1))
end

-- The bodies of the one-operation transactions below: module-level
-- functions, so that a loop of db:incr creates no closure.
local function incr_body(t, key, by, opts) return t:incr(key, by, opts) end
local function add_body(t, key, value, opts) return t:add(key, value, opts) end
local function replace_body(t, key, value, opts) return t:replace(key, value, opts) end
local function get_meta_body(t, key) return t:get_meta(key) end
local function ttl_body(t, key) return t:ttl(key) end
local function expire_body(t, key, ttl) return t:expire(key, ttl) end

-- Whether database self is open, checking key (raises on misuse, blaming
-- the caller of the method that calls it).
local function open_with_key(self, what, key)
    local ptr = live(self, 2)
    check_string(key, what .. ": key", 2)
    return ptr ~= nil
end

local READ_ONLY = C.STOAT_TXN_READ_ONLY

-- Atomic increment (a transaction, retried on conflict): see txn:incr.
function DB:incr(key, by, opts)
    if not open_with_key(self, "db:incr", key) then return nil, CLOSED end
    by = txn.incr_args(by, opts, "db:incr", 1)
    return run(self, incr_body, 0, 10, nil, key, by, opts)
end

-- Sets key only when absent: true | nil, "exists" | nil, err.
function DB:add(key, value, opts)
    if not open_with_key(self, "db:add", key) then return nil, CLOSED end
    return run(self, add_body, 0, 10, nil, key, value, opts)
end

-- Sets key only when present: true | nil, "not found" | nil, err.
function DB:replace(key, value, opts)
    if not open_with_key(self, "db:replace", key) then return nil, CLOSED end
    return run(self, replace_body, 0, 10, nil, key, value, opts)
end

-- value, user-meta byte, expiry (unix seconds, 0 = never), version | nil.
function DB:get_meta(key)
    if not open_with_key(self, "db:get_meta", key) then return nil, CLOSED end
    return run(self, get_meta_body, READ_ONLY, 0, nil, key)
end

-- Seconds key has left to live (0: no expiry) | nil (absent) | nil, err.
function DB:ttl(key)
    if not open_with_key(self, "db:ttl", key) then return nil, CLOSED end
    return run(self, ttl_body, READ_ONLY, 0, nil, key)
end

-- A new time to live for key (0: never expires): true | nil, "not found".
function DB:expire(key, ttl)
    if not open_with_key(self, "db:expire", key) then return nil, CLOSED end
    return run(self, expire_body, 0, 10, nil, key, ttl)
end

-- An iterator over one read-only snapshot of the database (the options of
-- txn:pairs, see stoat/iter.lua), released when the loop ends or the
-- iterator is collected. A closed database raises "closed: ...".
function DB:pairs(opts)
    if live(self, 1) == nil then
        base.raise_failure(nil, CLOSED)
    end
    local it = iter.open(self, nil, nil, opts, "db:pairs", 1) -- not a tail call: levels
    return it
end

local check_count_options = base.options_checker({ prefix = "string", start = "string",
                                                   after = "string", stop = "string" })
local count_opts = ffi.new("stoat_iter_options")

-- The number of live keys (within the bounds of pairs: prefix, start,
-- after, stop), counted in one snapshot: n | nil, err.
function DB:count(opts)
    local ptr = live(self, 1)
    check_count_options(opts, "db:count", 1)
    if ptr == nil then
        return nil, CLOSED
    end
    local o = count_opts
    ffi.fill(o, ffi.sizeof(o))
    o.keys_only = 1
    local lower = opts and (opts.after and opts.after .. "\0" or opts.start)
    if opts and opts.after and opts.start then
        raise(1, "db:count: options 'start' and 'after' exclude each other")
    end
    if opts and opts.prefix then o.prefix, o.prefix_len = opts.prefix, #opts.prefix end
    if lower then o.lower, o.lower_len = lower, #lower end
    if opts and opts.stop then o.upper, o.upper_len = opts.stop, #opts.stop end
    local rc = C.stoat_iter_open(ptr, o, iter_out)
    if rc ~= 0 then
        return fail(rc)
    end
    local it, n = iter_out[0], 0
    C.stoat_iter_seek_first(it)
    while C.stoat_iter_valid(it) ~= 0 do
        n = n + 1
        C.stoat_iter_next(it)
    end
    rc = C.stoat_iter_status(it)
    local err = rc ~= 0 and base.errstr(rc) or nil
    C.stoat_iter_close(it)
    if err then
        return nil, err
    end
    return n
end

function DB:batch()
    if live(self, 1) == nil then
        return nil, CLOSED
    end
    return batch.new(self)
end

-- A bulk loader (stoat/loader.lua): entries in strictly increasing key
-- order, installed at once by ld:finish(). ld | nil, err.
function DB:loader()
    if live(self, 1) == nil then
        return nil, CLOSED
    end
    return loader.new(self)
end

-- Bulk loads every key, value [, opts] of an iterator (a generic-for
-- triple, keys strictly increasing) as one commit: n, version | nil, err.
function DB:bulk_load(f, s, c)
    if live(self, 1) == nil then
        return nil, CLOSED
    end
    return loader.bulk_load(self, f, s, c)
end

-- Calls an argument-less C function of the database: true | nil, err.
-- Tail-called by the methods: its caller is theirs (hence level 1).
local function simple(self, fn)
    local ptr = live(self, 1)
    if ptr == nil then
        return nil, CLOSED
    end
    return ok(fn(ptr))
end

function DB:sync() return simple(self, C.stoat_sync) end
function DB:flush() return simple(self, C.stoat_flush) end
function DB:flatten() return simple(self, C.stoat_flatten) end
function DB:drop_all() return simple(self, C.stoat_drop_all) end
-- A new data key now for the files written from now on (encrypted
-- databases; else nil, "not supported: ...").
function DB:rotate_key() return simple(self, C.stoat_rotate_key) end

-- Value-log GC: loops by itself until no file has more than `ratio` garbage
-- (default 0.5); returns the bytes reclaimed, or nil, err.
function DB:gc(ratio)
    local ptr = live(self, 1)
    if ratio == nil then ratio = 0.5 end
    if type(ratio) ~= "number" or not (ratio > 0 and ratio < 1) then
        raise(1, "db:gc: ratio must be a number in (0, 1) (got %s)", tostring(ratio))
    end
    if ptr == nil then
        return nil, CLOSED
    end
    local rc = C.stoat_gc(ptr, ratio, u64_out)
    if rc ~= 0 then
        return fail(rc)
    end
    return tonumber(u64_out[0])
end

-- Deletes every key starting with prefix, which must not be empty (use
-- drop_all for everything). true | nil, err.
function DB:drop_prefix(prefix)
    local ptr = live(self, 1)
    check_string(prefix, "db:drop_prefix: prefix", 1)
    if prefix == "" then
        raise(1, "db:drop_prefix: prefix must not be empty (use db:drop_all() to delete "
              .. "everything)")
    end
    if ptr == nil then
        return nil, CLOSED
    end
    return ok(C.stoat_drop_prefix(ptr, prefix, #prefix))
end

local STATS_FIELDS = {
    "memtables", "memtable_bytes", "block_cache_bytes", "block_cache_capacity",
    "block_cache_hits", "block_cache_misses", "open_files", "last_version", "flushes",
    "compactions", "stall_micros", "vlog_files", "vlog_bytes", "vlog_garbage_bytes",
    "txn_commits", "txn_conflicts", "table_entries", "table_deletions", "memtable_entries",
    "shared_cache_bytes", "shared_cache_hits", "shared_cache_misses",
}

-- A snapshot of the statistics as a table: the stoat_stats fields by name
-- (numbers), and levels = { {tables =, bytes =}, ... } from L0 down.
function DB:stats()
    local ptr = live(self, 1)
    if ptr == nil then
        return nil, CLOSED
    end
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
