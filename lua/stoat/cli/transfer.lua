-- stoat.cli.transfer: entries in and out of a database.
--
--   stoat dump DIR > FILE, stoat load DIR < FILE     as text (JSON lines or TSV)
--   stoat backup DIR > FILE, stoat restore DIR FILE...   as backup streams
--
-- dump and load carry the live entries of one snapshot, readable and
-- editable, through stoat/cli/text.lua's encodings; load bulk loads into
-- an empty database. backup and restore carry everything, incrementals
-- included, in the versioned, checksummed (and for an encrypted database
-- sealed) stream of stoat.backup (core/FORMAT.md, "Backup stream").
-- Progress goes to stderr (stoat/cli/progress.lua). No state.

local backup = require "stoat.backup"
local text = require "stoat.cli.text"
local progress = require "stoat.cli.progress"
local errors = require "stoat.cli.errors"
local database = require "stoat.cli.database"
local C = require("stoat.base").C

local format = string.format
local usage_error, failure, check = errors.usage_error, errors.failure, errors.check
local with_db, view = database.with_db, database.view
local exists, file_size = database.exists, database.file_size
local human_bytes = text.human_bytes
local stdout, stderr = io.stdout, io.stderr

local M = {}

-- A progress line on stderr, silenced by --quiet.
local function new_progress(o, label, unit)
    return progress.new{ label = label, unit = unit, quiet = o.quiet }
end

---------------------------------------------------------------------------
-- dump, load

local function count_keys(txn, prefix)
    return backup.walk(txn, { prefix = prefix, keys_only = true }, function() end)
end

local esc, is_utf8, b64, js = text.tsv_escape, text.is_utf8, text.base64_encode, text.json_string

-- One entry as a line of dump's format fmt ("jsonl" or "tsv"); parse_line
-- reads it back.
local function dump_line(fmt, k, v, exp, meta)
    if fmt == "tsv" then
        if exp ~= 0 or meta ~= 0 then
            return format("%s\t%s\t%d\t%d\n", esc(k), esc(v), exp, meta)
        end
        return esc(k) .. "\t" .. esc(v) .. "\n"
    end
    local kp = is_utf8(k) and '{"key":' .. js(k) or '{"key_b64":"' .. b64(k) .. '"'
    local vp = is_utf8(v) and ',"value":' .. js(v) or ',"value_b64":"' .. b64(v) .. '"'
    local extra = ""
    if exp ~= 0 then extra = format(',"expires_at_ms":%d', exp) end
    if meta ~= 0 then extra = extra .. format(',"meta":%d', meta) end
    return kp .. vp .. extra .. "}\n"
end

M.dump = {
    opens_db = true,
    summary = "write entries as JSON lines or TSV",
    usage = "stoat dump DIR [--prefix P] [--format jsonl|tsv] [--output FILE]",
    min = 1, names = { "DIR" },
    flags = { prefix = "string", format = { "jsonl", "tsv" }, output = "string" },
    help = [[
Writes every live entry of one snapshot, in key order, as text that
`stoat load` reads back exactly (binary-safe):

  jsonl (default)  one JSON object per line: {"key":...,"value":...}, plus
                   "expires_at_ms" (unix milliseconds) and "meta" when set; a key or
                   value that is not valid UTF-8 is base64 under "key_b64" /
                   "value_b64" instead
  tsv              KEY<TAB>VALUE[<TAB>EXPIRES_AT_MS<TAB>META], escaped as in scan

  --prefix P       only keys starting with P
  --output FILE    write to FILE instead of stdout]],
    run = function(o)
        local out = stdout
        if o.output then
            out = check(io.open(o.output, "wb"))
        end
        local fmt = o.format or "jsonl"
        local status = with_db(o, o.args[1], "read", function(db)
            local p = new_progress(o, "dump", "keys")
            view(db, function(txn)
                if not o.quiet then p:total(count_keys(txn, o.prefix)) end
                backup.walk(txn, { prefix = o.prefix }, function(k, v, _, exp, meta)
                    local line = dump_line(fmt, k, v, exp, meta)
                    local ok, err = out:write(line)
                    if not ok then failure("writing: " .. tostring(err)) end
                    p:add(1, #line)
                end)
                return true
            end)
            p:finish()
            return 0
        end)
        if out ~= stdout then out:close() end
        return status
    end,
}

-- Parses one dump line: key, value, expires_at, meta | raises a failure.
local function parse_line(fmt, line, lineno)
    local function bad(why)
        failure(format("line %d: %s", lineno, why))
    end
    if fmt == "tsv" then
        local fields = {}
        for f in (line .. "\t"):gmatch("([^\t]*)\t") do fields[#fields + 1] = f end
        if #fields ~= 2 and #fields ~= 4 then bad("expected 2 or 4 tab-separated fields") end
        local k, kerr = text.tsv_unescape(fields[1])
        local v, verr = text.tsv_unescape(fields[2])
        if not k or not v then bad(kerr or verr) end
        local exp, meta = tonumber(fields[3] or "0"), tonumber(fields[4] or "0")
        if exp == nil or meta == nil then bad("expiry and meta must be numbers") end
        return k, v, exp, meta
    end
    local obj, err = text.json_decode(line)
    if type(obj) ~= "table" then bad(err or "expected a JSON object") end
    local k, v = obj.key, obj.value
    if obj.key_b64 then k, err = text.base64_decode(obj.key_b64) end
    if k == nil then bad(err or "no key") end
    if obj.value_b64 then v, err = text.base64_decode(obj.value_b64) end
    if v == nil then bad(err or "no value") end
    if type(k) ~= "string" or type(v) ~= "string" then bad("key and value must be strings") end
    return k, v, obj.expires_at_ms or 0, obj.meta or 0
end

-- Is the database empty (no live key, no entry in any table or memtable)?
local function db_is_empty(db)
    local st = db:stats()
    if st and (st.table_entries > 0 or st.memtable_entries > 0) then
        return false
    end
    return view(db, function(txn)
        return txn:pairs{ keys_only = true, limit = 1 }() == nil
    end)
end

-- Writes entries through a loader while keys keep increasing (bulk), else
-- through batches: the sink of `stoat load`. mode: "bulk" (a key out of
-- order fails), "auto" (the first key out of order installs what the
-- loader holds, then batches take over), "batch".
local function load_sink(db, mode)
    local sink = { bulk = 0, batched = 0 }
    local ld, b, last
    if mode ~= "batch" then
        local err
        ld, err = db:loader()
        if ld == nil and mode == "auto" and tostring(err):match("^busy") then
            b = check(db:batch())   -- another process runs the background work
        else
            ld = check(ld, err)
        end
    else
        b = check(db:batch())
    end
    local function to_batches()
        local ok, err = ld:finish()
        check(ok, err, "bulk load")
        ld = nil
        b = check(db:batch())
    end
    -- opts: nil or { expires_at =, meta = }.
    function sink.put(k, v, opts, where)
        if ld and last ~= nil and k <= last then
            if mode == "bulk" then
                failure(format("%s: keys are not in increasing order (%s after %s): --bulk needs "
                               .. "sorted input (stoat dump writes it)", where,
                               text.tsv_escape(k), text.tsv_escape(last)))
            end
            to_batches()
        end
        if ld then
            local ok, err = ld:add(k, v, opts)
            check(ok, err, where)
            last = k
            sink.bulk = sink.bulk + 1
        else
            local bopts
            if opts then
                local now = tonumber(C.stoat_clock_ms())
                bopts = { ttl = opts.expires_at ~= 0 and (opts.expires_at - now) / 1000 or 0,
                          meta = opts.meta }
            end
            local ok, err = b:set(k, v, bopts)
            check(ok, err, where)
            sink.batched = sink.batched + 1
        end
    end
    -- Installs / commits what is held; ok = false drops a loader's entries.
    function sink.close(ok)
        if ld then
            if not ok then
                ld:abort()
                return
            end
            local version, err = ld:finish()
            check(version, err, "bulk load")
        elseif b then
            check(b:commit())
        end
    end
    return sink
end

-- The bytes from input's position to its end, or nil when it cannot seek
-- (a pipe).
local function bytes_left(input)
    local here = input:seek("cur")
    local size = here and input:seek("end")
    if size then
        input:seek("set", here)
        return size - here
    end
    return nil
end

-- Reads input's lines in format fmt into sink, skipping the entries whose
-- expiry has passed; p counts them.
local function load_lines(input, fmt, sink, p)
    local now = tonumber(C.stoat_clock_ms()) -- expiries are unix milliseconds
    local lineno = 0
    for line in input:lines() do
        lineno = lineno + 1
        if line ~= "" then
            local k, v, exp, meta = parse_line(fmt, line, lineno)
            if exp == 0 or exp > now then
                local opts
                if exp ~= 0 or meta ~= 0 then
                    opts = { expires_at = exp, meta = meta }
                end
                sink.put(k, v, opts, format("line %d", lineno))
            end
            p:add(1, #line + 1)
        else
            p:add(0, 1)
        end
    end
end

M.load = {
    opens_db = true,
    summary = "read entries written by dump",
    usage = "stoat load DIR [--format jsonl|tsv] [--bulk|--no-bulk] [FILE] < FILE",
    min = 1, max = 2, names = { "DIR", "FILE" },
    flags = { format = { "jsonl", "tsv" }, bulk = "bool", no_bulk = "bool" },
    help = [[
Reads entries in dump's formats (from FILE, or stdin), creating the
database if needed. Existing keys are overwritten; nothing is deleted.
Entries whose expiry has passed are skipped. Stops at the first malformed
line, naming it.

Into an empty database the entries are bulk loaded: written straight into
tables and installed at once when the input ends (several times faster
than write batches; nothing is visible before the end, and nothing at all
if the load stops at a bad line). That needs keys in increasing order, as
dump writes them: at the first key that is not, what came before is
installed and the rest goes through write batches. Into a database that
holds data, write batches are used (what came before a bad line is
written), and so they are into one another process has open and does
the background work of (bulk loads run there; --bulk then fails).

  --format jsonl|tsv   the input format (default jsonl)
  --bulk               always bulk load, also into a database that holds
                       data (its keys must then lie outside the input's key
                       range); input out of order fails
  --no-bulk            always use write batches]],
    run = function(o)
        if o.bulk and o.no_bulk then
            usage_error("--bulk and --no-bulk exclude each other")
        end
        local fmt = o.format or "jsonl"
        local input = io.stdin
        if o.args[2] and o.args[2] ~= "-" then
            input = check(io.open(o.args[2], "rb"))
        end
        local total = bytes_left(input)
        return with_db(o, o.args[1], "create", function(db)
            local p = progress.new{ label = "load", unit = "keys", quiet = o.quiet,
                                    by_bytes = true }
            if total then p:total(total) end
            local mode = o.bulk and "bulk" or o.no_bulk and "batch"
                         or (db_is_empty(db) and "auto" or "batch")
            local sink = load_sink(db, mode)
            local ok, err = pcall(load_lines, input, fmt, sink, p)
            if not ok then
                sink.close(false)
                error(err, 0)
            end
            sink.close(true)
            p:finish()
            if not o.quiet then
                stderr:write(format("load: %d entries%s\n", sink.bulk + sink.batched,
                                    sink.bulk > 0 and format(" (%d bulk loaded%s)", sink.bulk,
                                        sink.batched > 0 and format(", %d through write batches "
                                        .. "after the first key out of order", sink.batched)
                                        or "") or ""))
            end
            return 0
        end)
    end,
}

---------------------------------------------------------------------------
-- backup, restore

M.backup = {
    opens_db = true,
    summary = "a full or incremental backup stream",
    usage = "stoat backup DIR [--since VERSION] [--output FILE] [--plaintext] > FILE",
    min = 1, names = { "DIR" },
    flags = { since = "number", output = "string", plaintext = "bool" },
    help = [[
Writes a backup of one consistent snapshot to stdout (or FILE): a
versioned, checksummed stream (core/FORMAT.md, "Backup stream") that can
be piped anywhere. Without --since it is full; with --since VERSION it
holds only what changed after VERSION, plus the list of live keys so that
deletes are carried too. The summary on stderr names the version to pass
as --since next time. Refuses to write to a terminal.

The backup of an encrypted database (its key from --key-file) is sealed:
every frame after a short clear header (kind, versions, a random salt) is
encrypted and authenticated under a key derived from the database's key,
so that restore needs that key, and a frame changed, dropped or moved is
refused. --plaintext writes it in the clear instead, on purpose (keep such
a file as safe as the key).

  --since VERSION   an incremental backup after VERSION (from the previous
                    backup's summary, or `stoat info FILE`)
  --output FILE     write to FILE instead of stdout
  --plaintext       write the backup of an encrypted database in the clear]],
    run = function(o)
        local since = o.since or 0
        if since < 0 or since ~= math.floor(since) then
            usage_error("--since must be a non-negative integer version")
        end
        local out = stdout
        if o.output then
            out = check(io.open(o.output, "wb"))
        elseif progress.isatty(1) then
            usage_error("refusing to write a binary backup to a terminal: redirect stdout "
                        .. "or use --output FILE")
        end
        local info = with_db(o, o.args[1], "read", function(db)
            local p = new_progress(o, "backup", "entries")
            -- The database opened, so o.key is its key (or there is none).
            local res = check(backup.write(db, out, {
                since = since, plaintext = o.plaintext,
                encryption_key = not o.plaintext and o.key or nil,
                progress = not o.quiet and p or nil }))
            p:finish()
            return res
        end)
        out:flush()
        if out ~= stdout then out:close() end
        if not o.quiet then
            stderr:write(format("backup: %s%s backup up to version %d%s: %d entries, %s\n"
                                .. "backup: next incremental: stoat backup %s --since %d\n",
                                info.sealed and "sealed " or (o.key and "plaintext " or ""),
                                info.kind == backup.KIND_FULL and "full" or "incremental",
                                info.version, since > 0 and format(" (since %d)", since) or "",
                                info.entries, human_bytes(info.bytes), o.args[1], info.version))
        end
        return 0
    end,
}

-- Before DIR is opened or created: each file's header, and the key (o.key)
-- of the sealed ones. Returns the first sealed file, or nil.
local function probe_backups(files, o)
    local sealed
    for _, path in ipairs(files) do
        if path ~= "-" then
            local ok, hdr = pcall(backup.probe, path, o.key)
            if not ok and tostring(hdr):match("^bad key") then
                failure(format("%s (%s)", hdr, o.key_from and "the key came from "
                               .. o.key_from or "pass it with --key-file FILE or "
                               .. "STOAT_KEY_FILE"))
            elseif not ok then
                failure(hdr)
            end
            sealed = sealed or hdr.sealed and path
        end
    end
    return sealed
end

M.restore = {
    opens_db = true,
    summary = "apply backups in order",
    usage = "stoat restore DIR FILE... [--plaintext]",
    min = 2, max = -1, names = { "DIR", "FILE" },
    flags = { plaintext = "bool" },
    help = [[
Restores backups into DIR (created if needed): a full backup into an empty
database, then incremental ones in order. Every file is checked first
(every checksum, that none is truncated, and that each one starts at the
version where the previous one ended): a gap or an overlap in the chain
refuses the whole restore before anything is written. Later incrementals
can be applied by another restore: DIR/RESTORE_STATE records the version
reached. A full backup is bulk loaded (written straight into tables,
visible at once when it is all in; run again if interrupted), the
incrementals go through write batches.

The key (--key-file) opens DIR, or creates it encrypted, and opens sealed
backups: those of an encrypted database, which need the key that database
had when they were made (a missing or wrong one is told before DIR is
touched; after `stoat rekey`, restore with the old key, then rekey the
copy). A sealed backup goes into a DIR that is not encrypted only with
--plaintext.

  --plaintext       DIR is (or is created) not encrypted: the key opens
                    the backups only]],
    run = function(o)
        local dir = o.args[1]
        local files = {}
        for i = 2, #o.args do files[#files + 1] = o.args[i] end
        local sealed = probe_backups(files, o)
        local target = o
        if o.plaintext then
            if exists(dir .. "/KEYREGISTRY") then
                failure(format("%s is encrypted: --plaintext restores into a database that is "
                               .. "not (drop --plaintext)", dir))
            end
            target = { key = nil, key_from = o.key_from }
        elseif sealed and exists(dir .. "/MANIFEST") and not exists(dir .. "/KEYREGISTRY") then
            failure(format("%s is not encrypted and %s is a sealed backup: restoring it would "
                           .. "write its keys and values in the clear; pass --plaintext to do "
                           .. "so (the key then opens the backups only)", dir, sealed))
        end
        return with_db(target, dir, "create", function(db)
            local check_p = progress.new{ label = "restore: checking", unit = "frames",
                                          quiet = o.quiet, by_bytes = true }
            local apply_p = progress.new{ label = "restore", unit = "entries", quiet = o.quiet,
                                          by_bytes = true }
            local total = 0
            for _, f in ipairs(files) do total = total + (file_size(f) or 0) end
            check_p:total(total)
            apply_p:total(total)
            local res = check(backup.restore(db, files, {
                dir = dir, progress = apply_p, check_progress = check_p,
                encryption_key = o.key, plaintext = o.plaintext,
                on_file = function(path, hdr, stats)
                    if not o.quiet then
                        stderr:write(format("restore: %s: %s backup up to version %d: %d set, "
                                            .. "%d deleted%s\n", path,
                                            hdr.kind == backup.KIND_FULL and "full"
                                            or "incremental", hdr.version, stats.set,
                                            stats.deleted, stats.bulk and " (bulk loaded)" or ""))
                    end
                end }))
            if not o.quiet then
                stderr:write(format("restore: %s is at version %d of the source\n", dir,
                                    res.version))
            end
            return 0
        end)
    end,
}

return M
