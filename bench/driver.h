/*
 * driver.h - the state of one benchmark run, shared by driver.c (the run
 * and its threads) and workload.c (what each benchmark does per thread).
 *
 * The main thread owns bench: it opens and closes the database and starts
 * and joins the threads of each benchmark. While a benchmark runs, its
 * threads read bench (flags, values, db) but only write their own
 * bench_thread and the two atomics.
 */
#ifndef BENCH_DRIVER_H
#define BENCH_DRIVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "engine.h"
#include "flags.h"
#include "gen.h"
#include "stats.h"

/* Longest key: --key_size at most 1024, plus readmissing's "." suffix. */
#define BENCH_KEY_MAX 1026

typedef struct bench {
    bench_flags f;
    int proc;                   /* --processes: this process's index, else 0 */
    gen_values values;
    engine_config cfg;
    engine_db *db;
    int db_sync;                /* the sync setting db was opened with */
    atomic_int readers_left;    /* readwhilewriting: readers still reading */
    atomic_int failed;          /* a thread failed: everyone stops */
    uint64_t user_written;      /* key + value bytes written by all benchmarks */
} bench;

typedef struct bench_thread bench_thread;

/* One benchmark's work in one thread; ENGINE_OK or ENGINE_ERR. */
typedef int (*bench_fn)(bench_thread *t);

struct bench_thread {
    bench *b;
    int index;
    int64_t ops;                /* how many operations this thread does */
    int64_t first;              /* fillseq: its first key (a process's share) */
    bench_fn fn;
    engine_session *s;
    gen_rand rand;
    size_t value_pos;           /* this thread's cursor in b->values */
    stats st;
    engine_buf val;
    unsigned touched;           /* sink for the bytes iterators touch */
    char key[BENCH_KEY_MAX];
    char err[512];
    pthread_barrier_t *start;
    pthread_t tid;
};

/* What the driver knows of each benchmark (driver.c's table). */
typedef struct bench_def {
    const char *name;
    bench_fn fn;
    int fresh_db;       /* delete the database first */
    int force_sync;     /* run with sync on whatever --sync says */
    int use_threads;    /* --threads threads, else one */
    int writer;         /* one more thread writes until the readers finish */
    int reads;          /* each thread does --reads operations, else --num */
    int64_t divisor;    /* the count is divided by this (fillsync: 1000) */
    int report_found;   /* append "(found of done found)" */
} bench_def;

/* driver.c, for procs.c: open and close b->db (exit on failure), run a
 * benchmark's n threads in this process, the message after its line. */
void bench_open(bench *b, int sync);
void bench_close(bench *b);
int bench_thread_count(const bench *b, const bench_def *def);
void bench_run_threads(bench *b, const bench_def *def, bench_thread *t, int n, int ordinal);
void bench_message(const bench_def *def, const stats *readers, const stats *writer,
                   char *msg, size_t len);

/* procs.c: runs def in --processes child processes and reports it. */
void procs_run(bench *b, const bench_def *def, int ordinal);

/* The workloads (workload.c). */
int workload_fill_seq(bench_thread *t);
int workload_fill_random(bench_thread *t);
int workload_write_while_reading(bench_thread *t);
int workload_read_random(bench_thread *t);
int workload_read_missing(bench_thread *t);
int workload_read_seq(bench_thread *t);
int workload_read_reverse(bench_thread *t);
int workload_seek_random(bench_thread *t);

#endif /* BENCH_DRIVER_H */
