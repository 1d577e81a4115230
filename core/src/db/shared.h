/*
 * shared.h - the multi-process mode: several processes (and several
 * handles in one process) read and write one database directory
 * (shared.c has the design; stoat.h what is shared and what is not).
 *
 * All of it is a no-op for a single-process handle (db->mp == NULL),
 * except where said.
 */
#ifndef STOAT_DB_SHARED_H
#define STOAT_DB_SHARED_H

#include "db/db.h"

/* Full recovery of the directory, run by the first process to attach
 * (open.c's db_recover). */
typedef int (*db_recover_fn)(stoat_db *db);

/* Attaches db to the directory's shared region: the first process runs
 * recover() and publishes the result; later ones load the MANIFEST and
 * replay the WALs up to the published length. Then claims a liveness
 * slot. db->mp is set on success. */
int db_mp_open(stoat_db *db, db_recover_fn recover);

/* Starts the keeper thread (election, catch-up, horizon scans), once the
 * handle is whole: it reads db->vlog, which a joining process opens after
 * db_mp_open. */
int db_mp_start(stoat_db *db);

/* The block cache capacity of one of `live` handles sharing cache_size,
 * with (shared = 1) or without the shared block cache behind it. */
uint64_t db_mp_cache_share(uint64_t cache_size, uint64_t live, int shared);

/* Stops the keeper, frees the slot, detaches (the last process removes
 * the region). The background threads must be stopped first. */
void db_mp_close(stoat_db *db);

/* Applies what other processes committed since this handle last looked
 * (their WAL records, a rotated WAL, a new MANIFEST generation); cheap
 * when nothing changed. Readers call it before they take a read version,
 * so a commit acknowledged anywhere is seen by every later read. */
int db_mp_catch_up(stoat_db *db);

/*
 * The commit path of the front writer (write.c). begin takes the commit
 * lock (waiting at most lock_timeout_ms: STOAT_EBUSY naming the holder),
 * repairs what a dead holder left, and, when `note` is set (the group
 * holds a transaction that read), teaches the oracle every commit of the
 * others. Then, holding it: room() rotates the shared WAL when `need`
 * more arena bytes would not fit in the memtables of every process (or
 * when force is set and the WAL holds records); next_version() is the
 * version the next commit gets; intent() records what the append will
 * publish (before any byte is written) and returns the memtable of the
 * head WAL to append to, and whether to apply the record to it now (only
 * when this handle has applied every commit before: else its catch-up
 * applies it later, with the others'); vlog_adopt() points the value log
 * at the published active file; the caller appends to the value log and
 * the WAL; publish() makes it visible to every process. end() releases
 * the lock (a failed commit leaves its intent, so the next holder cuts
 * the WAL back). room() rotates when `need` (the arena bytes of the
 * group's entries at their worst) would not fit the WAL's arena, or `est`
 * (as expected) would take the WAL's entries past memtable_size.
 */
int db_mp_commit_begin(stoat_db *db, int note);
int db_mp_room(stoat_db *db, uint64_t need, uint64_t est, int force, int *rotated);
int db_mp_vlog_adopt(stoat_db *db);
uint64_t db_mp_next_version(stoat_db *db);
memtable *db_mp_intent(stoat_db *db, uint64_t top, int *apply);
void db_mp_publish(stoat_db *db, uint64_t need, uint64_t est, uint64_t top);

/* The arena of every memtable of a shared WAL, for memtables of
 * memtable_size bytes: the WAL rotates once its entries take about
 * memtable_size bytes as expected (`est` above, as a single process's
 * memtable fills), while the arena must hold them at their worst (`need`:
 * every skiplist node at its full height), about twice as much for the
 * smallest entries. Untouched arena pages cost no memory. */
uint64_t db_mp_arena_size(uint64_t memtable_size);
void db_mp_commit_end(stoat_db *db, int ok);

/* A bulk load's value-log appends (ingest.c), under the commit lock:
 * to the published active file, after its published end, which then
 * moves past them. No WAL record: the loaded tables will point at them. */
int db_mp_vlog_append(stoat_db *db, const slice *ikeys, const slice *values, size_t n,
                      vptr *ptrs);

/*
 * An exclusive write (a bulk load's install, db_write_exclusive) in
 * multi-process mode, which the caller runs in the background owner only
 * (it edits the MANIFEST). begin takes the commit lock, so that no process
 * commits meanwhile, applies every published commit to this handle's
 * memtables, and refuses (STOAT_EBUSY) when commits passed `version`;
 * end, when ok, publishes `version` as the newest commit, and as the
 * load floor: the other handles' transactions begun below it that read
 * conflict, since the loaded keys never pass through a WAL their oracles
 * learn from. Then releases the lock.
 */
int db_mp_exclusive_begin(stoat_db *db, uint64_t version);
void db_mp_exclusive_end(stoat_db *db, uint64_t version, int ok);

/* A write failed to reach the disk (a failed fsync or append, not a full
 * disk): the WALs every process appends to may have lost bytes acknowledged
 * before, so every process refuses writes until all have closed and the
 * next open recovers from the files (STOAT_EIO naming this process). */
void db_mp_fatal(stoat_db *db);

/* stoat_sync: this process's value-log appends, then the head WAL, made
 * durable without the commit lock (so that other processes' commits never
 * wait for this fsync). A WAL rotated away was synced by its rotation. */
int db_mp_sync(stoat_db *db);

/*
 * A durable commit (sync "commit"), under the commit lock, before it
 * syncs the WAL: the value-log bytes every process published so far made
 * durable, when they moved since this handle last did it. The WAL record
 * about to become durable sits behind other processes' records, whose
 * values may still be in the page cache only: were they lost, recovery
 * would stop at the first of those records and cut the durable commit
 * off. 0 at once outside multi-process mode.
 */
int db_mp_sync_published_values(stoat_db *db);

/* Seals the value-log file every process appends to and starts the next
 * one, under the commit lock (value-log GC collects sealed files only). */
int db_mp_vlog_rotate(stoat_db *db);

/* The owner installed a MANIFEST edit (log_number: the WALs below are
 * flushed, 0 when it says nothing of them): tell the other processes
 * (db->mu held). */
void db_mp_manifest_changed(stoat_db *db, uint64_t log_number);

/* The owner: rescans the liveness slots for the oldest snapshot of any
 * live process, which compaction and GC keep (the keeper does it every
 * round; flatten and GC first). */
int db_mp_refresh_horizon(stoat_db *db);

/* The owner publishes its backlog (unflushed memtables, L0 tables), which
 * every process's writers slow down and stall on (db->mu held). */
void db_mp_backlog_locked(stoat_db *db);

/* The WAL commits go to now: every WAL that may point into a value-log
 * file sealed before is this one or older. */
uint64_t db_mp_head_wal(stoat_db *db);

/* The owner (mu held): the oldest WAL that may hold records not yet
 * flushed, UINT64_MAX when none does. */
uint64_t db_mp_oldest_wal_locked(stoat_db *db);

/* The WAL after the memtable being flushed: the active memtable's, or in
 * multi-process mode without one the first this handle has not applied
 * (mu held). */
uint64_t db_mp_next_wal_locked(stoat_db *db);

/* 1 when this handle runs the background work (always 1 single-process). */
int db_mp_is_owner(stoat_db *db);

#endif
