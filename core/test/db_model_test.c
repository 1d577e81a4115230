/*
 * db_model_test.c - a long random run of puts, deletes, gets and scans,
 * every answer checked against an in-memory model, while flushes and
 * compactions run and the database is closed and reopened.
 *
 * The key space is fixed up front (about 20k keys of 1..40 bytes, binary
 * bytes and shared prefixes included) and sorted, so the model is an
 * array indexed by a key's rank: a tag per key (ABSENT or the value's tag)
 * and the value's length; value bytes are regenerated from the tag
 * (db_util.h). A scan's expected entries are a binary search and a walk
 * over that array.
 *
 * Environment: STOAT_SEED replays a run (the seed is printed);
 * STOAT_MODEL_OPS sets the number of operations (default 1,000,000, for
 * slow sanitizer builds). There are always five close/reopen cycles, each
 * followed by a full comparison; the cycles vary the block and value-log
 * codecs, and every other one forces the iterators' value prefetch. Mismatches are counted, the first few
 * printed, and any mismatch fails the test.
 */
#include <time.h>

#include "db/iterator.h"
#include "db_util.h"
#include "test.h"

#define MODEL_KEYS 20000
#define MODEL_KEY_MAX 40
#define MODEL_REOPENS 5
#define SCAN_MAX 50
#define ABSENT UINT64_MAX

typedef struct model {
    int n;                              /* keys in the space */
    char (*key)[MODEL_KEY_MAX];         /* sorted, distinct */
    uint8_t *klen;
    uint64_t *tag;                      /* ABSENT or the tag of the value */
    uint32_t *vlen;
    uint64_t rng;
    uint64_t next_tag;
    long mismatches;
    long op;                            /* index of the operation running */
} model;

static uint64_t rnd(model *m, uint64_t n)
{
    return test_rand(&m->rng) % n;
}

static int bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    return c ? c : (alen > blen) - (alen < blen);
}

/* Records a mismatch; prints the first few. */
static void mismatch(model *m, const char *what, int idx)
{
    if (m->mismatches++ < 10)
        fprintf(stderr, "  mismatch at op %ld: %s (key #%d, len %d)\n", m->op, what, idx,
                idx >= 0 ? m->klen[idx] : -1);
}

/* A random byte: mostly from a small alphabet, so keys share prefixes. */
static char key_byte(model *m)
{
    uint64_t r = rnd(m, 100);

    if (r < 80)
        return (char)('a' + rnd(m, 4));
    if (r < 90)
        return (char)(r < 85 ? 0x00 : 0xff);
    return (char)rnd(m, 256);
}

/* Orders key records [len byte | bytes]. */
static int record_cmp(const void *a, const void *b)
{
    const unsigned char *ra = a, *rb = b;

    return bytes_cmp(ra + 1, ra[0], rb + 1, rb[0]);
}

/*
 * Generates the key space: each key is 1..40 bytes, most start with one
 * of 64 shared prefixes. Sorted and deduplicated; records are
 * [len byte | key bytes] so one qsort orders them.
 */
static void model_gen_keys(model *m)
{
    enum { REC = MODEL_KEY_MAX + 1 };
    char prefix[64][8];
    int plen[64];
    char *rec = calloc(MODEL_KEYS, REC);
    int n = 0;

    REQUIRE(rec != NULL);
    for (int p = 0; p < 64; p++) {
        plen[p] = 1 + (int)rnd(m, 8);
        for (int i = 0; i < plen[p]; i++)
            prefix[p][i] = key_byte(m);
    }
    for (int i = 0; i < MODEL_KEYS; i++) {
        char *r = rec + (size_t)i * REC;
        int len = 1 + (int)rnd(m, MODEL_KEY_MAX), at = 0;

        if (rnd(m, 10) < 8) {
            int p = (int)rnd(m, 64);

            at = plen[p] < len ? plen[p] : len;
            memcpy(r + 1, prefix[p], (size_t)at);
        }
        while (at < len)
            r[1 + at++] = key_byte(m);
        r[0] = (char)len;
    }
    qsort(rec, MODEL_KEYS, REC, record_cmp);
    for (int i = 0; i < MODEL_KEYS; i++) {
        const char *r = rec + (size_t)i * REC;

        if (n > 0 && bytes_cmp(r + 1, (uint8_t)r[0], m->key[n - 1], m->klen[n - 1]) == 0)
            continue;
        m->klen[n] = (uint8_t)r[0];
        memcpy(m->key[n], r + 1, (uint8_t)r[0]);
        n++;
    }
    m->n = n;
    free(rec);
}

static void model_init(model *m, uint64_t seed)
{
    memset(m, 0, sizeof(*m));
    m->rng = seed;
    m->key = malloc(sizeof(*m->key) * MODEL_KEYS);
    m->klen = malloc(MODEL_KEYS);
    m->tag = malloc(sizeof(uint64_t) * MODEL_KEYS);
    m->vlen = malloc(sizeof(uint32_t) * MODEL_KEYS);
    REQUIRE(m->key && m->klen && m->tag && m->vlen);
    model_gen_keys(m);
    for (int i = 0; i < m->n; i++)
        m->tag[i] = ABSENT;
}

static void model_free(model *m)
{
    free(m->key);
    free(m->klen);
    free(m->tag);
    free(m->vlen);
}

/* First rank whose key is >= (s, len). */
static int lower_bound(const model *m, const void *s, size_t len)
{
    int lo = 0, hi = m->n;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;

        if (bytes_cmp(m->key[mid], m->klen[mid], s, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First rank whose key is > (s, len). */
static int upper_bound(const model *m, const void *s, size_t len)
{
    int lo = 0, hi = m->n;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;

        if (bytes_cmp(m->key[mid], m->klen[mid], s, len) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First rank past the keys starting with p (they follow every key < p). */
static int prefix_end(const model *m, const void *p, size_t len)
{
    int lo = lower_bound(m, p, len), hi = m->n;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;

        if (m->klen[mid] >= len && memcmp(m->key[mid], p, len) == 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void op_put(model *m, stoat_db *db, char *vbuf)
{
    int i = (int)rnd(m, (uint64_t)m->n);
    uint64_t tag = ++m->next_tag;
    uint32_t len = (uint32_t)(rnd(m, 100) < 3 ? 300 + rnd(m, 8192 - 300) : rnd(m, 301));
    int rc;

    dbu_value(tag, vbuf, len);
    rc = stoat_put(db, m->key[i], m->klen[i], vbuf, len);
    if (rc != 0) {
        mismatch(m, "put failed", i);
        return;
    }
    m->tag[i] = tag;
    m->vlen[i] = len;
}

static void op_delete(model *m, stoat_db *db)
{
    int i = (int)rnd(m, (uint64_t)m->n);

    if (stoat_delete(db, m->key[i], m->klen[i]) != 0) {
        mismatch(m, "delete failed", i);
        return;
    }
    m->tag[i] = ABSENT;
}

static void op_get(model *m, stoat_db *db)
{
    int i = (int)rnd(m, (uint64_t)m->n);
    void *v = NULL;
    size_t vlen = 0;
    int rc = stoat_get(db, m->key[i], m->klen[i], &v, &vlen);

    if (m->tag[i] == ABSENT) {
        if (rc != STOAT_ENOTFOUND)
            mismatch(m, rc == 0 ? "get found a deleted or never written key" : "get failed", i);
    } else if (rc != 0) {
        mismatch(m, rc == STOAT_ENOTFOUND ? "get lost a key" : "get failed", i);
    } else if (!dbu_value_is(m->tag[i], m->vlen[i], v, vlen)) {
        mismatch(m, "get returned a wrong value", i);
    }
    stoat_free(v);
}

/* A scan's bounds, as ranks [lo, hi), and the bytes handed to stoat. */
typedef struct scan_bounds {
    stoat_iter_options io;
    char lower[MODEL_KEY_MAX + 1], upper[MODEL_KEY_MAX + 1], prefix[MODEL_KEY_MAX];
    int lo, hi;
} scan_bounds;

/* A random byte string near the key space: a key, cut or extended. */
static size_t random_target(model *m, char *out)
{
    int i = (int)rnd(m, (uint64_t)m->n);
    size_t len = m->klen[i];

    memcpy(out, m->key[i], len);
    if (rnd(m, 3) == 0 && len > 1)
        len = 1 + rnd(m, len - 1);
    else if (rnd(m, 3) == 0)
        out[len++] = key_byte(m);
    return len;
}

static void pick_bounds(model *m, scan_bounds *b)
{
    uint64_t kind = rnd(m, 5);

    memset(&b->io, 0, sizeof(b->io));
    b->lo = 0;
    b->hi = m->n;
    if (kind == 1 || kind == 4) {
        size_t len = random_target(m, b->lower);

        b->io.lower = b->lower;
        b->io.lower_len = len;
        b->lo = lower_bound(m, b->lower, len);
    }
    if (kind == 2 || kind == 4) {
        size_t len = random_target(m, b->upper);

        b->io.upper = b->upper;
        b->io.upper_len = len;
        b->hi = lower_bound(m, b->upper, len);
    }
    if (kind == 3) {
        int i = (int)rnd(m, (uint64_t)m->n);
        size_t len = 1 + rnd(m, m->klen[i] < 6 ? m->klen[i] : 6);
        int end;

        memcpy(b->prefix, m->key[i], len);
        b->io.prefix = b->prefix;
        b->io.prefix_len = len;
        end = prefix_end(m, b->prefix, len);
        b->lo = lower_bound(m, b->prefix, len);
        b->hi = end;
    }
}

/* Next present rank after `at` in direction dir within [b->lo, b->hi), or -1. */
static int model_step(const model *m, const scan_bounds *b, int at, int dir)
{
    for (at += dir; at >= b->lo && at < b->hi; at += dir)
        if (m->tag[at] != ABSENT)
            return at;
    return -1;
}

static void print_hex(const char *label, const void *p, size_t len)
{
    fprintf(stderr, "    %s (%zu bytes): ", label, len);
    for (size_t i = 0; i < len; i++)
        fprintf(stderr, "%02x", ((const unsigned char *)p)[i]);
    fprintf(stderr, "\n");
}

/* Where (k, klen) sits in the model: its rank and state, or where it would go. */
static void print_model_key(const model *m, const char *label, const void *k, size_t klen)
{
    int r = lower_bound(m, k, klen);

    if (r < m->n && bytes_cmp(m->key[r], m->klen[r], k, klen) == 0)
        fprintf(stderr, "    %s is model key #%d, %s\n", label, r,
                m->tag[r] == ABSENT ? "absent" : "present");
    else
        fprintf(stderr, "    %s is not in the key space (would be rank %d)\n", label, r);
}

/* A second look at the same keys: a fresh iterator and point reads. */
static void diagnose_again(const model *m, stoat_db *db, const scan_bounds *b, int want, int dir)
{
    stoat_iter *it2;
    void *v = NULL;
    size_t vlen = 0;
    int rc;

    rc = stoat_get(db, m->key[want], m->klen[want], &v, &vlen);
    fprintf(stderr, "    get(expected) now: %s\n", stoat_strerror(rc));
    stoat_free(v);
    if (stoat_iter_open(db, &b->io, &it2) != 0)
        return;
    if (dir > 0)
        stoat_iter_seek(it2, m->key[want], m->klen[want]);
    else
        stoat_iter_seek_for_prev(it2, m->key[want], m->klen[want]);
    if (stoat_iter_valid(it2)) {
        const void *k;
        size_t klen;
        stoat_iter_key(it2, &k, &klen);
        print_hex("a fresh iterator's seek to the expected key yields", k, klen);
    } else {
        fprintf(stderr, "    a fresh iterator's seek yields nothing (status %d)\n",
                stoat_iter_status(it2));
    }
    stoat_iter_close(it2);
}

/* Everything a diagnosis of a wrong key needs, on stderr. */
static void diagnose_wrong_key(model *m, stoat_db *db, stoat_iter *it, const scan_bounds *b,
                               int want, int dir, int step, const void *k, size_t klen)
{
    uint64_t ver = 0;
    int deleted = 0;

    if (m->mismatches > 3)
        return;
    stoat_iter_meta(it, &ver, NULL, NULL, &deleted);
    fprintf(stderr, "  wrong key at op %ld, step %d of a %s scan (bounds kind lo %d hi %d):\n",
            m->op, step, dir > 0 ? "forward" : "backward", b->lo, b->hi);
    print_hex("expected", m->key[want], m->klen[want]);
    print_hex("yielded", k, klen);
    fprintf(stderr, "    yielded version %llu%s\n", (unsigned long long)ver,
            deleted ? " (deleted)" : "");
    print_model_key(m, "yielded", k, klen);
    if (b->io.prefix)
        print_hex("prefix", b->io.prefix, b->io.prefix_len);
    if (b->io.lower)
        print_hex("lower", b->io.lower, b->io.lower_len);
    if (b->io.upper)
        print_hex("upper", b->io.upper, b->io.upper_len);
    db_iterator_describe(it, stderr);
    diagnose_again(m, db, b, want, dir);
}

/*
 * Compares up to `steps` entries of it, moving in direction dir, with the
 * model from rank `want`. Returns the rank the iterator should be at
 * after the walk, or -2 once it has gone wrong.
 */
static int compare_walk(model *m, stoat_db *db, stoat_iter *it, const scan_bounds *b, int want,
                        int dir, int steps)
{
    for (int n = 0; n < steps && want >= 0; n++) {
        const void *k, *v;
        size_t klen, vlen;

        if (!stoat_iter_valid(it)) {
            mismatch(m, stoat_iter_status(it) ? "scan failed" : "scan ended early", want);
            return -2;
        }
        if (stoat_iter_key(it, &k, &klen) != 0 || stoat_iter_value(it, &v, &vlen) != 0) {
            mismatch(m, "scan could not read an entry", want);
            return -2;
        }
        if (bytes_cmp(k, klen, m->key[want], m->klen[want]) != 0) {
            mismatch(m, "scan yielded a wrong key", want);
            diagnose_wrong_key(m, db, it, b, want, dir, n, k, klen);
            return -2;
        }
        if (!dbu_value_is(m->tag[want], m->vlen[want], v, vlen)) {
            mismatch(m, "scan yielded a wrong value", want);
            return -2;
        }
        if (dir > 0)
            stoat_iter_next(it);
        else
            stoat_iter_prev(it);
        want = model_step(m, b, want, dir);
    }
    if (want < 0 && stoat_iter_valid(it)) {
        mismatch(m, "scan yielded a key past the end", -1);
        return -2;
    }
    if (want < 0 && stoat_iter_status(it) != 0) {
        mismatch(m, "scan failed at the end", -1);
        return -2;
    }
    return want;
}

/* Positions it by a random seek; returns the expected first rank and sets *dir. */
static int random_seek(model *m, stoat_iter *it, const scan_bounds *b, int *dir)
{
    char t[MODEL_KEY_MAX + 1];
    size_t len;
    int r;

    *dir = rnd(m, 2) ? 1 : -1;
    switch (rnd(m, 3)) {
    case 0:
        if (*dir > 0) {
            stoat_iter_seek_first(it);
            return model_step(m, b, b->lo - 1, 1);
        }
        stoat_iter_seek_last(it);
        return model_step(m, b, b->hi, -1);
    default:
        len = random_target(m, t);
        if (*dir > 0) {
            stoat_iter_seek(it, t, len);
            r = lower_bound(m, t, len);
            return model_step(m, b, (r > b->lo ? r : b->lo) - 1, 1);
        }
        stoat_iter_seek_for_prev(it, t, len);
        r = upper_bound(m, t, len);
        return model_step(m, b, r < b->hi ? r : b->hi, -1);
    }
}

static void op_scan(model *m, stoat_db *db)
{
    scan_bounds b;
    stoat_iter *it;
    int dir, want, at;

    pick_bounds(m, &b);
    if (stoat_iter_open(db, &b.io, &it) != 0) {
        mismatch(m, "iterator open failed", -1);
        return;
    }
    want = random_seek(m, it, &b, &dir);
    at = compare_walk(m, db, it, &b, want, dir, SCAN_MAX);
    /* Sometimes turn around: the entry before the current one comes next. */
    if (at >= 0 && rnd(m, 4) == 0) {
        if (dir > 0)
            stoat_iter_prev(it);
        else
            stoat_iter_next(it);
        compare_walk(m, db, it, &b, model_step(m, &b, at, -dir), -dir, 10);
    }
    stoat_iter_close(it);
}

/* A full forward scan must hold exactly the model's present keys. */
static void full_compare(model *m, stoat_db *db)
{
    scan_bounds b;
    stoat_iter *it;

    memset(&b, 0, sizeof(b));
    b.hi = m->n;
    if (stoat_iter_open(db, NULL, &it) != 0) {
        mismatch(m, "iterator open failed", -1);
        return;
    }
    stoat_iter_seek_first(it);
    compare_walk(m, db, it, &b, model_step(m, &b, -1, 1), 1, m->n + 1);
    stoat_iter_close(it);
}

static stoat_db *model_open(const char *dir, int cycle)
{
    static const int codecs[] = {STOAT_COMPRESSION_LZ4, STOAT_COMPRESSION_NONE,
                                 STOAT_COMPRESSION_ZSTD};
    stoat_options o;
    stoat_db *db;

    dbu_small_options(&o);
    o.memtable_size = 256 << 10;
    o.table_size = 256 << 10;
    o.base_level_size = 1 << 20;
    o.block_size = 2048;
    o.cache_size = 4 << 20;
    o.compression = codecs[cycle % 3];
    o.value_log_compression = codecs[(cycle + 1) % 3];
    /* Odd cycles: iterators run their value prefetch (a scout ahead),
     * over more separated values. */
    db_iter_prefetch_always = cycle % 2;
    if (cycle % 2)
        o.value_threshold = 200;
    REQUIRE_OK(stoat_open(dir, &o, &db));
    return db;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);

    return s && *s ? strtoull(s, NULL, 0) : dflt;
}

/* One random operation, or an occasional flush or flatten. */
static void model_step_op(model *m, stoat_db *db, char *vbuf)
{
    uint64_t r = rnd(m, 1000);

    if (r < 450)
        op_put(m, db, vbuf);
    else if (r < 600)
        op_delete(m, db);
    else if (r < 850)
        op_get(m, db);
    else if (r < 950)
        op_scan(m, db);
    else if (rnd(m, 2000) == 0 && stoat_flush(db) != 0)
        mismatch(m, "flush failed", -1);
    else if (rnd(m, 5000) == 0 && stoat_flatten(db) != 0)
        mismatch(m, "flatten failed", -1);
}

static void test_db_model_random_ops(void)
{
    long ops = (long)env_u64("STOAT_MODEL_OPS", 1000000);
    uint64_t seed = env_u64("STOAT_SEED", 0);
    long per_cycle = ops / MODEL_REOPENS + 1;
    char *vbuf = malloc(8192);
    struct timespec t0, t1;
    stoat_db *db;
    model m;

    if (seed == 0)
        seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    printf("model: seed %llu (replay with STOAT_SEED=%llu), %ld ops\n",
           (unsigned long long)seed, (unsigned long long)seed, ops);
    fflush(stdout);
    REQUIRE(vbuf != NULL);
    model_init(&m, seed);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    db = model_open(test_tmpdir(), 0);
    for (int cycle = 1; cycle <= MODEL_REOPENS; cycle++) {
        for (long i = 0; i < per_cycle && m.op < ops; i++, m.op++)
            model_step_op(&m, db, vbuf);
        printf("model: cycle %d: %llu flushes, %llu compactions, %llu value-log GC runs\n", cycle,
               (unsigned long long)db->stat_flushes, (unsigned long long)db->stat_compactions,
               (unsigned long long)db->stat_gc_runs);
        REQUIRE_OK(stoat_close(db));
        db = model_open(test_tmpdir(), cycle);
        full_compare(&m, db);
    }
    REQUIRE_OK(stoat_close(db));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("model: %ld ops over %d keys, %d reopens, %.2f s, %ld mismatches\n", m.op, m.n,
           MODEL_REOPENS, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
           m.mismatches);
    CHECK(m.mismatches == 0);
    CHECK(m.op == ops);
    model_free(&m);
    free(vbuf);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_db_model_random_ops);
    return test_summary();
}
