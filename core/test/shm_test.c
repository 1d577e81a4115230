/*
 * shm_test.c - the shared-memory region (env/shm.h): creation and attach
 * across processes, the header, removal by the last close, the errors of
 * a mismatched layout version and size, a stale region (its processes
 * died) rebuilt, an initialiser that hangs or dies, fork (inherited
 * handles refused, their locks closed), a file system too small
 * (STOAT_ENOSPC, never SIGBUS: a tiny tmpfs, as root) and another uid (a
 * clear error, as root).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "env/proc_slots.h"
#include "env/shm.h"
#include "proc_util.h"

static int file_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

static _Atomic uint64_t *free_word(shm_region *r)
{
    return (_Atomic uint64_t *)((char *)shm_base(r) + SHM_OFF_FREE);
}

static int child_write_marker(void *arg)
{
    shm_opts o = {.shm_dir = test_tmpdir()};
    shm_region *r;

    if (shm_open_region(test_tmpdir(), &o, &r) != 0)
        return 1;
    if (shm_created(r))
        return 2;
    atomic_store(free_word(r), (uint64_t)(uintptr_t)arg);
    shm_close(r);
    return 0;
}

static void test_shm_create_attach_share(void)
{
    shm_region *r = pu_region();
    const uint8_t *h = shm_base(r);
    uint32_t v;

    CHECK(shm_created(r) == 1);
    CHECK(shm_size(r) == SHM_DEFAULT_SIZE);
    CHECK(strncmp(shm_path(r), test_tmpdir(), strlen(test_tmpdir())) == 0);
    CHECK(memcmp(h, "STOATSHM", 8) == 0);
    memcpy(&v, h + 8, 4);
    CHECK(v == SHM_LAYOUT_VERSION);
    CHECK(shm_check(r) == 0);
    CHECK(pu_run(child_write_marker, (void *)(uintptr_t)42) == 0);
    CHECK(atomic_load(free_word(r)) == 42);
    /* A later opener follows the creator's choice of directory. */
    {
        shm_region *r2;

        REQUIRE_OK(shm_open_region(test_tmpdir(), NULL, &r2));
        CHECK(shm_created(r2) == 0);
        CHECK(strcmp(shm_path(r2), shm_path(r)) == 0);
        CHECK(atomic_load(free_word(r2)) == 42);
        shm_close(r2);
    }
    shm_close(r);
}

static void test_shm_default_dir_and_last_close_removes(void)
{
    shm_region *r1, *r2;
    char path[256];

    REQUIRE_OK(shm_open_region(test_tmpdir(), NULL, &r1));
    snprintf(path, sizeof(path), "%s", shm_path(r1));
    CHECK(strncmp(path, "/dev/shm/stoat.", 15) == 0);
    REQUIRE_OK(shm_open_region(test_tmpdir(), NULL, &r2));
    CHECK(shm_created(r1) == 1 && shm_created(r2) == 0);
    CHECK(shm_base(r1) != shm_base(r2)); /* two mappings of one file */
    atomic_store(free_word(r1), 7);
    CHECK(atomic_load(free_word(r2)) == 7);
    shm_close(r1);
    CHECK(file_exists(path));
    shm_close(r2);
    CHECK(!file_exists(path));
}

static void test_shm_layout_version_mismatch(void)
{
    shm_region *r = pu_region(), *r2 = NULL;
    shm_opts o = pu_opts();

    o.layout_version = SHM_LAYOUT_VERSION + 1;
    CHECK_RC(shm_open_region(test_tmpdir(), &o, &r2), STOAT_ENOTSUP);
    CHECK(r2 == NULL);
    CHECK(strstr(stoat_errmsg(NULL), "layout version 2") != NULL);
    shm_close(r);
    /* Nobody attached any more: the new layout rebuilds the region. */
    REQUIRE_OK(shm_open_region(test_tmpdir(), &o, &r2));
    CHECK(shm_created(r2) == 1);
    shm_close(r2);
}

static void test_shm_size_mismatch(void)
{
    shm_region *r = pu_region(), *r2 = NULL;
    shm_opts o = pu_opts();

    o.size = 2 * SHM_DEFAULT_SIZE;
    CHECK_RC(shm_open_region(test_tmpdir(), &o, &r2), STOAT_EINVAL);
    CHECK(strstr(stoat_errmsg(NULL), "same size") != NULL);
    o.size = 1000;
    CHECK_RC(shm_open_region(test_tmpdir(), &o, &r2), STOAT_EINVAL);
    /* A header that disagrees with its file. */
    o.size = 0;
    *(uint64_t *)((char *)shm_base(r) + 16) = 3 * SHM_DEFAULT_SIZE;
    CHECK_RC(shm_open_region(test_tmpdir(), &o, &r2), STOAT_ECORRUPT);
    *(uint64_t *)((char *)shm_base(r) + 16) = SHM_DEFAULT_SIZE;
    REQUIRE_OK(shm_open_region(test_tmpdir(), &o, &r2));
    shm_close(r2);
    shm_close(r);
}

static int child_open_and_die(void *arg)
{
    shm_opts o = {.shm_dir = test_tmpdir()};
    shm_region *r;

    (void)arg;
    if (shm_open_region(test_tmpdir(), &o, &r) != 0)
        return 1;
    atomic_store(free_word(r), 99);
    raise(SIGKILL);
    return 2;
}

static void test_shm_stale_region_rebuilt(void)
{
    shm_region *r;
    char path[512];

    CHECK(pu_run(child_open_and_die, NULL) == 1000 + SIGKILL);
    r = pu_region();
    snprintf(path, sizeof(path), "%s", shm_path(r));
    shm_close(r);
    /* The dead child left its region (marked); the next opener rebuilds
     * it, with zeroed contents. */
    CHECK(pu_run(child_open_and_die, NULL) == 1000 + SIGKILL);
    CHECK(file_exists(path));
    r = pu_region();
    CHECK(shm_created(r) == 1);
    CHECK(atomic_load(free_word(r)) == 0);
    shm_close(r);
}

static _Atomic int *init_flag;

static int init_and_hang(void *base, uint64_t size, void *arg)
{
    (void)base;
    (void)size;
    (void)arg;
    atomic_store(init_flag, 1);
    for (;;)
        pause();
    return 0;
}

static int child_init_hangs(void *arg)
{
    shm_opts o = {.shm_dir = test_tmpdir(), .init = init_and_hang};
    shm_region *r;

    (void)arg;
    shm_open_region(test_tmpdir(), &o, &r);
    return 1;
}

/* An initialiser that hangs delays others only up to wait_ms; once it
 * dies, the next opener initialises. */
static int child_open_default_and_die(void *arg)
{
    shm_region *r;

    if (shm_open_region(test_tmpdir(), NULL, &r) != 0)
        return 1;
    snprintf(arg, 512, "%s", shm_path(r));
    raise(SIGKILL);
    return 2;
}

/* A dead process's region in /dev/shm is removed by the next creator,
 * even one that puts its own region elsewhere. */
static void test_shm_stale_region_elsewhere_removed(void)
{
    char *path = pu_shared(4096);
    shm_region *r;

    CHECK(pu_run(child_open_default_and_die, path) == 1000 + SIGKILL);
    REQUIRE(strncmp(path, "/dev/shm/", 9) == 0);
    CHECK(file_exists(path));
    r = pu_region();
    CHECK(shm_created(r) == 1);
    CHECK(strcmp(shm_path(r), path) != 0);
    CHECK(!file_exists(path));
    shm_close(r);
    munmap(path, 4096);
}

static void test_shm_initialiser_hangs_then_dies(void)
{
    shm_opts o = pu_opts();
    shm_region *r = NULL;
    pid_t pid;
    uint64_t t0;

    init_flag = pu_shared(4096);
    pid = pu_spawn(child_init_hangs, NULL);
    REQUIRE(pu_wait_flag(init_flag));
    o.wait_ms = 200;
    t0 = pu_now_ms();
    CHECK_RC(shm_open_region(test_tmpdir(), &o, &r), STOAT_EBUSY);
    CHECK(pu_now_ms() - t0 >= 195);
    kill(pid, SIGKILL);
    CHECK(pu_wait(pid) == 1000 + SIGKILL);
    REQUIRE_OK(shm_open_region(test_tmpdir(), &o, &r));
    CHECK(shm_created(r) == 1);
    shm_close(r);
    munmap((void *)init_flag, 4096);
}

static int child_uses_inherited(void *arg)
{
    shm_region *inherited = arg, *own;
    shm_opts o = {.shm_dir = test_tmpdir()};
    proc_slots *s;

    if (shm_check(inherited) != STOAT_EFORKED)
        return 1;
    if (proc_slots_open(inherited, &s) != STOAT_EFORKED)
        return 2;
    if (shm_open_region(test_tmpdir(), &o, &own) != 0)
        return 3;
    if (shm_created(own) || atomic_load(free_word(own)) != 5)
        return 4;
    shm_close(own);
    shm_close(inherited);
    return 0;
}

static void test_shm_forked_handle_refused(void)
{
    shm_region *r = pu_region();

    atomic_store(free_word(r), 5);
    CHECK(pu_run(child_uses_inherited, r) == 0);
    /* The child's close of its copy took nothing from the parent. */
    CHECK(shm_check(r) == 0);
    CHECK(file_exists(shm_path(r)));
    CHECK(atomic_load(free_word(r)) == 5);
    shm_close(r);
}

static _Atomic int *gc_pid;

/* Runs after fork's atfork handlers: its flag says they have run. */
static int grandchild_sleeps(void *arg)
{
    (void)arg;
    atomic_store(&gc_pid[1], 1);
    sleep(30);
    return 0;
}

/* Opens, forks a child that lives on (no exec), and waits to be killed. */
static int child_open_fork_wait(void *arg)
{
    shm_opts o = {.shm_dir = test_tmpdir()};
    shm_region *r;

    (void)arg;
    if (shm_open_region(test_tmpdir(), &o, &r) != 0)
        return 1;
    atomic_store(gc_pid, (int)pu_spawn(grandchild_sleeps, NULL));
    for (;;)
        pause();
}

/* A forked child that outlives its parent does not keep the parent's
 * switch: the region is seen as stale and rebuilt. */
static void test_shm_forked_child_does_not_keep_locks(void)
{
    shm_region *r;
    pid_t pid;

    gc_pid = pu_shared(4096);
    pid = pu_spawn(child_open_fork_wait, NULL);
    REQUIRE(pu_wait_flag(gc_pid));
    /* Until the grandchild has run its atfork handler, it does hold a
     * reference to the lock descriptor: wait for that. */
    REQUIRE(pu_wait_flag(&gc_pid[1]));
    kill(pid, SIGKILL);
    pu_wait(pid);
    REQUIRE(kill(atomic_load(gc_pid), 0) == 0); /* the grandchild lives */
    r = pu_region();
    CHECK(shm_created(r) == 1);
    shm_close(r);
    kill(atomic_load(gc_pid), SIGKILL);
    munmap((void *)gc_pid, 4096);
}

static void test_shm_too_small_fs_enospc(void)
{
    char dir[512];
    shm_opts o = pu_opts();
    shm_region *r = NULL;
    int rc;

    if (geteuid() != 0) {
        printf("SKIP test_shm_too_small_fs_enospc: not root\n");
        return;
    }
    snprintf(dir, sizeof(dir), "%s/small", test_tmpdir());
    REQUIRE(mkdir(dir, 0700) == 0);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=64k") != 0) {
        printf("SKIP test_shm_too_small_fs_enospc: mount tmpfs: %s\n", strerror(errno));
        return;
    }
    /* From here on, CHECK only: the file system must be unmounted. */
    o.shm_dir = dir;
    o.size = 1 << 20;
    rc = shm_open_region(test_tmpdir(), &o, &r);
    CHECK_RC(rc, STOAT_ENOSPC);
    CHECK(r == NULL);
    CHECK(strstr(stoat_errmsg(NULL), "no space") != NULL);
    {
        struct stat st;
        char path[600];

        /* Nothing left behind on the small file system. */
        CHECK(stat(test_tmpdir(), &st) == 0);
        snprintf(path, sizeof(path), "%s/stoat.%llx.%llx.shm", dir,
                 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
        CHECK(!file_exists(path));
    }
    /* A region that fits (the whole 64 KiB) works there, to its last page. */
    o.size = SHM_MIN_SIZE;
    rc = shm_open_region(test_tmpdir(), &o, &r);
    CHECK_RC(rc, 0);
    if (rc == 0) {
        CHECK(shm_created(r) == 1);
        memset((char *)shm_base(r) + SHM_MIN_SIZE - 4096, 0xab, 4096);
        shm_close(r);
    }
    CHECK(umount(dir) == 0);
}

static int child_other_uid(void *arg)
{
    shm_opts o = {.shm_dir = test_tmpdir()};
    shm_region *r = NULL;
    int rc;

    (void)arg;
    if (setgid(65534) != 0 || setuid(65534) != 0)
        return 1;
    rc = shm_open_region(test_tmpdir(), &o, &r);
    if (rc != STOAT_EIO || r != NULL)
        return 2;
    if (strstr(stoat_errmsg(NULL), "owned by uid 0") == NULL)
        return 3;
    return 0;
}

static void test_shm_other_uid_refused(void)
{
    shm_region *r;

    if (geteuid() != 0) {
        printf("SKIP test_shm_other_uid_refused: not root\n");
        return;
    }
    REQUIRE(chmod(test_tmpdir(), 0755) == 0);
    r = pu_region();
    CHECK(pu_run(child_other_uid, NULL) == 0);
    CHECK(shm_check(r) == 0);
    shm_close(r);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_shm_create_attach_share);
    TEST_RUN(test_shm_default_dir_and_last_close_removes);
    TEST_RUN(test_shm_layout_version_mismatch);
    TEST_RUN(test_shm_size_mismatch);
    TEST_RUN(test_shm_stale_region_rebuilt);
    TEST_RUN(test_shm_stale_region_elsewhere_removed);
    TEST_RUN(test_shm_initialiser_hangs_then_dies);
    TEST_RUN(test_shm_forked_handle_refused);
    TEST_RUN(test_shm_forked_child_does_not_keep_locks);
    TEST_RUN(test_shm_too_small_fs_enospc);
    TEST_RUN(test_shm_other_uid_refused);
    return test_summary();
}
