/*
 * hist.h - a latency histogram (microseconds) for --histogram=1.
 *
 * Fixed buckets, about 16 per decade from 0.1 us to 10^10 us, so adding a
 * sample is a short search and merging two histograms adds their counts.
 * Percentiles interpolate inside a bucket. Not thread-safe: each thread
 * keeps its own and the driver merges them after the threads joined.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>
#include <stdio.h>

#define HIST_BUCKETS 176

typedef struct hist {
    uint64_t count;
    double min;
    double max;
    double sum;
    double sum_sq;
    uint64_t buckets[HIST_BUCKETS];
} hist;

void hist_clear(hist *h);
void hist_add(hist *h, double micros);
void hist_merge(hist *into, const hist *from);
/* The value below which p percent (0..100) of the samples lie. */
double hist_percentile(const hist *h, double p);
/* Prints the summary and percentiles in db_bench's layout. */
void hist_print(const hist *h, FILE *out);

#endif /* BENCH_HIST_H */
