/*
 * write.h - the write path (write.c): the writer queue and group commit.
 */
#ifndef STOAT_DB_WRITE_H
#define STOAT_DB_WRITE_H

#include "db/db.h"

/* Writes ops as one commit (a batch, a put): one version for all. */
int db_write(stoat_db *db, const db_write_op *ops, size_t n);
/* Returns once every write queued before it is applied and published. */
int db_barrier(stoat_db *db);
/* Makes every write queued before it durable: fsync of the value log,
 * then of the WAL (stoat_sync). */
int db_sync_logs(stoat_db *db);
/* Makes the active memtable immutable and waits until it and every older
 * one are flushed to L0 (stoat_flush). */
int db_rotate_and_wait(stoat_db *db);
/* Writes GC rewrites (ops with their versions kept, each its key's newest
 * version as of read_version). An op whose key was written after
 * read_version is skipped and flagged in skip[]. *done_version gets a
 * version after which every new snapshot sees the rewrites. */
int db_write_gc(stoat_db *db, const db_write_op *ops, size_t n, uint64_t read_version,
                uint8_t *skip, uint64_t *done_version);
/*
 * Runs fn(db, arg) at the front of the writer queue, without db->mu: no
 * write is in flight while it runs and none starts before it returns.
 * version, when not 0, is one db_version_reserve gave: fn runs only while
 * no commit has reached it (else STOAT_EBUSY), and once fn returns 0 it
 * becomes the last published version (what fn installed is visible to
 * every snapshot taken from then on, to none taken before).
 */
int db_write_exclusive(stoat_db *db, uint64_t version, int (*fn)(stoat_db *db, void *arg),
                       void *arg);
/* A version `ahead` versions past the next commit's, for
 * db_write_exclusive; 0 when versions would run out. */
uint64_t db_version_reserve(stoat_db *db, uint64_t ahead);
/* Commits a transaction's writes after checking its reads for conflicts
 * (reads NULL: no check). */
int db_write_txn(stoat_db *db, const db_write_op *ops, size_t n, txn_reads *reads,
                 uint64_t read_version);
/* 0, or the reason op cannot be written (key, value size, meta). */
int db_check_write_op(const db_write_op *op);

#endif
