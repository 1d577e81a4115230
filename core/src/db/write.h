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
/* Commits a transaction's writes after checking its reads for conflicts
 * (reads NULL: no check). */
int db_write_txn(stoat_db *db, const db_write_op *ops, size_t n, txn_reads *reads,
                 uint64_t read_version);
/* 0, or the reason op cannot be written (key, value size, meta). */
int db_check_write_op(const db_write_op *op);

#endif
