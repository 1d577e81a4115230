/*
 * txn_test.c - transaction isolation through the public API:
 * serializability (write skew over 100,000 interleaved attempts, lost
 * updates, conflicts with concurrent plain puts, phantoms in iterated
 * ranges and point reads of absent keys), read-your-own-writes for gets
 * and for iterators in both directions, read-only transactions. The rest
 * of the transaction API is txn_api_test.c; helpers in txn_util.h.
 *
 * Each test opens its own database in a fresh directory. The tests with
 * threads (lost update, concurrent puts) keep the harness's CHECK/REQUIRE
 * on the main thread: workers only count.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "db_util.h"
#include "test.h"
#include "txn_util.h"

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
    return test_summary();
}
