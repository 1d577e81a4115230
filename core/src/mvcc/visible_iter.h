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
 * vstruct are borrowed until the next move. A forward walk over value
 * pointers keeps one entry ahead (visible_iter_ahead). One thread at a
 * time.
 */
#ifndef STOAT_VISIBLE_ITER_H
#define STOAT_VISIBLE_ITER_H

#include <stdint.h>

#include "base/ikey.h"
#include "base/iter.h"

typedef struct visible_iter visible_iter;

typedef struct visible_iter_options {
    slice prefix;           /* len 0 = none */
    slice lower;            /* data NULL = unbounded */
    slice upper;            /* data NULL = unbounded; exclusive */
    uint64_t read_version;
    uint64_t now;           /* unix seconds for TTL; 0 = nothing expires */
    int all_versions;
} visible_iter_options;

/* Takes ownership of internal (freed on failure too). */
int visible_iter_new(iter *internal, const visible_iter_options *o, visible_iter **out);
void visible_iter_free(visible_iter *it);

void visible_iter_seek_first(visible_iter *it);
void visible_iter_seek_last(visible_iter *it);
void visible_iter_seek(visible_iter *it, slice ukey);          /* first key >= ukey */
void visible_iter_seek_for_prev(visible_iter *it, slice ukey); /* last key <= ukey */
void visible_iter_next(visible_iter *it);
void visible_iter_prev(visible_iter *it);

int visible_iter_valid(const visible_iter *it);
int visible_iter_status(const visible_iter *it);
slice visible_iter_key(const visible_iter *it);               /* user key */
uint64_t visible_iter_version(const visible_iter *it);
/* The decoded stored value (value bytes or a value pointer, meta bits). */
const vstruct *visible_iter_vstruct(const visible_iter *it);
/*
 * The stored value of the entry the next visible_iter_next will yield, when
 * it is known already (else NULL): after a next onto an entry whose value
 * is a value pointer, the iterator finds the following entry at once, so
 * that its value can be prefetched while this one is read. Borrowed until
 * the next move.
 */
const vstruct *visible_iter_ahead(const visible_iter *it);
/* Whether later nexts look ahead (on when created): a walk whose values
 * are not read has no use for it. */
void visible_iter_set_look_ahead(visible_iter *it, int on);

#endif
