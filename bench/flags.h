/*
 * flags.h - the command line, spelled as LevelDB's and RocksDB's db_bench
 * spell it: --name=value, booleans as 0/1 (or true/false, or a bare
 * --name for 1). Unknown flags and bad values are errors.
 *
 * Parsed once by the main thread before any benchmark runs; read-only
 * afterwards, so every thread may read it.
 */
#ifndef BENCH_FLAGS_H
#define BENCH_FLAGS_H

#include <stddef.h>
#include <stdint.h>

#define FLAGS_DEFAULT_BENCHMARKS                                             \
    "fillseq,fillrandom,overwrite,readrandom,readmissing,readseq,"           \
    "readreverse,seekrandom,readwhilewriting,fillsync"

typedef struct bench_flags {
    const char *benchmarks;     /* comma-separated list, run in order */
    int64_t num;                /* entries a fill writes */
    int64_t reads;              /* reads per thread; <0 means num */
    size_t value_size;
    size_t key_size;            /* width of the zero-padded decimal keys */
    int64_t batch;              /* entries per write batch */
    int sync;                   /* fsync every write (batch) */
    int threads;                /* threads of the read benchmarks and fillsync */
    int64_t seek_nexts;         /* nexts after each seek of seekrandom */
    double compression_ratio;   /* how far values compress */
    int histogram;              /* print latency percentiles */
    int use_existing_db;        /* keep the database found in --db */
    int bloom_bits;             /* peers' bloom filter bits per key; <0: none */
    int value_threshold;        /* stoat: value_threshold option; 0: its default */
    uint64_t seed;              /* base of every thread's generator */
    int processes;              /* 0: run in this process; N: N child processes
                                 * each open the database and run every benchmark */
    int encrypt;                /* stoat: encryption_key set (a fixed key) */
    int multi_process;          /* stoat: multi_process option; -1: stoat's default (on) */
    const char *db;             /* database directory */
    char db_default[512];       /* storage for the default --db */
} bench_flags;

/* Fills f with the defaults; the default --db names the engine. */
void flags_init(bench_flags *f, const char *engine_name);

/*
 * Parses argv[1..argc-1] into f. Returns 0, 1 when --help was asked (the
 * usage is printed), or -1 after printing the error to stderr.
 */
int flags_parse(bench_flags *f, int argc, char **argv);

#endif /* BENCH_FLAGS_H */
