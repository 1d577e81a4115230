-- spec/helpers.lua: fresh temporary directories and databases for specs.
--
--   local h = require "helpers"
--   it("...", function()
--       local db = h.open_db(finally, { sync = "none" })
--       ...
--   end)
--
-- open_db registers (with busted's `finally`, passed in) the closing of the
-- database and the removal of its directory, so every test starts from a
-- fresh directory and leaves nothing behind, whether it passes or not.

local ffi = require "ffi"

pcall(ffi.cdef, "char *mkdtemp(char *template);")
pcall(ffi.cdef, "int usleep(unsigned int usec);")

local M = {}

-- Small buffers so that specs that want flushes or size limits reach them
-- fast; tests pass their own options on top.
M.SMALL = { memtable_size = 1024 * 1024, cache_size = 1024 * 1024 }

function M.shell_quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- A new empty directory under $TMPDIR (or /tmp).
function M.tmpdir()
    local template = (os.getenv("TMPDIR") or "/tmp") .. "/stoat-spec-XXXXXX"
    local buf = ffi.new("char[?]", #template + 1, template)
    assert(ffi.C.mkdtemp(buf) ~= nil, "mkdtemp failed")
    return ffi.string(buf)
end

function M.rmrf(dir)
    assert(dir:match("/stoat%-spec%-"), "refusing to remove " .. dir)
    os.execute("rm -rf " .. M.shell_quote(dir))
end

-- A temporary directory removed when the test ends.
function M.scratch(finally)
    local dir = M.tmpdir()
    finally(function() M.rmrf(dir) end)
    return dir
end

local function merged(a, b)
    local t = {}
    for k, v in pairs(a or {}) do t[k] = v end
    for k, v in pairs(b or {}) do t[k] = v end
    return t
end

-- A database in a fresh directory, closed and removed when the test ends.
-- Returns db, path.
function M.open_db(finally, opts)
    local stoat = require "stoat"
    local dir = M.tmpdir()
    local path = dir .. "/db"
    local db, err = stoat.open(path, merged(M.SMALL, opts))
    assert(db, err)
    finally(function()
        db:close()
        M.rmrf(dir)
    end)
    return db, path
end

-- Runs a shell command; returns its exit status (true/false) and output.
function M.run(cmd)
    local f = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
    local out = f:read("*a")
    f:close()
    local status = tonumber(out:match("exit=(%d+)%s*$"))
    return status == 0, out:gsub("exit=%d+%s*$", "")
end

-- Sleeps for seconds (fractions allowed).
function M.sleep(seconds)
    ffi.C.usleep(math.floor(seconds * 1e6))
end

-- Sorted keys of a table (for models in specs).
function M.sorted_keys(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys)
    return keys
end

-- THE capability switch of the multi-process specs: whether two processes
-- can open one database directory read-write at once (issue 11). It
-- opens a fresh directory here and tries to open it again from a child
-- luajit; until multi-process lands the child gets `busy` and the specs
-- that need it are pending with "needs multi-process (issue 11)". Cached.
-- Returns the answer and the child's output.
local multiprocess_answer, multiprocess_detail
function M.multiprocess()
    if multiprocess_answer ~= nil then
        return multiprocess_answer, multiprocess_detail
    end
    local stoat = require "stoat"
    local dir = M.tmpdir()
    local path = dir .. "/db"
    local db = assert(stoat.open(path, { multi_process = true }))
    local build = os.getenv("BUILD") or "build"
    local child = ("local stoat = require 'stoat'; "
                   .. "local db, err = stoat.open(%q, { multi_process = true }); "
                   .. "if not db then io.write(err) os.exit(3) end; db:close()"):format(path)
    local ok, out = M.run(("LUA_PATH='lua/?.lua;;' LUA_CPATH=%s luajit -e %s")
                          :format(M.shell_quote(build .. "/?.so;;"), M.shell_quote(child)))
    db:close()
    M.rmrf(dir)
    multiprocess_answer, multiprocess_detail = ok, out
    return ok, out
end

-- The absolute path of the repository root (specs run from it).
function M.root()
    local f = assert(io.popen("pwd"))
    local dir = f:read("*l")
    f:close()
    return dir
end

return M
