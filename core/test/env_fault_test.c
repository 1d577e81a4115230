/*
 * env_fault_test.c - injected append/sync failures, simulated crashes and
 * the power-loss model of env_fault (see env_fault.c).
 */
#include "env/env.h"
#include "base/status.h"
#include "support/env_fault.h"
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

/* A malloc'd "<tmpdir>/name", freed by the caller. */
static char *tpath(const char *name)
{
    char *p = env_join(test_tmpdir(), name);

    REQUIRE(p != NULL);
    return p;
}

static env *fault_env(void)
{
    env *e = env_fault_new(env_posix());

    REQUIRE(e != NULL);
    return e;
}

/* Creates path through e with data; syncs the data and/or the directory. */
static void make_file(env *e, const char *path, const char *data, int sync, int sync_dir)
{
    env_file *f;

    REQUIRE_OK(env_open(e, path, ENV_WRITE | ENV_TRUNC, &f));
    REQUIRE_OK(env_append(f, data, strlen(data)));
    if (sync)
        REQUIRE_OK(env_sync(f));
    REQUIRE_OK(env_close(f));
    if (sync_dir)
        REQUIRE_OK(env_sync_dir(e, test_tmpdir()));
}

/* Appends data to path through e without syncing. */
static void add_unsynced(env *e, const char *path, const char *data)
{
    env_file *f;

    REQUIRE_OK(env_open(e, path, ENV_WRITE, &f));
    REQUIRE_OK(env_append(f, data, strlen(data)));
    REQUIRE_OK(env_close(f));
}

/* 1 if path holds exactly want (read with the real env). */
static int file_is(const char *path, const char *want)
{
    char *data;
    size_t len;
    int ok;

    if (env_read_all(env_posix(), path, &data, &len) != 0)
        return 0;
    ok = len == strlen(want) && memcmp(data, want, len) == 0;
    free(data);
    return ok;
}

/* Number of entries in the test directory, as the real env sees them. */
static size_t dir_entries(void)
{
    char **names;
    size_t n;

    REQUIRE_OK(env_list(env_posix(), test_tmpdir(), &names, &n));
    env_list_free(names, n);
    return n;
}

static void crash_and_drop(env *e)
{
    env_fault_crash(e);
    REQUIRE_OK(env_fault_drop_unsynced(e));
}

static void test_env_fault_passes_through(void)
{
    env *e = fault_env();
    char *p = tpath("a");
    env_file *f;
    char buf[8], **names;
    size_t n;

    make_file(e, p, "hello", 1, 1);
    REQUIRE_OK(env_open(e, p, ENV_READ, &f));
    REQUIRE_OK(env_read_exact(f, 1, buf, 4));
    CHECK(memcmp(buf, "ello", 4) == 0);
    REQUIRE_OK(env_close(f));
    CHECK(env_exists(e, p) == 1);
    REQUIRE_OK(env_list(e, test_tmpdir(), &names, &n));
    CHECK(n == 1 && strcmp(names[0], "a") == 0);
    env_list_free(names, n);
    CHECK(env_fault_appends(e) == 1);
    CHECK(env_fault_syncs(e) == 2); /* the file and its directory */
    CHECK_RC(env_open(e, "/nonexistent/x", ENV_READ, &f), STOAT_ENOTFOUND);
    env_fault_free(e);
    free(p);
}

static void test_env_fault_nth_append_fails_and_later_ones(void)
{
    env *e = fault_env();
    char *p = tpath("a");
    env_file *f;

    REQUIRE_OK(env_open(e, p, ENV_WRITE, &f));
    REQUIRE_OK(env_append(f, "x", 1));
    env_fault_fail_append(e, 3, EIO);
    REQUIRE_OK(env_append(f, "1", 1));
    REQUIRE_OK(env_append(f, "2", 1));
    CHECK_RC(env_append(f, "3", 1), STOAT_EIO);
    CHECK(strstr(status_msg(), "injected") != NULL && strstr(status_msg(), p) != NULL);
    CHECK_RC(env_append(f, "4", 1), STOAT_EIO);
    CHECK(env_fault_appends(e) == 5);
    env_fault_fail_append(e, 0, EIO);
    REQUIRE_OK(env_append(f, "5", 1));
    REQUIRE_OK(env_close(f));
    CHECK(file_is(p, "x125"));
    env_fault_free(e);
    free(p);
}

static void test_env_fault_enospc_maps_to_stoat_enospc(void)
{
    env *e = fault_env();
    char *p = tpath("a");
    env_file *f;

    REQUIRE_OK(env_open(e, p, ENV_WRITE, &f));
    env_fault_fail_append(e, 1, ENOSPC);
    CHECK_RC(env_append(f, "x", 1), STOAT_ENOSPC);
    CHECK(strstr(status_msg(), "No space") != NULL);
    REQUIRE_OK(env_close(f));
    env_fault_free(e);
    free(p);
}

static void test_env_fault_nth_sync_fails_files_and_dirs(void)
{
    env *e = fault_env();
    char *p = tpath("a");
    env_file *f;

    REQUIRE_OK(env_open(e, p, ENV_WRITE, &f));
    REQUIRE_OK(env_append(f, "abc", 3));
    env_fault_fail_sync(e, 2);
    REQUIRE_OK(env_sync(f));
    CHECK_RC(env_sync_dir(e, test_tmpdir()), STOAT_EIO);
    CHECK_RC(env_sync(f), STOAT_EIO);
    CHECK(env_fault_syncs(e) == 3);
    REQUIRE_OK(env_close(f));
    /* the failed directory sync made nothing durable */
    REQUIRE_OK(env_fault_drop_unsynced(e));
    CHECK(env_exists(env_posix(), p) == 0);
    env_fault_free(e);
    free(p);
}

static void test_env_fault_crash_fails_everything_but_release(void)
{
    env *e = fault_env();
    char *p = tpath("a"), *q = tpath("b"), *lk = tpath("LOCK");
    struct env_lock *l, *l2;
    env_file *w, *r, *f;
    char **names, buf[4];
    size_t n;
    uint64_t size;

    make_file(e, p, "data", 1, 1);
    REQUIRE_OK(env_lock(e, lk, 1, &l));
    REQUIRE_OK(env_open(e, p, ENV_WRITE, &w));
    REQUIRE_OK(env_open(e, p, ENV_READ, &r));
    env_fault_crash(e);
    CHECK_RC(env_append(w, "x", 1), STOAT_EIO);
    CHECK(strstr(status_msg(), "simulated crash") != NULL);
    CHECK_RC(env_sync(w), STOAT_EIO);
    CHECK_RC(env_truncate(w, 0), STOAT_EIO);
    CHECK_RC(env_file_size(w, &size), STOAT_EIO);
    CHECK_RC(env_read_at(r, 0, buf, 4, &n), STOAT_EIO);
    CHECK_RC(env_open(e, q, ENV_WRITE, &f), STOAT_EIO);
    CHECK_RC(env_open(e, p, ENV_READ, &f), STOAT_EIO);
    CHECK_RC(env_rename(e, p, q), STOAT_EIO);
    CHECK_RC(env_remove(e, p), STOAT_EIO);
    CHECK_RC(env_sync_dir(e, test_tmpdir()), STOAT_EIO);
    CHECK_RC(env_mkdir(e, q), STOAT_EIO);
    CHECK_RC(env_exists(e, p), STOAT_EIO);
    CHECK_RC(env_list(e, test_tmpdir(), &names, &n), STOAT_EIO);
    CHECK_RC(env_lock(e, q, 0, &l2), STOAT_EIO);
    CHECK_RC(env_close(w), 0);
    CHECK_RC(env_close(r), 0);
    env_unlock(e, l);
    /* the lock really was released */
    REQUIRE_OK(env_lock(env_posix(), lk, 1, &l2));
    env_unlock(env_posix(), l2);
    CHECK(file_is(p, "data"));
    env_fault_free(e);
    free(p);
    free(q);
    free(lk);
}

static void test_env_fault_drop_truncates_to_synced_length(void)
{
    env *e = fault_env();
    char *a = tpath("a"), *b = tpath("b");

    make_file(e, a, "abc", 1, 0);
    make_file(e, b, "never synced", 0, 1);
    add_unsynced(e, a, "def");
    crash_and_drop(e);
    CHECK(file_is(a, "abc"));
    CHECK(file_is(b, ""));
    /* the env works again, and what it writes now is tracked afresh */
    add_unsynced(e, a, "ghi");
    CHECK(file_is(a, "abcghi"));
    crash_and_drop(e);
    CHECK(file_is(a, "abc"));
    env_fault_free(e);
    free(a);
    free(b);
}

static void test_env_fault_drop_removes_names_never_made_durable(void)
{
    env *e = fault_env();
    char *a = tpath("a"), *b = tpath("b");

    make_file(e, a, "durable", 1, 1);
    make_file(e, b, "synced data, unsynced name", 1, 0);
    crash_and_drop(e);
    CHECK(file_is(a, "durable"));
    CHECK(env_exists(env_posix(), b) == 0);
    env_fault_free(e);
    free(a);
    free(b);
}

static void test_env_fault_preexisting_file_counts_as_synced(void)
{
    env *e = fault_env();
    char *a = tpath("a");
    env_file *f;

    REQUIRE_OK(env_open(env_posix(), a, ENV_WRITE, &f));
    REQUIRE_OK(env_append(f, "before", 6));
    REQUIRE_OK(env_close(f));
    add_unsynced(e, a, " after");
    CHECK(file_is(a, "before after"));
    crash_and_drop(e);
    CHECK(file_is(a, "before"));
    env_fault_free(e);
    free(a);
}

static void test_env_fault_truncate_and_trunc_open_take_effect(void)
{
    env *e = fault_env();
    char *a = tpath("a"), *b = tpath("b");
    env_file *f;

    make_file(e, a, "abcdef", 1, 1);
    make_file(e, b, "old content", 1, 1);
    REQUIRE_OK(env_open(e, a, ENV_WRITE, &f));
    REQUIRE_OK(env_truncate(f, 2));
    REQUIRE_OK(env_append(f, "xy", 2));
    REQUIRE_OK(env_close(f));
    make_file(e, b, "new, unsynced", 0, 0);
    crash_and_drop(e);
    CHECK(file_is(a, "ab"));
    CHECK(file_is(b, ""));
    env_fault_free(e);
    free(a);
    free(b);
}

/* The manifest rewrite: tmp written and synced, renamed over the target. */
static void rewrite(env *e, const char *tmp, const char *target, const char *data, int sync_dir)
{
    make_file(e, tmp, data, 1, 0);
    REQUIRE_OK(env_rename(e, tmp, target));
    if (sync_dir)
        REQUIRE_OK(env_sync_dir(e, test_tmpdir()));
}

static void test_env_fault_drop_undoes_unsynced_rename(void)
{
    env *e = fault_env();
    char *m = tpath("MANIFEST"), *tmp = tpath("MANIFEST.tmp");
    char **names;
    size_t n;

    REQUIRE_OK(env_write_atomic(e, test_tmpdir(), m, "v1", 2));
    rewrite(e, tmp, m, "v2", 0);
    CHECK(file_is(m, "v2"));
    CHECK(dir_entries() == 2); /* MANIFEST and the backup of v1 */
    REQUIRE_OK(env_list(e, test_tmpdir(), &names, &n));
    CHECK(n == 1 && strcmp(names[0], "MANIFEST") == 0); /* backup hidden */
    env_list_free(names, n);
    crash_and_drop(e);
    CHECK(file_is(m, "v1"));
    CHECK(env_exists(env_posix(), tmp) == 0);
    CHECK(dir_entries() == 1);
    env_fault_free(e);
    free(m);
    free(tmp);
}

static void test_env_fault_drop_keeps_synced_rename(void)
{
    env *e = fault_env();
    char *m = tpath("MANIFEST"), *tmp = tpath("MANIFEST.tmp");

    REQUIRE_OK(env_write_atomic(e, test_tmpdir(), m, "v1", 2));
    rewrite(e, tmp, m, "v2", 1);
    CHECK(dir_entries() == 1); /* the backup went with the directory sync */
    crash_and_drop(e);
    CHECK(file_is(m, "v2"));
    CHECK(dir_entries() == 1);
    env_fault_free(e);
    free(m);
    free(tmp);
}

static void test_env_fault_undone_rename_restores_old_name(void)
{
    env *e = fault_env();
    char *a = tpath("a"), *b = tpath("b"), *c = tpath("c");

    make_file(e, a, "A", 1, 1);
    REQUIRE_OK(env_rename(e, a, b));
    REQUIRE_OK(env_rename(e, b, c));
    add_unsynced(e, c, "+lost");
    crash_and_drop(e);
    CHECK(file_is(a, "A"));
    CHECK(env_exists(env_posix(), b) == 0);
    CHECK(env_exists(env_posix(), c) == 0);
    env_fault_free(e);
    free(a);
    free(b);
    free(c);
}

/* A crash at any point of env_write_atomic leaves the old or the new
 * content, never neither: fail each sync in turn, then each append. */
static void test_env_fault_write_atomic_is_atomic(void)
{
    env *e = fault_env();
    char *m = tpath("MANIFEST");
    long syncs;

    REQUIRE_OK(env_write_atomic(e, test_tmpdir(), m, "old", 3));
    syncs = env_fault_syncs(e);
    for (long i = 1; i <= syncs + 1; i++) {
        env_fault_fail_sync(e, i);
        (void)env_write_atomic(e, test_tmpdir(), m, "new", 3);
        crash_and_drop(e);
        CHECK(file_is(m, i <= syncs ? "old" : "new"));
        REQUIRE_OK(env_write_atomic(e, test_tmpdir(), m, "old", 3));
    }
    env_fault_fail_append(e, 1, ENOSPC);
    CHECK_RC(env_write_atomic(e, test_tmpdir(), m, "new", 3), STOAT_ENOSPC);
    CHECK(file_is(m, "old"));
    CHECK(dir_entries() == 1); /* the tmp file was cleaned up */
    env_fault_free(e);
    free(m);
}

struct appender {
    env *e;
    char *path;
    int rc;
};

static void *appender_run(void *arg)
{
    struct appender *a = arg;
    env_file *f;

    if ((a->rc = env_open(a->e, a->path, ENV_WRITE, &f)) != 0)
        return NULL;
    for (int i = 0; i < 200 && a->rc == 0; i++)
        a->rc = env_append(f, "0123456789", 10);
    if (a->rc == 0)
        a->rc = env_sync(f);
    env_close(f);
    return NULL;
}

static void test_env_fault_threads_share_one_env(void)
{
    env *e = fault_env();
    struct appender a[4];
    pthread_t t[4];
    char name[16];

    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        a[i] = (struct appender){ e, tpath(name), 0 };
        REQUIRE(pthread_create(&t[i], NULL, appender_run, &a[i]) == 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    REQUIRE_OK(env_sync_dir(e, test_tmpdir()));
    add_unsynced(e, a[0].path, "tail");
    crash_and_drop(e);
    for (int i = 0; i < 4; i++) {
        uint64_t size = 0;
        env_file *f;

        CHECK_RC(a[i].rc, 0);
        REQUIRE_OK(env_open(env_posix(), a[i].path, ENV_READ, &f));
        REQUIRE_OK(env_file_size(f, &size));
        CHECK(size == 2000);
        env_close(f);
        free(a[i].path);
    }
    CHECK(env_fault_appends(e) == 801);
    env_fault_free(e);
}

/* ---- env_fault_crash_copy: reordered power-loss states ---- */

/* A database-like directory "<tmp>/d": file a with 100 synced bytes and
 * three unsynced appends of 1000 bytes ('1', '2', '3'); file b created
 * and synced but its name not; MANIFEST rewritten, the rename unsynced. */
static void state_setup(env *e, char *d, char *a, char *b, char *m, char *tmp)
{
    env_file *f;
    char chunk[1000];

    REQUIRE_OK(env_mkdir(e, d));
    REQUIRE_OK(env_open(e, a, ENV_WRITE | ENV_TRUNC, &f));
    memset(chunk, 'x', 100);
    REQUIRE_OK(env_append(f, chunk, 100));
    REQUIRE_OK(env_sync(f));
    REQUIRE_OK(env_write_atomic(e, d, m, "v1", 2));     /* syncs the directory too */
    for (int i = 0; i < 3; i++) {
        memset(chunk, '1' + i, sizeof(chunk));
        REQUIRE_OK(env_append(f, chunk, sizeof(chunk)));
    }
    REQUIRE_OK(env_close(f));
    REQUIRE_OK(env_open(e, b, ENV_WRITE | ENV_TRUNC, &f));
    REQUIRE_OK(env_append(f, "bee", 3));
    REQUIRE_OK(env_sync(f));
    REQUIRE_OK(env_close(f));
    REQUIRE_OK(env_open(e, tmp, ENV_WRITE | ENV_TRUNC, &f));
    REQUIRE_OK(env_append(f, "v2", 2));
    REQUIRE_OK(env_sync(f));
    REQUIRE_OK(env_close(f));
    REQUIRE_OK(env_rename(e, tmp, m));
}

/* What one state of file a holds: its size; *prefix_ok when every byte is
 * the one written there or (past the synced 100) zero; *zeros_seen when
 * some are zero. */
static size_t state_a(const char *path, int *prefix_ok, int *zeros_seen)
{
    char *data;
    size_t len;

    *prefix_ok = 1;
    *zeros_seen = 0;
    REQUIRE_OK(env_read_all(env_posix(), path, &data, &len));
    for (size_t i = 0; i < len; i++) {
        char want = i < 100 ? 'x' : (char)('1' + (i - 100) / 1000);

        if (data[i] == 0 && i >= 100)
            *zeros_seen = 1;
        else if (data[i] != want)
            *prefix_ok = 0;
    }
    free(data);
    return len;
}

static void test_env_fault_crash_copy_reorders_within_the_rules(void)
{
    env *e = fault_env();
    char *d = tpath("d"), *a = tpath("d/a"), *b = tpath("d/b"), *m = tpath("d/MANIFEST");
    char *tmp = tpath("d/MANIFEST.tmp"), *out = tpath("out"), *oa = tpath("out/a");
    char *ob = tpath("out/b"), *om = tpath("out/MANIFEST"), desc[256];
    int seen_sizes[4] = {0}, torn = 0, zero_tail = 0, holes = 0, b_kept = 0, b_lost = 0;
    int renamed = 0, unrenamed = 0;

    state_setup(e, d, a, b, m, tmp);
    for (uint64_t seed = 0; seed < 400 && !test_failed_now; seed++) {
        int flags = seed % 4 == 0 ? 0 : seed % 4 == 1 ? ENV_FAULT_PREFIX | ENV_FAULT_NAMES
                    : seed % 4 == 2 ? ENV_FAULT_PREFIX | ENV_FAULT_TORN | ENV_FAULT_ZEROS
                    : ENV_FAULT_HOLES;
        int prefix_ok, zeros;
        size_t len;

        REQUIRE_OK(env_mkdir(env_posix(), out));
        REQUIRE_OK(env_fault_crash_copy(e, d, out, seed, flags, desc, sizeof(desc)));
        len = state_a(oa, &prefix_ok, &zeros);
        CHECK(prefix_ok && len >= 100 && len <= 3100);
        if (flags == 0)
            CHECK(len == 100 && !env_exists(env_posix(), ob) && file_is(om, "v1"));
        if (flags & ENV_FAULT_PREFIX && !(flags & ENV_FAULT_ZEROS))
            CHECK(!zeros && (len - 100) % 1000 == 0);
        if ((len - 100) % 1000 == 0 && !zeros)
            seen_sizes[(len - 100) / 1000]++;
        else if (!zeros)
            torn += len % 512 == 0;
        zero_tail += zeros && !(flags & ENV_FAULT_HOLES);
        holes += zeros && (flags & ENV_FAULT_HOLES);
        if (flags & ENV_FAULT_NAMES) {
            /* In order: b was created before the rename. */
            int has_b = env_exists(env_posix(), ob) == 1, v2 = file_is(om, "v2");

            CHECK(has_b || !v2);
            CHECK(v2 || file_is(om, "v1"));
            b_kept += has_b;
            b_lost += !has_b;
            renamed += v2;
            unrenamed += !v2;
        }
        (void)env_remove(env_posix(), oa);
        (void)env_remove(env_posix(), ob);
        (void)env_remove(env_posix(), om);
        REQUIRE(rmdir(out) == 0);
    }
    /* The source and the model are untouched: a plain power loss still
     * drops every unsynced byte and name. */
    CHECK(dir_entries() == 1);
    crash_and_drop(e);
    CHECK(file_is(m, "v1") && !env_exists(env_posix(), b));
    for (int i = 0; i < 4; i++)
        CHECK(seen_sizes[i] > 0);
    CHECK(torn > 0 && zero_tail > 0 && holes > 0);
    CHECK(b_kept > 0 && b_lost > 0 && renamed > 0 && unrenamed > 0);
    env_fault_free(e);
    free(d);
    free(a);
    free(b);
    free(m);
    free(tmp);
    free(out);
    free(oa);
    free(ob);
    free(om);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_env_fault_passes_through);
    TEST_RUN(test_env_fault_nth_append_fails_and_later_ones);
    TEST_RUN(test_env_fault_enospc_maps_to_stoat_enospc);
    TEST_RUN(test_env_fault_nth_sync_fails_files_and_dirs);
    TEST_RUN(test_env_fault_crash_fails_everything_but_release);
    TEST_RUN(test_env_fault_drop_truncates_to_synced_length);
    TEST_RUN(test_env_fault_drop_removes_names_never_made_durable);
    TEST_RUN(test_env_fault_preexisting_file_counts_as_synced);
    TEST_RUN(test_env_fault_truncate_and_trunc_open_take_effect);
    TEST_RUN(test_env_fault_drop_undoes_unsynced_rename);
    TEST_RUN(test_env_fault_drop_keeps_synced_rename);
    TEST_RUN(test_env_fault_undone_rename_restores_old_name);
    TEST_RUN(test_env_fault_write_atomic_is_atomic);
    TEST_RUN(test_env_fault_threads_share_one_env);
    TEST_RUN(test_env_fault_crash_copy_reorders_within_the_rules);
    return test_summary();
}
