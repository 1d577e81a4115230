# bench/bench.mk - the benchmark tools; included by the top-level Makefile.
#
#   make bench         build/bench/stoat_bench (links build/libstoat.a)
#   make bench-peers   build/bench/{leveldb,rocksdb,lmdb}_bench, from
#                      Debian's libleveldb-dev, librocksdb-dev, liblmdb-dev
#   make bench-smoke   runs every built tool on a tiny database (stoat and
#                      LMDB also with --processes=2)
#   make bench-bulk    bench/bulk_load.sh: bulk loader vs batched puts (issue 14)
#
# Every tool is the same driver linked with one adapter (bench/engine_*.c).
# Uses CC, CFLAGS, LDFLAGS, LDLIBS and BUILD from the top-level Makefile.

BENCH_DIR := $(BUILD)/bench
BENCH_DRIVER := driver procs workload flags gen stats hist dbdir engine
BENCH_DRIVER_OBJS := $(BENCH_DRIVER:%=$(BENCH_DIR)/obj/%.o)
BENCH_HDRS := $(wildcard bench/*.h) core/include/stoat.h
BENCH_PEERS := leveldb rocksdb lmdb
BENCH_PEER_LIBS_leveldb := -lleveldb
BENCH_PEER_LIBS_rocksdb := -lrocksdb
BENCH_PEER_LIBS_lmdb := -llmdb
# Debian's RocksDB headers need C++ to say their version; read it instead.
BENCH_ROCKSDB_VERSION := $(shell sed -n 's/^\#define ROCKSDB_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)/\2/p' \
                           /usr/include/rocksdb/version.h 2>/dev/null | paste -sd. -)

.PHONY: bench bench-peers bench-smoke bench-bulk

bench: $(BENCH_DIR)/stoat_bench

bench-peers: $(BENCH_PEERS:%=$(BENCH_DIR)/%_bench)

$(BENCH_DIR)/obj/%.o: bench/%.c $(BENCH_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(BENCH_CFLAGS) -Ibench -c -o $@ $<

$(BENCH_DIR)/obj/engine_rocksdb.o: BENCH_CFLAGS = -DBENCH_ROCKSDB_VERSION='"$(BENCH_ROCKSDB_VERSION)"'

# Keep the adapters' objects that the pattern rule below builds.
.SECONDARY: $(BENCH_PEERS:%=$(BENCH_DIR)/obj/engine_%.o)

$(BENCH_DIR)/stoat_bench: $(BENCH_DRIVER_OBJS) $(BENCH_DIR)/obj/engine_stoat.o $(BUILD)/libstoat.a
	$(CC) -o $@ $^ $(LDFLAGS) $(LDLIBS) -lm

# The bulk load against batched puts (bench/bulk_load.c): stoat only.
$(BENCH_DIR)/bulk_load: $(BENCH_DIR)/obj/bulk_load.o $(BENCH_DIR)/obj/gen.o $(BENCH_DIR)/obj/stats.o \
                        $(BENCH_DIR)/obj/hist.o $(BENCH_DIR)/obj/dbdir.o $(BUILD)/libstoat.a
	$(CC) -o $@ $^ $(LDFLAGS) $(LDLIBS) -lm

bench-bulk: $(BENCH_DIR)/bulk_load
	sh bench/bulk_load.sh

$(BENCH_DIR)/%_bench: $(BENCH_DRIVER_OBJS) $(BENCH_DIR)/obj/engine_%.o
	$(CC) -o $@ $^ $(LDFLAGS) $(BENCH_PEER_LIBS_$*) -pthread -lm

bench-smoke:
	@set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	for tool in $(wildcard $(BENCH_DIR)/*_bench); do \
	  out=$$($$tool --db=$$dir/$$(basename $$tool) --num=2000 --reads=500 --threads=2); \
	  for b in fillseq fillrandom overwrite readrandom readmissing readseq readreverse \
	           seekrandom readwhilewriting fillsync; do \
	    echo "$$out" | grep -q "^$$b *: .* micros/op .* ops/sec;" || \
	      { echo "$$tool: no $$b line"; echo "$$out"; exit 1; }; \
	  done; \
	  case $$tool in *leveldb_bench|*rocksdb_bench) ;; *) \
	    out=$$($$tool --db=$$dir/$$(basename $$tool)-procs --num=2000 --reads=500 --processes=2 \
	                  --benchmarks=fillrandom,readrandom); \
	    echo "$$out" | grep -q "^readrandom *: .* ops/sec;.*(2 processes)" || \
	      { echo "$$tool: --processes=2 failed"; echo "$$out"; exit 1; }; \
	  esac; \
	  echo "bench-smoke: $$tool ok"; \
	done
