-- stoat.seal: sealed streams from Lua (core/include/stoat.h, "Sealed
-- streams"), for the backups of encrypted databases (stoat/backup.lua).
--
--   local k, salt = seal.key(master)          -- a new stream: fresh salt
--   local k = seal.key(master, salt)          -- the stream with that salt
--   local sealed = seal.seal(k, ad, plain)    -- #plain + seal.OVERHEAD bytes
--   local plain = seal.open(k, ad, sealed)    -- nil when it does not open
--   seal.free(k)                              -- wipes it now (else: at GC)
--
--   local check = seal.key_check(master)      -- 56 bytes, no secret in them
--   seal.key_matches(check, key)              -- true when key == master
--
-- The stream key lives in C memory (the library wipes it on free), so a
-- Lua value never holds it; the master key is a Lua string the caller
-- owns. key_check is what a database handle keeps instead of its key (see
-- stoat.open): an empty piece sealed under a fresh salt, which opens again
-- only under the same master key. Telling a key from it takes a key
-- derivation (BLAKE2b) and a Poly1305 check, and learning the key from it
-- is as hard as breaking XChaCha20-Poly1305.
--
-- Scratch: one output buffer per process, grown up to SCRATCH_MAX bytes
-- and reused; bigger pieces get a buffer of their own. Safe because each
-- result is copied into a Lua string before anything else runs.

local ffi = require "ffi"
local base = require "stoat.base"

local C = base.C
local ffi_string, ffi_gc = ffi.string, ffi.gc
local error = error

local M = {}

M.SALT_LEN = base.defines.STOAT_STREAM_SALT_LEN
M.OVERHEAD = base.defines.STOAT_STREAM_OVERHEAD
local SCRATCH_MAX = 4 * 1024 * 1024
local CHECK_AD = "stoat key check v1"

local key_out = ffi.new("stoat_stream_key *[1]")
local salt_buf = ffi.new("uint8_t[?]", M.SALT_LEN)
local scratch, scratch_len = nil, 0

local function buffer(len)
    if len <= scratch_len then
        return scratch
    elseif len > SCRATCH_MAX then
        return ffi.new("uint8_t[?]", len)
    end
    scratch_len = math.max(len, 64 * 1024)
    scratch = ffi.new("uint8_t[?]", scratch_len)
    return scratch
end

-- The key of the stream with salt under master (a 32-byte string; salt
-- nil: a new stream, with a fresh random salt). k, salt | raises
-- "<word>: <detail>" (io when there is no random source). k is freed at
-- GC if not by free().
function M.key(master, salt)
    if salt ~= nil then
        ffi.copy(salt_buf, salt, M.SALT_LEN)
    end
    local rc = C.stoat_stream_key_new(master, salt_buf, salt == nil and 1 or 0, key_out)
    if rc ~= 0 then
        error(base.errstr(rc), 0)
    end
    return ffi_gc(key_out[0], C.stoat_stream_key_free), salt or ffi_string(salt_buf, M.SALT_LEN)
end

-- Wipes and frees stream key k now (nil is fine).
function M.free(k)
    if k ~= nil then
        C.stoat_stream_key_free(ffi_gc(k, nil))
    end
end

-- plain sealed under k with associated data ad (strings): a string of
-- #plain + OVERHEAD bytes.
function M.seal(k, ad, plain)
    local len = #plain + M.OVERHEAD
    local out = buffer(len)
    local rc = C.stoat_stream_seal(k, ad, #ad, plain, #plain, out)
    if rc ~= 0 then
        error(base.errstr(rc), 0)
    end
    return ffi_string(out, len)
end

-- The plain bytes of sealed (a string) under k and ad, or nil when it does
-- not open: altered, or sealed under another key, salt or ad.
function M.open(k, ad, sealed)
    if #sealed < M.OVERHEAD then
        return nil
    end
    local len = #sealed - M.OVERHEAD
    local out = buffer(math.max(len, 1))
    if C.stoat_stream_open(k, ad, #ad, sealed, #sealed, out) ~= 0 then
        return nil
    end
    return len > 0 and ffi_string(out, len) or ""
end

-- What tells master from other keys without holding it: salt ++ an empty
-- piece sealed under that salt's stream key (SALT_LEN + OVERHEAD bytes).
function M.key_check(master)
    local k, salt = M.key(master)
    local sealed = M.seal(k, CHECK_AD, "")
    M.free(k)
    return salt .. sealed
end

-- true when key is the master key check was made from.
function M.key_matches(check, key)
    local k = M.key(key, check:sub(1, M.SALT_LEN))
    local plain = M.open(k, CHECK_AD, check:sub(M.SALT_LEN + 1))
    M.free(k)
    return plain == ""
end

return M
