/*
 * db_scan_race_test.c - scans racing flushes, compactions and value-log GC
 * over content that does not change (issue 9).
 *
 * The database holds a fixed set of "static" keys (s...) whose values
 * never change once loaded; half of them were overwritten during the load,
 * so the first value-log files are half garbage and GC moves the live
 * static values, again and again as churn fills the files they land in.
 * Beside them a churn thread writes, overwrites and deletes keys of
 * another range (z...), flushing now and then, so flushes and compactions
 * rewrite the tables that hold the static keys while readers walk them.
 * Reader threads open iterators bounded to the static range, seek at
 * random, walk both ways with direction switches, and compare every key
 * and value with the static model. Anything the background work does
 * must be invisible to them.
 *
 * Environment: STOAT_SCAN_RACE_SECONDS (default 4), STOAT_SEED.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "db/iterator.h"
#include "db/write.h"
#include "db_util.h"
#include "test.h"

#define SR_KEYS 4000
#define SR_READERS 3
#define SR_WALK 40

typedef struct sr_shared {
    stoat_db *db;
    char key[SR_KEYS][24];
    size_t klen[SR_KEYS];
    uint64_t tag[SR_KEYS];          /* value of static key i: dbu_value(tag, len) */
    uint32_t vlen[SR_KEYS];
    _Atomic int stop;
    _Atomic long scans, steps, wrong;
    uint64_t seed;
} sr_shared;

static uint64_t sr_rnd(uint64_t *s, uint64_t n)
{
    return test_rand(s) % n;
}

static double sr_seconds(void)
{
    const char *s = getenv("STOAT_SCAN_RACE_SECONDS");

    return s && *s ? atof(s) : 4.0;
}

/* Static key i: "s" + 8 digits + a tail of 0..12 bytes so keys differ in
 * length and share prefixes. Sorted by i. */
static void sr_make_keys(sr_shared *sh)
{
    for (int i = 0; i < SR_KEYS; i++) {
        int n = snprintf(sh->key[i], sizeof(sh->key[i]), "s%08d", i * 7);
        int tail = (i * 2654435761u >> 7) % 13;

        for (int t = 0; t < tail; t++)
            sh->key[i][n + t] = (char)('a' + (i + t) % 26);
        sh->klen[i] = (size_t)(n + tail);
    }
}

static int sr_key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    return c ? c : (alen > blen) - (alen < blen);
}

/* First static index whose key is >= (k, len). */
static int sr_lower(const sr_shared *sh, const void *k, size_t len)
{
    int lo = 0, hi = SR_KEYS;

    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (sr_key_cmp(sh->key[mid], sh->klen[mid], k, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* What the scan did so far, for the report. */
static _Thread_local char sr_trail[512];
static _Thread_local size_t sr_trail_len;

static void sr_note(const char *what)
{
    size_t n = strlen(what);

    if (sr_trail_len + n + 1 < sizeof(sr_trail)) {
        memcpy(sr_trail + sr_trail_len, what, n);
        sr_trail_len += n;
        sr_trail[sr_trail_len] = 0;
    }
}

static _Thread_local stoat_iter *sr_cur_iter;

static void sr_report(sr_shared *sh, const char *what, int want, const void *k, size_t klen)
{
    if (atomic_fetch_add(&sh->wrong, 1) < 1) {
        fprintf(stderr, "  scan race: moves: %s\n", sr_trail);
        if (sr_cur_iter)
            db_iterator_describe(sr_cur_iter, stderr);
        fprintf(stderr, "  scan race: mismatch: %s: expected #%d ", what, want);
        if (want >= 0 && want < SR_KEYS)
            fprintf(stderr, "%.*s", (int)sh->klen[want], sh->key[want]);
        fprintf(stderr, ", got ");
        if (k)
            fprintf(stderr, "%.*s", (int)klen, (const char *)k);
        fprintf(stderr, " (seed %llu)\n", (unsigned long long)sh->seed);
    }
}

/* Checks the iterator against static key `want` (-1: must be invalid). */
static int sr_check(sr_shared *sh, stoat_iter *it, int want)
{
    const void *k, *v;
    size_t klen, vlen;

    if (want < 0 || want >= SR_KEYS) {
        if (stoat_iter_valid(it)) {
            stoat_iter_key(it, &k, &klen);
            sr_report(sh, "scan went past the end", want, k, klen);
            return -1;
        }
        if (stoat_iter_status(it) != 0) {
            sr_report(sh, "scan failed", want, NULL, 0);
            return -1;
        }
        return 0;
    }
    if (!stoat_iter_valid(it)) {
        sr_report(sh, stoat_iter_status(it) ? "scan failed" : "scan ended early", want, NULL, 0);
        return -1;
    }
    if (stoat_iter_key(it, &k, &klen) != 0 || stoat_iter_value(it, &v, &vlen) != 0) {
        sr_report(sh, "could not read an entry", want, NULL, 0);
        return -1;
    }
    if (sr_key_cmp(k, klen, sh->key[want], sh->klen[want]) != 0) {
        sr_report(sh, "wrong key", want, k, klen);
        return -1;
    }
    if (!dbu_value_is(sh->tag[want], sh->vlen[want], v, vlen)) {
        sr_report(sh, "wrong value", want, k, klen);
        return -1;
    }
    return 0;
}

/* One scan: a random start, then a walk with random turns. */
static void sr_scan(sr_shared *sh, uint64_t *rng)
{
    stoat_iter_options io = {.lower = "s", .lower_len = 1, .upper = "t", .upper_len = 1};
    stoat_iter *it;
    int at, dir = sr_rnd(rng, 2) ? 1 : -1;
    int i = (int)sr_rnd(rng, SR_KEYS);

    char note[64];

    sr_trail_len = 0;
    sr_trail[0] = 0;
    sr_cur_iter = NULL;
    if (stoat_iter_open(sh->db, &io, &it) != 0) {
        sr_report(sh, "iterator open failed", -1, NULL, 0);
        return;
    }
    sr_cur_iter = it;
    switch (sr_rnd(rng, 4)) {
    case 0:
        if (dir > 0) {
            stoat_iter_seek_first(it);
            at = 0;
            sr_note("first");
        } else {
            stoat_iter_seek_last(it);
            at = SR_KEYS - 1;
            sr_note("last");
        }
        break;
    case 1:     /* a key cut short: lands between keys */
        if (dir > 0) {
            stoat_iter_seek(it, sh->key[i], sh->klen[i] - 1);
            at = sr_lower(sh, sh->key[i], sh->klen[i] - 1);
        } else {
            stoat_iter_seek_for_prev(it, sh->key[i], sh->klen[i] - 1);
            at = sr_lower(sh, sh->key[i], sh->klen[i] - 1) - 1;
        }
        snprintf(note, sizeof(note), "%s(#%d-cut)", dir > 0 ? "seek" : "seek_for_prev", i);
        sr_note(note);
        break;
    default:
        if (dir > 0)
            stoat_iter_seek(it, sh->key[i], sh->klen[i]);
        else
            stoat_iter_seek_for_prev(it, sh->key[i], sh->klen[i]);
        at = i;
        snprintf(note, sizeof(note), "%s(#%d)", dir > 0 ? "seek" : "seek_for_prev", i);
        sr_note(note);
        break;
    }
    for (int n = 0; n < SR_WALK && !atomic_load(&sh->stop); n++) {
        if (sr_check(sh, it, at) != 0 || at < 0 || at >= SR_KEYS)
            break;
        if (sr_rnd(rng, 6) == 0)
            dir = -dir;
        if (dir > 0)
            stoat_iter_next(it);
        else
            stoat_iter_prev(it);
        sr_note(dir > 0 ? " n" : " p");
        at += dir;
        atomic_fetch_add(&sh->steps, 1);
    }
    atomic_fetch_add(&sh->scans, 1);
    stoat_iter_close(it);
}

static void *sr_reader(void *arg)
{
    sr_shared *sh = arg;
    uint64_t rng = sh->seed ^ (uint64_t)(uintptr_t)&rng;

    while (!atomic_load(&sh->stop) && atomic_load(&sh->wrong) == 0)
        sr_scan(sh, &rng);
    return NULL;
}

/* Churn in the z range: puts (some large, into the value log), deletes,
 * and now and then a flush, so tables holding static keys get rewritten. */
static void *sr_churn(void *arg)
{
    sr_shared *sh = arg;
    uint64_t rng = sh->seed * 31 + 7, n = 0;
    char k[16], *v = malloc(4096);

    while (v && !atomic_load(&sh->stop)) {
        size_t klen = (size_t)snprintf(k, sizeof(k), "z%06llu",
                                       (unsigned long long)sr_rnd(&rng, 3000));
        uint64_t r = sr_rnd(&rng, 100);

        if (r < 70) {
            size_t vlen = r < 20 ? 1024 + sr_rnd(&rng, 3000) : sr_rnd(&rng, 200);
            dbu_value(n, v, vlen);
            (void)stoat_put(sh->db, k, klen, v, vlen);
        } else {
            (void)stoat_delete(sh->db, k, klen);
        }
        if (++n % 2000 == 0)
            (void)stoat_flush(sh->db);
    }
    free(v);
    return NULL;
}

static void sr_load(sr_shared *sh)
{
    char *v = malloc(4096);
    uint64_t rng = sh->seed;

    REQUIRE(v != NULL);
    /* Twice: the first values become garbage, so GC has files to move. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < SR_KEYS; i++) {
            if (round == 1 && sr_rnd(&rng, 2))
                continue;
            sh->tag[i] = (uint64_t)round * SR_KEYS + (uint64_t)i + 1;
            sh->vlen[i] = (uint32_t)(sr_rnd(&rng, 3) ? 1024 + sr_rnd(&rng, 2048)
                                                     : sr_rnd(&rng, 300));
            dbu_value(sh->tag[i], v, sh->vlen[i]);
            REQUIRE_OK(stoat_put(sh->db, sh->key[i], sh->klen[i], v, sh->vlen[i]));
        }
    }
    free(v);
    REQUIRE_OK(stoat_flush(sh->db));
}

static void test_db_scan_race_static_content_under_churn(void)
{
    static sr_shared sh;
    pthread_t readers[SR_READERS], churn;
    stoat_options o;
    struct timespec t0, t1;
    double secs = sr_seconds();
    const char *s = getenv("STOAT_SEED");

    memset(&sh, 0, sizeof(sh));
    sh.seed = s && *s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
    printf("  scan race: seed %llu (STOAT_SEED), %.1f s\n", (unsigned long long)sh.seed, secs);
    sr_make_keys(&sh);
    dbu_small_options(&o);
    o.memtable_size = 128 << 10;
    o.table_size = 64 << 10;
    o.block_size = 1024;
    o.cache_size = 256 << 10;       /* small: blocks come and go */
    o.max_open_files = 20;          /* so do table readers */
    o.value_log_file_size = 1 << 20;
    o.auto_gc_ratio = 0.3;
    REQUIRE_OK(stoat_open(test_tmpdir(), &o, &sh.db));
    sr_load(&sh);
    REQUIRE(pthread_create(&churn, NULL, sr_churn, &sh) == 0);
    for (int i = 0; i < SR_READERS; i++)
        REQUIRE(pthread_create(&readers[i], NULL, sr_reader, &sh) == 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        struct timespec nap = {0, 50 * 1000 * 1000};
        nanosleep(&nap, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9 < secs &&
             atomic_load(&sh.wrong) == 0);
    atomic_store(&sh.stop, 1);
    pthread_join(churn, NULL);
    for (int i = 0; i < SR_READERS; i++)
        pthread_join(readers[i], NULL);
    {
        stoat_stats st;
        REQUIRE_OK(stoat_stats_get(sh.db, &st));
        printf("  scan race: %ld scans, %ld steps, %ld wrong; %llu flushes, %llu compactions, "
               "%llu value-log files\n",
               (long)sh.scans, (long)sh.steps, (long)sh.wrong, (unsigned long long)st.flushes,
               (unsigned long long)st.compactions, (unsigned long long)st.vlog_files);
    }
    CHECK(atomic_load(&sh.wrong) == 0);
    CHECK(atomic_load(&sh.scans) > 0);
    REQUIRE_OK(stoat_close(sh.db));
}

/*
 * The bug of issue 9, pinned deterministically: value-log GC rewrites a
 * key under its old version into the active memtable, which an open
 * iterator reads. The iterator is on that key, having come to it forward
 * from a table; turning back must yield the key before it. Before the
 * fix, the backward turn repositioned the memtable source onto the new
 * copy (an entry at the same internal key, in a newer source, that the
 * forward walk never met) and prev yielded the same key again.
 */
static void test_db_scan_race_gc_move_under_open_iterator(void)
{
    stoat_options o;
    stoat_db *db;
    stoat_iter *it;
    const void *k;
    size_t klen;
    uint64_t ver = 0, done = 0;
    uint8_t skip = 0;

    dbu_small_options(&o);
    o.auto_gc = 0;
    REQUIRE_OK(stoat_open(test_tmpdir(), &o, &db));
    REQUIRE_OK(stoat_put(db, "a", 1, "1", 1));
    REQUIRE_OK(stoat_put(db, "b", 1, "2", 1));
    REQUIRE_OK(stoat_put(db, "c", 1, "3", 1));
    REQUIRE_OK(stoat_flush(db));            /* all three in a table */
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    REQUIRE_OK(stoat_iter_seek(it, "a", 1));
    REQUIRE_OK(stoat_iter_next(it));
    REQUIRE(stoat_iter_valid(it));
    REQUIRE_OK(stoat_iter_key(it, &k, &klen));
    REQUIRE(klen == 1 && memcmp(k, "b", 1) == 0);
    REQUIRE_OK(stoat_iter_meta(it, &ver, NULL, NULL, NULL));
    {
        /* What gc_flush writes for a live value of b: the same key at
         * the same version, into the memtable the iterator reads. */
        db_write_op move = {.key = slice_make("b", 1), .value = slice_make("2", 1),
                            .version = ver};
        REQUIRE_OK(db_write_gc(db, &move, 1, atomic_load(&db->last_version), &skip, &done));
        REQUIRE(skip == 0);
    }
    REQUIRE_OK(stoat_iter_prev(it));
    REQUIRE(stoat_iter_valid(it));
    REQUIRE_OK(stoat_iter_key(it, &k, &klen));
    CHECK(klen == 1 && memcmp(k, "a", 1) == 0);
    REQUIRE_OK(stoat_iter_next(it));
    REQUIRE_OK(stoat_iter_key(it, &k, &klen));
    CHECK(klen == 1 && memcmp(k, "b", 1) == 0);
    REQUIRE_OK(stoat_iter_next(it));
    REQUIRE_OK(stoat_iter_key(it, &k, &klen));
    CHECK(klen == 1 && memcmp(k, "c", 1) == 0);
    stoat_iter_close(it);
    /* A new iterator sees the moved copy as b's only entry. */
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    REQUIRE_OK(stoat_iter_seek_last(it));
    REQUIRE_OK(stoat_iter_prev(it));
    REQUIRE_OK(stoat_iter_key(it, &k, &klen));
    CHECK(klen == 1 && memcmp(k, "b", 1) == 0);
    REQUIRE_OK(stoat_iter_prev(it));
    REQUIRE_OK(stoat_iter_key(it, &k, &klen));
    CHECK(klen == 1 && memcmp(k, "a", 1) == 0);
    stoat_iter_close(it);
    REQUIRE_OK(stoat_close(db));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_db_scan_race_gc_move_under_open_iterator);
    TEST_RUN(test_db_scan_race_static_content_under_churn);
    return test_summary();
}
