/*
 * bulk_load.c - a bulk load (stoat_loader_*) against batched puts: the
 * same sorted entries (db_bench keys and values, bench/gen.h) written
 * into two fresh databases, one through write batches of --batch entries
 * committed one after the other, one through a loader; prints both
 * times, their ratio, and checks that both databases then hold the same
 * entries (one iterator walk over each, in step).
 *
 *   build/bench/bulk_load [--num=2000000] [--value_size=100] [--key_size=16]
 *                         [--batch=1000] [--db=DIR] [--loader_only]
 *
 * The batched time stops when the last commit returns (its data is in
 * memtables and WALs, flushes and compactions still to come: the most
 * favourable reading for puts); "with flush" adds stoat_flush (the data
 * in tables), "with flatten" stoat_flatten after it (the data compacted
 * into the last level: the state the loader leaves). The loader
 * time stops when stoat_loader_finish returns (tables written, fsynced,
 * installed). CPU times are of the whole process (every thread,
 * background work included) during each run: a steadier figure than
 * wall time on a shared machine. "ratio:" (last line) is batched puts up
 * to the last commit over the loader; "ratio with flush:" and "ratio with
 * flatten:" count the batches until then. The loader
 * runs first: the batches leave flushes and
 * compactions running behind them, which would slow what ran next. The last line, "ratio: X", is what bench/bulk_load.sh reads.
 * Databases go under --db (default $TMPDIR/stoat_bulk-<pid>), deleted at
 * the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "dbdir.h"
#include "gen.h"
#include "stats.h"
#include "stoat.h"

typedef struct bulk_flags {
    uint64_t num;
    size_t value_size, key_size, batch;
    const char *dir;
    int loader_only;                /* --loader_only: for profiles */
} bulk_flags;

/* CPU seconds (user + system) of every thread of the process so far. */
static double cpu_now(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void die(stoat_db *db, const char *what, int rc)
{
    fprintf(stderr, "bulk_load: %s: %s: %s\n", what, stoat_strerror(rc), stoat_errmsg(db));
    exit(1);
}

static stoat_db *open_fresh(const char *dir)
{
    stoat_options o;
    stoat_db *db;
    int rc;

    if (dbdir_destroy(dir, "MANIFEST") != 0 || dbdir_create(dir) != 0)
        exit(1);
    stoat_options_init(&o);
    o.create_if_missing = 1;
    if ((rc = stoat_open(dir, &o, &db)) != 0)
        die(NULL, "open", rc);
    return db;
}

/* Seconds to write every entry through batches of f->batch; *flushed
 * gets the time including a flush of the memtables, *flat the time until
 * stoat_flatten has compacted everything into the last level (where the
 * loader puts it), *cpu_flushed the process's CPU time until flushed. */
static double run_batches(stoat_db *db, const bulk_flags *f, const gen_values *v, double *flushed,
                          double *flat, double *cpu_flushed)
{
    double c0 = cpu_now();
    char key[64];
    size_t pos = 0;
    stoat_batch *b;
    double t0 = stats_now(), t1;
    int rc;

    for (uint64_t i = 0; i < f->num;) {
        if ((rc = stoat_batch_new(db, &b)) != 0)
            die(db, "batch_new", rc);
        for (size_t j = 0; j < f->batch && i < f->num; j++, i++) {
            size_t klen = gen_key(key, f->key_size, i);
            if ((rc = stoat_batch_set(b, key, klen, gen_value(v, &pos, f->value_size),
                                      f->value_size)) != 0)
                die(db, "batch_set", rc);
        }
        if ((rc = stoat_batch_commit(b)) != 0)
            die(db, "batch_commit", rc);
        stoat_batch_free(b);
    }
    t1 = stats_now();
    if ((rc = stoat_flush(db)) != 0)
        die(db, "flush", rc);
    *flushed = stats_now() - t0;
    *cpu_flushed = cpu_now() - c0;
    if ((rc = stoat_flatten(db)) != 0)
        die(db, "flatten", rc);
    *flat = stats_now() - t0;
    return t1 - t0;
}

static double run_loader(stoat_db *db, const bulk_flags *f, const gen_values *v)
{
    char key[64];
    size_t pos = 0;
    stoat_loader *ld;
    double t0 = stats_now();
    int rc;

    if ((rc = stoat_loader_new(db, &ld)) != 0)
        die(db, "loader_new", rc);
    for (uint64_t i = 0; i < f->num; i++) {
        size_t klen = gen_key(key, f->key_size, i);
        if ((rc = stoat_loader_add(ld, key, klen, gen_value(v, &pos, f->value_size),
                                   f->value_size, 0, 0)) != 0)
            die(db, "loader_add", rc);
    }
    if ((rc = stoat_loader_finish(ld, NULL)) != 0)
        die(db, "loader_finish", rc);
    return stats_now() - t0;
}

/* Walks both databases in step: the number of entries, or -1 at the
 * first difference. */
static long long same_data(stoat_db *a, stoat_db *b)
{
    stoat_iter *ia, *ib;
    long long n = 0;
    int rc;

    if ((rc = stoat_iter_open(a, NULL, &ia)) != 0 || (rc = stoat_iter_open(b, NULL, &ib)) != 0)
        die(NULL, "iter_open", rc);
    stoat_iter_seek_first(ia);
    stoat_iter_seek_first(ib);
    while (stoat_iter_valid(ia) && stoat_iter_valid(ib)) {
        const void *ka, *kb, *va, *vb;
        size_t kla, klb, vla, vlb;
        if (stoat_iter_key(ia, &ka, &kla) || stoat_iter_key(ib, &kb, &klb) ||
            stoat_iter_value(ia, &va, &vla) || stoat_iter_value(ib, &vb, &vlb) || kla != klb ||
            vla != vlb || memcmp(ka, kb, kla) != 0 || memcmp(va, vb, vla) != 0) {
            n = -1;
            break;
        }
        n++;
        stoat_iter_next(ia);
        stoat_iter_next(ib);
    }
    if (n >= 0 && (stoat_iter_valid(ia) || stoat_iter_valid(ib) || stoat_iter_status(ia) ||
                   stoat_iter_status(ib)))
        n = -1;
    stoat_iter_close(ia);
    stoat_iter_close(ib);
    return n;
}

static void parse_flags(int argc, char **argv, bulk_flags *f)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--num=", 6) == 0)
            f->num = strtoull(a + 6, NULL, 10);
        else if (strncmp(a, "--value_size=", 13) == 0)
            f->value_size = strtoull(a + 13, NULL, 10);
        else if (strncmp(a, "--key_size=", 11) == 0)
            f->key_size = strtoull(a + 11, NULL, 10);
        else if (strncmp(a, "--batch=", 8) == 0)
            f->batch = strtoull(a + 8, NULL, 10);
        else if (strncmp(a, "--db=", 5) == 0)
            f->dir = a + 5;
        else if (strcmp(a, "--loader_only") == 0)
            f->loader_only = 1;
        else {
            fprintf(stderr, "usage: bulk_load [--num=N] [--value_size=B] [--key_size=B] "
                            "[--batch=N] [--db=DIR]\n");
            exit(2);
        }
    }
    if (f->num == 0 || f->batch == 0 || f->key_size > 60 ||
        (size_t)gen_digits(f->num - 1) > f->key_size) {
        fprintf(stderr, "bulk_load: --num, --batch must be > 0; --key_size must hold num "
                        "(and be at most 60)\n");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    bulk_flags f = {.num = 2000000, .value_size = 100, .key_size = 16, .batch = 1000};
    char base[4096], d1[4200], d2[4200];
    gen_values v;
    stoat_db *a, *b;
    double tb, tbf, tbl, tl, c0, cl, cb;
    long long same;

    parse_flags(argc, argv, &f);
    if (f.dir == NULL) {
        const char *tmp = getenv("TMPDIR");
        snprintf(base, sizeof(base), "%s/stoat_bulk-%ld", tmp && *tmp ? tmp : "/tmp",
                 (long)getpid());
        f.dir = base;
    }
    snprintf(d1, sizeof(d1), "%s/batches", f.dir);
    snprintf(d2, sizeof(d2), "%s/loader", f.dir);
    if (gen_values_init(&v, 0.5, f.value_size, 301) != 0) {
        fprintf(stderr, "bulk_load: out of memory\n");
        return 1;
    }
    printf("bulk_load: %llu entries, %zu-byte keys, %zu-byte values, stoat %s\n",
           (unsigned long long)f.num, f.key_size, f.value_size, stoat_version());
    if (f.loader_only) {
        b = open_fresh(d2);
        tl = run_loader(b, &f, &v);
        printf("bulk loader:                  %8.3f s  %10.0f entries/s\n", tl,
               (double)f.num / tl);
        stoat_close(b);
        dbdir_destroy(d2, "MANIFEST");
        rmdir(f.dir);
        gen_values_free(&v);
        return 0;
    }
    /* The loader first: the batches leave compactions running behind
     * them, which would slow whatever ran next. */
    b = open_fresh(d2);
    c0 = cpu_now();
    tl = run_loader(b, &f, &v);
    cl = cpu_now() - c0;
    printf("bulk loader:                  %8.3f s  %10.0f entries/s  (cpu %.3f s)\n", tl,
           (double)f.num / tl, cl);
    fflush(stdout);
    a = open_fresh(d1);
    tb = run_batches(a, &f, &v, &tbf, &tbl, &cb);
    printf("batched puts (%zu per batch): %8.3f s  %10.0f entries/s  (with flush: %.3f s, "
           "cpu %.3f s; with flatten: %.3f s)\n", f.batch, tb, (double)f.num / tb, tbf, cb, tbl);
    same = same_data(a, b);
    if (same < 0)
        printf("same data: NO (the databases differ)\n");
    else
        printf("same data: yes (%lld entries compared)\n", same);
    stoat_close(a);
    stoat_close(b);
    dbdir_destroy(d1, "MANIFEST");
    dbdir_destroy(d2, "MANIFEST");
    rmdir(f.dir);
    gen_values_free(&v);
    printf("ratio with flatten: %.2f\n", tbl / tl);
    printf("ratio with flush: %.2f\n", tbf / tl);
    printf("cpu ratio with flush: %.2f\n", cb / cl);
    printf("ratio: %.2f\n", tb / tl);
    return same == (long long)f.num ? 0 : 1;
}
