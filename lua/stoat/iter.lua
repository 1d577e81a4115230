-- stoat.iter: txn:pairs{...}, iteration as a generator.
--
--   for key, value in txn:pairs{prefix =, start =, stop =, reverse =,
--                               limit =, keys_only =} do ... end
--
-- start is inclusive, stop exclusive, prefix restricts to keys starting
-- with it; all three at once intersect. reverse walks from the last key
-- down. limit caps the number of entries. keys_only yields keys only
-- (value nil) and never reads a value. The iterator sees the snapshot of
-- its transaction plus the transaction's writes made before pairs() was
-- called.
--
-- Per call of pairs: one C iterator (a kid of the transaction's handle
-- node, so it is closed when the transaction ends) and one callable
-- iterator object (tables and a finalizer token, no function, so a loop
-- opening an iterator per item still compiles). Per step: next/prev,
-- valid, key and value FFI calls and the returned strings; no closure, no
-- table. A read error (e.g. a damaged block) raises "<word>: <detail>"
-- with error level 0, which db:update/view turn into their nil, err. Used
-- after its transaction ended, the iterator raises.

local ffi = require "ffi"
local base = require "stoat.base"
local handle = require "stoat.handle"

local C = base.C
local ffi_string, ffi_fill, ffi_sizeof = ffi.string, ffi.fill, ffi.sizeof
local errstr, raise = base.errstr, base.raise
local check_integer = base.check_integer
local ptr_out, len_out, iter_out = base.ptr_out, base.len_out, base.iter_out
local error, setmetatable = error, setmetatable

local M = {}

local check_pairs_options = base.options_checker({
    prefix = "string", start = "string", stop = "string", reverse = "boolean",
    limit = "number", keys_only = "boolean" })

-- Scratch: C copies the bounds at open, so one struct serves every call.
local iter_opts = ffi.new("stoat_iter_options")

local function fill_options(o, opts)
    ffi_fill(o, ffi_sizeof(o))
    if opts == nil then
        return
    end
    if opts.prefix ~= nil then
        o.prefix, o.prefix_len = opts.prefix, #opts.prefix
    end
    if opts.start ~= nil then
        o.lower, o.lower_len = opts.start, #opts.start
    end
    if opts.stop ~= nil then
        o.upper, o.upper_len = opts.stop, #opts.stop
    end
    o.keys_only = opts.keys_only and 1 or 0
end

-- The iterator object that txn:pairs returns: callable (its __call is the
-- step below), so `for k, v in txn:pairs()` and `local it = txn:pairs();
-- it()` both work, and opening one creates tables and cdata only, never a
-- function: a closure per pairs call would abort the JIT trace of a loop
-- that opens an iterator per item (a seek per request). Fields: ptr, the C
-- iterator; node, its handle node; _gc, its finalizer token (see
-- stoat.handle); reverse, keys_only, limit as given; count of entries
-- yielded; started (positioned once); ended (closed by the end of the
-- scan, not by its transaction).
local Iter = {}

-- Raises the error that stopped iterator self after closing it.
local function fail_closed(self, rc)
    local err = errstr(rc)
    handle.close_now(self._gc, self.node)
    error(err, 0)
end

-- Ends the scan: closes the C iterator now; later calls return nil.
local function finish(self)
    self.ended = true
    handle.close_now(self._gc, self.node)
    return nil
end

-- One step: the next key and value (value nil with keys_only), or nil.
function Iter.__call(self)
    if self.node.dead then
        if self.ended then
            return nil
        end
        raise(1, "iterator used outside its transaction (it is closed)")
    end
    if self.count >= self.limit then
        return finish(self)
    end
    local ptr = self.ptr
    if self.started then
        if self.reverse then
            C.stoat_iter_prev(ptr)
        else
            C.stoat_iter_next(ptr)
        end
    elseif self.reverse then
        C.stoat_iter_seek_last(ptr)
    else
        C.stoat_iter_seek_first(ptr)
    end
    self.started = true
    if C.stoat_iter_valid(ptr) == 0 then
        local rc = C.stoat_iter_status(ptr)
        if rc ~= 0 then
            self.ended = true
            fail_closed(self, rc)
        end
        return finish(self)
    end
    self.count = self.count + 1
    local rc = C.stoat_iter_key(ptr, ptr_out, len_out)
    if rc ~= 0 then
        fail_closed(self, rc)
    end
    local key = ffi_string(ptr_out[0], len_out[0])
    if self.keys_only then
        return key
    end
    rc = C.stoat_iter_value(ptr, ptr_out, len_out)
    if rc ~= 0 then
        fail_closed(self, rc)
    end
    return key, ffi_string(ptr_out[0], len_out[0])
end

-- Adds pairs to the transaction class; live(txn, level) returns the live C
-- transaction or raises.
function M.install(Txn, live)
    function Txn:pairs(opts)
        local txn = live(self, 1)
        check_pairs_options(opts, "txn:pairs", 1)
        local limit = opts and opts.limit or math.huge
        if limit ~= math.huge then
            check_integer(limit, "txn:pairs: option 'limit'", 0, 2 ^ 53, 1)
        end
        fill_options(iter_opts, opts)
        local rc = C.stoat_txn_iter_open(txn, iter_opts, iter_out)
        if rc ~= 0 then
            error(errstr(rc), 0)
        end
        local node = handle.new(self._node, iter_out[0], C.stoat_iter_close)
        return setmetatable({ ptr = node.addr, node = node, _gc = handle.attach(node),
                              reverse = opts and opts.reverse or false,
                              keys_only = opts and opts.keys_only or false, limit = limit,
                              count = 0, started = false, ended = false }, Iter)
    end
end

return M
