-- stoat.cli.database: the database a command of `stoat` works on.
--
--   database.with_db(o, dir, mode, fn)   fn(db) with dir open, closed whatever happens
--   database.view(db, fn)                db:view(fn), its error raised as a failure
--   database.exists(path), database.file_size(path)
--
-- with_db opens with messages that say what to do: no database there, a
-- missing or wrong key (and where the key came from), a directory held
-- exclusively by another process. Failures are raised (stoat/cli/errors.lua).
-- The commands also look at a database's files beside opening it (is
-- there a MANIFEST, a KEYREGISTRY), hence exists and file_size. No state.

local ffi = require "ffi"
local stoat = require "stoat"
local errors = require "stoat.cli.errors"

local format = string.format
local failure = errors.failure

pcall(ffi.cdef, "int access(const char *path, int mode);")

local M = {}

function M.exists(path)
    return ffi.C.access(path, 0) == 0
end
local exists = M.exists

-- The size of the file at path in bytes, or nil when it cannot be opened.
function M.file_size(path)
    local f = io.open(path, "rb")
    if f == nil then return nil end
    local n = f:seek("end")
    f:close()
    return n
end

-- What to do about a "bad key" open of dir (the library's message says
-- which case it is); from: where the key given came from, or nil.
local function key_hint(dir, from)
    if from == nil then
        return "give its key with --key-file FILE or STOAT_KEY_FILE"
    elseif not exists(dir .. "/KEYREGISTRY") then
        return "the key came from " .. from .. ": drop --key-file and unset STOAT_KEY_FILE"
    end
    return "the key came from " .. from
end

-- mode: "read" (read-only, must exist), "write" (must exist), "create".
-- key: the encryption key (32 bytes) or nil; from: where it came from.
local function open_db(dir, mode, key, from)
    if mode ~= "create" then
        if not exists(dir) then
            failure(format("no database at %s: the directory does not exist", dir))
        elseif not exists(dir .. "/MANIFEST") then
            failure(format("no database at %s: the directory holds no stoat database "
                           .. "(no MANIFEST)", dir))
        end
    end
    -- Live processes that share the directory (multi_process, the
    -- default) are joined; only one that holds it exclusively keeps us out.
    local db, err = stoat.open(dir, { read_only = mode == "read",
                                      create_if_missing = mode == "create",
                                      encryption_key = key })
    if db == nil then
        if err:match("^bad key") then
            failure(format("cannot open %s: %s (%s)", dir, err, key_hint(dir, from)))
        end
        if err:match("^busy") then
            failure(format("%s is locked by another process (%s): it opened the database "
                           .. "exclusively (multi_process = false); stop it, or run this from "
                           .. "inside it (stoat.backup, db:stats())", dir,
                           mode == "read" and "it is open for writing"
                           or "it is open elsewhere"))
        elseif err:match("^not found") then
            failure(format("no database at %s (%s)", dir, err))
        end
        failure(format("cannot open %s: %s", dir, err))
    end
    return db
end

-- Runs fn(db) with the database open, closing it whatever happens, and
-- returns what fn returns; o: the parsed command line (its key, o.key,
-- opens an encrypted database). mode as for open_db.
function M.with_db(o, dir, mode, fn)
    local db = open_db(dir, mode, o.key, o.key_from)
    local ok, err = pcall(fn, db)
    local cok, cerr = db:close()
    if not ok then error(err, 0) end
    if not cok then failure(cerr) end
    return err
end

-- pcall(db.view, ...) whichever way the API reports the error: a failure
-- raised inside fn goes on up as it is.
function M.view(db, fn)
    local ok, res, err = pcall(db.view, db, fn)
    if not ok then
        if type(res) == "table" then error(res, 0) end
        failure(res)
    end
    if res == nil and err ~= nil then
        failure(err)
    end
    return res
end

return M
