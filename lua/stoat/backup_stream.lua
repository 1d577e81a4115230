-- stoat.backup_stream: the backup stream format (core/FORMAT.md, "Backup
-- stream"): frames with their CRC-32, the integer encodings, the header,
-- the sealing of frames in a sealed stream (version 2), and the reader
-- that checks a stream frame by frame. stoat/backup.lua writes streams
-- (walking a snapshot) and restores them; this file knows bytes only,
-- never a database.
--
--   local stream = require "stoat.backup_stream"
--   put_frame(write, "E", payload)             -- write(s) gets its bytes
--   local r = stream.reader(fh, "full.bak", key)
--   local header, trailer = r:read_all{ entry = fn, key = fn, frame = fn }
--
-- A sealed stream: the header frame in the clear (with a random salt);
-- every later frame's payload sealed (stoat/seal.lua) under the key of the
-- stream (master key + salt), with associated data frame_ad(type, number,
-- header payload): a frame altered, dropped, repeated, moved or taken from
-- another stream fails to open, an altered header fails every frame.
--
-- No state but the CRC table and the zlib handle, made at load; a reader
-- holds the stream key of its sealed stream (in C memory) until read_all
-- ends or close().

local ffi = require "ffi"
local bit = require "bit"
local base = require "stoat.base"
local options = require "stoat.options"
local seal = require "stoat.seal"

local band, bxor, rshift = bit.band, bit.bxor, bit.rshift
local tobit = bit.tobit
local byte, char, sub = string.byte, string.char, string.sub
local floor = math.floor
local concat = table.concat
local error, pcall, tostring, tonumber = error, pcall, tostring, tonumber

local M = {}

M.FORMAT_VERSION = 1        -- a clear stream
M.SEALED_FORMAT_VERSION = 2 -- a sealed stream: old readers refuse it as "not supported"
M.MAGIC = "STOATBAK"

local KIND_FULL, KIND_INCREMENTAL = 1, 2
M.KIND_FULL, M.KIND_INCREMENTAL = KIND_FULL, KIND_INCREMENTAL
local FLAG_TOMBSTONE = 1 -- of an entry record
M.FLAG_TOMBSTONE = FLAG_TOMBSTONE
local HEADER_SEALED = 1 -- the flags byte of a version 2 header

---------------------------------------------------------------------------
-- CRC-32 (the zlib / ISO-HDLC one): zlib's crc32 when libz loads, else a
-- table in Lua. Both give the same numbers; crc32(s, crc) continues crc.

local zlib
do
    local ok = pcall(ffi.cdef, "unsigned long crc32(unsigned long crc, const uint8_t *buf, "
                               .. "unsigned int len);")
    if ok or pcall(function() return ffi.C.crc32 end) then
        for _, name in ipairs({ "libz.so.1", "z" }) do
            local lok, lib = pcall(ffi.load, name)
            if lok then
                zlib = lib
                break
            end
        end
    end
end

local crc_table = {}
for i = 0, 255 do
    local c = i
    for _ = 1, 8 do
        if band(c, 1) ~= 0 then
            c = bxor(rshift(c, 1), tobit(0xEDB88320))
        else
            c = rshift(c, 1)
        end
    end
    crc_table[i] = c
end

local function crc32_lua(s, crc)
    local c = bxor(crc or 0, -1)
    for i = 1, #s do
        c = bxor(rshift(c, 8), crc_table[band(bxor(c, byte(s, i)), 255)])
    end
    c = bxor(c, -1)
    return c < 0 and c + 4294967296 or c
end

local function crc32(s, crc)
    if zlib == nil then
        return crc32_lua(s, crc)
    end
    return tonumber(zlib.crc32(crc or 0, s, #s))
end
M.crc32, M.crc32_lua = crc32, crc32_lua

---------------------------------------------------------------------------
-- Integer encodings (numbers up to 2^53): fixed little-endian, LEB128.

local function fixed32(n)
    return char(n % 256, floor(n / 256) % 256, floor(n / 65536) % 256,
                floor(n / 16777216) % 256)
end

local function fixed64(n)
    return fixed32(n % 4294967296) .. fixed32(floor(n / 4294967296))
end

local function varint(n)
    if n < 128 then
        return char(n)
    end
    local out, i = {}, 0
    while n >= 128 do
        i = i + 1
        out[i] = char(n % 128 + 128)
        n = floor(n / 128)
    end
    out[i + 1] = char(n)
    return concat(out)
end
M.varint, M.fixed32, M.fixed64 = varint, fixed32, fixed64

local function get_fixed32(s, pos)
    local a, b, c, d = byte(s, pos, pos + 3)
    if d == nil then
        return nil
    end
    return a + b * 256 + c * 65536 + d * 16777216
end

local function get_fixed64(s, pos)
    local lo, hi = get_fixed32(s, pos), get_fixed32(s, pos + 4)
    if hi == nil then
        return nil
    end
    return lo + hi * 4294967296
end

-- value, next position | nil when the bytes end first or it is too long.
local function get_varint(s, pos)
    local n, mul = 0, 1
    for i = pos, pos + 9 do
        local b = byte(s, i)
        if b == nil then
            return nil
        end
        if b < 128 then
            return n + b * mul, i + 1
        end
        n, mul = n + (b - 128) * mul, mul * 128
    end
    return nil
end

---------------------------------------------------------------------------
-- Frames and the header.

-- The associated data of sealed frame number index (the header is frame
-- 0) of type ftype in the stream whose header payload is header.
function M.frame_ad(ftype, index, header)
    return ftype .. fixed64(index) .. header
end

-- Writes one frame through write(s); returns its size in bytes.
function M.put_frame(write, ftype, payload)
    local head = ftype .. fixed32(#payload)
    local crc = crc32(payload, crc32(head))
    write(head)
    write(payload)
    write(fixed32(crc))
    return #payload + 9
end

-- The header frame's payload; salt: the stream's, for a sealed one.
function M.header_payload(kind, since, version, salt)
    local p = M.MAGIC .. fixed32(salt and M.SEALED_FORMAT_VERSION or M.FORMAT_VERSION)
              .. char(kind) .. fixed64(since) .. fixed64(version) .. fixed64(os.time())
              .. varint(#base.version) .. base.version
    if salt then
        p = p .. char(HEADER_SEALED) .. salt
    end
    return p
end

---------------------------------------------------------------------------
-- Reading a stream.

local Reader = {}
Reader.__index = Reader

-- A reader of the stream in file handle fh; name is used in messages; key:
-- the master key (32 bytes) a sealed stream needs, or nil. A sealed
-- stream's key is freed by read_all, or at GC; close() frees it now.
function M.reader(fh, name, key)
    if key ~= nil then
        options.check_key(key, "backup: encryption_key", 1)
    end
    return setmetatable({ fh = fh, name = name or "backup", offset = 0, key = key,
                          index = 0 }, Reader)
end

function Reader:fail(fmt, ...)
    error("corruption: " .. self.name .. ": " .. fmt:format(...), 0)
end

function Reader:close()
    seal.free(self.skey)
    self.skey = nil
end

-- The next frame: type, payload (opened, in a sealed stream), size in the
-- stream | nil at the clean end of the input.
function Reader:frame()
    local head = self.fh:read(5)
    if head == nil or head == "" then
        return nil
    end
    local at = self.offset
    if #head < 5 then
        self:fail("truncated frame header at offset %d", at)
    end
    local len = get_fixed32(head, 2)
    if at == 0 and (sub(head, 1, 1) ~= "H" or len > 4096) then
        self:fail("not a stoat backup (no header)")
    end
    local payload = len > 0 and self.fh:read(len) or ""
    local tail = self.fh:read(4)
    if payload == nil or #payload < len or tail == nil or #tail < 4 then
        self:fail("truncated frame at offset %d", at)
    end
    if crc32(payload, crc32(head)) ~= get_fixed32(tail, 1) then
        self:fail("checksum mismatch in the frame at offset %d", at)
    end
    self.offset = at + 9 + len
    local ftype = sub(head, 1, 1)
    if self.sealed then
        self.index = self.index + 1
        local ad = M.frame_ad(ftype, self.index, self.header_bytes)
        local plain = seal.open(self.skey, ad, payload)
        if plain == nil then
            if self.index == 1 then
                error(("bad key: %s: wrong key or altered stream (its first sealed frame, at "
                       .. "offset %d, does not open)"):format(self.name, at), 0)
            end
            self:fail("the sealed frame at offset %d does not open: altered, moved, or taken "
                      .. "from another stream", at)
        end
        payload = plain
    end
    return ftype, payload, 9 + len
end

-- Parses the header frame's payload into a table, or raises. A sealed
-- stream's header has sealed = true, and needs the reader's key: without
-- it "bad key: ..."; before that, on_header(header) may refuse it.
function Reader:header(on_header)
    local ftype, p = self:frame()
    if ftype ~= "H" or sub(p, 1, 8) ~= M.MAGIC then
        self:fail("not a stoat backup (no header)")
    end
    local version = get_fixed32(p, 9)
    if version ~= M.FORMAT_VERSION and version ~= M.SEALED_FORMAT_VERSION then
        error(("not supported: %s: backup format version %s (this stoat reads %d and %d)")
              :format(self.name, tostring(version), M.FORMAT_VERSION, M.SEALED_FORMAT_VERSION),
              0)
    end
    local h = { kind = byte(p, 13), since = get_fixed64(p, 14), version = get_fixed64(p, 22),
                created = get_fixed64(p, 30), format = version, sealed = false }
    local len, pos = get_varint(p, 38)
    if len == nil or h.created == nil or (h.kind ~= KIND_FULL and h.kind ~= KIND_INCREMENTAL)
       or pos + len - 1 > #p then
        self:fail("malformed header")
    end
    h.library = sub(p, pos, pos + len - 1)
    pos = pos + len
    if version == M.SEALED_FORMAT_VERSION then
        local flags = byte(p, pos)
        if flags ~= HEADER_SEALED or pos + seal.SALT_LEN ~= #p then
            self:fail("malformed header (version %d)", version)
        end
        h.sealed = true
    end
    if on_header then on_header(h) end
    if h.sealed then
        if self.key == nil then
            error(("bad key: %s is a sealed backup (of an encrypted database): give the key "
                   .. "the database had when it was made"):format(self.name), 0)
        end
        self.skey = seal.key(self.key, sub(p, pos + 1, pos + seal.SALT_LEN))
        self.header_bytes = p
        self.sealed = true
    end
    return h
end

-- Decodes the entry records of payload p, calling fn(key, value|nil,
-- expires_at, user_meta, deleted) for each.
function Reader:entries(p, fn)
    local pos, n = 1, #p
    while pos <= n do
        local flags = byte(p, pos)
        local klen, expires_at, vlen
        klen, pos = get_varint(p, pos + 1)
        if klen == nil or pos + klen > n + 1 then self:fail("malformed entry record") end
        local key = sub(p, pos, pos + klen - 1)
        expires_at, pos = get_varint(p, pos + klen)
        if expires_at == nil or pos > n then self:fail("malformed entry record") end
        local user_meta = byte(p, pos)
        pos = pos + 1
        if band(flags, FLAG_TOMBSTONE) ~= 0 then
            fn(key, nil, expires_at, user_meta, true)
        else
            vlen, pos = get_varint(p, pos)
            if vlen == nil or pos + vlen > n + 1 then self:fail("malformed entry record") end
            fn(key, sub(p, pos, pos + vlen - 1), expires_at, user_meta, false)
            pos = pos + vlen
        end
    end
end

-- Decodes the key-list records of payload p, calling fn(key) for each.
function Reader:keys(p, fn)
    local pos, n = 1, #p
    while pos <= n do
        local klen
        klen, pos = get_varint(p, pos)
        if klen == nil or pos + klen > n + 1 then self:fail("malformed key record") end
        fn(sub(p, pos, pos + klen - 1))
        pos = pos + klen
    end
end

-- Reads a whole stream, checking every frame, and calls the handlers of
-- h (all optional): header(header) (before a sealed stream's key is
-- needed: it may raise), entry(key, value, expires_at, user_meta,
-- deleted), key(key), frame(bytes). Returns header, trailer ({entries,
-- keys, version}); raises "corruption: ..." on damage or truncation,
-- "bad key: ..." for a sealed stream without its key or with another.
function Reader:read_all(h)
    local ok, header, trailer = pcall(self.read_frames, self, h or {})
    self:close()
    if not ok then
        error(header, 0)
    end
    return header, trailer
end

function Reader:read_frames(h)
    local header = self:header(h.header)
    local entries, keys, trailer = 0, 0, nil
    local on_entry, on_key = h.entry, h.key
    local function count_entry(...)
        entries = entries + 1
        if on_entry then on_entry(...) end
    end
    local function count_key(k)
        keys = keys + 1
        if on_key then on_key(k) end
    end
    while true do
        local ftype, p, size = self:frame()
        if ftype == nil then
            break
        end
        if trailer then
            self:fail("data after the trailer")
        end
        if ftype == "E" then
            self:entries(p, count_entry)
        elseif ftype == "K" then
            if header.kind ~= KIND_INCREMENTAL then self:fail("key list in a full backup") end
            self:keys(p, count_key)
        elseif ftype == "Z" then
            trailer = { entries = get_fixed64(p, 1), keys = get_fixed64(p, 9),
                        version = get_fixed64(p, 17) }
        else
            self:fail("unknown frame type %q", ftype)
        end
        if h.frame then h.frame(size) end
    end
    if trailer == nil then
        self:fail("truncated: no trailer (the backup did not finish)")
    end
    if trailer.entries ~= entries or trailer.keys ~= keys or trailer.version ~= header.version then
        self:fail("the trailer does not match the frames (%s entries, %s keys)",
                  tostring(trailer.entries), tostring(trailer.keys))
    end
    return header, trailer
end

return M
