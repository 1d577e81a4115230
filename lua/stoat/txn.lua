-- stoat.txn: transactions as closures.
--
-- db:update(fn) and db:view(fn) begin a transaction, call fn(txn) under
-- xpcall, then commit (update) and always end it: after fn returns, the
-- txn object is dead and its iterators are closed (LuaJIT has no <close>,
-- so the closure is the scope). A conflict at commit runs fn again with a
-- new transaction, up to `retries` times. The contract:
--
--   * success: fn's return values, or true when fn returned none;
--   * fn returned nil, err (err not nil: the Lua convention, as in
--     `return txn:set(k, v)`): discarded, returns nil, err;
--   * a write failed (txn:set, delete, incr, add, replace, expire got
--     nil, err from the database): the transaction is doomed; it is
--     discarded and returns nil, <that first error>, even when fn went on
--     and returned normally (later writes fail at once with that error);
--   * a database failure raised inside fn (an iterator's read error, the
--     database closed under a suspended closure): nil, err;
--   * anything else fn raises (a bug, a failed assert, misuse such as an
--     unknown option, error(...)) discards the transaction and is raised
--     again from db:update/db:view: the same value, and for a string the
--     same message followed by the traceback of where it was raised;
--   * commit failures (conflict after the last retry, io, ...): nil, err.
--
-- The txn object: get, get_meta, set, delete, incr, add, replace, ttl,
-- expire, pairs, read_version. Each method checks that the transaction is
-- alive. Conditional outcomes (add: nil, "exists"; replace and expire:
-- nil, "not found"; incr: nil, "not a number: ...") are answers, not
-- failures: they do not doom the transaction.
--
-- Coroutines: fn may yield; each transaction is its own object and nothing
-- here is global but the out-parameters of stoat.base, which are read
-- right after the call that filled them. Lifetimes: see stoat.handle.

local ffi = require "ffi"
local base = require "stoat.base"
local handle = require "stoat.handle"
local write = require "stoat.write"
local iter = require "stoat.iter"

local C = base.C
local ffi_string = ffi.string
local errstr, raise, raise_failure = base.errstr, base.raise, base.raise_failure
local check_string, options_checker = base.check_string, base.options_checker
local check_integer, check_bytes = base.check_integer, base.check_bytes
local check_into = base.check_into
local ptr_out, len_out, txn_out = base.ptr_out, base.len_out, base.txn_out
local u64_out, u8_out = base.u64_out, base.u8_out
local store, put, encoded, ttl_ms = write.store, write.put, write.encoded, write.ttl_ms
local TXN = write.TXN
local type, getmetatable, setmetatable, select = type, getmetatable, setmetatable, select
local xpcall, tonumber, tostring, error = xpcall, tonumber, tostring, error
local traceback = debug.traceback
local format = string.format

local M = {}

local Txn = {}
Txn.__index = Txn
M.Txn = Txn

-- The live C transaction of self, or raises (level: see base.raise):
-- misuse once its closure returned, else a failure "closed: ..." when its
-- database was closed under it.
local function live(self, level)
    if getmetatable(self) ~= Txn then
        raise(level + 1, "expected a transaction as self (use txn:method(), not txn.method())")
    end
    if self._node.dead then
        if self._ended or not self._db._node.dead then
            raise(level + 1, "transaction is closed (used after its closure returned)")
        end
        raise_failure(self, base.CLOSED_DURING)
    end
    return self._ptr
end

-- Begins a transaction on database object db; flags: 0 or read-only; at:
-- nil, or the version a read-only transaction reads at.
function M.begin(db, flags, at)
    local rc
    if at ~= nil then
        rc = C.stoat_txn_begin_at(db._ptr, at, txn_out)
    else
        rc = C.stoat_txn_begin(db._ptr, flags, txn_out)
    end
    if rc ~= 0 then
        return base.fail(rc)
    end
    local node = handle.new(db._node, txn_out[0], C.stoat_txn_discard)
    return setmetatable({ _ptr = node.addr, _gc = handle.attach(node), _node = node, _db = db,
                          _codec = db._codec, _err = false, _raised = false, _ended = false },
                        Txn)
end

-- Ends a transaction: closes its iterators, discards it (after its commit,
-- or instead of one). Idempotent.
function M.finish(txn)
    txn._ended = true
    handle.close_now(txn._gc, txn._node)
end
local finish = M.finish

-- The result of a write's return code rc: true, or nil, err after dooming
-- the transaction (its first failure is the one db:update returns).
local function wrote(self, rc)
    if rc == 0 then
        return true
    end
    local err = errstr(rc)
    if not self._err then
        self._err = err
    end
    return nil, err
end

-- The value of a read: decoded through the database's codec, if any.
local function decoded(self, raw)
    local codec = self._codec
    if codec ~= nil then
        return codec.decode(raw)
    end
    return raw
end

-- Returns the value of key (a string or a string.buffer) | nil (absent,
-- deleted or expired) | nil, err. With buf (a string.buffer; no codec),
-- the value goes into buf (emptied first) and buf is returned.
function Txn:get(key, buf)
    local ptr = live(self, 1)
    local k, klen = check_bytes(key, "txn:get: key", 1)
    if buf ~= nil then
        check_into(buf, self._codec, "txn:get", 1)
    end
    local rc = C.stoat_txn_get(ptr, k, klen, ptr_out, len_out)
    if rc == 0 then
        if buf ~= nil then
            buf:reset()
            buf:putcdata(ptr_out[0], len_out[0])
            return buf
        end
        return decoded(self, ffi_string(ptr_out[0], len_out[0]))
    elseif rc == C.STOAT_ENOTFOUND then
        return nil
    end
    return base.fail(rc)
end

-- The raw value, user-meta byte, expiry (unix ms, 0 = never) and version
-- of key | nil (absent) | false, rc (a failure).
local function raw_meta(ptr, key)
    local rc = C.stoat_txn_get_meta(ptr, key, #key, ptr_out, len_out, u64_out, u64_out + 1,
                                    u8_out)
    if rc == 0 then
        return ffi_string(ptr_out[0], len_out[0]), u8_out[0], tonumber(u64_out[1]),
               tonumber(u64_out[0])
    elseif rc == C.STOAT_ENOTFOUND then
        return nil
    end
    return false, rc
end

-- Returns value, user-meta byte, expiry (unix seconds with a millisecond
-- fraction, 0 = never) and version (0 for this transaction's own write)
-- | nil | nil, err.
function Txn:get_meta(key)
    local ptr = live(self, 1)
    check_string(key, "txn:get_meta: key", 1)
    local raw, meta, expires_ms, version = raw_meta(ptr, key)
    if not raw then
        if raw == false then
            return base.fail(meta)
        end
        return nil
    end
    return decoded(self, raw), meta, expires_ms / 1000, version
end

-- Buffers key = value (value nil: deletes key); opts: { ttl = seconds,
-- meta = 0..255 }. true | nil, err (and the transaction is doomed).
function Txn:set(key, value, opts)
    local ptr = live(self, 1)
    if self._err then
        return nil, self._err
    end
    return wrote(self, store(TXN, ptr, key, value, opts, self._codec, "txn:set", 1))
end

function Txn:delete(key)
    local ptr = live(self, 1)
    if self._err then
        return nil, self._err
    end
    return wrote(self, store(TXN, ptr, key, nil, nil, nil, "txn:delete", 1))
end

-- Checks a conditional write's key and a pre-existing failure: the live C
-- transaction, or nil, err.
local function writable(self, key, what, level)
    local ptr = live(self, level + 1)
    check_string(key, what .. ": key", level + 1)
    if self._err then
        return nil, self._err
    end
    return ptr
end

-- Sets key only when it is absent: true | nil, "exists" | nil, err.
function Txn:add(key, value, opts)
    local ptr, err = writable(self, key, "txn:add", 1)
    if ptr == nil then
        return nil, err
    end
    local rc = C.stoat_txn_get(ptr, key, #key, ptr_out, len_out)
    if rc == 0 then
        return nil, "exists"
    elseif rc ~= C.STOAT_ENOTFOUND then
        return wrote(self, rc)
    end
    return wrote(self, store(TXN, ptr, key, value, opts, self._codec, "txn:add", 1))
end

-- Sets key only when it is present: true | nil, "not found" | nil, err.
function Txn:replace(key, value, opts)
    local ptr, err = writable(self, key, "txn:replace", 1)
    if ptr == nil then
        return nil, err
    end
    local rc = C.stoat_txn_get(ptr, key, #key, ptr_out, len_out)
    if rc == C.STOAT_ENOTFOUND then
        return nil, "not found"
    elseif rc ~= 0 then
        return wrote(self, rc)
    end
    return wrote(self, store(TXN, ptr, key, value, opts, self._codec, "txn:replace", 1))
end

-- Milliseconds left until expires_ms (unix ms, not 0), at least 1.
local function ms_left(expires_ms)
    local left = expires_ms - tonumber(C.stoat_clock_ms())
    return left > 0 and left or 1
end

-- Seconds key has left to live (0: it does not expire) | nil (absent) |
-- nil, err.
function Txn:ttl(key)
    local ptr = live(self, 1)
    check_string(key, "txn:ttl: key", 1)
    local raw, rc, expires_ms = raw_meta(ptr, key)
    if not raw then
        if raw == false then
            return base.fail(rc)
        end
        return nil
    end
    if expires_ms == 0 then
        return 0
    end
    return ms_left(expires_ms) / 1000
end

-- Gives key a new time to live (seconds; 0: never expires), keeping its
-- value and user-meta byte: true | nil, "not found" | nil, err.
function Txn:expire(key, ttl)
    local ptr, err = writable(self, key, "txn:expire", 1)
    if ptr == nil then
        return nil, err
    end
    local ms = ttl_ms(ttl, "txn:expire", 1)
    local raw, meta = raw_meta(ptr, key)
    if not raw then
        if raw == false then
            return wrote(self, meta)
        end
        return nil, "not found"
    end
    return wrote(self, put(TXN, ptr, key, raw, ms, meta))
end

local check_incr_options = options_checker({ init = "number", ttl = "number" })

-- Checks incr's by (default 1) and options; returns by, or raises.
function M.incr_args(by, opts, what, level)
    if by == nil then
        by = 1
    elseif type(by) ~= "number" or by ~= by then
        raise(level + 1, "%s: by must be a number (got %s)", what, tostring(by))
    end
    check_incr_options(opts, what, level + 1)
    return by
end
local incr_args = M.incr_args

-- A number as the shortest decimal string that reads back as it.
local function number_string(n)
    local s = format("%.14g", n)
    if tonumber(s) ~= n then
        s = format("%.17g", n)
    end
    return s
end

-- Adds by (default 1) to the number stored at key (init, default 0, when
-- absent) and returns the new number | nil, "not a number: ..." | nil,
-- err. opts.ttl gives the new value a time to live; without it the key
-- keeps its expiry (and its user-meta byte).
function Txn:incr(key, by, opts)
    local ptr, err = writable(self, key, "txn:incr", 1)
    by = incr_args(by, opts, "txn:incr", 1)
    if ptr == nil then
        return nil, err
    end
    local ttl = opts and opts.ttl
    local ms = ttl ~= nil and ttl_ms(ttl, "txn:incr: option 'ttl'", 1) or 0
    local raw, meta, expires_ms = raw_meta(ptr, key)
    local n
    if raw then
        n = tonumber(decoded(self, raw))
        if n == nil then
            return nil, "not a number: the value of the key is not a number"
        end
        if ttl == nil and expires_ms ~= 0 then
            ms = ms_left(expires_ms)
        end
    elseif raw == false then
        return wrote(self, meta)
    else
        n, meta = opts and opts.init or 0, 0
    end
    n = n + by
    local value = self._codec and encoded(n, self._codec, "txn:incr", 1) or number_string(n)
    local rc = put(TXN, ptr, key, value, ms, meta)
    if rc ~= 0 then
        return wrote(self, rc)
    end
    return n
end

-- The version (commit timestamp) this transaction reads at.
function Txn:read_version()
    return tonumber(C.stoat_txn_read_version(live(self, 1)))
end

-- An iterator over this transaction's snapshot and its own writes (see
-- stoat/iter.lua for the options).
function Txn:pairs(opts)
    local ptr = live(self, 1)
    local it = iter.open(self._db, self, ptr, opts, "txn:pairs", 1) -- not a tail call: levels
    return it
end

-- The xpcall handler, run where fn raised: a string gets the traceback
-- of that place appended, unless it is a database failure the module
-- raised (returned as nil, err, see conclude) or carries one already.
local function on_error(e)
    if type(e) == "string" and e ~= base.last_failure
            and not e:find("\nstack traceback:\n", 1, true) then
        return traceback(e, 2)
    end
    return e
end

-- Ends txn after fn returned (ok, ...) from xpcall, committing it first
-- when it is read-write (flags 0). Returns fn's results (true for none),
-- or nil, err, or raises what fn raised, or on a conflict while tries
-- remain runs fn again (a tail call: the stack does not grow).
local function conclude(db, fn, flags, tries, txn, a1, a2, a3, ok, ...)
    if not ok then
        local e = ...
        finish(txn)
        if e ~= nil and e == txn._raised then
            return nil, e
        end
        error(e, 0)
    end
    if txn._node.dead then
        return nil, base.CLOSED_DURING
    end
    if txn._err then
        finish(txn)
        return nil, txn._err
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
                return M.run(db, fn, flags, tries - 1, nil, a1, a2, a3)
            end
            return nil, err
        end
    end
    finish(txn)
    if select("#", ...) == 0 then
        return true
    end
    return ...
end

-- Runs fn(txn, a1, a2, a3) in a new transaction (flags 0: read-write,
-- committed; at: see begin). The arguments let db:incr and friends run a
-- method body without creating a closure per call.
function M.run(db, fn, flags, tries, at, a1, a2, a3)
    if db._node.dead then
        return nil, base.CLOSED
    end
    local txn, err = M.begin(db, flags, at)
    if txn == nil then
        return nil, err
    end
    return conclude(db, fn, flags, tries, txn, a1, a2, a3, xpcall(fn, on_error, txn, a1, a2, a3))
end

local check_update_options = options_checker({ retries = "number" })
local check_view_options = options_checker({ at = "number" })

-- The arguments of db:update(fn, {retries = 10}): the number of retries,
-- or raises (level as in base.raise). Callers run M.run themselves: a
-- tail call here would hide their frame from the error levels.
function M.update_args(fn, opts, level)
    if type(fn) ~= "function" then
        raise(level + 1, "db:update: expected a function (got %s)", type(fn))
    end
    check_update_options(opts, "db:update", level + 1)
    local retries = opts and opts.retries or 10
    check_integer(retries, "db:update: option 'retries'", 0, 1e9, level + 1)
    return retries
end

-- The arguments of db:view(fn, {at = version}): at (or nil), or raises.
function M.view_args(fn, opts, level)
    if type(fn) ~= "function" then
        raise(level + 1, "db:view: expected a function (got %s)", type(fn))
    end
    check_view_options(opts, "db:view", level + 1)
    local at = opts and opts.at
    if at ~= nil then
        check_integer(at, "db:view: option 'at'", 1, 2 ^ 53, level + 1)
    end
    return at
end

return M
