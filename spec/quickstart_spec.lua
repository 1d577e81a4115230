-- examples/quickstart.lua, the README's Lua run command, runs as it is.

local h = require "helpers"

describe("quickstart", function()
    it("runs to the end when started with luajit from the repository root", function()
        local dir = h.scratch(finally) .. "/db"
        local lib = os.getenv("BUILD")
        local env = lib and ("STOAT_LIB=" .. h.shell_quote(lib .. "/libstoat.so") .. " ") or ""
        local ok, out = h.run(env .. "luajit examples/quickstart.lua " .. h.shell_quote(dir))
        assert.is_true(ok, out)
        assert.matches("view: user:002 -> {\"name\": \"user 2\"}", out, 1, true)
        assert.matches("get user:003 after delete -> nil", out, 1, true)
        assert.matches("\nclosed\n$", out)
    end)
end)
