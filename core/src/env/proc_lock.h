/*
 * proc_lock.h - the commit lock shared by every process of a database: a
 * robust, process-shared mutex in the shared-memory region (shm.h, at
 * SHM_OFF_COMMIT_LOCK), with an intent record next to it.
 *
 * Guarantees:
 * - Mutual exclusion between every thread of every process attached to
 *   the region (pthread_mutex, PTHREAD_PROCESS_SHARED, error-checking).
 * - Death never blocks the others: if the holder dies (its process is
 *   killed at any instruction, or its thread exits), the next acquirer
 *   gets the lock and, before proc_lock_acquire returns, runs the
 *   caller's repair callback once; then the mutex is made consistent.
 * - A stopped holder (SIGSTOP, a debugger) blocks the others only for
 *   the timeout: proc_lock_acquire returns STOAT_EBUSY, naming the
 *   holder's pid in the message.
 * - The intent record says what the holder was doing (IDLE, APPENDING,
 *   APPLYING, ROTATING), so that the repair knows what to undo or redo.
 *   Repair runs when the previous holder died (EOWNERDEAD) and also when
 *   the intent is not IDLE at acquire (a repair that failed, or a holder
 *   that released without finishing): the repair callback must be
 *   idempotent. A successful repair sets the intent to IDLE.
 *
 * The mutex is owned by a thread: never release it from another thread,
 * and never keep it across work that another thread finishes.
 *
 * Threading: any thread of any process attached to the region. The
 * repair callback runs with the lock held, in the acquiring thread.
 */
#ifndef STOAT_PROC_LOCK_H
#define STOAT_PROC_LOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

enum {
    PROC_INTENT_IDLE = 0,
    PROC_INTENT_APPENDING = 1, /* writing the WAL / value log */
    PROC_INTENT_APPLYING = 2,  /* inserting into the shared memtable */
    PROC_INTENT_ROTATING = 3,  /* swapping in a new memtable */
    PROC_INTENT_REPAIR = 4     /* a repair failed: the next acquirer repairs */
};

/* The lock as laid out in shared memory (layout version 2: 128 bytes at
 * SHM_OFF_COMMIT_LOCK; core/FORMAT.md). */
typedef struct proc_lock {
    pthread_mutex_t mu;            /* robust, process-shared, error-checking */
    _Atomic uint32_t intent;       /* PROC_INTENT_* */
    _Atomic uint32_t holder_pid;   /* pid of the holder (diagnostics), 0 when free */
    _Atomic uint64_t acquires;     /* successful acquires (statistics) */
    _Atomic uint64_t repairs;      /* repairs run to completion (statistics) */
} proc_lock;

/* Called with the lock held, after its previous holder died (owner_died
 * 1) or when the intent was not IDLE (owner_died 0); intent is the
 * intent it left. Returns 0 when the protected state is repaired, else a
 * STOAT_E* code: proc_lock_acquire then makes the mutex consistent,
 * releases it and returns that code, and the intent stays as it was
 * (PROC_INTENT_REPAIR if it was IDLE), so that the next acquirer repairs
 * again. */
typedef int (*proc_lock_repair_fn)(proc_lock *l, uint32_t intent, int owner_died,
                                   void *arg);

/* Initialises a lock in zeroed shared memory. Only the region's creator,
 * before anyone else can see it. 0 or STOAT_EIO. */
int proc_lock_init(proc_lock *l);

/* Acquires, waiting at most timeout_ms (0: one try). Returns 0 (held;
 * the intent is IDLE), STOAT_EBUSY (not acquired in time; the message
 * names the holder's pid), STOAT_EINVAL (this thread already holds it),
 * the repair's code (not held), STOAT_ECORRUPT (the mutex is not
 * recoverable: only re-creating the region helps), STOAT_EIO. repair may
 * be NULL only where no state needs repair (tests). */
int proc_lock_acquire(proc_lock *l, uint32_t timeout_ms, proc_lock_repair_fn repair,
                      void *arg);

/* Releases; the calling thread must hold the lock. The intent should be
 * IDLE by then (a non-IDLE intent makes the next acquirer repair). */
void proc_lock_release(proc_lock *l);

/* The intent record: written by the holder only, read by anyone. */
void proc_lock_set_intent(proc_lock *l, uint32_t intent);
uint32_t proc_lock_intent(proc_lock *l);

#endif
