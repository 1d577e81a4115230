/*
 * proc_lock.c - the robust process-shared commit lock (proc_lock.h).
 *
 * Owns nothing but the bytes of the lock in the region. The wait is
 * bounded with pthread_mutex_clocklock on CLOCK_MONOTONIC, so a change of
 * the wall clock neither shortens nor stretches it. EOWNERDEAD: the repair
 * runs, then pthread_mutex_consistent; the mutex is always made
 * consistent before it is released, even when the repair fails (a mutex
 * unlocked inconsistent is ENOTRECOVERABLE forever), and the intent left
 * non-IDLE is what makes the next acquirer repair again.
 */
#include "env/proc_lock.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/status.h"
#include "env/shm.h"

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "shared atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "shared atomics must be lock-free");
_Static_assert(sizeof(proc_lock) <= 128, "layout v2 gives the commit lock 128 bytes");
_Static_assert(SHM_OFF_COMMIT_LOCK + 128 <= SHM_OFF_SLOTS, "layout v2 overlap");

int proc_lock_init(proc_lock *l)
{
    pthread_mutexattr_t a;
    int r;

    memset(l, 0, sizeof(*l));
    if ((r = pthread_mutexattr_init(&a)) != 0)
        return status_errno(r, "proc_lock_init", "mutexattr");
    if ((r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0 &&
        (r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0 &&
        (r = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK)) == 0)
        r = pthread_mutex_init(&l->mu, &a);
    pthread_mutexattr_destroy(&a);
    if (r != 0)
        return status_errno(r, "proc_lock_init", "mutex");
    atomic_store(&l->intent, PROC_INTENT_IDLE);
    return 0;
}

/* ThreadSanitizer (gcc 12's) does not intercept pthread_mutex_clocklock:
 * it would report every release as an unlock of an unlocked mutex. Its
 * builds wait on the realtime clock instead (a clock step changes the
 * wait, nothing else). */
#if defined(__SANITIZE_THREAD__)
#define PROC_LOCK_CLOCK CLOCK_REALTIME
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PROC_LOCK_CLOCK CLOCK_REALTIME
#endif
#endif

static void deadline_after(struct timespec *ts, uint32_t ms)
{
#ifdef PROC_LOCK_CLOCK
    clock_gettime(PROC_LOCK_CLOCK, ts);
#else
    clock_gettime(CLOCK_MONOTONIC, ts);
#endif
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Runs the repair with the lock held; returns 0 with the lock still held
 * and the intent IDLE, or the repair's code with the lock released. */
static int proc_lock_repair_locked(proc_lock *l, int owner_died, proc_lock_repair_fn repair,
                                   void *arg)
{
    uint32_t intent = atomic_load(&l->intent);
    int rc = repair ? repair(l, intent, owner_died, arg) : 0;

    if (owner_died)
        pthread_mutex_consistent(&l->mu);
    if (rc != 0) {
        if (intent == PROC_INTENT_IDLE)
            atomic_store(&l->intent, PROC_INTENT_REPAIR);
        atomic_store(&l->holder_pid, 0);
        pthread_mutex_unlock(&l->mu);
        return rc;
    }
    atomic_store(&l->intent, PROC_INTENT_IDLE);
    atomic_fetch_add(&l->repairs, 1);
    return 0;
}

/* getpid() is a system call: this process's pid, asked again only after
 * a fork (shm.c counts them). */
static uint32_t this_pid(void)
{
    static _Atomic unsigned long gen = (unsigned long)-1;
    static _Atomic uint32_t pid;
    unsigned long g = shm_fork_generation();

    if (atomic_load_explicit(&gen, memory_order_acquire) != g) {
        atomic_store_explicit(&pid, (uint32_t)getpid(), memory_order_relaxed);
        atomic_store_explicit(&gen, g, memory_order_release);
    }
    return atomic_load_explicit(&pid, memory_order_relaxed);
}

int proc_lock_acquire(proc_lock *l, uint32_t timeout_ms, proc_lock_repair_fn repair, void *arg)
{
    struct timespec ts;
    int r, rc;

    if (timeout_ms == 0) {
        r = pthread_mutex_trylock(&l->mu);
    } else {
        deadline_after(&ts, timeout_ms);
        do
#ifdef PROC_LOCK_CLOCK
            r = pthread_mutex_timedlock(&l->mu, &ts);
#else
            r = pthread_mutex_clocklock(&l->mu, CLOCK_MONOTONIC, &ts);
#endif
        while (r == EINTR);
    }
    switch (r) {
    case 0:
    case EOWNERDEAD:
        break;
    case EBUSY:
    case ETIMEDOUT: {
        uint32_t pid = atomic_load(&l->holder_pid);
        if (pid == 0)       /* released meanwhile: others took it in turn */
            return status_err(STOAT_EBUSY,
                              "commit lock busy for more than %u ms (held in turn by "
                              "other processes)", (unsigned)timeout_ms);
        return status_err(STOAT_EBUSY, "commit lock held by process %u for more than %u ms",
                          (unsigned)pid, (unsigned)timeout_ms);
    }
    case EDEADLK:
        return status_err(STOAT_EINVAL, "commit lock already held by this thread");
    case ENOTRECOVERABLE:
        return status_err(STOAT_ECORRUPT,
                          "commit lock not recoverable: the shared memory must be re-created");
    default:
        return status_errno(r, "commit lock", "acquire");
    }
    /* The holder is named before a repair, which may take a while: a
     * waiter that gives up then names the process repairing. */
    atomic_store(&l->holder_pid, this_pid());
    if (r == EOWNERDEAD || atomic_load(&l->intent) != PROC_INTENT_IDLE) {
        if ((rc = proc_lock_repair_locked(l, r == EOWNERDEAD, repair, arg)) != 0)
            return rc;
    }
    atomic_fetch_add(&l->acquires, 1);
    return 0;
}

void proc_lock_release(proc_lock *l)
{
    atomic_store(&l->holder_pid, 0);
    pthread_mutex_unlock(&l->mu);
}

void proc_lock_set_intent(proc_lock *l, uint32_t intent)
{
    atomic_store(&l->intent, intent);
}

uint32_t proc_lock_intent(proc_lock *l)
{
    return atomic_load(&l->intent);
}
