-- stoat.write: the one write body of db, txn and batch.
--
-- store(kind, ptr, key, value, opts, codec, what, level) checks the
-- arguments (raising on misuse, with `what` naming the method), encodes
-- the value through the database's codec, and makes the one C call that
-- kind of target takes (lua-resty-core's shdict_store shape: one body,
-- the target a constant). It returns the C return code: the callers turn
-- it into true | nil, err with base.ok, and a transaction or batch
-- remembers the first failure (it is doomed: see stoat.txn, stoat.batch).
--
--   kind  TXN:   stoat_txn_set / _set_ex / _delete
--         BATCH: stoat_batch_set / _set_ex / _delete
--         DB:    stoat_put / stoat_delete, or with options a batch of one
--                entry (so that a set with a ttl has the same limits as a
--                plain set: a batch of one is not bound by max_txn_bytes)
--   value nil deletes the key (opts are checked, then ignored).
--
-- No state but the shared out-parameters; no closure per call.

local base = require "stoat.base"
local codec_mod = require "stoat.codec"

local C = base.C
local raise, check_integer, options_checker = base.raise, base.check_integer,
                                               base.options_checker
local bytes = base.bytes
local batch_out = base.batch_out
local type, tostring = type, tostring
local ceil = math.ceil

local M = {}

local TXN, BATCH, DB = 1, 2, 3
M.TXN, M.BATCH, M.DB = TXN, BATCH, DB

local MAX_TTL_MS = base.defines.STOAT_MAX_TTL_MS
local check_set_options = options_checker({ ttl = "number", meta = "number" })

-- A ttl in seconds (fractions allowed) as milliseconds, rounded up: an
-- entry never expires before its ttl. Raises when out of range.
function M.ttl_ms(ttl, what, level)
    local ms = type(ttl) == "number" and ceil(ttl * 1000) or -1
    if not (ms >= 0 and ms <= MAX_TTL_MS) then -- also refuses NaN
        raise(level + 1, "%s: ttl must be a number of seconds in 0..%d (got %s)", what,
              MAX_TTL_MS / 1000, tostring(ttl))
    end
    return ms
end
local ttl_ms = M.ttl_ms

-- TTL in milliseconds and user-meta byte of a set's options table.
function M.set_options(opts, what, level)
    check_set_options(opts, what, level + 1)
    local ttl, meta = opts.ttl, opts.meta or 0
    check_integer(meta, what .. ": option 'meta'", 0, 255, level + 1)
    return ttl == nil and 0 or ttl_ms(ttl, what .. ": option 'ttl'", level + 1), meta
end
local set_options = M.set_options

-- db:set with options: a batch of one entry, committed and freed.
local function put_ex(ptr, key, klen, value, vlen, ttl, meta)
    local rc = C.stoat_batch_new(ptr, batch_out)
    if rc ~= 0 then
        return rc
    end
    local b = batch_out[0]
    rc = C.stoat_batch_set_ex(b, key, klen, value, vlen, ttl, meta)
    if rc == 0 then
        rc = C.stoat_batch_commit(b)
    end
    C.stoat_batch_free(b) -- leaves the thread's error message alone
    return rc
end

-- The raw (encoded) value to store, or raises.
local function encoded(value, codec, what, level)
    if codec ~= nil then
        return codec_mod.encode(codec, value, what, level + 1)
    end
    if type(value) ~= "string" then
        raise(level + 1, "%s: value must be a string or nil (got %s; or open the database "
              .. "with a codec)", what, type(value))
    end
    return value
end

-- The bytes of the value to store (see base.bytes): the encoded value
-- and its length, or a string.buffer's contents in place when there is
-- no codec; or raises.
local function value_bytes(value, codec, what, level)
    if codec == nil then
        local p, len = bytes(value)
        if p ~= false then
            return p, len
        end
    end
    value = encoded(value, codec, what, level + 1)
    return value, #value
end

-- A write of raw bytes (strings) with ttl (ms) and meta: the C return code.
function M.put(kind, ptr, key, value, ttl, meta)
    return M.put_bytes(kind, ptr, key, #key, value, #value, ttl, meta)
end

-- The same with the bytes given as pointer (or string) and length.
function M.put_bytes(kind, ptr, key, klen, value, vlen, ttl, meta)
    if kind == TXN then
        return C.stoat_txn_set_ex(ptr, key, klen, value, vlen, ttl, meta)
    elseif kind == BATCH then
        return C.stoat_batch_set_ex(ptr, key, klen, value, vlen, ttl, meta)
    end
    return put_ex(ptr, key, klen, value, vlen, ttl, meta)
end
local put_bytes = M.put_bytes

-- The one write body (see the header). key and value may be Lua strings
-- or string.buffers (base.bytes; a value only without a codec). Returns
-- the C return code.
function M.store(kind, ptr, key, value, opts, codec, what, level)
    local k, klen = bytes(key)
    if k == false then
        raise(level + 1, "%s: key must be a string or a string.buffer (got %s)", what, type(key))
    end
    local ttl, meta = 0, 0
    if opts ~= nil then
        ttl, meta = set_options(opts, what, level + 1)
    end
    if value == nil then
        if kind == TXN then
            return C.stoat_txn_delete(ptr, k, klen)
        elseif kind == BATCH then
            return C.stoat_batch_delete(ptr, k, klen)
        end
        return C.stoat_delete(ptr, k, klen)
    end
    local v, vlen = value_bytes(value, codec, what, level + 1)
    if opts ~= nil then
        return put_bytes(kind, ptr, k, klen, v, vlen, ttl, meta)
    elseif kind == TXN then
        return C.stoat_txn_set(ptr, k, klen, v, vlen)
    elseif kind == BATCH then
        return C.stoat_batch_set(ptr, k, klen, v, vlen)
    end
    return C.stoat_put(ptr, k, klen, v, vlen)
end

M.encoded = encoded

return M
