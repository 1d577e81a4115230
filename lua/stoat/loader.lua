-- stoat.loader: db:loader() and db:bulk_load(), bulk loads into an empty
-- database or an empty key range (stoat_loader_*, core/src/db/ingest.c).
--
--   local ld = assert(db:loader())
--   assert(ld:add("a", "1")); assert(ld:add("b", "2", { ttl = 60, meta = 1 }))
--   local version = assert(ld:finish())
--
--   local n, version = db:bulk_load(iterator, state, control)  -- a generic-for triple
--
-- Keys must come in strictly increasing order (byte order, as the
-- database sorts them). The entries are written straight into tables and
-- become visible all at once when finish returns, as one commit (one
-- version, returned); nothing of them is visible before, and nothing at
-- all if the load fails, is aborted, or the process dies first. finish
-- refuses with nil, "exists: ..." when the database already holds any
-- entry between the first and the last key loaded (tombstones included).
--
-- add(key, value [, opts]): opts { ttl = seconds, meta = 0..255,
-- expires_at = unix milliseconds } (ttl and expires_at exclusive). Returns
-- true | nil, err. A key out of order or too big is refused with
-- nil, "invalid: ..." / "too big: ..." and the loader stays usable; any
-- other failure dooms it (later calls return that failure: abort it).
-- Values go through the database's codec.
--
-- The loader is a kid of its database's handle node (stoat.handle); while
-- it holds entries (`pending`), db:close refuses. finish and abort end it;
-- a loader nobody can reach any more is aborted by the garbage collector.

local base = require "stoat.base"
local handle = require "stoat.handle"
local write = require "stoat.write"

local ffi = require "ffi"
local C = base.C
local raise, errstr, check_integer = base.raise, base.errstr, base.check_integer
local encoded, ttl_ms = write.encoded, write.ttl_ms
local getmetatable, setmetatable, type, pcall, error, tonumber, tostring = getmetatable,
    setmetatable, type, pcall, error, tonumber, tostring
local floor = math.floor

local M = {}

local Loader = {}
Loader.__index = Loader

local loader_out = ffi.new("stoat_loader *[1]")
local version_out = ffi.new("uint64_t[1]")
local check_add_options = base.options_checker({ ttl = "number", meta = "number",
                                                 expires_at = "number" })

local function noop() end

-- The live C loader of self, nil when its database is closed, or raises.
local function live(self, level)
    if getmetatable(self) ~= Loader then
        raise(level + 1, "expected a loader as self (use ld:method(), not ld.method())")
    end
    if self._db._node.dead then
        return nil
    end
    if self._node.dead then
        raise(level + 1, "loader is closed (finished or aborted already)")
    end
    return self._ptr
end

-- A new loader on database object db, or nil, err.
function M.new(db)
    local rc = C.stoat_loader_new(db._ptr, loader_out)
    if rc ~= 0 then
        return base.fail(rc)
    end
    local node = handle.new(db._node, loader_out[0], C.stoat_loader_abort)
    node.pending, node.loader = false, true
    return setmetatable({ _ptr = node.addr, _gc = handle.attach(node), _node = node, _db = db,
                          _codec = db._codec, _err = false }, Loader)
end

-- Expiry (unix ms) and user meta of add's options.
local function add_options(opts, level)
    check_add_options(opts, "loader:add", level + 1)
    local meta = opts.meta or 0
    check_integer(meta, "loader:add: option 'meta'", 0, 255, level + 1)
    local exp = 0
    if opts.ttl ~= nil and opts.expires_at ~= nil then
        raise(level + 1, "loader:add: give ttl or expires_at, not both")
    elseif opts.ttl ~= nil then
        local ms = ttl_ms(opts.ttl, "loader:add: option 'ttl'", level + 1)
        exp = ms > 0 and tonumber(C.stoat_clock_ms()) + ms or 0
    elseif opts.expires_at ~= nil then
        exp = opts.expires_at
        if not (exp >= 0 and exp == floor(exp) and exp < 2 ^ 53) then
            raise(level + 1, "loader:add: option 'expires_at' must be unix milliseconds (got %s)",
                  tostring(exp))
        end
    end
    return exp, meta
end

-- Adds key = value (keys strictly increasing): true | nil, err.
function Loader:add(key, value, opts)
    local ptr = live(self, 1)
    if ptr == nil then
        return nil, base.CLOSED
    end
    if type(key) ~= "string" then
        raise(1, "loader:add: key must be a string (got %s)", type(key))
    end
    local exp, meta = 0, 0
    if opts ~= nil then
        exp, meta = add_options(opts, 1)
    end
    value = encoded(value, self._codec, "loader:add", 1)
    if self._err then
        return nil, self._err
    end
    self._node.pending = true
    local rc = C.stoat_loader_add(ptr, key, #key, value, #value, exp, meta)
    if rc ~= 0 then
        local err = errstr(rc)
        if rc ~= C.STOAT_EINVAL and rc ~= C.STOAT_ETOOBIG then
            self._err = err -- sticky in C too
        end
        return nil, err
    end
    return true
end

-- Installs what was added and ends the loader: the version the entries
-- were committed at (0 when none was added) | nil, err (nothing installed).
function Loader:finish()
    local ptr = live(self, 1)
    if ptr == nil then
        return nil, base.CLOSED
    end
    local node = self._node
    node.free = noop -- stoat_loader_finish frees the loader whatever happens
    local rc = C.stoat_loader_finish(ptr, version_out)
    local err = rc ~= 0 and errstr(rc) or nil
    handle.close_now(self._gc, node)
    if err then
        return nil, err
    end
    return tonumber(version_out[0])
end

-- Drops everything added and ends the loader. Idempotent.
function Loader:abort()
    if getmetatable(self) ~= Loader then
        raise(1, "expected a loader as self (use ld:abort(), not ld.abort())")
    end
    handle.close_now(self._gc, self._node)
end

-- Loads every key, value [, opts] of the generic-for triple f, s, c into
-- db with one loader: n, version | nil, err (nothing installed). An error
-- raised by the iterator aborts the load and propagates.
function M.bulk_load(db, f, s, c)
    if type(f) ~= "function" then
        raise(2, "db:bulk_load: expected an iterator function (got %s)", type(f))
    end
    local ld, err = M.new(db)
    if ld == nil then
        return nil, err
    end
    local n = 0
    local ok, res, aerr = pcall(function()
        for k, v, opts in f, s, c do
            local aok, e = ld:add(k, v, opts)
            if not aok then
                return nil, e
            end
            n = n + 1
        end
        return true
    end)
    if not ok or not res then
        ld:abort()
        if not ok then
            error(res, 0)
        end
        return nil, aerr
    end
    local version, ferr = ld:finish()
    if version == nil then
        return nil, ferr
    end
    return n, version
end

return M
