-- stoat.cli.keyfile: encryption keys for the `stoat` command, from files.
--
--   local key, err = keyfile.read(path)          -- 32 bytes | nil, err
--   local key, err, from = keyfile.resolve(o.key_file)  -- --key-file, else $STOAT_KEY_FILE
--   local ok, err = keyfile.generate(path)       -- a new key in a new 0600 file
--
-- A key never appears on a command line (where `ps` and shell histories
-- show it): the command reads it from a file named by --key-file FILE or
-- by the environment variable STOAT_KEY_FILE. A key file holds the 32 raw
-- bytes of the key, or 64 hex digits (either case), in both cases with one
-- trailing newline allowed. `stoat keygen` writes 64 lowercase hex digits
-- and a newline, from 32 bytes of /dev/urandom.
--
-- Errors name the file and say what it should hold and what it holds (a
-- length), never a byte of it. Nothing here logs. The key is a Lua string,
-- which cannot be wiped: it lives until the command's process exits (the C
-- library copies it at open and wipes its copy on close). No state.

local ffi = require "ffi"
local bit = require "bit"

local format, byte, char = string.format, string.byte, string.char
local concat = table.concat
local tonumber, tostring = tonumber, tostring

local M = {}

M.KEY_LEN = 32
M.ENV = "STOAT_KEY_FILE"

local WHAT = "a key file holds 32 raw bytes or 64 hex digits (and may end in a newline)"

-- The key in s, the contents of a key file | nil, why (no bytes of s).
function M.parse(s)
    local n = M.KEY_LEN
    if #s == n then
        return s
    end
    local body = s
    if body:sub(-2) == "\r\n" then
        body = body:sub(1, -3)
    elseif body:sub(-1) == "\n" then
        body = body:sub(1, -2)
    end
    if #body == 2 * n then
        if not body:find("^%x+$") then
            return nil, format("%s: this one holds 64 characters that are not all hex digits",
                               WHAT)
        end
        local out = {}
        for i = 1, n do
            out[i] = char(tonumber(body:sub(2 * i - 1, 2 * i), 16))
        end
        return concat(out)
    elseif #body == n then
        return body
    end
    return nil, format("%s: this one holds %d bytes", WHAT, #s)
end

-- The key in the file at path | nil, err (naming path, never quoting it).
function M.read(path)
    local f, oerr = io.open(path, "rb")
    if f == nil then
        return nil, format("cannot read the key file: %s", oerr)
    end
    local limit = 2 * M.KEY_LEN + 2 -- hex and "\r\n": the longest valid file
    local s, rerr = f:read(limit + 1)
    local size = s and #s
    if s ~= nil and #s > limit then
        size = f:seek("end")
    end
    f:close()
    if s == nil and rerr ~= nil then
        return nil, format("cannot read the key file %s: %s", path, rerr)
    end
    s = s or ""
    if #s > limit then
        return nil, format("%s: %s: this one holds %s bytes", path, WHAT, tostring(size))
    end
    local key, why = M.parse(s)
    if key == nil then
        return nil, format("%s: %s", path, why)
    end
    return key
end

-- The key of a command: from flag (the --key-file value), else from the
-- file named by $STOAT_KEY_FILE (unset or empty: no key). key, nil, where
-- | nil, nil (no key) | nil, err. where names the source for messages
-- ("--key-file FILE" or "STOAT_KEY_FILE=FILE").
function M.resolve(flag, getenv)
    local path, where = flag
    if path ~= nil then
        where = "--key-file " .. path
    else
        path = (getenv or os.getenv)(M.ENV)
        if path == nil or path == "" then
            return nil, nil
        end
        where = M.ENV .. "=" .. path
    end
    local key, err = M.read(path)
    if key == nil then
        return nil, format("%s: %s", where, err)
    end
    return key, nil, where
end

function M.hex(s)
    return (s:gsub(".", function(c) return format("%02x", byte(c)) end))
end

-- n random bytes from /dev/urandom | nil, err.
function M.random(n)
    local f, err = io.open("/dev/urandom", "rb")
    if f == nil then
        return nil, "cannot read /dev/urandom: " .. tostring(err)
    end
    local s = f:read(n)
    f:close()
    if s == nil or #s ~= n then
        return nil, "short read from /dev/urandom"
    end
    return s
end

pcall(ffi.cdef, [[
int open(const char *path, int flags, ...);
long write(int fd, const void *buf, size_t n);
int close(int fd);
int fsync(int fd);
char *strerror(int errnum);
]])

-- Linux values (the same on every architecture stoat builds on).
local O_WRONLY, O_CREAT, O_EXCL = 1, 64, 128

-- Writes a new key, as hex and a newline, to stdout (path nil) or to a
-- new file at path created with mode 0600 (an existing file is refused:
-- overwriting a key can lose a database). true | nil, err.
function M.generate(path, out)
    local key, err = M.random(M.KEY_LEN)
    if key == nil then
        return nil, err
    end
    local line = M.hex(key) .. "\n"
    if path == nil then
        local ok, werr = (out or io.stdout):write(line)
        if not ok then
            return nil, "writing: " .. tostring(werr)
        end
        return true
    end
    local fd = ffi.C.open(path, bit.bor(O_WRONLY, O_CREAT, O_EXCL), ffi.cast("int", 384)) -- 0600
    if fd < 0 then
        return nil, format("cannot create %s: %s", path, ffi.string(ffi.C.strerror(ffi.errno())))
    end
    local n = ffi.C.write(fd, line, #line)
    local synced = n == #line and ffi.C.fsync(fd) == 0
    local e = ffi.errno()
    ffi.C.close(fd)
    if not synced then
        os.remove(path)
        return nil, format("cannot write %s: %s", path, ffi.string(ffi.C.strerror(e)))
    end
    return true
end

return M
