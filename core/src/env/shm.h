/*
 * shm.h - one shared-memory region per database, for the processes that
 * open the same directory (the foundation of the multi-process mode;
 * core/FORMAT.md "Shared memory, layout version 2").
 *
 * A region is a file of a fixed size mapped MAP_SHARED by every process:
 * `stoat.<dev>.<ino>.shm` (the directory's device and inode in hex) in
 * /dev/shm by default, or in another directory (opts.shm_dir; the
 * database directory itself where /dev/shm is missing or too small). The
 * creator's choice wins: it writes the region's path into SHMLOCK and
 * later openers follow it, whatever their own shm_dir. Its space is
 * reserved with posix_fallocate when it is created, so a file system too
 * small for it fails the open with STOAT_ENOSPC, never with a SIGBUS at a
 * later page fault.
 *
 * Who initialises: the file `SHMLOCK` in the database directory carries
 * OFD byte-range locks (fcntl F_OFD_SETLK; they belong to the open file
 * description and the kernel drops them when the last descriptor goes,
 * however the process died). Byte 0 is the dead-man switch: every
 * attached handle holds it shared. An opener that gets it exclusive is
 * alone, so whatever region exists is stale (left by dead processes, or
 * of another layout): it rebuilds the region from zero (header, the
 * commit lock, the slots, then opts.init for the caller's part), marks it
 * ready, and downgrades to shared. Other openers wait (bounded) for a
 * shared lock and check the header; a region found not ready under a
 * shared lock was left by an initialiser that died, and the opener starts
 * over (SQLite's DMS rule). The last handle to close removes the file.
 *
 * Errors of shm_open_region: STOAT_ENOTSUP (a live region of another
 * layout version or lock ABI: a different build is attached),
 * STOAT_EINVAL (a live region of another size than opts.size, or bad
 * options), STOAT_ECORRUPT (a live region whose file size disagrees with
 * its header), STOAT_EIO with "owned by uid N" in the message (the lock
 * file or region belongs to another user and this one may not open it:
 * run as the database owner), STOAT_ENOSPC (the file system cannot hold
 * the region), STOAT_EBUSY (an initialiser held the switch past
 * opts.wait_ms, or the region was removed behind the back of live
 * processes), STOAT_ENOMEM, STOAT_EIO.
 *
 * fork: nothing happens at library load. The first open registers an
 * atfork handler; in a forked child every handle of the parent is dead:
 * its lock descriptors are closed at once (so a child that outlives its
 * parent does not keep the parent's locks, hence its slot and its
 * election, alive) and shm_check() returns STOAT_EFORKED. (Between
 * fork() and the child's first instruction the child does share the
 * descriptors; a child killed before it ran releases them too.) The
 * child may open regions of its own.
 *
 * Threading: a handle is immutable after open; shm_check/shm_base/... may
 * be called from any thread. What lives in the region is shared with
 * other processes: only lock-free atomics of at most 8 bytes and the
 * process-shared mutex of proc_lock.h are used there.
 */
#ifndef STOAT_SHM_H
#define STOAT_SHM_H

#include <stddef.h>
#include <stdint.h>

#define SHM_LAYOUT_VERSION 2
#define SHM_MAGIC 0x4d485354414f5453ull /* the bytes "STOATSHM" */
#define SHM_LOCK_FILE "SHMLOCK"
#define SHM_DEFAULT_DIR "/dev/shm"

/* The fixed part of layout version 2 (offsets from the region's base). */
#define SHM_OFF_COMMIT_LOCK 256u  /* struct proc_lock (proc_lock.h) */
#define SHM_OFF_SLOTS 1024u       /* SHM_SLOTS x struct proc_slot (proc_slots.h) */
#define SHM_SLOTS 256u
#define SHM_SLOT_SIZE 64u
#define SHM_OFF_FREE (SHM_OFF_SLOTS + SHM_SLOTS * SHM_SLOT_SIZE) /* 17408: the caller's part */
#define SHM_MIN_SIZE 65536u
#define SHM_DEFAULT_SIZE 65536u

/* Byte offsets of the OFD locks in SHMLOCK. */
#define SHM_LOCK_BYTE_DMS 0
#define SHM_LOCK_BYTE_ELECTION 1
#define SHM_LOCK_BYTE_SLOT0 64 /* slot i: byte 64 + i */

typedef struct shm_region shm_region;

typedef struct shm_opts {
    const char *shm_dir;     /* where a region this open creates lives; NULL: /dev/shm */
    uint64_t size;           /* 0: SHM_DEFAULT_SIZE; a multiple of 4096, >= SHM_MIN_SIZE */
    uint32_t wait_ms;        /* bound on waiting for another opener's initialisation; 0: 5000 */
    uint32_t layout_version; /* 0: SHM_LAYOUT_VERSION (tests set others) */
    /* Called by the opener that (re)creates the region, under the
     * exclusive switch, after the fixed part is initialised; base is
     * zero-filled from SHM_OFF_FREE to size. Returns 0 or a STOAT_E*
     * code (the open then fails and the region is removed). May be NULL. */
    int (*init)(void *base, uint64_t size, void *arg);
    void *init_arg;
    /* The companion file (the shared block cache): 0, or its size in
     * bytes. The creator makes `stoat.<dev>.<ino>.cache` beside the region,
     * sparse, with its first cache_fixed bytes reserved, only on a tmpfs
     * (on a disk its pages would be written back) and only if those bytes
     * can be had; the region works without it. Attaching handles map
     * whichever file the creator made, at its size. */
    uint64_t cache_size, cache_fixed;
} shm_opts;

/* Attaches to (or creates) the region of database directory dir, which
 * must exist. o may be NULL (defaults). On success *out is the handle;
 * on failure *out is NULL and the message names the path (status.h). */
int shm_open_region(const char *dir, const shm_opts *o, shm_region **out);

/* Detaches: unmaps, drops the handle's locks; the last handle of every
 * process removes the region file. In a forked child it only frees the
 * child's copy. NULL is a no-op. */
void shm_close(shm_region *r);

/* 0, or STOAT_EFORKED when r was opened before a fork() in this child. */
int shm_check(const shm_region *r);

/* The mapping: valid until shm_close. Borrowed. */
void *shm_base(const shm_region *r);
uint64_t shm_size(const shm_region *r);
/* 1 when this handle created (or rebuilt) the region, 0 when it attached. */
int shm_created(const shm_region *r);
/* The region file's path, and the path of the database directory's
 * SHMLOCK (borrowed, valid until shm_close). */
const char *shm_path(const shm_region *r);
const char *shm_lock_path(const shm_region *r);

/* The companion file's mapping (zero-filled when created), or NULL when
 * the region has none; valid until shm_close. */
void *shm_cache_base(const shm_region *r);
uint64_t shm_cache_size(const shm_region *r);
/* Reserves bytes [off, off + len) of the companion file (posix_fallocate):
 * 0, or an errno value (ENOSPC: the file system is full). A
 * shared_cache_reserve_fn when arg is the region. */
int shm_cache_reserve(void *region, uint64_t off, uint64_t len);

/* The fork generation of this process: bumped in a child by the atfork
 * handler the first open registers. */
unsigned long shm_fork_generation(void);

/* Opens path (open(2) flags and mode; O_CLOEXEC is added) into *fdp as
 * a lock descriptor that a forked child must not keep: the atfork handler
 * closes it in the child and sets *fdp = -1. Opening and registering
 * exclude fork(), so no child gets an unregistered copy. Returns 0 or an
 * errno value (*fdp is then -1). Close with shm_fd_close. */
int shm_fd_open(const char *path, int flags, unsigned mode, int *fdp);
void shm_fd_close(int *fdp);

#endif
