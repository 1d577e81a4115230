/*
 * driver.c - the db_bench-compatible benchmark driver: parses the flags,
 * prints the header, then runs each benchmark of --benchmarks in order
 * against the one engine linked into this binary (engine.h), printing the
 * db_bench line and the disk and memory figures after each.
 *
 * A benchmark marked fresh deletes the database and opens a new one
 * (fillseq, fillrandom, fillsync); the others run on what the previous
 * ones left. The database is reopened when a benchmark needs another
 * durability setting than the open one (fillsync always syncs).
 *
 * Threads: the main thread opens, closes and measures; each benchmark
 * starts its threads, which open their own session, wait on a barrier so
 * they start together, run, and are joined before anything is printed.
 *
 * Processes (--processes=N): the main process never opens the database;
 * procs.c forks N children per benchmark, each of which opens it, runs the
 * benchmark's threads here (bench_run_threads) and hands its figures back.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dbdir.h"
#include "driver.h"

#define MB 1048576.0

static const bench_def bench_defs[] = {
    { "fillseq", workload_fill_seq, 1, 0, 0, 0, 0, 1, 0 },
    { "fillrandom", workload_fill_random, 1, 0, 0, 0, 0, 1, 0 },
    { "overwrite", workload_fill_random, 0, 0, 0, 0, 0, 1, 0 },
    { "fillsync", workload_fill_random, 1, 1, 1, 0, 0, 1000, 0 },
    { "readrandom", workload_read_random, 0, 0, 1, 0, 1, 1, 1 },
    { "readmissing", workload_read_missing, 0, 0, 1, 0, 1, 1, 1 },
    { "readseq", workload_read_seq, 0, 0, 1, 0, 1, 1, 0 },
    { "readreverse", workload_read_reverse, 0, 0, 1, 0, 1, 1, 0 },
    { "seekrandom", workload_seek_random, 0, 0, 1, 0, 1, 1, 1 },
    { "readwhilewriting", workload_read_random, 0, 0, 1, 1, 1, 1, 1 },
};

#define BENCH_DEF_COUNT (sizeof bench_defs / sizeof bench_defs[0])

static const bench_def *bench_find(const char *name)
{
    for (size_t i = 0; i < BENCH_DEF_COUNT; i++)
        if (!strcmp(bench_defs[i].name, name))
            return &bench_defs[i];
    return NULL;
}

void bench_open(bench *b, int sync)
{
    b->cfg.sync = sync;
    if (dbdir_create(b->f.db) != 0)
        exit(1);
    if (engine.open(&b->cfg, &b->db) != ENGINE_OK) {
        fprintf(stderr, "open %s: %s\n", b->f.db, engine_errmsg());
        exit(1);
    }
    b->db_sync = sync;
}

void bench_close(bench *b)
{
    if (b->db && engine.close(b->db) != ENGINE_OK) {
        fprintf(stderr, "close %s: %s\n", b->f.db, engine_errmsg());
        exit(1);
    }
    b->db = NULL;
}

/* Deletes and recreates, or reopens with the sync setting def needs. */
static void bench_prepare(bench *b, const bench_def *def)
{
    int sync = def->force_sync ? 1 : b->f.sync;

    if (def->fresh_db) {
        bench_close(b);
        if (dbdir_destroy(b->f.db, engine.marker) != 0)
            exit(1);
        bench_open(b, sync);
    } else if (b->db == NULL || sync != b->db_sync) {
        bench_close(b);
        bench_open(b, sync);
    }
}

static void *bench_thread_main(void *arg)
{
    bench_thread *t = arg;
    int ok = engine.session_open(t->b->db, &t->s) == ENGINE_OK;

    if (!ok) {
        snprintf(t->err, sizeof t->err, "session_open: %s", engine_errmsg());
        atomic_store(&t->b->failed, 1);
    }
    pthread_barrier_wait(t->start);
    stats_start(&t->st, t->b->f.histogram && t->fn != workload_write_while_reading);
    if (ok && !atomic_load(&t->b->failed))
        t->fn(t);
    stats_stop(&t->st);
    engine.session_close(t->s);
    engine_buf_free(&t->val);
    return NULL;
}

/*
 * Runs n threads (the last one the writer when def has one) and joins
 * them. Exits when a thread could not start or failed.
 */
void bench_run_threads(bench *b, const bench_def *def, bench_thread *t, int n, int ordinal)
{
    pthread_barrier_t start;
    int64_t ops = (def->reads && b->f.reads >= 0 ? b->f.reads : b->f.num) / def->divisor;
    int64_t first = 0;
    int readers = def->writer ? n - 1 : n, failed = 0;

    if (!def->reads && b->f.processes > 1) {
        /* The processes share the writes: the same total as one process. */
        int64_t share = ops / b->f.processes, rest = ops % b->f.processes;

        first = share * b->proc + (b->proc < rest ? b->proc : rest);
        ops = share + (b->proc < rest ? 1 : 0);
    }
    if (ops < 1 && def->divisor > 1)
        ops = 1;    /* fillsync on a small --num still writes something */
    atomic_store(&b->readers_left, readers);
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        t[i].b = b;
        t[i].index = i;
        t[i].ops = ops;
        t[i].first = first;
        t[i].fn = i < readers ? def->fn : workload_write_while_reading;
        t[i].start = &start;
        gen_rand_seed(&t[i].rand, b->f.seed + (uint64_t)b->proc * 1000003 +
                                  (uint64_t)ordinal * 1000 + (uint64_t)i);
        if (pthread_create(&t[i].tid, NULL, bench_thread_main, &t[i]) != 0) {
            fprintf(stderr, "%s: cannot start thread %d\n", def->name, i);
            exit(1);
        }
    }
    for (int i = 0; i < n; i++) {
        pthread_join(t[i].tid, NULL);
        if (t[i].err[0]) {
            fprintf(stderr, "%s: thread %d: %s\n", def->name, i, t[i].err);
            failed = 1;
        }
    }
    pthread_barrier_destroy(&start);
    if (failed)
        exit(1);
}

/* The lines after the db_bench line: disk use, writes, memory. */
static void bench_report_resources(const bench *b, uint64_t user_written,
                                   const stats_io *io0, const stats_io *io1)
{
    uint64_t written = io1->bytes - io0->bytes;

    printf("  size on disk: %.1f MB\n", (double)dbdir_usage(b->f.db) / MB);
    if (!io0->ok || !io1->ok)
        printf("  bytes written: n/a\n");
    else if (user_written == 0)
        printf("  bytes written: %.1f MB (write amp n/a)\n", (double)written / MB);
    else
        printf("  bytes written: %.1f MB (write amp %.2f)\n", (double)written / MB,
               (double)written / (double)user_written);
    printf("  peak RSS: %.1f MB\n", (double)stats_peak_rss() / MB);
    fflush(stdout);
}

void bench_message(const bench_def *def, const stats *readers, const stats *writer,
                   char *msg, size_t len)
{
    msg[0] = '\0';
    if (def->report_found)
        snprintf(msg, len, "(%" PRIu64 " of %" PRIu64 " found)", readers->found, readers->done);
    if (def->writer) {
        size_t used = strlen(msg);

        snprintf(msg + used, len - used, " (writer: %" PRIu64 " ops, %.1f MB/s)",
                 writer->done, (double)writer->bytes / MB /
                 (writer->seconds > 0 ? writer->seconds : 1));
    }
}

static void bench_report(bench *b, const bench_def *def, bench_thread *t, int n,
                         const stats_io *io0, const stats_io *io1)
{
    int readers = def->writer ? n - 1 : n;
    stats total = t[0].st;
    uint64_t written;
    char msg[160];

    for (int i = 1; i < readers; i++)
        stats_merge(&total, &t[i].st);
    written = total.user_written + (def->writer ? t[n - 1].st.user_written : 0);
    bench_message(def, &total, &t[n - 1].st, msg, sizeof msg);
    stats_report(&total, def->name, msg, stdout);
    b->user_written += written;
    bench_report_resources(b, written, io0, io1);
}

int bench_thread_count(const bench *b, const bench_def *def)
{
    return (def->use_threads ? b->f.threads : 1) + (def->writer ? 1 : 0);
}

static void bench_run(bench *b, const bench_def *def, int ordinal)
{
    int n = bench_thread_count(b, def);
    bench_thread *t;
    stats_io io0, io1;

    if (b->f.processes > 0) {
        procs_run(b, def, ordinal);
        return;
    }
    if ((t = calloc((size_t)n, sizeof *t)) == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    bench_prepare(b, def);
    stats_io_read(&io0);
    bench_run_threads(b, def, t, n, ordinal);
    stats_io_read(&io1);
    bench_report(b, def, t, n, &io0, &io1);
    free(t);
}

/* "AMD EPYC" and its count, "512 KB": from /proc/cpuinfo. */
static void bench_cpu(char *model, size_t mlen, char *cache, size_t clen, int *count)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];

    *count = 0;
    snprintf(model, mlen, "unknown");
    snprintf(cache, clen, "unknown");
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':'), *val;

        if (colon == NULL)
            continue;
        val = colon + 1 + strspn(colon + 1, " \t");
        val[strcspn(val, "\n")] = '\0';
        if (!strncmp(line, "model name", 10)) {
            (*count)++;
            snprintf(model, mlen, "%s", val);
        } else if (!strncmp(line, "cache size", 10)) {
            snprintf(cache, clen, "%s", val);
        }
    }
    fclose(f);
}

static void bench_header(const bench *b, const char *io_counter)
{
    const bench_flags *f = &b->f;
    char describe[512], model[256], cache[64], date[64], name[32];
    double entry = (double)(f->key_size + f->value_size);
    double compressed = (double)f->key_size + (double)f->value_size * f->compression_ratio;
    time_t now = time(NULL);
    int cpus;

    engine.describe(&b->cfg, describe, sizeof describe);
    bench_cpu(model, sizeof model, cache, sizeof cache, &cpus);
    strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", localtime(&now));
    snprintf(name, sizeof name, "%s:", engine.name);
    printf("%-12s%s\n", name, describe);
    printf("Date:       %s\n", date);
    printf("CPU:        %d * %s\n", cpus, model);
    printf("CPUCache:   %s\n", cache);
    printf("Keys:       %zu bytes each\n", f->key_size);
    printf("Values:     %zu bytes each (%zu bytes after compression)\n", f->value_size,
           (size_t)((double)f->value_size * f->compression_ratio + 0.5));
    printf("Entries:    %" PRId64 "\n", f->num);
    printf("RawSize:    %.1f MB (estimated)\n", entry * (double)f->num / MB);
    printf("FileSize:   %.1f MB (estimated)\n", compressed * (double)f->num / MB);
    printf("Batch:      %" PRId64 "\nSync:       %d\nThreads:    %d\n", f->batch, f->sync, f->threads);
    if (f->processes > 0)
        printf("Processes:  %d (each opens the database; fills share --num, "
               "reads are per thread of each)\n", f->processes);
    printf("DB:         %s\n", f->db);
    printf("Disk I/O:   %s\n", io_counter ? io_counter : "not measurable (no /proc/self/io)");
#ifndef __OPTIMIZE__
    printf("WARNING: Optimization is disabled: benchmarks unnecessarily slow\n");
#endif
    printf("------------------------------------------------\n");
    fflush(stdout);
}

/* Runs every name of the comma-separated list; unknown names are skipped. */
static void bench_run_all(bench *b)
{
    char *list = strdup(b->f.benchmarks), *save = NULL;
    int ordinal = 0;

    if (list == NULL)
        exit(1);
    for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        const bench_def *def = bench_find(name);

        if (def == NULL)
            fprintf(stderr, "unknown benchmark '%s'\n", name);
        else
            bench_run(b, def, ordinal++);
    }
    free(list);
}

static void bench_totals(const bench *b, const stats_io *io0, const stats_io *io1)
{
    printf("------------------------------------------------\n");
    printf("total        : %.1f MB written by the benchmarks\n", (double)b->user_written / MB);
    if (b->f.processes > 0) {
        /* The children did the writing: their figures are per benchmark. */
        printf("  size on disk: %.1f MB\n", (double)dbdir_usage(b->f.db) / MB);
        return;
    }
    bench_report_resources(b, b->user_written, io0, io1);
}

int main(int argc, char **argv)
{
    static bench b;
    stats_io io0, io1;
    const char *io_counter;
    int rc;

    flags_init(&b.f, engine.name);
    if ((rc = flags_parse(&b.f, argc, argv)) != 0)
        return rc > 0 ? 0 : 1;
    b.cfg.dir = b.f.db;
    b.cfg.threads = b.f.threads + 1;
    b.cfg.bloom_bits = b.f.bloom_bits;
    b.cfg.value_threshold = b.f.value_threshold;
    b.cfg.encrypt = b.f.encrypt;
    b.cfg.multi_process = b.f.multi_process;   /* -1: stoat's default (on) */
    if (gen_values_init(&b.values, b.f.compression_ratio, b.f.value_size, b.f.seed) != 0) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    if (!b.f.use_existing_db && dbdir_destroy(b.f.db, engine.marker) != 0)
        return 1;
    if (dbdir_create(b.f.db) != 0)
        return 1;
    io_counter = stats_io_probe(b.f.db);
    bench_header(&b, io_counter);
    stats_io_read(&io0);
    bench_run_all(&b);
    bench_close(&b);
    stats_io_read(&io1);
    bench_totals(&b, &io0, &io1);
    gen_values_free(&b.values);
    return 0;
}
