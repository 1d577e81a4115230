-- luacheck configuration: `make lint` (lua/lua.mk) runs
-- `luacheck lua spec examples rocks`.
std = "luajit"
max_line_length = 100
allow_defined_top = false
codes = true

files["spec/"] = { std = "+busted" }
-- code that runs inside nginx (the OpenResty example, the specs' handlers)
files["examples/openresty/"] = { std = "+ngx_lua" }
files["spec/support/ngx_test.lua"] = { std = "+ngx_lua" }
files["rocks/"] = { std = "+rockspec" }
files[".luacheckrc"] = { std = "+luacheckrc" }

exclude_files = { "build/", "build-*/" }
