-- stoat.cli.errors: how a command of `stoat` stops when it cannot go on.
--
--   errors.usage_error(msg)       bad arguments: exit 2, the command's usage on stderr
--   errors.failure(msg)           it failed: exit 1, "stoat COMMAND: msg" on stderr
--   errors.check(ok, err [, what])   ok, or failure("what: err") when ok is nil
--
-- Both are raised, not returned, so that a command reads straight through
-- and a failure deep inside (a progress callback, a transaction) ends it
-- the same way. They are raised as tables, { usage = msg } and
-- { failure = msg }, which is how cli.main tells them from a bug (any
-- other error: exit 1 with its message). The exit statuses are cli.main's
-- (lua/stoat/cli.lua). No state.

local tostring = tostring

local M = {}

function M.usage_error(msg)
    error({ usage = msg }, 0)
end

function M.failure(msg)
    error({ failure = msg }, 0)
end
local failure = M.failure

function M.check(ok, err, what)
    if ok == nil then
        failure((what and what .. ": " or "") .. tostring(err))
    end
    return ok
end

return M
