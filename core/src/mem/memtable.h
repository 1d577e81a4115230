/*
 * memtable.h - one memtable: an arena skiplist of internal keys plus the
 * WAL file that makes it durable.
 *
 * The memtable owns its arena (all keys and values live in it, addressed by
 * offsets) and its WAL file NNNNNN.wal in the database directory. It is
 * refcounted: the database holds one reference while it is active or queued
 * for flush; readers and iterators take their own. When the last reference
 * goes and memtable_mark_obsolete() was called (its SST is safely in the
 * manifest), the WAL file is removed.
 *
 * Threads: one writer at a time (the database's write path serialises
 * memtable_log and memtable_add); any number of readers run lock-free and
 * concurrently with it. An entry becomes visible to readers atomically when
 * memtable_add links it.
 */
#ifndef STOAT_MEMTABLE_H
#define STOAT_MEMTABLE_H

#include <stdint.h>

#include "env/env.h"
#include "log/wal.h"
#include "base/iter.h"
#include "base/slice.h"
#include "log/wal.h"

typedef struct memtable memtable;

/* Bytes of arena one entry costs at most beyond its key and value
 * (node with a full tower, alignment). */
#define MEMTABLE_ENTRY_OVERHEAD 128

/*
 * Creates an empty memtable with an arena of arena_size bytes and a new,
 * empty WAL file dir/NNNNNN.wal (NNNNNN = id, zero-padded decimal).
 */
int memtable_new(env *e, const char *dir, uint64_t id, uint64_t arena_size, memtable **out);

/*
 * Opens the existing WAL dir/NNNNNN.wal and replays it into a new
 * memtable (the arena grows to fit the WAL's contents if arena_size is too
 * small). A torn tail is truncated away (read_only: left alone and
 * ignored). A record with a bad checksum that is not the tail is
 * STOAT_ECORRUPT naming the file and offset. *max_version receives the
 * largest version found (0 if none). The recovered memtable accepts no
 * further appends to its WAL unless `writable` is set.
 */
int memtable_recover(env *e, const char *dir, uint64_t id, uint64_t arena_size, int read_only,
                     uint64_t *max_version, memtable **out);
/* memtable_recover, ending the replay where `until` (wal.h,
 * wal_replay_until) says WAL_STOP: that record and the rest are cut off
 * like a torn tail. */
int memtable_recover_until(env *e, const char *dir, uint64_t id, uint64_t arena_size,
                           int read_only, wal_entry_fn until, void *until_arg,
                           uint64_t *max_version, memtable **out);

/*
 * Multi-process mode (db/shared.c): every process keeps its own memtable
 * for each WAL file and fills it from the records other processes append.
 * memtable_attach opens the existing WAL dir/NNNNNN.wal for appends (no
 * truncation, no replay) under an empty skiplist of arena_size bytes;
 * memtable_replay_range hands the entries of the records in [from, to) of
 * its WAL to fn (wal_replay_range: `to` is a published length, or
 * UINT64_MAX for a sealed file read to its end); memtable_set_wal_size
 * sets the good length a failed append is cut back to (the WAL grows by
 * other processes' appends too).
 */
int memtable_attach(env *e, const char *dir, uint64_t id, uint64_t arena_size, memtable **out);
int memtable_replay_range(memtable *m, uint64_t from, uint64_t to, wal_entry_fn fn, void *arg,
                          uint64_t *good_len);
void memtable_set_wal_size(memtable *m, uint64_t size);

/* Appends one record (a commit's encoded entries, see wal.h) to the WAL. */
int memtable_log(memtable *m, const void *rec, size_t len);

/* fdatasync of the WAL. Callers serialise it with memtable_log. */
int memtable_sync(memtable *m);

/*
 * Inserts one entry into the skiplist (not the WAL). The bytes are copied
 * into the arena. STOAT_ENOMEM if the arena has no room (callers check
 * memtable_room first). Re-adding an existing internal key replaces its
 * value. visible_from is 0 for an ordinary write; for a value-log GC
 * rewrite (an entry under an older version than its commit's) it is the
 * commit's version: iterators bounded below it never see the new entry
 * (skiplist.h, "Stamps").
 */
int memtable_add(memtable *m, slice ikey, slice value, uint64_t visible_from);

/* 1 if `bytes` more of keys and values (plus per-entry overhead for n
 * entries) fit in the arena. */
int memtable_room(const memtable *m, uint64_t bytes, uint64_t n);

/*
 * Newest entry of user key ukey with version <= version. On success *ikey
 * and *value are borrowed from the arena (valid while the caller holds a
 * reference). STOAT_ENOTFOUND when there is none (tombstones are found:
 * the caller decodes the value).
 */
int memtable_get(memtable *m, slice ukey, uint64_t version, slice *ikey, slice *value);

/* An iterator over all entries; holds a reference until freed. */
iter *memtable_iter(memtable *m);

/*
 * An iterator over the entries a reader at read_version may meet: entries
 * added with a visible_from above it (GC rewrites committed after the
 * reader began) are passed over, so the iterator's view of the memtable
 * never gains an entry at a version the reader can see, however long it
 * lives. Entries with versions above read_version are still yielded (the
 * reader filters them by version).
 */
iter *memtable_iter_at(memtable *m, uint64_t read_version);

uint64_t memtable_id(const memtable *m);
uint64_t memtable_arena_used(const memtable *m);
uint64_t memtable_wal_size(const memtable *m);
uint64_t memtable_count(const memtable *m);
/* Smallest and largest version added (0,0 when empty). */
uint64_t memtable_min_version(const memtable *m);
uint64_t memtable_max_version(const memtable *m);

void memtable_ref(memtable *m);
void memtable_unref(memtable *m);
/* Its data is in an SST now: remove the WAL file when the last ref goes. */
void memtable_mark_obsolete(memtable *m);

#endif
