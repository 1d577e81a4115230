/*
 * write_int.h - what the two files of the write path share (private to
 * them): write.c leads the groups, write_record.c builds, logs and applies
 * each group's record. Every function here is called by the front writer
 * of the writer queue, without db->mu.
 */
#ifndef STOAT_DB_WRITE_INT_H
#define STOAT_DB_WRITE_INT_H

#include "db/write.h"

/* op's value goes to the value log (the WAL and memtable get a pointer). */
static inline int op_separated(const stoat_db *db, const db_write_op *op)
{
    return db->vlog != NULL && !(op->meta & VMETA_DELETE) &&
           op->value.len >= db->opts.value_threshold;
}

/* write_record.c: the group first..last (writers with version 0, and
 * skipped ops, are left out). separate_values appends the large values
 * to the value log (*n_sep of them); encode_group fills db->wal_payload;
 * commit_group logs it to m's WAL, syncs when sync is set, and applies it
 * to m when apply is set; count_unlogged_values counts the n_sep values
 * of a group whose WAL append a full disk refused as garbage. */
int db_separate_values(stoat_db *db, db_writer *first, db_writer *last, size_t *n_sep);
int db_encode_group(stoat_db *db, db_writer *first, db_writer *last);
int db_commit_group(stoat_db *db, memtable *m, int sync, int apply, db_writer *first,
                    db_writer *last);
void db_count_unlogged_values(stoat_db *db, size_t n_sep);

#endif
