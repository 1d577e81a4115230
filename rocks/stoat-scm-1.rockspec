-- The development rock of stoat: the C library and its LuaJIT FFI module.
--   luarocks --lua-version=5.1 make rocks/stoat-scm-1.rockspec [--tree DIR]
-- builds from this checkout with the top-level Makefile (`make lib`, then
-- `make install` from lua/lua.mk) and needs no network.
rockspec_format = "3.0"
package = "stoat"
version = "scm-1"

source = {
    -- luarocks make builds the checkout it runs in; this is only used by
    -- `luarocks install` of a published rockspec. Set it when the project
    -- has a public home.
    url = "git+https://example.invalid/stoat.git",
}

description = {
    license = "MIT",
    summary = "Embedded key-value database (LSM tree + value log, MVCC) for LuaJIT",
    detailed = [[
stoat is an embedded key-value database with a C core after the design of
Badger and the WiscKey paper, and a LuaJIT FFI face: transactions are
closures (db:update, db:view), iterators are generators (txn:pairs).
Requires LuaJIT (or OpenResty's luajit2): the module uses the FFI.
]],
    labels = { "database", "key-value", "luajit", "ffi", "openresty" },
}

supported_platforms = { "unix" }

dependencies = {
    "lua == 5.1",
}

external_dependencies = {
    ZSTD = { header = "zstd.h", library = "zstd" },
    LZ4 = { header = "lz4.h", library = "lz4" },
    XXHASH = { header = "xxhash.h", library = "xxhash" },
    SODIUM = { header = "sodium.h", library = "sodium" },
}

build = {
    type = "make",
    build_target = "lib",
    build_variables = {
        OPT = "$(CFLAGS)",
        EXTRA_CFLAGS = "-I$(ZSTD_INCDIR) -I$(LZ4_INCDIR) -I$(XXHASH_INCDIR) -I$(SODIUM_INCDIR)",
        EXTRA_LDFLAGS = "-L$(ZSTD_LIBDIR) -L$(LZ4_LIBDIR) -L$(XXHASH_LIBDIR) -L$(SODIUM_LIBDIR)",
    },
    install_target = "install",
    install_variables = {
        LIBDIR = "$(LIBDIR)",
        LUADIR = "$(LUADIR)",
        -- In the rock's own directory, not its lib/: libstoat.so is not a
        -- Lua module. stoat/libpath.lua tells the module where it is.
        STOAT_LIBDIR = "$(PREFIX)/clib",
    },
    -- The `stoat` command (a LuaJIT script; see `stoat help`).
    install = {
        bin = { stoat = "bin/stoat" },
    },
}

test = {
    type = "command",
    command = "make test",
}
