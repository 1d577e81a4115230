-- stoat.base: what every part of the Lua face shares: the loaded C library,
-- the out-parameters and scratch structs, the error strings and the
-- argument checks.
--
-- The library is found, in order: $STOAT_LIB (a path to libstoat.so), then
-- the path in stoat/libpath.lua beside this file (written by `make
-- install`, so by the rock too), then "libstoat" on package.cpath (the
-- source tree's build/), then the system loader (ffi.load "stoat").
--
-- The out-parameters are allocated once per process and shared by every
-- handle: that is safe because each is read right after the C call that
-- filled it, with no yield and no call into stoat in between. Nothing here
-- records a "current" database or transaction, so any number of coroutines
-- may each run their own transactions.
--
-- Errors: a failed C call becomes `nil, "<word>: <detail>"`, the word
-- stable per code (see WORDS), the detail from stoat_errmsg; `ok(rc)` is
-- the one idiom that turns a return code into true | nil, err. Misuse (a
-- wrong argument type, an unknown option, a handle used after its end)
-- raises with error(); a closed database is a failure ("closed: ...").

if not jit then
    error("stoat needs LuaJIT (it uses the LuaJIT FFI); this is " .. _VERSION, 0)
end

local ffi = require "ffi"
local cdef = require "stoat.cdef"

local ffi_string = ffi.string
local type, tostring, error, pairs, ipairs = type, tostring, error, pairs, ipairs
-- A string.buffer is told by its ref method (all buffers share it): the
-- JIT records indexing a buffer, not getmetatable of a userdata.
local has_buffer, buffer = pcall(require, "string.buffer")
local BUFFER_REF = has_buffer and buffer.new().ref or false
local floor = math.floor
local has_nkeys, nkeys = pcall(require, "table.nkeys") -- OpenResty's LuaJIT has it

local M = {}

local function load_library()
    local path = os.getenv("STOAT_LIB")
    if path and path ~= "" then
        return ffi.load(path)
    end
    local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
    local f = here and io.open(here .. "/libpath.lua", "rb")
    if f then
        f:close()
        path = dofile(here .. "/libpath.lua")
        local lib = type(path) == "string" and io.open(path, "rb")
        if lib then
            lib:close()
            return ffi.load(path)
        end
    end
    path = package.searchpath("libstoat", package.cpath)
    if path then
        return ffi.load(path)
    end
    local ok, lib = pcall(ffi.load, "stoat")
    if not ok then
        error("stoat: libstoat.so is neither on package.cpath (" .. package.cpath
              .. ") nor known to the system loader; set STOAT_LIB to its path ("
              .. tostring(lib) .. ")", 0)
    end
    return lib
end

local C = load_library()
M.C = C

-- The declarations must describe the library actually loaded.
local lib_version = ffi_string(C.stoat_version())
local want = cdef.defines.STOAT_VERSION_MAJOR .. "." .. cdef.defines.STOAT_VERSION_MINOR .. "."
if lib_version:sub(1, #want) ~= want then
    error("stoat: the library is version " .. lib_version .. " but the Lua module binds "
          .. cdef.defines.STOAT_VERSION_STRING, 0)
end
M.version = lib_version
M.defines = cdef.defines

-- Shared out-parameters (see the header) and scratch structs.
M.ptr_out = ffi.new("const void *[1]")
M.mem_out = ffi.new("void *[1]")
M.len_out = ffi.new("size_t[1]")
M.db_out = ffi.new("stoat_db *[1]")
M.txn_out = ffi.new("stoat_txn *[1]")
M.iter_out = ffi.new("stoat_iter *[1]")
M.batch_out = ffi.new("stoat_batch *[1]")
M.u64_out = ffi.new("uint64_t[2]")
M.u8_out = ffi.new("uint8_t[1]")
M.int_out = ffi.new("int[1]")

local WORDS = {
    [C.STOAT_ENOTFOUND] = "not found", -- only where absence is a failure (open)
    [C.STOAT_EINVAL] = "invalid",
    [C.STOAT_ECORRUPT] = "corruption",
    [C.STOAT_EIO] = "io",
    [C.STOAT_ENOMEM] = "out of memory",
    [C.STOAT_EBUSY] = "busy",
    [C.STOAT_ECLOSED] = "closed",
    [C.STOAT_EFORKED] = "forked",
    [C.STOAT_ECONFLICT] = "conflict",
    [C.STOAT_ETOOBIG] = "too big",
    [C.STOAT_EREADONLY] = "read only",
    [C.STOAT_ENOSPC] = "no space",
    [C.STOAT_ENOTSUP] = "not supported",
    [C.STOAT_EEXIST] = "exists",
    [C.STOAT_EKEY] = "bad key", -- the detail says which: none, wrong, or not encrypted
}
M.WORDS = WORDS

-- "<word>: <detail>" for the code rc of the call that just failed. Must be
-- called before the next call into stoat, which may replace the detail.
function M.errstr(rc)
    local detail = ffi_string(C.stoat_errmsg(nil))
    if detail == "" then
        detail = ffi_string(C.stoat_strerror(rc))
    end
    return (WORDS[rc] or "unknown error " .. tostring(rc)) .. ": " .. detail
end

-- The usual failure return: nil, "<word>: <detail>".
function M.fail(rc)
    return nil, M.errstr(rc)
end

-- The one idiom for a C call's result: true | nil, "<word>: <detail>".
function M.ok(rc)
    if rc ~= 0 then
        return nil, M.errstr(rc)
    end
    return true
end

-- Raises err, a database failure ("<word>: <detail>"), where a value
-- cannot be returned (an iterator step, a transaction whose database was
-- closed under it). txn (or nil) remembers it, and so does last_failure,
-- so that db:update/db:view return it as nil, err instead of re-raising
-- it like the closure's own errors (see stoat.txn).
function M.raise_failure(txn, err)
    if txn then
        txn._raised = err
    end
    M.last_failure = err
    error(err, 0)
end

-- What every use of a closed database fails with.
M.CLOSED = "closed: the database is closed"
M.CLOSED_DURING = "closed: the database was closed during the transaction"

-- The clock expiries are checked against, in unix seconds (ms resolution).
function M.now()
    return tonumber(C.stoat_clock_ms()) / 1000
end

-- Raises a misuse error at the given level (counted from the caller of the
-- function that calls raise: 1 blames that function's caller).
function M.raise(level, fmt, ...)
    error("stoat: " .. fmt:format(...), level + 2)
end
local raise = M.raise

-- The bytes of v, a Lua string or a LuaJIT string.buffer: v, #v for a
-- string; for a buffer, a pointer to its contents and their length
-- (buf:ref(): read in place, valid until the buffer changes; the C call
-- that receives them copies what it keeps), so that a key built in a
-- buffer never becomes a Lua string (made, hashed, interned, collected).
-- false for anything else (not nil: an empty buffer's pointer may be
-- NULL, and a NULL cdata compares equal to nil). Where a method takes a
-- buffer, its doc says so.
local function is_buffer(v)
    return type(v) == "userdata" and BUFFER_REF and v.ref == BUFFER_REF
end

function M.bytes(v)
    if type(v) == "string" then
        return v, #v
    elseif is_buffer(v) then
        return v:ref()
    end
    return false, 0
end
local bytes = M.bytes

-- Checks buf, the buffer a get puts its value into: a string.buffer, on
-- a database without a codec (codec: the database's, or nil). Raises.
function M.check_into(buf, codec, what, level)
    if not is_buffer(buf) then
        raise(level + 1, "%s: buffer must be a string.buffer (got %s)", what, type(buf))
    end
    if codec ~= nil then
        raise(level + 1, "%s: a buffer cannot be used on a database with a codec", what)
    end
end

-- Checks a key argument: bytes(key), or raises; what names it.
function M.check_bytes(v, what, level)
    local p, len = bytes(v)
    if p == false then
        raise(level + 1, "%s must be a string or a string.buffer (got %s)", what, type(v))
    end
    return p, len
end

-- Checks that v is a string; what names it ("txn:get: key").
function M.check_string(v, what, level)
    if type(v) ~= "string" then
        raise(level + 1, "%s must be a string (got %s)", what, type(v))
    end
end

function M.check_integer(v, what, min, max, level)
    if type(v) ~= "number" or v ~= floor(v) or v < min or v > max then
        raise(level + 1, "%s must be an integer in %d..%d (got %s)", what, min, max, tostring(v))
    end
end

-- Checks an options table against spec (name -> Lua type). nil is allowed
-- and returns nil. Unknown keys and wrong types raise.
function M.check_options(opts, spec, what, level)
    if opts == nil then
        return nil
    end
    if type(opts) ~= "table" then
        raise(level + 1, "%s: options must be a table (got %s)", what, type(opts))
    end
    for k, v in pairs(opts) do
        local want_type = spec[k]
        if want_type == nil then
            raise(level + 1, "%s: unknown option '%s'", what, tostring(k))
        end
        if type(v) ~= want_type then
            raise(level + 1, "%s: option '%s' must be a %s (got %s)", what, tostring(k),
                  want_type, type(v))
        end
    end
    return opts
end
local check_options = M.check_options

-- Returns check(opts, what, level), which does check_options(opts, spec,
-- what, level), without a loop when opts holds only known keys of the
-- right types. A loop in a function called from a hot loop (an option
-- check per seek, per set with a TTL) gets a trace of its own, and the
-- caller's trace then cannot continue past it ("NYI: return to lower
-- frame"): the rest of the caller's loop body would run interpreted. So
-- the checks are unrolled, generated once per spec, and unknown keys are
-- counted with table.nkeys (compiled). Any problem, and every check where
-- table.nkeys is missing, goes to check_options, which raises the precise
-- error.
function M.options_checker(spec)
    if not has_nkeys then
        return function(opts, what, level)
            check_options(opts, spec, what, level + 1) -- not a tail call: see below
            return opts
        end
    end
    local names = {}
    for name in pairs(spec) do
        names[#names + 1] = name
    end
    table.sort(names)
    -- slow(...) is only called to raise, and never as a tail call, so
    -- that the error levels count this function's frame.
    local src = { "local type, nkeys, slow, spec = ...",
                  "return function(opts, what, level)",
                  "    if opts == nil then return nil end",
                  "    local n, v = 0, nil",
                  "    if type(opts) ~= 'table' then slow(opts, spec, what, level + 1) end" }
    for _, name in ipairs(names) do
        src[#src + 1] = ("    v = opts[%q]; if v ~= nil then n = n + 1; if type(v) ~= %q then "
                         .. "slow(opts, spec, what, level + 1) end end"):format(name, spec[name])
    end
    src[#src + 1] = "    if nkeys(opts) ~= n then slow(opts, spec, what, level + 1) end"
    src[#src + 1] = "    return opts"
    src[#src + 1] = "end"
    local chunk = assert(loadstring(table.concat(src, "\n"), "=stoat.base options_checker"))
    return chunk(type, nkeys, check_options, spec)
end

return M
