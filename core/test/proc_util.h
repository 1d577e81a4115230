/*
 * proc_util.h - helpers of the multi-process primitive tests (shm_test,
 * proc_lock_test, proc_slots_test): forked children, a scratch mapping
 * shared with them, waiting with a bound.
 *
 * Children report through their exit status (0 = every check passed,
 * else the number of the failed check) and leave with _exit; each one
 * arms alarm() so that a hung child dies instead of hanging the test.
 */
#ifndef STOAT_PROC_UTIL_H
#define STOAT_PROC_UTIL_H

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "env/shm.h"
#include "test.h"

/* Forks; the child runs fn(arg) and _exits with its result. */
static inline pid_t pu_spawn(int (*fn)(void *), void *arg)
{
    pid_t pid;

    (void)test_tmpdir(); /* made before the fork: the child must share it */
    fflush(NULL);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(30);
        _exit(fn(arg));
    }
    return pid;
}

/* Waits for pid: its exit code, or 1000 + signal when killed. */
static inline int pu_wait(pid_t pid)
{
    int status;

    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 1000 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static inline int pu_run(int (*fn)(void *), void *arg)
{
    return pu_wait(pu_spawn(fn, arg));
}

/* Zeroed memory shared with the children forked after this call. */
static inline void *pu_shared(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    REQUIRE(p != MAP_FAILED);
    return p;
}

static inline uint64_t pu_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void pu_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

    nanosleep(&ts, NULL);
}

/* Waits (at most 10 s) until *flag != 0. 1 when it became set. */
static inline int pu_wait_flag(volatile _Atomic int *flag)
{
    uint64_t end = pu_now_ms() + 10000;

    while (atomic_load(flag) == 0) {
        if (pu_now_ms() > end)
            return 0;
        pu_sleep_us(200);
    }
    return 1;
}

/* Options that keep the region in the test's directory (no /dev/shm
 * leftovers when a test dies). */
static inline shm_opts pu_opts(void)
{
    shm_opts o = {0};

    o.shm_dir = test_tmpdir();
    o.wait_ms = 5000;
    return o;
}

/* The last region pu_region opened: kept reachable from a global, so that
 * a forked child that _exits without closing its copy leaks nothing in
 * valgrind's eyes. */
static shm_region *pu_last_region;

static inline shm_region *pu_region(void)
{
    shm_opts o = pu_opts();

    REQUIRE_OK(shm_open_region(test_tmpdir(), &o, &pu_last_region));
    return pu_last_region;
}

#endif
