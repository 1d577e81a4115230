/*
 * txn_test.c - transactions, TTL, write batches and maintenance through
 * the public API.
 *
 * Covers: serializability (write skew over 100,000 interleaved attempts,
 * lost updates, conflicts with concurrent plain puts, phantoms in iterated
 * ranges and point reads of absent keys), read-your-own-writes for gets and for iterators in both
 * directions, read-only transactions, the transaction size limits, TTL
 * expiry before and after compaction, reading at old versions with
 * num_versions_to_keep, all-versions iteration and entry metadata,
 * write batches split into chunks, drop_prefix / drop_all, statistics,
 * and misuse (commit twice, discard with an open iterator).
 *
 * Each test opens its own database in a fresh directory. Values are short
 * strings; an absent key reads as "-" so that expectations are plain
 * strings. The tests with threads (lost update, concurrent puts) keep the
 * harness's CHECK/REQUIRE on the main thread: workers only count. The TTL
 * test sleeps up to a second; everything else runs without waiting.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "db_util.h"
#include "test.h"

#define ABSENT "-"

#define CHECK_STR(got, want)                                                   \
    do {                                                                       \
        const char *g_ = (got), *w_ = (want);                                  \
        if (strcmp(g_, w_) != 0)                                               \
            test_fail(__FILE__, __LINE__, "%s = \"%s\", want \"%s\"", #got, g_, \
                      w_);                                                     \
    } while (0)

/* ---- helpers ------------------------------------------------------------ */

/* Opens "<tmpdir>/name" with o (create_if_missing forced on). */
static stoat_db *open_named(const char *name, stoat_options *o)
{
    char dir[DBU_PATH_MAX];
    stoat_db *db;

    o->create_if_missing = 1;
    REQUIRE_OK(stoat_open(dbu_path(dir, test_tmpdir(), name), o, &db));
    return db;
}

static stoat_db *open_default(void)
{
    stoat_options o;

    stoat_options_init(&o);
    return open_named("db", &o);
}

static void put_s(stoat_db *db, const char *k, const char *v)
{
    REQUIRE_OK(stoat_put(db, k, strlen(k), v, strlen(v)));
}

static stoat_stats stats_of(stoat_db *db)
{
    stoat_stats st;

    REQUIRE_OK(stoat_stats_get(db, &st));
    return st;
}

/* The newest committed version (in a single-threaded test: of the last write). */
static uint64_t last_version(stoat_db *db)
{
    return stats_of(db).last_version;
}

/* Copies (p, len) into out as a C string, or ABSENT when rc is ENOTFOUND. */
static const char *as_str(int rc, const void *p, size_t len, char *out, size_t cap)
{
    if (rc == STOAT_ENOTFOUND)
        return ABSENT;
    REQUIRE_OK(rc);
    REQUIRE(len < cap);
    memcpy(out, p, len);
    out[len] = '\0';
    return out;
}

static const char *db_get_s(stoat_db *db, const char *k, char *out, size_t cap)
{
    void *v = NULL;
    size_t vlen = 0;
    int rc = stoat_get(db, k, strlen(k), &v, &vlen);

    if (rc == 0 && vlen < cap) {
        memcpy(out, v, vlen);
        out[vlen] = '\0';
    }
    stoat_free(v);
    if (rc == STOAT_ENOTFOUND)
        return ABSENT;
    REQUIRE_OK(rc);
    REQUIRE(vlen < cap);
    return out;
}

static const char *txn_get_s(stoat_txn *t, const char *k, char *out, size_t cap)
{
    const void *v = NULL;
    size_t vlen = 0;
    int rc = stoat_txn_get(t, k, strlen(k), &v, &vlen);

    return as_str(rc, v, vlen, out, cap);
}

static long long txn_get_num(stoat_txn *t, const char *k)
{
    char buf[32];
    const char *s = txn_get_s(t, k, buf, sizeof(buf));

    REQUIRE(strcmp(s, ABSENT) != 0);
    return strtoll(s, NULL, 10);
}

static void txn_set_s(stoat_txn *t, const char *k, const char *v)
{
    REQUIRE_OK(stoat_txn_set(t, k, strlen(k), v, strlen(v)));
}

static void txn_set_num(stoat_txn *t, const char *k, long long n)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%lld", n);
    txn_set_s(t, k, buf);
}

/*
 * Walks it from where it stands in direction dir (+1 next, -1 prev) to
 * the end, writing "key=value " for each entry into out.
 */
static const char *walk(stoat_iter *it, int dir, char *out, size_t cap)
{
    size_t len = 0;

    out[0] = '\0';
    while (stoat_iter_valid(it)) {
        const void *k, *v;
        size_t klen, vlen;
        int n;

        REQUIRE_OK(stoat_iter_key(it, &k, &klen));
        REQUIRE_OK(stoat_iter_value(it, &v, &vlen));
        n = snprintf(out + len, cap - len, "%.*s=%.*s ", (int)klen, (const char *)k, (int)vlen,
                     (const char *)v);
        REQUIRE(n > 0 && (size_t)n < cap - len);
        len += (size_t)n;
        REQUIRE_OK(dir > 0 ? stoat_iter_next(it) : stoat_iter_prev(it));
    }
    CHECK_RC(stoat_iter_status(it), 0);
    return out;
}

/* Number of entries an iterator with options o (NULL: all) yields. */
static int count_entries(stoat_db *db, const stoat_iter_options *o)
{
    stoat_iter *it;
    int n = 0;

    REQUIRE_OK(stoat_iter_open(db, o, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    for (; stoat_iter_valid(it); n++)
        REQUIRE_OK(stoat_iter_next(it));
    CHECK_RC(stoat_iter_status(it), 0);
    stoat_iter_close(it);
    return n;
}

static stoat_iter_options prefix_opts(const char *p)
{
    return (stoat_iter_options){.prefix = p, .prefix_len = strlen(p)};
}

/* ---- write skew --------------------------------------------------------- */

/*
 * One side of a write-skew attempt. Its steps: begin, read x, read y,
 * decrement its own key when x + y >= 2, commit.
 */
typedef struct ws_side {
    stoat_txn *t;
    const char *mine;
    long long x, y;
    int step;
    int others_before;          /* commits of this attempt when it began */
    int wrote;
    int rc;
} ws_side;

static void ws_step(stoat_db *db, ws_side *s, int *commits)
{
    switch (s->step++) {
    case 0:
        REQUIRE_OK(stoat_txn_begin(db, 0, &s->t));
        s->others_before = *commits;
        break;
    case 1:
        s->x = txn_get_num(s->t, "x");
        break;
    case 2:
        s->y = txn_get_num(s->t, "y");
        break;
    case 3:
        s->wrote = s->x + s->y >= 2;
        if (s->wrote)
            txn_set_num(s->t, s->mine, (s->mine[0] == 'x' ? s->x : s->y) - 1);
        break;
    default:
        s->rc = stoat_txn_commit(s->t);
        stoat_txn_discard(s->t);
        s->t = NULL;
        *commits += s->rc == 0 && s->wrote;
        break;
    }
}

/*
 * Runs one attempt from x = y = 1 with a random interleaving of the two
 * sides. Returns 1 when the second committer had to conflict (it began
 * before the first committed). Fails the test when the outcome differs.
 */
static int ws_attempt(stoat_db *db, uint64_t *seed, int detect)
{
    ws_side s[2] = {{.mine = "x"}, {.mine = "y"}};
    int commits = 0, overlap = 0;
    char bx[32], by[32];
    long long x, y;

    while (s[0].step < 5 || s[1].step < 5) {
        int who = s[0].step == 5 ? 1 : s[1].step == 5 ? 0 : (int)(test_rand(seed) & 1);
        ws_side *me = &s[who], *other = &s[!who];

        if (me->step == 4)      /* committing: did it overlap a commit? */
            overlap = other->step == 5 && other->wrote && me->others_before == 0;
        ws_step(db, me, &commits);
        if (me->step == 5 && me->rc != (overlap && detect ? STOAT_ECONFLICT : 0)) {
            test_fail(__FILE__, __LINE__, "commit of %s: rc %d, overlap %d", me->mine, me->rc,
                      overlap);
            longjmp(test_jmp, 1);
        }
    }
    x = strtoll(db_get_s(db, "x", bx, sizeof(bx)), NULL, 10);
    y = strtoll(db_get_s(db, "y", by, sizeof(by)), NULL, 10);
    if (detect && (x + y != 1 || x < 0 || y < 0)) {
        test_fail(__FILE__, __LINE__, "x = %lld, y = %lld after an attempt", x, y);
        longjmp(test_jmp, 1);
    }
    return overlap;
}

static void ws_reset(stoat_db *db)
{
    stoat_txn *t;

    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    txn_set_s(t, "x", "1");
    txn_set_s(t, "y", "1");
    REQUIRE_OK(stoat_txn_commit(t));
    stoat_txn_discard(t);
}

static void test_txn_write_skew(void)
{
    stoat_options o;
    stoat_db *db;
    uint64_t seed = 42;
    long overlaps = 0;
    stoat_stats st;

    stoat_options_init(&o);
    o.memtable_size = 4 << 20;  /* a few flushes on the way */
    db = open_named("db", &o);
    for (int i = 0; i < 100000; i++) {
        ws_reset(db);
        overlaps += ws_attempt(db, &seed, 1);
    }
    st = stats_of(db);
    /* A schedule overlaps unless one side runs all 5 steps before the
     * other begins: 15 in 16. Both kinds ran. */
    CHECK(overlaps > 90000 && overlaps < 97000);
    CHECK(st.txn_conflicts == (uint64_t)overlaps);
    CHECK(st.flushes > 0);
    REQUIRE_OK(stoat_close(db));
}

/* Without conflict detection the same schedules do break the invariant. */
static void test_txn_write_skew_without_detection(void)
{
    stoat_options o;
    stoat_db *db;
    uint64_t seed = 7;
    char bx[32], by[32];
    int broken = 0;

    stoat_options_init(&o);
    o.detect_conflicts = 0;
    db = open_named("db", &o);
    for (int i = 0; i < 200; i++) {
        ws_reset(db);
        if (ws_attempt(db, &seed, 0))
            broken += strcmp(db_get_s(db, "x", bx, sizeof(bx)), "0") == 0 &&
                      strcmp(db_get_s(db, "y", by, sizeof(by)), "0") == 0;
    }
    CHECK(broken > 0);
    CHECK(stats_of(db).txn_conflicts == 0);
    REQUIRE_OK(stoat_close(db));
}

/* ---- lost update -------------------------------------------------------- */

static void test_txn_lost_update(void)
{
    stoat_db *db = open_default();
    stoat_txn *a, *b;
    char buf[32];

    put_s(db, "counter", "0");
    REQUIRE_OK(stoat_txn_begin(db, 0, &a));
    REQUIRE_OK(stoat_txn_begin(db, 0, &b));
    txn_set_num(a, "counter", txn_get_num(a, "counter") + 1);
    txn_set_num(b, "counter", txn_get_num(b, "counter") + 1);
    CHECK_RC(stoat_txn_commit(a), 0);
    CHECK_RC(stoat_txn_commit(b), STOAT_ECONFLICT);
    CHECK(strstr(stoat_errmsg(db), "conflict") != NULL);
    stoat_txn_discard(a);
    stoat_txn_discard(b);
    CHECK_STR(db_get_s(db, "counter", buf, sizeof(buf)), "1");
    /* The retry reads the new value. */
    REQUIRE_OK(stoat_txn_begin(db, 0, &b));
    txn_set_num(b, "counter", txn_get_num(b, "counter") + 1);
    CHECK_RC(stoat_txn_commit(b), 0);
    stoat_txn_discard(b);
    CHECK_STR(db_get_s(db, "counter", buf, sizeof(buf)), "2");
    REQUIRE_OK(stoat_close(db));
}

#define LU_THREADS 4
#define LU_INCREMENTS 300

typedef struct lu_shared {
    stoat_db *db;
    atomic_long conflicts;
    atomic_long errors;
} lu_shared;

/* Increments "counter" LU_INCREMENTS times, retrying conflicts. */
static void *lu_worker(void *arg)
{
    lu_shared *sh = arg;

    for (int i = 0; i < LU_INCREMENTS; i++) {
        int rc;
        do {
            stoat_txn *t;
            const void *v;
            size_t vlen;
            char buf[32];

            if ((rc = stoat_txn_begin(sh->db, 0, &t)) != 0)
                break;
            if ((rc = stoat_txn_get(t, "counter", 7, &v, &vlen)) == 0 && vlen < sizeof(buf)) {
                memcpy(buf, v, vlen);
                buf[vlen] = '\0';
                snprintf(buf, sizeof(buf), "%lld", strtoll(buf, NULL, 10) + 1);
                if ((rc = stoat_txn_set(t, "counter", 7, buf, strlen(buf))) == 0)
                    rc = stoat_txn_commit(t);
            }
            stoat_txn_discard(t);
            if (rc == STOAT_ECONFLICT)
                atomic_fetch_add(&sh->conflicts, 1);
        } while (rc == STOAT_ECONFLICT);
        if (rc != 0)
            atomic_fetch_add(&sh->errors, 1);
    }
    return NULL;
}

static void test_txn_lost_update_threads(void)
{
    lu_shared sh = {.db = open_default()};
    pthread_t th[LU_THREADS];
    char buf[32], want[32];
    stoat_stats st;

    put_s(sh.db, "counter", "0");
    for (int i = 0; i < LU_THREADS; i++)
        REQUIRE(pthread_create(&th[i], NULL, lu_worker, &sh) == 0);
    for (int i = 0; i < LU_THREADS; i++)
        pthread_join(th[i], NULL);
    CHECK(atomic_load(&sh.errors) == 0);
    snprintf(want, sizeof(want), "%d", LU_THREADS * LU_INCREMENTS);
    CHECK_STR(db_get_s(sh.db, "counter", buf, sizeof(buf)), want);
    st = stats_of(sh.db);
    CHECK(st.txn_conflicts == (uint64_t)atomic_load(&sh.conflicts));
    CHECK(st.txn_commits == LU_THREADS * LU_INCREMENTS);
    REQUIRE_OK(stoat_close(sh.db));
}

/*
 * A transaction that read a key must conflict when a plain put of that key
 * committed after its read version, even when the put was in flight (given
 * its version, not yet published) as the transaction began. One thread
 * puts "c" blindly; this one reads and rewrites it in transactions. Every
 * committed transaction's previous version of "c" must be at or below its
 * read version.
 */
#define CP_MAX_TXNS 100000
#define CP_SECONDS 0.7

typedef struct cp_shared {
    stoat_db *db;
    atomic_int stop;
    atomic_long errors;
} cp_shared;

static void *cp_putter(void *arg)
{
    cp_shared *sh = arg;

    while (!atomic_load(&sh->stop))
        if (stoat_put(sh->db, "c", 1, "p", 1) != 0)
            atomic_fetch_add(&sh->errors, 1);
    return NULL;
}

/* Runs transactions on "c" for a while; their read versions into rv[]. */
static void cp_run_txns(stoat_db *db, uint64_t *rv)
{
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int j = 0; j < CP_MAX_TXNS; j++) {
        stoat_txn *t;
        char buf[32];

        REQUIRE_OK(stoat_txn_begin(db, 0, &t));
        txn_get_s(t, "c", buf, sizeof(buf));
        snprintf(buf, sizeof(buf), "t%d", j);
        txn_set_s(t, "c", buf);
        if (stoat_txn_commit(t) == 0)
            rv[j] = stoat_txn_read_version(t);
        stoat_txn_discard(t);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 > CP_SECONDS)
            break;
    }
}

/* Walks the versions of "c" oldest first; counts missed conflicts. */
static long cp_missed(stoat_db *db, const uint64_t *rv, long *n_txns)
{
    stoat_iter_options o = {.prefix = "c", .prefix_len = 1, .all_versions = 1};
    stoat_iter *it;
    uint64_t prev = 0;
    long missed = 0;

    REQUIRE_OK(stoat_iter_open(db, &o, &it));
    REQUIRE_OK(stoat_iter_seek_last(it));
    while (stoat_iter_valid(it)) {
        const void *v;
        size_t vlen;
        uint64_t ver = 0;
        char buf[32];

        REQUIRE_OK(stoat_iter_value(it, &v, &vlen));
        REQUIRE_OK(stoat_iter_meta(it, &ver, NULL, NULL, NULL));
        REQUIRE(vlen < sizeof(buf));
        memcpy(buf, v, vlen);
        buf[vlen] = '\0';
        if (buf[0] == 't') {
            long j = strtol(buf + 1, NULL, 10);
            REQUIRE(j >= 0 && j < CP_MAX_TXNS && rv[j] != 0);
            missed += prev > rv[j];
            (*n_txns)++;
        }
        prev = ver;
        REQUIRE_OK(stoat_iter_prev(it));
    }
    stoat_iter_close(it);
    return missed;
}

static void test_txn_conflict_with_concurrent_puts(void)
{
    stoat_options o;
    cp_shared sh = {0};
    uint64_t *rv = calloc(CP_MAX_TXNS, sizeof(*rv));
    pthread_t th;
    long n_txns = 0, missed;

    REQUIRE(rv != NULL);
    stoat_options_init(&o);
    o.num_versions_to_keep = 1 << 30;   /* every version stays for the check */
    sh.db = open_named("db", &o);
    put_s(sh.db, "c", "0");
    REQUIRE(pthread_create(&th, NULL, cp_putter, &sh) == 0);
    cp_run_txns(sh.db, rv);
    atomic_store(&sh.stop, 1);
    pthread_join(th, NULL);
    CHECK(atomic_load(&sh.errors) == 0);
    missed = cp_missed(sh.db, rv, &n_txns);
    if (missed != 0)
        test_fail(__FILE__, __LINE__, "%ld of %ld committed transactions missed a conflict",
                  missed, n_txns);
    CHECK(n_txns > 0);
    free(rv);
    REQUIRE_OK(stoat_close(sh.db));
}

/* ---- read your own writes ----------------------------------------------- */

static void test_txn_read_own_writes_get(void)
{
    stoat_db *db = open_default();
    stoat_txn *t;
    char buf[64];
    const void *v;
    size_t vlen;
    uint64_t ver = 1, exp = 1;
    uint8_t um = 0;

    put_s(db, "a", "a0");
    put_s(db, "b", "b0");
    put_s(db, "c", "c0");
    REQUIRE_OK(stoat_flush(db));    /* the snapshot's values come from a table */
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    txn_set_s(t, "a", "a1");
    REQUIRE_OK(stoat_txn_delete(t, "b", 1));
    txn_set_s(t, "d", "d1");
    REQUIRE_OK(stoat_txn_set_ex(t, "e", 1, "e1", 2, 0, 7));
    CHECK_STR(txn_get_s(t, "a", buf, sizeof(buf)), "a1");
    CHECK_STR(txn_get_s(t, "b", buf, sizeof(buf)), ABSENT);
    CHECK_STR(txn_get_s(t, "c", buf, sizeof(buf)), "c0");
    CHECK_STR(txn_get_s(t, "d", buf, sizeof(buf)), "d1");
    REQUIRE_OK(stoat_txn_get_meta(t, "e", 1, &v, &vlen, &ver, &exp, &um));
    CHECK(vlen == 2 && memcmp(v, "e1", 2) == 0 && ver == 0 && exp == 0 && um == 7);
    /* Nobody else sees them yet. */
    CHECK_STR(db_get_s(db, "a", buf, sizeof(buf)), "a0");
    CHECK_STR(db_get_s(db, "b", buf, sizeof(buf)), "b0");
    CHECK_STR(db_get_s(db, "d", buf, sizeof(buf)), ABSENT);
    /* Later writes replace earlier ones, a delete can be undone. */
    txn_set_s(t, "a", "a2");
    txn_set_s(t, "b", "b2");
    REQUIRE_OK(stoat_txn_delete(t, "d", 1));
    CHECK_STR(txn_get_s(t, "a", buf, sizeof(buf)), "a2");
    CHECK_STR(txn_get_s(t, "b", buf, sizeof(buf)), "b2");
    CHECK_STR(txn_get_s(t, "d", buf, sizeof(buf)), ABSENT);
    REQUIRE_OK(stoat_txn_commit(t));
    stoat_txn_discard(t);
    CHECK_STR(db_get_s(db, "a", buf, sizeof(buf)), "a2");
    CHECK_STR(db_get_s(db, "b", buf, sizeof(buf)), "b2");
    CHECK_STR(db_get_s(db, "c", buf, sizeof(buf)), "c0");
    CHECK_STR(db_get_s(db, "d", buf, sizeof(buf)), ABSENT);
    CHECK_STR(db_get_s(db, "e", buf, sizeof(buf)), "e1");
    REQUIRE_OK(stoat_close(db));
}

#define RY_KEYS 40

/* Expected walk over the model (values or NULL) within [lo, hi). */
static const char *model_walk(char *const *model, int lo, int hi, int dir, char *out, size_t cap)
{
    size_t len = 0;

    out[0] = '\0';
    for (int i = dir > 0 ? lo : hi - 1; i >= lo && i < hi; i += dir) {
        if (model[i] == NULL)
            continue;
        len += (size_t)snprintf(out + len, cap - len, "k%02d=%s ", i, model[i]);
        REQUIRE(len < cap);
    }
    return out;
}

/* Compares a transaction iterator over keys [lo, hi) with the model, both
 * ways, bounded by lower/upper or (when prefix is set) by a prefix. */
static void ry_check(stoat_txn *t, char *const *model, int lo, int hi, const char *prefix)
{
    char lower[16], upper[16], got[2048], want[2048];
    stoat_iter_options o = {0};
    stoat_iter *it;

    snprintf(lower, sizeof(lower), "k%02d", lo);
    snprintf(upper, sizeof(upper), "k%02d", hi);
    if (prefix)
        o = prefix_opts(prefix);
    else
        o = (stoat_iter_options){.lower = lower, .lower_len = 3, .upper = upper, .upper_len = 3};
    REQUIRE_OK(stoat_txn_iter_open(t, &o, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    CHECK_STR(walk(it, 1, got, sizeof(got)), model_walk(model, lo, hi, 1, want, sizeof(want)));
    REQUIRE_OK(stoat_iter_seek_last(it));
    CHECK_STR(walk(it, -1, got, sizeof(got)), model_walk(model, lo, hi, -1, want, sizeof(want)));
    /* From the middle, both ways. */
    REQUIRE_OK(stoat_iter_seek(it, "k2", 2));
    CHECK_STR(walk(it, 1, got, sizeof(got)),
              model_walk(model, lo > 20 ? lo : 20, hi, 1, want, sizeof(want)));
    REQUIRE_OK(stoat_iter_seek_for_prev(it, "k2", 2));
    CHECK_STR(walk(it, -1, got, sizeof(got)),
              model_walk(model, lo, hi < 20 ? hi : 20, -1, want, sizeof(want)));
    stoat_iter_close(it);
}

/* The committed layers: an SST under the memtable, with deletes on top. */
static void ry_fill_db(stoat_db *db, char **model, uint64_t *seed)
{
    char k[16], v[16];

    for (int i = 0; i < RY_KEYS; i++) {
        snprintf(k, sizeof(k), "k%02d", i);
        snprintf(v, sizeof(v), "db%d", i);
        if (test_rand(seed) % 4 != 0) {
            put_s(db, k, v);
            model[i] = strdup(v);
        }
        if (i == RY_KEYS / 2)
            REQUIRE_OK(stoat_flush(db));
    }
    for (int i = 0; i < RY_KEYS; i += 5) {
        snprintf(k, sizeof(k), "k%02d", i);
        REQUIRE_OK(stoat_delete(db, k, 3));
        free(model[i]);
        model[i] = NULL;
    }
}

/* The transaction's writes: overwrites, deletes and inserts. */
static void ry_write_txn(stoat_txn *t, char **model, uint64_t *seed)
{
    char k[16], v[16];

    for (int i = 0; i < RY_KEYS; i++) {
        uint64_t r = test_rand(seed) % 10;

        snprintf(k, sizeof(k), "k%02d", i);
        snprintf(v, sizeof(v), "tx%d", i);
        if (r < 4) {
            txn_set_s(t, k, v);
            free(model[i]);
            model[i] = strdup(v);
        } else if (r < 6) {
            REQUIRE_OK(stoat_txn_delete(t, k, 3));
            free(model[i]);
            model[i] = NULL;
        }
    }
}

static void test_txn_read_own_writes_iter(void)
{
    stoat_db *db = open_default();
    char *model[RY_KEYS] = {0}, got[2048], want[2048];
    uint64_t seed = 1234;
    stoat_iter *it;
    stoat_txn *t;

    ry_fill_db(db, model, &seed);
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    ry_write_txn(t, model, &seed);
    ry_check(t, model, 0, RY_KEYS, NULL);
    ry_check(t, model, 7, 33, NULL);
    ry_check(t, model, 10, 20, "k1");
    ry_check(t, model, 25, 26, NULL);
    /* An open iterator keeps the writes as they were when it opened. */
    REQUIRE_OK(stoat_txn_iter_open(t, NULL, &it));
    txn_set_s(t, "k05", "late");
    txn_set_s(t, "zz", "late");
    REQUIRE_OK(stoat_iter_seek_first(it));
    CHECK_STR(walk(it, 1, got, sizeof(got)), model_walk(model, 0, RY_KEYS, 1, want, sizeof(want)));
    stoat_iter_close(it);
    free(model[5]);
    model[5] = strdup("late");
    ry_check(t, model, 0, RY_KEYS, NULL);
    stoat_txn_discard(t);
    for (int i = 0; i < RY_KEYS; i++)
        free(model[i]);
    REQUIRE_OK(stoat_close(db));
}

/* ---- phantoms ----------------------------------------------------------- */

enum { SCAN_FWD, SCAN_BWD, SCAN_FROM_C_TWO, GET_ONLY };

/*
 * A transaction reads (by scan with iterator options o, or a get of "c"),
 * writes "out", and commits after another transaction wrote other_key
 * (or deleted it). Returns the first one's commit code; the other's
 * change is undone afterwards.
 */
static int phantom_try(stoat_db *db, const stoat_iter_options *o, int scan, const char *other_key,
                       int other_deletes)
{
    char buf[512], oldbuf[64];
    const char *old;
    stoat_txn *t;
    stoat_iter *it;
    int rc;

    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    if (scan == GET_ONLY) {
        txn_get_s(t, "c", buf, sizeof(buf));
    } else {
        REQUIRE_OK(stoat_txn_iter_open(t, o, &it));
        if (scan == SCAN_FROM_C_TWO) {
            REQUIRE_OK(stoat_iter_seek(it, "c", 1));
            REQUIRE(stoat_iter_valid(it));
            REQUIRE_OK(stoat_iter_next(it));
        } else {
            REQUIRE_OK(scan == SCAN_FWD ? stoat_iter_seek_first(it) : stoat_iter_seek_last(it));
            walk(it, scan == SCAN_FWD ? 1 : -1, buf, sizeof(buf));
        }
        stoat_iter_close(it);
    }
    txn_set_s(t, "out", "1");
    old = db_get_s(db, other_key, oldbuf, sizeof(oldbuf));
    if (other_deletes)
        REQUIRE_OK(stoat_delete(db, other_key, strlen(other_key)));
    else
        put_s(db, other_key, "new");
    rc = stoat_txn_commit(t);
    stoat_txn_discard(t);
    if (strcmp(old, ABSENT) == 0)
        REQUIRE_OK(stoat_delete(db, other_key, strlen(other_key)));
    else
        put_s(db, other_key, old);
    return rc;
}

static void test_txn_phantom(void)
{
    stoat_db *db = open_default();
    stoat_iter_options bg = {.lower = "b", .lower_len = 1, .upper = "g", .upper_len = 1};
    stoat_iter_options p = prefix_opts("p:");
    const char *keys[] = {"a", "b", "d", "f", "h", "p:1", "p:3"};

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        put_s(db, keys[i], "v");
    /* A full scan of [b, g): inserts and deletes inside conflict. */
    CHECK_RC(phantom_try(db, &bg, SCAN_FWD, "e", 0), STOAT_ECONFLICT);
    CHECK_RC(phantom_try(db, &bg, SCAN_FWD, "b", 0), STOAT_ECONFLICT);
    CHECK_RC(phantom_try(db, &bg, SCAN_FWD, "f", 1), STOAT_ECONFLICT);
    CHECK_RC(phantom_try(db, &bg, SCAN_BWD, "c", 0), STOAT_ECONFLICT);
    /* ... outside it they do not. */
    CHECK_RC(phantom_try(db, &bg, SCAN_FWD, "a0", 0), 0);
    CHECK_RC(phantom_try(db, &bg, SCAN_FWD, "gg", 0), 0);
    CHECK_RC(phantom_try(db, &bg, SCAN_BWD, "z", 0), 0);
    CHECK_RC(phantom_try(db, &bg, SCAN_FWD, "h", 1), 0);
    /* A prefix scan, backwards. */
    CHECK_RC(phantom_try(db, &p, SCAN_BWD, "p:2", 0), STOAT_ECONFLICT);
    CHECK_RC(phantom_try(db, &p, SCAN_BWD, "p:0", 0), STOAT_ECONFLICT);
    CHECK_RC(phantom_try(db, &p, SCAN_BWD, "p", 0), 0);
    CHECK_RC(phantom_try(db, &p, SCAN_BWD, "q", 0), 0);
    /* A partial scan (seek "c", step from d to f) covers [c, f] only. */
    CHECK_RC(phantom_try(db, NULL, SCAN_FROM_C_TWO, "e", 0), STOAT_ECONFLICT);
    CHECK_RC(phantom_try(db, NULL, SCAN_FROM_C_TWO, "c", 0), STOAT_ECONFLICT);
    CHECK_RC(phantom_try(db, NULL, SCAN_FROM_C_TWO, "x", 0), 0);
    CHECK_RC(phantom_try(db, NULL, SCAN_FROM_C_TWO, "a", 1), 0);
    /* A get of an absent key is a read too. */
    CHECK_RC(phantom_try(db, NULL, GET_ONLY, "c", 0), STOAT_ECONFLICT);
    CHECK_RC(phantom_try(db, NULL, GET_ONLY, "cc", 0), 0);
    CHECK(stats_of(db).txn_conflicts == 9);
    REQUIRE_OK(stoat_close(db));
}

/* ---- read-only ---------------------------------------------------------- */

static void test_txn_read_only_never_conflicts(void)
{
    stoat_db *db = open_default();
    stoat_txn *ro, *rw;
    stoat_iter *it;
    char buf[256];

    put_s(db, "x", "1");
    put_s(db, "y", "1");
    REQUIRE_OK(stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &ro));
    REQUIRE_OK(stoat_txn_begin(db, 0, &rw));
    CHECK_STR(txn_get_s(ro, "x", buf, sizeof(buf)), "1");
    REQUIRE_OK(stoat_txn_iter_open(ro, NULL, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    CHECK_STR(walk(it, 1, buf, sizeof(buf)), "x=1 y=1 ");
    stoat_iter_close(it);
    CHECK_RC(stoat_txn_set(ro, "x", 1, "2", 1), STOAT_EREADONLY);
    CHECK_RC(stoat_txn_delete(ro, "x", 1), STOAT_EREADONLY);
    /* Writers go on while it is open, flushes too. */
    for (int i = 0; i < 2000; i++)
        put_s(db, i % 2 ? "x" : "y", i % 3 ? "2" : "3");
    REQUIRE_OK(stoat_flush(db));
    txn_get_num(rw, "x");
    txn_set_s(rw, "z", "1");
    CHECK_STR(txn_get_s(ro, "x", buf, sizeof(buf)), "1");
    CHECK_STR(txn_get_s(ro, "y", buf, sizeof(buf)), "1");
    CHECK_RC(stoat_txn_commit(ro), 0);
    CHECK_RC(stoat_txn_commit(rw), STOAT_ECONFLICT);
    stoat_txn_discard(ro);
    stoat_txn_discard(rw);
    CHECK_RC(stoat_txn_begin(db, 4, &ro), STOAT_EINVAL);
    CHECK(ro == NULL);
    REQUIRE_OK(stoat_close(db));
}

/* ---- limits ------------------------------------------------------------- */

static void test_txn_too_big_entries(void)
{
    stoat_options o;
    stoat_db *db;
    stoat_txn *t;
    char k[16], buf[32];

    stoat_options_init(&o);
    o.max_txn_entries = 10;
    db = open_named("db", &o);
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        txn_set_s(t, k, "v");
    }
    CHECK_RC(stoat_txn_set(t, "k10", 3, "v", 1), STOAT_ETOOBIG);
    CHECK(strstr(stoat_errmsg(db), "too big") != NULL);
    CHECK(strstr(stoat_errmsg(db), "max_txn_entries") != NULL);
    CHECK_RC(stoat_txn_delete(t, "k11", 3), STOAT_ETOOBIG);
    CHECK_STR(db_get_s(db, "k0", buf, sizeof(buf)), ABSENT);   /* nothing written */
    /* Rewriting a key it holds does not grow it. */
    txn_set_s(t, "k0", "again");
    REQUIRE_OK(stoat_txn_delete(t, "k1", 2));
    CHECK_STR(txn_get_s(t, "k10", buf, sizeof(buf)), ABSENT);
    stoat_txn_discard(t);
    CHECK_STR(db_get_s(db, "k0", buf, sizeof(buf)), ABSENT);
    CHECK(count_entries(db, NULL) == 0);
    REQUIRE_OK(stoat_close(db));
}

static void test_txn_too_big_bytes(void)
{
    static char big[300 << 10];
    stoat_options o;
    stoat_db *db;
    stoat_txn *t;
    char buf[32];

    memset(big, 'b', sizeof(big));
    stoat_options_init(&o);
    o.max_txn_bytes = 1000;
    db = open_named("db", &o);
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    REQUIRE_OK(stoat_txn_set(t, "big", 3, big, 990));           /* 993 bytes */
    CHECK_RC(stoat_txn_set(t, "x", 1, "0123456789", 10), STOAT_ETOOBIG);
    CHECK(strstr(stoat_errmsg(db), "max_txn_bytes") != NULL);
    REQUIRE_OK(stoat_txn_set(t, "big", 3, big, 500));           /* shrinks it */
    REQUIRE_OK(stoat_txn_set(t, "x", 1, "0123456789", 10));
    REQUIRE_OK(stoat_txn_commit(t));
    stoat_txn_discard(t);
    CHECK_STR(db_get_s(db, "x", buf, sizeof(buf)), "0123456789");
    REQUIRE_OK(stoat_close(db));
    /* The default: a quarter of the memtable. */
    stoat_options_init(&o);
    o.memtable_size = 1 << 20;
    db = open_named("db2", &o);
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    REQUIRE_OK(stoat_txn_set(t, "a", 1, big, 200 << 10));
    CHECK_RC(stoat_txn_set(t, "b", 1, big, 60 << 10), STOAT_ETOOBIG);
    REQUIRE_OK(stoat_txn_set(t, "b", 1, big, 50 << 10));
    stoat_txn_discard(t);
    CHECK(count_entries(db, NULL) == 0);
    REQUIRE_OK(stoat_close(db));
}

/* ---- TTL ---------------------------------------------------------------- */

/* The keys an all-versions scan lists, as "key@deleted " words. */
static const char *all_versions_keys(stoat_db *db, char *out, size_t cap)
{
    stoat_iter_options o = {.all_versions = 1};
    stoat_iter *it;
    size_t len = 0;

    out[0] = '\0';
    REQUIRE_OK(stoat_iter_open(db, &o, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    while (stoat_iter_valid(it)) {
        const void *k;
        size_t klen;
        int del = -1;

        REQUIRE_OK(stoat_iter_key(it, &k, &klen));
        REQUIRE_OK(stoat_iter_meta(it, NULL, NULL, NULL, &del));
        len += (size_t)snprintf(out + len, cap - len, "%.*s%s ", (int)klen, (const char *)k,
                                del ? "@del" : "");
        REQUIRE(len < cap);
        REQUIRE_OK(stoat_iter_next(it));
    }
    stoat_iter_close(it);
    return out;
}

/* Writes the TTL test's keys; returns the expiry of the short-lived ones. */
static uint64_t ttl_write(stoat_db *db)
{
    uint64_t t0 = (uint64_t)time(NULL), exp = 0;
    stoat_batch *b;
    stoat_txn *t;
    const void *v;
    size_t vlen;
    uint8_t um = 0;

    put_s(db, "shadowed", "old");
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    REQUIRE_OK(stoat_txn_set_ex(t, "t:sst", 5, "1", 1, 1, 0));
    REQUIRE_OK(stoat_txn_set_ex(t, "shadowed", 8, "new", 3, 1, 0));
    REQUIRE_OK(stoat_txn_set_ex(t, "forever", 7, "1", 1, 0, 0));
    REQUIRE_OK(stoat_txn_commit(t));
    stoat_txn_discard(t);
    REQUIRE_OK(stoat_flush(db));
    REQUIRE_OK(stoat_batch_new(db, &b));
    REQUIRE_OK(stoat_batch_set_ex(b, "t:mem", 5, "1", 1, 1, 0));
    REQUIRE_OK(stoat_batch_set_ex(b, "t:hour", 6, "1", 1, 3600, 9));
    REQUIRE_OK(stoat_batch_commit(b));
    stoat_batch_free(b);
    REQUIRE_OK(stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &t));
    REQUIRE_OK(stoat_txn_get_meta(t, "t:hour", 6, &v, &vlen, NULL, &exp, &um));
    CHECK(um == 9 && exp >= t0 + 3600 && exp <= (uint64_t)time(NULL) + 3600);
    REQUIRE_OK(stoat_txn_get_meta(t, "forever", 7, &v, &vlen, NULL, &exp, NULL));
    CHECK(exp == 0);
    stoat_txn_discard(t);
    return t0 + 1;
}

static void test_txn_ttl(void)
{
    stoat_db *db = open_default();
    stoat_iter *it;
    stoat_txn *t;
    const void *v;
    size_t vlen;
    char buf[512];
    uint64_t exp;

    exp = ttl_write(db);
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    walk(it, 1, buf, sizeof(buf));
    if ((uint64_t)time(NULL) < exp)    /* not yet expired (unless the clock ticked) */
        CHECK_STR(buf, "forever=1 shadowed=new t:hour=1 t:mem=1 t:sst=1 ");
    stoat_iter_close(it);
    /* A pending write with a TTL expires inside its transaction too. */
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    REQUIRE_OK(stoat_txn_set_ex(t, "t:pending", 9, "1", 1, 1, 0));
    REQUIRE_OK(stoat_txn_get_meta(t, "t:pending", 9, &v, &vlen, NULL, &exp, NULL));
    while ((uint64_t)time(NULL) < exp)  /* the latest expiry of all */
        usleep(50 * 1000);
    CHECK_STR(txn_get_s(t, "t:pending", buf, sizeof(buf)), ABSENT);
    CHECK_STR(txn_get_s(t, "t:sst", buf, sizeof(buf)), ABSENT);
    CHECK_STR(txn_get_s(t, "shadowed", buf, sizeof(buf)), ABSENT);
    stoat_txn_discard(t);
    CHECK_STR(db_get_s(db, "t:mem", buf, sizeof(buf)), ABSENT);
    CHECK_STR(db_get_s(db, "shadowed", buf, sizeof(buf)), ABSENT);   /* "old" stays hidden */
    CHECK_STR(db_get_s(db, "t:hour", buf, sizeof(buf)), "1");
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    CHECK_STR(walk(it, 1, buf, sizeof(buf)), "forever=1 t:hour=1 ");
    REQUIRE_OK(stoat_iter_seek_last(it));
    CHECK_STR(walk(it, -1, buf, sizeof(buf)), "t:hour=1 forever=1 ");
    stoat_iter_close(it);
    /* Still stored until compaction drops them. */
    CHECK_STR(all_versions_keys(db, buf, sizeof(buf)),
              "forever shadowed shadowed t:hour t:mem t:sst ");
    REQUIRE_OK(stoat_flatten(db));
    CHECK_STR(all_versions_keys(db, buf, sizeof(buf)), "forever t:hour ");
    REQUIRE_OK(stoat_close(db));
}

/* ---- versions ----------------------------------------------------------- */

/* What a snapshot at version rv reads for key, into out. */
static const char *get_at(stoat_db *db, uint64_t rv, const char *key, char *out, size_t cap)
{
    stoat_txn *t;
    const char *s;

    REQUIRE_OK(stoat_txn_begin_at(db, rv, &t));
    CHECK(stoat_txn_read_version(t) == rv);
    s = txn_get_s(t, key, out, cap);
    stoat_txn_discard(t);
    return s;
}

/* The versions of key an all-versions scan lists, as "value@version ". */
static const char *versions_of(stoat_db *db, const char *key, int dir, char *out, size_t cap)
{
    stoat_iter_options o = {.prefix = key, .prefix_len = strlen(key), .all_versions = 1};
    stoat_iter *it;
    size_t len = 0;

    out[0] = '\0';
    REQUIRE_OK(stoat_iter_open(db, &o, &it));
    REQUIRE_OK(dir > 0 ? stoat_iter_seek_first(it) : stoat_iter_seek_last(it));
    while (stoat_iter_valid(it)) {
        const void *v;
        size_t vlen;
        uint64_t ver = 0;
        int del = 0;

        REQUIRE_OK(stoat_iter_value(it, &v, &vlen));
        REQUIRE_OK(stoat_iter_meta(it, &ver, NULL, NULL, &del));
        len += (size_t)snprintf(out + len, cap - len, "%.*s@%llu ", del ? 3 : (int)vlen,
                                del ? "DEL" : (const char *)v, (unsigned long long)ver);
        REQUIRE(len < cap);
        REQUIRE_OK(dir > 0 ? stoat_iter_next(it) : stoat_iter_prev(it));
    }
    CHECK_RC(stoat_iter_status(it), 0);
    stoat_iter_close(it);
    return out;
}

static void test_txn_read_at_old_version(void)
{
    stoat_options o;
    stoat_db *db;
    stoat_txn *old;
    uint64_t ver[8];
    char buf[256], want[256];

    stoat_options_init(&o);
    o.num_versions_to_keep = 3;
    db = open_named("db", &o);
    put_s(db, "first", "1");    /* so that the version before v1 exists */
    for (int i = 1; i <= 6; i++) {
        snprintf(buf, sizeof(buf), "v%d", i);
        put_s(db, "v", buf);
        ver[i] = last_version(db);
    }
    for (int i = 1; i <= 6; i++) {
        snprintf(want, sizeof(want), "v%d", i);
        CHECK_STR(get_at(db, ver[i], "v", buf, sizeof(buf)), want);
    }
    CHECK_STR(get_at(db, ver[1] - 1, "v", buf, sizeof(buf)), ABSENT);
    CHECK_RC(stoat_txn_begin_at(db, last_version(db) + 1, &old), STOAT_EINVAL);
    CHECK_RC(stoat_txn_begin_at(db, 0, &old), STOAT_EINVAL);
    /* An open snapshot at v1 keeps everything it and later readers need. */
    REQUIRE_OK(stoat_txn_begin_at(db, ver[1], &old));
    REQUIRE_OK(stoat_flatten(db));
    CHECK_STR(txn_get_s(old, "v", buf, sizeof(buf)), "v1");
    CHECK_STR(get_at(db, ver[2], "v", buf, sizeof(buf)), "v2");
    stoat_txn_discard(old);
    /* Without it, the newest three versions stay and the rest go. */
    put_s(db, "v", "v7");
    ver[7] = last_version(db);
    REQUIRE_OK(stoat_flatten(db));
    CHECK_STR(get_at(db, ver[7], "v", buf, sizeof(buf)), "v7");
    CHECK_STR(get_at(db, ver[6], "v", buf, sizeof(buf)), "v6");
    CHECK_STR(get_at(db, ver[5], "v", buf, sizeof(buf)), "v5");
    CHECK_STR(get_at(db, ver[4], "v", buf, sizeof(buf)), ABSENT);
    CHECK_STR(get_at(db, ver[2], "v", buf, sizeof(buf)), ABSENT);
    snprintf(want, sizeof(want), "v7@%llu v6@%llu v5@%llu ", (unsigned long long)ver[7],
             (unsigned long long)ver[6], (unsigned long long)ver[5]);
    CHECK_STR(versions_of(db, "v", 1, buf, sizeof(buf)), want);
    REQUIRE_OK(stoat_close(db));
}

static void test_txn_iter_all_versions(void)
{
    stoat_db *db = open_default();
    uint64_t v1, v2, v3, v4;
    char buf[256], want[256];
    stoat_iter_options o = {.all_versions = 1};
    stoat_iter *it;
    stoat_txn *t;

    put_s(db, "a", "1");
    v1 = last_version(db);
    put_s(db, "a", "2");
    v2 = last_version(db);
    REQUIRE_OK(stoat_flush(db));
    REQUIRE_OK(stoat_delete(db, "a", 1));
    v3 = last_version(db);
    put_s(db, "a", "4");
    v4 = last_version(db);
    put_s(db, "b", "1");
    snprintf(want, sizeof(want), "4@%llu DEL@%llu 2@%llu 1@%llu ", (unsigned long long)v4,
             (unsigned long long)v3, (unsigned long long)v2, (unsigned long long)v1);
    CHECK_STR(versions_of(db, "a", 1, buf, sizeof(buf)), want);
    snprintf(want, sizeof(want), "1@%llu 2@%llu DEL@%llu 4@%llu ", (unsigned long long)v1,
             (unsigned long long)v2, (unsigned long long)v3, (unsigned long long)v4);
    CHECK_STR(versions_of(db, "a", -1, buf, sizeof(buf)), want);
    /* Within a snapshot at v2 only what existed then. */
    REQUIRE_OK(stoat_txn_begin_at(db, v2, &t));
    REQUIRE_OK(stoat_txn_iter_open(t, &o, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    CHECK_STR(walk(it, 1, buf, sizeof(buf)), "a=2 a=1 ");
    stoat_iter_close(it);
    stoat_txn_discard(t);
    REQUIRE_OK(stoat_close(db));
}

static void test_txn_iter_meta(void)
{
    stoat_db *db = open_default();
    stoat_iter *it;
    stoat_txn *t;
    uint64_t ver = 0, exp = 0, v_a;
    uint8_t um = 0;
    int del = -1;

    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    REQUIRE_OK(stoat_txn_set_ex(t, "a", 1, "x", 1, 3600, 42));
    REQUIRE_OK(stoat_txn_commit(t));
    stoat_txn_discard(t);
    v_a = last_version(db);
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    CHECK_RC(stoat_iter_meta(it, &ver, NULL, NULL, NULL), STOAT_EINVAL);   /* unpositioned */
    REQUIRE_OK(stoat_iter_seek_first(it));
    REQUIRE_OK(stoat_iter_meta(it, &ver, &exp, &um, &del));
    CHECK(ver == v_a && um == 42 && del == 0);
    CHECK(exp >= (uint64_t)time(NULL) + 3599 && exp <= (uint64_t)time(NULL) + 3600);
    REQUIRE_OK(stoat_iter_meta(it, NULL, NULL, NULL, NULL));
    stoat_iter_close(it);
    /* A transaction's own write: its user-meta and expiry. */
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    REQUIRE_OK(stoat_txn_set_ex(t, "b", 1, "y", 1, 0, 5));
    REQUIRE_OK(stoat_txn_iter_open(t, NULL, &it));
    REQUIRE_OK(stoat_iter_seek(it, "b", 1));
    REQUIRE(stoat_iter_valid(it));
    REQUIRE_OK(stoat_iter_meta(it, NULL, &exp, &um, &del));
    CHECK(exp == 0 && um == 5 && del == 0);
    stoat_iter_close(it);
    stoat_txn_discard(t);
    REQUIRE_OK(stoat_close(db));
}

/* ---- batches, drops, statistics ----------------------------------------- */

static void test_txn_batch_chunks(void)
{
    stoat_options o;
    stoat_db *db;
    stoat_batch *b;
    stoat_iter_options p = prefix_opts("k");
    uint64_t before;
    char k[16], buf[32];

    stoat_options_init(&o);
    o.max_txn_entries = 100;
    db = open_named("db", &o);
    put_s(db, "gone", "1");
    before = last_version(db);
    REQUIRE_OK(stoat_batch_new(db, &b));
    for (int i = 0; i < 1049; i++) {
        snprintf(k, sizeof(k), "k%04d", i);
        REQUIRE_OK(stoat_batch_set(b, k, 5, k, 5));
    }
    REQUIRE_OK(stoat_batch_delete(b, "gone", 4));
    CHECK(count_entries(db, &p) >= 1000);  /* full chunks went already */
    REQUIRE_OK(stoat_batch_commit(b));
    stoat_batch_free(b);
    CHECK(count_entries(db, &p) == 1049);
    CHECK(count_entries(db, NULL) == 1049);
    CHECK_STR(db_get_s(db, "k0777", buf, sizeof(buf)), "k0777");
    CHECK(last_version(db) - before >= 11);     /* at least ceil(1050 / 100) commits */
    CHECK_RC(stoat_batch_commit(NULL), STOAT_EINVAL);
    REQUIRE_OK(stoat_close(db));
}

static void test_txn_drop_prefix_and_all(void)
{
    stoat_db *db = open_default();
    stoat_iter_options a = prefix_opts("a:"), b = prefix_opts("b:");
    stoat_stats st;
    char k[16], buf[32];
    uint64_t tables = 0;

    for (int i = 0; i < 600; i++) {
        snprintf(k, sizeof(k), "%c:%03d", i % 2 ? 'b' : 'a', i / 2);
        put_s(db, k, "v");
        if (i == 300)
            REQUIRE_OK(stoat_flush(db));
    }
    REQUIRE_OK(stoat_drop_prefix(db, "a:", 2));
    CHECK(count_entries(db, &a) == 0);
    CHECK(count_entries(db, &b) == 300);
    CHECK_STR(db_get_s(db, "a:005", buf, sizeof(buf)), ABSENT);
    CHECK_STR(db_get_s(db, "b:005", buf, sizeof(buf)), "v");
    CHECK_RC(stoat_drop_prefix(db, NULL, 2), STOAT_EINVAL);
    REQUIRE_OK(stoat_drop_all(db));
    CHECK(count_entries(db, NULL) == 0);
    /* With no reader left, compaction frees all of it. */
    REQUIRE_OK(stoat_flatten(db));
    st = stats_of(db);
    for (int l = 0; l < st.num_levels; l++)
        tables += st.level_tables[l];
    CHECK(tables == 0);
    put_s(db, "a:001", "back");
    CHECK_STR(db_get_s(db, "a:001", buf, sizeof(buf)), "back");
    REQUIRE_OK(stoat_close(db));
}

static void test_txn_stats(void)
{
    stoat_options o;
    stoat_db *db;
    stoat_stats st;
    stoat_txn *t, *u;
    char k[16];
    int last;

    dbu_small_options(&o);
    db = open_named("db", &o);
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof(k), "k%05d", i);
        put_s(db, k, "0123456789012345678901234567890123456789");
    }
    put_s(db, "c1", "0");
    put_s(db, "c2", "0");
    for (int i = 0; i < 5; i++) {
        REQUIRE_OK(stoat_txn_begin(db, 0, &t));
        txn_set_num(t, "c1", txn_get_num(t, "c1") + 1);
        REQUIRE_OK(stoat_txn_commit(t));
        stoat_txn_discard(t);
    }
    for (int i = 0; i < 2; i++) {
        REQUIRE_OK(stoat_txn_begin(db, 0, &t));
        REQUIRE_OK(stoat_txn_begin(db, 0, &u));
        txn_set_num(t, "c2", txn_get_num(t, "c2") + 1);
        txn_set_num(u, "c2", txn_get_num(u, "c2") + 1);
        REQUIRE_OK(stoat_txn_commit(u));
        CHECK_RC(stoat_txn_commit(t), STOAT_ECONFLICT);
        stoat_txn_discard(t);
        stoat_txn_discard(u);
    }
    REQUIRE_OK(stoat_flatten(db));
    st = stats_of(db);
    last = st.num_levels - 1;
    CHECK(st.num_levels == o.num_levels);
    for (int l = 0; l < last; l++)
        CHECK(st.level_tables[l] == 0 && st.level_bytes[l] == 0);
    CHECK(st.level_tables[last] >= 1 && st.level_bytes[last] > 0);
    CHECK(st.memtables >= 1);
    CHECK(st.last_version >= 3009);     /* one version per commit */
    CHECK(st.flushes >= 2 && st.compactions >= 1);
    CHECK(st.block_cache_capacity == o.cache_size);
    CHECK(st.block_cache_bytes <= st.block_cache_capacity);
    CHECK(st.open_files <= (uint64_t)o.max_open_files);
    CHECK(st.txn_commits == 7 && st.txn_conflicts == 2);
    CHECK(count_entries(db, NULL) == 3002);
    st = stats_of(db);
    CHECK(st.block_cache_hits + st.block_cache_misses > 0);
    REQUIRE_OK(stoat_close(db));
}

/* ---- misuse ------------------------------------------------------------- */

static void test_txn_commit_after_commit(void)
{
    stoat_db *db = open_default();
    stoat_txn *t;
    stoat_iter *it = (stoat_iter *)(uintptr_t)1;
    const void *v;
    size_t vlen;
    char buf[32];

    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    txn_set_s(t, "a", "1");
    REQUIRE_OK(stoat_txn_commit(t));
    CHECK_RC(stoat_txn_commit(t), STOAT_EINVAL);
    CHECK_RC(stoat_txn_set(t, "b", 1, "1", 1), STOAT_EINVAL);
    CHECK_RC(stoat_txn_get(t, "a", 1, &v, &vlen), STOAT_EINVAL);
    CHECK_RC(stoat_txn_iter_open(t, NULL, &it), STOAT_EINVAL);
    CHECK(it == NULL);
    stoat_txn_discard(t);
    CHECK_STR(db_get_s(db, "a", buf, sizeof(buf)), "1");
    CHECK_STR(db_get_s(db, "b", buf, sizeof(buf)), ABSENT);
    /* After a conflict, too. */
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    txn_get_s(t, "a", buf, sizeof(buf));
    txn_set_s(t, "b", "1");
    put_s(db, "a", "2");
    CHECK_RC(stoat_txn_commit(t), STOAT_ECONFLICT);
    CHECK_RC(stoat_txn_commit(t), STOAT_EINVAL);
    stoat_txn_discard(t);
    CHECK_STR(db_get_s(db, "b", buf, sizeof(buf)), ABSENT);
    stoat_txn_discard(NULL);
    CHECK_RC(stoat_txn_commit(NULL), STOAT_EINVAL);
    REQUIRE_OK(stoat_close(db));
}

static void test_txn_discard_with_open_iterator(void)
{
    stoat_db *db = open_default();
    stoat_txn *t;
    stoat_iter *it, *it2;
    char buf[64];

    put_s(db, "a", "1");
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    txn_set_s(t, "b", "2");
    REQUIRE_OK(stoat_txn_iter_open(t, NULL, &it));
    REQUIRE_OK(stoat_txn_iter_open(t, NULL, &it2));
    REQUIRE_OK(stoat_iter_seek_first(it));
    CHECK_RC(stoat_txn_commit(t), STOAT_EINVAL);    /* iterators still open */
    stoat_iter_close(it2);
    stoat_txn_discard(t);
    /* The iterator outlives its transaction: it may still be read and closed. */
    CHECK(stoat_iter_valid(it));
    CHECK_STR(walk(it, 1, buf, sizeof(buf)), "a=1 b=2 ");
    stoat_iter_close(it);
    CHECK_STR(db_get_s(db, "b", buf, sizeof(buf)), ABSENT);
    REQUIRE_OK(stoat_close(db));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_txn_write_skew);
    TEST_RUN(test_txn_write_skew_without_detection);
    TEST_RUN(test_txn_lost_update);
    TEST_RUN(test_txn_lost_update_threads);
    TEST_RUN(test_txn_conflict_with_concurrent_puts);
    TEST_RUN(test_txn_read_own_writes_get);
    TEST_RUN(test_txn_read_own_writes_iter);
    TEST_RUN(test_txn_phantom);
    TEST_RUN(test_txn_read_only_never_conflicts);
    TEST_RUN(test_txn_too_big_entries);
    TEST_RUN(test_txn_too_big_bytes);
    TEST_RUN(test_txn_ttl);
    TEST_RUN(test_txn_read_at_old_version);
    TEST_RUN(test_txn_iter_all_versions);
    TEST_RUN(test_txn_iter_meta);
    TEST_RUN(test_txn_batch_chunks);
    TEST_RUN(test_txn_drop_prefix_and_all);
    TEST_RUN(test_txn_stats);
    TEST_RUN(test_txn_commit_after_commit);
    TEST_RUN(test_txn_discard_with_open_iterator);
    return test_summary();
}
