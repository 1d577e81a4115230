/*
 * proc_slots.h - liveness slots and the background owner's election, for
 * the processes attached to one shared-memory region (shm.h).
 *
 * The region holds SHM_SLOTS slots (at SHM_OFF_SLOTS). A handle claims a
 * free slot by taking an OFD write lock on its byte of the SHMLOCK file
 * (SHM_LOCK_BYTE_SLOT0 + i) through a descriptor of its own; the kernel
 * drops that lock when the last reference to the descriptor goes, at any
 * instruction of a dying process. So liveness is the lock, never the pid
 * written in the slot (pids are reused): a slot whose byte nobody holds
 * is dead, whatever it says.
 *
 * A slot publishes two 64-bit values: the process's oldest snapshot and
 * the oldest WAL it still reads (PROC_SLOT_NONE when it has none).
 * proc_slots_scan returns the minimum of each over live slots and resets
 * dead ones. To take a snapshot at version L
 * safely against a concurrent scan, publish first, then re-read the
 * visible version and publish again if it moved (publish-then-validate,
 * LMDB ITS#7970): the scanner's minimum never exceeds a value published
 * before its scan, and the visible version only rises.
 *
 * One more byte (SHM_LOCK_BYTE_ELECTION) elects the single background
 * owner: proc_slots_elect try-locks it; the kernel hands it over (to the
 * next to try) when the owner closes, exits or is killed.
 *
 * Two handles in one process have two descriptors, hence two slots, and
 * exclude each other in the election like two processes.
 *
 * Threading: a handle is used by one thread at a time (the caller
 * serialises claim, publish, scan, elect, resign and close); the slots
 * themselves are shared atomics. A handle opened before fork() is dead in
 * the child: its descriptor is closed by the atfork handler and every
 * call returns STOAT_EFORKED.
 */
#ifndef STOAT_PROC_SLOTS_H
#define STOAT_PROC_SLOTS_H

#include <stdatomic.h>
#include <stdint.h>

#include "env/shm.h"

#define PROC_SLOT_NONE UINT64_MAX

/* One slot as laid out in shared memory (layout version 2, 64 bytes). */
typedef struct proc_slot {
    _Atomic uint64_t value;   /* the oldest snapshot, PROC_SLOT_NONE when none */
    _Atomic uint32_t pid;     /* the claimer's pid (diagnostics only), 0 when free */
    _Atomic uint32_t claims;  /* times claimed (diagnostics) */
    _Atomic uint64_t wal;     /* the oldest WAL still read, PROC_SLOT_NONE when none */
    uint8_t reserved[40];
} proc_slot;

typedef struct proc_slots proc_slots;

typedef struct proc_slots_scan_result {
    uint64_t min;          /* minimum value over live slots, PROC_SLOT_NONE if none */
    uint64_t wal_min;      /* minimum wal over live slots, PROC_SLOT_NONE if none */
    uint32_t live;         /* live slots (this handle's included) */
    uint32_t reclaimed;    /* dead slots reset by this scan */
} proc_slots_scan_result;

/* Sets every slot free; for the region's creator (shm.c) only. */
void proc_slots_init(void *slots);

/* A handle on r's slots, with its own descriptor of SHMLOCK; it holds no
 * slot yet. STOAT_EFORKED, STOAT_ENOMEM, STOAT_EIO. */
int proc_slots_open(shm_region *r, proc_slots **out);

/* Claims a free slot (idempotent: a handle holds at most one); its values
 * start at PROC_SLOT_NONE. STOAT_EBUSY when all SHM_SLOTS are live,
 * STOAT_EFORKED, STOAT_EIO. */
int proc_slots_claim(proc_slots *s);

/* The claimed slot's index, or -1. */
int proc_slots_index(const proc_slots *s);

/* Publishes v in the claimed slot (a seq_cst store). STOAT_EINVAL when no
 * slot is claimed, STOAT_EFORKED. */
int proc_slots_publish(proc_slots *s, uint64_t v);

/* Publishes the oldest WAL the handle still reads; as proc_slots_publish. */
int proc_slots_publish_wal(proc_slots *s, uint64_t wal);

/* Scans every slot: *res gets the minimum over live ones, and dead slots
 * that still show a value or pid are reset. About one fcntl per slot:
 * call it every few seconds or when the horizon looks stuck, not per
 * commit. STOAT_EFORKED, STOAT_EIO. */
int proc_slots_scan(proc_slots *s, proc_slots_scan_result *res);

/* Tries to become (or stay) the background owner: *owner is 1 when this
 * handle holds the election lock, 0 when another handle does. Never
 * waits. STOAT_EFORKED, STOAT_EIO. */
int proc_slots_elect(proc_slots *s, int *owner);

/* Gives up the ownership if held (another handle may then win). */
int proc_slots_resign(proc_slots *s);

/* Frees the slot (value reset, lock dropped), resigns, closes. In a
 * forked child it only frees the child's memory. NULL is a no-op. */
void proc_slots_close(proc_slots *s);

#endif
