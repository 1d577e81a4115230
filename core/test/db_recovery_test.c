/*
 * db_recovery_test.c - power loss and failed writes, simulated with the
 * fault env (env.h): what was durable survives, nothing else appears.
 *
 * A run writes a random sequence of puts and deletes over a small key
 * space, recording every attempted operation in a history. "Durable" is
 * the length of the history prefix that must survive: every write
 * acknowledged under STOAT_SYNC_COMMIT, or every write before the last
 * successful stoat_sync under STOAT_SYNC_NONE. At a random point the disk
 * "loses power" (env_fault_crash) or starts failing appends or syncs; the
 * run stops at the first failed call, closes, drops what was not synced
 * and reopens. The recovered database must then equal the history applied
 * up to some prefix p with durable <= p <= attempted: everything durable
 * is there, every value is one that was written (values carry their tag
 * and are checked byte for byte), and nothing newer shows without
 * everything older (recovery is a prefix: no holes).
 *
 * STOAT_SEED replays a run (the seed is printed); STOAT_RECOVERY_ITERS
 * sets the number of random runs (default 40, for slow sanitizer builds).
 */
#include <errno.h>
#include <time.h>

#include "db/db_env.h"
#include "db_util.h"
#include "support/env_fault.h"
#include "test.h"

#define RKEYS 300
#define RKEY_MAX 4096
#define ABSENT UINT64_MAX

typedef struct op {
    int key;
    uint64_t tag;           /* ABSENT: a delete */
} op;

typedef struct run {
    const char *dir;
    env *fault;
    stoat_options opts;
    stoat_db *db;
    op *ops;                /* attempted operations, in order */
    long n, cap;
    long durable;           /* ops[0..durable) must survive */
    size_t klen;            /* key length: "rNNN" padded with 'p' */
    uint64_t next_tag;
    uint64_t rng;
    char how[160];          /* what this cycle did, for failure messages */
} run;

static uint64_t rnd(run *r, uint64_t n)
{
    return test_rand(&r->rng) % n;
}

/* Key i of the run into out (r->klen bytes, at most RKEY_MAX). */
static void key_of(const run *r, int i, char *out)
{
    char head[8];

    snprintf(head, sizeof(head), "r%03u", (unsigned)i % 1000u);
    memcpy(out, head, 4);
    memset(out + 4, 'p', r->klen - 4);
}

/* A value is its tag (8 bytes) then tag-derived bytes: tag % 200 of them. */
static size_t value_of(uint64_t tag, char *out)
{
    size_t len = 8 + tag % 200;

    memcpy(out, &tag, 8);
    dbu_value(tag, out + 8, len - 8);
    return len;
}

/* The tag a stored value carries, or ABSENT if the value is not one we wrote. */
static uint64_t tag_of(const void *val, size_t vlen)
{
    char want[256];
    uint64_t tag;

    if (vlen < 8)
        return ABSENT;
    memcpy(&tag, val, 8);
    if (tag == ABSENT || value_of(tag, want) != vlen || memcmp(want, val, vlen) != 0)
        return ABSENT;
    return tag;
}

static void run_open(run *r, env *e)
{
    int rc = db_open_env(r->dir, &r->opts, e, &r->db);

    if (rc != 0)
        test_fail(__FILE__, __LINE__, "reopen of %s: %s: %s", r->dir, stoat_strerror(rc),
                  stoat_errmsg(NULL));
    REQUIRE(rc == 0);
}

/* Attempts one random write (or a flush); returns its rc. */
static int run_one_op(run *r)
{
    char k[RKEY_MAX], val[256];
    op o;
    int rc;

    /* Under SYNC_COMMIT runs are short (fsyncs): flush more often. */
    if (rnd(r, r->opts.sync == STOAT_SYNC_COMMIT ? 25 : 200) == 0)
        return stoat_flush(r->db);
    o.key = (int)rnd(r, RKEYS);
    o.tag = rnd(r, 5) == 0 ? ABSENT : ++r->next_tag;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 1024;
        r->ops = realloc(r->ops, sizeof(op) * (size_t)r->cap);
        REQUIRE(r->ops != NULL);
    }
    r->ops[r->n++] = o;
    key_of(r, o.key, k);
    if (o.tag == ABSENT)
        rc = stoat_delete(r->db, k, r->klen);
    else
        rc = stoat_put(r->db, k, r->klen, val, value_of(o.tag, val));
    if (rc == 0 && r->opts.sync == STOAT_SYNC_COMMIT)
        r->durable = r->n;
    return rc;
}

/*
 * Writes until `ops` operations are done or one fails; under SYNC_NONE,
 * syncs now and then. Returns 0 or the first error.
 */
static int run_ops(run *r, long ops)
{
    for (long i = 0; i < ops; i++) {
        int rc = run_one_op(r);

        if (rc != 0)
            return rc;
        if (r->opts.sync == STOAT_SYNC_NONE && rnd(r, 60) == 0) {
            if ((rc = stoat_sync(r->db)) != 0)
                return rc;
            r->durable = r->n;
        }
    }
    return 0;
}

/* Reads every key; *bad counts values that were never written. */
static void read_state(run *r, uint64_t *got, int *bad)
{
    *bad = 0;
    for (int i = 0; i < RKEYS; i++) {
        char k[RKEY_MAX];
        void *v = NULL;
        size_t vlen;
        int rc;

        key_of(r, i, k);
        rc = stoat_get(r->db, k, r->klen, &v, &vlen);
        got[i] = ABSENT;
        if (rc == 0 && (got[i] = tag_of(v, vlen)) == ABSENT)
            (*bad)++;
        else if (rc != 0 && rc != STOAT_ENOTFOUND)
            test_fail(__FILE__, __LINE__, "get %.4s: %s: %s", k, stoat_strerror(rc),
                      stoat_errmsg(r->db));
        stoat_free(v);
    }
}

/* A full scan must agree with the gets. */
static void check_scan(run *r, const uint64_t *got)
{
    stoat_iter *it;
    int i = -1, bad = 0;

    REQUIRE_OK(stoat_iter_open(r->db, NULL, &it));
    for (stoat_iter_seek_first(it); stoat_iter_valid(it); stoat_iter_next(it)) {
        const void *k, *v;
        size_t klen, vlen;
        char want[RKEY_MAX];

        while (++i < RKEYS && got[i] == ABSENT)
            ;
        REQUIRE_OK(stoat_iter_key(it, &k, &klen));
        REQUIRE_OK(stoat_iter_value(it, &v, &vlen));
        key_of(r, i < RKEYS ? i : 0, want);
        bad += i >= RKEYS || klen != r->klen || memcmp(k, want, klen) != 0 ||
               tag_of(v, vlen) != got[i];
    }
    CHECK_RC(stoat_iter_status(it), 0);
    while (++i < RKEYS && got[i] == ABSENT)
        ;
    CHECK(bad == 0 && i >= RKEYS);
    stoat_iter_close(it);
}

/*
 * Finds p in [durable, n] with state == ops[0..p) applied; returns it, or
 * -1 (after printing what differs at p = durable).
 */
static long matching_prefix(run *r, const uint64_t *got)
{
    uint64_t exp[RKEYS];
    long diff = 0;

    for (int i = 0; i < RKEYS; i++)
        exp[i] = ABSENT;
    for (long p = 0; p < r->durable; p++)
        exp[r->ops[p].key] = r->ops[p].tag;
    for (int i = 0; i < RKEYS; i++)
        diff += exp[i] != got[i];
    for (long p = r->durable;; p++) {
        const op *o;

        if (diff == 0)
            return p;
        if (p == r->n)
            break;
        o = &r->ops[p];
        diff -= exp[o->key] != got[o->key];
        exp[o->key] = o->tag;
        diff += exp[o->key] != got[o->key];
    }
    for (long p = 0; p < r->durable; p++)
        exp[r->ops[p].key] = r->ops[p].tag;
    for (int i = 0, shown = 0; i < RKEYS && shown < 5; i++) {
        if (exp[i] != got[i] && ++shown)
            fprintf(stderr, "  key r%03d: durable state %lld, recovered %lld\n", i,
                    (long long)exp[i], (long long)got[i]);
    }
    return -1;
}

/* Checks the reopened database against the history; trims it to what survived. */
static void run_verify(run *r, const char *when)
{
    uint64_t got[RKEYS];
    int bad;
    long p;

    read_state(r, got, &bad);
    CHECK(bad == 0);
    check_scan(r, got);
    p = matching_prefix(r, got);
    if (p < 0)
        test_fail(__FILE__, __LINE__, "%s: recovered state is no prefix of the history "
                  "(durable %ld of %ld attempted; %s, %s)", when, r->durable, r->n,
                  r->opts.sync == STOAT_SYNC_COMMIT ? "sync commit" : "sync none", r->how);
    REQUIRE(p >= 0);
    r->n = r->durable = p;
}

/* Arms one random fault; the returned budget of operations comes first. */
static long arm_fault(run *r, int *crash)
{
    uint64_t kind = rnd(r, 4);
    long n = 0, budget;

    *crash = kind <= 1;
    if (kind == 2)
        env_fault_fail_append(r->fault, n = 1 + (long)rnd(r, 400), rnd(r, 2) ? EIO : ENOSPC);
    if (kind == 3)
        env_fault_fail_sync(r->fault, n = 1 + (long)rnd(r, 40));
    /* Every write under SYNC_COMMIT costs an fsync: fewer of them. */
    budget = (long)rnd(r, r->opts.sync == STOAT_SYNC_COMMIT ? 120 : 900);
    snprintf(r->how, sizeof(r->how), "%s %ld after up to %ld ops",
             kind <= 1 ? "crash" : kind == 2 ? "failed append" : "failed sync", n, budget);
    return budget;
}

/* One cycle: write, fail, close, lose power, reopen (maybe crashing once
 * more inside recovery), verify. */
static void run_cycle(run *r, const char *when)
{
    int crash, posix;
    long budget = arm_fault(r, &crash);

    run_ops(r, budget);
    if (crash)
        env_fault_crash(r->fault);
    stoat_close(r->db); /* an error here is expected */
    r->db = NULL;
    REQUIRE_OK(env_fault_drop_unsynced(r->fault));
    if (rnd(r, 4) == 0) {
        long n = 1 + (long)rnd(r, 4);

        /* Power fails again while recovery writes. */
        snprintf(r->how + strlen(r->how), sizeof(r->how) - strlen(r->how),
                 ", recovery crashed at append %ld", n);
        env_fault_fail_append(r->fault, n, EIO);
        if (db_open_env(r->dir, &r->opts, r->fault, &r->db) == 0) {
            env_fault_crash(r->fault);
            stoat_close(r->db);
            r->db = NULL;
        }
        REQUIRE_OK(env_fault_drop_unsynced(r->fault));
    }
    posix = rnd(r, 2) == 0;
    snprintf(r->how + strlen(r->how), sizeof(r->how) - strlen(r->how), ", reopened over %s",
             posix ? "env_posix" : "the fault env");
    run_open(r, posix ? env_posix() : r->fault);
    run_verify(r, when);
    if (posix) {
        /* Go on over a new fault env: the old one's picture of the files
         * is stale now. */
        if (stoat_close(r->db) != 0)
            test_fail(__FILE__, __LINE__, "%s: close after recovery: %s", when,
                      stoat_errmsg(NULL));
        env_fault_free(r->fault);
        REQUIRE((r->fault = env_fault_new(env_posix())) != NULL);
        run_open(r, r->fault);
    }
}

static void run_iteration(uint64_t seed, int i)
{
    char dir[DBU_PATH_MAX], name[32], when[64];
    int cycles;
    run r;

    memset(&r, 0, sizeof(r));
    r.klen = 4;
    r.rng = seed + (uint64_t)i * 0x9e3779b97f4a7c15ull;
    snprintf(name, sizeof(name), "r%d", i);
    r.dir = dbu_path(dir, test_tmpdir(), name);
    REQUIRE((r.fault = env_fault_new(env_posix())) != NULL);
    dbu_small_options(&r.opts);
    if (rnd(&r, 4) == 0)
        r.opts.sync = STOAT_SYNC_COMMIT;
    run_open(&r, r.fault);
    cycles = 1 + (int)rnd(&r, 3);
    for (int cycle = 0; cycle < cycles; cycle++) {
        snprintf(when, sizeof(when), "run %d, cycle %d", i, cycle);
        run_cycle(&r, when);
        if (test_failed_now)
            break;
    }
    CHECK_RC(stoat_close(r.db), 0);
    env_fault_free(r.fault);
    free(r.ops);
}

static void test_db_recovery_random_power_loss(void)
{
    const char *s = getenv("STOAT_SEED"), *n = getenv("STOAT_RECOVERY_ITERS");
    uint64_t seed = s && *s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    long iters = n && *n ? strtol(n, NULL, 0) : 40;
    struct timespec t0, t1;

    printf("recovery: seed %llu (replay with STOAT_SEED=%llu), %ld runs\n",
           (unsigned long long)seed, (unsigned long long)seed, iters);
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < iters && !test_failed_now; i++)
        run_iteration(seed, (int)i);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("recovery: %.2f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
}

/* Opens a fresh run in dir with the given sync mode. */
static void run_start(run *r, const char *dir, int sync)
{
    memset(r, 0, sizeof(*r));
    r->rng = 12345;
    r->klen = 4;
    r->dir = dir;
    REQUIRE((r->fault = env_fault_new(env_posix())) != NULL);
    dbu_small_options(&r->opts);
    r->opts.sync = sync;
    run_open(r, r->fault);
}

static void run_finish(run *r)
{
    CHECK_RC(stoat_close(r->db), 0);
    env_fault_free(r->fault);
    free(r->ops);
}

/* Power loss, drop, reopen over the same env, verify. */
static void run_crash_and_verify(run *r, const char *when)
{
    env_fault_crash(r->fault);
    stoat_close(r->db);
    REQUIRE_OK(env_fault_drop_unsynced(r->fault));
    run_open(r, r->fault);
    run_verify(r, when);
}

static void test_db_recovery_commit_writes_survive(void)
{
    run r;

    run_start(&r, test_tmpdir(), STOAT_SYNC_COMMIT);
    REQUIRE_OK(run_ops(&r, 150));
    CHECK(r.durable == r.n);
    run_crash_and_verify(&r, "after 150 committed writes");
    CHECK(r.n == r.durable);
    run_finish(&r);
}

/* Without sync, a crash keeps the synced writes and a prefix of the rest. */
static void test_db_recovery_unsynced_tail_is_a_prefix(void)
{
    run r;

    run_start(&r, test_tmpdir(), STOAT_SYNC_NONE);
    for (int i = 0; i < 500; i++)
        REQUIRE_OK(run_one_op(&r));
    REQUIRE_OK(stoat_sync(r.db));
    r.durable = r.n;
    for (int i = 0; i < 700; i++)
        REQUIRE_OK(run_one_op(&r));
    run_crash_and_verify(&r, "after a sync and 700 unsynced writes");
    CHECK(r.n >= 500);
    run_finish(&r);
}

/*
 * stoat_sync makes everything written so far durable, also what sits in
 * an immutable memtable whose flush has not finished: write until the
 * memtable rotates (a second WAL appears), sync, lose power at once.
 */
static void test_db_recovery_sync_covers_immutable_memtables(void)
{
    static char names[DBU_MAX_FILES][64];

    for (int round = 0; round < 3 && !test_failed_now; round++) {
        char dir[DBU_PATH_MAX], name[32];
        run r;
        int i;

        snprintf(name, sizeof(name), "s%d", round);
        run_start(&r, dbu_subdir(dir, name), STOAT_SYNC_NONE);
        snprintf(r.how, sizeof(r.how), "crash right after a sync that followed a rotation");
        for (i = 0; i < 5000 && dbu_list(dir, ".wal", names) < 2; i++)
            REQUIRE_OK(run_one_op(&r));
        REQUIRE(i < 5000);
        REQUIRE_OK(stoat_sync(r.db));
        r.durable = r.n;
        run_crash_and_verify(&r, name);
        CHECK(r.n == r.durable);
        run_finish(&r);
    }
}

/* A failed fsync is sticky: later writes fail too, and nothing is retried. */
static void test_db_recovery_failed_sync_is_sticky(void)
{
    run r;

    run_start(&r, test_tmpdir(), STOAT_SYNC_COMMIT);
    REQUIRE_OK(run_ops(&r, 30));
    env_fault_fail_sync(r.fault, 1);
    CHECK(run_one_op(&r) < 0);
    CHECK(strlen(stoat_errmsg(r.db)) > 0);
    CHECK(run_one_op(&r) < 0);
    CHECK(stoat_sync(r.db) < 0);
    CHECK(stoat_close(r.db) < 0);
    REQUIRE_OK(env_fault_drop_unsynced(r.fault));
    run_open(&r, r.fault);
    run_verify(&r, "after a failed sync");
    run_finish(&r);
}

/* Reads go on: the open database shows a prefix of the history that
 * holds everything acknowledged (nothing reopened, nothing lost). */
static void run_check_reads(run *r, const char *when)
{
    long durable = r->durable, n = r->n;

    run_verify(r, when);
    r->n = n;               /* run_verify trims to what it found: undo */
    r->durable = durable;
}

/*
 * A failed fsync (of the WAL, of the value log, of a table being
 * flushed) makes the database refuse every later write until it is
 * reopened; reads go on meanwhile; a reopen (no power loss) finds every
 * acknowledged write, and so does one after a power loss.
 */
static void test_db_recovery_failed_sync_refuses_writes_until_reopen(void)
{
    for (int round = 0; round < 6 && !test_failed_now; round++) {
        char dir[DBU_PATH_MAX], name[32];
        int rc = 0, power_loss = round >= 3;
        run r;

        snprintf(name, sizeof(name), "fs%d", round);
        run_start(&r, dbu_subdir(dir, name), round % 3 == 2 ? STOAT_SYNC_NONE : STOAT_SYNC_COMMIT);
        if (round % 3 == 1) {
            /* Values in the value log: its fsync comes first. */
            REQUIRE_OK(stoat_close(r.db));
            r.opts.value_threshold = 64;
            run_open(&r, r.fault);
        }
        REQUIRE_OK(run_ops(&r, 40));
        REQUIRE_OK(stoat_sync(r.db));
        r.durable = r.n;
        env_fault_fail_sync(r.fault, 1);
        if (round % 3 == 2)
            rc = stoat_flush(r.db);     /* the table's fsync */
        for (int i = 0; i < 20 && rc == 0; i++)
            rc = run_one_op(&r);
        CHECK(rc < 0);
        env_fault_fail_sync(r.fault, 0);    /* the disk is fine again: still refused */
        for (int i = 0; i < 5; i++) {
            long n = r.n;

            CHECK(run_one_op(&r) < 0);
            r.n = n;    /* refused: not part of the history */
        }
        CHECK(stoat_sync(r.db) < 0);
        run_check_reads(&r, "reads after a failed sync");
        CHECK(stoat_close(r.db) < 0);
        if (power_loss)
            REQUIRE_OK(env_fault_drop_unsynced(r.fault));
        snprintf(r.how, sizeof(r.how), "failed sync, round %d", round);
        run_open(&r, r.fault);
        run_verify(&r, power_loss ? "after a failed sync and a power loss"
                                  : "reopened after a failed sync");
        CHECK(r.n >= r.durable);
        REQUIRE_OK(run_ops(&r, 20));    /* writable again */
        run_finish(&r);
    }
}

/*
 * A full disk is not sticky: the n-th append from some point on (the
 * WAL's, the value log's, a flushed or compacted table's, the
 * MANIFEST's) fails with ENOSPC, writes and flushes fail with
 * STOAT_ENOSPC and change nothing, reads go on; once the disk has room
 * again the same handle writes, flushes and flattens, and a reopen (and
 * a power loss) keeps every acknowledged write.
 */
static void test_db_recovery_disk_full_then_freed(void)
{
    for (long k = 1; k <= 12 && !test_failed_now; k++) {
        char dir[DBU_PATH_MAX], name[32];
        long failed = 0;
        run r;

        snprintf(name, sizeof(name), "nospc%ld", k);
        run_start(&r, dbu_subdir(dir, name), k % 4 == 0 ? STOAT_SYNC_COMMIT : STOAT_SYNC_NONE);
        if (k % 2) {
            REQUIRE_OK(stoat_close(r.db));
            r.opts.value_threshold = 64;
            run_open(&r, r.fault);
        }
        r.rng += (uint64_t)k;
        REQUIRE_OK(run_ops(&r, 100));
        env_fault_fail_append(r.fault, 1 + (k - 1) * 3, ENOSPC);
        for (int i = 0; i < 300; i++) {
            long n = r.n;
            int rc = i % 50 == 49 ? stoat_flush(r.db) : run_one_op(&r);

            if (rc == 0)
                continue;
            if (rc != STOAT_ENOSPC)
                test_fail(__FILE__, __LINE__, "k %ld: %s: %s", k, stoat_strerror(rc),
                          stoat_errmsg(r.db));
            r.n = n;    /* refused: it did not happen */
            failed++;
        }
        CHECK(failed > 0);
        r.durable = r.n;    /* no power loss yet: every acknowledged write shows */
        snprintf(r.how, sizeof(r.how), "disk full from append %ld", 1 + (k - 1) * 3);
        run_check_reads(&r, "reads on a full disk");
        env_fault_fail_append(r.fault, 0, 0);   /* space freed */
        for (int i = 0; i < 200 && !test_failed_now; i++)
            REQUIRE_OK(run_one_op(&r));
        REQUIRE_OK(stoat_flush(r.db));
        REQUIRE_OK(stoat_flatten(r.db));
        r.durable = r.n;
        run_check_reads(&r, "after space was freed");
        REQUIRE_OK(stoat_sync(r.db));
        CHECK_RC(stoat_close(r.db), 0);
        run_open(&r, r.fault);
        run_verify(&r, "reopened after a full disk");
        CHECK(r.n == r.durable);
        run_crash_and_verify(&r, "power loss after a full disk");
        CHECK(r.n == r.durable);
        run_finish(&r);
    }
}

/* A full disk is reported as STOAT_ENOSPC; what was committed stays. */
static void test_db_recovery_disk_full(void)
{
    run r;
    int rc = 0;

    run_start(&r, test_tmpdir(), STOAT_SYNC_COMMIT);
    REQUIRE_OK(run_ops(&r, 30));
    env_fault_fail_append(r.fault, 1, ENOSPC);
    for (int i = 0; i < 10 && rc == 0; i++)
        rc = run_one_op(&r);
    CHECK_RC(rc, STOAT_ENOSPC);
    stoat_close(r.db);
    REQUIRE_OK(env_fault_drop_unsynced(r.fault));
    run_open(&r, r.fault);
    run_verify(&r, "after a full disk");
    run_finish(&r);
}

/*
 * Crashes at each early append and sync of a flush (the SST, the manifest
 * edit, the directory): every committed write survives each one.
 */
static void test_db_recovery_crash_during_flush(void)
{
    for (long n = 1; n <= 12 && !test_failed_now; n++) {
        char dir[DBU_PATH_MAX], name[32];
        run r;

        snprintf(name, sizeof(name), "f%ld", n);
        run_start(&r, dbu_subdir(dir, name), STOAT_SYNC_NONE);
        for (int i = 0; i < 150; i++)
            REQUIRE_OK(run_one_op(&r));
        REQUIRE_OK(stoat_sync(r.db));
        r.durable = r.n;
        if (n % 2)
            env_fault_fail_append(r.fault, (n + 1) / 2, EIO);
        else
            env_fault_fail_sync(r.fault, n / 2);
        stoat_flush(r.db);
        run_crash_and_verify(&r, name);
        CHECK(r.n == r.durable);
        run_finish(&r);
    }
}

/* A write and a flush: one manifest edit at least. */
static int write_and_flush(run *r)
{
    int rc = run_one_op(r);

    return rc ? rc : stoat_flush(r->db);
}

/*
 * Power loss at each step around a MANIFEST rewrite (MANIFEST.tmp, fsync,
 * rename, fsync of the directory). Keys of 3000 bytes make every edit
 * big, so a few flushes take a new database's MANIFEST past its 64 KiB
 * rewrite threshold; the next edit rewrites it. The k-th sync or append
 * from there fails, and the recovered database is checked against the
 * history.
 */
static void test_db_recovery_crash_during_manifest_rewrite(void)
{
    int rewrites = 0;

    for (long k = 1; k <= 16 && !test_failed_now; k++) {
        char dir[DBU_PATH_MAX], m[DBU_PATH_MAX], name[32];
        uint64_t size;
        long f;
        run r;

        snprintf(name, sizeof(name), "m%ld", k);
        run_start(&r, dbu_subdir(dir, name), STOAT_SYNC_NONE);
        r.klen = 3000;
        dbu_path(m, dir, "MANIFEST");
        while (dbu_file_size(m) <= 64 << 10)
            REQUIRE_OK(write_and_flush(&r));
        /* The last rounds fail late: past a completed rewrite. */
        f = k <= 14 ? (k + 1) / 2 : 50;
        if (k % 2)
            env_fault_fail_sync(r.fault, f);
        else
            env_fault_fail_append(r.fault, f, EIO);
        size = dbu_file_size(m);
        for (int i = 0; i < 3 && write_and_flush(&r) == 0; i++) {
            rewrites += dbu_file_size(m) < size;
            size = dbu_file_size(m);
        }
        snprintf(r.how, sizeof(r.how), "manifest rewrite, %s %ld",
                 k % 2 ? "failed sync" : "failed append", f);
        run_crash_and_verify(&r, name);
        run_finish(&r);
    }
    printf("manifest rewrite: %d rounds got through a rewrite\n", rewrites);
    CHECK(rewrites > 0);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_db_recovery_commit_writes_survive);
    TEST_RUN(test_db_recovery_unsynced_tail_is_a_prefix);
    TEST_RUN(test_db_recovery_sync_covers_immutable_memtables);
    TEST_RUN(test_db_recovery_failed_sync_is_sticky);
    TEST_RUN(test_db_recovery_disk_full);
    TEST_RUN(test_db_recovery_failed_sync_refuses_writes_until_reopen);
    TEST_RUN(test_db_recovery_disk_full_then_freed);
    TEST_RUN(test_db_recovery_crash_during_flush);
    TEST_RUN(test_db_recovery_crash_during_manifest_rewrite);
    TEST_RUN(test_db_recovery_random_power_loss);
    return test_summary();
}
