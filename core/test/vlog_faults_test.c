/*
 * vlog_faults_test.c - the value log's file table under load and faults:
 * removal while a read is in flight, eviction sparing files in use, the
 * bound on open files, failed appends and syncs, power loss at random
 * points under the fault env, concurrent readers during appends. Helpers
 * in vlog_util.h.
 */
#include <dirent.h>
#include <pthread.h>
#include <unistd.h>

#include "env/env.h"
#include "base/ikey.h"
#include "base/status.h"
#include "vlog/vlog.h"
#include "support/env_fault.h"
#include "test.h"
#include "vlog_util.h"

/* The read hook blocks a read of `fid` until released. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t fid;
    int entered, released;
} gate;

static void gate_hook(void *arg, uint32_t fid)
{
    gate *g = arg;

    if (fid != g->fid)
        return;
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->released)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

/* Wait until the gated read is inside vlog_read, with its file pinned. */
static void gate_wait_entered(gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_release(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->released = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

typedef struct reader_arg {
    vlog *l;
    const rec *r;
    int rc;
} reader_arg;

static void *reader_main(void *arg)
{
    reader_arg *a = arg;

    a->rc = read_rec(a->l, a->r);
    return NULL;
}

static void test_vlog_remove_file_while_a_read_holds_it(void)
{
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0, 0};
    vlog_options o = {0};
    rec r[6];
    reader_arg ra;
    pthread_t t;
    uint32_t *fids;
    size_t n;
    vlog *l;

    o.file_size = 300;
    o.read_hook = gate_hook;
    o.read_hook_arg = &g;
    REQUIRE_OK(vlog_open(env_posix(), test_tmpdir(), &o, &l));
    for (int i = 0; i < 6; i++) {
        rec_make(&r[i], i, 100);
        append_rec(l, &r[i]);
    }
    REQUIRE(r[0].p.fid == 1 && r[5].p.fid > 2);
    ra = (reader_arg){l, &r[0], -99};
    REQUIRE(pthread_create(&t, NULL, reader_main, &ra) == 0);
    gate_wait_entered(&g);
    CHECK_RC(vlog_remove_file(l, 1), 0);
    CHECK(env_exists(env_posix(), fpath(1)) == 1);    /* still being read */
    CHECK_RC(read_rec(l, &r[1]), STOAT_ENOTFOUND);
    CHECK(vlog_file_size(l, 1) == 0);
    CHECK_RC(vlog_remove_file(l, 1), STOAT_ENOTFOUND);
    gate_release(&g);
    pthread_join(t, NULL);
    CHECK_RC(ra.rc, 0);
    CHECK(env_exists(env_posix(), fpath(1)) == 0);    /* the last user unlinked it */
    /* Removing a file nobody reads unlinks it at once; the newest stays. */
    CHECK_RC(vlog_remove_file(l, 2), 0);
    CHECK(env_exists(env_posix(), fpath(2)) == 0);
    CHECK_RC(vlog_remove_file(l, vlog_active_fid(l)), STOAT_EINVAL);
    CHECK_RC(vlog_sync(l), 0);
    REQUIRE_OK(vlog_files(l, &fids, &n));
    CHECK(n > 0 && fids[0] == 3);
    free(fids);
    vlog_close(l);
    /* After a restart: the remaining files, appends continue in the newest. */
    l = open_log(env_posix(), test_tmpdir(), 300, 0);
    CHECK_RC(read_rec(l, &r[5]), 0);
    CHECK(vlog_active_fid(l) == r[5].p.fid);
    vlog_close(l);
}

static void test_vlog_eviction_spares_files_in_use(void)
{
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0, 0};
    vlog_options o = {0};
    reader_arg ra;
    pthread_t t;
    rec r[8];
    vlog *l;

    o.max_open_files = 1;
    o.read_hook = gate_hook;
    o.read_hook_arg = &g;
    REQUIRE_OK(vlog_open(env_posix(), test_tmpdir(), &o, &l));
    for (int i = 0; i < 8; i++) {
        rec_make(&r[i], i, 1000);
        append_rec(l, &r[i]);
        REQUIRE_OK(vlog_rotate(l));
    }
    REQUIRE_OK(vlog_sync(l));   /* sealed files become evictable */
    ra = (reader_arg){l, &r[0], -99};
    REQUIRE(pthread_create(&t, NULL, reader_main, &ra) == 0);
    gate_wait_entered(&g);
    /* Other files go through the one-file LRU while file 1 is pinned. */
    for (int i = 1; i < 8; i++)
        CHECK_RC(read_rec(l, &r[i]), 0);
    CHECK(vlog_open_count(l) <= 2);
    gate_release(&g);
    pthread_join(t, NULL);
    CHECK_RC(ra.rc, 0);
    CHECK(vlog_open_count(l) <= 2);
    for (int i = 0; i < 8; i++)
        CHECK_RC(read_rec(l, &r[i]), 0);
    CHECK(vlog_open_count(l) == 1);
    vlog_close(l);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static void test_vlog_open_files_are_bounded(void)
{
    vlog_options o = {0};
    rec r[12];
    int base;
    vlog *l = open_log(env_posix(), test_tmpdir(), 0, 0);

    for (int i = 0; i < 12; i++) {
        rec_make(&r[i], i, 30);
        append_rec(l, &r[i]);
        REQUIRE_OK(vlog_rotate(l));
    }
    vlog_close(l);
    base = count_fds();
    o.max_open_files = 3;
    REQUIRE_OK(vlog_open(env_posix(), test_tmpdir(), &o, &l));
    CHECK(vlog_open_count(l) <= 3);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 12; i++) {
            CHECK_RC(read_rec(l, &r[i]), 0);
            CHECK(vlog_open_count(l) <= 3);
            if (base >= 0)
                CHECK(count_fds() <= base + 4);     /* 3 sealed + the active file */
        }
    }
    vlog_close(l);
    if (base >= 0)
        CHECK(count_fds() == base);
}

static void test_vlog_failed_append_is_cut_off(void)
{
    env *fe = env_fault_new(env_posix());
    size_t big = 400 << 10;
    rec r[5];
    vlog *l = open_log(fe, test_tmpdir(), 0, 0);
    int n = 0;

    for (int i = 0; i < 2; i++) {
        rec_make(&r[i], i, 50);
        append_rec(l, &r[i]);
    }
    env_fault_fail_append(fe, 1, 28 /* ENOSPC */);
    rec_make(&r[2], 2, 50);
    {
        vptr p;
        char v[50] = {0};
        CHECK_RC(vlog_append(l, rec_key(&r[2]), slice_make(v, 50), &p), STOAT_ENOSPC);
    }
    /* A large record written in pieces, failing after its first piece. */
    env_fault_fail_append(fe, 2, 28);
    {
        vptr p;
        char *v = calloc(1, big);
        REQUIRE(v != NULL);
        CHECK_RC(vlog_append(l, rec_key(&r[2]), slice_make(v, big), &p), STOAT_ENOSPC);
        free(v);
    }
    env_fault_fail_append(fe, 0, 0);
    append_rec(l, &r[2]);
    CHECK(r[2].p.offset == r[1].p.offset + r[1].p.len);
    rec_make(&r[3], 3, big);
    append_rec(l, &r[3]);
    REQUIRE_OK(vlog_rotate(l));
    CHECK_RC(vlog_scan(l, 1, count_fn, &n), 0);
    CHECK(n == 4);
    for (int i = 0; i < 4; i++)
        CHECK_RC(read_rec(l, &r[i]), 0);
    vlog_close(l);
    env_fault_free(fe);
}

static void test_vlog_failed_sync_is_sticky(void)
{
    env *fe = env_fault_new(env_posix());
    rec r[2];
    vlog *l = open_log(fe, test_tmpdir(), 0, 0);

    rec_make(&r[0], 0, 50);
    append_rec(l, &r[0]);
    env_fault_fail_sync(fe, 1);
    CHECK_RC(vlog_sync(l), STOAT_EIO);
    env_fault_fail_sync(fe, 0);
    CHECK_RC(vlog_sync(l), STOAT_EIO);
    {
        vptr p;
        rec_make(&r[1], 1, 50);
        CHECK_RC(vlog_append(l, rec_key(&r[1]), slice_make("v", 1), &p), STOAT_EIO);
        CHECK(strstr(status_msg(), "earlier") != NULL);
    }
    CHECK_RC(vlog_rotate(l), STOAT_EIO);
    CHECK_RC(read_rec(l, &r[0]), 0);    /* reads still work */
    vlog_close(l);
    env_fault_free(fe);
}

/* Power loss at a random point of a random run of appends and syncs. */
static void crash_once(uint64_t *rng, const char *dir)
{
    enum { MAX = 200 };
    env *fe = env_fault_new(env_posix());
    rec *r = calloc(MAX, sizeof(*r));
    int n = 0, synced = 0, ops = 1 + (int)(test_rand(rng) % 80), mode = (int)(test_rand(rng) % 3);
    int crash_at = (int)(test_rand(rng) % (uint64_t)ops);
    vlog *l;

    REQUIRE(r != NULL);
    l = open_log(fe, dir, 1024, 0);
    if (mode == 1)
        env_fault_fail_append(fe, 1 + (long)(test_rand(rng) % 40), 28);
    if (mode == 2)
        env_fault_fail_sync(fe, 1 + (long)(test_rand(rng) % 8));
    for (int op = 0; op < ops && n < MAX; op++) {
        if (op == crash_at)
            env_fault_crash(fe);
        if (test_rand(rng) % 5 == 0) {
            if (vlog_sync(l) == 0)
                synced = n;
        } else {
            vptr p;
            char v[700];
            rec_make(&r[n], n, (size_t)(test_rand(rng) % 700));
            fill_value(v, r[n].vlen, r[n].seed);
            if (vlog_append(l, rec_key(&r[n]), slice_make(v, r[n].vlen), &p) == 0)
                r[n++].p = p;
        }
    }
    vlog_close(l);
    REQUIRE_OK(env_fault_drop_unsynced(fe));
    l = open_log(fe, dir, 1024, 0);
    for (int i = 0; i < synced; i++)
        CHECK_RC(read_rec(l, &r[i]), 0);
    rec_make(&r[0], 1000, 123);
    append_rec(l, &r[0]);
    CHECK_RC(read_rec(l, &r[0]), 0);
    REQUIRE_OK(vlog_rotate(l));
    for (uint32_t fid = 1; fid < vlog_active_fid(l); fid++)
        if (vlog_file_size(l, fid) > 0)
            CHECK_RC(vlog_scan(l, fid, count_fn, &(int){0}), 0);
    vlog_close(l);
    env_fault_free(fe);
    free(r);
}

static void test_vlog_power_loss_keeps_synced_records(void)
{
    uint64_t rng = 0x5eed;

    for (int i = 0; i < 100; i++) {
        char name[32];
        char *dir;

        snprintf(name, sizeof(name), "run%03d", i);
        REQUIRE((dir = env_join(test_tmpdir(), name)) != NULL);
        REQUIRE_OK(env_mkdir(env_posix(), dir));
        crash_once(&rng, dir);
        free(dir);
        if (test_failed_now)
            break;
    }
}

typedef struct shared {
    pthread_mutex_t mu;
    rec *r;
    int n, done, wrong;
    vlog *l;
} shared;

static void *concurrent_reader(void *arg)
{
    shared *s = arg;
    uint64_t rng = (uint64_t)(uintptr_t)arg ^ 0x1234;

    for (;;) {
        int n, done;
        rec r;
        pthread_mutex_lock(&s->mu);
        n = s->n;
        done = s->done;
        if (n > 0)
            r = s->r[test_rand(&rng) % (uint64_t)n];
        pthread_mutex_unlock(&s->mu);
        if (n > 0 && read_rec(s->l, &r) != 0) {
            pthread_mutex_lock(&s->mu);
            s->wrong++;
            pthread_mutex_unlock(&s->mu);
        }
        if (done)
            return NULL;
    }
}

static void test_vlog_concurrent_reads_during_appends(void)
{
    enum { N = 3000 };
    shared s = {PTHREAD_MUTEX_INITIALIZER, calloc(N, sizeof(rec)), 0, 0, 0, NULL};
    pthread_t t[3];
    vlog_options o = {0};

    REQUIRE(s.r != NULL);
    o.file_size = 32 << 10;
    o.max_open_files = 2;
    REQUIRE_OK(vlog_open(env_posix(), test_tmpdir(), &o, &s.l));
    for (int i = 0; i < 3; i++)
        REQUIRE(pthread_create(&t[i], NULL, concurrent_reader, &s) == 0);
    for (int i = 0; i < N; i++) {
        rec x;
        rec_make(&x, i, (size_t)(i * 37 % 2000));
        append_rec(s.l, &x);
        pthread_mutex_lock(&s.mu);
        s.r[s.n++] = x;
        pthread_mutex_unlock(&s.mu);
    }
    pthread_mutex_lock(&s.mu);
    s.done = 1;
    pthread_mutex_unlock(&s.mu);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    CHECK(s.wrong == 0);
    CHECK(vlog_active_fid(s.l) > 10);
    vlog_close(s.l);
    free(s.r);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_vlog_remove_file_while_a_read_holds_it);
    TEST_RUN(test_vlog_eviction_spares_files_in_use);
    TEST_RUN(test_vlog_open_files_are_bounded);
    TEST_RUN(test_vlog_failed_append_is_cut_off);
    TEST_RUN(test_vlog_failed_sync_is_sticky);
    TEST_RUN(test_vlog_power_loss_keeps_synced_records);
    TEST_RUN(test_vlog_concurrent_reads_during_appends);
    return test_summary();
}
