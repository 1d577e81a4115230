/*
 * txn_bank_test.c - the bank test: serializable transactions under load.
 *
 * 10,000 accounts start with 1,000 each. Eight threads move random amounts
 * between random accounts in read-write transactions, reading the
 * balances by point gets or by iterating a small window of accounts
 * (forwards or backwards), retrying every conflict. An auditor thread
 * meanwhile sums all accounts in one snapshot, over and over: through a
 * read-only transaction's iterator, through its gets, or through a plain
 * iterator. Invariants: every snapshot holds every account, no balance is
 * negative, and the total never changes. A small memtable makes flushes
 * and compactions run underneath.
 *
 * It runs for 30 s, or STOAT_BANK_SECONDS (use a few seconds under
 * sanitizers), then prints transfers per second and the conflict rate.
 * Worker threads never touch the harness (CHECK/REQUIRE are for the main
 * thread): they count violations and errors in atomics and keep the first
 * message, which the main thread reports.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "db_util.h"
#include "test.h"

#define ACCOUNTS 10000
#define THREADS 8
#define INITIAL 1000
#define WINDOW 16               /* accounts one iterator transfer reads */
#define TOTAL ((int64_t)ACCOUNTS * INITIAL)
#define KEY_LEN 10              /* "acct:%05d" */

typedef struct bank {
    stoat_db *db;
    atomic_int stop;
    atomic_long transfers;      /* committed transfers */
    atomic_long conflicts;      /* commits refused with ECONFLICT */
    atomic_long audits;
    atomic_long violations;     /* broken invariants */
    atomic_long errors;         /* unexpected return codes */
    pthread_mutex_t msg_mu;
    char first_msg[512];        /* the first violation or error */
} bank;

typedef struct worker {
    bank *b;
    uint64_t seed;
} worker;

/* Records a violation (violation = 1) or an unexpected error. */
static void bank_report(bank *b, int violation, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void bank_report(bank *b, int violation, const char *fmt, ...)
{
    va_list ap;

    atomic_fetch_add(violation ? &b->violations : &b->errors, 1);
    pthread_mutex_lock(&b->msg_mu);
    if (b->first_msg[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(b->first_msg, sizeof(b->first_msg), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&b->msg_mu);
}

static void key_of(int i, char out[KEY_LEN + 1])
{
    snprintf(out, KEY_LEN + 1, "acct:%05d", i);
}

static void encode_balance(int64_t v, char out[8])
{
    for (int i = 0; i < 8; i++)
        out[i] = (char)((uint64_t)v >> (8 * i));
}

/* The balance in (p, len), or -1 with a violation for a malformed value. */
static int64_t decode_balance(bank *b, const void *p, size_t len)
{
    const unsigned char *u = p;
    uint64_t v = 0;

    if (len != 8) {
        bank_report(b, 1, "balance of %zu bytes", len);
        return -1;
    }
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)u[i] << (8 * i);
    return (int64_t)v;
}

/* ---- transfers ---------------------------------------------------------- */

/* Reads accounts a and b by get into bal[0], bal[1]. */
static int read_by_get(bank *b, stoat_txn *t, const int acct[2], int64_t bal[2])
{
    for (int i = 0; i < 2; i++) {
        char k[KEY_LEN + 1];
        const void *v;
        size_t vlen;
        int rc;

        key_of(acct[i], k);
        if ((rc = stoat_txn_get(t, k, KEY_LEN, &v, &vlen)) != 0) {
            bank_report(b, rc == STOAT_ENOTFOUND, "get %s: %s", k, stoat_strerror(rc));
            return rc;
        }
        bal[i] = decode_balance(b, v, vlen);
    }
    return 0;
}

/*
 * Reads the WINDOW accounts from `first` by iterator, forwards or
 * backwards, into win[]; checks the window is complete.
 */
static int read_window(bank *b, stoat_txn *t, int first, int backward, int64_t win[WINDOW])
{
    char lo[KEY_LEN + 1], hi[KEY_LEN + 1];
    stoat_iter_options o = {.lower = lo, .lower_len = KEY_LEN, .upper = hi, .upper_len = KEY_LEN};
    stoat_iter *it;
    int n = 0, rc;

    key_of(first, lo);
    key_of(first + WINDOW, hi);
    if ((rc = stoat_txn_iter_open(t, &o, &it)) != 0) {
        bank_report(b, 0, "txn iter open: %s", stoat_strerror(rc));
        return rc;
    }
    rc = backward ? stoat_iter_seek_last(it) : stoat_iter_seek_first(it);
    for (; rc == 0 && stoat_iter_valid(it) && n < WINDOW; n++) {
        const void *k, *v;
        size_t klen, vlen;
        int i = backward ? WINDOW - 1 - n : n;
        char want[KEY_LEN + 1];

        key_of(first + i, want);
        if ((rc = stoat_iter_key(it, &k, &klen)) != 0 || (rc = stoat_iter_value(it, &v, &vlen)) != 0)
            break;
        if (klen != KEY_LEN || memcmp(k, want, KEY_LEN) != 0)
            bank_report(b, 1, "window at %s: found key %.*s", want, (int)klen, (const char *)k);
        win[i] = decode_balance(b, v, vlen);
        rc = backward ? stoat_iter_prev(it) : stoat_iter_next(it);
    }
    if (rc == 0)
        rc = stoat_iter_status(it);
    if (rc == 0 && (n != WINDOW || stoat_iter_valid(it)))
        bank_report(b, 1, "window from %d: %d accounts", first, n + stoat_iter_valid(it));
    else if (rc != 0)
        bank_report(b, 0, "window from %d: %s", first, stoat_strerror(rc));
    stoat_iter_close(it);
    return rc;
}

/* Writes the two new balances after moving up to `want` from acct[0]. */
static int move_money(bank *b, stoat_txn *t, const int acct[2], const int64_t bal[2], int64_t want)
{
    int64_t amount = want < bal[0] ? want : bal[0];
    char k[KEY_LEN + 1], v[8];
    int rc = 0;

    if (bal[0] < 0 || bal[1] < 0) {
        bank_report(b, 1, "negative balance read: %lld, %lld", (long long)bal[0],
                    (long long)bal[1]);
        return STOAT_ECORRUPT;
    }
    for (int i = 0; i < 2 && rc == 0; i++) {
        key_of(acct[i], k);
        encode_balance(i == 0 ? bal[0] - amount : bal[1] + amount, v);
        rc = stoat_txn_set(t, k, KEY_LEN, v, 8);
    }
    if (rc != 0)
        bank_report(b, 0, "set: %s", stoat_strerror(rc));
    return rc;
}

/*
 * One transfer attempt in one transaction: mode 0 reads the two accounts
 * by get, modes 1 and 2 read a window around them by iterator (forwards,
 * backwards). Returns the commit's code.
 */
static int transfer_once(bank *b, int mode, int first, const int off[2], int64_t amount)
{
    int acct[2] = {first + off[0], first + off[1]};
    int64_t bal[2], win[WINDOW];
    stoat_txn *t;
    int rc;

    if ((rc = stoat_txn_begin(b->db, 0, &t)) != 0) {
        bank_report(b, 0, "txn begin: %s", stoat_strerror(rc));
        return rc;
    }
    if (mode == 0) {
        rc = read_by_get(b, t, acct, bal);
    } else if ((rc = read_window(b, t, first, mode == 2, win)) == 0) {
        bal[0] = win[off[0]];
        bal[1] = win[off[1]];
    }
    if (rc == 0 && (rc = move_money(b, t, acct, bal, amount)) == 0) {
        rc = stoat_txn_commit(t);
        if (rc != 0 && rc != STOAT_ECONFLICT)
            bank_report(b, 0, "commit: %s: %s", stoat_strerror(rc), stoat_errmsg(b->db));
    }
    stoat_txn_discard(t);
    return rc;
}

static void *transfer_main(void *arg)
{
    worker *w = arg;
    bank *b = w->b;

    while (!atomic_load(&b->stop)) {
        int mode = (int)(test_rand(&w->seed) % 3);
        int first = (int)(test_rand(&w->seed) % (ACCOUNTS - WINDOW + 1));
        int off[2] = {(int)(test_rand(&w->seed) % WINDOW), 0};
        int64_t amount = 1 + (int64_t)(test_rand(&w->seed) % 100);
        int rc;

        off[1] = (off[0] + 1 + (int)(test_rand(&w->seed) % (WINDOW - 1))) % WINDOW;
        while ((rc = transfer_once(b, mode, first, off, amount)) == STOAT_ECONFLICT) {
            atomic_fetch_add(&b->conflicts, 1);
            if (atomic_load(&b->stop))
                break;
        }
        if (rc == 0)
            atomic_fetch_add(&b->transfers, 1);
        else if (rc != STOAT_ECONFLICT)
            break;      /* reported; do not spin on a broken database */
    }
    return NULL;
}

/* ---- audits ------------------------------------------------------------- */

/* Adds one account's balance to the audit, checking it. */
static void audit_add(bank *b, const void *v, size_t vlen, int64_t *sum, int *n)
{
    int64_t bal = decode_balance(b, v, vlen);

    if (bal < 0)
        bank_report(b, 1, "audit: negative balance %lld", (long long)bal);
    *sum += bal;
    (*n)++;
}

/* Sums every account by iterator (a plain one when t is NULL). */
static int audit_by_iter(bank *b, stoat_txn *t, int64_t *sum, int *n)
{
    stoat_iter_options o = {.prefix = "acct:", .prefix_len = 5};
    stoat_iter *it;
    int rc;

    rc = t ? stoat_txn_iter_open(t, &o, &it) : stoat_iter_open(b->db, &o, &it);
    if (rc != 0)
        return rc;
    for (rc = stoat_iter_seek_first(it); rc == 0 && stoat_iter_valid(it);
         rc = stoat_iter_next(it)) {
        const void *v;
        size_t vlen;

        if ((rc = stoat_iter_value(it, &v, &vlen)) != 0)
            break;
        audit_add(b, v, vlen, sum, n);
    }
    if (rc == 0)
        rc = stoat_iter_status(it);
    stoat_iter_close(it);
    return rc;
}

static int audit_by_get(bank *b, stoat_txn *t, int64_t *sum, int *n)
{
    for (int i = 0; i < ACCOUNTS; i++) {
        char k[KEY_LEN + 1];
        const void *v;
        size_t vlen;
        int rc;

        key_of(i, k);
        if ((rc = stoat_txn_get(t, k, KEY_LEN, &v, &vlen)) == STOAT_ENOTFOUND)
            continue;   /* shows as a missing account */
        if (rc != 0)
            return rc;
        audit_add(b, v, vlen, sum, n);
    }
    return 0;
}

/* One audit: mode 0 txn iterator, 1 txn gets, 2 plain iterator. */
static void audit_once(bank *b, int mode)
{
    stoat_txn *t = NULL;
    int64_t sum = 0;
    int n = 0, rc;

    if (mode != 2 && (rc = stoat_txn_begin(b->db, STOAT_TXN_READ_ONLY, &t)) != 0) {
        bank_report(b, 0, "audit begin: %s", stoat_strerror(rc));
        return;
    }
    rc = mode == 1 ? audit_by_get(b, t, &sum, &n) : audit_by_iter(b, t, &sum, &n);
    if (rc == 0 && t != NULL)
        rc = stoat_txn_commit(t);   /* read-only: never a conflict */
    stoat_txn_discard(t);
    if (rc != 0)
        bank_report(b, 0, "audit (mode %d): %s", mode, stoat_strerror(rc));
    else if (n != ACCOUNTS || sum != TOTAL)
        bank_report(b, 1, "audit (mode %d): %d accounts, total %lld, want %d and %lld", mode, n,
                    (long long)sum, ACCOUNTS, (long long)TOTAL);
    atomic_fetch_add(&b->audits, 1);
}

static void *audit_main(void *arg)
{
    bank *b = arg;

    for (unsigned i = 0; !atomic_load(&b->stop); i++)
        audit_once(b, i % 4 == 3 ? 1 : (int)(i % 4) / 2 * 2);  /* iter, iter, plain, gets */
    return NULL;
}

/* ---- the test ----------------------------------------------------------- */

static double bank_seconds(void)
{
    const char *s = getenv("STOAT_BANK_SECONDS");
    double secs = s && *s ? atof(s) : 30.0;

    return secs > 0 ? secs : 30.0;
}

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static stoat_db *bank_open(const char *dir)
{
    stoat_options o;
    stoat_db *db;

    stoat_options_init(&o);
    o.create_if_missing = 1;
    o.memtable_size = 512 << 10;    /* flushes and compactions during the run */
    o.l0_compaction_trigger = 2;    /* ... even in the slow sanitizer builds */
    o.table_size = 1 << 20;
    o.base_level_size = 4 << 20;
    o.cache_size = 8 << 20;
    REQUIRE_OK(stoat_open(dir, &o, &db));
    return db;
}

static void bank_load(stoat_db *db)
{
    stoat_batch *batch;
    char k[KEY_LEN + 1], v[8];

    encode_balance(INITIAL, v);
    REQUIRE_OK(stoat_batch_new(db, &batch));
    for (int i = 0; i < ACCOUNTS; i++) {
        key_of(i, k);
        REQUIRE_OK(stoat_batch_set(batch, k, KEY_LEN, v, 8));
    }
    REQUIRE_OK(stoat_batch_commit(batch));
    stoat_batch_free(batch);
}

/* Runs the workers and the auditor for secs; returns the elapsed time. */
static double bank_run(bank *b, double secs)
{
    pthread_t th[THREADS], auditor;
    worker w[THREADS];
    double t0 = now_seconds(), t1;

    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){b, 0x5eed0000u + (uint64_t)i};
        REQUIRE(pthread_create(&th[i], NULL, transfer_main, &w[i]) == 0);
    }
    REQUIRE(pthread_create(&auditor, NULL, audit_main, b) == 0);
    while (now_seconds() - t0 < secs && atomic_load(&b->errors) == 0 &&
           atomic_load(&b->violations) == 0)
        usleep(20 * 1000);
    atomic_store(&b->stop, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_join(auditor, NULL);
    t1 = now_seconds();
    return t1 - t0;
}

static void bank_print(bank *b, const stoat_stats *st, double secs)
{
    long transfers = atomic_load(&b->transfers), conflicts = atomic_load(&b->conflicts);
    long attempts = transfers + conflicts;

    printf("bank: %d threads, %.1f s: %ld transfers (%.0f/s), %ld conflicts (%.1f%% of "
           "commits), %ld audits\n",
           THREADS, secs, transfers, (double)transfers / secs, conflicts,
           attempts ? 100.0 * (double)conflicts / (double)attempts : 0.0,
           atomic_load(&b->audits));
    printf("bank: %llu flushes, %llu compactions, tables per level:",
           (unsigned long long)st->flushes, (unsigned long long)st->compactions);
    for (int l = 0; l < st->num_levels && l < STOAT_STATS_LEVELS; l++)
        printf(" %llu", (unsigned long long)st->level_tables[l]);
    printf("\n");
    fflush(stdout);
}

static void test_txn_bank_transfers(void)
{
    char dir[DBU_PATH_MAX];
    bank b = {0};
    stoat_stats st;
    uint64_t last;
    double secs = bank_seconds(), took;

    pthread_mutex_init(&b.msg_mu, NULL);
    dbu_path(dir, test_tmpdir(), "db");
    b.db = bank_open(dir);
    bank_load(b.db);
    took = bank_run(&b, secs);
    if (b.first_msg[0])
        test_fail(__FILE__, __LINE__, "first problem: %s", b.first_msg);
    CHECK(atomic_load(&b.violations) == 0);
    CHECK(atomic_load(&b.errors) == 0);
    CHECK(atomic_load(&b.transfers) > 0 && atomic_load(&b.audits) > 0);
    REQUIRE_OK(stoat_stats_get(b.db, &st));
    bank_print(&b, &st, took);
    CHECK(st.txn_conflicts == (uint64_t)atomic_load(&b.conflicts));
    CHECK(st.txn_commits == (uint64_t)atomic_load(&b.transfers));
    if (secs >= 5)
        CHECK(st.flushes > 0);
    /* Once more after the storm, and after a reopen. */
    audit_once(&b, 0);
    audit_once(&b, 1);
    last = st.last_version;
    REQUIRE_OK(stoat_close(b.db));
    b.db = bank_open(dir);
    REQUIRE_OK(stoat_stats_get(b.db, &st));
    CHECK(st.last_version == last);     /* versions continue across a restart */
    audit_once(&b, 0);
    audit_once(&b, 2);
    CHECK(atomic_load(&b.violations) == 0);
    CHECK(atomic_load(&b.errors) == 0);
    if (b.first_msg[0] && test_failed_now == 0)
        test_fail(__FILE__, __LINE__, "after reopen: %s", b.first_msg);
    REQUIRE_OK(stoat_close(b.db));
    pthread_mutex_destroy(&b.msg_mu);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_txn_bank_transfers);
    return test_summary();
}
