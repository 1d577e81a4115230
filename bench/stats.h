/*
 * stats.h - what a benchmark measures and how it is printed.
 *
 * Each thread fills its own stats (operations, bytes, found reads, its
 * start and finish time, optionally a latency histogram); after the
 * threads joined, the main thread merges them and prints the db_bench
 * line
 *
 *     fillrandom   :       3.456 micros/op 289351 ops/sec;   32.0 MB/s
 *
 * where micros/op is the time one thread spends per operation (busy time
 * summed over threads / operations) and ops/sec the throughput of all
 * threads (operations / wall time from the first start to the last
 * finish), as RocksDB's db_bench computes them. A second line,
 *
 *       thread cpu: 2.910 micros/op
 *
 * gives the CPU time the benchmark's threads used per operation (their
 * CLOCK_THREAD_CPUTIME_ID), which waiting for a core on a busy machine
 * does not inflate; background threads are not in it.
 *
 * The process-wide figures (bytes written to disk, peak RSS) come from
 * /proc/self/io and getrusage; see stats_io_read.
 */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stdint.h>
#include <sys/types.h>
#include <stdio.h>

#include "hist.h"

typedef struct stats {
    uint64_t done;          /* operations finished */
    uint64_t found;         /* reads that found their key */
    uint64_t bytes;         /* key + value bytes moved, for MB/s */
    uint64_t user_written;  /* key + value bytes written by the benchmark */
    double start;           /* seconds, CLOCK_MONOTONIC */
    double finish;
    double seconds;         /* busy time, summed over merged threads */
    double cpu_start;       /* the thread's CPU clock at stats_start */
    double cpu_seconds;     /* CPU time of the thread(s), summed */
    double last_op;         /* end of the previous operation (histogram) */
    int histogram;
    hist hist;
} stats;

/* Seconds on the monotonic clock. */
double stats_now(void);

void stats_start(stats *s, int histogram);
/* Counts n operations that just finished (a batch counts its entries). */
void stats_ops(stats *s, uint64_t n);
void stats_stop(stats *s);
/* Adds from into into; start with a copy of the first thread's stats. */
void stats_merge(stats *into, const stats *from);

/* The db_bench line; msg (may be NULL or "") is appended after it. */
void stats_report(const stats *s, const char *name, const char *msg, FILE *out);

/* Bytes this process has had written, cumulated since it started. */
typedef struct stats_io {
    int ok;                 /* 0: /proc/self/io is unreadable */
    uint64_t bytes;         /* write_bytes, or wchar when write_bytes is blind */
} stats_io;

/*
 * Decides once which counter measures disk writes: a 64 KiB probe file
 * is written (and removed) in dir; if write_bytes grew, it is used
 * (bytes the process dirtied in the page cache, i.e. what goes to the
 * device, counted when written), else wchar (bytes passed to write
 * calls: the fallback on file systems that do not account, like tmpfs).
 * Returns the name of the chosen counter, or NULL when none works.
 */
const char *stats_io_probe(const char *dir);
void stats_io_read(stats_io *io);

/* Peak resident set size of the process so far, in bytes. */
uint64_t stats_peak_rss(void);

/* Proportional set size of process pid now, in bytes (0 when unknown):
 * its private pages plus its share of each page it maps with others
 * (/proc/PID/smaps_rollup). Summed over processes that share a database's
 * mappings and memory, it counts each page once, where RSS counts a
 * shared page in every process. */
uint64_t stats_pss_of(pid_t pid);

#endif /* BENCH_STATS_H */
