/*
 * hist.c - the latency histogram of hist.h. Bucket b counts samples in
 * [hist_limit(b - 1), hist_limit(b)); the last bucket is open-ended.
 */
#include <math.h>
#include <string.h>

#include "hist.h"

/* Upper bounds inside one decade, times 10^e (16 steps per decade). */
static const double hist_steps[16] = {
    1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0
};

/* Decades from 10^-1 us; HIST_BUCKETS / 16 of them. */
static const double hist_decades[HIST_BUCKETS / 16] = {
    1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9
};

static double hist_limit(int b)
{
    return hist_steps[b % 16] * hist_decades[b / 16];
}

void hist_clear(hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = INFINITY;
}

static int hist_bucket(double v)
{
    int lo = 0, hi = HIST_BUCKETS - 1;

    /* First bucket whose limit exceeds v (or the last one). */
    while (lo < hi) {
        int mid = (lo + hi) / 2;

        if (hist_limit(mid) > v)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void hist_add(hist *h, double micros)
{
    h->buckets[hist_bucket(micros)]++;
    if (micros < h->min)
        h->min = micros;
    if (micros > h->max)
        h->max = micros;
    h->count++;
    h->sum += micros;
    h->sum_sq += micros * micros;
}

void hist_merge(hist *into, const hist *from)
{
    if (from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
    into->count += from->count;
    into->sum += from->sum;
    into->sum_sq += from->sum_sq;
    for (int b = 0; b < HIST_BUCKETS; b++)
        into->buckets[b] += from->buckets[b];
}

double hist_percentile(const hist *h, double p)
{
    double threshold = (double)h->count * (p / 100.0);
    double sum = 0;

    for (int b = 0; b < HIST_BUCKETS; b++) {
        double left, right, pos, r;

        sum += (double)h->buckets[b];
        if (sum < threshold || h->buckets[b] == 0)
            continue;
        left = b == 0 ? 0.0 : hist_limit(b - 1);
        right = hist_limit(b);
        pos = (threshold - (sum - (double)h->buckets[b])) / (double)h->buckets[b];
        r = left + (right - left) * pos;
        if (r < h->min)
            r = h->min;
        if (r > h->max)
            r = h->max;
        return r;
    }
    return h->max;
}

void hist_print(const hist *h, FILE *out)
{
    double n = h->count ? (double)h->count : 1.0;
    double avg = h->sum / n;
    double var = h->sum_sq / n - avg * avg;

    fprintf(out, "Microseconds per op:\n");
    fprintf(out, "Count: %llu Average: %.4f  StdDev: %.2f\n",
            (unsigned long long)h->count, avg, var > 0 ? sqrt(var) : 0.0);
    fprintf(out, "Min: %.4f  Median: %.4f  Max: %.4f\n",
            h->count ? h->min : 0.0, hist_percentile(h, 50), h->max);
    fprintf(out, "Percentiles: P50: %.2f P75: %.2f P99: %.2f P99.9: %.2f P99.99: %.2f\n",
            hist_percentile(h, 50), hist_percentile(h, 75), hist_percentile(h, 99),
            hist_percentile(h, 99.9), hist_percentile(h, 99.99));
}
