-- The rock: `luarocks make` of rocks/stoat-scm-1.rockspec into a fresh tree,
-- offline, then a LuaJIT that knows only that tree uses the module.

local h = require "helpers"

local q = h.shell_quote

-- A LuaJIT program run with only the tree's paths, from another directory
-- (so nothing of the source tree can be found).
local function run_in_tree(tree, code)
    local prelude = ("package.path = %q; package.cpath = %q; "):format(
        tree .. "/share/lua/5.1/?.lua;" .. tree .. "/share/lua/5.1/?/init.lua",
        tree .. "/lib/lua/5.1/?.so")
    return h.run(("cd %s && env -u STOAT_LIB -u LUA_PATH -u LUA_CPATH luajit -e %s")
                 :format(q(tree), q(prelude .. code)))
end

describe("rock", function()
    it("installs offline with luarocks make and works from its tree", function()
        local _, plan = h.run("make -n install LIBDIR=/nonexistent/lib LUADIR=/nonexistent/lua")
        if not plan:find("/nonexistent/lib", 1, true) then
            pending("the top-level Makefile does not include lua/lua.mk yet (no install target)")
            return
        end
        local tree = h.scratch(finally) .. "/tree"
        local ok, out = h.run(("luarocks --lua-version=5.1 make rocks/stoat-scm-1.rockspec "
                               .. "--tree %s"):format(q(tree)))
        assert.is_true(ok, out)
        ok, out = run_in_tree(tree, [[
            local stoat = require "stoat"
            assert(not package.searchpath("libstoat", package.cpath), "libstoat is in lib/lua")
            local dir = os.tmpname(); os.remove(dir)
            local db = assert(stoat.open(dir))
            assert(db:set("k\0", "v\0"))
            assert(db:update(function(txn) return txn:set("t", "x") end))
            assert(db:get("k\0") == "v\0" and db:get("t") == "x")
            assert(db:close())
            os.execute("rm -rf '" .. dir .. "'")
            io.write("rock ok ", stoat.version, "\n")
        ]])
        assert.is_true(ok, out)
        assert.matches("rock ok %d+%.%d+%.%d+", out)
        ok, out = h.run(("luarocks --lua-version=5.1 --tree %s show stoat"):format(q(tree)))
        assert.is_true(ok, out)
        assert.matches("stoat.txn", out, 1, true)
        assert.no.matches("libstoat", out, 1, true)
        assert.matches("License:%s+MIT", out)
        -- The command, from the tree's bin/ (a LuaRocks wrapper).
        ok, out = h.run(("cd %s && env -u STOAT_LIB -u LUA_PATH -u LUA_CPATH bin/stoat help")
                        :format(q(tree)))
        assert.is_true(ok, out)
        assert.matches("stoat %d+%.%d+%.%d+: ", out)
        -- Every module of the command went in (`stoat help` loads those of
        -- the commands; a module missing from the install would break it).
        local ls = io.popen("ls lua/stoat/cli")
        for name in ls:lines() do
            local f = io.open(tree .. "/share/lua/5.1/stoat/cli/" .. name, "r")
            assert.is_truthy(f, "not installed: stoat/cli/" .. name)
            f:close()
        end
        ls:close()
    end)
end)
