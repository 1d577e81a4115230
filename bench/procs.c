/*
 * procs.c - --processes=N: each benchmark runs in N child processes that
 * all open the one database directory, as nginx's workers or a tool
 * beside a service do (stoat with its multi_process option, LMDB as it
 * always is).
 *
 * Per benchmark the parent (which never opens the database) deletes the
 * directory first when the benchmark makes a fresh one, then forks the
 * children. Each child opens the database, says it is ready on its own
 * pipe and waits until the parent closes the shared "go" pipe, so that
 * every process starts at once, whatever its open cost (stoat's replays
 * the WAL). Before a benchmark that runs on the existing database, each
 * child first lets the engine settle (engine.h): stoat flushes what its
 * open recovered in the background, and that work would otherwise fall
 * into the measurement of one N and not of another. It then runs the benchmark's threads (driver.c) and writes
 * its figures back on its pipe, closes the database and exits.
 *
 * Work: the fills share --num between the processes (the database ends
 * as one process would leave it); a read benchmark does --reads per
 * thread in every process, as db_bench's threads do. Each process seeds
 * its generators apart from the others (driver.c).
 *
 * The reported ops/sec is the aggregate: operations of every process over
 * the wall time from the first start to the last finish (CLOCK_MONOTONIC
 * is one clock for every process). Bytes written are summed over the
 * children; peak RSS is given as the sum and the largest of the children's
 * (shared pages count in each), and memory as the sum of the children's
 * proportional set sizes (PSS, each shared page counted once), taken by
 * the parent once every child has finished its run and before any closes
 * the database (each waits for the parent's word). CPU time (user + system, every thread of
 * every child, background work included) gives operations per CPU second,
 * a figure that other jobs on the machine disturb less than ops/sec: when
 * N processes scale, it stays where it is at N = 1.
 *
 * Only the parent's main thread runs this file; a child never returns from
 * procs_child. The parent has no threads when it forks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dbdir.h"
#include "driver.h"

#define MB 1048576.0
#define PROCS_MAX 64

/* What a child hands back: plain data, read by the same binary. */
typedef struct procs_result {
    stats readers;          /* the benchmark's threads but the writer, merged */
    stats writer;           /* readwhilewriting's writer */
    uint64_t user_written;  /* key + value bytes written, writer included */
    uint64_t io_bytes;      /* growth of the disk-write counter (stats_io) */
    int io_ok;
    uint64_t peak_rss;
    double cpu_seconds;     /* user + system time of the process meanwhile */
} procs_result;

/* User + system seconds of this process so far, every thread included. */
static double procs_cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static int procs_write_all(int fd, const void *p, size_t len)
{
    const char *c = p;

    while (len > 0) {
        ssize_t n = write(fd, c, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

/* 0 when len bytes came, -1 on an early end of file or an error. */
static int procs_read_all(int fd, void *p, size_t len)
{
    char *c = p;

    while (len > 0) {
        ssize_t n = read(fd, c, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

static void procs_child(bench *b, const bench_def *def, int ordinal, int res_fd, int go_fd,
                        int end_fd)
{
    int n = bench_thread_count(b, def), readers = def->writer ? n - 1 : n;
    bench_thread *t = calloc((size_t)n, sizeof *t);
    procs_result r;
    stats_io io0, io1;
    double cpu0;
    char c;

    if (t == NULL)
        exit(1);
    memset(&r, 0, sizeof r);
    bench_open(b, def->force_sync ? 1 : b->f.sync);
    if (!def->fresh_db && engine.settle && engine.settle(b->db) != ENGINE_OK) {
        fprintf(stderr, "%s: settle: %s\n", def->name, engine_errmsg());
        exit(1);
    }
    if (procs_write_all(res_fd, "R", 1) != 0 || read(go_fd, &c, 1) != 0)
        exit(1);    /* the parent gave up: it closes go only to start us */
    stats_io_read(&io0);
    cpu0 = procs_cpu_seconds();
    bench_run_threads(b, def, t, n, ordinal);
    r.cpu_seconds = procs_cpu_seconds() - cpu0;
    stats_io_read(&io1);
    r.readers = t[0].st;
    for (int i = 1; i < readers; i++)
        stats_merge(&r.readers, &t[i].st);
    if (def->writer)
        r.writer = t[n - 1].st;
    r.user_written = r.readers.user_written + r.writer.user_written;
    r.io_ok = io0.ok && io1.ok;
    r.io_bytes = io1.bytes - io0.bytes;
    r.peak_rss = stats_peak_rss();
    free(t);
    if (procs_write_all(res_fd, &r, sizeof r) != 0)
        exit(1);
    /* Open until every process is measured: the parent closes `end`. */
    while (read(end_fd, &c, 1) < 0 && errno == EINTR)
        ;
    bench_close(b);
    exit(0);
}

static void procs_report(bench *b, const bench_def *def, const procs_result *r, int n,
                         uint64_t pss)
{
    stats readers = r[0].readers, writer = r[0].writer;
    uint64_t written = 0, io = 0, rss_sum = 0, rss_max = 0;
    double cpu = 0;
    int io_ok = 1;
    char msg[200];

    for (int i = 0; i < n; i++) {
        if (i > 0) {
            stats_merge(&readers, &r[i].readers);
            stats_merge(&writer, &r[i].writer);
        }
        written += r[i].user_written;
        io += r[i].io_bytes;
        io_ok &= r[i].io_ok;
        cpu += r[i].cpu_seconds;
        rss_sum += r[i].peak_rss;
        rss_max = r[i].peak_rss > rss_max ? r[i].peak_rss : rss_max;
    }
    bench_message(def, &readers, &writer, msg, sizeof msg);
    snprintf(msg + strlen(msg), sizeof msg - strlen(msg), "%s(%d process%s)",
             msg[0] ? " " : "", n, n == 1 ? "" : "es");
    stats_report(&readers, def->name, msg, stdout);
    b->user_written += written;
    printf("  size on disk: %.1f MB\n", (double)dbdir_usage(b->f.db) / MB);
    if (!io_ok)
        printf("  bytes written: n/a\n");
    else if (written == 0)
        printf("  bytes written: %.1f MB (write amp n/a)\n", (double)io / MB);
    else
        printf("  bytes written: %.1f MB (write amp %.2f)\n", (double)io / MB,
               (double)io / (double)written);
    printf("  peak RSS: %.1f MB summed over processes, %.1f MB the largest\n",
           (double)rss_sum / MB, (double)rss_max / MB);
    if (pss > 0)
        printf("  memory: %.1f MB PSS summed over processes (shared pages once)\n",
               (double)pss / MB);
    printf("  cpu: %.2f s summed over processes, %.0f ops per cpu second\n", cpu,
           cpu > 0 ? (double)(readers.done + writer.done) / cpu : 0.0);
    fflush(stdout);
}

/* Forks the children; returns how many started. res[i] is child i's pipe,
 * pids[i] its pid. */
static int procs_start(bench *b, const bench_def *def, int ordinal, int go[2], int end[2],
                       int *res, pid_t *pids)
{
    int n = b->f.processes;

    for (int i = 0; i < n; i++) {
        int p[2];
        pid_t pid;

        if (pipe(p) != 0)
            return i;
        fflush(NULL);
        if ((pid = fork()) < 0) {
            close(p[0]);
            close(p[1]);
            return i;
        }
        if (pid == 0) {
            close(go[1]);
            close(end[1]);
            close(p[0]);
            for (int j = 0; j < i; j++)
                close(res[j]);
            b->proc = i;
            procs_child(b, def, ordinal, p[1], go[0], end[0]);
        }
        /* Only child i keeps the write end: its death ends the pipe. */
        close(p[1]);
        res[i] = p[0];
        pids[i] = pid;
    }
    return n;
}

void procs_run(bench *b, const bench_def *def, int ordinal)
{
    procs_result r[PROCS_MAX];
    pid_t pids[PROCS_MAX];
    int res[PROCS_MAX], go[2], end[2], started, failed = 0, status;
    uint64_t pss = 0;
    char c;

    if (def->fresh_db && (dbdir_destroy(b->f.db, engine.marker) != 0 ||
                          dbdir_create(b->f.db) != 0))
        exit(1);
    if (pipe(go) != 0 || pipe(end) != 0) {
        fprintf(stderr, "%s: pipe: %s\n", def->name, strerror(errno));
        exit(1);
    }
    started = procs_start(b, def, ordinal, go, end, res, pids);
    failed = started < b->f.processes;
    for (int i = 0; i < started; i++)
        if (procs_read_all(res[i], &c, 1) != 0)
            failed = 1;     /* it could not open; the others start and end */
    close(go[1]);
    close(go[0]);
    for (int i = 0; i < started; i++)
        if (procs_read_all(res[i], &r[i], sizeof r[i]) != 0)
            failed = 1;
    /* Every child has run and waits with its database open. */
    for (int i = 0; i < started && !failed; i++)
        pss += stats_pss_of(pids[i]);
    close(end[1]);
    close(end[0]);
    for (int i = 0; i < started; i++)
        close(res[i]);
    while (wait(&status) > 0)
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    if (failed) {
        fprintf(stderr, "%s: a process failed (%d of %d started)\n", def->name, started,
                b->f.processes);
        exit(1);
    }
    procs_report(b, def, r, started, pss);
}
