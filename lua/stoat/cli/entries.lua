-- stoat.cli.entries: `stoat get`, `set`, `delete` and `scan`, one entry or
-- a range of them from the command line.
--
-- Keys and values are taken as given, bytes and all; with --escaped they
-- are written as scan prints them (\t \n \\ \xHH, stoat/cli/text.lua), so
-- that any key scan shows can be passed back. get and scan open the
-- database read-only, set and delete for writing. No state.

local text = require "stoat.cli.text"
local progress = require "stoat.cli.progress"
local errors = require "stoat.cli.errors"
local database = require "stoat.cli.database"

local usage_error, failure, check = errors.usage_error, errors.failure, errors.check
local with_db, view = database.with_db, database.view
local stdout = io.stdout

local M = {}

-- A key (or value) argument: as given, or unescaped with --escaped.
local function key_arg(o, s)
    if o.escaped then
        local v, err = text.tsv_unescape(s)
        if v == nil then usage_error(err .. ": " .. s) end
        return v
    end
    return s
end

M.get = {
    opens_db = true,
    summary = "print a value",
    usage = "stoat get DIR KEY [--escaped]",
    min = 2, names = { "DIR", "KEY" }, flags = { escaped = "bool" },
    help = [[
Writes the value of KEY to stdout, as raw bytes (a newline follows only on
a terminal). Exit 1 when the key is absent.

  --escaped   KEY is written as `scan` prints keys (\t \n \\ \xHH)]],
    run = function(o)
        local key = key_arg(o, o.args[2])
        return with_db(o, o.args[1], "read", function(db)
            local v, err = db:get(key)
            if v == nil then
                if err then failure(err) end
                failure("not found: " .. text.tsv_escape(key))
            end
            stdout:write(v)
            if progress.isatty(1) then stdout:write("\n") end
            return 0
        end)
    end,
}

M.set = {
    opens_db = true,
    summary = "set a value",
    usage = "stoat set DIR KEY VALUE [--ttl SECONDS] [--meta BYTE] [--escaped]",
    min = 3, names = { "DIR", "KEY", "VALUE" },
    flags = { ttl = "number", meta = "number", escaped = "bool" },
    help = [[
Sets KEY to VALUE in one transaction. VALUE "-" reads the value from stdin
(all of it, binary-safe).

  --ttl SECONDS   expire the entry after this many seconds
  --meta BYTE     the user-meta byte (0..255)
  --escaped       KEY and VALUE use scan's escapes (\t \n \\ \xHH)]],
    run = function(o)
        local key = key_arg(o, o.args[2])
        local value = o.args[3]
        if value == "-" then
            value = io.stdin:read("*a") or ""
        else
            value = key_arg(o, value)
        end
        if o.meta and (o.meta ~= math.floor(o.meta) or o.meta < 0 or o.meta > 255) then
            usage_error("--meta must be an integer in 0..255")
        end
        if o.ttl and o.ttl < 0 then
            usage_error("--ttl must be >= 0")
        end
        return with_db(o, o.args[1], "write", function(db)
            local opts
            if o.ttl or o.meta then opts = { ttl = o.ttl, meta = o.meta } end
            check(db:set(key, value, opts))
            return 0
        end)
    end,
}

M.delete = {
    opens_db = true,
    summary = "delete a key",
    usage = "stoat delete DIR KEY [--escaped]",
    min = 2, names = { "DIR", "KEY" }, flags = { escaped = "bool" },
    help = [[
Deletes KEY (deleting an absent key is not an error).

  --escaped   KEY uses scan's escapes (\t \n \\ \xHH)]],
    run = function(o)
        local key = key_arg(o, o.args[2])
        return with_db(o, o.args[1], "write", function(db)
            check(db:delete(key))
            return 0
        end)
    end,
}

M.scan = {
    opens_db = true,
    summary = "list keys and values",
    usage = "stoat scan DIR [--prefix P] [--start K] [--stop K] [--limit N] [--reverse] "
            .. "[--keys-only]",
    min = 1, names = { "DIR" },
    flags = { prefix = "string", start = "string", stop = "string", limit = "number",
              reverse = "bool", keys_only = "bool", escaped = "bool" },
    help = [[
Prints keys and values, one entry per line: KEY<TAB>VALUE, both escaped
(backslash, tab, newline, carriage return and bytes outside printable
ASCII as \\, \t, \n, \r, \xHH), so the output is one line per entry
whatever the bytes. Reads one snapshot.

  --prefix P     only keys starting with P
  --start K      from K (inclusive)      --stop K   up to K (exclusive)
  --limit N      at most N entries       --reverse  from the last key down
  --keys-only    keys only (no value read)
  --escaped      P, K use the same escapes]],
    run = function(o)
        if o.limit and (o.limit < 0 or o.limit ~= math.floor(o.limit)) then
            usage_error("--limit must be a non-negative integer")
        end
        local popts = { prefix = o.prefix and key_arg(o, o.prefix),
                        start = o.start and key_arg(o, o.start),
                        stop = o.stop and key_arg(o, o.stop), limit = o.limit,
                        reverse = o.reverse, keys_only = o.keys_only }
        return with_db(o, o.args[1], "read", function(db)
            view(db, function(txn)
                local esc = text.tsv_escape
                for k, v in txn:pairs(popts) do
                    if v == nil then
                        stdout:write(esc(k), "\n")
                    else
                        stdout:write(esc(k), "\t", esc(v), "\n")
                    end
                end
                return true
            end)
            return 0
        end)
    end,
}

return M
