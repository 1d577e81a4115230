/*
 * db_process_test.c - threads, locks and processes: loading the library
 * starts nothing, open starts the background threads and close joins
 * them; the directory lock keeps a second writer out (same process or
 * another); read-only opens share; a handle used after fork says
 * STOAT_EFORKED; a child may open databases of its own.
 *
 * Children report through their exit status (0 = every check passed, else
 * the number of the first failed check) and leave with _exit, never
 * closing a handle they inherited.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "db_util.h"
#include "test.h"

static stoat_db *open_rw(const char *dir)
{
    stoat_options o;
    stoat_db *db;

    dbu_small_options(&o);
    REQUIRE_OK(stoat_open(dir, &o, &db));
    return db;
}

/* The exclusive mode (multi_process = 0): one process holds the directory
 * and every other open gets STOAT_EBUSY. The tests of that exclusion open
 * the holder with it; the default (multi_process) shares the directory. */
static stoat_db *open_excl(const char *dir)
{
    stoat_options o;
    stoat_db *db;

    dbu_small_options(&o);
    o.multi_process = 0;
    REQUIRE_OK(stoat_open(dir, &o, &db));
    return db;
}

static int open_ro(const char *dir, stoat_db **db)
{
    stoat_options o;

    dbu_small_options(&o);
    o.read_only = 1;
    return stoat_open(dir, &o, db);
}

/* Runs child() in a forked process and returns its exit status. */
static int in_child(int (*child)(void *), void *arg)
{
    pid_t pid;
    int status;

    fflush(NULL);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(30); /* a hung child dies instead of hanging the test */
        _exit(child(arg));
    }
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Must run first: nothing else in this process has started a thread. */
static void test_db_process_threads_start_and_stop(void)
{
    stoat_db *db;

    CHECK(dbu_thread_count() == 1);
    db = open_rw(test_tmpdir());
    CHECK(dbu_thread_count() > 1);
    REQUIRE_OK(stoat_put(db, "k", 1, "v", 1));
    REQUIRE_OK(stoat_flush(db));
    REQUIRE_OK(stoat_close(db));
    CHECK(dbu_thread_count_settled(1) == 1);
    REQUIRE_OK(open_ro(test_tmpdir(), &db));
    REQUIRE_OK(stoat_close(db));
    CHECK(dbu_thread_count_settled(1) == 1);
}

static void test_db_process_second_open_is_busy(void)
{
    stoat_db *db = open_excl(test_tmpdir()), *db2 = (stoat_db *)(uintptr_t)1;

    {
        stoat_options o;

        dbu_small_options(&o);
        CHECK_RC(stoat_open(test_tmpdir(), &o, &db2), STOAT_EBUSY);
        CHECK(db2 == NULL);
        CHECK(strlen(stoat_errmsg(NULL)) > 0);
    }
    CHECK_RC(open_ro(test_tmpdir(), &db2), STOAT_EBUSY);
    REQUIRE_OK(stoat_close(db));
    db = open_rw(test_tmpdir());
    REQUIRE_OK(stoat_close(db));
}

static int child_open_busy(void *dir)
{
    stoat_options o;
    stoat_db *db;

    dbu_small_options(&o);
    if (stoat_open(dir, &o, &db) != STOAT_EBUSY)
        return 1;
    if (open_ro(dir, &db) != STOAT_EBUSY)
        return 2;
    return 0;
}

static int child_open_works(void *dir)
{
    stoat_options o;
    stoat_db *db;
    void *v;
    size_t vlen;

    dbu_small_options(&o);
    if (stoat_open(dir, &o, &db) != 0)
        return 1;
    if (stoat_get(db, "k", 1, &v, &vlen) != 0 || vlen != 1)
        return 2;
    stoat_free(v);
    if (stoat_put(db, "child", 5, "yes", 3) != 0)
        return 3;
    return stoat_close(db) == 0 ? 0 : 4;
}

/* Another process is kept out while this one holds the database
 * exclusively. */
static void test_db_process_other_process_is_busy(void)
{
    stoat_db *db = open_excl(test_tmpdir());
    void *v;
    size_t vlen;

    REQUIRE_OK(stoat_put(db, "k", 1, "v", 1));
    CHECK(in_child(child_open_busy, (void *)test_tmpdir()) == 0);
    REQUIRE_OK(stoat_close(db));
    CHECK(in_child(child_open_works, (void *)test_tmpdir()) == 0);
    db = open_rw(test_tmpdir());
    REQUIRE_OK(stoat_get(db, "child", 5, &v, &vlen));
    CHECK(vlen == 3 && memcmp(v, "yes", 3) == 0);
    stoat_free(v);
    REQUIRE_OK(stoat_close(db));
}

/* Every call on the inherited handle says EFORKED; nothing is closed. */
static int child_use_inherited(void *arg)
{
    stoat_db *db = arg;
    stoat_iter *it;
    void *v;
    size_t vlen;

    if (stoat_put(db, "x", 1, "y", 1) != STOAT_EFORKED)
        return 1;
    if (stoat_get(db, "k", 1, &v, &vlen) != STOAT_EFORKED)
        return 2;
    if (stoat_delete(db, "k", 1) != STOAT_EFORKED)
        return 3;
    if (stoat_iter_open(db, NULL, &it) != STOAT_EFORKED)
        return 4;
    if (stoat_sync(db) != STOAT_EFORKED || stoat_flush(db) != STOAT_EFORKED)
        return 5;
    if (strlen(stoat_errmsg(db)) == 0)
        return 6;
    return 0;
}

static void test_db_process_fork_gets_eforked(void)
{
    stoat_db *db = open_rw(test_tmpdir());
    void *v;
    size_t vlen;

    REQUIRE_OK(stoat_put(db, "k", 1, "v", 1));
    CHECK(in_child(child_use_inherited, db) == 0);
    /* The parent's handle is untouched. */
    REQUIRE_OK(stoat_put(db, "k2", 2, "v2", 2));
    REQUIRE_OK(stoat_get(db, "k", 1, &v, &vlen));
    stoat_free(v);
    CHECK_RC(stoat_get(db, "x", 1, &v, &vlen), STOAT_ENOTFOUND);
    REQUIRE_OK(stoat_close(db));
}

/*
 * A child forked while the database was open must not keep its directory
 * lock: once the parent closes, the parent (or anyone) can open it again
 * while the child lives on. The parent waits until the child runs, since
 * the child lets go of the lock in the fork itself (an atfork handler),
 * which the parent cannot wait for otherwise.
 */
static void test_db_process_fork_child_does_not_keep_lock(void)
{
    stoat_db *db = open_rw(test_tmpdir());
    int hold[2], ready[2], status;
    pid_t pid;
    char c = 0;

    REQUIRE(pipe(hold) == 0 && pipe(ready) == 0);
    fflush(NULL);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(30);
        close(hold[1]);
        close(ready[0]);
        if (write(ready[1], &c, 1) != 1)
            _exit(1);
        _exit(read(hold[0], &c, 1) < 0); /* lives until the parent writes */
    }
    close(hold[0]);
    close(ready[1]);
    REQUIRE(read(ready[0], &c, 1) == 1);
    close(ready[0]);
    CHECK_RC(stoat_close(db), 0);
    db = NULL;
    {
        stoat_options o;

        dbu_small_options(&o);
        CHECK_RC(stoat_open(test_tmpdir(), &o, &db), 0);
    }
    CHECK(write(hold[1], &c, 1) == 1);
    close(hold[1]);
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_RC(stoat_close(db), 0);
}

static int child_own_database(void *dir)
{
    return child_open_works(dir);
}

/*
 * The nginx pattern: a process with an open database (and its running
 * threads) forks; the child opens a different database and uses it.
 */
static void test_db_process_child_opens_its_own(void)
{
    char a[DBU_PATH_MAX], b[DBU_PATH_MAX];
    stoat_db *db = open_rw(dbu_subdir(a, "a"));
    stoat_db *db2 = open_rw(dbu_subdir(b, "b"));

    REQUIRE_OK(stoat_put(db2, "k", 1, "v", 1));
    REQUIRE_OK(stoat_close(db2));
    for (int i = 0; i < 200; i++) /* keep the parent's threads busy */
        REQUIRE_OK(stoat_put(db, &i, sizeof(i), "busy", 4));
    CHECK(in_child(child_own_database, b) == 0);
    REQUIRE_OK(stoat_close(db));
}

/* Beside other readers: a writer is busy, one more reader is welcome. */
static int child_reader_beside_readers(void *dir)
{
    stoat_options o;
    stoat_db *db;
    void *v;
    size_t vlen;

    dbu_small_options(&o);
    o.multi_process = 0;    /* an exclusive writer is kept out by readers */
    if (stoat_open(dir, &o, &db) != STOAT_EBUSY)
        return 1;
    if (open_ro(dir, &db) != 0)
        return 2;
    if (stoat_get(db, "k", 1, &v, &vlen) != 0)
        return 3;
    stoat_free(v);
    return stoat_close(db) == 0 ? 0 : 4;
}

static void test_db_process_read_only(void)
{
    stoat_db *db = open_rw(test_tmpdir()), *r1, *r2;
    void *v;
    size_t vlen;

    REQUIRE_OK(stoat_put(db, "k", 1, "v", 1));
    REQUIRE_OK(stoat_flush(db));
    REQUIRE_OK(stoat_put(db, "in-wal", 6, "w", 1));
    REQUIRE_OK(stoat_close(db));
    REQUIRE_OK(open_ro(test_tmpdir(), &r1));
    REQUIRE_OK(open_ro(test_tmpdir(), &r2));
    REQUIRE_OK(stoat_get(r1, "k", 1, &v, &vlen));
    CHECK(vlen == 1 && memcmp(v, "v", 1) == 0);
    stoat_free(v);
    REQUIRE_OK(stoat_get(r2, "in-wal", 6, &v, &vlen));
    CHECK(vlen == 1 && memcmp(v, "w", 1) == 0);
    stoat_free(v);
    CHECK_RC(stoat_put(r1, "k", 1, "x", 1), STOAT_EREADONLY);
    CHECK_RC(stoat_delete(r1, "k", 1), STOAT_EREADONLY);
    CHECK_RC(stoat_flush(r2), STOAT_EREADONLY);
    {
        stoat_options o;
        stoat_db *w;

        dbu_small_options(&o);
        o.multi_process = 0;    /* an exclusive writer is kept out by readers */
        CHECK_RC(stoat_open(test_tmpdir(), &o, &w), STOAT_EBUSY);
    }
    CHECK(in_child(child_reader_beside_readers, (void *)test_tmpdir()) == 0);
    REQUIRE_OK(stoat_close(r1));
    REQUIRE_OK(stoat_close(r2));
    db = open_rw(test_tmpdir());
    REQUIRE_OK(stoat_get(db, "k", 1, &v, &vlen));
    stoat_free(v);
    REQUIRE_OK(stoat_close(db));
}

/* A read-only open of a directory with no database creates nothing. */
static void test_db_process_read_only_missing(void)
{
    char dir[DBU_PATH_MAX];
    stoat_db *db;

    dbu_path(dir, test_tmpdir(), "none");
    CHECK(open_ro(dir, &db) < 0);
    CHECK(!dbu_exists(dir));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_db_process_threads_start_and_stop);
    TEST_RUN(test_db_process_second_open_is_busy);
    TEST_RUN(test_db_process_other_process_is_busy);
    TEST_RUN(test_db_process_fork_gets_eforked);
    TEST_RUN(test_db_process_fork_child_does_not_keep_lock);
    TEST_RUN(test_db_process_child_opens_its_own);
    TEST_RUN(test_db_process_read_only);
    TEST_RUN(test_db_process_read_only_missing);
    return test_summary();
}
