/*
 * mp_test.c - the multi-process mode (db/shared.c): several handles and
 * processes on one directory read and write one database. Read-your-
 * writes across processes (both sync modes), conflicts between handles,
 * rotations, flushes and compactions run by one owner while the others
 * follow, the owner's death and another's takeover, a writer killed at
 * random while the others go on (nothing acknowledged lost), the bank
 * invariant across processes, and what excludes what.
 *
 * Children report through their exit status (0 = every check passed,
 * else the number of the failed check) and leave with _exit.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db/db_env.h"
#include "db_util.h"
#include "proc_util.h"
#include "support/env_fault.h"
#include "test.h"

#define CHECK_OK(expr) CHECK_RC(expr, 0)

static void mp_options(stoat_options *o)
{
    dbu_small_options(o);
    o->multi_process = 1;
    o->lock_timeout_ms = 10000;
}

static stoat_db *mp_open(const char *dir)
{
    stoat_options o;
    stoat_db *db;

    mp_options(&o);
    REQUIRE_OK(stoat_open(dir, &o, &db));
    return db;
}

static int get_u64(stoat_db *db, const char *key, uint64_t *v)
{
    void *val;
    size_t vlen;
    int rc = stoat_get(db, key, strlen(key), &val, &vlen);

    if (rc != 0)
        return rc;
    if (vlen != sizeof(*v)) {
        stoat_free(val);
        return STOAT_ECORRUPT;
    }
    memcpy(v, val, sizeof(*v));
    stoat_free(val);
    return 0;
}

static int put_u64(stoat_db *db, const char *key, uint64_t v)
{
    return stoat_put(db, key, strlen(key), &v, sizeof(v));
}

/* ---- two handles in one process ---- */

static void test_mp_two_handles_see_each_other(void)
{
    const char *dir = test_tmpdir();
    stoat_db *a = mp_open(dir), *b = mp_open(dir);
    uint64_t v = 0;

    REQUIRE_OK(put_u64(a, "k", 1));
    CHECK_OK(get_u64(b, "k", &v));
    CHECK(v == 1);
    REQUIRE_OK(put_u64(b, "k", 2));
    CHECK_OK(get_u64(a, "k", &v));
    CHECK(v == 2);
    REQUIRE_OK(stoat_delete(a, "k", 1));
    CHECK_RC(get_u64(b, "k", &v), STOAT_ENOTFOUND);
    REQUIRE_OK(stoat_close(a));
    REQUIRE_OK(stoat_close(b));
    /* And a restart keeps it. */
    a = mp_open(dir);
    CHECK_RC(get_u64(a, "k", &v), STOAT_ENOTFOUND);
    REQUIRE_OK(stoat_close(a));
}

/* Write skew across handles: each reads x and y and writes the other;
 * exactly one commits. */
static void test_mp_write_skew_conflicts_across_handles(void)
{
    const char *dir = test_tmpdir();
    stoat_db *a = mp_open(dir), *b = mp_open(dir);
    stoat_txn *ta, *tb;
    const void *val;
    size_t vlen;
    uint64_t one = 1;

    REQUIRE_OK(put_u64(a, "x", 1));
    REQUIRE_OK(put_u64(a, "y", 1));
    REQUIRE_OK(stoat_txn_begin(a, 0, &ta));
    REQUIRE_OK(stoat_txn_begin(b, 0, &tb));
    CHECK_OK(stoat_txn_get(ta, "x", 1, &val, &vlen));
    CHECK_OK(stoat_txn_get(ta, "y", 1, &val, &vlen));
    CHECK_OK(stoat_txn_get(tb, "x", 1, &val, &vlen));
    CHECK_OK(stoat_txn_get(tb, "y", 1, &val, &vlen));
    CHECK_OK(stoat_txn_set(ta, "x", 1, &one, sizeof(one)));
    CHECK_OK(stoat_txn_set(tb, "y", 1, &one, sizeof(one)));
    CHECK_OK(stoat_txn_commit(ta));
    CHECK_RC(stoat_txn_commit(tb), STOAT_ECONFLICT);
    stoat_txn_discard(ta);
    stoat_txn_discard(tb);
    REQUIRE_OK(stoat_close(a));
    REQUIRE_OK(stoat_close(b));
}

/* A phantom: a range iterated in one handle, a key inserted into it by
 * the other: the iterating transaction's commit conflicts. */
static void test_mp_phantom_conflicts_across_handles(void)
{
    const char *dir = test_tmpdir();
    stoat_db *a = mp_open(dir), *b = mp_open(dir);
    stoat_iter_options io = {.prefix = "r:", .prefix_len = 2};
    stoat_iter *it;
    stoat_txn *ta;
    int n = 0;

    REQUIRE_OK(put_u64(a, "r:1", 1));
    REQUIRE_OK(stoat_txn_begin(a, 0, &ta));
    REQUIRE_OK(stoat_txn_iter_open(ta, &io, &it));
    for (stoat_iter_seek_first(it); stoat_iter_valid(it); stoat_iter_next(it))
        n++;
    stoat_iter_close(it);
    CHECK(n == 1);
    REQUIRE_OK(put_u64(b, "r:2", 2));
    CHECK_OK(stoat_txn_set(ta, "count", 5, &n, sizeof(n)));
    CHECK_RC(stoat_txn_commit(ta), STOAT_ECONFLICT);
    stoat_txn_discard(ta);
    REQUIRE_OK(stoat_close(a));
    REQUIRE_OK(stoat_close(b));
}

/* ---- another build's shared state ---- */

/* A live region whose database part another version of stoat wrote: a
 * clear refusal, not a misread. */
static void test_mp_other_shared_state_version_refused(void)
{
    const char *dir = test_tmpdir();
    stoat_db *a = mp_open(dir), *b = NULL;
    stoat_options o;
    char lock[512], path[512] = {0};
    FILE *f;

    snprintf(lock, sizeof(lock), "%s/SHMLOCK", dir);
    REQUIRE((f = fopen(lock, "r")) != NULL);
    REQUIRE(fgets(path, sizeof(path), f) != NULL);
    fclose(f);
    REQUIRE((f = fopen(path, "r+")) != NULL);
    REQUIRE(fseek(f, SHM_OFF_FREE + 7, SEEK_SET) == 0);
    REQUIRE(fputc('1', f) == '1');      /* "STOATSH1": part version 1 */
    fclose(f);
    mp_options(&o);
    CHECK_RC(stoat_open(dir, &o, &b), STOAT_ENOTSUP);
    CHECK(strstr(stoat_errmsg(NULL), "version 1 of the shared state") != NULL);
    REQUIRE((f = fopen(path, "r+")) != NULL);
    REQUIRE(fseek(f, SHM_OFF_FREE + 7, SEEK_SET) == 0);
    REQUIRE(fputc('3', f) == '3');
    fclose(f);
    REQUIRE_OK(stoat_close(a));
}

/* ---- durability across handles ---- */

/*
 * Handle b commits a large value and never syncs; handle a then makes a
 * commit of its own durable: by stoat_sync, or (sync_commit) by a
 * commit with sync "commit". After a power loss both are there: a's WAL
 * record sits behind b's, whose value must be durable too, or recovery
 * would stop at b's record and cut a's off.
 */
static void check_durable_behind_an_unsynced_value(int sync_commit)
{
    const char *dir = test_tmpdir();
    env *fault = env_fault_new(env_posix());
    char big[3000];
    stoat_options o, oa;
    stoat_db *a, *b;
    uint64_t v = 0;
    void *got;
    size_t vlen;

    REQUIRE(fault != NULL);
    mp_options(&o);
    o.value_threshold = 64;
    oa = o;
    if (sync_commit)
        oa.sync = STOAT_SYNC_COMMIT;
    REQUIRE_OK(db_open_env(dir, &oa, fault, &a));
    REQUIRE_OK(db_open_env(dir, &o, fault, &b));
    dbu_value(7, big, sizeof(big));
    REQUIRE_OK(stoat_put(b, "big", 3, big, sizeof(big)));     /* b never syncs */
    REQUIRE_OK(put_u64(a, "after", 1));
    if (!sync_commit)
        REQUIRE_OK(stoat_sync(a));  /* "after" is durable, and what came before */
    env_fault_crash(fault);
    stoat_close(a);
    stoat_close(b);
    REQUIRE_OK(env_fault_drop_unsynced(fault));
    env_fault_free(fault);
    a = mp_open(dir);
    CHECK_OK(get_u64(a, "after", &v));
    CHECK(v == 1);
    CHECK_OK(stoat_get(a, "big", 3, &got, &vlen));
    if (got != NULL) {
        CHECK(dbu_value_is(7, sizeof(big), got, vlen));
        stoat_free(got);
    }
    REQUIRE_OK(stoat_close(a));
}

static void test_mp_sync_covers_other_handles_values(void)
{
    check_durable_behind_an_unsynced_value(0);
}

/* Mixed sync modes: the same with a durable commit instead of a sync. */
static void test_mp_durable_commit_behind_an_unsynced_value(void)
{
    check_durable_behind_an_unsynced_value(1);
}

/* ---- bulk loads ---- */

/* A bulk load in the background owner (the first handle) while another
 * handle writes: the other handle's loader is refused (busy, naming the
 * owner); once finish returns, the other handle reads every loaded key
 * (big values from the value log too) and its later commits go above the
 * load's version; its transaction begun before the load that read
 * a loaded key conflicts, though its oracle never saw the loaded keys; a
 * reopen sees the same. */
static void test_mp_bulk_load_in_the_owner(void)
{
    const char *dir = test_tmpdir();
    stoat_db *a = mp_open(dir), *b = mp_open(dir);
    stoat_loader *ld, *lb = (stoat_loader *)(uintptr_t)1;
    stoat_txn *tb;
    const void *val;
    size_t vlen;
    char key[16], big[2048];
    uint64_t version = 0, v = 0;
    stoat_stats st;

    REQUIRE_OK(put_u64(b, "a-before", 1));
    CHECK_RC(stoat_loader_new(b, &lb), STOAT_EBUSY);
    CHECK(lb == NULL);
    CHECK(strstr(stoat_errmsg(b), "another process") != NULL);
    REQUIRE_OK(stoat_txn_begin(b, 0, &tb));
    CHECK_OK(stoat_txn_get(tb, "a-before", 8, &val, &vlen));
    CHECK_RC(stoat_txn_get(tb, "load00010", 9, &val, &vlen), STOAT_ENOTFOUND);
    REQUIRE_OK(stoat_loader_new(a, &ld));
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "load%05d", i);
        dbu_value((uint64_t)i, big, sizeof(big));
        REQUIRE_OK(stoat_loader_add(ld, key, strlen(key), big, i % 2 ? sizeof(big) : 10, 0, 0));
        if (i == 250)
            REQUIRE_OK(put_u64(b, "z-during", 2));  /* commits go on meanwhile */
    }
    REQUIRE_OK(stoat_loader_finish(ld, &version));
    CHECK(version > 0);
    for (int i = 0; i < 500; i += 7) {
        void *got;
        snprintf(key, sizeof(key), "load%05d", i);
        REQUIRE_OK(stoat_get(b, key, strlen(key), &got, &vlen));
        CHECK(dbu_value_is((uint64_t)i, i % 2 ? sizeof(big) : 10, got, vlen));
        stoat_free(got);
    }
    REQUIRE_OK(put_u64(b, "z-after", 3));
    REQUIRE_OK(stoat_stats_get(b, &st));
    CHECK(st.last_version > version);
    CHECK_OK(stoat_txn_set(tb, "other", 5, "x", 1));
    CHECK_RC(stoat_txn_commit(tb), STOAT_ECONFLICT);
    stoat_txn_discard(tb);
    REQUIRE_OK(stoat_close(b));
    REQUIRE_OK(stoat_close(a));
    a = mp_open(dir);
    CHECK_OK(get_u64(a, "z-during", &v));
    CHECK(v == 2);
    CHECK_OK(get_u64(a, "z-after", &v));
    CHECK(v == 3);
    {
        void *got;
        REQUIRE_OK(stoat_get(a, "load00499", 9, &got, &vlen));
        CHECK(dbu_value_is(499, sizeof(big), got, vlen));
        stoat_free(got);
    }
    REQUIRE_OK(stoat_close(a));
}

/* ---- a write that failed to reach the disk ---- */

/* A failed fsync in one handle: every handle refuses writes (the WAL they
 * share may have lost acknowledged bytes), reads go on, and once all have
 * closed the next open recovers and writes again. */
static void test_mp_failed_fsync_stops_every_writer(void)
{
    const char *dir = test_tmpdir();
    env *fault = env_fault_new(env_posix());
    stoat_options o;
    stoat_db *a, *b;
    uint64_t v = 0;
    char pid[32];

    mp_options(&o);
    REQUIRE_OK(db_open_env(dir, &o, fault, &a));
    b = mp_open(dir);
    REQUIRE_OK(put_u64(a, "k", 1));
    env_fault_fail_sync(fault, 1);
    CHECK_RC(stoat_sync(a), STOAT_EIO);
    CHECK_RC(put_u64(a, "k", 2), STOAT_EIO);
    CHECK_RC(put_u64(b, "k", 3), STOAT_EIO);
    snprintf(pid, sizeof(pid), "process %d", (int)getpid());
    CHECK(strstr(stoat_errmsg(NULL), pid) != NULL);
    CHECK_OK(get_u64(b, "k", &v));
    CHECK(v == 1);
    stoat_close(a);
    REQUIRE_OK(stoat_close(b));
    env_fault_free(fault);
    b = mp_open(dir);
    CHECK_OK(get_u64(b, "k", &v));
    CHECK(v == 1);
    REQUIRE_OK(put_u64(b, "k", 4));
    REQUIRE_OK(stoat_close(b));
}

/* ---- a process that fell behind ---- */

static int count_wals(const char *dir)
{
    static char names[DBU_MAX_FILES][64];

    return dbu_list(dir, ".wal", names);
}

typedef struct behind_arg {
    const char *dir;
} behind_arg;

/* Reads k in a transaction, stops itself; once continued, writes k. */
static int behind_child(void *p)
{
    behind_arg *a = p;
    stoat_db *db = mp_open(a->dir);
    stoat_txn *t;
    const void *val;
    size_t vlen;
    uint64_t three = 3;
    int rc;

    if (stoat_txn_begin(db, 0, &t) != 0 || stoat_txn_get(t, "k", 1, &val, &vlen) != 0)
        return 1;
    raise(SIGSTOP);
    if (stoat_txn_set(t, "k", 1, &three, sizeof(three)) != 0)
        return 2;
    rc = stoat_txn_commit(t);
    stoat_txn_discard(t);
    if (rc != STOAT_ECONFLICT) {
        fprintf(stderr, "  behind: commit = %d (%s), want a conflict\n", rc, stoat_errmsg(NULL));
        return 3;
    }
    return stoat_close(db) == 0 ? 0 : 4;
}

/* A process stopped for a while follows an old WAL; meanwhile another
 * commits k in a newer WAL, which the owner flushes. Its transaction,
 * which read k before, must conflict: the flushed WAL stays on disk until
 * the stopped process has read it (its oracle learns the commit). */
static stoat_db *volatile behind_db;    /* reachable from the forked child (valgrind) */

static void test_mp_process_behind_a_flushed_wal_conflicts(void)
{
    const char *dir = test_tmpdir();
    stoat_db *db = behind_db = mp_open(dir);
    behind_arg a = {dir};
    pid_t pid;
    int st;

    REQUIRE_OK(put_u64(db, "k", 1));
    pid = pu_spawn(behind_child, &a);
    REQUIRE(waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st));
    REQUIRE_OK(stoat_flush(db));        /* a new WAL... */
    REQUIRE_OK(put_u64(db, "k", 2));    /* ...holds this commit... */
    REQUIRE_OK(stoat_flush(db));        /* ...and is flushed */
    pu_sleep_us(400000);                /* the owner's keeper sweeps meanwhile */
    int kept = count_wals(dir);
    CHECK(kept >= 3);                   /* followed by the stopped one, newer, active */
    kill(pid, SIGCONT);
    CHECK(pu_wait(pid) == 0);
    /* Nobody follows them now: the keeper removes them. */
    uint64_t end = pu_now_ms() + 5000;
    while (count_wals(dir) > 1 && pu_now_ms() < end)
        pu_sleep_us(20000);
    CHECK(count_wals(dir) == 1);
    uint64_t v = 0;
    CHECK_OK(get_u64(db, "k", &v));
    CHECK(v == 2);
    REQUIRE_OK(stoat_close(db));
}

/* An exclusive open (multi_process = 0) and multi-process handles
 * exclude each other. */
static void test_mp_single_process_open_excluded(void)
{
    const char *dir = test_tmpdir();
    stoat_db *a = mp_open(dir), *s;
    stoat_options o;

    dbu_small_options(&o);
    o.multi_process = 0;
    CHECK_RC(stoat_open(dir, &o, &s), STOAT_EBUSY);
    REQUIRE_OK(stoat_close(a));
    REQUIRE_OK(stoat_open(dir, &o, &s));
    mp_options(&o);
    CHECK_RC(stoat_open(dir, &o, &a), STOAT_EBUSY);
    REQUIRE_OK(stoat_close(s));
}

/* Value-log GC in the background owner while another handle reads:
 * the other handle's snapshot keeps what it needs, every value reads back
 * through either handle, and the space comes back once the reader is gone. */
static void test_mp_gc_in_owner_while_another_handle_reads(void)
{
    const char *dir = test_tmpdir();
    stoat_options o;
    stoat_db *a, *b;
    stoat_iter *it;
    stoat_stats st;
    uint64_t reclaimed = 0, before;
    char key[16], val[4096];
    int n = 0, bad = 0;

    /* No automatic GC: it could take the garbage before stoat_gc does. */
    mp_options(&o);
    o.auto_gc = 0;
    REQUIRE_OK(stoat_open(dir, &o, &a));
    REQUIRE_OK(stoat_open(dir, &o, &b));
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 64; i++) {
            snprintf(key, sizeof(key), "g%03d", i);
            dbu_value((uint64_t)round << 32 | (uint64_t)i, val, sizeof(val));
            REQUIRE_OK(stoat_put(b, key, strlen(key), val, sizeof(val)));
        }
    }
    REQUIRE_OK(stoat_iter_open(b, NULL, &it));
    stoat_iter_seek_first(it);
    REQUIRE_OK(stoat_stats_get(a, &st));
    before = st.vlog_bytes;
    /* Only the owner (a, the first to open) runs GC. */
    CHECK_RC(stoat_gc(b, 0.3, &reclaimed), STOAT_EBUSY);
    REQUIRE_OK(stoat_gc(a, 0.3, &reclaimed));
    CHECK(reclaimed > 0);
    for (; stoat_iter_valid(it); stoat_iter_next(it), n++) {
        const void *v;
        size_t vlen;
        REQUIRE_OK(stoat_iter_value(it, &v, &vlen));
        dbu_value((uint64_t)2 << 32 | (uint64_t)n, val, sizeof(val));
        bad += vlen != sizeof(val) || memcmp(v, val, vlen) != 0;
    }
    CHECK_OK(stoat_iter_status(it));
    stoat_iter_close(it);
    CHECK(n == 64 && bad == 0);
    for (int i = 0; i < 64; i++) {
        void *v;
        size_t vlen;
        snprintf(key, sizeof(key), "g%03d", i);
        dbu_value((uint64_t)2 << 32 | (uint64_t)i, val, sizeof(val));
        for (int h = 0; h < 2; h++) {
            REQUIRE_OK(stoat_get(h ? b : a, key, strlen(key), &v, &vlen));
            bad += vlen != sizeof(val) || memcmp(v, val, vlen) != 0;
            stoat_free(v);
        }
    }
    CHECK(bad == 0);
    /* The reader is gone: the collected files go (the GC thread deletes
     * them within a few of its rounds, or the next stoat_gc). */
    REQUIRE_OK(stoat_gc(a, 0.3, &reclaimed));
    REQUIRE_OK(stoat_stats_get(a, &st));
    CHECK(st.vlog_bytes < before);
    REQUIRE_OK(stoat_close(b));
    REQUIRE_OK(stoat_close(a));
}

/* ---- processes ---- */

typedef struct rw_arg {
    const char *dir;
    int fd_in, fd_out;      /* pipe ends: tokens in, tokens out */
    int rounds;
    int sync;
    int first;              /* this side writes first */
} rw_arg;

/* Ping-pong: write round i, pass the token; the other side must see it
 * at once, then write round i+1. */
static int rw_side(void *p)
{
    rw_arg *a = p;
    stoat_options o;
    stoat_db *db;
    char key[32];

    mp_options(&o);
    o.sync = a->sync;
    if (stoat_open(a->dir, &o, &db) != 0)
        return 1;
    for (int i = a->first ? 0 : 1; i < a->rounds; i += 2) {
        uint64_t v;
        int tok;
        if (i > 0) {
            if (read(a->fd_in, &tok, sizeof(tok)) != (ssize_t)sizeof(tok) || tok != i - 1)
                return 2;
            snprintf(key, sizeof(key), "rw%06d", i - 1);
            if (get_u64(db, key, &v) != 0 || v != (uint64_t)(i - 1))
                return 3;   /* the other process's acknowledged write is not seen */
        }
        snprintf(key, sizeof(key), "rw%06d", i);
        if (put_u64(db, key, (uint64_t)i) != 0)
            return 4;
        tok = i;
        if (write(a->fd_out, &tok, sizeof(tok)) != (ssize_t)sizeof(tok))
            return 5;
    }
    return stoat_close(db) == 0 ? 0 : 6;
}

static void rw_run(int sync, int rounds)
{
    const char *dir = test_tmpdir();
    int ab[2], ba[2];
    pid_t pa, pb;

    REQUIRE(pipe(ab) == 0 && pipe(ba) == 0);
    rw_arg a = {dir, ba[0], ab[1], rounds, sync, 1};
    rw_arg b = {dir, ab[0], ba[1], rounds, sync, 0};
    pa = pu_spawn(rw_side, &a);
    pb = pu_spawn(rw_side, &b);
    CHECK(pu_wait(pa) == 0);
    CHECK(pu_wait(pb) == 0);
    close(ab[0]);
    close(ab[1]);
    close(ba[0]);
    close(ba[1]);
    stoat_db *db = mp_open(dir);
    char key[32];
    uint64_t v;
    for (int i = 0; i < rounds; i++) {
        snprintf(key, sizeof(key), "rw%06d", i);
        if (get_u64(db, key, &v) != 0) {
            test_fail(__FILE__, __LINE__, "key %s missing after reopen", key);
            break;
        }
    }
    REQUIRE_OK(stoat_close(db));
}

static void test_mp_read_your_writes_across_processes(void)
{
    rw_run(STOAT_SYNC_NONE, 2000);
}

static void test_mp_read_your_writes_across_processes_sync(void)
{
    rw_run(STOAT_SYNC_COMMIT, 200);
}

/* ---- many writers, small memtables: rotations, flushes, compactions ---- */

typedef struct fill_arg {
    const char *dir;
    int id, n;
} fill_arg;

/* Every third value goes to the value log (value_threshold 1 KiB). */
static size_t fill_len(int i)
{
    return i % 3 == 0 ? 1500 : 200;
}

static int fill_child(void *p)
{
    fill_arg *a = p;
    stoat_db *db;
    stoat_options o;
    char key[32], val[1500];

    mp_options(&o);
    if (stoat_open(a->dir, &o, &db) != 0)
        return 1;
    for (int i = 0; i < a->n; i++) {
        snprintf(key, sizeof(key), "p%d:%06d", a->id, i);
        dbu_value((uint64_t)a->id << 32 | (uint64_t)i, val, fill_len(i));
        if (stoat_put(db, key, strlen(key), val, fill_len(i)) != 0)
            return 2;
        /* Read back the other writers' keys now and then. */
        if (i % 100 == 99) {
            void *got;
            size_t glen;
            int other = (a->id + 1) % 4;
            snprintf(key, sizeof(key), "p%d:%06d", a->id, i / 2);
            if (stoat_get(db, key, strlen(key), &got, &glen) != 0)
                return 3;
            stoat_free(got);
            snprintf(key, sizeof(key), "p%d:%06d", other, 0);
            int rc = stoat_get(db, key, strlen(key), &got, &glen);
            if (rc == 0)
                stoat_free(got);
            else if (rc != STOAT_ENOTFOUND)
                return 4;
        }
    }
    return stoat_close(db) == 0 ? 0 : 5;
}

static void check_fill(const char *dir, int procs, int n)
{
    stoat_db *db = mp_open(dir);
    char key[32], want[1500];
    int bad = 0;

    for (int p = 0; p < procs; p++) {
        for (int i = 0; i < n; i++) {
            void *got;
            size_t glen;
            snprintf(key, sizeof(key), "p%d:%06d", p, i);
            dbu_value((uint64_t)p << 32 | (uint64_t)i, want, fill_len(i));
            if (stoat_get(db, key, strlen(key), &got, &glen) != 0) {
                bad++;
                continue;
            }
            bad += glen != fill_len(i) || memcmp(got, want, glen) != 0;
            stoat_free(got);
        }
    }
    CHECK(bad == 0);
    REQUIRE_OK(stoat_close(db));
}

static void test_mp_eight_writers_through_flushes_and_compactions(void)
{
    const char *dir = test_tmpdir();
    fill_arg args[8];
    pid_t pids[8];
    stoat_stats st;
    stoat_db *db;

    for (int i = 0; i < 8; i++) {
        args[i] = (fill_arg){dir, i, 1500};
        pids[i] = pu_spawn(fill_child, &args[i]);
    }
    for (int i = 0; i < 8; i++)
        CHECK(pu_wait(pids[i]) == 0);
    check_fill(dir, 8, 1500);
    /* 8 x 1500 entries through 64 KiB memtables: the owner flushed; a
     * third of the values went to the value log. */
    db = mp_open(dir);
    REQUIRE_OK(stoat_stats_get(db, &st));
    CHECK(st.level_tables[0] + st.level_tables[1] + st.level_tables[2] + st.level_tables[6] > 0);
    CHECK(st.vlog_files > 0 && st.vlog_bytes > 4 * 1000 * 1500);
    REQUIRE_OK(stoat_close(db));
}

/* ---- writers that never read ---- */

typedef struct blind_arg {
    const char *dir;
    int id, n;
    _Atomic int *started, *done, *go;
} blind_arg;

/* Waits until the owner is open, writes n keys without reading (its
 * process applies no other process's commits meanwhile), waits, then
 * reads its own back. */
static int blind_child(void *p)
{
    blind_arg *a = p;
    stoat_db *db;
    char key[32], val[1500];
    int bad = 0;

    if (!pu_wait_flag(a->started))
        return 3;
    db = mp_open(a->dir);

    for (int i = 0; i < a->n; i++) {
        snprintf(key, sizeof(key), "p%d:%06d", a->id, i);
        dbu_value((uint64_t)a->id << 32 | (uint64_t)i, val, fill_len(i));
        if (stoat_put(db, key, strlen(key), val, fill_len(i)) != 0)
            return 2;
    }
    atomic_fetch_add(a->done, 1);
    if (!pu_wait_flag(a->go))
        return 3;
    for (int i = 0; i < a->n; i++) {
        void *got;
        size_t glen;
        snprintf(key, sizeof(key), "p%d:%06d", a->id, i);
        dbu_value((uint64_t)a->id << 32 | (uint64_t)i, val, fill_len(i));
        if (stoat_get(db, key, strlen(key), &got, &glen) != 0) {
            bad++;
            continue;
        }
        bad += glen != fill_len(i) || memcmp(got, val, glen) != 0;
        stoat_free(got);
    }
    if (bad != 0) {
        fprintf(stderr, "  blind writer %d: %d keys wrong\n", a->id, bad);
        return 4;
    }
    return stoat_close(db) == 0 ? 0 : 5;
}

/* Three processes that only write, through rotations and flushes: they
 * hold back no WAL the owner flushed (live, they still let it go), and
 * each reads back everything it wrote once it reads. */
static void test_mp_writers_that_never_read(void)
{
    const char *dir = test_tmpdir();
    _Atomic int *flags = pu_shared(3 * sizeof(*flags));
    blind_arg args[3];
    pid_t pids[3];
    stoat_db *db;
    int wals = -1;

    /* The children are forked before the owner opens: a fork while this
     * process's background threads run can leave a child's allocator
     * locked (it did under ASan, whose allocator has no fork handlers). */
    for (int i = 0; i < 3; i++) {
        args[i] = (blind_arg){dir, i, 2000, &flags[2], &flags[0], &flags[1]};
        pids[i] = pu_spawn(blind_child, &args[i]);
    }
    db = behind_db = mp_open(dir);      /* the owner */
    atomic_store(&flags[2], 1);
    uint64_t end = pu_now_ms() + 20000;
    while (atomic_load(&flags[0]) < 3 && pu_now_ms() < end)
        pu_sleep_us(10000);
    CHECK(atomic_load(&flags[0]) == 3);
    end = pu_now_ms() + 5000;
    while ((wals = count_wals(dir)) > 3 && pu_now_ms() < end)
        pu_sleep_us(20000);
    if (wals > 3)
        fprintf(stderr, "  blind writers: %d WALs left\n", wals);
    CHECK(wals >= 1 && wals <= 3);
    atomic_store(&flags[1], 1);
    for (int i = 0; i < 3; i++)
        CHECK(pu_wait(pids[i]) == 0);
    REQUIRE_OK(stoat_close(db));
    check_fill(dir, 3, 2000);
    munmap((void *)flags, 3 * sizeof(*flags));
}

/* ---- a writer killed at random ---- */

typedef struct kill_arg {
    const char *dir;
    int id;
    int fd;     /* acknowledged sequence numbers out */
} kill_arg;

static int kill_child(void *p)
{
    kill_arg *a = p;
    stoat_db *db;
    stoat_options o;
    char key[32];

    mp_options(&o);
    if (stoat_open(a->dir, &o, &db) != 0)
        return 1;
    for (uint32_t i = 0;; i++) {
        char big[2048];
        snprintf(key, sizeof(key), "w%d:%08u", a->id, i);
        memset(big, 'a' + (int)(i % 26), sizeof(big));
        memcpy(big, &i, sizeof(i));
        /* A value-log value under a key of its own, then the small one. */
        if (i % 4 == 0 && stoat_put(db, key, strlen(key) - 1, big, sizeof(big)) != 0)
            return 2;
        if (put_u64(db, key, i) != 0)
            return 2;
        if (write(a->fd, &i, sizeof(i)) != (ssize_t)sizeof(i))
            return 3;
    }
}

/* Kills writer `id` after a random delay; returns how many writes it had
 * acknowledged (all of them must be readable). */
static void test_mp_killed_writers_lose_nothing(void)
{
    const char *dir = test_tmpdir();
    int rounds = getenv("STOAT_MP_KILLS") ? atoi(getenv("STOAT_MP_KILLS")) : 20;
    uint32_t acked[3] = {0, 0, 0};
    int started[3] = {0, 0, 0};
    uint64_t seed = getenv("STOAT_SEED") ? strtoull(getenv("STOAT_SEED"), NULL, 10) : 42;
    int lost = 0;

    for (int r = 0; r < rounds; r++) {
        int id = r % 3, fds[2];
        REQUIRE(pipe(fds) == 0);
        kill_arg a = {dir, id, fds[1]};
        pid_t pid = pu_spawn(kill_child, &a);
        close(fds[1]);
        pu_sleep_us(5000 + (long)(test_rand(&seed) % 60000));
        kill(pid, SIGKILL);
        uint32_t i, last = 0;
        int any = 0;
        while (read(fds[0], &i, sizeof(i)) == (ssize_t)sizeof(i)) {
            last = i;
            any = 1;
        }
        close(fds[0]);
        pu_wait(pid);
        /* Writer id restarts its numbering every round: keep the max. */
        if (any && (!started[id] || last + 1 > acked[id]))
            acked[id] = last + 1;
        started[id] |= any;
    }
    stoat_db *db = mp_open(dir);
    for (int id = 0; id < 3; id++) {
        for (uint32_t i = 0; i < acked[id]; i++) {
            char key[32];
            uint64_t v;
            snprintf(key, sizeof(key), "w%d:%08u", id, i);
            if (get_u64(db, key, &v) != 0 || v != i)
                lost++;
        }
    }
    CHECK(lost == 0);
    REQUIRE_OK(stoat_close(db));
}

/* ---- the bank across processes ---- */

#define BANK_ACCOUNTS 16
#define BANK_START 1000

typedef struct bank_arg {
    const char *dir;
    int id;
    int ms;
    _Atomic int *violations;
} bank_arg;

static int bank_read(stoat_txn *t, int acct, int64_t *bal)
{
    char key[16];
    const void *val;
    size_t vlen;
    int rc;

    snprintf(key, sizeof(key), "acct%02d", acct);
    if ((rc = stoat_txn_get(t, key, strlen(key), &val, &vlen)) != 0)
        return rc;
    if (vlen != sizeof(*bal))
        return STOAT_ECORRUPT;
    memcpy(bal, val, sizeof(*bal));
    return 0;
}

static int bank_worker(void *p)
{
    bank_arg *a = p;
    stoat_db *db;
    stoat_options o;
    uint64_t seed = (uint64_t)a->id * 7919 + 1;
    uint64_t end = pu_now_ms() + (uint64_t)a->ms;

    mp_options(&o);
    if (stoat_open(a->dir, &o, &db) != 0)
        return 1;
    while (pu_now_ms() < end) {
        stoat_txn *t;
        int from = (int)(test_rand(&seed) % BANK_ACCOUNTS), to = (int)(test_rand(&seed) % BANK_ACCOUNTS);
        int64_t fb, tb, amt = (int64_t)(test_rand(&seed) % 50);
        char key[16];
        int rc;

        if (from == to)
            continue;
        if (stoat_txn_begin(db, 0, &t) != 0)
            return 2;
        if (bank_read(t, from, &fb) != 0 || bank_read(t, to, &tb) != 0) {
            fprintf(stderr, "  bank: worker read: %s\n", stoat_errmsg(NULL));
            return 3;
        }
        if (fb >= amt) {
            fb -= amt;
            tb += amt;
            snprintf(key, sizeof(key), "acct%02d", from);
            stoat_txn_set(t, key, strlen(key), &fb, sizeof(fb));
            snprintf(key, sizeof(key), "acct%02d", to);
            stoat_txn_set(t, key, strlen(key), &tb, sizeof(tb));
        }
        rc = stoat_txn_commit(t);
        stoat_txn_discard(t);
        if (rc != 0 && rc != STOAT_ECONFLICT) {
            fprintf(stderr, "  bank: commit: %s\n", stoat_errmsg(NULL));
            return 4;
        }
    }
    return stoat_close(db) == 0 ? 0 : 5;
}

static int bank_auditor(void *p)
{
    bank_arg *a = p;
    stoat_db *db;
    stoat_options o;
    uint64_t end = pu_now_ms() + (uint64_t)a->ms;

    mp_options(&o);
    if (stoat_open(a->dir, &o, &db) != 0)
        return 1;
    while (pu_now_ms() < end) {
        stoat_txn *t;
        int64_t sum = 0, b;
        if (stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &t) != 0)
            return 2;
        for (int i = 0; i < BANK_ACCOUNTS; i++) {
            int rc = bank_read(t, i, &b);
            if (rc != 0) {
                fprintf(stderr, "  bank: auditor read: %s\n", stoat_errmsg(NULL));
                return 3;
            }
            if (b < 0)
                atomic_fetch_add(a->violations, 1);
            sum += b;
        }
        if (sum != (int64_t)BANK_ACCOUNTS * BANK_START) {
            if (atomic_fetch_add(a->violations, 1) < 3)
                fprintf(stderr, "  bank: the auditor's snapshot at %llu sums to %lld\n",
                        (unsigned long long)stoat_txn_read_version(t), (long long)sum);
        }
        stoat_txn_discard(t);
    }
    return stoat_close(db) == 0 ? 0 : 5;
}

static void test_mp_bank_four_processes_and_an_auditor(void)
{
    const char *dir = test_tmpdir();
    _Atomic int *violations = pu_shared(sizeof(*violations));
    int ms = getenv("STOAT_MP_BANK_MS") ? atoi(getenv("STOAT_MP_BANK_MS")) : 2000;
    bank_arg args[5];
    pid_t pids[5];
    stoat_db *db = mp_open(dir);

    for (int i = 0; i < BANK_ACCOUNTS; i++) {
        char key[16];
        int64_t b = BANK_START;
        snprintf(key, sizeof(key), "acct%02d", i);
        REQUIRE_OK(stoat_put(db, key, strlen(key), &b, sizeof(b)));
    }
    REQUIRE_OK(stoat_close(db));
    for (int i = 0; i < 5; i++) {
        args[i] = (bank_arg){dir, i, ms, violations};
        pids[i] = pu_spawn(i < 4 ? bank_worker : bank_auditor, &args[i]);
    }
    for (int i = 0; i < 5; i++)
        CHECK(pu_wait(pids[i]) == 0);
    CHECK(atomic_load(violations) == 0);
    /* After a restart, the money is all there. */
    db = mp_open(dir);
    int64_t total = 0;
    stoat_txn *t;
    REQUIRE_OK(stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &t));
    for (int i = 0; i < BANK_ACCOUNTS; i++) {
        int64_t b = 0;
        CHECK_OK(bank_read(t, i, &b));
        total += b;
    }
    stoat_txn_discard(t);
    if (total != (int64_t)BANK_ACCOUNTS * BANK_START)
        fprintf(stderr, "  bank: after a restart the accounts sum to %lld\n", (long long)total);
    CHECK(total == (int64_t)BANK_ACCOUNTS * BANK_START);
    REQUIRE_OK(stoat_close(db));
    munmap((void *)violations, sizeof(*violations));
}

/* ---- fork ---- */

static stoat_db *fork_db;

static int forked_use(void *p)
{
    uint64_t v;
    (void)p;
    return get_u64(fork_db, "k", &v) == STOAT_EFORKED ? 0 : 1;
}

static int forked_open(void *p)
{
    stoat_options o;
    stoat_db *db;
    uint64_t v = 0;

    mp_options(&o);
    if (stoat_open(p, &o, &db) != 0)
        return 1;
    if (get_u64(db, "k", &v) != 0 || v != 7)
        return 2;
    if (put_u64(db, "k", 8) != 0)
        return 3;
    return stoat_close(db) == 0 ? 0 : 4;
}

static void test_mp_fork_child_opens_its_own(void)
{
    const char *dir = test_tmpdir();
    uint64_t v = 0;

    fork_db = mp_open(dir);
    REQUIRE_OK(put_u64(fork_db, "k", 7));
    CHECK(pu_run(forked_use, NULL) == 0);
    CHECK(pu_run(forked_open, (void *)dir) == 0);
    CHECK_OK(get_u64(fork_db, "k", &v));
    CHECK(v == 8);
    REQUIRE_OK(stoat_close(fork_db));
}

/* ---- the block cache budget ---- */

static uint64_t cache_capacity(stoat_db *db)
{
    stoat_stats st;

    REQUIRE_OK(stoat_stats_get(db, &st));
    return st.block_cache_capacity;
}

/* 1 once every handle of dbs[0..n) caches `want` bytes at most, within
 * a few keeper rounds. */
static int caches_become(stoat_db **dbs, int n, uint64_t want)
{
    uint64_t end = pu_now_ms() + 10000;
    int ok;

    do {
        ok = 1;
        for (int i = 0; i < n; i++)
            ok &= cache_capacity(dbs[i]) == want;
        if (!ok)
            pu_sleep_us(20000);
    } while (!ok && pu_now_ms() < end);
    for (int i = 0; !ok && i < n; i++)
        fprintf(stderr, "  handle %d caches %llu, want %llu\n", i,
                (unsigned long long)cache_capacity(dbs[i]), (unsigned long long)want);
    return ok;
}

/* Without the shared block cache (an encrypted database keeps decrypted
 * blocks out of files), cache_size is the budget of all handles together:
 * each caches its share of it as handles come and go, never less than
 * 4 MiB (behaviour 7). */
static void test_mp_cache_budget_is_shared(void)
{
    static const uint8_t key[STOAT_KEY_LEN] = {7, 1, 2, 3};
    const char *dir = test_tmpdir();
    stoat_options o;
    stoat_stats st;
    stoat_db *dbs[4];

    mp_options(&o);
    o.cache_size = 64u << 20;
    o.encryption_key = key;
    REQUIRE_OK(stoat_open(dir, &o, &dbs[0]));
    REQUIRE_OK(stoat_stats_get(dbs[0], &st));
    CHECK(st.shared_cache_bytes == 0);
    CHECK(caches_become(dbs, 1, 64u << 20));
    for (int i = 1; i < 4; i++)
        REQUIRE_OK(stoat_open(dir, &o, &dbs[i]));
    CHECK(caches_become(dbs, 4, 16u << 20));
    REQUIRE_OK(stoat_close(dbs[3]));
    REQUIRE_OK(stoat_close(dbs[2]));
    CHECK(caches_become(dbs, 2, 32u << 20));
    /* Many handles: the floor. */
    o.cache_size = 8u << 20;
    REQUIRE_OK(stoat_open(dir, &o, &dbs[2]));
    REQUIRE_OK(stoat_open(dir, &o, &dbs[3]));
    CHECK(caches_become(dbs + 2, 2, 4u << 20));
    CHECK(caches_become(dbs, 2, 16u << 20));
    for (int i = 0; i < 4; i++)
        REQUIRE_OK(stoat_close(dbs[i]));
}

/* Reads every key of a database of many blocks (more than a handle's own
 * cache holds), checking each value. */
static void read_all(stoat_db *db, int n)
{
    for (int i = 0; i < n; i++) {
        char k[16], want[100];
        void *v = NULL;
        size_t vlen;

        snprintf(k, sizeof(k), "k%08d", i);
        dbu_value((uint64_t)i, want, sizeof(want));
        REQUIRE_OK(stoat_get(db, k, strlen(k), &v, &vlen));
        CHECK(vlen == sizeof(want) && memcmp(v, want, vlen) == 0);
        free(v);
    }
}

/* The decompressed blocks one handle read serve the others (behaviour
 * 7): with others live, each handle keeps only 256 KiB of its own, whoever
 * reads first fills the shared block cache, and a later reader finds
 * every block there. */
static void test_mp_block_cache_is_shared(void)
{
    const char *dir = test_tmpdir();
    stoat_options o;
    stoat_stats s1, s2;
    stoat_db *a, *b;
    int n = 30000;

    mp_options(&o);
    o.cache_size = 64u << 20;
    REQUIRE_OK(stoat_open(dir, &o, &a));
    for (int i = 0; i < n; i++) {
        char k[16], v[100];

        snprintf(k, sizeof(k), "k%08d", i);
        dbu_value((uint64_t)i, v, sizeof(v));
        REQUIRE_OK(stoat_put(a, k, strlen(k), v, sizeof(v)));
    }
    REQUIRE_OK(stoat_flatten(a));
    CHECK(caches_become(&a, 1, 64u << 20));     /* alone: all of it, as exclusive */
    REQUIRE_OK(stoat_open(dir, &o, &b));
    CHECK(caches_become(&a, 1, 256u << 10) && caches_become(&b, 1, 256u << 10));
    read_all(a, n);     /* ~3.6 MB of blocks through a 256 KiB own cache */
    REQUIRE_OK(stoat_stats_get(a, &s1));
    CHECK(s1.shared_cache_misses > 0);
    CHECK(s1.shared_cache_bytes >= (2u << 20));
    read_all(b, n);
    REQUIRE_OK(stoat_stats_get(b, &s2));
    CHECK(s2.shared_cache_hits > 1000);
    /* Nothing read from the files but for the few blocks a full set of
     * the index dropped. */
    CHECK(s2.shared_cache_misses * 50 < s2.shared_cache_hits);
    CHECK(s2.shared_cache_bytes == s1.shared_cache_bytes);
    REQUIRE_OK(stoat_close(b));
    REQUIRE_OK(stoat_close(a));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_mp_two_handles_see_each_other);
    TEST_RUN(test_mp_write_skew_conflicts_across_handles);
    TEST_RUN(test_mp_phantom_conflicts_across_handles);
    TEST_RUN(test_mp_process_behind_a_flushed_wal_conflicts);
    TEST_RUN(test_mp_other_shared_state_version_refused);
    TEST_RUN(test_mp_bulk_load_in_the_owner);
    TEST_RUN(test_mp_sync_covers_other_handles_values);
    TEST_RUN(test_mp_durable_commit_behind_an_unsynced_value);
    TEST_RUN(test_mp_failed_fsync_stops_every_writer);
    TEST_RUN(test_mp_single_process_open_excluded);
    TEST_RUN(test_mp_gc_in_owner_while_another_handle_reads);
    TEST_RUN(test_mp_read_your_writes_across_processes);
    TEST_RUN(test_mp_read_your_writes_across_processes_sync);
    TEST_RUN(test_mp_eight_writers_through_flushes_and_compactions);
    TEST_RUN(test_mp_writers_that_never_read);
    TEST_RUN(test_mp_killed_writers_lose_nothing);
    TEST_RUN(test_mp_bank_four_processes_and_an_auditor);
    TEST_RUN(test_mp_fork_child_opens_its_own);
    TEST_RUN(test_mp_cache_budget_is_shared);
    TEST_RUN(test_mp_block_cache_is_shared);
    return test_summary();
}
