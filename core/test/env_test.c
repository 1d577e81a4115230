/*
 * env_test.c - the POSIX env and the shared env helpers.
 */
#include "env/env.h"
#include "base/status.h"
#include "test.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

/* A malloc'd "<tmpdir>/name", freed by the caller. */
static char *tpath(const char *name)
{
    char *p = env_join(test_tmpdir(), name);

    REQUIRE(p != NULL);
    return p;
}

/* Writes data to a fresh file at path. */
static void put_file(const char *path, const char *data)
{
    env_file *f;

    REQUIRE_OK(env_open(env_posix(), path, ENV_WRITE | ENV_TRUNC, &f));
    REQUIRE_OK(env_append(f, data, strlen(data)));
    REQUIRE_OK(env_close(f));
}

/* 1 if path holds exactly want. */
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

static void test_env_append_read_size(void)
{
    char *p = tpath("a");
    env_file *f;
    char buf[32];
    size_t n;
    uint64_t size;

    REQUIRE_OK(env_open(env_posix(), p, ENV_WRITE, &f));
    CHECK(strcmp(f->path, p) == 0);
    REQUIRE_OK(env_append(f, "hello", 5));
    REQUIRE_OK(env_append(f, " world", 6));
    REQUIRE_OK(env_append(f, "", 0));
    REQUIRE_OK(env_file_size(f, &size));
    CHECK(size == 11);
    REQUIRE_OK(env_read_at(f, 0, buf, 11, &n));
    CHECK(n == 11 && memcmp(buf, "hello world", 11) == 0);
    REQUIRE_OK(env_read_at(f, 6, buf, sizeof(buf), &n));
    CHECK(n == 5 && memcmp(buf, "world", 5) == 0);
    REQUIRE_OK(env_read_at(f, 100, buf, sizeof(buf), &n));
    CHECK(n == 0);
    REQUIRE_OK(env_read_exact(f, 6, buf, 5));
    CHECK_RC(env_read_exact(f, 6, buf, 6), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "truncated") != NULL);
    CHECK(strstr(status_msg(), p) != NULL);
    REQUIRE_OK(env_sync(f));
    REQUIRE_OK(env_close(f));
    CHECK(env_close(NULL) == 0);
    free(p);
}

static void test_env_reopen_keeps_or_truncates(void)
{
    char *p = tpath("a");
    env_file *f;
    uint64_t size;

    put_file(p, "abc");
    REQUIRE_OK(env_open(env_posix(), p, ENV_WRITE, &f));
    REQUIRE_OK(env_append(f, "def", 3));
    REQUIRE_OK(env_close(f));
    CHECK(file_is(p, "abcdef"));
    REQUIRE_OK(env_open(env_posix(), p, ENV_WRITE | ENV_TRUNC, &f));
    REQUIRE_OK(env_file_size(f, &size));
    CHECK(size == 0);
    REQUIRE_OK(env_close(f));
    free(p);
}

static void test_env_truncate_then_append_at_end(void)
{
    char *p = tpath("a");
    env_file *f;

    REQUIRE_OK(env_open(env_posix(), p, ENV_WRITE, &f));
    REQUIRE_OK(env_append(f, "abcdef", 6));
    REQUIRE_OK(env_truncate(f, 2));
    REQUIRE_OK(env_append(f, "XY", 2));
    REQUIRE_OK(env_close(f));
    CHECK(file_is(p, "abXY"));
    free(p);
}

static void test_env_open_errors(void)
{
    char *p = tpath("missing");
    char *q = tpath("nodir/x");
    env_file *f = (env_file *)1;

    CHECK_RC(env_open(env_posix(), p, ENV_READ, &f), STOAT_ENOTFOUND);
    CHECK(f == NULL);
    CHECK(strstr(status_msg(), p) != NULL);
    CHECK_RC(env_open(env_posix(), p, ENV_TRUNC, &f), STOAT_EINVAL);
    CHECK_RC(env_open(env_posix(), p, 8, &f), STOAT_EINVAL);
    CHECK_RC(env_open(env_posix(), q, ENV_WRITE, &f), STOAT_ENOTFOUND);
    CHECK(env_exists(env_posix(), p) == 0);
    free(p);
    free(q);
}

/* O_CLOEXEC: look the descriptor up in /proc and ask for its flags. */
static void test_env_files_are_cloexec(void)
{
    char *p = tpath("a");
    env_file *f;
    int found = 0;

    REQUIRE_OK(env_open(env_posix(), p, ENV_WRITE, &f));
    for (int fd = 0; fd < 1024; fd++) {
        char link[64], target[4096];
        ssize_t n;

        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        if ((n = readlink(link, target, sizeof(target) - 1)) < 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, p) == 0) {
            found = 1;
            CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        }
    }
    REQUIRE_OK(env_close(f));
    if (access("/proc/self/fd", F_OK) == 0)
        CHECK(found);
    free(p);
}

static void test_env_rename_remove_exists(void)
{
    char *a = tpath("a"), *b = tpath("b");

    put_file(a, "new");
    put_file(b, "old");
    CHECK(env_exists(env_posix(), a) == 1);
    REQUIRE_OK(env_rename(env_posix(), a, b));
    CHECK(env_exists(env_posix(), a) == 0);
    CHECK(file_is(b, "new"));
    CHECK_RC(env_rename(env_posix(), a, b), STOAT_ENOTFOUND);
    CHECK(strstr(status_msg(), a) != NULL && strstr(status_msg(), b) != NULL);
    REQUIRE_OK(env_remove(env_posix(), b));
    CHECK(env_exists(env_posix(), b) == 0);
    CHECK_RC(env_remove(env_posix(), b), STOAT_ENOTFOUND);
    free(a);
    free(b);
}

static void test_env_mkdir_and_sync_dir(void)
{
    char *d = tpath("d"), *f = tpath("file"), *deep = tpath("x/y");

    REQUIRE_OK(env_mkdir(env_posix(), d));
    CHECK(env_exists(env_posix(), d) == 1);
    CHECK_RC(env_mkdir(env_posix(), d), 0);
    REQUIRE_OK(env_sync_dir(env_posix(), d));
    put_file(f, "x");
    CHECK_RC(env_mkdir(env_posix(), f), STOAT_EIO);
    CHECK_RC(env_mkdir(env_posix(), deep), STOAT_ENOTFOUND);
    CHECK_RC(env_sync_dir(env_posix(), deep), STOAT_ENOTFOUND);
    free(d);
    free(f);
    free(deep);
}

static void test_env_list_skips_dots_and_sorts(void)
{
    char *d = tpath("d"), *b = tpath("d/b"), *a = tpath("d/a"), *sub = tpath("d/c");
    char *none = tpath("none");
    char **names;
    size_t n;

    REQUIRE_OK(env_mkdir(env_posix(), d));
    REQUIRE_OK(env_list(env_posix(), d, &names, &n));
    CHECK(n == 0);
    env_list_free(names, n);
    put_file(b, "");
    put_file(a, "");
    REQUIRE_OK(env_mkdir(env_posix(), sub));
    REQUIRE_OK(env_list(env_posix(), d, &names, &n));
    REQUIRE(n == 3);
    CHECK(strcmp(names[0], "a") == 0 && strcmp(names[1], "b") == 0 && strcmp(names[2], "c") == 0);
    env_list_free(names, n);
    CHECK_RC(env_list(env_posix(), b, &names, &n), STOAT_EIO);
    CHECK(names == NULL && n == 0);
    CHECK_RC(env_list(env_posix(), none, &names, &n), STOAT_ENOTFOUND);
    free(none);
    free(d);
    free(b);
    free(a);
    free(sub);
}

static void test_env_lock_exclusive_conflicts(void)
{
    char *p = tpath("LOCK");
    struct env_lock *l1, *l2 = (struct env_lock *)1;

    REQUIRE_OK(env_lock(env_posix(), p, 1, &l1));
    CHECK(env_exists(env_posix(), p) == 1);
    CHECK_RC(env_lock(env_posix(), p, 1, &l2), STOAT_EBUSY);
    CHECK(l2 == NULL);
    CHECK(strstr(status_msg(), "locked") != NULL && strstr(status_msg(), p) != NULL);
    CHECK_RC(env_lock(env_posix(), p, 0, &l2), STOAT_EBUSY);
    env_unlock(env_posix(), l1);
    REQUIRE_OK(env_lock(env_posix(), p, 1, &l2));
    env_unlock(env_posix(), l2);
    env_unlock(env_posix(), NULL);
    free(p);
}

static void test_env_lock_shared_coexist(void)
{
    char *p = tpath("LOCK");
    struct env_lock *s1, *s2, *x;

    REQUIRE_OK(env_lock(env_posix(), p, 0, &s1));
    REQUIRE_OK(env_lock(env_posix(), p, 0, &s2));
    CHECK_RC(env_lock(env_posix(), p, 1, &x), STOAT_EBUSY);
    env_unlock(env_posix(), s1);
    CHECK_RC(env_lock(env_posix(), p, 1, &x), STOAT_EBUSY);
    env_unlock(env_posix(), s2);
    REQUIRE_OK(env_lock(env_posix(), p, 1, &x));
    env_unlock(env_posix(), x);
    free(p);
}

/* Another process sees the lock too. The child reports its return code
 * through a pipe (its exit code belongs to valgrind when run under it). */
static void test_env_lock_conflicts_across_processes(void)
{
    char *p = tpath("LOCK");
    struct env_lock *l;
    int fds[2], child_rc = 1;
    pid_t pid;

    REQUIRE_OK(env_lock(env_posix(), p, 1, &l));
    REQUIRE(pipe(fds) == 0);
    fflush(NULL);
    if ((pid = fork()) == 0) {
        struct env_lock *c;
        int rc = env_lock(env_posix(), p, 0, &c);

        _exit(write(fds[1], &rc, sizeof(rc)) == sizeof(rc) ? 0 : 1);
    }
    REQUIRE(pid > 0);
    close(fds[1]);
    CHECK(read(fds[0], &child_rc, sizeof(child_rc)) == sizeof(child_rc));
    CHECK(child_rc == STOAT_EBUSY);
    close(fds[0]);
    REQUIRE(waitpid(pid, NULL, 0) == pid);
    env_unlock(env_posix(), l);
    free(p);
}

static void test_env_write_atomic_replaces(void)
{
    const char *dir = test_tmpdir();
    char *p = tpath("MANIFEST"), *tmp = tpath("MANIFEST.tmp");
    char *data;
    size_t len;

    REQUIRE_OK(env_write_atomic(env_posix(), dir, p, "first", 5));
    CHECK(file_is(p, "first"));
    REQUIRE_OK(env_write_atomic(env_posix(), dir, p, "second!", 7));
    REQUIRE_OK(env_read_all(env_posix(), p, &data, &len));
    CHECK(len == 7 && strcmp(data, "second!") == 0); /* NUL-terminated */
    free(data);
    CHECK(env_exists(env_posix(), tmp) == 0);
    REQUIRE_OK(env_write_atomic(env_posix(), dir, p, "", 0));
    CHECK(file_is(p, ""));
    free(p);
    free(tmp);
}

static void test_env_write_atomic_fails_cleanly(void)
{
    char *d = tpath("gone"), *p = tpath("gone/F");

    CHECK_RC(env_write_atomic(env_posix(), d, p, "x", 1), STOAT_ENOTFOUND);
    CHECK(strstr(status_msg(), "gone/F.tmp") != NULL);
    free(d);
    free(p);
}

static void test_env_read_all_missing(void)
{
    char *p = tpath("none");
    char *data = (char *)1;
    size_t len = 7;

    CHECK_RC(env_read_all(env_posix(), p, &data, &len), STOAT_ENOTFOUND);
    CHECK(data == NULL && len == 0);
    free(p);
}

static void test_env_join(void)
{
    char *p;

    CHECK(strcmp(p = env_join("a", "b"), "a/b") == 0);
    free(p);
    CHECK(strcmp(p = env_join("a/", "b"), "a/b") == 0);
    free(p);
    CHECK(strcmp(p = env_join("", "b"), "b") == 0);
    free(p);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_env_append_read_size);
    TEST_RUN(test_env_reopen_keeps_or_truncates);
    TEST_RUN(test_env_truncate_then_append_at_end);
    TEST_RUN(test_env_open_errors);
    TEST_RUN(test_env_files_are_cloexec);
    TEST_RUN(test_env_rename_remove_exists);
    TEST_RUN(test_env_mkdir_and_sync_dir);
    TEST_RUN(test_env_list_skips_dots_and_sorts);
    TEST_RUN(test_env_lock_exclusive_conflicts);
    TEST_RUN(test_env_lock_shared_coexist);
    TEST_RUN(test_env_lock_conflicts_across_processes);
    TEST_RUN(test_env_write_atomic_replaces);
    TEST_RUN(test_env_write_atomic_fails_cleanly);
    TEST_RUN(test_env_read_all_missing);
    TEST_RUN(test_env_join);
    return test_summary();
}
