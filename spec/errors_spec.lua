-- Error strings: every C code has its stable leading word; the runtime
-- failures reachable from Lua return nil, "<word>: <detail>".

local ffi = require "ffi"
local stoat = require "stoat"
local base = require "stoat.base"
local h = require "helpers"

local C = base.C

pcall(ffi.cdef, [[
int fork(void);
void _exit(int status);
int waitpid(int pid, int *status, int options);
]])

describe("errors", function()
    it("start with the stable word of their code", function()
        local words = {
            STOAT_ENOTFOUND = "not found", STOAT_EINVAL = "invalid",
            STOAT_ECORRUPT = "corruption", STOAT_EIO = "io", STOAT_ENOMEM = "out of memory",
            STOAT_EBUSY = "busy", STOAT_ECLOSED = "closed", STOAT_EFORKED = "forked",
            STOAT_ECONFLICT = "conflict", STOAT_ETOOBIG = "too big",
            STOAT_EREADONLY = "read only", STOAT_ENOSPC = "no space",
            STOAT_ENOTSUP = "not supported", STOAT_EEXIST = "exists", STOAT_EKEY = "bad key",
        }
        for name, word in pairs(words) do
            local ok, err = base.fail(C[name])
            assert.is_nil(ok)
            assert.are.equal(word .. ": ", err:sub(1, #word + 2), name)
            assert.is_true(#err > #word + 2, name)
        end
        assert.matches("^unknown error %-99: ", select(2, base.fail(-99)))
    end)

    it("return io when the operating system refuses a file operation", function()
        local file = h.scratch(finally) .. "/file"
        assert(io.open(file, "w")):close()
        local db, err = stoat.open(file .. "/db")
        assert.is_nil(db)
        assert.matches("^io: ", err)
    end)

    it("return forked when a handle is used in a forked child", function()
        local db = h.open_db(finally)
        assert.is_true(db:set("k", "v"))
        local pid = ffi.C.fork()
        assert.is_true(pid >= 0)
        if pid == 0 then
            -- The child: report through the exit status, run no finalizer.
            local value, err = db:get("k")
            local ok, werr = db:set("k", "child")
            local good = value == nil and err:match("^forked: ") and ok == nil
                         and werr:match("^forked: ")
            ffi.C._exit(good and 0 or 1)
        end
        local status = ffi.new("int[1]")
        assert.are.equal(pid, ffi.C.waitpid(pid, status, 0))
        assert.are.equal(0, status[0])
        assert.are.equal("v", db:get("k"))
    end)
end)
