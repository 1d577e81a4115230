/*
 * stats.c - per-thread measurements, their merge and the report line, and
 * the process-wide I/O and memory figures (see stats.h). A stats belongs
 * to one thread until it is merged; the I/O counter choice is made by the
 * main thread before any benchmark thread starts.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"

#define MB 1048576.0

static int stats_use_wchar;

/* Seconds of CPU the calling thread has used. */
static double stats_thread_cpu(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double stats_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void stats_start(stats *s, int histogram)
{
    memset(s, 0, sizeof *s);
    s->histogram = histogram;
    hist_clear(&s->hist);
    s->start = s->last_op = stats_now();
    s->cpu_start = stats_thread_cpu();
}

void stats_ops(stats *s, uint64_t n)
{
    s->done += n;
    if (s->histogram) {
        double now = stats_now();

        hist_add(&s->hist, (now - s->last_op) * 1e6);
        s->last_op = now;
    }
}

void stats_stop(stats *s)
{
    s->finish = stats_now();
    s->seconds = s->finish - s->start;
    s->cpu_seconds = stats_thread_cpu() - s->cpu_start;
}

void stats_merge(stats *into, const stats *from)
{
    if (from->start < into->start)
        into->start = from->start;
    if (from->finish > into->finish)
        into->finish = from->finish;
    into->done += from->done;
    into->found += from->found;
    into->bytes += from->bytes;
    into->user_written += from->user_written;
    into->seconds += from->seconds;
    into->cpu_seconds += from->cpu_seconds;
    into->histogram |= from->histogram;
    hist_merge(&into->hist, &from->hist);
}

void stats_report(const stats *s, const char *name, const char *msg, FILE *out)
{
    double elapsed = s->finish - s->start;
    double done = s->done ? (double)s->done : 1.0;
    char extra[160] = "";

    if (elapsed <= 0)
        elapsed = 1e-9;
    if (s->bytes > 0)
        snprintf(extra, sizeof extra, "%6.1f MB/s", (double)s->bytes / MB / elapsed);
    if (msg && *msg) {
        size_t len = strlen(extra);

        snprintf(extra + len, sizeof extra - len, "%s%s", len ? " " : "", msg);
    }
    fprintf(out, "%-12s : %11.3f micros/op %ld ops/sec;%s%s\n", name,
            s->seconds * 1e6 / done, (long)((double)s->done / elapsed),
            *extra ? " " : "", extra);
    fprintf(out, "  thread cpu: %.3f micros/op\n", s->cpu_seconds * 1e6 / done);
    if (s->histogram)
        hist_print(&s->hist, out);
    fflush(out);
}

/* Reads the write_bytes and wchar lines; -1 when the file is unreadable. */
static int stats_proc_io(uint64_t *write_bytes, uint64_t *wchar)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    int seen = 0;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long long v;

        if (sscanf(line, "write_bytes: %llu", &v) == 1) {
            *write_bytes = v;
            seen |= 1;
        } else if (sscanf(line, "wchar: %llu", &v) == 1) {
            *wchar = v;
            seen |= 2;
        }
    }
    fclose(f);
    return seen == 3 ? 0 : -1;
}

/* Writes and fsyncs 64 KiB in dir; -1 when it cannot. */
static int stats_probe_write(const char *dir)
{
    char path[4096], block[4096];
    int fd, rc = 0;

    snprintf(path, sizeof path, "%s/.bench_io_probe", dir);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
        return -1;
    memset(block, 'p', sizeof block);
    for (int i = 0; i < 16 && rc == 0; i++)
        if (write(fd, block, sizeof block) != (ssize_t)sizeof block)
            rc = -1;
    if (rc == 0 && fsync(fd) != 0)
        rc = -1;
    close(fd);
    unlink(path);
    return rc;
}

const char *stats_io_probe(const char *dir)
{
    uint64_t wb0 = 0, wc0 = 0, wb1 = 0, wc1 = 0;

    if (stats_proc_io(&wb0, &wc0) != 0 || stats_probe_write(dir) != 0 ||
        stats_proc_io(&wb1, &wc1) != 0)
        return NULL;
    stats_use_wchar = wb1 == wb0;
    return stats_use_wchar ? "wchar" : "write_bytes";
}

void stats_io_read(stats_io *io)
{
    uint64_t write_bytes = 0, wchar = 0;

    io->ok = stats_proc_io(&write_bytes, &wchar) == 0;
    io->bytes = stats_use_wchar ? wchar : write_bytes;
}

uint64_t stats_pss_of(pid_t pid)
{
    char path[64], line[256];
    unsigned long long kb = 0;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "Pss: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

uint64_t stats_peak_rss(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)ru.ru_maxrss * 1024;  /* Linux reports KiB */
}
