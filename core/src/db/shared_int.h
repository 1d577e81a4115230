/*
 * shared_int.h - what the three files of the multi-process mode share
 * (private to them): the encoding of wal_head, the replay callback's
 * state, and the functions one file calls in another. The design, the
 * invariants and the lock order are in shared.c's opening comment.
 *
 *   shared.c          publishing, the commit lock and its repair, rotation,
 *                     the hooks of the commit path (write.c)
 *   shared_catchup.c  catch-up: replaying the others' WAL records, MANIFEST
 *                     reloads, the oracle's cursor
 *   shared_open.c     open: the first process recovers, the others join;
 *                     the keeper (election, take-over, WAL sweep); close
 */
#ifndef STOAT_DB_SHARED_INT_H
#define STOAT_DB_SHARED_INT_H

#include "db/shared.h"

#define MP_RETRIES 1000
#define MP_READ_ARENA (64u << 10) /* a memtable opened only to read its WAL */

static inline uint64_t head_id(uint64_t h)
{
    return h >> DB_WAL_END_BITS;
}

static inline uint64_t head_end(uint64_t h)
{
    return h & DB_WAL_END_MASK;
}

static inline uint64_t head_make(uint64_t id, uint64_t end)
{
    return id << DB_WAL_END_BITS | end;
}

/* The state of a replay that applies WAL records to a memtable
 * (mp_apply_entry, its callback). */
typedef struct mp_apply {
    db_mp *mp;
    memtable *m;
    uint64_t stamp_floor;   /* entries at or below: GC rewrites, stamped */
    uint64_t stamp;
    uint64_t note_floor;    /* entries above are commits for the oracle (mp_join) */
    uint64_t max_v;         /* the newest commit applied */
} mp_apply;

/* shared.c: what this process publishes */
void mp_publish_vlog(db_shared_hdr *h, uint64_t fid, uint64_t end);
void mp_publish_follow(stoat_db *db);
void mp_follow(stoat_db *db, uint64_t id);

/* shared_catchup.c: catch-up */
int mp_note_key(db_mp *mp, uint64_t version, slice ukey);
int mp_record_keys_locked(stoat_db *db);
int mp_apply_entry(void *arg, slice ikey, slice value);
int mp_load_view(stoat_db *db, int writable, lsm_view **v, manifest_state *st,
                 manifest **man, uint64_t *gen);
void mp_install_view(stoat_db *db, lsm_view *v, manifest *man, uint64_t log_number,
                     uint64_t gen);
int mp_reload_manifest(stoat_db *db);
int mp_attach(stoat_db *db, uint64_t id, uint64_t arena, memtable **m);
void mp_note_published_vlog(stoat_db *db);
int mp_advance(stoat_db *db, uint64_t last);
int mp_catch_up_locked(stoat_db *db);
int mp_catch_up(stoat_db *db);

/* shared_catchup.c: the oracle's cursor */
void mp_note_close(db_mp *mp);
void mp_note_move(stoat_db *db, uint64_t id, uint64_t pos, uint64_t version);
int mp_note_up_locked(stoat_db *db);
void mp_note_catch_up_locked(stoat_db *db);

#endif
