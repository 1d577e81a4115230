/*
 * db_impl.h - the database handle, shared by the db_*.c files.
 *
 *   db_open.c   open, recovery, close, the public argument checks helpers
 *   db_write.c  the write path: writer queue, group commit, memtable room
 *   db_read.c   get and the public iterator
 *   db_bg.c     background threads: memtable flush and compaction
 *   db_gc.c     value-log garbage collection, by call and in the background
 *
 * Locking. `mu` guards the mutable state below (memtables, current
 * version, writer queue, counters, snapshot list, background state).
 * `manifest_mu` serialises edits of the version set: whoever holds it may
 * log an edit and install the version it makes, so `current` changes only
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
#include "base/buf.h"
#include "lsm/compaction.h"
#include "vlog/discard.h"
#include "env/env.h"
#include "lsm/manifest.h"
#include "mem/memtable.h"
#include "mvcc/oracle.h"
#include "base/status.h"
#include "stoat.h"
#include "table/table_cache.h"
#include "lsm/version.h"
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
    int gc;                 /* a GC rewrite: ops keep their versions, no oracle record */
    uint8_t *skip;          /* GC: skip[i] set when ops[i]'s key was written after
                               read_version (its rewrite would resurrect it) */
    int done;
    int rc;
    uint64_t version;       /* the version its ops got */
    pthread_cond_t cv;
    struct db_writer *next;
} db_writer;

/* A registered reader's snapshot (iterators, later transactions). */
typedef struct db_snapshot {
    uint64_t version;
    struct db_snapshot *prev, *next;
} db_snapshot;

struct stoat_db {
    char *dir;
    stoat_options opts;
    env *env;
    unsigned long fork_gen;     /* fork generation at open (db_open.c) */
    struct env_lock *lock;
    int read_only;

    pthread_mutex_t mu;
    pthread_cond_t bg_cv;       /* wakes background threads */
    pthread_cond_t done_cv;     /* flush or compaction finished, or error */
    pthread_mutex_t manifest_mu;

    memtable *mem;              /* active memtable; NULL when read-only */
    memtable **imm;             /* immutable memtables, oldest first */
    size_t n_imm, cap_imm;
    version *current;
    manifest *manifest;
    table_cache *tc;
    block_cache *bc;
    vlog *vlog;
    discard *disc;
    level_options lopts;
    sst_options sopts;

    uint64_t next_file_id;      /* guarded by mu */
    uint64_t next_version;      /* next version to hand out; guarded by mu */
    _Atomic uint64_t last_version;

    db_writer *writers_head, *writers_tail;
    buf wal_payload;            /* used by the front writer only */
    buf vlog_keys;              /* ditto: internal keys of separated values */
    slice *vlog_ikeys, *vlog_vals;  /* ditto */
    vptr *vlog_ptrs;            /* ditto */
    size_t vlog_cap;

    /* value-log GC (db_gc.c) */
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
    int closing;
    int flushing;               /* the flusher is writing an SST */
    int manual_compaction;      /* flatten in progress: automatic picks pause */
    int running_compactions;
    pthread_t flusher;
    pthread_t compactors[DB_MAX_COMPACTORS];
    int n_compactors;
    int threads_started;

    /* counters for stats and tests */
    uint64_t stat_flushes, stat_compactions, stat_stall_micros, stat_slowdowns;
    uint64_t stat_commits, stat_conflicts;
    uint64_t stat_gc_runs, stat_gc_reclaimed, stat_gc_rewritten;
};

/* db_open.c */
int db_check_handle(stoat_db *db);
int db_check_key(const void *key, size_t klen);
void db_set_bg_error_locked(stoat_db *db, int rc);
uint64_t db_new_file_id(void *db);
int db_push_imm_locked(stoat_db *db, memtable *m);

/* db_write.c */
int db_write(stoat_db *db, const db_write_op *ops, size_t n, int sync, int rotate);
/* Writes GC rewrites (ops with their versions kept, each its key's newest
 * version as of read_version). An op whose key was written after
 * read_version is skipped and flagged in skip[]. *done_version gets a
 * version after which every new snapshot sees the rewrites. */
int db_write_gc(stoat_db *db, const db_write_op *ops, size_t n, uint64_t read_version,
                uint8_t *skip, uint64_t *done_version);
/* Commits a transaction's writes after checking its reads for conflicts
 * (reads NULL: no check). */
int db_write_txn(stoat_db *db, const db_write_op *ops, size_t n, txn_reads *reads,
                 uint64_t read_version);
int db_check_write_op(const db_write_op *op);

/* db_gc.c */
int db_gc_start(stoat_db *db);
void db_gc_stop(stoat_db *db);
/* Deletes rewritten files no snapshot can reach any more (mu not held). */
void db_gc_reap(stoat_db *db);
/* A dropped entry's value-log bytes become garbage (compaction). */
void db_gc_on_drop(void *db, slice ikey, slice value);

/* db_bg.c */
int db_bg_start(stoat_db *db);
void db_bg_stop(stoat_db *db);
int db_install_edit(stoat_db *db, version_edit *edit);
int db_wait_flushed_locked(stoat_db *db, uint64_t mem_id);
int db_flatten(stoat_db *db);

/* db_read.c */
uint64_t db_oldest_snapshot_locked(stoat_db *db);
void db_snapshot_add(stoat_db *db, db_snapshot *s);
void db_snapshot_add_locked(stoat_db *db, db_snapshot *s);
void db_snapshot_remove(stoat_db *db, db_snapshot *s);
/* The stored value (vstruct bytes, tombstones included) of the newest
 * version of ukey at or below read_version, into stored. */
int db_get_at(stoat_db *db, slice ukey, uint64_t read_version, buf *stored, uint64_t *version);
/*
 * Reads ukey at read_version (0 = latest) as a reader sees it: STOAT_ENOTFOUND
 * when absent, deleted or expired; else *vs describes it and vs->value is
 * the value, separated values read from the value log into vbuf. stored
 * holds the stored bytes vs borrows from.
 */
int db_read_value(stoat_db *db, slice ukey, uint64_t read_version, buf *stored, buf *vbuf,
                  vstruct *vs, uint64_t *version);
/* Opens an iterator at read_version (0 = latest) merging `pending`
 * (owned, may be NULL) ahead of the database. An iterator of a
 * transaction tells it when it closes (with the key range it covered when
 * track_range is set). */
int db_iter_open(stoat_db *db, struct stoat_txn *txn, int track_range, uint64_t read_version,
                 iter *pending, const stoat_iter_options *o, stoat_iter **out);
/* Its transaction is gone: the iterator stops reporting to it. */
void db_iter_detach(stoat_iter *it);
/* Test support: prints the iterator's read version, each source's
 * position and the tables of its version. */
void db_iter_describe(stoat_iter *it, FILE *f);

/* txn.c */
/* it closes; lo/hi are its covered range when it tracked one (data NULL =
 * unbounded; both NULL with tracked 0 = nothing to record). */
void txn_iter_closed(struct stoat_txn *txn, stoat_iter *it, int tracked, slice lo, slice hi);
int db_check_iter_options(const stoat_iter_options *o);

#endif
