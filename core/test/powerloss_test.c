/*
 * powerloss_test.c - power loss with reordering (issue 16, item 5): a
 * workload runs over the fault env, and at moments along the way the
 * states a power loss could leave (env_fault_crash_copy: unsynced appends
 * kept as per-file prefixes, out of order between files, torn at sector
 * boundaries, sizes run ahead of data in zeros, unsynced creations and
 * renames kept as a prefix or lost) are written to a scratch directory,
 * opened with the real env and checked. Every state must open without
 * error and hold a prefix of the commits that holds every acknowledged
 * one: no acknowledged commit lost, no transaction torn, no value that
 * was never written.
 *
 * The workload: commit seq (one transaction) sets "last" = seq and two
 * slot keys (the second deleted one time in eleven), values long enough
 * for the value log one time in five. So with L = "last" after recovery,
 * L lies between the last acknowledged commit and the last attempted,
 * and every slot holds what the newest commit <= L wrote to it. Along the
 * way: syncs (under sync "none"), flushes, flattens, value-log GC, and
 * value-log rotation (small files); background compactions run as they
 * like. Half the states come from a database under sync "commit".
 *
 * STOAT_POWERLOSS_STATES sets the number of states (default 300: a few
 * seconds), STOAT_SEED the random sequence (printed). A failing state is
 * printed with its choices and kept under $TMPDIR when STOAT_KEEP_TMP is
 * set. STOAT_POWERLOSS_HOLES=1 lets unsynced pages survive in any order
 * (ENV_FAULT_HOLES) in a quarter of the states: a stronger disk than
 * ext4's ordered mode, an experiment rather than a requirement.
 */
#include <time.h>

#include "db/db_env.h"
#include "db_util.h"
#include "support/env_fault.h"
#include "test.h"

#define SLOTS 64
#define KEY_LAST "last"

typedef struct pl_run {
    const char *dir;
    env *fault;
    stoat_options opts;
    stoat_db *db;
    uint64_t seq;           /* commits attempted */
    uint64_t acked;         /* commits acknowledged durable */
    uint64_t rng;
} pl_run;

typedef struct pl_totals {
    long states, failed, holes;
    long by_flags[32];
    uint64_t max_l, lost_tail;  /* recovered commits beyond acked, summed */
} pl_totals;

static size_t value_len(uint64_t seq)
{
    return seq % 5 == 0 ? 2000 + (size_t)(seq * 131 % 14000) : 8 + (size_t)(seq % 60);
}

static uint64_t slot_a(uint64_t seq)
{
    return seq % SLOTS;
}

static uint64_t slot_b(uint64_t seq)
{
    return (seq * 7 + 3) % SLOTS;
}

static int deletes_b(uint64_t seq)
{
    return seq % 11 == 0;
}

static size_t slot_key(uint64_t slot, char out[16])
{
    return (size_t)snprintf(out, 16, "slot%03u", (unsigned)slot);
}

/* ---- the workload ---- */

static int pl_commit(pl_run *r)
{
    uint64_t seq = r->seq + 1;
    char key[16], val[16384];
    stoat_txn *t = NULL;
    size_t len = value_len(seq);
    int rc;

    if ((rc = stoat_txn_begin(r->db, 0, &t)) != 0)
        return rc;
    dbu_value(seq, val, len);
    rc = stoat_txn_set(t, KEY_LAST, strlen(KEY_LAST), &seq, 8);
    if (rc == 0)
        rc = stoat_txn_set(t, key, slot_key(slot_a(seq), key), val, len);
    if (rc == 0 && deletes_b(seq))
        rc = stoat_txn_delete(t, key, slot_key(slot_b(seq), key));
    else if (rc == 0)
        rc = stoat_txn_set(t, key, slot_key(slot_b(seq), key), val, len);
    r->seq = seq;           /* attempted, whatever happens next */
    if (rc == 0)
        rc = stoat_txn_commit(t);
    stoat_txn_discard(t);
    if (rc == 0 && r->opts.sync == STOAT_SYNC_COMMIT)
        r->acked = seq;
    return rc;
}

/* One step: a commit, and now and then a sync, flush, flatten or GC. */
static void pl_step(pl_run *r)
{
    uint64_t x = test_rand(&r->rng) % 100;

    REQUIRE_OK(pl_commit(r));
    if (r->opts.sync == STOAT_SYNC_NONE && x < 12) {
        REQUIRE_OK(stoat_sync(r->db));
        r->acked = r->seq;
    } else if (x < 15) {
        REQUIRE_OK(stoat_flush(r->db));
    } else if (x == 15) {
        REQUIRE_OK(stoat_flatten(r->db));
    } else if (x == 16) {
        uint64_t reclaimed;

        REQUIRE_OK(stoat_gc(r->db, 0.3, &reclaimed));
    }
}

/* ---- checking one state ---- */

static uint64_t read_last(stoat_db *db, int *bad)
{
    void *v = NULL;
    size_t n = 0;
    uint64_t last = 0;
    int rc = stoat_get(db, KEY_LAST, strlen(KEY_LAST), &v, &n);

    if (rc == 0 && n == 8)
        memcpy(&last, v, 8);
    else if (rc != STOAT_ENOTFOUND)
        *bad = 1;
    stoat_free(v);
    return last;
}

/* The commit whose write slot s holds once commits 1..l are applied (0:
 * none), and whether that write was a delete. */
static uint64_t slot_owner(uint64_t s, uint64_t l, int *deleted)
{
    for (uint64_t q = l; q > 0; q--) {
        if (slot_b(q) == s) {
            *deleted = deletes_b(q);
            return q;
        }
        if (slot_a(q) == s) {
            *deleted = 0;
            return q;
        }
    }
    *deleted = 0;
    return 0;
}

/* Checks the database at dir; 0 if it holds a good prefix, else prints why. */
static int pl_check(const pl_run *r, const char *dir, uint64_t *l_out)
{
    stoat_options o = r->opts;
    stoat_db *db = NULL;
    stoat_iter *it = NULL;
    uint64_t l;
    int rc, bad = 0;
    long present = 0, seen = 0;

    o.create_if_missing = 0;
    if ((rc = stoat_open(dir, &o, &db)) != 0) {
        printf("  open failed: %s: %s\n", stoat_strerror(rc), stoat_errmsg(NULL));
        return -1;
    }
    l = read_last(db, &bad);
    *l_out = l;
    if (bad || l < r->acked || l > r->seq) {
        printf("  last = %llu, acknowledged %llu, attempted %llu\n", (unsigned long long)l,
               (unsigned long long)r->acked, (unsigned long long)r->seq);
        bad = 1;
    }
    for (uint64_t s = 0; s < SLOTS && !bad; s++) {
        char key[16];
        void *v = NULL;
        size_t n = 0;
        int deleted;
        uint64_t q = slot_owner(s, l, &deleted);

        rc = stoat_get(db, key, slot_key(s, key), &v, &n);
        if (q == 0 || deleted ? rc != STOAT_ENOTFOUND
                              : rc != 0 || !dbu_value_is(q, value_len(q), v, n)) {
            printf("  slot %llu: want commit %llu%s, got rc %d, %zu bytes\n",
                   (unsigned long long)s, (unsigned long long)q, deleted ? " (deleted)" : "",
                   rc, n);
            bad = 1;
        }
        present += q != 0 && !deleted;
        stoat_free(v);
    }
    /* Nothing else: the scan sees "last" and the present slots only. */
    if (!bad && (rc = stoat_iter_open(db, NULL, &it)) == 0) {
        for (stoat_iter_seek_first(it); stoat_iter_valid(it); stoat_iter_next(it))
            seen++;
        if (stoat_iter_status(it) != 0 || seen != present + (l > 0)) {
            printf("  scan: %ld keys, want %ld (status %d)\n", seen, present + (l > 0),
                   stoat_iter_status(it));
            bad = 1;
        }
        stoat_iter_close(it);
    }
    if ((rc = stoat_close(db)) != 0) {
        printf("  close: %s\n", stoat_errmsg(NULL));
        bad = 1;
    }
    return bad ? -1 : 0;
}

static void rm_rf(const char *dir)
{
    char cmd[DBU_PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    REQUIRE(system(cmd) == 0);
}

static int pl_flags(uint64_t *rng, int holes)
{
    static const int mixes[] = {
        ENV_FAULT_PREFIX | ENV_FAULT_TORN | ENV_FAULT_ZEROS | ENV_FAULT_NAMES,
        ENV_FAULT_PREFIX | ENV_FAULT_TORN | ENV_FAULT_ZEROS | ENV_FAULT_NAMES,
        ENV_FAULT_PREFIX | ENV_FAULT_NAMES,
        ENV_FAULT_PREFIX | ENV_FAULT_TORN,
        ENV_FAULT_NAMES,
        0,
    };
    uint64_t x = test_rand(rng);

    if (holes && x % 4 == 0)
        return ENV_FAULT_HOLES | ENV_FAULT_NAMES;
    return mixes[(x >> 8) % (sizeof(mixes) / sizeof(mixes[0]))];
}

/* Checks one state of this moment. */
static void pl_state(pl_run *r, pl_totals *t, int holes)
{
    char out[DBU_PATH_MAX], desc[1024];
    uint64_t seed = test_rand(&r->rng), l = 0;
    int flags = pl_flags(&r->rng, holes);

    snprintf(out, sizeof(out), "%s.state", r->dir);
    REQUIRE(mkdir(out, 0755) == 0);
    REQUIRE_OK(env_fault_crash_copy(r->fault, r->dir, out, seed, flags, desc, sizeof(desc)));
    t->states++;
    t->by_flags[flags]++;
    t->holes += (flags & ENV_FAULT_HOLES) != 0;
    if (pl_check(r, out, &l) != 0) {
        t->failed++;
        test_fail(__FILE__, __LINE__, "state %ld (%s, flags 0x%x, seed %llu): commits %llu "
                  "acknowledged, %llu attempted; files:%s", t->states,
                  r->opts.sync == STOAT_SYNC_COMMIT ? "sync commit" : "sync none", flags,
                  (unsigned long long)seed, (unsigned long long)r->acked,
                  (unsigned long long)r->seq, desc);
        if (getenv("STOAT_KEEP_TMP")) {
            char keep[DBU_PATH_MAX];

            snprintf(keep, sizeof(keep), "%s.failed-%ld", r->dir, t->states);
            REQUIRE(rename(out, keep) == 0);
            printf("  kept in %s\n", keep);
            return;
        }
    } else {
        t->lost_tail += r->seq - l;
        t->max_l = l > t->max_l ? l : t->max_l;
    }
    rm_rf(out);
}

static void pl_options(stoat_options *o, int sync)
{
    dbu_small_options(o);
    o->sync = sync;
    o->memtable_size = 128 << 10;
    o->value_threshold = 1024;
    o->value_log_file_size = 1 << 20;    /* the least: rotates every ~600 commits */
    o->auto_gc = 1;
    o->auto_gc_ratio = 0.3;
    o->num_compactors = 1;
    o->max_txn_bytes = 64 << 10;
}

/* A workload over a fresh database, with states checked along the way
 * until `states` of them were. */
static void pl_run_workload(const char *name, int sync, uint64_t seed, long states,
                            pl_totals *t, int holes)
{
    char dir[DBU_PATH_MAX];
    pl_run r;
    long want = t->states + states;

    memset(&r, 0, sizeof(r));
    r.rng = seed;
    r.dir = dbu_path(dir, test_tmpdir(), name);
    REQUIRE((r.fault = env_fault_new(env_posix())) != NULL);
    pl_options(&r.opts, sync);
    REQUIRE_OK(db_open_env(r.dir, &r.opts, r.fault, &r.db));
    while (t->states < want && !test_failed_now) {
        /* A few steps, then a few states of that moment (background
         * work may be under way: the copy is of one instant). */
        for (uint64_t i = test_rand(&r.rng) % 4; i > 0; i--)
            pl_step(&r);
        for (uint64_t i = 1 + test_rand(&r.rng) % 2; i > 0 && t->states < want; i--)
            pl_state(&r, t, holes);
        /* A long database keeps each state's copy small: start afresh. */
        if (r.seq > 2000) {
            REQUIRE_OK(stoat_close(r.db));
            env_fault_free(r.fault);
            rm_rf(r.dir);
            r.seq = r.acked = 0;
            REQUIRE((r.fault = env_fault_new(env_posix())) != NULL);
            REQUIRE_OK(db_open_env(r.dir, &r.opts, r.fault, &r.db));
        }
    }
    CHECK_RC(stoat_close(r.db), 0);
    env_fault_free(r.fault);
}

static void test_powerloss_states_recover_to_a_prefix(void)
{
    const char *n = getenv("STOAT_POWERLOSS_STATES"), *s = getenv("STOAT_SEED");
    const char *h = getenv("STOAT_POWERLOSS_HOLES");
    long states = n && *n ? atol(n) : 300;
    uint64_t seed = s && *s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
    int holes = h && *h == '1';
    pl_totals t = {0};
    char name[32];

    printf("powerloss: %ld states, seed %llu (STOAT_SEED)%s\n", states,
           (unsigned long long)seed, holes ? ", with holes" : "");
    fflush(stdout);
    for (int i = 0; t.states < states && !test_failed_now; i++) {
        long chunk = states - t.states < 1000 ? states - t.states : 1000;

        snprintf(name, sizeof(name), "w%d", i);
        pl_run_workload(name, i % 2 ? STOAT_SYNC_COMMIT : STOAT_SYNC_NONE,
                        seed + (uint64_t)i * 0x9e3779b97f4a7c15ull, chunk, &t, holes);
    }
    printf("powerloss: %ld states checked, %ld failed; by choice: prefix+torn+zeros+names %ld, "
           "prefix+names %ld, prefix+torn %ld, names only %ld, nothing unsynced %ld, holes %ld; "
           "newest commit recovered %llu, unsynced commits lost in all %llu\n",
           t.states, t.failed,
           t.by_flags[ENV_FAULT_PREFIX | ENV_FAULT_TORN | ENV_FAULT_ZEROS | ENV_FAULT_NAMES],
           t.by_flags[ENV_FAULT_PREFIX | ENV_FAULT_NAMES],
           t.by_flags[ENV_FAULT_PREFIX | ENV_FAULT_TORN], t.by_flags[ENV_FAULT_NAMES],
           t.by_flags[0], t.holes, (unsigned long long)t.max_l,
           (unsigned long long)t.lost_tail);
    CHECK(t.states >= states);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_powerloss_states_recover_to_a_prefix);
    return test_summary();
}
