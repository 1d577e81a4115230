/*
 * vlog_db_race_test.c - value-log GC racing other threads: deletes racing
 * GC stay deleted; GC under writes, then a clean reopen; a GC call ends
 * while writes go on; GC among writers, readers and long-lived iterators
 * (0 wrong reads). Helpers in vlog_db_util.h.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

#include "db/db_env.h"
#include "db_util.h"
#include "support/env_fault.h"
#include "test.h"
#include "vlog_db_util.h"

/* Deletes random keys of [from, to) until told to stop, flushing now and
 * then so that tombstones sit in an older source than GC's rewrites. */
typedef struct deleter {
    stoat_db *db;
    uint32_t from, to;
    uint64_t rng;
    uint8_t *deleted;           /* by key index */
    uint32_t n_deleted;
    atomic_int stop;
    vd_errors err;
} deleter;

static void *deleter_main(void *arg)
{
    deleter *d = arg;
    char k[16];

    while (!atomic_load(&d->stop) && d->n_deleted < d->to - d->from) {
        uint32_t i = d->from + (uint32_t)rnd(&d->rng, d->to - d->from);
        int rc;

        if (d->deleted[i])
            continue;
        vd_key(i, k);
        if ((rc = stoat_delete(d->db, k, VD_KLEN)) != 0) {
            vd_error(&d->err, "delete %s: %s: %s", k, stoat_strerror(rc), stoat_errmsg(d->db));
            break;
        }
        d->deleted[i] = 1;
        if (++d->n_deleted % 64 == 0 && (rc = stoat_flush(d->db)) != 0) {
            vd_error(&d->err, "flush: %s: %s", stoat_strerror(rc), stoat_errmsg(d->db));
            break;
        }
    }
    return NULL;
}

/* One round: fresh keys [from, to) written twice, then GC while a thread
 * deletes some of them. */
static void delete_round(stoat_db *db, uint64_t *model, uint8_t *deleted, uint32_t from,
                         uint32_t to, uint64_t *rng, uint32_t *during)
{
    deleter d = {.db = db, .from = from, .to = to, .rng = test_rand(rng), .deleted = deleted,
                 .err = {.mu = PTHREAD_MUTEX_INITIALIZER}};
    pthread_t th;

    vd_fill(db, model, from, to, 1, 700);
    vd_fill(db, model, from, to, to + 1, 700);
    REQUIRE(pthread_create(&th, NULL, deleter_main, &d) == 0);
    REQUIRE_OK(stoat_gc(db, 0.3, NULL));
    atomic_store(&d.stop, 1);
    pthread_join(th, NULL);
    vd_errors_report(&d.err, "failed deletes", __LINE__);
    for (uint32_t i = from; i < to; i++)
        if (deleted[i])
            model[i] = ABSENT;
    *during += d.n_deleted;
}

static void test_vlog_db_delete_during_gc_stays_deleted(void)
{
    enum { ROUNDS = 5, PER = 3000, N = ROUNDS * PER };
    const char *dir = test_tmpdir();
    uint64_t *model = malloc(N * sizeof(*model)), rng = vd_seed() ^ 0xde1e7e;
    uint8_t *deleted = calloc(N, 1);
    uint32_t during = 0;
    stoat_options o;
    stoat_db *db;

    REQUIRE(model != NULL && deleted != NULL);
    vd_options(&o);
    db = vd_open(dir, &o);
    for (uint32_t r = 0; r < ROUNDS; r++) {
        delete_round(db, model, deleted, r * PER, (r + 1) * PER, &rng, &during);
        vd_check_model(db, model, (r + 1) * PER);
        REQUIRE_OK(stoat_flatten(db));
        vd_check_model(db, model, (r + 1) * PER);
    }
    printf("  %u keys deleted while GC ran\n", during);
    CHECK(during > 0);
    REQUIRE_OK(stoat_close(db));
    db = vd_open(dir, &o);
    vd_check_model(db, model, N);
    REQUIRE_OK(stoat_gc(db, 0.1, NULL));
    vd_check_model(db, model, N);
    REQUIRE_OK(stoat_close(db));
    free(model);
    free(deleted);
}

/* One writer overwriting a few keys with separated values, as fast as it
 * can (pause_us 0) or a little slower, until told to stop or for at most
 * max_us. The only writer: after it stops, model holds the truth. */
typedef struct churn {
    stoat_db *db;
    uint64_t *model;
    uint32_t keys;
    uint64_t next_tag, rng;
    size_t len_min, len_span;   /* value lengths */
    int batch;                  /* puts per write batch (0: single puts) */
    long pause_us, max_us;
    atomic_int stop, done;
    vd_errors err;
} churn;

/* One write of the churn: a put, or a batch of w->batch puts. */
static int churn_write(churn *w)
{
    char k[16], v[4096];
    stoat_batch *b;
    int rc, n = w->batch ? w->batch : 1;
    uint32_t keys[256];
    uint64_t tags[256];

    if (w->batch == 0) {
        keys[0] = (uint32_t)rnd(&w->rng, w->keys);
        tags[0] = w->next_tag++;
        rc = vd_put_rc(w->db, keys[0], tags[0], w->len_min + rnd(&w->rng, w->len_span));
    } else if ((rc = stoat_batch_new(w->db, &b)) == 0) {
        for (int j = 0; j < n && rc == 0; j++) {
            size_t len = w->len_min + rnd(&w->rng, w->len_span);
            keys[j] = (uint32_t)rnd(&w->rng, w->keys);
            tags[j] = w->next_tag++;
            vd_key(keys[j], k);
            vd_value(tags[j], len, v);
            rc = stoat_batch_set(b, k, VD_KLEN, v, len);
        }
        if (rc == 0)
            rc = stoat_batch_commit(b);
        stoat_batch_free(b);
    }
    for (int j = 0; j < n && rc == 0; j++)
        w->model[keys[j]] = tags[j];
    return rc;
}

static void *churn_main(void *arg)
{
    churn *w = arg;
    long t0 = now_micros();
    int rc;

    while (!atomic_load(&w->stop) && now_micros() - t0 < w->max_us) {
        if ((rc = churn_write(w)) != 0) {
            vd_error(&w->err, "write: %s: %s", stoat_strerror(rc), stoat_errmsg(w->db));
            break;
        }
        if (w->pause_us)
            usleep((useconds_t)w->pause_us);
    }
    atomic_store(&w->done, 1);
    return NULL;
}

/*
 * Regression: GC deleted a collected file while a WAL not yet flushed still
 * held older entries pointing into it, and the next open refused the
 * database ("points at value-log record ... that is missing"). Writes go
 * on while GC collects; then a clean close and reopen, several times.
 */
static void test_vlog_db_gc_under_writes_then_reopen(void)
{
    enum { CYCLES = 20, KEYS = 50 };
    const char *dir = test_tmpdir();
    uint64_t model[KEYS];
    churn w = {.model = model, .keys = KEYS, .next_tag = 1, .rng = vd_seed() ^ 0x3e09e4,
               .len_min = 300, .len_span = 900, .pause_us = 20, .max_us = 60 * 1000000L, .err = {.mu = PTHREAD_MUTEX_INITIALIZER}};
    stoat_options o;
    pthread_t th;

    for (uint32_t i = 0; i < KEYS; i++)
        model[i] = ABSENT;
    vd_options(&o);
    for (int cycle = 0; cycle < CYCLES && !test_failed_now; cycle++) {
        w.db = vd_open(dir, &o);
        atomic_store(&w.stop, 0);
        REQUIRE(pthread_create(&th, NULL, churn_main, &w) == 0);
        for (int i = 0; i < 3; i++)
            CHECK_RC(stoat_gc(w.db, 0.3, NULL), 0);
        atomic_store(&w.stop, 1);
        pthread_join(th, NULL);
        vd_errors_report(&w.err, "failed writes", __LINE__);
        vd_check_model(w.db, model, KEYS);
        REQUIRE_OK(stoat_close(w.db));
    }
    w.db = vd_open(dir, &o);
    vd_check_model(w.db, model, KEYS);
    REQUIRE_OK(stoat_close(w.db));
}

/* Regression: stoat_gc collected files sealed while it ran, so a writer
 * faster than GC kept one call going for as long as it wrote (seconds,
 * not always: it ended whenever compaction's counts lagged behind). */
static void test_vlog_db_gc_returns_while_writes_go_on(void)
{
    enum { KEYS = 50 };
    const char *dir = test_tmpdir();
    uint64_t model[KEYS], reclaimed = 0;
    churn w = {.model = model, .keys = KEYS, .next_tag = 1, .rng = vd_seed() ^ 0x9e7,
               .len_min = 1000, .len_span = 200, .batch = 100, .pause_us = 0, .max_us = 20 * 1000000L, .err = {.mu = PTHREAD_MUTEX_INITIALIZER}};
    stoat_options o;
    pthread_t th;
    long slowest = 0;

    for (uint32_t i = 0; i < KEYS; i++)
        model[i] = ABSENT;
    vd_options(&o);
    w.db = vd_open(dir, &o);
    REQUIRE(pthread_create(&th, NULL, churn_main, &w) == 0);
    usleep(100000);
    for (int i = 0; i < 3 && !atomic_load(&w.done); i++) {
        long t0 = now_micros();
        uint64_t r = 0;

        CHECK_RC(stoat_gc(w.db, 0.3, &r), 0);
        reclaimed += r;
        if (now_micros() - t0 > slowest)
            slowest = now_micros() - t0;
    }
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    printf("  stoat_gc under writes: at most %.2f s a call, %.1f MB reclaimed\n",
           (double)slowest / 1e6, (double)reclaimed / 1e6);
    CHECK(slowest < 5 * 1000000L);
    CHECK(reclaimed > 0);
    vd_errors_report(&w.err, "failed writes", __LINE__);
    vd_check_model(w.db, model, KEYS);
    REQUIRE_OK(stoat_close(w.db));
}

/*
 * GC among writers, readers and long-lived iterators. Each key has one
 * writer, which gives its writes sequence numbers 1, 2, ... (a value's tag
 * is key << 40 | seq; some seqs are deletes, c_is_delete). committed[k] is
 * the last seq whose write returned, inflight[k] the last one started. A
 * read that began after seq lo returned and ended before seq hi + 1
 * started may see exactly: the value of a put seq in [lo, hi], or nothing
 * if a delete seq lies in [lo, hi] (or lo is 0). Anything else, any error,
 * is a wrong read.
 */
#define CK 160
#define C_WRITERS 2
#define C_READERS 2
#define C_ITERS 2
#define C_RUN_MS 1500
#define C_SEQ_BITS 40

typedef struct conc {
    stoat_db *db;
    atomic_uint_least64_t committed[CK], inflight[CK];
    atomic_int stop;
    atomic_ulong writes, reads, snapshot_reads, iter_entries, iter_passes, gc_calls;
    atomic_uint_least64_t reclaimed;
    vd_errors err;
    uint64_t seed;
} conc;

typedef struct conc_thread {
    conc *c;
    int id;
    pthread_t th;
} conc_thread;

static int c_is_delete(uint32_t k, uint64_t seq)
{
    return (((uint64_t)k << C_SEQ_BITS ^ seq) * 0x9e3779b97f4a7c15ull) >> 60 == 0;
}

static size_t c_len(uint64_t tag)
{
    return 64 + (size_t)((tag * 0x2545f4914f6cdd1dull) >> 40) % 1500;
}

static int c_allowed(uint32_t k, int rc, uint64_t tag, uint64_t lo, uint64_t hi)
{
    uint64_t seq = tag & ((1ull << C_SEQ_BITS) - 1);

    if (rc == STOAT_ENOTFOUND) {
        for (uint64_t s = lo; s <= hi; s++)
            if (s == 0 || c_is_delete(k, s))
                return 1;
        return 0;
    }
    return rc == 0 && tag != BAD && tag >> C_SEQ_BITS == k && seq >= lo && seq <= hi &&
           seq != 0 && !c_is_delete(k, seq);
}

static void c_check(conc *c, const char *how, uint32_t k, int rc, uint64_t tag, uint64_t lo,
                    uint64_t hi)
{
    if (!c_allowed(k, rc, tag, lo, hi))
        vd_error(&c->err, "%s key %u: rc %d (%s), seq %llu (tag %llx); allowed seqs %llu..%llu",
                 how, k, rc, rc ? stoat_errmsg(c->db) : "",
                 (unsigned long long)(tag & ((1ull << C_SEQ_BITS) - 1)),
                 (unsigned long long)tag, (unsigned long long)lo, (unsigned long long)hi);
}

static int c_write(conc *c, uint32_t k, uint64_t seq, int use_txn)
{
    uint64_t tag = (uint64_t)k << C_SEQ_BITS | seq;
    char key[16], v[2048];
    size_t len = c_len(tag);
    stoat_txn *txn;
    int rc;

    if (!c_is_delete(k, seq) && !use_txn)
        return vd_put_rc(c->db, k, tag, len);
    vd_key(k, key);
    if (!use_txn)
        return stoat_delete(c->db, key, VD_KLEN);
    if ((rc = stoat_txn_begin(c->db, 0, &txn)) != 0)
        return rc;
    vd_value(tag, len, v);
    rc = c_is_delete(k, seq) ? stoat_txn_delete(txn, key, VD_KLEN)
                             : stoat_txn_set(txn, key, VD_KLEN, v, len);
    if (rc == 0)
        rc = stoat_txn_commit(txn);
    stoat_txn_discard(txn);
    return rc;
}

/* Writer id owns the keys k with k % C_WRITERS == id; odd ids commit
 * through transactions. */
static void *c_writer(void *arg)
{
    conc_thread *t = arg;
    conc *c = t->c;
    uint64_t rng = c->seed ^ (uint64_t)(t->id + 1) << 48;

    while (!atomic_load(&c->stop)) {
        uint32_t k = (uint32_t)(t->id + C_WRITERS * (int)rnd(&rng, CK / C_WRITERS));
        uint64_t seq = atomic_load(&c->committed[k]) + 1;
        int rc;

        atomic_store(&c->inflight[k], seq);
        if ((rc = c_write(c, k, seq, t->id % 2)) != 0) {
            vd_error(&c->err, "write key %u: %s: %s", k, stoat_strerror(rc), stoat_errmsg(c->db));
            break;
        }
        atomic_store(&c->committed[k], seq);
        atomic_fetch_add(&c->writes, 1);
        usleep(20);     /* leave GC time for many rounds */
    }
    return NULL;
}

/* A read-only transaction reads a few keys, waits while GC runs, and must
 * read the same again. */
static void c_snapshot_check(conc *c, uint64_t *rng)
{
    uint32_t ks[8];
    uint64_t lo[8], hi[8], first[8];
    stoat_txn *txn;
    int rc;

    for (int j = 0; j < 8; j++) {
        ks[j] = (uint32_t)rnd(rng, CK);
        lo[j] = atomic_load(&c->committed[ks[j]]);
    }
    if ((rc = stoat_txn_begin(c->db, STOAT_TXN_READ_ONLY, &txn)) != 0) {
        vd_error(&c->err, "txn begin: %s", stoat_strerror(rc));
        return;
    }
    for (int j = 0; j < 8; j++)
        hi[j] = atomic_load(&c->inflight[ks[j]]);
    for (int pass = 0; pass < 2; pass++) {
        for (int j = 0; j < 8; j++) {
            char k[16];
            const void *v;
            size_t vlen;
            uint64_t tag;

            vd_key(ks[j], k);
            rc = stoat_txn_get(txn, k, VD_KLEN, &v, &vlen);
            tag = rc == 0 ? vd_tag(v, vlen) : ABSENT;
            if (pass == 0) {
                c_check(c, "snapshot", ks[j], rc, tag, lo[j], hi[j]);
                first[j] = rc == 0 || rc == STOAT_ENOTFOUND ? tag : BAD;
            } else if (tag != first[j] || (rc != 0 && rc != STOAT_ENOTFOUND)) {
                vd_error(&c->err, "snapshot key %u changed: tag %llx, then rc %d tag %llx", ks[j],
                         (unsigned long long)first[j], rc, (unsigned long long)tag);
            }
            atomic_fetch_add(&c->snapshot_reads, 1);
        }
        if (pass == 0)
            usleep(5000);
    }
    stoat_txn_discard(txn);
}

static void *c_reader(void *arg)
{
    conc_thread *t = arg;
    conc *c = t->c;
    uint64_t rng = c->seed ^ (uint64_t)(t->id + 1) << 40;

    for (unsigned long n = 1; !atomic_load(&c->stop); n++) {
        uint32_t k = (uint32_t)rnd(&rng, CK);
        uint64_t lo = atomic_load(&c->committed[k]), tag;
        int rc = vd_read(c->db, k, &tag);

        c_check(c, "get", k, rc, tag, lo, atomic_load(&c->inflight[k]));
        atomic_fetch_add(&c->reads, 1);
        if (n % 500 == 0)
            c_snapshot_check(c, &rng);
    }
    return NULL;
}

/* One slow pass of an iterator over its snapshot. */
static void c_iter_pass(conc *c)
{
    uint64_t lo[CK], hi[CK];
    uint32_t next = 0;
    stoat_iter *it;
    int rc;

    for (uint32_t k = 0; k < CK; k++)
        lo[k] = atomic_load(&c->committed[k]);
    if ((rc = stoat_iter_open(c->db, NULL, &it)) != 0) {
        vd_error(&c->err, "iter open: %s", stoat_strerror(rc));
        return;
    }
    for (uint32_t k = 0; k < CK; k++)
        hi[k] = atomic_load(&c->inflight[k]);
    for (stoat_iter_seek_first(it); stoat_iter_valid(it) && !atomic_load(&c->stop);
         stoat_iter_next(it)) {
        const void *key, *v = NULL;
        size_t klen = 0, vlen = 0;
        uint32_t k;

        stoat_iter_key(it, &key, &klen);
        if ((k = vd_index(key, klen)) >= CK || k < next) {
            vd_error(&c->err, "iterator: key %u out of order (after %u)", k, next);
            break;
        }
        for (; next < k; next++)
            c_check(c, "iterator (absent)", next, STOAT_ENOTFOUND, ABSENT, lo[next], hi[next]);
        next = k + 1;
        rc = stoat_iter_value(it, &v, &vlen);
        c_check(c, "iterator", k, rc, rc == 0 ? vd_tag(v, vlen) : ABSENT, lo[k], hi[k]);
        atomic_fetch_add(&c->iter_entries, 1);
        usleep(3000);   /* GC collects and deletes files meanwhile */
    }
    if ((rc = stoat_iter_status(it)) != 0)
        vd_error(&c->err, "iterator status: %s", stoat_strerror(rc));
    for (; next < CK && !atomic_load(&c->stop); next++)
        c_check(c, "iterator (absent)", next, STOAT_ENOTFOUND, ABSENT, lo[next], hi[next]);
    stoat_iter_close(it);
    atomic_fetch_add(&c->iter_passes, 1);
}

static void *c_iterator(void *arg)
{
    conc_thread *t = arg;

    usleep((useconds_t)t->id * 150000);     /* staggered lifetimes */
    while (!atomic_load(&t->c->stop))
        c_iter_pass(t->c);
    return NULL;
}

static void *c_gc(void *arg)
{
    conc *c = ((conc_thread *)arg)->c;

    while (!atomic_load(&c->stop)) {
        uint64_t reclaimed = 0;
        int rc = stoat_gc(c->db, 0.3, &reclaimed);

        if (rc != 0) {
            vd_error(&c->err, "stoat_gc: %s: %s", stoat_strerror(rc), stoat_errmsg(c->db));
            break;
        }
        atomic_fetch_add(&c->reclaimed, reclaimed);
        atomic_fetch_add(&c->gc_calls, 1);
        usleep(5000);
    }
    return NULL;
}

/* The last committed state as a model (no write is in flight). */
static void c_model(conc *c, uint64_t *model)
{
    for (uint32_t k = 0; k < CK; k++) {
        uint64_t seq = atomic_load(&c->committed[k]);
        model[k] = seq == 0 || c_is_delete(k, seq) ? ABSENT : (uint64_t)k << C_SEQ_BITS | seq;
    }
}

static void c_run_threads(conc *c)
{
    static void *(*const mains[4])(void *) = {c_writer, c_reader, c_iterator, c_gc};
    const int counts[4] = {C_WRITERS, C_READERS, C_ITERS, 1};
    conc_thread th[C_WRITERS + C_READERS + C_ITERS + 1];
    int n = 0;

    for (int kind = 0; kind < 4; kind++) {
        for (int id = 0; id < counts[kind]; id++, n++) {
            th[n] = (conc_thread){c, id, 0};
            REQUIRE(pthread_create(&th[n].th, NULL, mains[kind], &th[n]) == 0);
        }
    }
    usleep(C_RUN_MS * 1000);
    atomic_store(&c->stop, 1);
    for (int i = 0; i < n; i++)
        pthread_join(th[i].th, NULL);
}

static void test_vlog_db_gc_concurrent_no_wrong_reads(void)
{
    static char names[DBU_MAX_FILES][64];
    const char *dir = test_tmpdir();
    conc *c = calloc(1, sizeof(*c));
    uint64_t model[CK];
    stoat_options o;

    REQUIRE(c != NULL);
    pthread_mutex_init(&c->err.mu, NULL);
    c->seed = vd_seed();
    vd_options(&o);
    c->db = vd_open(dir, &o);
    c_run_threads(c);
    printf("  %lu writes, %lu gets, %lu snapshot gets, %lu iterator entries in %lu passes, %lu GC calls "
           "reclaiming %.1f MB; %lu wrong\n", atomic_load(&c->writes), atomic_load(&c->reads),
           atomic_load(&c->snapshot_reads), atomic_load(&c->iter_entries),
           atomic_load(&c->iter_passes), atomic_load(&c->gc_calls),
           (double)atomic_load(&c->reclaimed) / 1e6, atomic_load(&c->err.n));
    vd_errors_report(&c->err, "wrong reads or failed calls", __LINE__);
    CHECK(atomic_load(&c->gc_calls) > 0 && atomic_load(&c->reclaimed) > 0);
    CHECK(atomic_load(&c->iter_passes) > 0 && atomic_load(&c->reads) > 0);
    /* Files were deleted on the way, not only scheduled. */
    CHECK(dbu_list(dir, ".vlog", names) > 0 && strcmp(names[0], "000001.vlog") != 0);

    c_model(c, model);
    vd_check_model(c->db, model, CK);
    REQUIRE_OK(stoat_close(c->db));
    c->db = vd_open(dir, &o);
    vd_check_model(c->db, model, CK);
    REQUIRE_OK(stoat_gc(c->db, 0.1, NULL));
    vd_check_model(c->db, model, CK);
    REQUIRE_OK(stoat_close(c->db));
    pthread_mutex_destroy(&c->err.mu);
    free(c);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_vlog_db_delete_during_gc_stays_deleted);
    TEST_RUN(test_vlog_db_gc_under_writes_then_reopen);
    TEST_RUN(test_vlog_db_gc_returns_while_writes_go_on);
    TEST_RUN(test_vlog_db_gc_concurrent_no_wrong_reads);
    return test_summary();
}
