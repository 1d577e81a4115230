/*
 * proc_slots_test.c - liveness slots and the background owner's election
 * (env/proc_slots.h) across processes: the minimum over live slots, a
 * killed process's slot seen dead, ignored and reclaimed; two handles in
 * one process hold two slots; all slots taken gives STOAT_EBUSY; exactly
 * one owner at a time among contending processes, handed over when the
 * owner exits and when it is killed; a forked child neither uses its
 * parent's handle nor keeps its parent's slot or election alive.
 */
#include <stdatomic.h>

#include "env/proc_slots.h"
#include "proc_util.h"

typedef struct tdata {
    _Atomic int ready;
    _Atomic int stop;
    _Atomic int owners;       /* processes that believe they own right now */
    _Atomic int violations;   /* terms that began while another owner was on */
    _Atomic int owner_pid;
    _Atomic int terms;        /* ownerships taken */
} tdata;

static tdata *td;

static proc_slots *slots_open(shm_region *r)
{
    proc_slots *s;

    REQUIRE_OK(proc_slots_open(r, &s));
    return s;
}

static int child_publish_wait(void *arg)
{
    shm_opts o = {.shm_dir = test_tmpdir()};
    shm_region *r;
    proc_slots *s;

    if (shm_open_region(test_tmpdir(), &o, &r) != 0 || proc_slots_open(r, &s) != 0)
        return 1;
    if (proc_slots_claim(s) != 0 || proc_slots_publish(s, (uint64_t)(uintptr_t)arg) != 0)
        return 2;
    atomic_fetch_add(&td->ready, 1);
    while (atomic_load(&td->stop) == 0)
        pu_sleep_us(500);
    proc_slots_close(s);
    shm_close(r);
    return 0;
}

static void test_proc_slots_min_ignores_dead(void)
{
    shm_region *r = pu_region();
    proc_slots *s = slots_open(r);
    proc_slots_scan_result res;
    pid_t a, b;

    td = pu_shared(4096);
    REQUIRE_OK(proc_slots_claim(s));
    REQUIRE_OK(proc_slots_publish(s, 500));
    a = pu_spawn(child_publish_wait, (void *)(uintptr_t)100);
    b = pu_spawn(child_publish_wait, (void *)(uintptr_t)50);
    while (atomic_load(&td->ready) < 2)
        pu_sleep_us(200);
    REQUIRE_OK(proc_slots_scan(s, &res));
    CHECK(res.min == 50);
    CHECK(res.live == 3);
    CHECK(res.reclaimed == 0);
    kill(b, SIGKILL);
    CHECK(pu_wait(b) == 1000 + SIGKILL);
    REQUIRE_OK(proc_slots_scan(s, &res));
    CHECK(res.min == 100);
    CHECK(res.live == 2);
    CHECK(res.reclaimed == 1);
    REQUIRE_OK(proc_slots_scan(s, &res));
    CHECK(res.reclaimed == 0); /* reset once */
    /* A clean exit frees its slot itself. */
    atomic_store(&td->stop, 1);
    CHECK(pu_wait(a) == 0);
    REQUIRE_OK(proc_slots_scan(s, &res));
    CHECK(res.min == 500 && res.live == 1 && res.reclaimed == 0);
    REQUIRE_OK(proc_slots_publish(s, PROC_SLOT_NONE));
    REQUIRE_OK(proc_slots_scan(s, &res));
    CHECK(res.min == PROC_SLOT_NONE && res.live == 1);
    proc_slots_close(s);
    shm_close(r);
    munmap(td, 4096);
}

static void test_proc_slots_two_handles_and_full(void)
{
    shm_region *r = pu_region();
    proc_slots *h[SHM_SLOTS + 1];
    proc_slots_scan_result res;

    for (unsigned i = 0; i < SHM_SLOTS; i++) {
        h[i] = slots_open(r);
        REQUIRE_OK(proc_slots_claim(h[i]));
        REQUIRE_OK(proc_slots_claim(h[i])); /* idempotent */
    }
    CHECK(proc_slots_index(h[0]) != proc_slots_index(h[1]));
    REQUIRE_OK(proc_slots_publish(h[7], 70));
    REQUIRE_OK(proc_slots_publish(h[9], 90));
    h[SHM_SLOTS] = slots_open(r);
    CHECK_RC(proc_slots_claim(h[SHM_SLOTS]), STOAT_EBUSY);
    CHECK(proc_slots_index(h[SHM_SLOTS]) == -1);
    CHECK_RC(proc_slots_publish(h[SHM_SLOTS], 1), STOAT_EINVAL);
    REQUIRE_OK(proc_slots_scan(h[SHM_SLOTS], &res));
    CHECK(res.live == SHM_SLOTS && res.min == 70);
    proc_slots_close(h[7]);
    REQUIRE_OK(proc_slots_claim(h[SHM_SLOTS]));
    REQUIRE_OK(proc_slots_scan(h[0], &res));
    CHECK(res.live == SHM_SLOTS && res.min == 90);
    for (unsigned i = 0; i <= SHM_SLOTS; i++)
        if (i != 7)
            proc_slots_close(h[i]);
    shm_close(r);
}

/* Child: contends for the election until told to stop; while owner it
 * counts itself in td->owners (which must never exceed 1). arg: exit
 * (1) or hang (0) after the first term. */
static int child_elect(void *arg)
{
    shm_opts o = {.shm_dir = test_tmpdir()};
    shm_region *r;
    proc_slots *s;
    int owner;

    if (shm_open_region(test_tmpdir(), &o, &r) != 0 || proc_slots_open(r, &s) != 0)
        return 1;
    atomic_fetch_add(&td->ready, 1);
    while (atomic_load(&td->stop) == 0) {
        if (proc_slots_elect(s, &owner) != 0)
            return 2;
        if (owner) {
            if (atomic_fetch_add(&td->owners, 1) != 0)
                atomic_fetch_add(&td->violations, 1);
            atomic_store(&td->owner_pid, (int)getpid());
            atomic_fetch_add(&td->terms, 1);
            /* Own for a while; then leave (arg 1) or wait to be killed. */
            pu_sleep_us(20000);
            if (arg == NULL) {
                for (;;)
                    pause();
            }
            atomic_fetch_sub(&td->owners, 1);
            atomic_store(&td->owner_pid, 0);
            proc_slots_close(s);
            shm_close(r);
            return 0;
        }
        pu_sleep_us(1000);
    }
    proc_slots_close(s);
    shm_close(r);
    return 0;
}

#define ELECTORS 4

static void run_election(int exit_after_term)
{
    shm_region *r = pu_region();
    pid_t pids[ELECTORS];
    int done = 0;

    td = pu_shared(4096);
    for (int i = 0; i < ELECTORS; i++)
        pids[i] = pu_spawn(child_elect, exit_after_term ? (void *)1 : NULL);
    /* Each term ends (exit or kill) and another process takes over. */
    while (!exit_after_term && done < ELECTORS) {
        uint64_t end = pu_now_ms() + 5000;
        int owner;

        while ((owner = atomic_load(&td->owner_pid)) == 0 && pu_now_ms() < end)
            pu_sleep_us(500);
        REQUIRE(owner != 0);
        pu_sleep_us(25000); /* let the owner settle in pause() */
        atomic_fetch_sub(&td->owners, 1);
        atomic_store(&td->owner_pid, 0);
        kill(owner, SIGKILL);
        for (int i = 0; i < ELECTORS; i++) {
            if (pids[i] == owner) {
                CHECK(pu_wait(owner) == 1000 + SIGKILL);
                pids[i] = 0;
            }
        }
        done++;
    }
    for (int i = 0; i < ELECTORS; i++)
        if (pids[i] != 0)
            CHECK(pu_wait(pids[i]) == 0); /* each exits after its one term */
    CHECK(atomic_load(&td->terms) == ELECTORS);
    CHECK(atomic_load(&td->violations) == 0);
    shm_close(r);
    munmap(td, 4096);
}

static void test_proc_slots_election_handed_over_on_exit(void)
{
    run_election(1);
}

static void test_proc_slots_election_handed_over_on_kill(void)
{
    run_election(0);
}

static void test_proc_slots_election_in_one_process(void)
{
    shm_region *r = pu_region();
    proc_slots *a = slots_open(r), *b = slots_open(r);
    int owner;

    REQUIRE_OK(proc_slots_elect(a, &owner));
    CHECK(owner == 1);
    REQUIRE_OK(proc_slots_elect(a, &owner));
    CHECK(owner == 1);
    REQUIRE_OK(proc_slots_elect(b, &owner));
    CHECK(owner == 0);
    REQUIRE_OK(proc_slots_resign(a));
    REQUIRE_OK(proc_slots_elect(b, &owner));
    CHECK(owner == 1);
    REQUIRE_OK(proc_slots_elect(a, &owner));
    CHECK(owner == 0);
    proc_slots_close(b);
    REQUIRE_OK(proc_slots_elect(a, &owner));
    CHECK(owner == 1);
    proc_slots_close(a);
    shm_close(r);
}

static int grandchild_sleeps(void *arg)
{
    (void)arg;
    sleep(30);
    return 0;
}

/* Child: owner with a published slot; forks a child that lives on, which
 * must find its inherited handle refused; then waits to be killed. */
static int child_owner_forks(void *arg)
{
    shm_opts o = {.shm_dir = test_tmpdir()};
    shm_region *r;
    proc_slots *s;
    int owner;

    (void)arg;
    if (shm_open_region(test_tmpdir(), &o, &r) != 0 || proc_slots_open(r, &s) != 0)
        return 1;
    if (proc_slots_claim(s) != 0 || proc_slots_publish(s, 1) != 0)
        return 2;
    if (proc_slots_elect(s, &owner) != 0 || !owner)
        return 3;
    fflush(NULL);
    if (fork() == 0) {
        proc_slots_scan_result res;

        alarm(30);
        if (proc_slots_elect(s, &owner) != STOAT_EFORKED ||
            proc_slots_scan(s, &res) != STOAT_EFORKED ||
            proc_slots_publish(s, 2) != STOAT_EFORKED)
            _exit(4);
        atomic_store(&td->owner_pid, (int)getpid());
        _exit(grandchild_sleeps(NULL));
    }
    atomic_store(&td->ready, 1);
    for (;;)
        pause();
}

static void test_proc_slots_forked_child_keeps_nothing(void)
{
    shm_region *r = pu_region();
    proc_slots *s = slots_open(r);
    proc_slots_scan_result res;
    pid_t pid;
    int owner;

    td = pu_shared(4096);
    pid = pu_spawn(child_owner_forks, NULL);
    REQUIRE(pu_wait_flag(&td->ready));
    REQUIRE(pu_wait_flag(&td->owner_pid));
    REQUIRE_OK(proc_slots_scan(s, &res));
    CHECK(res.min == 1 && res.live == 1);
    REQUIRE_OK(proc_slots_elect(s, &owner));
    CHECK(owner == 0);
    kill(pid, SIGKILL);
    pu_wait(pid);
    REQUIRE(kill(atomic_load(&td->owner_pid), 0) == 0); /* the grandchild lives */
    REQUIRE_OK(proc_slots_scan(s, &res));
    CHECK(res.min == PROC_SLOT_NONE && res.live == 0 && res.reclaimed == 1);
    REQUIRE_OK(proc_slots_elect(s, &owner));
    CHECK(owner == 1);
    kill(atomic_load(&td->owner_pid), SIGKILL);
    proc_slots_close(s);
    shm_close(r);
    munmap(td, 4096);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_proc_slots_min_ignores_dead);
    TEST_RUN(test_proc_slots_two_handles_and_full);
    TEST_RUN(test_proc_slots_election_handed_over_on_exit);
    TEST_RUN(test_proc_slots_election_handed_over_on_kill);
    TEST_RUN(test_proc_slots_election_in_one_process);
    TEST_RUN(test_proc_slots_forked_child_keeps_nothing);
    return test_summary();
}
