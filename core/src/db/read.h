/*
 * read.h - point reads (read.c), and the read view an iterator pins.
 */
#ifndef STOAT_DB_READ_H
#define STOAT_DB_READ_H

#include "db/db.h"

/* What a read pins: memtables newest first, and a version. */
typedef struct read_view {
    memtable *mems_small[8];
    memtable **mems;
    size_t n_mems;
    lsm_view *v;
    uint64_t read_version;
} read_view;

/* The read version that means "the latest published": reads take
 * last_version when they start. Any other value, 0 included (a snapshot
 * of a database with no commit yet: nothing is visible), is read as is. */
#define DB_READ_LATEST UINT64_MAX

/* Pins the read structures; reads at read_version, or the latest for
 * DB_READ_LATEST. (0 once meant the latest too, so that a transaction
 * begun before the first commit, at version 0, saw later commits.) When
 * snap is not NULL it is registered as a snapshot at the read version in
 * the same critical section, so that no value-log file the view needs can
 * be deleted between the two. */
int read_view_pin(stoat_db *db, read_view *rv, uint64_t read_version, db_snapshot *snap);
/* Drops the memtables (their iterators hold their own references). */
void read_view_unpin_mems(read_view *rv);
void read_view_unpin(read_view *rv);

/* Reads the separated value vs points to (the record of ukey at version)
 * into vv, and points vs->value at it: borrowed from a mapped value-log
 * file (vv pins it) or in vv's buffer, valid until vv is next used or
 * released (vlog_get). */
int db_read_vlog(stoat_db *db, slice ukey, uint64_t version, vstruct *vs, vlog_value *vv);
/* Drops what vv holds (its pin; with free, its buffer too). NULL-safe db->vlog. */
void db_vlog_value_release(stoat_db *db, vlog_value *vv, int free_buf);
/* The stored value (vstruct bytes, tombstones included) of the newest
 * version of ukey at or below read_version, into stored. */
int db_get_at(stoat_db *db, slice ukey, uint64_t read_version, buf *stored, uint64_t *version);
/*
 * Reads ukey at read_version (or DB_READ_LATEST) as a reader sees it: STOAT_ENOTFOUND
 * when absent, deleted or expired; else *vs describes it and vs->value is
 * the value, separated values read from the value log through vv
 * (db_read_vlog). stored holds the stored bytes vs borrows from.
 */
int db_read_value(stoat_db *db, slice ukey, uint64_t read_version, buf *stored, vlog_value *vv,
                  vstruct *vs, uint64_t *version);
/* ukey's value at `version` points into a value-log file that is gone: is
 * that version superseded (has the key a newer version now)? */
int db_version_superseded(stoat_db *db, slice ukey, uint64_t version);

#endif
