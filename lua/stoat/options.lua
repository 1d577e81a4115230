-- stoat.options: the Lua options table of stoat.open -> struct stoat_options.
--
-- Every field of stoat_options is accepted under its own (snake_case) name,
-- starting from the C defaults (stoat_options_init). Flags take a boolean
-- (or 0/1); sizes and counts an integer; durations are in milliseconds,
-- as their names say (`lock_timeout_ms`, `encryption_key_rotation_ms`);
-- `sync` takes "none" | "commit" and
-- `compression` and `value_log_compression` "none" | "lz4" | "zstd", or the
-- C number. `encryption_key` takes a Lua string of exactly STOAT_KEY_LEN
-- (32) raw bytes. An unknown name
-- or a wrong type raises; values of the right type but out of range are
-- the C library's to refuse (stoat.open returns nil, "invalid: ...").
-- multi_process is on by default (any number of processes share the
-- directory); multi_process = false is the exclusive mode (one process
-- holds it, the others get busy). Read-only opens ignore it.
-- spec/open_spec.lua checks that FIELDS names every field of the struct.
-- No state: build() fills a fresh struct per call.
--
-- Keys: the struct points into the caller's key string (no copy is made
-- here); build() returns it among the strings the caller keeps referenced
-- until stoat_open returns (the C side copies it during the open). No
-- error message ever quotes a key: only its type and length.

local ffi = require "ffi"
local base = require "stoat.base"

local C = base.C
local raise = base.raise
local type, tostring, pairs = type, tostring, pairs
local floor = math.floor

local M = {}

local INT_MAX = 2147483647
local U32_MAX = 4294967295
local U64_MAX = 2 ^ 53 -- the largest integer a Lua number holds exactly
local KEY_LEN = base.defines.STOAT_KEY_LEN
M.KEY_LEN = KEY_LEN

local ENUMS = {
    sync = { none = C.STOAT_SYNC_NONE, commit = C.STOAT_SYNC_COMMIT },
    compression = { none = C.STOAT_COMPRESSION_NONE, lz4 = C.STOAT_COMPRESSION_LZ4,
                    zstd = C.STOAT_COMPRESSION_ZSTD },
}
ENUMS.value_log_compression = ENUMS.compression

-- Field name -> kind: flag, int, u32, u64, double, string, key, or an ENUMS
-- name.
local FIELDS = {
    create_if_missing = "flag",
    error_if_exists = "flag",
    read_only = "flag",
    sync = "sync",
    memtable_size = "u64",
    num_memtables = "int",
    block_size = "u32",
    compression = "compression",
    zstd_level = "int",
    bloom_fp_rate = "double",
    cache_size = "u64",
    max_open_files = "int",
    num_compactors = "int",
    num_levels = "int",
    base_level_size = "u64",
    level_size_multiplier = "int",
    table_size = "u64",
    l0_compaction_trigger = "int",
    l0_slowdown_trigger = "int",
    l0_stall_trigger = "int",
    detect_conflicts = "flag",
    num_versions_to_keep = "int",
    max_txn_bytes = "u64",
    max_txn_entries = "u64",
    value_threshold = "u32",
    value_log_file_size = "u64",
    value_log_compression = "value_log_compression",
    auto_gc = "flag",
    auto_gc_ratio = "double",
    multi_process = "flag",
    lock_timeout_ms = "u32",
    open_timeout_ms = "u32",
    shm_dir = "string",
    encryption_key = "key",
    encryption_key_rotation_ms = "u64",
}
M.FIELDS = FIELDS

local function is_integer(v, min, max)
    return type(v) == "number" and v == floor(v) and v >= min and v <= max
end

local RANGES = {
    int = { -INT_MAX - 1, INT_MAX, "an integer" },
    u32 = { 0, U32_MAX, "an integer in 0..2^32-1" },
    u64 = { 0, U64_MAX, "a non-negative integer" },
}

-- Checks that v is an encryption key, a string of exactly KEY_LEN bytes,
-- or raises naming it `what` (level as in base.raise). The message gives
-- v's type or length, never its bytes: v is (or may be) a secret.
function M.check_key(v, what, level)
    if type(v) == "string" and #v == KEY_LEN then
        return v
    end
    local got = type(v)
    if got == "string" then
        got = ("a string of %d bytes"):format(#v)
        if #v == 2 * KEY_LEN then
            got = got .. "; a key written as hex must be decoded first"
        end
    end
    raise(level + 1, "%s must be a string of exactly %d bytes (got %s)", what, KEY_LEN, got)
end

-- The C value of option name = v, or raises (level as in base.raise).
local function convert(name, v, level)
    local kind = FIELDS[name]
    if kind == nil then
        raise(level + 1, "open: unknown option '%s'", tostring(name))
    end
    if kind == "flag" then
        if type(v) == "boolean" then
            return v and 1 or 0
        elseif v == 0 or v == 1 then
            return v
        end
        raise(level + 1, "open: option '%s' must be a boolean (got %s)", name,
              tostring(v))
    elseif kind == "string" then
        if type(v) == "string" and not v:find("\0", 1, true) then
            return v
        end
        raise(level + 1, "open: option '%s' must be a string without zero bytes (got %s)", name,
              type(v))
    elseif kind == "key" then
        M.check_key(v, "open: option '" .. name .. "'", level + 1)
        return v
    elseif kind == "double" then
        if type(v) == "number" then
            return v
        end
        raise(level + 1, "open: option '%s' must be a number (got %s)", name, type(v))
    elseif ENUMS[kind] then
        local values = ENUMS[kind]
        if type(v) == "string" and values[v] ~= nil then
            return values[v]
        elseif is_integer(v, -INT_MAX - 1, INT_MAX) then
            return v
        end
        local names = {}
        for word in pairs(values) do
            names[#names + 1] = '"' .. word .. '"'
        end
        table.sort(names)
        raise(level + 1, "open: option '%s' must be one of %s (got %s)", name,
              table.concat(names, ", "), tostring(v))
    end
    local r = RANGES[kind]
    if not is_integer(v, r[1], r[2]) then
        raise(level + 1, "open: option '%s' must be %s (got %s)", name, r[3], tostring(v))
    end
    return v
end

-- A stoat_options struct from the Lua table opts (nil: the defaults), and
-- the table of the strings it points into, which the caller keeps
-- referenced until stoat_open returns.
function M.build(opts, level)
    local o = ffi.new("stoat_options")
    local keep = {}
    C.stoat_options_init(o)
    if opts == nil then
        return o, keep
    end
    if type(opts) ~= "table" then
        raise(level + 1, "open: options must be a table (got %s)", type(opts))
    end
    for name, v in pairs(opts) do
        local c = convert(name, v, level + 1)
        if type(c) == "string" then
            keep[#keep + 1] = c
        end
        o[name] = c
    end
    return o, keep
end

-- Does nothing, visibly: its argument stays referenced until here.
function M.keep_alive(keep)
    return keep
end

return M
