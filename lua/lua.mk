# lua/lua.mk - the Lua face's make targets, included by the top-level
# Makefile (which defines BUILD and how to build $(BUILD)/libstoat.so).
#
#   make install [PREFIX=/usr/local] [LIBDIR=...] [LUADIR=...] [DESTDIR=...]
#       libstoat.so into LIBDIR, stoat.lua, stoat/*.lua and stoat/cli/*.lua
#       into LUADIR; with BINDIR set (by hand: BINDIR=/usr/local/bin), the
#       `stoat` command too (the rock installs it itself: build.install.bin).
#       LuaRocks (build type make, rocks/stoat-scm-1.rockspec) passes its
#       rock's LIBDIR and LUADIR; by hand the defaults suit a system LuaJIT,
#       whose package.cpath and package.path cover them.
#   make lint
#       luacheck over the module, the specs and the examples (configuration
#       in .luacheckrc), luarocks lint over the rockspec.

LUA_VERSION ?= 5.1
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
LUADIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)
INSTALL ?= install
LUACHECK ?= luacheck
LUAROCKS ?= luarocks

LUA_MODULES := $(wildcard lua/stoat/*.lua)
CLI_MODULES := $(wildcard lua/stoat/cli/*.lua)

.PHONY: install lint

install: $(BUILD)/libstoat.so lua/stoat.lua $(LUA_MODULES) $(CLI_MODULES)
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(LUADIR)/stoat $(DESTDIR)$(LUADIR)/stoat/cli
	$(INSTALL) -m 755 $(BUILD)/libstoat.so $(DESTDIR)$(LIBDIR)/libstoat.so
	$(INSTALL) -m 644 lua/stoat.lua $(DESTDIR)$(LUADIR)/stoat.lua
	$(INSTALL) -m 644 $(LUA_MODULES) $(DESTDIR)$(LUADIR)/stoat/
	$(INSTALL) -m 644 $(CLI_MODULES) $(DESTDIR)$(LUADIR)/stoat/cli/
	$(if $(BINDIR),$(INSTALL) -d $(DESTDIR)$(BINDIR) && $(INSTALL) -m 755 bin/stoat $(DESTDIR)$(BINDIR)/stoat)

lint:
	$(LUACHECK) lua spec examples rocks bin/stoat .busted .luacheckrc
	$(LUAROCKS) lint rocks/stoat-scm-1.rockspec
