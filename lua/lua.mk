# lua/lua.mk - the Lua face's make targets, included by the top-level
# Makefile (which defines BUILD and how to build $(BUILD)/libstoat.so).
#
#   make install [PREFIX=/usr/local] [LIBDIR=...] [LUADIR=...] [STOAT_LIBDIR=...]
#                [DESTDIR=...]
#       libstoat.so into STOAT_LIBDIR (default LIBDIR), stoat.lua,
#       stoat/*.lua and stoat/cli/*.lua into LUADIR, and stoat/libpath.lua,
#       which tells the module where the library is. LuaRocks (build type make,
#       rocks/stoat-scm-1.rockspec) passes its rock's LUADIR and a
#       STOAT_LIBDIR inside the rock's own directory: outside its lib/, so
#       that LuaRocks does not list libstoat as a Lua module (it is not one).
#       By hand the defaults suit a system LuaJIT, whose package.cpath and
#       package.path cover them.
#       With BINDIR set (by hand: BINDIR=/usr/local/bin), the `stoat`
#       command too (the rock installs it itself: build.install.bin).
#   make lint
#       luacheck over the module, the specs and the examples (configuration
#       in .luacheckrc), luarocks lint over the rockspec.

LUA_VERSION ?= 5.1
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
LUADIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)
STOAT_LIBDIR ?= $(LIBDIR)
INSTALL ?= install
LUACHECK ?= luacheck
LUAROCKS ?= luarocks

LUA_MODULES := $(wildcard lua/stoat/*.lua)
CLI_MODULES := $(wildcard lua/stoat/cli/*.lua)

.PHONY: install lint

install: $(BUILD)/libstoat.so lua/stoat.lua $(LUA_MODULES) $(CLI_MODULES)
	$(INSTALL) -d $(DESTDIR)$(STOAT_LIBDIR) $(DESTDIR)$(LUADIR)/stoat $(DESTDIR)$(LUADIR)/stoat/cli
	$(INSTALL) -m 755 $(BUILD)/libstoat.so $(DESTDIR)$(STOAT_LIBDIR)/libstoat.so
	$(INSTALL) -m 644 lua/stoat.lua $(DESTDIR)$(LUADIR)/stoat.lua
	$(INSTALL) -m 644 $(LUA_MODULES) $(DESTDIR)$(LUADIR)/stoat/
	$(INSTALL) -m 644 $(CLI_MODULES) $(DESTDIR)$(LUADIR)/stoat/cli/
	printf 'return [==[%s]==]\n' '$(STOAT_LIBDIR)/libstoat.so' \
	  > $(DESTDIR)$(LUADIR)/stoat/libpath.lua
	$(if $(BINDIR),$(INSTALL) -d $(DESTDIR)$(BINDIR) && $(INSTALL) -m 755 bin/stoat $(DESTDIR)$(BINDIR)/stoat)

lint:
	$(LUACHECK) lua spec examples rocks bin/stoat .busted .luacheckrc
	$(LUAROCKS) lint rocks/stoat-scm-1.rockspec
