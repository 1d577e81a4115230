-- stoat.backup: backups as a checksummed stream, and their restore.
--
--   local backup = require "stoat.backup"
--   local info = assert(backup.write(db, io.stdout, { since = 0 }))
--   -- info.version: pass it as `since` next time for an incremental
--   local ok, err = backup.restore(db2, { "full.bak", "incr1.bak" }, { dir = path2 })
--
-- A backup is one snapshot: everything is read inside one db:view, so
-- writers may go on while it runs and the stream still shows the database
-- as it was at one version. A full backup (since = 0) holds every live
-- entry; an incremental one (since = V, the version a previous backup
-- reported) holds the newest version of every key changed after V
-- (tombstones included), plus the list of every live key, so that deletes
-- whose tombstones compaction already dropped are applied too. The stream
-- format is in core/FORMAT.md ("Backup stream"): frames, each with a
-- CRC-32; a stream without its trailer frame is truncated and refused.
--
-- Restore checks every file of the chain first (every checksum, each
-- trailer, that each incremental starts where the previous file ended,
-- and that the first continues the target: a full backup needs an empty
-- database, an incremental the version recorded by the last restore in
-- <dir>/RESTORE_STATE), then applies them in order: a full backup into an
-- empty database as a bulk load (db:loader, stoat/loader.lua: tables
-- written directly, visible at once at the end), the rest with write
-- batches.
-- Expiry times are absolute (unix seconds): an entry that expired in the
-- meantime is deleted instead of restored.
--
-- Encrypted databases: the backup of a database opened with an
-- encryption_key is a sealed stream (format version 2): the header frame
-- stays in the clear (kind, versions, a random salt), every later frame's
-- payload is sealed (stoat/seal.lua) under the stream key derived from the
-- master key and that salt, with the frame's type, its index and the
-- whole header as associated data, so that a frame altered, dropped,
-- moved, or taken from another stream fails to open, and an altered
-- header fails every frame. write() needs the master key again
-- (opts.encryption_key; the database object keeps only a check of it)
-- unless `plaintext = true` asks for a clear stream on purpose. A sealed
-- stream restores only with the same master key (opts.encryption_key), and
-- into a database opened without a key only with `plaintext = true`: a
-- restore must not quietly write in the clear what the backup kept
-- sealed. A restore into a database opened with a key writes everything
-- encrypted, whatever the stream.
--
-- walk() is the raw snapshot walk the CLI's dump also uses: metadata
-- (version, expiry, user meta, tombstone) from stoat_iter_meta, which
-- txn:pairs does not expose.
--
-- No state: every call works on its arguments. Reads the C handles of the
-- Lua transaction (txn._ptr, txn._node) to open iterators with options
-- txn:pairs does not have.

local ffi = require "ffi"
local bit = require "bit"
local base = require "stoat.base"
local handle = require "stoat.handle"
local options = require "stoat.options"
local seal = require "stoat.seal"

local C = base.C
local errstr = base.errstr
local ffi_string = ffi.string
local band, bxor, rshift = bit.band, bit.bxor, bit.rshift
local tobit = bit.tobit
local byte, char, sub = string.byte, string.char, string.sub
local floor = math.floor
local concat = table.concat
local error, pcall, type, tostring, tonumber = error, pcall, type, tostring, tonumber

local M = {}

M.FORMAT_VERSION = 1        -- a clear stream
M.SEALED_FORMAT_VERSION = 2 -- a sealed stream: old readers refuse it as "not supported"
M.MAGIC = "STOATBAK"
M.STATE_FILE = "RESTORE_STATE"
M.FRAME_TARGET = 1024 * 1024 -- payload bytes at which an entry frame is cut

local KIND_FULL, KIND_INCREMENTAL = 1, 2
M.KIND_FULL, M.KIND_INCREMENTAL = KIND_FULL, KIND_INCREMENTAL
local FLAG_TOMBSTONE = 1
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
-- The raw snapshot walk.

local iter_opts = ffi.new("stoat_iter_options")
local u64 = ffi.new("uint64_t[2]")
local u8 = ffi.new("uint8_t[1]")
local int_out = ffi.new("int[1]")
local ptr_out, len_out = base.ptr_out, base.len_out

-- Calls fn(key, value, version, expires_at, user_meta, deleted) for every
-- entry of the snapshot of Lua transaction txn, in key order. opts:
--   prefix      only keys starting with it
--   keys_only   value is nil (and never read)
--   since       only keys whose newest version is > since, tombstones
--               included (deleted = true, value nil); without it, live
--               entries only
-- fn may raise; the iterator is closed either way. Returns the number of
-- entries passed to fn, or raises "<word>: <detail>" on a read error.
function M.walk(txn, opts, fn)
    ffi.fill(iter_opts, ffi.sizeof(iter_opts))
    local prefix = opts.prefix
    if prefix ~= nil and prefix ~= "" then
        iter_opts.prefix, iter_opts.prefix_len = prefix, #prefix
    end
    local since = opts.since
    local keys_only = opts.keys_only and true or false
    iter_opts.keys_only = keys_only and 1 or 0
    iter_opts.all_versions = since ~= nil and 1 or 0
    local rc = C.stoat_txn_iter_open(txn._ptr, iter_opts, base.iter_out)
    if rc ~= 0 then
        error(errstr(rc), 0)
    end
    local node = handle.new(txn._node, base.iter_out[0], C.stoat_iter_close)
    local token = handle.attach(node)
    local it = node.addr
    local count, last = 0, nil
    local ok, err = pcall(function()
        rc = C.stoat_iter_seek_first(it)
        while C.stoat_iter_valid(it) ~= 0 do
            rc = C.stoat_iter_key(it, ptr_out, len_out)
            if rc ~= 0 then error(errstr(rc), 0) end
            local key = ffi_string(ptr_out[0], len_out[0])
            if key ~= last then -- with all_versions, the newest version comes first
                last = key
                rc = C.stoat_iter_meta(it, u64, u64 + 1, u8, int_out)
                if rc ~= 0 then error(errstr(rc), 0) end
                local version = tonumber(u64[0])
                local deleted = int_out[0] ~= 0
                if since == nil or version > since then
                    local value
                    if not keys_only and not deleted then
                        rc = C.stoat_iter_value(it, ptr_out, len_out)
                        if rc ~= 0 then error(errstr(rc), 0) end
                        value = ffi_string(ptr_out[0], len_out[0])
                    end
                    count = count + 1
                    fn(key, value, version, tonumber(u64[1]), u8[0], deleted)
                end
            end
            C.stoat_iter_next(it)
        end
        rc = C.stoat_iter_status(it)
        if rc ~= 0 then error(errstr(rc), 0) end
    end)
    handle.close_now(token, node)
    if not ok then
        error(err, 0)
    end
    return count
end

---------------------------------------------------------------------------
-- Writing a stream.

-- The associated data of sealed frame number index (the header is frame
-- 0) of type ftype in the stream whose header payload is header.
local function frame_ad(ftype, index, header)
    return ftype .. fixed64(index) .. header
end

-- Writes one frame through write(s); returns its size in bytes.
local function put_frame(write, ftype, payload)
    local head = ftype .. fixed32(#payload)
    local crc = crc32(payload, crc32(head))
    write(head)
    write(payload)
    write(fixed32(crc))
    return #payload + 9
end

local function writer_of(out)
    if type(out) == "function" then
        return out
    end
    return function(s)
        local ok, err = out:write(s)
        if not ok then
            error("io: writing the backup: " .. tostring(err), 0)
        end
    end
end

-- The header frame's payload; salt: the stream's, for a sealed one.
local function header_payload(kind, since, version, salt)
    local p = M.MAGIC .. fixed32(salt and M.SEALED_FORMAT_VERSION or M.FORMAT_VERSION)
              .. char(kind) .. fixed64(since) .. fixed64(version) .. fixed64(os.time())
              .. varint(#base.version) .. base.version
    if salt then
        p = p .. char(HEADER_SEALED) .. salt
    end
    return p
end

-- The master key write() seals db's backup under (nil: a clear stream),
-- from opts, or nil, err. Raises on misuse.
local function backup_key(db, opts)
    local key = opts.encryption_key
    if key ~= nil then
        options.check_key(key, "backup: encryption_key", 2)
        if opts.plaintext then
            error("stoat: backup: plaintext and encryption_key exclude each other", 3)
        end
    end
    if db._encrypted and not opts.plaintext then
        if key == nil then
            return nil, "bad key: the database is encrypted: give its key (encryption_key) for "
                        .. "a sealed backup, or plaintext = true (`stoat backup --plaintext`) "
                        .. "for one in the clear"
        elseif not seal.key_matches(db._key_check, key) then
            return nil, "bad key: encryption_key is not the key the database was opened with"
        end
        return key
    elseif key ~= nil then
        return nil, "bad key: the database is not encrypted: a backup is sealed under the key "
                    .. "of an encrypted database (drop encryption_key)"
    end
    return nil
end

-- Writes a backup of db to out (a file handle or a function(s)). opts:
--   since           0 (default): full; V: what changed after version V
--   progress        an object with :add(n) and optional :total(n), or nil
--   on_frame        function(info) called after each frame (tests use it to
--                   write to the database while the backup runs)
--   encryption_key  the key db was opened with (32 bytes): needed for an
--                   encrypted database, whose backup is then sealed (a
--                   different key: nil, "bad key: ..."; none: nil,
--                   "bad key: ..." unless plaintext)
--   plaintext       true: back up an encrypted database in the clear, on
--                   purpose (not with encryption_key)
-- Returns { kind, since, version, entries, keys, bytes, sealed } (version
-- is the snapshot's: pass it as `since` next time) | nil, err.
function M.write(db, out, opts)
    opts = opts or {}
    local since = opts.since or 0
    if type(since) ~= "number" or since < 0 or since ~= floor(since) then
        error("stoat: backup: since must be a non-negative integer version", 2)
    end
    local master, kerr = backup_key(db, opts)
    if kerr then
        return nil, kerr
    end
    local write = writer_of(out)
    local progress, on_frame = opts.progress, opts.on_frame
    local kind = since > 0 and KIND_INCREMENTAL or KIND_FULL
    local info = { kind = kind, since = since, entries = 0, keys = 0, bytes = 0,
                   sealed = master ~= nil }
    local skey -- the stream key of a sealed stream
    local function body(txn)
        local version = txn:read_version()
        info.version = version
        if since > version then
            error("invalid: --since " .. since .. " is newer than the database (version "
                  .. version .. ")", 0)
        end
        if progress and progress.total then
            progress:total(M.walk(txn, { keys_only = true,
                                         since = kind == KIND_INCREMENTAL and since or nil },
                                  function() end))
        end
        local salt
        if master then
            skey, salt = seal.key(master)
        end
        local header = header_payload(kind, since, version, salt)
        info.bytes = info.bytes + put_frame(write, "H", header)
        local index = 0
        -- Every frame after the header: sealed in a sealed stream.
        local function emit(ftype, payload)
            index = index + 1
            if skey then
                payload = seal.seal(skey, frame_ad(ftype, index, header), payload)
            end
            info.bytes = info.bytes + put_frame(write, ftype, payload)
        end
        local parts, n, size = {}, 0, 0
        local function cut(ftype)
            if n > 0 then
                emit(ftype, concat(parts, "", 1, n))
                n, size = 0, 0
                if on_frame then on_frame(info) end
            end
        end
        M.walk(txn, { since = kind == KIND_INCREMENTAL and since or nil },
               function(key, value, _, expires_at, user_meta, deleted)
            local rec
            if deleted then
                rec = char(FLAG_TOMBSTONE) .. varint(#key) .. key .. varint(expires_at)
                      .. char(user_meta)
            else
                rec = char(0) .. varint(#key) .. key .. varint(expires_at) .. char(user_meta)
                      .. varint(#value) .. value
            end
            n = n + 1
            parts[n] = rec
            size = size + #rec
            info.entries = info.entries + 1
            if progress then progress:add(1, #rec) end
            if size >= M.FRAME_TARGET then cut("E") end
        end)
        cut("E")
        if kind == KIND_INCREMENTAL then
            M.walk(txn, { keys_only = true }, function(key)
                local rec = varint(#key) .. key
                n = n + 1
                parts[n] = rec
                size = size + #rec
                info.keys = info.keys + 1
                if size >= M.FRAME_TARGET then cut("K") end
            end)
            cut("K")
        end
        emit("Z", fixed64(info.entries) .. fixed64(info.keys) .. fixed64(version))
        return true
    end
    -- pcall: whether db:view returns or propagates the closure's error.
    local ok, res, err = pcall(db.view, db, body)
    seal.free(skey)
    if not ok then
        return nil, tostring(res)
    elseif res == nil then
        return nil, tostring(err)
    end
    return info
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
        local plain = seal.open(self.skey, frame_ad(ftype, self.index, self.header_bytes), payload)
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

---------------------------------------------------------------------------
-- Restore.

-- The restore state of directory dir: { version =, applying = } or nil.
function M.read_state(dir)
    local f = io.open(dir .. "/" .. M.STATE_FILE, "rb")
    if f == nil then
        return nil
    end
    local s = f:read("*a")
    f:close()
    local version = tonumber(s:match("\nversion (%d+)\n"))
    if not s:match("^stoat%-restore 1\n") or version == nil then
        error("corruption: " .. dir .. "/" .. M.STATE_FILE .. " is malformed", 0)
    end
    local from, to = s:match("\napplying (%d+) (%d+)\n")
    return { version = version, applying = from and { tonumber(from), tonumber(to) } or nil }
end

local function write_state(dir, version, applying)
    local path = dir .. "/" .. M.STATE_FILE
    local f, err = io.open(path .. ".tmp", "wb")
    if f == nil then
        error("io: " .. tostring(err), 0)
    end
    f:write("stoat-restore 1\nversion ", ("%d"):format(version), "\n")
    if applying then
        f:write(("applying %d %d\n"):format(applying[1], applying[2]))
    end
    f:close()
    local ok, rerr = os.rename(path .. ".tmp", path)
    if not ok then
        error("io: " .. tostring(rerr), 0)
    end
end

local function open_file(path)
    if path == "-" then
        return io.stdin
    end
    local f, err = io.open(path, "rb")
    if f == nil then
        error("io: " .. tostring(err), 0)
    end
    return f
end

-- The header of the backup at path; of a sealed one, with key (its master
-- key), after its first sealed frame opened: a missing or wrong key is
-- told ("bad key: ...") from two frames, before anything else is done.
-- Raises as read_all. The rest of the file is not read.
function M.probe(path, key)
    local f = open_file(path)
    local r = M.reader(f, path, key)
    local ok, hdr = pcall(function()
        local h = r:header()
        if h.sealed then r:frame() end
        return h
    end)
    r:close()
    f:close()
    if not ok then
        error(hdr, 0)
    end
    return hdr
end

local function is_empty(db)
    local ok, res, err = pcall(db.view, db, function(txn)
        local it = txn:pairs{ keys_only = true, limit = 1 }
        return it() == nil
    end)
    if not ok then error(res, 0) end
    if res == nil then error(err, 0) end
    return res
end

-- Refuses (raises) to restore the sealed backup at path into db, opened
-- without a key, unless plaintext.
local function check_target(db, path, hdr, plaintext)
    if hdr.sealed and not db._encrypted and not plaintext then
        error(("invalid: %s is a sealed backup and the database it would go into is not "
               .. "encrypted: its keys and values would be written in the clear (open the "
               .. "target with an encryption_key, or pass plaintext = true; `stoat restore "
               .. "--plaintext`)"):format(path), 0)
    end
end

-- Checks every file whole (master: the key of sealed ones) and that they
-- form a chain that continues database db (in dir): returns their
-- headers. Raises "invalid: ..." naming the gap.
local function check_chain(db, dir, files, master, plaintext, progress)
    local state = M.read_state(dir)
    local headers = {}
    for i, path in ipairs(files) do
        local f = open_file(path)
        local r = M.reader(f, path, master)
        local ok, hdr = pcall(r.read_all, r, {
            header = function(h) check_target(db, path, h, plaintext) end,
            frame = progress and function(n) progress:add(0, n) end })
        f:close()
        if not ok then error(hdr, 0) end
        headers[i] = hdr
    end
    local at -- the version the database holds, nil: empty (needs a full)
    if state then
        at = state.version
        if state.applying then
            -- A restore was interrupted: the same file may be applied again.
            local first = headers[1]
            if first.since ~= state.applying[1] or first.version ~= state.applying[2] then
                error(("invalid: %s: an interrupted restore of the backup from version %d to %d "
                       .. "must be finished first (run it again with that file)")
                      :format(dir, state.applying[1], state.applying[2]), 0)
            end
            at = first.since
        end
    elseif not is_empty(db) then
        error("invalid: " .. dir .. " holds data that no restore wrote; restore into an empty "
              .. "database", 0)
    end
    for i, hdr in ipairs(headers) do
        if at == nil then
            if hdr.kind ~= KIND_FULL then
                error(("invalid: %s is an incremental backup (since version %d), but the "
                       .. "database is empty: restore a full backup first"):format(files[i],
                      hdr.since), 0)
            end
        elseif hdr.kind == KIND_FULL and not (state and state.applying and i == 1) then
            error(("invalid: %s is a full backup, but the database already holds a restore "
                   .. "(up to version %d)"):format(files[i], at), 0)
        elseif hdr.kind == KIND_INCREMENTAL and hdr.since ~= at then
            error(("invalid: gap in the chain: %s holds changes since version %d, but the "
                   .. "database is at version %d%s"):format(files[i], hdr.since, at,
                   hdr.since > at and " (a backup in between is missing)" or
                   " (it overlaps what is already restored)"), 0)
        end
        at = hdr.version
    end
    return headers
end

local function commit_batch(b)
    local ok, err = b:commit()
    if not ok then error(err, 0) end
end

-- Deletes every key of db that the incremental's key list (read from
-- reader r, whose entries were applied already) does not hold.
local function apply_key_list(db, path, master, progress)
    local f = open_file(path)
    local r = M.reader(f, path, master)
    local b = db:batch()
    local doomed = 0
    -- Merge walk: both sides are sorted. The key list of one file is held
    -- one frame at a time by the reader; the database side is a snapshot.
    local ok, res, err = pcall(db.view, db, function(txn)
        local it = txn:pairs{ keys_only = true }
        local cur = it()
        local function visit(k)
            while cur ~= nil and cur < k do
                local dok, derr = b:delete(cur)
                if not dok then error(derr, 0) end
                doomed = doomed + 1
                cur = it()
            end
            if cur == k then cur = it() end
        end
        r:read_all({ key = visit, frame = progress and function(n) progress:add(0, n) end })
        while cur ~= nil do
            local dok, derr = b:delete(cur)
            if not dok then error(derr, 0) end
            doomed = doomed + 1
            cur = it()
        end
        return true
    end)
    f:close()
    if not ok then b:close(); error(res, 0) end
    if res == nil then b:close(); error(err, 0) end
    commit_batch(b)
    return doomed
end

-- Applies one checked file to db. A full backup into an empty database is
-- bulk loaded (db:loader: its entries come in key order), unless `batches`;
-- should the loader find data in its range after all (tombstones that
-- is_empty does not see), the file is applied again through batches.
local function apply_file(db, path, hdr, master, progress, batches)
    local f = open_file(path)
    local ld, b
    if not batches and hdr.kind == KIND_FULL and is_empty(db) then
        ld = db:loader()
    end
    if ld == nil then
        b = db:batch()
    end
    local now = tonumber(C.stoat_clock_ms()) -- expiries are unix milliseconds
    local stats = { set = 0, deleted = 0, expired = 0, bulk = ld ~= nil }
    local ok, err = pcall(function()
        M.reader(f, path, master):read_all({
            entry = function(key, value, expires_at, user_meta, deleted)
                local rok, rerr = true, nil
                if deleted or (expires_at ~= 0 and expires_at <= now) then
                    if not deleted then stats.expired = stats.expired + 1 end
                    stats.deleted = stats.deleted + 1
                    if b then rok, rerr = b:delete(key) end -- nothing to delete in a bulk load
                elseif ld then
                    rok, rerr = ld:add(key, value, (expires_at ~= 0 or user_meta ~= 0) and
                                       { expires_at = expires_at, meta = user_meta } or nil)
                elseif expires_at ~= 0 or user_meta ~= 0 then
                    rok, rerr = b:set(key, value, { ttl = expires_at ~= 0 and
                                                           (expires_at - now) / 1000 or 0,
                                                    meta = user_meta })
                else
                    rok, rerr = b:set(key, value)
                end
                if not rok then error(rerr, 0) end
                stats.set = stats.set + (deleted and 0 or 1)
                if progress then progress:add(1, 0) end
            end,
            frame = progress and function(n) progress:add(0, n) end,
        })
    end)
    f:close()
    if not ok then
        if ld then ld:abort() else b:close() end
        error(err, 0)
    end
    if ld then
        local version, ferr = ld:finish()
        if version == nil and tostring(ferr):match("^exists") then
            return apply_file(db, path, hdr, master, progress, true)
        elseif version == nil then
            error(ferr, 0)
        end
    else
        commit_batch(b)
    end
    if hdr.kind == KIND_INCREMENTAL then
        stats.deleted = stats.deleted + apply_key_list(db, path, master, progress)
    end
    return stats
end

-- Restores the files (paths, "-" for stdin only as the single file) into
-- db, whose directory is opts.dir (for RESTORE_STATE). opts:
--   encryption_key  the master key sealed backups were made under (the
--                   source's key then; 32 bytes); clear ones ignore it.
--                   Without it, or with another: nil, "bad key: ..."
--   plaintext       true: a sealed backup may go into db although db was
--                   opened without a key (else nil, "invalid: ...")
--   progress, check_progress   as in write, for the apply and check passes
--   on_file         function(path, header, stats) after each file
-- Returns { version =, files = n } | nil, err. Nothing is written before
-- every file has been checked whole (with a sealed one, every tag).
function M.restore(db, files, opts)
    opts = opts or {}
    local dir = opts.dir or db.dir
    local master = opts.encryption_key
    if master ~= nil then
        options.check_key(master, "restore: encryption_key", 1)
    end
    local ok, res = pcall(function()
        for _, path in ipairs(files) do
            if path == "-" and #files > 1 then
                error("invalid: restore reads stdin ('-') only as its single file", 0)
            end
        end
        if #files == 1 and files[1] == "-" then
            error("invalid: restore checks a backup before applying it, so it reads files: "
                  .. "save the stream to a file first", 0)
        end
        local headers = check_chain(db, dir, files, master, opts.plaintext,
                                    opts.check_progress)
        local version
        for i, path in ipairs(files) do
            local hdr = headers[i]
            write_state(dir, hdr.kind == KIND_FULL and 0 or hdr.since, { hdr.since, hdr.version })
            local stats = apply_file(db, path, hdr, master, opts.progress)
            local sok, serr = db:sync()
            if not sok then error(serr, 0) end
            write_state(dir, hdr.version)
            version = hdr.version
            if opts.on_file then opts.on_file(path, hdr, stats) end
        end
        return { version = version, files = #files }
    end)
    if not ok then
        return nil, tostring(res)
    end
    return res
end

return M
