-- stoat.iter: iteration as a generator, for txn:pairs (stoat/txn.lua) and
-- db:pairs (stoat.lua).
--
--   for key, value in txn:pairs{prefix =, start =, after =, stop =,
--                               reverse =, limit =, keys_only =, meta =,
--                               all_versions =, key_buffer =,
--                               value_buffer =} do ... end
--
-- Bounds, not directions: start is an inclusive lower bound, after an
-- exclusive one (for forward paging: after = the last key seen), stop an
-- exclusive upper bound (for reverse paging: stop = the last key seen),
-- prefix restricts to keys starting with it; they intersect. reverse
-- walks from the last key down. limit caps the number of entries.
-- keys_only yields keys only (value nil) and never reads a value. meta
-- yields key, value, version, expires_at (unix seconds, 0 = never),
-- user_meta. all_versions yields every stored version of each key,
-- newest first, a deletion with a nil value. value_buffer, a LuaJIT
-- string.buffer, receives each value instead of a new Lua string: the
-- step resets it, puts the value's bytes in it and yields the buffer
-- itself (the same object every step; nil still for a deletion), which
-- holds that value until the next step; no string is made or interned
-- for the value (not with a codec). key_buffer does the same for keys
-- (with or without a codec). A txn:pairs iterator sees its
-- transaction's snapshot plus the transaction's writes made before pairs()
-- was called; a db:pairs iterator one read-only snapshot, taken at pairs()
-- and released when the loop ends or the iterator is collected.
--
-- Per call of pairs: one C iterator (a kid of the transaction's, or the
-- database's, handle node, so it is closed when they end) and one callable
-- iterator object (tables and a finalizer token, no function, so a loop
-- opening an iterator per item still compiles). Per step: next/prev,
-- valid, key and value FFI calls and the returned strings (or the
-- buffers' copies); no closure, no table. A read error (e.g. a damaged
-- block) raises "<word>: <detail>" with error level 0
-- (base.raise_failure), which db:update/view turn into
-- their nil, err. Used after its transaction ended, the iterator raises.
--
-- Yielding: with yield_every = K the iterator calls a yield function
-- every K steps, before stepping (so before the entries K+1, 2K+1, ...,
-- and possibly before finding the end) (option yield, default
-- default_yield below: ngx.sleep(0) in a yieldable nginx phase, else
-- coroutine.yield() inside a coroutine, else nothing). It stays on its
-- one snapshot across yields. it:close() ends it at once (releasing a
-- db:pairs snapshot); later steps return nil.

local ffi = require "ffi"
local base = require "stoat.base"
local handle = require "stoat.handle"

local C = base.C
local ffi_string, ffi_fill, ffi_sizeof = ffi.string, ffi.fill, ffi.sizeof
local errstr, raise, raise_failure = base.errstr, base.raise, base.raise_failure
local check_integer = base.check_integer
local ptr_out, len_out, iter_out = base.ptr_out, base.len_out, base.iter_out
local u64_out, u8_out, int_out = base.u64_out, base.u8_out, base.int_out
local setmetatable, tonumber, rawget, _G = setmetatable, tonumber, rawget, _G
local pcall, type = pcall, type
local co_running, co_yield = coroutine.running, coroutine.yield
-- The moves of a step (the field move).
local NEXT, PREV, FIRST, LAST = 0, 1, 2, 3

local M = {}

local check_pairs_options = base.options_checker({
    prefix = "string", start = "string", after = "string", stop = "string",
    reverse = "boolean", limit = "number", keys_only = "boolean", meta = "boolean",
    all_versions = "boolean", yield_every = "number", yield = "function",
    key_buffer = "userdata", value_buffer = "userdata" })

-- The nginx phases in which ngx.sleep may yield.
local YIELDABLE = { rewrite = true, access = true, content = true, timer = true,
                    ssl_cert = true, ssl_session_fetch = true }

-- The yield of yield_every without a yield option: lets other requests of
-- an nginx worker run (ngx.sleep(0)) in the phases that can yield, else
-- hands control back to the resumer of a plain-Lua coroutine, else does
-- nothing (the main coroutine, or a phase that cannot yield).
function M.default_yield()
    local ngx = rawget(_G, "ngx")
    if ngx ~= nil and ngx.get_phase ~= nil then
        if YIELDABLE[ngx.get_phase()] then
            ngx.sleep(0)
        end
        return
    end
    local co, main = co_running()
    if co ~= nil and not main then
        co_yield()
    end
end

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
    o.all_versions = opts.all_versions and 1 or 0
end

-- The iterator object that pairs returns: callable (its __call is the
-- step below), so `for k, v in txn:pairs()` and `local it = txn:pairs();
-- it()` both work, and opening one creates tables and cdata only, never a
-- function: a closure per pairs call would abort the JIT trace of a loop
-- that opens an iterator per item (a seek per request). Fields: ptr, the C
-- iterator; node, its handle node; _gc, its finalizer token (see
-- stoat.handle); txn, its transaction object (false for db:pairs); db, its
-- database object; decode, the codec's decode (or false); keys_only,
-- meta, all_versions, limit as given; values, neither keys_only nor meta
-- nor all_versions (the step's usual path); move, the move of the next
-- step (the seek, FIRST or LAST, until the first step; then NEXT or
-- PREV: positioned);
-- count of entries yielded; ended (closed by the end of the scan or by
-- close(), not by its transaction); vbuf, kbuf, the value_buffer and
-- key_buffer options (or false); every, left, yield: the yield_every
-- period (0: never), entries left before the next yield, the yield
-- function (left and yield only when every > 0).
local Iter = {}
local methods = {}
Iter.__index = methods

-- Raises the error that stopped iterator self after closing it.
local function fail_closed(self, rc)
    local err = errstr(rc)
    handle.close_now(self._gc, self.node)
    raise_failure(self.txn, err)
end

-- Ends the scan: closes the C iterator now; later calls return nil.
local function finish(self)
    self.ended = true
    handle.close_now(self._gc, self.node)
    return nil
end

-- The value_buffer of iterator self holding the len bytes at p.
local function buffered(self, p, len)
    local buf = self.vbuf
    buf:reset()
    buf:putcdata(p, len)
    return buf
end

-- The value of the current entry (decoded, or in the value_buffer), or
-- raises.
local function value_of(self, ptr)
    local rc = C.stoat_iter_value(ptr, ptr_out, len_out)
    if rc ~= 0 then
        fail_closed(self, rc)
    end
    if self.vbuf then
        return buffered(self, ptr_out[0], len_out[0])
    end
    local value = ffi_string(ptr_out[0], len_out[0])
    if self.decode then
        return self.decode(value)
    end
    return value
end

-- key, value, version, expires_at, user_meta of the current entry (value
-- nil with keys_only and for a deletion); only for meta or all_versions.
local function step_meta(self, ptr, key)
    local rc = C.stoat_iter_meta(ptr, u64_out, u64_out + 1, u8_out, int_out)
    if rc ~= 0 then
        fail_closed(self, rc)
    end
    local version, expires_at, user_meta = tonumber(u64_out[0]), tonumber(u64_out[1]) / 1000,
                                           u8_out[0]
    local value = nil
    if not self.keys_only and int_out[0] == 0 then
        value = value_of(self, ptr)
    end
    if self.meta then
        return key, value, version, expires_at, user_meta
    end
    return key, value
end

-- Ends the iteration now (releasing the snapshot of a db:pairs iterator):
-- later steps return nil. Idempotent; for an iterator whose transaction
-- ended already it only marks it ended.
function methods.close(self)
    if not self.node.dead then
        finish(self)
    end
    self.ended = true
end

-- One step: the next key and value (value nil with keys_only), or nil.
-- `move` is the seek of the first step (FIRST, LAST), then the move in
-- its direction (NEXT, PREV).
function Iter.__call(self)
    if self.every > 0 and self.move < FIRST and not self.ended then
        local left = self.left - 1
        if left == 0 then
            left = self.every
            self.yield()
        end
        self.left = left
    end
    if self.node.dead then
        if self.ended then
            return nil
        end
        if self.db._node.dead then
            raise_failure(self.txn, self.txn and base.CLOSED_DURING or base.CLOSED)
        end
        raise(1, "iterator used outside its transaction (it is closed)")
    end
    if self.count >= self.limit then
        finish(self) -- no tail calls on the way to handle.close_now (see there)
        return nil
    end
    local ptr, move = self.ptr, self.move
    if move == NEXT then
        C.stoat_iter_next(ptr)
    elseif move == PREV then
        C.stoat_iter_prev(ptr)
    elseif move == FIRST then
        C.stoat_iter_seek_first(ptr)
        self.move = NEXT
    else
        C.stoat_iter_seek_last(ptr)
        self.move = PREV
    end
    if C.stoat_iter_valid(ptr) == 0 then
        local rc = C.stoat_iter_status(ptr)
        if rc ~= 0 then
            self.ended = true
            fail_closed(self, rc)
        end
        finish(self)
        return nil
    end
    self.count = self.count + 1
    local rc = C.stoat_iter_key(ptr, ptr_out, len_out)
    if rc ~= 0 then
        fail_closed(self, rc)
    end
    local key
    local kbuf = self.kbuf
    if kbuf then
        kbuf:reset()
        kbuf:putcdata(ptr_out[0], len_out[0])
        key = kbuf
    else
        key = ffi_string(ptr_out[0], len_out[0])
    end
    if self.values then
        rc = C.stoat_iter_value(ptr, ptr_out, len_out)
        if rc ~= 0 then
            fail_closed(self, rc)
        end
        if self.vbuf then
            return key, buffered(self, ptr_out[0], len_out[0])
        end
        local value = ffi_string(ptr_out[0], len_out[0])
        if self.decode then
            return key, self.decode(value)
        end
        return key, value
    elseif self.keys_only and not self.meta then
        return key
    end
    return step_meta(self, ptr, key)
end

-- Checks the option name (key_buffer, value_buffer): a string.buffer
-- (LuaJIT 2.1's, in OpenResty's LuaJIT since 2.1-20210510), and for
-- values no codec (a codec decodes strings). Raises otherwise.
local function field(t, k)
    return t[k]
end

local function check_buffer(buf, name, codec, what, level)
    local ok, put = pcall(field, buf, "putcdata") -- any other userdata may raise
    if not ok or type(put) ~= "function" then
        raise(level + 1, "%s: option '%s' must be a string.buffer", what, name)
    end
    if codec then
        raise(level + 1, "%s: option '%s' cannot be used on a database with a codec", what,
              name)
    end
end

-- Opens an iterator: on transaction object txn (its C handle txn_ptr) or,
-- when txn is nil, on database object db (a snapshot of its own). what
-- names the method for errors; level as in base.raise.
function M.open(db, txn, txn_ptr, opts, what, level)
    check_pairs_options(opts, what, level + 1)
    -- Every check before the C iterator opens: a raise after it would
    -- leave it open until its transaction or database ends.
    local vbuf = opts and opts.value_buffer or false
    if vbuf then
        check_buffer(vbuf, "value_buffer", db._codec, what, level + 1)
    end
    local kbuf = opts and opts.key_buffer or false
    if kbuf then
        check_buffer(kbuf, "key_buffer", nil, what, level + 1)
    end
    local limit = opts and opts.limit or math.huge
    if limit ~= math.huge then
        check_integer(limit, what .. ": option 'limit'", 0, 2 ^ 53, level + 1)
    end
    local every = opts and opts.yield_every or 0
    if opts and opts.yield_every ~= nil then
        check_integer(every, what .. ": option 'yield_every'", 1, 2 ^ 53, level + 1)
    end
    fill_options(iter_opts, opts)
    local after = opts and opts.after
    if after ~= nil then
        if opts.start ~= nil then
            raise(level + 1, "%s: options 'start' and 'after' exclude each other", what)
        end
        after = after .. "\0" -- the first key after it
        iter_opts.lower, iter_opts.lower_len = after, #after
    end
    local rc, parent
    if txn ~= nil then
        rc, parent = C.stoat_txn_iter_open(txn_ptr, iter_opts, iter_out), txn._node
    else
        rc, parent = C.stoat_iter_open(db._ptr, iter_opts, iter_out), db._node
    end
    if rc ~= 0 then
        raise_failure(txn, errstr(rc))
    end
    local node = handle.new(parent, iter_out[0], C.stoat_iter_close, true)
    local codec = db._codec
    local meta, all_versions = opts and opts.meta or false, opts and opts.all_versions or false
    local keys_only = opts and opts.keys_only or false
    -- Left and yield only with yield_every: each pairs call makes this
    -- table, and a smaller one is less for the GC.
    local it = setmetatable({ ptr = node.addr, node = node, _gc = handle.attach(node),
                              txn = txn or false, db = db,
                              decode = codec and codec.decode or false,
                              values = not (keys_only or meta or all_versions),
                              move = opts and opts.reverse and LAST or FIRST,
                              keys_only = keys_only, meta = meta, all_versions = all_versions,
                              limit = limit, count = 0, ended = false, every = every,
                              vbuf = vbuf, kbuf = kbuf }, Iter)
    if every > 0 then
        it.left, it.yield = every, opts.yield or M.default_yield
    end
    return it
end

return M
