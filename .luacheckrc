-- luacheck configuration: `make lint` (lua/lua.mk) runs
-- `luacheck lua spec examples rocks`.
std = "luajit"
max_line_length = 100
allow_defined_top = false
codes = true

files["spec/"] = { std = "+busted" }
files["rocks/"] = { std = "+rockspec" }
files[".luacheckrc"] = { std = "+luacheckrc" }

exclude_files = { "build/", "build-*/" }
