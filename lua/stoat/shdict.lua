-- stoat.shdict: an ngx.shared.DICT look-alike over a key prefix of a
-- stoat database, made by stoat.ngx.dict(name, opts):
--
--   local cache = require("stoat.ngx").dict("cache")   -- was ngx.shared.cache
--   local ok, err, forcible = cache:set("k", "v", 60, 7)
--   local v, flags = cache:get("k")
--   cache:incr("hits", 1, 0)
--
-- The methods and their return conventions are those of
-- ngx.shared.DICT (lua-resty-core's shdict module): get,
-- get_stale, set, safe_set, add, safe_add, replace, delete, incr, ttl,
-- expire, get_keys, flush_all, flush_expired; failures of the store
-- methods are false, err, false; forcible is always false (nothing is
-- ever evicted); get_keys lists keys in order. The list methods (lpush,
-- ...) are not provided; capacity and free_space answer nil,
-- "not supported: ...".
--
-- Storage: key name .. ":" .. key (or opts.prefix .. key); the user-meta
-- byte holds the value's Lua type (string values are stored as they are,
-- so plain db:get reads them; numbers as decimal strings; booleans "1" or
-- "0"; tables as JSON through lua-cjson), and its bit 7 says that 4 bytes
-- of user flags (big-endian) precede the value. get and ttl read in one
-- read-only C transaction (three FFI calls, no Lua closure); set is one
-- C write; add, replace and incr run a transaction retried on conflict,
-- so they are atomic against every other writer of the database.
--
-- The database is looked up at each call (stoat.ngx.db: the worker's,
-- waiting for an open in progress), so a dict may be made at load time,
-- in init_by_lua. With durable = true every write is followed by
-- stoat.ngx.sync (an fsync on a pool thread). No state of its own.

local ffi = require "ffi"
local base = require "stoat.base"
local txn_mod = require "stoat.txn"
local write = require "stoat.write"
local sngx = require "stoat.ngx"

local C = base.C
local ffi_string = ffi.string
local ptr_out, len_out, txn_out = base.ptr_out, base.len_out, base.txn_out
local u64_out, u8_out = base.u64_out, base.u8_out
local raise = base.raise
local run = txn_mod.run
local put, DB_KIND = write.put, write.DB
local type, tostring, tonumber, error, pcall, setmetatable =
      type, tostring, tonumber, error, pcall, setmetatable
local ceil, floor = math.ceil, math.floor
local format, byte, char, sub = string.format, string.byte, string.char, string.sub

local M = {}

local READ_ONLY = C.STOAT_TXN_READ_ONLY
local ENOTFOUND = C.STOAT_ENOTFOUND
local CLOSED = base.CLOSED


-- How a value is stored: the user-meta byte says its Lua type (string
-- values are stored as they are, so plain db:get reads them), bit 7 that
-- 4 bytes of user flags (big-endian) precede the value.
local T_STRING, T_NUMBER, T_BOOLEAN, T_JSON, HAS_FLAGS = 0, 1, 2, 3, 0x80
M.TYPES = { string = T_STRING, number = T_NUMBER, boolean = T_BOOLEAN, json = T_JSON,
            has_flags = HAS_FLAGS }

local json -- lua-cjson, or false when it is not installed
local function get_json()
    if json == nil then
        local ok, cjson = pcall(require, "cjson.safe")
        json = ok and cjson.new() or false
    end
    return json
end

local function number_string(n)
    local s = format("%.14g", n)
    if tonumber(s) ~= n then
        s = format("%.17g", n)
    end
    return s
end

local function flags_bytes(f)
    return char(floor(f / 16777216) % 256, floor(f / 65536) % 256, floor(f / 256) % 256, f % 256)
end

local function flags_of(raw)
    local a, b, c, d = byte(raw, 1, 4)
    return ((a * 256 + b) * 256 + c) * 256 + d
end

-- raw, meta for value and flags | nil, "bad value type".
local function encode(self, value, flags)
    local t = type(value)
    local raw, meta
    if t == "string" then
        raw, meta = value, T_STRING
    elseif t == "number" then
        raw, meta = number_string(value), T_NUMBER
    elseif t == "boolean" then
        raw, meta = value and "1" or "0", T_BOOLEAN
    elseif t == "table" and self.json then
        local j = get_json()
        if not j then
            return nil, "bad value type (tables need lua-cjson)"
        end
        local err
        raw, err = j.encode(value)
        if raw == nil then
            return nil, "bad value type (" .. tostring(err) .. ")"
        end
        meta = T_JSON
    else
        return nil, "bad value type"
    end
    if flags ~= nil and flags ~= 0 then
        if type(flags) ~= "number" or flags ~= floor(flags) or flags < 0 or flags > 4294967295 then
            error('bad "flags" argument', 4)
        end
        raw, meta = flags_bytes(flags) .. raw, meta + HAS_FLAGS
    end
    return raw, meta
end

-- value, flags (nil when 0) of a stored raw value and meta byte.
local function decode(raw, meta)
    local flags
    if meta >= HAS_FLAGS then
        flags, raw, meta = flags_of(raw), sub(raw, 5), meta - HAS_FLAGS
    end
    if meta == T_STRING then
        return raw, flags
    elseif meta == T_NUMBER then
        return tonumber(raw), flags
    elseif meta == T_BOOLEAN then
        return raw == "1", flags
    elseif meta == T_JSON then
        local j = get_json()
        if not j then
            return nil, "not supported: a JSON value needs lua-cjson"
        end
        return j.decode(raw), flags
    end
    return raw, flags -- another writer's meta byte: the bytes as they are
end

-- shdict's key rules: the full key | nil, err.
local function full_key(self, key)
    if key == nil then
        return nil, "nil key"
    end
    if type(key) ~= "string" then
        key = tostring(key)
    end
    local n = #key
    if n == 0 then
        return nil, "empty key"
    elseif n > 65535 then
        return nil, "key too long"
    end
    return self.prefix .. key
end

-- The database of dict self: db | nil, err.
local function dict_db(self)
    local db = self.db_object
    if db ~= nil then
        return db
    end
    return sngx.db(self.dir)
end

local function check_exptime(exptime, what)
    if exptime == nil then
        return 0
    end
    if type(exptime) ~= "number" or exptime < 0 or exptime ~= exptime then
        error('bad "' .. what .. '" argument', 3)
    end
    return exptime
end

-- raw, meta, expires_ms of key in db's latest state | nil | false, err.
local function read_raw(db, key)
    if db._node.dead then
        return false, CLOSED
    end
    local rc = C.stoat_txn_begin(db._ptr, READ_ONLY, txn_out)
    if rc ~= 0 then
        return false, base.errstr(rc)
    end
    local t = txn_out[0]
    rc = C.stoat_txn_get_meta(t, key, #key, ptr_out, len_out, u64_out, u64_out + 1, u8_out)
    local raw, meta, expires, err
    if rc == 0 then
        raw, meta, expires = ffi_string(ptr_out[0], len_out[0]), u8_out[0], tonumber(u64_out[1])
    elseif rc ~= ENOTFOUND then
        err = base.errstr(rc)
    end
    C.stoat_txn_discard(t)
    if err then
        return false, err
    end
    return raw, meta, expires
end

local Dict = {}
Dict.__index = Dict

-- value, flags | nil | nil, err (as ngx.shared.DICT:get).
function Dict:get(key)
    local k, err = full_key(self, key)
    if k == nil then
        return nil, err
    end
    local db
    db, err = dict_db(self)
    if db == nil then
        return nil, err
    end
    local raw, meta = read_raw(db, k)
    if not raw then
        if raw == false then
            return nil, meta
        end
        return nil
    end
    local value, flags = decode(raw, meta)
    if flags ~= nil then
        return value, flags
    end
    return value -- one value, as shdict without flags
end

-- value, flags, false: expired entries are never readable here.
function Dict:get_stale(key)
    local value, flags = self:get(key)
    if value == nil then
        return nil, flags
    end
    return value, flags, false
end

-- The failure of a store: false, err, false (shdict's shape).
local function store_failed(err)
    return false, err, false
end

-- Sync after a write when the dict is durable: true, nil, false | failure.
local function stored(self, db)
    if self.durable then
        local ok, err = sngx.sync(db)
        if not ok then
            return store_failed(err)
        end
    end
    return true, nil, false
end

-- key = value (nil: delete) with exptime (seconds, 0 = never) and user
-- flags: true, nil, false | false, err, false (as ngx.shared.DICT:set;
-- forcible is always false: nothing is ever evicted).
function Dict:set(key, value, exptime, flags)
    exptime = check_exptime(exptime, "exptime")
    local k, err = full_key(self, key)
    if k == nil then
        return nil, err
    end
    local db
    db, err = dict_db(self)
    if db == nil then
        return store_failed(err)
    end
    if db._node.dead then
        return store_failed(CLOSED)
    end
    local rc
    if value == nil then
        rc = C.stoat_delete(db._ptr, k, #k)
    else
        local raw, meta = encode(self, value, flags)
        if raw == nil then
            return nil, meta
        end
        if exptime == 0 and meta == T_STRING then
            rc = C.stoat_put(db._ptr, k, #k, raw, #raw)
        else
            rc = put(DB_KIND, db._ptr, k, raw, ceil(exptime * 1000), meta)
        end
    end
    if rc ~= 0 then
        return store_failed(base.errstr(rc))
    end
    return stored(self, db)
end
Dict.safe_set = Dict.set

function Dict:delete(key)
    return self:set(key, nil)
end

-- The bodies of the conditional writes (module-level: no closure per call).
local function add_body(txn, key, raw, opts)
    local v, err = txn:get(key)
    if err then
        return nil, err
    elseif v ~= nil then
        return nil, "exists"
    end
    return txn:set(key, raw, opts)
end

local function replace_body(txn, key, raw, opts)
    local v, err = txn:get(key)
    if err then
        return nil, err
    elseif v == nil then
        return nil, "not found"
    end
    return txn:set(key, raw, opts)
end

-- add and replace: body run in a transaction; shdict's returns.
local function conditional(self, body, key, value, exptime, flags)
    exptime = check_exptime(exptime, "exptime")
    local k, err = full_key(self, key)
    if k == nil then
        return nil, err
    end
    local db
    db, err = dict_db(self)
    if db == nil then
        return store_failed(err)
    end
    local raw, meta = encode(self, value, flags)
    if raw == nil then
        return nil, meta
    end
    local ok
    ok, err = run(db, body, 0, 10, nil, k, raw, { ttl = exptime, meta = meta })
    if not ok then
        return store_failed(err)
    end
    return stored(self, db)
end

-- Sets key only when absent (or expired): true, nil, false | false,
-- "exists", false | false, err, false.
function Dict:add(key, value, exptime, flags)
    return conditional(self, add_body, key, value, exptime, flags)
end
Dict.safe_add = Dict.add

-- Sets key only when present: true, nil, false | false, "not found",
-- false | false, err, false.
function Dict:replace(key, value, exptime, flags)
    return conditional(self, replace_body, key, value, exptime, flags)
end

local function incr_body(txn, key, by, args)
    local raw, meta = txn:get_meta(key)
    if raw == nil then
        if meta ~= nil then
            return nil, meta
        end
        local init = args.init
        if init == nil then
            return nil, "not found"
        end
        local n = init + by
        local ok, err = txn:set(key, number_string(n), { ttl = args.init_ttl, meta = T_NUMBER })
        if not ok then
            return nil, err
        end
        return n
    end
    local prefix = ""
    if meta >= HAS_FLAGS then
        prefix, raw = sub(raw, 1, 4), sub(raw, 5)
    end
    if meta % HAS_FLAGS ~= T_NUMBER then
        return nil, "not a number"
    end
    local n = tonumber(raw)
    if n == nil then
        return nil, "not a number"
    end
    n = n + by
    local left, err = txn:ttl(key)
    if left == nil then
        return nil, err or "not found"
    end
    local ok
    ok, err = txn:set(key, prefix .. number_string(n), { ttl = left, meta = meta })
    if not ok then
        return nil, err
    end
    return n
end

-- Adds value to the number at key: newval | nil, "not found" (absent and
-- no init) | nil, "not a number" | nil, err; with init, newval, nil,
-- false (as ngx.shared.DICT:incr). init_ttl: the time to live of a value
-- created from init; an existing key keeps its expiry.
function Dict:incr(key, value, init, init_ttl)
    local k, err = full_key(self, key)
    if k == nil then
        return nil, err
    end
    if type(value) ~= "number" then
        value = tonumber(value)
        if value == nil then
            error('bad "value" argument', 2)
        end
    end
    if init ~= nil and type(init) ~= "number" then
        local n = tonumber(init)
        if n == nil then
            error("bad init arg: number expected, got " .. type(init), 2)
        end
        init = n
    end
    if init_ttl ~= nil then
        init_ttl = tonumber(init_ttl)
        if init_ttl == nil or init_ttl < 0 then
            error('bad "init_ttl" argument', 2)
        end
        if init == nil then
            error('must provide "init" when providing "init_ttl"', 2)
        end
    end
    local db
    db, err = dict_db(self)
    if db == nil then
        return nil, err
    end
    local n
    n, err = run(db, incr_body, 0, 10, nil, k, value, { init = init, init_ttl = init_ttl })
    if n == nil then
        return nil, err
    end
    if self.durable then
        local ok, serr = sngx.sync(db)
        if not ok then
            return nil, serr
        end
    end
    if init == nil then
        return n
    end
    return n, nil, false
end

-- Seconds key has left (0: never expires) | nil, "not found" | nil, err.
function Dict:ttl(key)
    local k, err = full_key(self, key)
    if k == nil then
        return nil, err
    end
    local db
    db, err = dict_db(self)
    if db == nil then
        return nil, err
    end
    local raw, _, expires = read_raw(db, k)
    if not raw then
        if raw == false then
            return nil, _
        end
        return nil, "not found"
    end
    if expires == 0 then
        return 0
    end
    local left = expires - tonumber(C.stoat_clock_ms())
    return (left > 0 and left or 1) / 1000
end

-- A new exptime for key (0: never expires): true | nil, "not found" |
-- nil, err.
function Dict:expire(key, exptime)
    if exptime == nil then
        error('bad "exptime" argument', 2)
    end
    exptime = check_exptime(exptime, "exptime")
    local k, err = full_key(self, key)
    if k == nil then
        return nil, err
    end
    local db
    db, err = dict_db(self)
    if db == nil then
        return nil, err
    end
    local ok
    ok, err = db:expire(k, exptime)
    if not ok then
        return nil, err
    end
    if self.durable then
        ok, err = sngx.sync(db)
        if not ok then
            return nil, err
        end
    end
    return true
end

-- Up to max_count keys (default 1024, 0: all), in key order, without
-- the prefix. A table (empty when the database is not open).
function Dict:get_keys(max_count)
    if max_count == nil then
        max_count = 1024
    end
    local db = dict_db(self)
    local keys = {}
    if db == nil then
        return keys
    end
    local n, cut = 0, #self.prefix + 1
    local limit = max_count > 0 and max_count or nil
    for k in db:pairs{ prefix = self.prefix, keys_only = true, limit = limit } do
        n = n + 1
        keys[n] = sub(k, cut)
    end
    return keys
end

-- Deletes every key of the dict (drop_prefix). Returns nothing, or nil,
-- err.
function Dict:flush_all()
    local db, err = dict_db(self)
    if db == nil then
        return nil, err
    end
    local ok
    ok, err = db:drop_prefix(self.prefix)
    if not ok then
        return nil, err
    end
end

-- 0: expired entries are invisible at once and compaction drops them.
function Dict.flush_expired(_)
    return 0
end

-- Not meaningful for a database on disk.
function Dict.capacity(_)
    return nil, "not supported: a stoat dict has no fixed capacity"
end
Dict.free_space = Dict.capacity

local check_dict_options = base.options_checker({ prefix = "string", dir = "string",
                                                  db = "table", durable = "boolean",
                                                  json = "boolean" })

-- A dict over keys name .. ":" (option prefix replaces it) of the
-- default database of stoat.ngx (option dir: another one opened with
-- stoat.ngx.open; option db: a database object). durable: sync after
-- every write (stoat.ngx.sync). json (default true): tables are stored as
-- JSON. level as in base.raise.
function M.new(name, opts, level)
    level = level or 1
    base.check_string(name, "stoat.ngx.dict: name", level)
    check_dict_options(opts, "stoat.ngx.dict", level)
    opts = opts or {}
    local prefix = opts.prefix or name .. ":"
    if prefix == "" then
        raise(level, "stoat.ngx.dict: the prefix must not be empty")
    end
    if opts.db ~= nil and opts.db._codec ~= nil then
        raise(level, "stoat.ngx.dict: the database has a codec; the dict stores typed values "
              .. "itself (open it without one)")
    end
    return setmetatable({ name = name, prefix = prefix, dir = opts.dir, db_object = opts.db,
                          durable = opts.durable or false, json = opts.json ~= false }, Dict)
end

M.Dict = Dict

return M
