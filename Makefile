# stoat - the only build entry.
#
#   make            libstoat.so, libstoat.a and the C examples in build/
#   make quickstart runs examples/quickstart.lua (the README's first command)
#   make test       every test of the project (layer check, C tests, Lua specs)
#   make check-layers  fails when a core/src file includes across its layers
#   make check-exports fails when libstoat.so exports anything but stoat_*
#   make lint       luacheck, luarocks lint, and comments naming missing files
#   make asan       ASan + UBSan build of the library and the C tests, run
#   make tsan       ThreadSanitizer over the threaded tests (bank test included)
#   make valgrind   the C tests under valgrind (leaks are failures)
#   make stress     the concurrency hunt for STRESS_SECONDS (see core/test/stress.sh)
#   make fuzz       every libFuzzer target (core/fuzz/) for FUZZ_SECONDS (60) each
#   make crash-test the kill loops, 1 and 4 writer processes, for CRASH_SECONDS (300) each
#   make openresty-demo  the OpenResty example (examples/openresty/) on
#                   127.0.0.1:$(DEMO_PORT) under a temporary prefix, left running
#   make bench-nginx    bench/nginx.sh: wrk against ngx.shared.DICT and stoat
#   make soak       the soak (core/test/soak.c) for SOAK_SECONDS (3600)
#   make powerloss  the power-loss state checker for POWERLOSS_STATES (20000)
#   make deps       installs the Debian packages the build and tests need
#   make clean
#
# LuaRocks (build type make) passes PREFIX, LIBDIR, LUADIR; see `install`.

CC ?= cc
BUILD ?= build
OPT ?= -O2
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -g $(OPT) -fPIC -pthread \
              -Wall -Wextra -Werror -Wstrict-prototypes -Wshadow \
              -Icore/include -Icore/src
CFLAGS += $(CFLAGS_BASE) $(EXTRA_CFLAGS)
LDLIBS = -lzstd -llz4 -lxxhash -lsodium -pthread
LDFLAGS += $(EXTRA_LDFLAGS)

LAYER_DIRS = base env crypt log mem table vlog lsm mvcc db
SRCS := $(wildcard core/src/*/*.c)
OBJS := $(SRCS:core/src/%.c=$(BUILD)/obj/%.o)
# The same sources with the test hooks (STOAT_TESTING), for test binaries.
TEST_OBJS := $(SRCS:core/src/%.c=$(BUILD)/obj-test/%.o)
HDRS := $(wildcard core/src/*/*.h) core/include/stoat.h
TEST_SUPPORT_SRCS := core/test/test.c $(wildcard core/test/support/*.c)
TEST_SUPPORT_OBJS := $(TEST_SUPPORT_SRCS:core/test/%.c=$(BUILD)/obj/test/%.o)
.SECONDARY: $(TEST_SUPPORT_OBJS)
TEST_SRCS := $(wildcard core/test/*_test.c)
TESTS := $(TEST_SRCS:core/test/%.c=$(BUILD)/test/%)
EXAMPLES := $(BUILD)/examples/quickstart

DEB_PACKAGES = build-essential libzstd-dev liblz4-dev libxxhash-dev libsodium-dev \
               luajit2 libluajit2-5.1-dev lua-busted luarocks lua-check lua-cjson \
               nginx libnginx-mod-http-lua lua-resty-core lua-socket curl wrk \
               valgrind clang

.PHONY: all lib check-layers check-exports test test-c asan tsan valgrind stress deps deps-bench \
        clean examples quickstart fuzz fuzz-build crash-test openresty-demo bench-nginx \
        soak powerloss

all: lib examples

lib: $(BUILD)/libstoat.so $(BUILD)/libstoat.a

# Only stoat.h's functions leave the library: everything is compiled
# hidden, and stoat.h makes its declarations visible under STOAT_BUILD.
LIB_CFLAGS = -fvisibility=hidden -DSTOAT_BUILD

$(BUILD)/obj/%.o: core/src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LIB_CFLAGS) -c -o $@ $<

$(BUILD)/obj-test/%.o: core/src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LIB_CFLAGS) -DSTOAT_TESTING -c -o $@ $<

$(BUILD)/libstoat_test.a: $(TEST_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libstoat.a: $(OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libstoat.so: $(OBJS)
	$(CC) -shared -o $@ $^ $(LDFLAGS) $(LDLIBS)

# Test support (the harness, the fault env) and the test hooks are built
# into test binaries only, never into the library.
$(BUILD)/obj/test/%.o: core/test/%.c core/test/test.h $(HDRS) $(wildcard core/test/support/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DSTOAT_TESTING -Icore/test -c -o $@ $<

$(BUILD)/test/%: core/test/%.c $(TEST_SUPPORT_OBJS) $(BUILD)/libstoat_test.a core/test/test.h \
                 $(wildcard core/test/*.h core/test/support/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DSTOAT_TESTING -Icore/test -o $@ $< $(TEST_SUPPORT_OBJS) \
	  $(BUILD)/libstoat_test.a $(LDFLAGS) $(LDLIBS)

# The kill loop: a short run (STOAT_CRASH_SECONDS, 5) in `make test`, a
# long one in `make crash-test`.
$(BUILD)/crash_loop: core/test/crash_loop.c $(TEST_SUPPORT_OBJS) $(BUILD)/libstoat_test.a core/test/test.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DSTOAT_TESTING -Icore/test -o $@ $< $(TEST_SUPPORT_OBJS) \
	  $(BUILD)/libstoat_test.a $(LDFLAGS) $(LDLIBS)

# The soak: a short run (STOAT_SOAK_SECONDS, 20) in `make test`, a long
# one in `make soak` (the curve is printed as it goes).
$(BUILD)/soak: core/test/soak.c $(TEST_SUPPORT_OBJS) $(BUILD)/libstoat_test.a core/test/test.h \
               core/test/db_util.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DSTOAT_TESTING -Icore/test -o $@ $< $(TEST_SUPPORT_OBJS) \
	  $(BUILD)/libstoat_test.a $(LDFLAGS) $(LDLIBS)

SOAK_SECONDS ?= 3600
soak: $(BUILD)/soak
	STOAT_SOAK_SECONDS=$(SOAK_SECONDS) STOAT_NO_LUA=1 BUILD=$(BUILD) \
	  sh core/test/run.sh $(BUILD)/soak

# Power-loss states (core/test/powerloss_test.c): 300 in `make test`,
# POWERLOSS_STATES here.
POWERLOSS_STATES ?= 20000
powerloss: $(BUILD)/test/powerloss_test
	STOAT_POWERLOSS_STATES=$(POWERLOSS_STATES) STOAT_NO_LUA=1 BUILD=$(BUILD) \
	  sh core/test/run.sh $(BUILD)/test/powerloss_test

# The kill loop, one writer process (core/test/crash_loop.c), then four
# writer processes on one database (mp_proof_test's random kill loop),
# CRASH_SECONDS each.
CRASH_SECONDS ?= 300
crash-test: $(BUILD)/crash_loop $(BUILD)/test/mp_proof_test
	STOAT_CRASH_SECONDS=$(CRASH_SECONDS) STOAT_NO_LUA=1 BUILD=$(BUILD) \
	  sh core/test/run.sh $(BUILD)/crash_loop
	STOAT_MP_KILL_SECONDS=$(CRASH_SECONDS) TMPDIR=$${TMPDIR:-/tmp} \
	  $(BUILD)/test/mp_proof_test test_mp_proof_random_kill_loop

$(BUILD)/examples/%: examples/%.c $(BUILD)/libstoat.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libstoat.a $(LDFLAGS) $(LDLIBS)

examples: $(EXAMPLES)

# The README's first command: the Lua quick start (the C one is
# build/examples/quickstart, built by `make`).
quickstart: lib
	luajit examples/quickstart.lua

# The OpenResty example, started by Debian's nginx (run as root, its
# workers run as nobody and own the database directory).
DEMO_PORT ?= 8089
openresty-demo: lib
	BUILD=$(BUILD) sh examples/openresty/run.sh $(DEMO_PORT)

# ngx.shared.DICT against stoat in one nginx (bench/nginx.sh; WORKERS,
# RUN_SECONDS, CONNECTIONS); writes its section of bench/RESULTS.md.
bench-nginx: lib
	BUILD=$(BUILD) sh bench/nginx.sh

check-layers:
	@sh core/check_layers.sh

check-exports: $(BUILD)/libstoat.so
	@bad=$$(nm -D --defined-only $< | awk '$$3 !~ /^stoat_/ {print $$3}'); \
	if [ -n "$$bad" ]; then echo "check-exports: not stoat_*:" $$bad; exit 1; fi; \
	echo "check-exports: ok"

test: check-layers check-exports lib $(TESTS) $(BUILD)/crash_loop $(BUILD)/soak
	@BUILD=$(BUILD) sh core/test/run.sh $(TESTS) $(BUILD)/crash_loop $(BUILD)/soak core/fuzz/short.sh

test-c: check-layers $(TESTS)
	@BUILD=$(BUILD) STOAT_NO_LUA=1 sh core/test/run.sh $(TESTS)

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" test-c

# ThreadSanitizer over the tests that run threads against one database
# (mp_threads_test: two multi-process handles in one process, no fork):
# the bank test (30 s, STOAT_BANK_SECONDS overrides), transactions, the
# skiplist's lock-free readers, the database's concurrent readers/writers.
TSAN_TESTS = txn_bank_test txn_test skiplist_test db_test vlog_db_test vlog_db_race_test db_ingest_test \
             db_scan_race_test mp_threads_test shared_cache_test
tsan:
	$(MAKE) BUILD=build-tsan OPT=-O1 \
	  EXTRA_CFLAGS="-fsanitize=thread" EXTRA_LDFLAGS="-fsanitize=thread" \
	  $(TSAN_TESTS:%=build-tsan/test/%)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" BUILD=build-tsan STOAT_NO_LUA=1 \
	  sh core/test/run.sh $(TSAN_TESTS:%=build-tsan/test/%)

# Valgrind (memcheck, leaks are errors) over every C test, the long ones
# scaled down through their environment knobs.
valgrind: $(TESTS)
	STOAT_MODEL_OPS=20000 STOAT_BANK_SECONDS=3 STOAT_GC_TEST_SCALE=0.01 \
	  STOAT_RECOVERY_ITERS=5 STOAT_NO_LUA=1 \
	  TEST_WRAPPER="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99" \
	  sh core/test/run.sh $(TESTS)

# The concurrency hunt: the model test and the tests racing iterators,
# value-log GC and compactions, in parallel copies beside CPU hogs, for
# STRESS_SECONDS (default 600), built with -DSTOAT_PERTURB so that random
# delays at the PERTURB points (core/src/base/perturb.h) shake the timing
# (STOAT_PERTURB=0 turns them off). Stops at the first failure and prints
# its seed.
STRESS_TESTS = db_model_test db_scan_race_test vlog_db_race_test db_test txn_bank_test
stress:
	$(MAKE) BUILD=build-stress EXTRA_CFLAGS=-DSTOAT_PERTURB $(STRESS_TESTS:%=build-stress/test/%)
	sh core/test/stress.sh build-stress

# libFuzzer targets for every parser of bytes from disk plus a
# differential one (core/fuzz/fuzz_*.c), built with clang under ASan and
# UBSan in build-fuzz/. `make fuzz` runs each for FUZZ_SECONDS from its
# seed corpus core/fuzz/corpus/<target>/ (new inputs go to
# build-fuzz/corpus/<target>/); `make test` runs each for a few seconds
# (core/fuzz/short.sh, skipped with a message when clang is missing).
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_SRCS := $(wildcard core/fuzz/fuzz_*.c)
FUZZ_TARGETS := $(FUZZ_SRCS:core/fuzz/%.c=build-fuzz/fuzz/%)

fuzz-build:
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=$(FUZZ_CC) OPT=-O1 \
	  EXTRA_CFLAGS="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" EXTRA_LDFLAGS="$(FUZZ_SAN)" \
	  build-fuzz/libstoat.a $(FUZZ_TARGETS)

build-fuzz/fuzz/%: core/fuzz/%.c $(wildcard core/fuzz/*.h) build-fuzz/libstoat.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icore/fuzz -fsanitize=fuzzer -o $@ $< build-fuzz/libstoat.a $(LDFLAGS) $(LDLIBS)

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) sh core/fuzz/run.sh $(FUZZ_TARGETS)

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all installed"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "deps: run as root: apt-get install -y$$missing"; exit 1; fi

clean:
	rm -rf build build-asan build-tsan build-stress build-fuzz

# The Lua face (install, lint) and the benchmark tools (bench, bench-peers).
include lua/lua.mk
include bench/bench.mk

# make lint (lua/lua.mk) also fails when a comment names a file of the
# repository that does not exist.
.PHONY: check-comment-paths
check-comment-paths:
	@sh core/check_comment_paths.sh

lint: check-comment-paths

deps-bench:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="libleveldb-dev librocksdb-dev liblmdb-dev linux-perf"
