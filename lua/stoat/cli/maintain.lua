-- stoat.cli.maintain: the upkeep of a database from the command line.
--
--   stoat gc DIR, stoat flatten DIR      give space back (value log, tables)
--   stoat verify DIR                     check every checksum and value pointer
--   stoat keygen, stoat rekey DIR        make a key, change a database's key
--
-- gc, flatten and verify run in the library (db:gc, db:flatten,
-- stoat_verify); this file adds the messages. rekey needs the database
-- closed everywhere; keygen touches no database. No state.

local ffi = require "ffi"
local stoat = require "stoat"
local base = require "stoat.base"
local text = require "stoat.cli.text"
local keyfile = require "stoat.cli.keyfile"
local errors = require "stoat.cli.errors"
local database = require "stoat.cli.database"

local format = string.format
local concat = table.concat
local C = base.C
local usage_error, failure, check = errors.usage_error, errors.failure, errors.check
local with_db, exists = database.with_db, database.exists
local human_bytes = text.human_bytes
local stdout, stderr = io.stdout, io.stderr

local M = {}

---------------------------------------------------------------------------
-- gc, flatten

M.gc = {
    opens_db = true,
    summary = "value-log garbage collection",
    usage = "stoat gc DIR [--ratio R]",
    min = 1, names = { "DIR" }, flags = { ratio = "number" },
    help = [[
Value-log garbage collection: rewrites the live values of every value-log
file with more than R garbage (default 0.5) and deletes the file; loops
until no file qualifies. Prints the bytes reclaimed.

  --ratio R   the garbage share (0 < R < 1) a file needs to be collected]],
    run = function(o)
        local ratio = o.ratio or 0.5
        if not (ratio > 0 and ratio < 1) then usage_error("--ratio must be in (0, 1)") end
        return with_db(o, o.args[1], "write", function(db)
            local n = check(db:gc(ratio))
            stdout:write(format("reclaimed %d bytes\n", n))
            return 0
        end)
    end,
}

M.flatten = {
    opens_db = true,
    summary = "compact everything into the last level",
    usage = "stoat flatten DIR",
    min = 1, names = { "DIR" },
    help = [[
Flushes the memtables and compacts every level into the last one, dropping
old versions and tombstones no reader needs.]],
    run = function(o)
        return with_db(o, o.args[1], "write", function(db)
            check(db:flatten())
            if not o.quiet then
                local s = check(db:stats())
                local parts = {}
                for i, l in ipairs(s.levels) do
                    if l.tables > 0 then
                        parts[#parts + 1] = format("L%d %d tables %s", i - 1, l.tables,
                                                   human_bytes(l.bytes))
                    end
                end
                stderr:write("flatten: done; ", #parts > 0 and concat(parts, ", ")
                             or "no tables", "\n")
            end
            return 0
        end)
    end,
}

---------------------------------------------------------------------------
-- verify

-- stoat_verify on database object db: ok (true when sound), report text.
local function verify_db(db)
    local out, len = ffi.new("char *[1]"), ffi.new("size_t[1]")
    local rc = C.stoat_verify(db._ptr, out, len)
    local report = ""
    if out[0] ~= nil then
        report = ffi.string(out[0], len[0])
        C.stoat_free(out[0])
    end
    if rc ~= 0 and rc ~= C.STOAT_ECORRUPT then
        failure(base.errstr(rc))
    end
    return rc == 0, report
end

M.verify = {
    opens_db = true,
    summary = "check every checksum and value pointer",
    usage = "stoat verify DIR",
    min = 1, names = { "DIR" },
    help = [[
Checks every checksum of the database's files and every value pointer:
each table whole (every block, the order of its entries), each value
pointer in them (the value-log record exists, passes its checks and holds
the same key), each record of each sealed value-log file; opening checks
the MANIFEST and the WALs. Exit 0 when sound; exit 1 with one line per
problem on stdout, naming the file, the record (offset) and the keys
concerned. Opens the database read-only. On an encrypted database
(--key-file) reading a record or block checks its authentication tag: a
changed, moved or replayed one is reported as damage.]],
    run = function(o)
        local dir = o.args[1]
        if exists(dir .. "/MANIFEST") then
            local db, err = stoat.open(dir, { read_only = true, create_if_missing = false,
                                              encryption_key = o.key })
            if db == nil and err:match("^corruption") then
                stdout:write(err:gsub("^corruption: ", ""), "\n")
                failure(dir .. " is damaged: it does not open")
            elseif db then
                db:close()
            end
        end
        return with_db(o, dir, "read", function(db)
            local ok, report = verify_db(db)
            stdout:write(report)
            if not ok then
                local n = select(2, report:gsub("\n", ""))
                failure(("%s is damaged: %d problem%s (listed on stdout)"):format(dir, n,
                        n == 1 and "" or "s"))
            end
            if not o.quiet then stderr:write("verify: ", dir, " is sound\n") end
            return 0
        end)
    end,
}

---------------------------------------------------------------------------
-- keygen, rekey

M.keygen = {
    summary = "make an encryption key",
    usage = "stoat keygen [--output FILE] > FILE",
    min = 0, names = {},
    flags = { output = "string" },
    help = [[
Makes a new encryption key: 32 random bytes from /dev/urandom, written as
64 hex digits and a newline, the form --key-file reads. With --output the
file is created with mode 0600 and an existing file is refused (a key
overwritten is a database lost); with a redirect, set `umask 077` first.
Keep the key apart from the database: whoever has both reads everything,
and without the key nobody can, you included.

  --output FILE   create FILE (mode 0600) instead of writing to stdout]],
    run = function(o)
        check(keyfile.generate(o.output, stdout))
        return 0
    end,
}

M.rekey = {
    summary = "change an encrypted database's key",
    usage = "stoat rekey DIR --key-file OLD --new-key-file NEW",
    min = 1, names = { "DIR" },
    flags = { key_file = "string", new_key_file = "string" },
    help = [[
Changes the master key of an encrypted database: its data keys are
sealed again with the key in NEW; no data file is rewritten, so it takes
a moment whatever the size. The database must be closed (no process may
have it open). Atomic: if it is interrupted, either key opens the
database. Afterwards only NEW opens it: keep NEW safe before you destroy
OLD. Key files hold 32 raw bytes or 64 hex digits (`stoat keygen`).

  --key-file OLD       the current key (default: the file named by
                       STOAT_KEY_FILE)
  --new-key-file NEW   the new key]],
    run = function(o)
        local dir = o.args[1]
        if o.new_key_file == nil then
            usage_error("missing --new-key-file NEW")
        end
        if o.key == nil then
            usage_error("missing --key-file OLD (or STOAT_KEY_FILE)")
        end
        local new_key, err = keyfile.resolve(o.new_key_file)
        if new_key == nil then
            failure((err:gsub("^%-%-key%-file", "--new-key-file")))
        end
        if not exists(dir .. "/MANIFEST") then
            failure(format("no database at %s", dir))
        elseif not exists(dir .. "/KEYREGISTRY") then
            failure(format("%s is not encrypted (no KEYREGISTRY): there is no key to change",
                           dir))
        end
        local ok, rerr = stoat.rekey(dir, o.key, new_key)
        if not ok then
            if rerr:match("^bad key") then
                failure(format("%s (%s is not the key of %s)", rerr, o.key_from, dir))
            elseif rerr:match("^busy") then
                failure(format("%s: %s is open in a process: close it first", rerr, dir))
            end
            failure(rerr)
        end
        if not o.quiet then
            stderr:write(format("rekey: %s now opens with the key in %s only\n", dir,
                                o.new_key_file))
        end
        return 0
    end,
}

return M
