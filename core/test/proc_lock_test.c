/*
 * proc_lock_test.c - the robust process-shared commit lock (env/proc_lock.h)
 * between processes: a holder SIGKILLed (at a chosen point and at random
 * points) is repaired exactly once by the next acquirer and the lock works
 * afterwards; a failed repair is retried; a SIGSTOPped holder makes others
 * fail with STOAT_EBUSY after the timeout, and they succeed after SIGCONT;
 * 8 processes contending lose no increment; a thread exiting with the lock
 * held is repaired like a dead process.
 *
 * Every child opens the region itself (as a process of the real service
 * would); the parent stays attached so the region outlives the children.
 * The test's shared words live in the region's free part.
 */
#include <pthread.h>
#include <string.h>

#include "env/proc_lock.h"
#include "proc_util.h"

typedef struct tdata {
    _Atomic uint64_t repairs;     /* repair callbacks run */
    _Atomic uint64_t bad_repairs; /* callbacks that saw an unexpected state */
    _Atomic uint64_t a, b;        /* a == b whenever the lock is free and repaired */
    _Atomic int ready;
    _Atomic int release;
    _Atomic uint32_t expect_intent;
    uint64_t counter;             /* plain: only the lock protects it */
    int fail_repair;
} tdata;

static tdata *tdata_of(shm_region *r)
{
    return (tdata *)((char *)shm_base(r) + SHM_OFF_FREE);
}

static proc_lock *lock_of(shm_region *r)
{
    return (proc_lock *)((char *)shm_base(r) + SHM_OFF_COMMIT_LOCK);
}

/* The repair of the test's invariant: b catches up with a. */
static int repair_cb(proc_lock *l, uint32_t intent, int owner_died, void *arg)
{
    tdata *t = arg;

    (void)l;
    (void)owner_died;
    if (intent > PROC_INTENT_REPAIR)
        atomic_fetch_add(&t->bad_repairs, 1);
    if (t->fail_repair)
        return STOAT_EIO;
    atomic_fetch_add(&t->repairs, 1);
    atomic_store(&t->b, atomic_load(&t->a));
    return 0;
}

static void test_proc_lock_basic(void)
{
    shm_region *r = pu_region();
    proc_lock *l = lock_of(r);
    tdata *t = tdata_of(r);

    REQUIRE_OK(proc_lock_acquire(l, 1000, repair_cb, t));
    CHECK(atomic_load(&l->holder_pid) == (uint32_t)getpid());
    CHECK_RC(proc_lock_acquire(l, 100, repair_cb, t), STOAT_EINVAL);
    proc_lock_set_intent(l, PROC_INTENT_APPLYING);
    CHECK(proc_lock_intent(l) == PROC_INTENT_APPLYING);
    proc_lock_set_intent(l, PROC_INTENT_IDLE);
    proc_lock_release(l);
    CHECK(atomic_load(&l->holder_pid) == 0);
    REQUIRE_OK(proc_lock_acquire(l, 0, repair_cb, t));
    proc_lock_release(l);
    CHECK(atomic_load(&t->repairs) == 0);
    shm_close(r);
}

/* Child: takes the lock, leaves the protected state half-changed with an
 * intent, says so, and waits to be killed. */
static int child_hold_and_wait(void *arg)
{
    uint32_t intent = (uint32_t)(uintptr_t)arg;
    shm_region *r;
    tdata *t;

    if (shm_open_region(test_tmpdir(), &(shm_opts){.shm_dir = test_tmpdir()}, &r) != 0)
        return 1;
    t = tdata_of(r);
    if (proc_lock_acquire(lock_of(r), 5000, repair_cb, t) != 0)
        return 2;
    proc_lock_set_intent(lock_of(r), intent);
    atomic_fetch_add(&t->a, 1);
    atomic_store(&t->ready, 1);
    for (;;)
        pause();
}

/* Child: acquires (repairing if needed), checks the invariant, releases. */
static int child_acquire_once(void *arg)
{
    shm_region *r;
    tdata *t;
    int ok;

    (void)arg;
    if (shm_open_region(test_tmpdir(), &(shm_opts){.shm_dir = test_tmpdir()}, &r) != 0)
        return 1;
    t = tdata_of(r);
    if (proc_lock_acquire(lock_of(r), 5000, repair_cb, t) != 0)
        return 2;
    ok = atomic_load(&t->a) == atomic_load(&t->b) &&
         proc_lock_intent(lock_of(r)) == PROC_INTENT_IDLE;
    proc_lock_release(lock_of(r));
    shm_close(r);
    return ok ? 0 : 3;
}

static void test_proc_lock_killed_holder_repaired_once(void)
{
    shm_region *r = pu_region();
    tdata *t = tdata_of(r);
    pid_t pid = pu_spawn(child_hold_and_wait, (void *)(uintptr_t)PROC_INTENT_APPENDING);

    REQUIRE(pu_wait_flag(&t->ready));
    CHECK(atomic_load(&lock_of(r)->holder_pid) == (uint32_t)pid);
    CHECK(atomic_load(&t->a) != atomic_load(&t->b));
    kill(pid, SIGKILL);
    CHECK(pu_wait(pid) == 1000 + SIGKILL);
    /* Three other processes, then this one: one repair in all. */
    for (int i = 0; i < 3; i++)
        CHECK(pu_run(child_acquire_once, NULL) == 0);
    CHECK(atomic_load(&t->repairs) == 1);
    REQUIRE_OK(proc_lock_acquire(lock_of(r), 1000, repair_cb, t));
    CHECK(atomic_load(&t->a) == atomic_load(&t->b));
    proc_lock_release(lock_of(r));
    CHECK(atomic_load(&t->repairs) == 1);
    CHECK(atomic_load(&lock_of(r)->repairs) == 1);
    CHECK(atomic_load(&t->bad_repairs) == 0);
    shm_close(r);
}

/* The repair fails: the lock is not held and the next acquirer repairs
 * again (the intent was kept), then nobody does. */
static void test_proc_lock_failed_repair_retried(void)
{
    shm_region *r = pu_region();
    tdata *t = tdata_of(r);
    pid_t pid = pu_spawn(child_hold_and_wait, (void *)(uintptr_t)PROC_INTENT_APPLYING);

    REQUIRE(pu_wait_flag(&t->ready));
    kill(pid, SIGKILL);
    pu_wait(pid);
    t->fail_repair = 1;
    CHECK_RC(proc_lock_acquire(lock_of(r), 1000, repair_cb, t), STOAT_EIO);
    CHECK(proc_lock_intent(lock_of(r)) == PROC_INTENT_APPLYING);
    t->fail_repair = 0;
    CHECK(pu_run(child_acquire_once, NULL) == 0);
    CHECK(atomic_load(&t->repairs) == 1);
    REQUIRE_OK(proc_lock_acquire(lock_of(r), 1000, repair_cb, t));
    proc_lock_release(lock_of(r));
    CHECK(atomic_load(&t->repairs) == 1);
    shm_close(r);
}

/* Child: loops over the critical section until killed. */
static int child_loop(void *arg)
{
    shm_region *r;
    proc_lock *l;
    tdata *t;

    (void)arg;
    if (shm_open_region(test_tmpdir(), &(shm_opts){.shm_dir = test_tmpdir()}, &r) != 0)
        return 1;
    l = lock_of(r);
    t = tdata_of(r);
    for (;;) {
        if (proc_lock_acquire(l, 5000, repair_cb, t) != 0)
            return 2;
        if (atomic_load(&t->a) != atomic_load(&t->b))
            return 3;
        proc_lock_set_intent(l, PROC_INTENT_APPENDING);
        atomic_fetch_add(&t->a, 1);
        atomic_store(&t->ready, 1);
        for (volatile int i = 0; i < 2000; i++)
            ;
        proc_lock_set_intent(l, PROC_INTENT_APPLYING);
        atomic_store(&t->b, atomic_load(&t->a));
        proc_lock_set_intent(l, PROC_INTENT_IDLE);
        proc_lock_release(l);
    }
}

static void test_proc_lock_random_kills(void)
{
    shm_region *r = pu_region();
    tdata *t = tdata_of(r);
    uint64_t seed = 0x5eed ^ (uint64_t)getpid(), kills = 0;
    int n = getenv("STOAT_PROC_KILLS") ? atoi(getenv("STOAT_PROC_KILLS")) : 60;

    printf("random kills: %d, seed %llu\n", n, (unsigned long long)seed);
    for (int i = 0; i < n; i++) {
        pid_t pid;
        uint64_t before;

        atomic_store(&t->ready, 0);
        pid = pu_spawn(child_loop, NULL);
        if (i % 2 == 0)
            REQUIRE(pu_wait_flag(&t->ready));
        pu_sleep_us((long)(test_rand(&seed) % 3000));
        kill(pid, SIGKILL);
        REQUIRE(pu_wait(pid) == 1000 + SIGKILL);
        kills++;
        before = atomic_load(&t->repairs);
        REQUIRE_OK(proc_lock_acquire(lock_of(r), 2000, repair_cb, t));
        CHECK(atomic_load(&t->a) == atomic_load(&t->b));
        CHECK(proc_lock_intent(lock_of(r)) == PROC_INTENT_IDLE);
        proc_lock_release(lock_of(r));
        CHECK(atomic_load(&t->repairs) - before <= 1);
        /* Repaired once: the next acquirer finds nothing to do. */
        before = atomic_load(&t->repairs);
        CHECK(pu_run(child_acquire_once, NULL) == 0);
        CHECK(atomic_load(&t->repairs) == before);
    }
    printf("random kills: %llu kills, %llu repairs, %llu critical sections\n",
           (unsigned long long)kills, (unsigned long long)atomic_load(&t->repairs),
           (unsigned long long)atomic_load(&t->a));
    /* The children hold the lock most of the time: some kills land inside. */
    CHECK(atomic_load(&t->repairs) > 0);
    CHECK(atomic_load(&t->bad_repairs) == 0);
    shm_close(r);
}

/* Child: takes the lock, stops itself, and releases once told to. */
static int child_hold_and_stop(void *arg)
{
    shm_region *r;
    tdata *t;

    (void)arg;
    if (shm_open_region(test_tmpdir(), &(shm_opts){.shm_dir = test_tmpdir()}, &r) != 0)
        return 1;
    t = tdata_of(r);
    if (proc_lock_acquire(lock_of(r), 5000, repair_cb, t) != 0)
        return 2;
    atomic_store(&t->ready, 1);
    raise(SIGSTOP);
    while (atomic_load(&t->release) == 0)
        pu_sleep_us(100);
    proc_lock_release(lock_of(r));
    shm_close(r);
    return 0;
}

static void test_proc_lock_stopped_holder_busy(void)
{
    shm_region *r = pu_region();
    tdata *t = tdata_of(r);
    pid_t pid = pu_spawn(child_hold_and_stop, NULL);
    char want[64];
    uint64_t t0, dt;
    int status;

    REQUIRE(waitpid(pid, &status, WUNTRACED) == pid);
    REQUIRE(WIFSTOPPED(status));
    REQUIRE(atomic_load(&t->ready) == 1);
    t0 = pu_now_ms();
    CHECK_RC(proc_lock_acquire(lock_of(r), 300, repair_cb, t), STOAT_EBUSY);
    dt = pu_now_ms() - t0;
    CHECK(dt >= 295 && dt < 3000);
    snprintf(want, sizeof(want), "process %d", (int)pid);
    CHECK(strstr(stoat_errmsg(NULL), want) != NULL);
    CHECK_RC(proc_lock_acquire(lock_of(r), 0, repair_cb, t), STOAT_EBUSY);
    atomic_store(&t->release, 1);
    kill(pid, SIGCONT);
    REQUIRE_OK(proc_lock_acquire(lock_of(r), 5000, repair_cb, t));
    proc_lock_release(lock_of(r));
    CHECK(pu_wait(pid) == 0);
    CHECK(atomic_load(&t->repairs) == 0);
    shm_close(r);
}

#define CONTENDERS 8
#define INCREMENTS 2000

static int child_increment(void *arg)
{
    shm_region *r;
    tdata *t;

    (void)arg;
    if (shm_open_region(test_tmpdir(), &(shm_opts){.shm_dir = test_tmpdir()}, &r) != 0)
        return 1;
    t = tdata_of(r);
    while (atomic_load(&t->ready) == 0)
        pu_sleep_us(100);
    for (int i = 0; i < INCREMENTS; i++) {
        uint64_t v;

        if (proc_lock_acquire(lock_of(r), 10000, repair_cb, t) != 0)
            return 2;
        v = *(volatile uint64_t *)&t->counter;
        for (volatile int k = 0; k < 50; k++)
            ;
        *(volatile uint64_t *)&t->counter = v + 1;
        proc_lock_release(lock_of(r));
    }
    shm_close(r);
    return 0;
}

static void test_proc_lock_contention_no_lost_updates(void)
{
    shm_region *r = pu_region();
    tdata *t = tdata_of(r);
    pid_t pids[CONTENDERS];
    uint64_t acquires0 = atomic_load(&lock_of(r)->acquires);

    for (int i = 0; i < CONTENDERS; i++)
        pids[i] = pu_spawn(child_increment, NULL);
    atomic_store(&t->ready, 1);
    for (int i = 0; i < CONTENDERS; i++)
        CHECK(pu_wait(pids[i]) == 0);
    CHECK(t->counter == (uint64_t)CONTENDERS * INCREMENTS);
    CHECK(atomic_load(&lock_of(r)->acquires) - acquires0 == (uint64_t)CONTENDERS * INCREMENTS);
    CHECK(atomic_load(&t->repairs) == 0);
    shm_close(r);
}

static void *thread_hold_and_exit(void *arg)
{
    shm_region *r = arg;

    if (proc_lock_acquire(lock_of(r), 1000, repair_cb, tdata_of(r)) == 0)
        atomic_store(&tdata_of(r)->ready, 1);
    return NULL;
}

/* The mutex is owned by a thread: a thread that exits holding it is dead
 * as a process would be. */
static void test_proc_lock_thread_exit_holding(void)
{
    shm_region *r = pu_region();
    tdata *t = tdata_of(r);
    pthread_t th;

    REQUIRE(pthread_create(&th, NULL, thread_hold_and_exit, r) == 0);
    pthread_join(th, NULL);
    REQUIRE(atomic_load(&t->ready) == 1);
    REQUIRE_OK(proc_lock_acquire(lock_of(r), 1000, repair_cb, t));
    proc_lock_release(lock_of(r));
    CHECK(atomic_load(&t->repairs) == 1);
    shm_close(r);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_proc_lock_basic);
    TEST_RUN(test_proc_lock_killed_holder_repaired_once);
    TEST_RUN(test_proc_lock_failed_repair_retried);
    TEST_RUN(test_proc_lock_random_kills);
    TEST_RUN(test_proc_lock_stopped_holder_busy);
    TEST_RUN(test_proc_lock_contention_no_lost_updates);
    TEST_RUN(test_proc_lock_thread_exit_holding);
    return test_summary();
}
