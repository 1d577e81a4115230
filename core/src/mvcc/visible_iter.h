/*
 * visible_iter.h - user-facing iteration over a merged internal iterator.
 *
 * Turns a stream of internal keys (all versions, tombstones) into what a
 * reader at read_version sees: for each user key its newest version with
 * version <= read_version, skipping keys whose visible version is a
 * tombstone or has expired (expires_at != 0 and <= now), and keys outside
 * the bounds: prefix, lower (inclusive), upper (exclusive). Moves both
 * ways. With all_versions, every version <= read_version of each visible
 * user key is yielded, newest first (tombstones still hide nothing older
 * in that mode: they are yielded with is_deleted set).
 *
 * Owns the internal iterator and copies of the bounds. key() and the
 * vstruct are borrowed until the next move. One thread at a time.
 */
#ifndef STOAT_DB_ITER_H
#define STOAT_DB_ITER_H

#include <stdint.h>

#include "base/ikey.h"
#include "base/iter.h"

typedef struct db_iter db_iter;

typedef struct db_iter_options {
    slice prefix;           /* len 0 = none */
    slice lower;            /* data NULL = unbounded */
    slice upper;            /* data NULL = unbounded; exclusive */
    uint64_t read_version;
    uint64_t now;           /* unix seconds for TTL; 0 = nothing expires */
    int all_versions;
} db_iter_options;

/* Takes ownership of internal (freed on failure too). */
int db_iter_new(iter *internal, const db_iter_options *o, db_iter **out);
void db_iter_free(db_iter *it);

void db_iter_seek_first(db_iter *it);
void db_iter_seek_last(db_iter *it);
void db_iter_seek(db_iter *it, slice ukey);          /* first key >= ukey */
void db_iter_seek_for_prev(db_iter *it, slice ukey); /* last key <= ukey */
void db_iter_next(db_iter *it);
void db_iter_prev(db_iter *it);

int db_iter_valid(const db_iter *it);
int db_iter_status(const db_iter *it);
slice db_iter_key(const db_iter *it);               /* user key */
uint64_t db_iter_version(const db_iter *it);
/* The decoded stored value (value bytes or a value pointer, meta bits). */
const vstruct *db_iter_vstruct(const db_iter *it);

#endif
