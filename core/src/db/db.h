/*
 * db.h - the database handle, shared by the files of db/. Each file's
 * functions are declared in its own header; the files call each other
 * only downward, in this order (make check-layers holds them to it):
 *
 *   open.c                         open, recovery, close
 *   txn.c batch.c vlog_gc.c stats.c transactions, batches, value-log GC,
 *   verify.c ingest.c              statistics, the checksum walk (verify.c
 *                                  reads through a read-only transaction),
 *                                  bulk loads (tables built directly)
 *   iterator.c flush_compact.c     the public iterator; the background
 *   ingest_build.c                 threads (memtable flush, compaction);
 *                                  a bulk load's tables
 *   read.c write.c                 point reads; the write path (writer
 *   write_record.c                 queue, group commit, memtable room;
 *                                  a group's record)
 *   state.c snapshots.c options.c  the handle's shared rules, the snapshot
 *                                  list, the options' defaults and checks
 *
 * Locking. `mu` guards the mutable state below (memtables, current
 * lsm_view, writer queue, counters, snapshot list, background state).
 * `manifest_mu` serialises edits of the tree: whoever holds it may log an
 * edit and install the lsm_view it makes, so `current` changes only
 * under both locks. Never take manifest_mu while holding mu.
 *
 * The write path lets one thread at a time, the front writer, append to
 * the WAL and insert into the active memtable without holding mu; readers
 * reach memtables lock-free. `last_version` is the newest version whose
 * writes are all in the memtable: readers read at it.
 */
#ifndef STOAT_DB_IMPL_H
#define STOAT_DB_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "table/block_cache.h"
#include "table/shared_cache.h"
#include "base/buf.h"
#include "lsm/compaction.h"
#include "vlog/discard.h"
#include "env/env.h"
#include "lsm/manifest.h"
#include "mem/memtable.h"
#include "mvcc/oracle.h"
#include "base/status.h"
#include "crypt/key_registry.h"
#include "stoat.h"
#include "table/table_cache.h"
#include "env/proc_lock.h"
#include "env/proc_slots.h"
#include "env/shm.h"
#include "lsm/view.h"
#include "vlog/vlog.h"

#define DB_MAX_COMPACTORS 16

/* One entry of a write: built by the API, versioned by the write path. */
typedef struct db_write_op {
    uint8_t meta;           /* 0 or VMETA_DELETE */
    uint8_t user_meta;
    uint64_t expires_at;
    slice key;              /* borrowed from the caller for the write's duration */
    slice value;
    uint64_t version;       /* 0: the commit's version; else kept (GC rewrites) */
} db_write_op;

/* A thread waiting in the writer queue. */
typedef struct db_writer {
    const db_write_op *ops;
    size_t n_ops;
    txn_reads *reads;       /* a transaction's reads to check, or NULL */
    uint64_t read_version;  /* ... at this read version */
    int sync;               /* fsync the WAL before returning */
    int rotate;             /* make the active memtable immutable (flush) */
    /* db_write_exclusive: run with no write in flight (mu not held) */
    int (*exclusive)(stoat_db *db, void *arg);
    void *exclusive_arg;
    uint64_t exclusive_version; /* ... then publish this reserved version (0: none) */
    int gc;                 /* a GC rewrite: ops keep their versions, no oracle record */
    uint8_t *skip;          /* GC: skip[i] set when ops[i]'s key was written after
                               read_version (its rewrite would resurrect it) */
    int done;
    int rc;
    uint64_t version;       /* the version its ops got */
    uint64_t rotated_mem;   /* rotate: the memtable made immutable (0: none) */
    pthread_cond_t cv;
    struct db_writer *next;
} db_writer;

/*
 * Multi-process mode (shared.c). The shared header lives in the region
 * (env/shm.h) at SHM_OFF_FREE; every field is an 8-byte lock-free atomic
 * (core/FORMAT.md, "Shared memory"). Fields change only under the commit
 * lock, except next_file_id (fetch-add by anyone) and manifest_gen (the
 * background owner, after each MANIFEST edit).
 */
#define DB_WAL_END_BITS 36      /* wal_head = WAL id << 36 | its published length */
#define DB_WAL_END_MASK ((1ull << DB_WAL_END_BITS) - 1)
#define DB_VLOG_PUB_END_BITS 36 /* vlog_pub = value-log file id << 36 | its published end */
#define DB_VLOG_PUB_END_MASK ((1ull << DB_VLOG_PUB_END_BITS) - 1)

typedef struct db_shared_hdr {
    _Atomic uint64_t magic;         /* DB_SHARED_MAGIC once initialised */
    _Atomic uint64_t last_version;  /* newest published commit */
    _Atomic uint64_t wal_head;      /* the WAL commits append to, and its length */
    _Atomic uint64_t wal_need;      /* arena bytes its entries take at most */
    _Atomic uint64_t wal_arena;     /* arena size of its memtables */
    _Atomic uint64_t next_file_id;
    _Atomic uint64_t manifest_gen;  /* bumped after every MANIFEST edit */
    _Atomic uint64_t memtable_size;
    _Atomic uint64_t intent_head;   /* wal_head before the holder's append */
    _Atomic uint64_t intent_top;    /* the version that append publishes (rotating: the new WAL) */
    _Atomic uint64_t fatal;         /* a failed write that needs every handle closed */
    _Atomic uint64_t owner_pid;     /* the background owner (diagnostics) */
    _Atomic uint64_t vlog_fid;      /* the value-log file appends go to (0: none yet) */
    _Atomic uint64_t vlog_end;      /* ... and the end of its last published record */
    _Atomic uint64_t backlog;       /* the owner's unflushed memtables << 32 | L0 tables */
    _Atomic uint64_t load_floor;    /* the version of the last bulk load installed (0: none) */
    _Atomic uint64_t vlog_pub;      /* vlog_fid << 36 | vlog_end in one word (0: none) */
    _Atomic uint64_t wal_est;       /* arena bytes its entries take, as expected */
    _Atomic uint64_t vlog_synced;   /* value-log files below this one are durable */
    _Atomic uint64_t live;          /* live handles at the owner's last slot scan */
} db_shared_hdr;

typedef struct db_mp {
    shm_region *region;
    shared_cache *sc;               /* the shared block cache, or NULL (none to be had) */
    db_shared_hdr *hdr;
    proc_lock *lock;
    proc_slots *slots;
    pthread_mutex_t slots_mu;       /* serialises calls on `slots` */
    pthread_mutex_t tail_mu;        /* one thread applies WAL records at a time */
    uint64_t wal_id, wal_pos;       /* how far this handle applied (tail_mu); with
                                     * db->mem NULL: the first WAL from wal_id on */
    uint64_t applied_max;           /* the newest commit applied (tail_mu) */
    _Atomic uint64_t applied_head;  /* the same as a wal_head, for a lock-free look */
    memtable *wtail;                /* the head WAL, which commits append to (tail_mu) */
    int apply_now;                  /* this commit applies its own record (commit lock) */
    int note_now;                   /* ...and the oracle's cursor follows it */
    uint64_t note_id, note_pos;     /* how far the oracle learned the commits (tail_mu) */
    uint64_t note_version;          /* the newest commit it learned */
    memtable *note_mem;             /* WAL note_id, read for the oracle (its WAL only) */
    _Atomic int read_since;         /* a read asked for a catch-up since the keeper's round */
    _Atomic uint64_t manifest_gen;  /* the generation `current` was loaded at */
    uint64_t log_number;            /* its WALs below this are flushed (mu) */
    uint64_t swept_below;           /* the owner removed the WALs below (keeper) */
    uint64_t conflict_floor;        /* transactions reading below it conflict (tail_mu) */
    uint64_t load_seen;             /* the newest load_floor it took into conflict_floor */
    _Atomic uint64_t vlog_pub_seen; /* the last vlog_pub handed to the value log */
    _Atomic uint64_t vlog_pub_synced; /* the vlog_pub its last durable commit made durable */
    _Atomic uint64_t horizon;       /* oldest snapshot of any process (owner's scan) */
    _Atomic int owner;              /* this handle runs the background work */
    uint32_t lock_timeout_ms;
    pthread_t keeper;               /* election, catch-up, horizon scans */
    int keeper_started;
    pthread_cond_t keeper_cv;
    buf keys;                       /* catch-up: keys of the commits applied */
    struct mp_key { uint64_t version; size_t off, len; } *key_refs;
    size_t n_key_refs, cap_key_refs;
} db_mp;

/* A registered reader's snapshot (iterators, transactions, GC). */
typedef struct db_snapshot {
    uint64_t version;
    struct db_snapshot *prev, *next;
} db_snapshot;

struct stoat_db {
    char *dir;
    stoat_options opts;
    env *env;                       /* the crypt env over base_env when encrypted */
    env *base_env;                  /* the env stoat_open was given */
    key_registry *kr;               /* encrypted: the data keys; else NULL */
    unsigned long fork_gen;     /* fork generation at open (state.c) */
    struct env_lock *lock;
    int read_only;

    pthread_mutex_t mu;
    pthread_cond_t bg_cv;       /* wakes background threads */
    pthread_cond_t done_cv;     /* flush or compaction finished, or error */
    pthread_mutex_t manifest_mu;

    memtable *mem;              /* active memtable; NULL when read-only */
    memtable **imm;             /* immutable memtables, oldest first */
    size_t n_imm, cap_imm;
    lsm_view *current;
    manifest *manifest;
    table_cache *tc;
    block_cache *bc;
    vlog *vlog;
    discard *disc;
    level_options lopts;
    sst_options sopts;
    db_mp *mp;                  /* multi-process mode; NULL in a single-process handle */

    uint64_t next_file_id;      /* guarded by mu */
    uint64_t next_version;      /* next version to hand out; guarded by mu */
    _Atomic uint64_t last_version;

    db_writer *writers_head, *writers_tail;
    /* Group commit's wait for followers (write.c, single process): writers
     * inside db_write_queued, how many were when the last durable group
     * had synced, how long that fsync took; arrive_cv wakes a front
     * writer waiting for the queue to fill. Guarded by mu. */
    int writers_inside;
    int sync_crowd;
    uint64_t sync_micros;
    pthread_cond_t arrive_cv;
    buf wal_payload;            /* used by the front writer only */
    buf vlog_keys;              /* ditto: internal keys of separated values */
    slice *vlog_ikeys, *vlog_vals;  /* ditto */
    vptr *vlog_ptrs;            /* ditto */
    size_t vlog_cap;

    /* value-log GC (vlog_gc.c) */
    pthread_mutex_t gc_mu;      /* one GC at a time */
    struct gc_pending {         /* rewritten files waiting for old readers */
        uint32_t fid;
        uint64_t done_version;  /* delete once no snapshot is older */
        uint64_t wal_id;        /* ... and this memtable and older are flushed */
    } *gc_pending;
    size_t n_gc_pending, cap_gc_pending;  /* guarded by mu */
    uint32_t *gc_damaged;       /* files whose scan met damage: not collected */
    size_t n_gc_damaged;        /* guarded by gc_mu */
    pthread_t gc_thread;
    int gc_thread_started;

    db_snapshot snapshots;      /* list head (circular), sorted by version */
    oracle oracle;              /* recent commits, for conflict checks */
    int open_iters;             /* iterators and transactions: close waits for none */

    int bg_error;               /* sticky: first failure of a write or bg job */
    char bg_msg[STATUS_MSG_MAX];
    /* A full disk is not sticky (state.c): background jobs that failed
     * with STOAT_ENOSPC retry, writers that must wait for them give up
     * after one more failed attempt. Guarded by mu. */
    int nospace;                /* the last flush or compaction lacked space */
    uint64_t nospace_fails;     /* attempts that failed for want of space, ever */
    char nospace_msg[STATUS_MSG_MAX];
    int closing;
    int flushing;               /* the flusher is writing an SST */
    int manual_compaction;      /* flatten in progress: automatic picks pause */
    int gc_holds;               /* bulk loads open (ingest.c): value-log GC picks no file */
    int ingesting;              /* a bulk load installs (ingest.c): flatten picks nothing */
    int running_compactions;
    /* Reads and idle time repairing the shape (flush_compact.c): the table
     * whose seeks ran out (its id and level, if seek_due); the newest
     * version seen by the compactors and since when (monotonic ms); how
     * long without commits counts as idle. Guarded by mu. */
    int seek_due;
    int seek_level;
    uint64_t seek_id;
    uint64_t idle_version;
    uint64_t idle_since_ms;
    uint64_t idle_after_ms;
    pthread_t flusher;
    pthread_t compactors[DB_MAX_COMPACTORS];
    int n_compactors;
    int threads_started;

    /* counters for stats and tests */
    uint64_t stat_flushes, stat_compactions, stat_stall_micros, stat_slowdowns;
    uint64_t stat_seek_compactions, stat_idle_compactions;
    uint64_t stat_sync_groups;      /* durable groups committed (one fsync each) */
    uint64_t stat_commits, stat_conflicts;
    uint64_t stat_gc_runs, stat_gc_reclaimed, stat_gc_rewritten;
};

#endif
