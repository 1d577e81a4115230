-- stoat.txn: transactions as closures.
--
-- db:update(fn) and db:view(fn) begin a transaction, call fn(txn) under
-- pcall, then commit (update) and always end it: after fn returns, the txn
-- object is dead and its iterators are closed (LuaJIT has no <close>, so
-- the closure is the scope). A conflict at commit runs fn again with a new
-- transaction, up to `retries` times. Both return fn's own return values
-- (all of them, nils included), or nil, err. fn failing by raising, or by
-- returning nil, err (err not nil: the Lua convention, as in
-- `return txn:set(k, v)`), discards the transaction; an error value
-- raised by fn is returned as it is (a table stays a table).
--
-- The txn object: get, get_meta, set, delete, read_version here; pairs in
-- stoat/iter.lua. Each method checks that the transaction is alive.
--
-- Coroutines: fn may yield; each transaction is its own object and nothing
-- here is global but the out-parameters of stoat.base, which are read
-- right after the call that filled them. Lifetimes: see stoat.handle.

local ffi = require "ffi"
local base = require "stoat.base"
local handle = require "stoat.handle"

local C = base.C
local ffi_string = ffi.string
local fail, errstr, raise = base.fail, base.errstr, base.raise
local check_string, options_checker = base.check_string, base.options_checker
local check_integer = base.check_integer
local ptr_out, len_out, txn_out = base.ptr_out, base.len_out, base.txn_out
local u64_out, u8_out = base.u64_out, base.u8_out
local type, getmetatable, setmetatable, select = type, getmetatable, setmetatable, select
local pcall, tonumber = pcall, tonumber
local ceil = math.ceil

local M = {}

local Txn = {}
Txn.__index = Txn
M.Txn = Txn

-- The live C transaction of self, or raises (level: see base.raise).
local function live(self, level)
    if getmetatable(self) ~= Txn then
        raise(level + 1, "expected a transaction as self (use txn:method(), not txn.method())")
    end
    if self._node.dead then
        raise(level + 1, "transaction is closed (used after its closure returned)")
    end
    return self._ptr
end

local check_set_options = options_checker({ ttl = "number", meta = "number" })

-- TTL in milliseconds (from seconds, rounded up) and user-meta byte of a
-- set's options table. Shared with stoat.batch.
function M.set_options(opts, what, level)
    check_set_options(opts, what, level + 1)
    local ttl, meta = opts.ttl or 0, opts.meta or 0
    if not (ttl >= 0 and ttl <= 2 ^ 40) then -- also refuses NaN
        raise(level + 1, "%s: option 'ttl' must be a number of seconds in 0..2^40", what)
    end
    check_integer(meta, what .. ": option 'meta'", 0, 255, level + 1)
    return ceil(ttl * 1000), meta
end
local set_options = M.set_options

-- Begins a transaction on database object db; flags: 0 or read-only.
function M.begin(db, flags)
    if db._node.dead then
        raise(1, "database is closed")
    end
    local rc = C.stoat_txn_begin(db._ptr, flags, txn_out)
    if rc ~= 0 then
        return fail(rc)
    end
    local node = handle.new(db._node, txn_out[0], C.stoat_txn_discard)
    return setmetatable({ _ptr = node.addr, _gc = handle.attach(node), _node = node, _db = db },
                        Txn)
end

-- Ends a transaction: closes its iterators, discards it (after its commit,
-- or instead of one). Idempotent.
function M.finish(txn)
    handle.close_now(txn._gc, txn._node)
end
local finish = M.finish

-- Returns value | nil (absent, deleted or expired) | nil, err.
function Txn:get(key)
    local ptr = live(self, 1)
    check_string(key, "txn:get: key", 1)
    local rc = C.stoat_txn_get(ptr, key, #key, ptr_out, len_out)
    if rc == 0 then
        return ffi_string(ptr_out[0], len_out[0])
    elseif rc == C.STOAT_ENOTFOUND then
        return nil
    end
    return fail(rc)
end

-- Returns value, user-meta byte, expiry (unix seconds, ms fraction; 0 = never) and
-- version | nil | nil, err.
function Txn:get_meta(key)
    local ptr = live(self, 1)
    check_string(key, "txn:get_meta: key", 1)
    local rc = C.stoat_txn_get_meta(ptr, key, #key, ptr_out, len_out, u64_out, u64_out + 1,
                                    u8_out)
    if rc == 0 then
        return ffi_string(ptr_out[0], len_out[0]), u8_out[0], tonumber(u64_out[1]) / 1000,
               tonumber(u64_out[0])
    elseif rc == C.STOAT_ENOTFOUND then
        return nil
    end
    return fail(rc)
end

-- Buffers key = value; opts: { ttl = seconds, meta = 0..255 }. Returns
-- true | nil, err ("too big: ..." once the transaction is over its limit).
function Txn:set(key, value, opts)
    local ptr = live(self, 1)
    check_string(key, "txn:set: key", 1)
    check_string(value, "txn:set: value", 1)
    local rc
    if opts == nil then
        rc = C.stoat_txn_set(ptr, key, #key, value, #value)
    else
        local ttl, meta = set_options(opts, "txn:set", 1)
        rc = C.stoat_txn_set_ex(ptr, key, #key, value, #value, ttl, meta)
    end
    if rc ~= 0 then
        return fail(rc)
    end
    return true
end

function Txn:delete(key)
    local ptr = live(self, 1)
    check_string(key, "txn:delete: key", 1)
    local rc = C.stoat_txn_delete(ptr, key, #key)
    if rc ~= 0 then
        return fail(rc)
    end
    return true
end

-- The version (commit timestamp) this transaction reads at.
function Txn:read_version()
    return tonumber(C.stoat_txn_read_version(live(self, 1)))
end

require("stoat.iter").install(Txn, live)

-- Ends txn after fn returned (ok, ...) from pcall, committing it first
-- when it is read-write (flags 0). Returns fn's results, or nil, err, or
-- on a conflict while tries remain runs fn again (a tail call: the stack
-- does not grow).
local function conclude(db, fn, flags, tries, txn, ok, ...)
    if not ok then
        finish(txn)
        local err = ...
        if err == nil then
            err = "error: the closure raised nil"
        end
        return nil, err
    end
    if txn._node.dead then
        return nil, "closed: the database was closed during the transaction"
    end
    if (...) == nil and select(2, ...) ~= nil then
        -- fn returned nil, err: a failure by Lua convention, not committed.
        finish(txn)
        return ...
    end
    if flags == 0 then
        handle.close_kids(txn._node) -- C commits only without open iterators
        local rc = C.stoat_txn_commit(txn._ptr)
        if rc ~= 0 then
            local err = errstr(rc)
            finish(txn)
            if rc == C.STOAT_ECONFLICT and tries > 0 then
                return M.run(db, fn, flags, tries - 1)
            end
            return nil, err
        end
    end
    finish(txn)
    return ...
end

-- Runs fn(txn) in a new transaction (flags 0: read-write, committed).
function M.run(db, fn, flags, tries)
    local txn, err = M.begin(db, flags)
    if txn == nil then
        return nil, err
    end
    return conclude(db, fn, flags, tries, txn, pcall(fn, txn))
end

local check_update_options = options_checker({ retries = "number" })

-- db:update(fn, {retries = 10}) and db:view(fn); level as in base.raise.
function M.update(db, fn, opts, level)
    if type(fn) ~= "function" then
        raise(level + 1, "db:update: expected a function (got %s)", type(fn))
    end
    check_update_options(opts, "db:update", level + 1)
    local retries = opts and opts.retries or 10
    check_integer(retries, "db:update: option 'retries'", 0, 1e9, level + 1)
    return M.run(db, fn, 0, retries)
end

function M.view(db, fn, level)
    if type(fn) ~= "function" then
        raise(level + 1, "db:view: expected a function (got %s)", type(fn))
    end
    return M.run(db, fn, C.STOAT_TXN_READ_ONLY, 0)
end

return M
