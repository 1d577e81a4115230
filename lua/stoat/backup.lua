-- stoat.backup: backups as a checksummed stream, and their restore.
--
--   local backup = require "stoat.backup"
--   local info = assert(backup.write(db, io.stdout, { since = 0 }))
--   -- info.version: pass it as `since` next time for an incremental
--   local ok, err = backup.restore(db2, { "full.bak", "incr1.bak" }, { dir = path2 })
--   -- an encrypted database: its key again, to seal the backup and to open it
--   backup.write(db, out, { encryption_key = key })
--   backup.restore(db2, files, { encryption_key = key })
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
-- Its bytes (frames, encodings, header, the reader) are
-- stoat/backup_stream.lua; this file walks snapshots and restores.
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
local base = require "stoat.base"
local handle = require "stoat.handle"
local options = require "stoat.options"
local seal = require "stoat.seal"
local stream = require "stoat.backup_stream"

local C = base.C
local errstr = base.errstr
local ffi_string = ffi.string
local char = string.char
local floor = math.floor
local concat = table.concat
local error, pcall, type, tostring, tonumber = error, pcall, type, tostring, tonumber
local varint, fixed64 = stream.varint, stream.fixed64
local frame_ad, put_frame, header_payload = stream.frame_ad, stream.put_frame,
                                            stream.header_payload

local M = {}

-- The stream format's names, for the callers of this module.
for _, name in ipairs({ "FORMAT_VERSION", "SEALED_FORMAT_VERSION", "MAGIC", "KIND_FULL",
                        "KIND_INCREMENTAL", "crc32", "crc32_lua", "varint", "fixed32",
                        "fixed64", "reader" }) do
    M[name] = stream[name]
end
M.STATE_FILE = "RESTORE_STATE"
M.FRAME_TARGET = 1024 * 1024 -- payload bytes at which an entry frame is cut

local KIND_FULL, KIND_INCREMENTAL = stream.KIND_FULL, stream.KIND_INCREMENTAL
local FLAG_TOMBSTONE = stream.FLAG_TOMBSTONE

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
