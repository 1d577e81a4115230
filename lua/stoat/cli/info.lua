-- stoat.cli.info: `stoat info`, what a database or a backup file holds.
--
-- Of a database: what the library tells (db:stats(), the options of this
-- open, with --count a scan of every key) and what its files tell when
-- read here directly, beside the library: the format version in each
-- kind of file's header and the value log's garbage per file from DISCARD
-- (core/FORMAT.md has both). An encrypted database's headers and DISCARD
-- are sealed, so those are left out. Of a backup file: backup.reader
-- checks it whole. Text for people, or --json. No state.

local stoat = require "stoat"
local backup = require "stoat.backup"
local options = require "stoat.options"
local text = require "stoat.cli.text"
local errors = require "stoat.cli.errors"
local database = require "stoat.cli.database"

local format = string.format
local failure, check = errors.failure, errors.check
local with_db, view = database.with_db, database.view
local exists, file_size = database.exists, database.file_size
local human_bytes = text.human_bytes
local stdout = io.stdout

local M = {}

---------------------------------------------------------------------------
-- The files of a database, read beside the library (headers, DISCARD)

local function read_bytes(path, offset, len)
    local f = io.open(path, "rb")
    if f == nil then return nil end
    f:seek("set", offset)
    local s = f:read(len)
    f:close()
    return s
end

local function u32(s, pos)
    local a, b, c, d = s:byte(pos, pos + 3)
    if d == nil then return nil end
    return a + b * 256 + c * 65536 + d * 16777216
end

local function list_dir(dir)
    local p = io.popen("ls -1A '" .. dir:gsub("'", "'\\''") .. "' 2>/dev/null")
    local names = {}
    for line in p:lines() do names[#names + 1] = line end
    p:close()
    table.sort(names)
    return names
end

-- The garbage bytes per value-log fid from DISCARD (format in
-- core/FORMAT.md; its XXH3 checksum is not checked here).
local function read_discard(dir)
    local s = read_bytes(dir .. "/DISCARD", 0, 16 * 1024 * 1024)
    local out = {}
    if s == nil or #s < 24 or s:sub(1, 8) ~= "STOATDSC" then
        return out, s ~= nil
    end
    local count = u32(s, 13)
    for i = 0, count - 1 do
        local pos = 17 + 12 * i
        local fid = u32(s, pos)
        local lo, hi = u32(s, pos + 4), u32(s, pos + 8)
        if fid == nil or hi == nil then break end
        out[fid] = lo + hi * 4294967296
    end
    return out, true
end

local MAGICS = { wal = "STOATWAL", vlog = "STOATVLG", manifest = "STOATMNF" }

local function header_version(path, magic)
    local s = read_bytes(path, 0, 16)
    if s == nil or #s < 16 or s:sub(1, 8) ~= magic then
        return nil
    end
    return u32(s, 9)
end

-- The files of dir by kind, their format versions and the value log's
-- garbage per file, into info.
local function files_info(dir, info)
    local names = list_dir(dir)
    local files = { sst = {}, vlog = {}, wal = {}, other = {} }
    for _, name in ipairs(names) do
        local kind = name:match("^%d%d%d%d%d%d+%.(%a+)$")
        local entry = { name = name, bytes = file_size(dir .. "/" .. name) or 0 }
        if files[kind] then
            entry.id = tonumber(name:match("^(%d+)"))
            table.insert(files[kind], entry)
        else
            table.insert(files.other, entry)
        end
    end
    -- Encrypted (a KEYREGISTRY is what says so, core/FORMAT.md): the files'
    -- own headers, the SST footers and DISCARD are sealed, so their fields
    -- are not read here. The C API does not say which data key is newest.
    local encrypted = exists(dir .. "/KEYREGISTRY")
    info.encrypted = encrypted
    info.format = {
        manifest = not encrypted and header_version(dir .. "/MANIFEST", MAGICS.manifest) or nil,
    }
    local garbage, have_discard = {}, false
    if not encrypted then
        garbage, have_discard = read_discard(dir)
    end
    info.vlog_files = text.array()
    for _, f in ipairs(files.vlog) do
        local entry = { file = f.name, bytes = f.bytes }
        if not encrypted then -- else the garbage per file is unknown here
            local g = garbage[f.id] or 0
            info.format.vlog = info.format.vlog
                               or header_version(dir .. "/" .. f.name, MAGICS.vlog)
            entry.garbage_bytes = g
            entry.garbage_share = f.bytes > 16 and g / (f.bytes - 16) or 0
        end
        info.vlog_files[#info.vlog_files + 1] = entry
    end
    info.discard_file = have_discard
    info.wal_files = text.array()
    for _, f in ipairs(files.wal) do
        info.format.wal = info.format.wal or not encrypted
                          and header_version(dir .. "/" .. f.name, MAGICS.wal) or nil
        info.wal_files[#info.wal_files + 1] = { file = f.name, bytes = f.bytes }
    end
    if files.sst[1] and not encrypted then
        local path = dir .. "/" .. files.sst[1].name
        local sz = files.sst[1].bytes
        local footer = sz >= 68 and read_bytes(path, sz - 68, 68)
        info.format.sst = footer and u32(footer, 49) or nil
    end
    info.sst_files = #files.sst
end

-- What the library says of the database (db:stats(), and with --count a
-- scan), into info.
local function db_info(o, dir, info)
    with_db(o, dir, "read", function(db)
        local s = check(db:stats())
        info.version = s.last_version
        info.levels = text.array()
        local lsm = 0
        for i, l in ipairs(s.levels) do
            info.levels[i] = { level = i - 1, tables = l.tables, bytes = l.bytes }
            lsm = lsm + l.bytes
        end
        info.memtables = { count = s.memtables, bytes = s.memtable_bytes }
        info.vlog = { files = s.vlog_files, bytes = s.vlog_bytes,
                      garbage_bytes = s.vlog_garbage_bytes }
        info.bytes = { lsm = lsm, vlog = s.vlog_bytes, memtables = s.memtable_bytes,
                       total = lsm + s.vlog_bytes + s.memtable_bytes }
        -- As RocksDB estimates: each tombstone hides one older entry.
        info.keys = { estimate = math.max(0, s.table_entries - 2 * s.table_deletions)
                                 + s.memtable_entries, exact = false }
        if o.count then
            local n, kb, vb = 0, 0, 0
            view(db, function(txn)
                for k, v in txn:pairs() do
                    n, kb, vb = n + 1, kb + #k, vb + #v
                end
                return true
            end)
            info.keys = { count = n, key_bytes = kb, value_bytes = vb, exact = true,
                          estimate = info.keys.estimate }
        end
        info.stats = s
        info.stats.levels = nil
    end)
end

-- The options of this open: the library's defaults (the database does not
-- record the writer's).
local function options_info()
    local co = options.build(nil, 1)
    local out = {}
    for name in pairs(options.FIELDS) do
        local v = co[name]
        out[name] = type(v) == "number" and v or tonumber(v)
    end
    out.read_only = nil
    out.encryption_key = nil -- a pointer (and never shown)
    return out
end

local function gather_info(dir, o)
    local info = { dir = dir }
    files_info(dir, info)
    info.restore_state = backup.read_state(dir)
    db_info(o, dir, info)
    info.options = options_info()
    return info
end

-- What the backup file at path holds, checked whole; a sealed one with
-- its key (key), else only what its clear header says (checked = false).
local function backup_file_info(path, key)
    local f = assert(io.open(path, "rb"))
    local r = backup.reader(f, path, key)
    local clear
    local ok, hdr, trailer = pcall(r.read_all, r, { header = function(h) clear = h end })
    f:close()
    if not ok and not (key == nil and clear and clear.sealed) then failure(hdr) end
    hdr = ok and hdr or clear
    return { file = path, kind = hdr.kind == backup.KIND_FULL and "full" or "incremental",
             since = hdr.since, version = hdr.version, created = hdr.created,
             library = hdr.library, entries = ok and trailer.entries or nil,
             keys_listed = ok and trailer.keys or nil, format_version = hdr.format,
             sealed = hdr.sealed, checked = ok, bytes = file_size(path) }
end

local function print_info(info)
    local w = function(...) stdout:write(format(...), "\n") end
    w("database     %s", info.dir)
    w("encrypted    %s", info.encrypted and "yes (KEYREGISTRY: data keys sealed by the master "
                         .. "key; file headers not shown)" or "no")
    if info.encrypted then
        w("formats      (sealed) (library %s)", stoat.version)
    else
        w("formats      MANIFEST %s, SST %s, value log %s, WAL %s (library %s)",
          tostring(info.format.manifest or "?"), tostring(info.format.sst or "-"),
          tostring(info.format.vlog or "-"), tostring(info.format.wal or "-"), stoat.version)
    end
    w("version      %d (newest commit)", info.version)
    w("size         %s: tables %s, value log %s, memtables %s",
      human_bytes(info.bytes.total), human_bytes(info.bytes.lsm),
      human_bytes(info.bytes.vlog), human_bytes(info.bytes.memtables))
    if info.keys.exact then
        w("keys         %d (exact count), keys %s, values %s", info.keys.count,
          human_bytes(info.keys.key_bytes), human_bytes(info.keys.value_bytes))
    else
        w("keys         about %d (from table and memtable entry counts, minus tombstones and "
          .. "what they hide; --count counts them)", info.keys.estimate)
    end
    w("levels")
    for _, l in ipairs(info.levels) do
        if l.tables > 0 or l.level == 0 then
            w("  L%-2d %6d tables %12s", l.level, l.tables, human_bytes(l.bytes))
        end
    end
    w("memtables    %d, %s in use", info.memtables.count, human_bytes(info.memtables.bytes))
    w("value log    %d files, %s, garbage %s (%s)", info.vlog.files,
      human_bytes(info.vlog.bytes), human_bytes(info.vlog.garbage_bytes),
      info.encrypted and "DISCARD is sealed: no per-file share"
      or info.discard_file and "per file from DISCARD" or "no DISCARD file yet")
    for _, f in ipairs(info.vlog_files) do
        if info.encrypted then
            w("  %-14s %12s", f.file, human_bytes(f.bytes))
        else
            w("  %-14s %12s  garbage %5.1f%%", f.file, human_bytes(f.bytes),
              f.garbage_share * 100)
        end
    end
    if #info.wal_files > 0 then
        w("WAL files    %d", #info.wal_files)
    end
    if info.restore_state then
        w("restored     up to source version %d%s", info.restore_state.version,
          info.restore_state.applying and " (a restore was interrupted)" or "")
    end
    local s = info.stats
    w("counters     flushes %d, compactions %d, commits %d, conflicts %d, open files %d",
      s.flushes, s.compactions, s.txn_commits, s.txn_conflicts, s.open_files)
    w("options      (of this open; the database does not record the writer's options)")
    local names = {}
    for k in pairs(info.options) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do
        w("  %-26s %s", k, tostring(info.options[k]))
    end
end

-- Is path a file (a backup) rather than a database's directory?
local function is_backup_file(path)
    local f = io.open(path .. "/MANIFEST", "rb")
    if f then
        f:close()
        return false
    end
    local is_file = false
    local g = io.open(path, "rb")
    if g then
        is_file = g:read(0) ~= nil
        g:close()
    end
    return is_file
end

local function print_backup_info(bi)
    if not bi.checked then
        stdout:write(format("backup       %s (stream format %d, written by stoat %s)\n"
            .. "kind         %s, since version %d, up to version %d\n"
            .. "sealed       yes: give its key (--key-file) to check it and count its "
            .. "entries\nsize         %s\n",
            bi.file, bi.format_version, bi.library, bi.kind, bi.since, bi.version,
            human_bytes(bi.bytes)))
    else
        stdout:write(format("backup       %s (stream format %d, written by stoat %s)\n"
            .. "kind         %s, since version %d, up to version %d\n"
            .. "sealed       %s\nentries      %d%s\nsize         %s\n"
            .. "checksums    all good%s\n",
            bi.file, bi.format_version, bi.library, bi.kind, bi.since, bi.version,
            bi.sealed and "yes (every frame after the header)" or "no", bi.entries,
            bi.kind == "incremental" and
            format(" (and %d live keys listed)", bi.keys_listed) or "",
            human_bytes(bi.bytes), bi.sealed and ", every authentication tag too" or ""))
    end
end

M.info = {
    opens_db = true,
    summary = "what a database (or a backup file) holds",
    usage = "stoat info DIR [--json] [--count]\n       stoat info BACKUP-FILE [--json]",
    min = 1, names = { "DIR" },
    flags = { json = "bool", count = "bool" },
    help = [[
Shows what a database holds: whether it is encrypted, the format version
of each kind of file, the newest version (commit), sizes (tables per
level, value log, memtables), each value-log file with its garbage share
(from DISCARD), the counters of db:stats(), and the options of this open.
Of an encrypted database (its key from --key-file) the file formats and
the garbage per file are not shown: they are sealed. Opens the database
read-only.
Given a backup file instead of a directory, checks it whole (every
checksum) and shows its kind, versions and counts. A sealed backup (of an
encrypted database) is checked and counted only with its key (--key-file);
without it, what its clear header says is shown.

  --json    one JSON object instead of text
  --count   count keys and their bytes exactly with a scan (without it,
            the key count is an estimate from entry counts)]],
    run = function(o)
        local path = o.args[1]
        local info, print_text
        if is_backup_file(path) then
            info, print_text = backup_file_info(path, o.key), print_backup_info
        else
            info, print_text = gather_info(path, o), print_info
        end
        if o.json then
            stdout:write(text.json_encode(info, 2), "\n")
        else
            print_text(info)
        end
        return 0
    end,
}

return M
