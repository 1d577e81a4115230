-- stoat.cli: the `stoat` command (bin/stoat runs cli.main(arg)).
--
--   stoat help [COMMAND]            stoat COMMAND --help
--   stoat info DIR|FILE [--json] [--count]
--   stoat get|set|delete|scan DIR ...
--   stoat gc DIR [--ratio R]        stoat flatten DIR      stoat verify DIR
--   stoat dump DIR [--prefix P] [--format jsonl|tsv] > FILE
--   stoat load DIR [--format jsonl|tsv] [--bulk|--no-bulk] [FILE] < FILE
--   stoat backup DIR [--since VERSION] [--plaintext] > FILE
--   stoat restore DIR FILE... [--plaintext]
--   stoat run DIR script.lua [ARGS...]
--   stoat keygen [--output FILE]    stoat rekey DIR --key-file OLD --new-key-file NEW
--
-- Encrypted databases: every command that opens a database takes its key
-- from --key-file FILE, else from the file named by $STOAT_KEY_FILE, never
-- from the command line itself (stoat/cli/keyfile.lua reads key files).
-- Their backups are sealed under the same key, which restore needs again
-- (--plaintext writes, or restores into, a database in the clear).
--
-- main(argv) returns the exit status: 0 done, 1 failed (the reason on
-- stderr, "stoat COMMAND: <word>: <detail>"), 2 bad arguments (the
-- command's usage on stderr). Data goes to stdout, progress and summaries
-- to stderr. Commands that only read open the database read-only; every
-- command joins the processes that hold the database (multi_process, the
-- default), and only a holder in the exclusive mode makes it wait or fail.
--
-- This file is the dispatcher: the command table, the parsing of flags
-- and arguments that every command shares, `stoat help`, and main, which
-- turns how a command ended into the exit status. The commands live in
-- one module per group, in lua/stoat/cli/:
--
--   info.lua       info                      what a database or backup holds
--   entries.lua    get, set, delete, scan    entries from the command line
--   maintain.lua   gc, flatten, verify, keygen, rekey    upkeep
--   transfer.lua   dump, load, backup, restore           entries in and out
--   run.lua        run                       a Lua script with the database open
--
-- and share errors.lua (how a command stops: usage error or failure),
-- database.lua (opening one with messages that say what to do), text.lua,
-- progress.lua and keyfile.lua. Each command has its help text, which
-- `stoat help` prints and the specs check.

local stoat = require "stoat"
local keyfile = require "stoat.cli.keyfile"
local errors = require "stoat.cli.errors"

local format = string.format
local concat = table.concat
local usage_error, failure = errors.usage_error, errors.failure

local M = {}

local stdout, stderr = io.stdout, io.stderr

---------------------------------------------------------------------------
-- The command table. A command is a table:
--   summary, usage, help   its line in `stoat help`, its usage line, the
--                          text of `stoat help COMMAND`
--   min, max, names        how many positional arguments (max -1: any
--                          number; default min) and their names
--   flags                  by name: "bool", "string", "number", or a list
--                          of the words allowed
--   opens_db               it opens a database: it takes --key-file
--   stop_flags_at          after this many positional arguments, all are
--                          (run: the script's own)
--   run(o)                 gets the parsed command line, returns the exit
--                          status (nil: 0)

local COMMON_FLAGS = { quiet = "bool", help = "bool" }
local SHORT = { q = "quiet", h = "help" }

-- The commands in the order `stoat help` lists them.
local ORDER = { "info", "get", "set", "delete", "scan", "gc", "flatten", "dump", "load",
                "backup", "restore", "verify", "keygen", "rekey", "run", "help" }

-- The modules that hold them, one per group of commands; each returns its
-- commands by name. They need nothing of this file (no cycle): how a
-- command fails is stoat/cli/errors.lua's.
local GROUPS = { "stoat.cli.info", "stoat.cli.entries", "stoat.cli.maintain",
                 "stoat.cli.transfer", "stoat.cli.run" }

local COMMANDS = {}

-- def.opens_db: the command opens a database, so takes --key-file (main
-- resolves the key into o.key, see stoat/cli/keyfile.lua).
local function command(name, def)
    def.name = name
    def.flags = def.flags or {}
    if def.opens_db then
        def.flags.key_file = "string"
    end
    COMMANDS[name] = def
end

for _, group in ipairs(GROUPS) do
    for name, def in pairs(require(group)) do
        command(name, def)
    end
end

---------------------------------------------------------------------------
-- Parsing

-- Parses argv (after the command name) against def: returns a table of
-- flags by name plus the positional arguments in `args`. Raises usage
-- errors. "--" ends the flags (for keys starting with "-").
local function parse(def, argv, first)
    local o = { args = {} }
    local i = first
    local flags_done = false
    while i <= #argv do
        local a = argv[i]
        if not flags_done and a == "--" then
            flags_done = true
        elseif not flags_done and a:sub(1, 1) == "-" and #a > 1 then
            local name, value = a:match("^%-%-([%w-]+)=(.*)$")
            if not name then
                name = a:match("^%-%-([%w-]+)$") or SHORT[a:match("^%-(%a)$") or ""]
            end
            if not name then
                usage_error("unknown option " .. a)
            end
            name = name:gsub("-", "_")
            local kind = def.flags[name] or COMMON_FLAGS[name]
            if kind == nil then
                usage_error("unknown option --" .. name:gsub("_", "-"))
            end
            if kind == "bool" then
                if value ~= nil then usage_error("--" .. name .. " takes no value") end
                o[name] = true
            else
                if value == nil then
                    i = i + 1
                    value = argv[i]
                    if value == nil then
                        usage_error("--" .. name:gsub("_", "-") .. " needs a value")
                    end
                end
                if kind == "number" then
                    local n = tonumber(value)
                    if n == nil then
                        usage_error(format("--%s needs a number (got %q)", name, value))
                    end
                    value = n
                elseif type(kind) == "table" then
                    local okv = false
                    for _, w in ipairs(kind) do okv = okv or w == value end
                    if not okv then
                        usage_error(format("--%s must be one of %s (got %q)", name,
                                           concat(kind, ", "), value))
                    end
                end
                o[name] = value
            end
        else
            o.args[#o.args + 1] = a
            if def.stop_flags_at and #o.args >= def.stop_flags_at then
                -- run: what follows the script belongs to the script
                for j = i + 1, #argv do o.args[#o.args + 1] = argv[j] end
                break
            end
        end
        i = i + 1
    end
    if o.help then
        return o
    end
    local min, max = def.min or 0, def.max or def.min or 0
    if #o.args < min then
        usage_error(format("missing %s", def.names[#o.args + 1] or "argument"))
    elseif max >= 0 and #o.args > max then
        usage_error("unexpected argument " .. format("%q", o.args[max + 1]))
    end
    return o
end

---------------------------------------------------------------------------
-- help

local function usage_of(name)
    return "usage: " .. COMMANDS[name].usage
end

local function general_help()
    local lines = { "stoat " .. stoat.version .. ": look inside, back up, restore and migrate "
                    .. "stoat databases.", "", "usage: stoat COMMAND [ARGS] [--quiet]", "",
                    "commands:" }
    for _, name in ipairs(ORDER) do
        lines[#lines + 1] = format("  %-9s %s", name, COMMANDS[name].summary)
    end
    lines[#lines + 1] = ""
    lines[#lines + 1] = "`stoat COMMAND --help` explains a command and its flags. Every command "
                        .. "takes --quiet (-q),"
    lines[#lines + 1] = "which silences progress; progress goes to stderr (a bar on a terminal, "
                        .. "plain lines"
    lines[#lines + 1] = "otherwise). Exit status: 0 done, 1 failed, 2 bad arguments. Commands "
                        .. "that only read"
    lines[#lines + 1] = "open the database read-only; a database open for writing in another "
                        .. "process is locked."
    lines[#lines + 1] = ""
    lines[#lines + 1] = "Encrypted databases: every command that opens one takes its key with "
                        .. "--key-file FILE,"
    lines[#lines + 1] = "or from the file named by the environment variable STOAT_KEY_FILE; a "
                        .. "key file holds"
    lines[#lines + 1] = "32 raw bytes or 64 hex digits (`stoat keygen --output FILE` makes one). "
                        .. "A new database"
    lines[#lines + 1] = "created with a key (load, restore, run) is encrypted."
    return concat(lines, "\n") .. "\n"
end

local function command_help(name)
    local c = COMMANDS[name]
    local key = c.opens_db and "  --key-file FILE   the key of an encrypted database (default: the "
                               .. "file\n                    named by STOAT_KEY_FILE)\n" or ""
    return usage_of(name) .. "\n\n" .. c.help .. "\n\n" .. key
           .. "  --quiet, -q       no progress output\n"
end

command("help", {
    summary = "this text, or a command's",
    usage = "stoat help [COMMAND]",
    min = 0, max = 1, names = { "COMMAND" },
    help = "Lists the commands, or explains one.",
    run = function(o)
        local name = o.args[1]
        if name == nil then
            stdout:write(general_help())
        elseif COMMANDS[name] then
            stdout:write(command_help(name))
        else
            usage_error("unknown command " .. format("%q", name))
        end
        return 0
    end,
})

-- Every command is listed by help, and every one listed exists.
local listed = {}
for _, name in ipairs(ORDER) do
    assert(COMMANDS[name], name .. " is listed in ORDER but not defined")
    listed[name] = true
end
for name in pairs(COMMANDS) do
    assert(listed[name], name .. " is missing from ORDER")
end

M.COMMANDS = COMMANDS

---------------------------------------------------------------------------
-- main

-- Runs the command line argv (a list, like the script's `arg`); returns
-- the exit status.
function M.main(argv)
    local name = argv[1]
    if name == nil then
        stderr:write(general_help())
        return 2
    end
    if name == "--help" or name == "-h" then
        stdout:write(general_help())
        return 0
    end
    local def = COMMANDS[name]
    if def == nil then
        stderr:write(format("stoat: unknown command %q\n\n", name), general_help())
        return 2
    end
    local ok, res = pcall(function()
        local o = parse(def, argv, 2)
        if o.help then
            stdout:write(command_help(name))
            return 0
        end
        if def.flags.key_file then
            local key, err, from = keyfile.resolve(o.key_file)
            if err then failure(err) end
            o.key, o.key_from = key, from
        end
        return def.run(o)
    end)
    if ok then
        stdout:flush()
        return res or 0
    end
    if type(res) == "table" and res.usage then
        stderr:write(format("stoat %s: %s\n%s\nRun 'stoat %s --help' for details.\n", name,
                            res.usage, usage_of(name), name))
        return 2
    end
    if type(res) == "table" and res.failure then
        res = res.failure
    end
    stderr:write(format("stoat %s: %s\n", name, tostring(res)))
    return 1
end

return M
