/*
 * state.h - the handle's shared rules: checks made by every public call,
 * the sticky background error and the no-space state, file ids, the
 * immutable-memtable queue, seek charges (state.c). Functions named _locked expect db->mu held.
 */
#ifndef STOAT_DB_STATE_H
#define STOAT_DB_STATE_H

#include "db/db.h"

/* Unix time in milliseconds (CLOCK_REALTIME), rounded up when round_up is
 * set: expiries are computed rounded up and compared rounded down, so an
 * entry never expires before its ttl has passed. */
uint64_t db_clock_ms(int round_up);
/* The current fork generation (registers the fork hook on first use). */
unsigned long db_fork_generation(void);
/* 0, or STOAT_EINVAL (NULL) / STOAT_EFORKED (opened in another process). */
int db_check_handle(stoat_db *db);
/* 0, or STOAT_EINVAL (empty, NULL) / STOAT_ETOOBIG. */
int db_check_key(const void *key, size_t klen);
/* 0, or STOAT_EREADONLY when the database is open read-only. */
int db_check_writable(stoat_db *db);
/* 0, or the sticky error, or STOAT_ECLOSED once close has begun. */
int db_check_running_locked(stoat_db *db);
/* Records the first failure of a write or a background job: every later
 * write returns it. Wakes waiters of done_cv. */
void db_set_bg_error_locked(stoat_db *db, int rc);
/* A point read probed table t of `level` (of the view it read) and then
 * had to look deeper: charges t one seek; the probe that uses up its
 * budget makes it the next seek compaction. Lock-free unless so. */
void db_charge_seek(stoat_db *db, int level, table_meta *t);
/* A new file id (takes mu; a compaction_ctx's new_file_id). */
uint64_t db_new_file_id(void *db);
/* Queues m (made immutable) for the flusher, oldest first. */
int db_push_imm_locked(stoat_db *db, memtable *m);
/* Waits until every immutable memtable up to mem_id is flushed; the
 * sticky error or STOAT_ECLOSED when that cannot happen. */
int db_wait_flushed_locked(stoat_db *db, uint64_t mem_id);

/*
 * A full disk. A background job (flush, compaction) that failed with
 * STOAT_ENOSPC left nothing behind and is retried, so it does not set the
 * sticky error: db_bg_failed_locked records either (and says whether the
 * job should retry after db_nospace_backoff_locked), and
 * db_bg_succeeded_locked clears the no-space state. A writer waiting for
 * background work goes through db_wait_bg_locked: while the disk is full
 * it wakes the jobs once and returns STOAT_ENOSPC when that retry fails
 * too, instead of waiting for ever. A db_bg_wait starts zeroed.
 */
typedef struct db_bg_wait {
    int kicked;
    uint64_t fails_at_kick;
} db_bg_wait;

int db_bg_failed_locked(stoat_db *db, int rc);
void db_bg_succeeded_locked(stoat_db *db);
void db_nospace_backoff_locked(stoat_db *db);
int db_wait_bg_locked(stoat_db *db, db_bg_wait *w);

#endif
