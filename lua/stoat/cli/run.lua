-- stoat.cli.run: `stoat run DIR SCRIPT [ARGS...]`, a Lua script run with
-- the database open.
--
-- The script is a chunk of its own: its globals are `db` (the database,
-- writable, created if needed), `stoat` and `arg`, and fall through to
-- the command's own (_G); what it sets stays in its environment. It may
-- return the exit status. The database is closed when it ends, whatever
-- happens. Every argument after SCRIPT is the script's, flags too
-- (stop_flags_at: cli.lua's parser stops there). No state.

local stoat = require "stoat"
local errors = require "stoat.cli.errors"
local database = require "stoat.cli.database"

local failure = errors.failure
local with_db = database.with_db

local M = {}

M.run = {
    opens_db = true,
    summary = "run a Lua script with the database open",
    usage = "stoat run DIR SCRIPT.lua [ARGS...]",
    min = 2, max = -1, names = { "DIR", "SCRIPT" }, stop_flags_at = 2,
    help = [[
Runs a Lua script with the database open (writable, created if needed):
the script sees the globals `db` and `stoat`, its arguments in `arg` (and
`...`); db:each_batch and db:migrate make resumable migrations. The
database is closed when the script ends. A number the script returns is
the exit status; an error prints its traceback and exits 1. Options of
the command go before DIR.]],
    run = function(o)
        local dir, script = o.args[1], o.args[2]
        local chunk, lerr = loadfile(script)
        if chunk == nil then
            failure(lerr)
        end
        local args = { [0] = script }
        for i = 3, #o.args do args[#args + 1] = o.args[i] end
        return with_db(o, dir, "create", function(db)
            local env = setmetatable({ db = db, stoat = stoat, arg = args }, { __index = _G })
            setfenv(chunk, env)
            local ok, res = xpcall(function() return chunk(unpack(args)) end,
                                   debug.traceback)
            if not ok then
                failure(tostring(res))
            end
            if type(res) == "number" then return res end
            return 0
        end)
    end,
}

return M
