/*
 * shared_catchup.c - the multi-process mode's catch-up: a process applies
 * to its own memtables the WAL records the others appended (crossing
 * their rotations), reloads the MANIFEST the owner edited and drops the
 * memtables it says are flushed; and the oracle's cursor, which reads
 * the keys of every commit for the conflict check. The design and the
 * lock order are in shared.c's opening comment; shared_int.h lists what
 * the other two files call here.
 */
#include <stdlib.h>
#include <unistd.h>

#include "db/shared_int.h"
#include "db/snapshots.h"
#include "db/state.h"
#include "base/ikey.h"
#include "base/status.h"
#include "base/vec.h"
#include "env/filename.h"

/* ---- the oracle's share of what catch-up applies ---- */

int mp_note_key(db_mp *mp, uint64_t version, slice ukey)
{
    size_t off = mp->keys.len;
    int rc;

    if ((rc = buf_append(&mp->keys, ukey.data, ukey.len)) != 0)
        return rc;
    if (VEC_ROOM(mp->key_refs, mp->n_key_refs, mp->cap_key_refs, 64) != 0)
        return status_err(STOAT_ENOMEM, "out of memory following other processes' commits");
    mp->key_refs[mp->n_key_refs++] = (struct mp_key){version, off, ukey.len};
    return 0;
}

/* Records the noted keys as commits, one per version (db->mu held). */
int mp_record_keys_locked(stoat_db *db)
{
    db_mp *mp = db->mp;
    slice *keys = NULL;
    int rc = 0;

    if (mp->n_key_refs > 0 && (keys = malloc(mp->n_key_refs * sizeof(*keys))) == NULL)
        rc = status_err(STOAT_ENOMEM, "out of memory following other processes' commits");
    for (size_t i = 0; rc == 0 && i < mp->n_key_refs;) {
        size_t j = i;
        for (; j < mp->n_key_refs && mp->key_refs[j].version == mp->key_refs[i].version; j++)
            keys[j - i] = slice_make(mp->keys.data + mp->key_refs[j].off, mp->key_refs[j].len);
        if (oracle_record(&db->oracle, mp->key_refs[i].version, keys, j - i) != 0)
            rc = status_err(STOAT_ENOMEM, "out of memory recording a commit");
        i = j;
    }
    free(keys);
    mp->n_key_refs = 0;
    buf_reset(&mp->keys);
    return rc;
}

/* ---- replaying other processes' records ---- */

int mp_apply_entry(void *arg, slice ikey, slice value)
{
    mp_apply *a = arg;
    uint64_t v = ikey_version(ikey);
    int rc;

    rc = memtable_add(a->m, ikey, value, v <= a->stamp_floor ? a->stamp : 0);
    if (rc == STOAT_ENOMEM)
        return status_err(STOAT_ENOMEM, "memtable %llu is full replaying another process's "
                          "commit (its arena is smaller than the WAL needs)",
                          (unsigned long long)memtable_id(a->m));
    if (rc == 0 && v > a->stamp_floor) {
        if (v > a->max_v)
            a->max_v = v;
        if (v > a->note_floor)
            rc = mp_note_key(a->mp, v, ikey_user(ikey));
    }
    return rc;
}

/* Applies m's WAL records in [from, to) (to UINT64_MAX: its end). */
static int mp_replay(stoat_db *db, memtable *m, uint64_t from, uint64_t to, uint64_t floor,
                     uint64_t stamp, uint64_t *end)
{
    mp_apply a = {db->mp, m, floor, stamp, UINT64_MAX, 0};
    int rc = memtable_replay_range(m, from, to, mp_apply_entry, &a, end);

    if (a.max_v > db->mp->applied_max)
        db->mp->applied_max = a.max_v;
    return rc;
}

/* The smallest WAL id in (after, upto] in the directory, 0 if none. */
static int mp_next_wal(stoat_db *db, uint64_t after, uint64_t upto, uint64_t *next)
{
    char **names = NULL;
    size_t n = 0;
    int rc;

    *next = 0;
    if ((rc = env_list(db->env, db->dir, &names, &n)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        uint64_t id;
        if (filename_parse(names[i], FILENAME_EXT_WAL, 0, &id) && id > after && id <= upto &&
            (*next == 0 || id < *next))
            *next = id;
    }
    env_list_free(names, n);
    return 0;
}

static void mp_table_unpin(void *arg, table_meta *t)
{
    stoat_db *db = arg;
    table_cache_unpin(db->tc, t->id);
}

/* Pins every table of v (see the opening comment). STOAT_ENOTFOUND when
 * one is gone already: the owner moved on, load the MANIFEST again. */
static int mp_pin_view(stoat_db *db, lsm_view *v)
{
    for (int l = 0; l < v->num_levels; l++) {
        for (size_t i = 0; i < v->n[l]; i++) {
            table_meta *t = v->tables[l][i];
            int rc = table_cache_pin(db->tc, t->id);
            if (rc != 0)
                return rc;
            t->on_free_arg = db;
            t->on_free = mp_table_unpin;
        }
    }
    return 0;
}

/* Loads the MANIFEST into a pinned view, retrying while the owner
 * deletes tables under it. */
int mp_load_view(stoat_db *db, int writable, lsm_view **v, manifest_state *st,
                 manifest **man, uint64_t *gen)
{
    int rc = 0;

    for (int i = 0; i < MP_RETRIES; i++) {
        *gen = atomic_load_explicit(&db->mp->hdr->manifest_gen, memory_order_acquire);
        if ((rc = manifest_open(db->env, db->dir, db->opts.num_levels, !writable, v, st,
                                man)) != 0)
            return rc;
        if (writable || (rc = mp_pin_view(db, *v)) == 0)
            return 0;
        lsm_view_unref(*v);
        manifest_close(*man);
        *v = NULL;
        *man = NULL;
        if (rc != STOAT_ENOTFOUND)
            return rc;
        usleep(1000);
    }
    return status_err(STOAT_EBUSY, "%s: the MANIFEST kept changing under this process", db->dir);
}

/*
 * Drops the memtables the MANIFEST says are flushed (mu held), the active
 * one too when this process has not followed the rotations since: the
 * next catch-up goes on from the first WAL not flushed, whose commits are
 * the first the tables lack. A replica must never outlive its flush:
 * reads take the first source holding a version of a key, and the
 * replica's would be older than the tables' (read.c). The oracle learns
 * commits through a cursor of its own (mp_note_up_locked), never here.
 */
static void mp_drop_flushed_locked(stoat_db *db, uint64_t log_number)
{
    size_t k = 0;

    if (db->mem != NULL && memtable_id(db->mem) < log_number) {
        memtable_unref(db->mem);    /* the owner removes its WAL */
        db->mem = NULL;
    }
    if (db->mem == NULL && db->mp->wal_id < log_number) {
        db->mp->wal_pos = WAL_HEADER_LEN;
        mp_follow(db, log_number);
    }
    for (size_t i = 0; i < db->n_imm; i++) {
        if (memtable_id(db->imm[i]) < log_number)
            memtable_unref(db->imm[i]);     /* the owner removes its WAL */
        else
            db->imm[k++] = db->imm[i];
    }
    db->n_imm = k;
}

/* Installs view v (and, for a new owner, its MANIFEST handle). */
void mp_install_view(stoat_db *db, lsm_view *v, manifest *man, uint64_t log_number,
                     uint64_t gen)
{
    lsm_view *old;

    pthread_mutex_lock(&db->manifest_mu);
    pthread_mutex_lock(&db->mu);
    old = db->current;
    db->current = v;
    if (man != NULL) {
        manifest_close(db->manifest);
        db->manifest = man;
    }
    mp_drop_flushed_locked(db, log_number);
    db->mp->log_number = log_number;
    atomic_store(&db->mp->manifest_gen, gen);
    pthread_cond_broadcast(&db->done_cv);
    pthread_cond_broadcast(&db->bg_cv);
    pthread_mutex_unlock(&db->mu);
    pthread_mutex_unlock(&db->manifest_mu);
    if (old != NULL)
        lsm_view_unref(old);
}

int mp_reload_manifest(stoat_db *db)
{
    manifest_state st;
    manifest *man = NULL;
    lsm_view *v = NULL;
    uint64_t gen;
    int rc;

    if ((rc = mp_load_view(db, 0, &v, &st, &man, &gen)) != 0)
        return rc;
    manifest_close(man);
    mp_install_view(db, v, NULL, st.log_number, gen);
    return 0;
}

/* The WAL upto, published when this process read wal_head, is gone. It
 * was flushed and removed since (only sealed WALs are): STOAT_ENOTFOUND,
 * and mp_catch_up_locked looks again from a newer head. Still the head:
 * really missing. */
static int mp_vanished(stoat_db *db, uint64_t upto)
{
    if (head_id(atomic_load(&db->mp->hdr->wal_head)) == upto)
        return status_err(STOAT_ECORRUPT, "%s: WAL %06llu is published but missing", db->dir,
                          (unsigned long long)upto);
    return status_err(STOAT_ENOTFOUND, "%s: WAL %06llu was flushed while this process read it",
                      db->dir, (unsigned long long)upto);
}

/* A memtable for WAL id: the commit path's (the head WAL's) when it is
 * that one, else attached. */
int mp_attach(stoat_db *db, uint64_t id, uint64_t arena, memtable **m)
{
    if (db->mp->wtail != NULL && memtable_id(db->mp->wtail) == id) {
        memtable_ref(db->mp->wtail);
        *m = db->mp->wtail;
        return 0;
    }
    return memtable_attach(db->env, db->dir, id, arena, m);
}

/* Moves the apply cursor to the next WAL, at most upto: finishes the
 * current one first (a rotation sealed it); without one (db->mem NULL:
 * flushed, or never attached), takes the first WAL from wal_id on. */
static int mp_cross_rotation(stoat_db *db, uint64_t floor, uint64_t stamp, uint64_t upto,
                             int *skipped)
{
    db_mp *mp = db->mp;
    memtable *m = NULL;
    uint64_t end, next;
    int rc;

    if (db->mem != NULL) {
        if ((rc = mp_replay(db, db->mem, mp->wal_pos, UINT64_MAX, floor, stamp, &end)) != 0)
            return rc;
        mp->wal_pos = end;  /* a retry (mp_vanished) must not replay it twice */
        rc = mp_next_wal(db, mp->wal_id, upto, &next);
    } else {
        rc = mp_next_wal(db, mp->wal_id - 1, upto, &next);
    }
    if (rc != 0)
        return rc;
    if (next == 0)
        return mp_vanished(db, upto);
    rc = mp_attach(db, next, next == upto ? atomic_load(&mp->hdr->wal_arena)
                                          : db_mp_arena_size(atomic_load(&mp->hdr->memtable_size)),
                   &m);
    if (rc == STOAT_ENOTFOUND && next == upto)
        return mp_vanished(db, upto);
    if (rc == STOAT_ENOTFOUND && next < upto) {
        /* Flushed and removed before this process read it: its data is in
         * tables of a MANIFEST edit its view may predate (the caller
         * reloads it). */
        *skipped = 1;
        rc = 0;
    }
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&db->mu);
    if (db->mem != NULL && (rc = db_push_imm_locked(db, db->mem)) != 0) {
        pthread_mutex_unlock(&db->mu);
        memtable_unref(m);
        return rc;
    }
    if (m != NULL && next < mp->log_number) {
        memtable_unref(m);  /* flushed already: its commits are in the view's tables */
        m = NULL;
    }
    db->mem = m;
    db_mp_backlog_locked(db);
    pthread_cond_broadcast(&db->bg_cv);
    pthread_mutex_unlock(&db->mu);
    mp->wal_pos = WAL_HEADER_LEN;
    mp_follow(db, m != NULL ? next : next + 1);
    return 0;
}

/* The published value-log file and end: this handle's reads may map it
 * below that end, and the files before it whole (vlog.h). One word, so
 * that the end is always that file's. */
void mp_note_published_vlog(stoat_db *db)
{
    uint64_t pub;

    /* Once per change: commits call this, and the value log takes a lock. */
    if (db->vlog != NULL && (pub = atomic_load(&db->mp->hdr->vlog_pub)) != 0 &&
        atomic_exchange(&db->mp->vlog_pub_seen, pub) != pub)
        vlog_set_published(db->vlog, (uint32_t)(pub >> DB_VLOG_PUB_END_BITS),
                           pub & DB_VLOG_PUB_END_MASK);
}

/* Makes `last` this handle's read version, and publishes its horizon. */
int mp_advance(stoat_db *db, uint64_t last)
{
    int rc;

    mp_note_published_vlog(db);
    atomic_store(&db->mp->applied_head, head_make(db->mp->wal_id, db->mp->wal_pos));
    pthread_mutex_lock(&db->mu);
    rc = mp_record_keys_locked(db);
    if (last > atomic_load(&db->last_version))
        atomic_store_explicit(&db->last_version, last, memory_order_release);
    db_snapshot_publish_locked(db);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

static int mp_catch_up_once(stoat_db *db)
{
    db_mp *mp = db->mp;
    uint64_t floor = atomic_load(&db->last_version);
    uint64_t last = atomic_load_explicit(&mp->hdr->last_version, memory_order_acquire);
    uint64_t head = atomic_load_explicit(&mp->hdr->wal_head, memory_order_acquire);
    uint64_t gen = atomic_load_explicit(&mp->hdr->manifest_gen, memory_order_acquire);
    int rc = 0, skipped = 0;

    if (gen != atomic_load(&mp->manifest_gen)) {
        if (atomic_load(&mp->owner))
            atomic_store(&mp->manifest_gen, gen);   /* its own edits */
        else if ((rc = mp_reload_manifest(db)) != 0)
            return rc;
    }
    int crossed = db->mem == NULL || mp->wal_id < head_id(head);
    while (rc == 0 && (db->mem == NULL || mp->wal_id < head_id(head)))
        rc = mp_cross_rotation(db, floor, last, head_id(head), &skipped);
    /* A WAL flushed and removed before the directory listing of a
     * crossing is skipped without a trace, as one removed between the
     * listing and its open is: either way its commits are in tables of a
     * MANIFEST edit made before its removal, which gen (read above) may
     * predate. Without them, last would cover commits this process cannot
     * read. */
    if (rc == 0 && crossed && atomic_load(&mp->hdr->manifest_gen) != gen)
        skipped = 1;
    if (rc == 0 && skipped && !atomic_load(&mp->owner))
        rc = mp_reload_manifest(db);
    /* A MANIFEST loaded after head was read may say this WAL is flushed
     * too (mp_drop_flushed_locked took db->mem): look again from a newer
     * head, which the owner's rotation published before that flush. */
    if (rc == 0 && db->mem == NULL)
        rc = status_err(STOAT_ENOTFOUND, "%s: WAL %06llu was flushed while this process read "
                        "it", db->dir, (unsigned long long)mp->wal_id);
    if (rc == 0 && mp->wal_pos < head_end(head))
        rc = mp_replay(db, db->mem, mp->wal_pos, head_end(head), floor, last, &mp->wal_pos);
    if (rc == 0)
        rc = mp_advance(db, last);
    return rc;
}

int mp_catch_up_locked(stoat_db *db)
{
    int rc = STOAT_ENOTFOUND;

    for (int i = 0; i < MP_RETRIES && rc == STOAT_ENOTFOUND; i++)
        rc = mp_catch_up_once(db);    /* ENOTFOUND: a WAL vanished under it (mp_vanished) */
    return rc;
}

static int mp_behind(stoat_db *db)
{
    db_mp *mp = db->mp;

    return atomic_load_explicit(&mp->hdr->last_version, memory_order_acquire) !=
               atomic_load_explicit(&db->last_version, memory_order_acquire) ||
           atomic_load(&mp->hdr->wal_head) != atomic_load(&mp->applied_head) ||
           atomic_load(&mp->hdr->manifest_gen) != atomic_load(&mp->manifest_gen);
}

int mp_catch_up(stoat_db *db)
{
    int rc;

    if (!mp_behind(db))
        return 0;
    pthread_mutex_lock(&db->mp->tail_mu);
    rc = mp_catch_up_locked(db);
    pthread_mutex_unlock(&db->mp->tail_mu);
    return rc;
}

int db_mp_catch_up(stoat_db *db)
{
    if (db->mp == NULL)
        return 0;
    /* Read activity, for the keeper: a store only when it changes (no
     * cache line bouncing between reader threads). */
    if (!atomic_load_explicit(&db->mp->read_since, memory_order_relaxed))
        atomic_store_explicit(&db->mp->read_since, 1, memory_order_relaxed);
    return mp_catch_up(db);
}

/* ---- the oracle's cursor ---- */

typedef struct mp_note {
    db_mp *mp;
    uint64_t max_v;
} mp_note;

/* The keys of each commit. Versions only grow along the WALs, so an entry
 * older than one before it is a GC rewrite (a move, not a commit). */
static int mp_note_entry(void *arg, slice ikey, slice value)
{
    mp_note *n = arg;
    uint64_t v = ikey_version(ikey);

    (void)value;
    if (v < n->max_v)
        return 0;
    n->max_v = v;
    return mp_note_key(n->mp, v, ikey_user(ikey));
}

void mp_note_close(db_mp *mp)
{
    memtable_unref(mp->note_mem);
    mp->note_mem = NULL;
}

/* The oracle's cursor jumps to `id`, `pos`, which hold no commit it
 * still needs. */
void mp_note_move(stoat_db *db, uint64_t id, uint64_t pos, uint64_t version)
{
    db_mp *mp = db->mp;

    if (mp->note_id != id)
        mp_note_close(mp);
    mp->note_id = id;
    mp->note_pos = pos;
    if (version > mp->note_version)
        mp->note_version = version;
    mp_publish_follow(db);
}

/*
 * Teaches the oracle every commit up to the published head (commit lock
 * and tail_mu held): reads the WAL records from its own cursor on, keys
 * only, nothing applied. Only a group with a transaction that read (or a
 * GC rewrite) needs it: a blind write conflicts with nothing. A WAL gone
 * from under the cursor (the retention failed) leaves commits nobody can
 * check against: the transactions that began before them conflict.
 */
int mp_note_up_locked(stoat_db *db)
{
    db_mp *mp = db->mp;
    uint64_t head = atomic_load(&mp->hdr->wal_head), end, next;
    mp_note n = {mp, mp->note_version};
    int rc = 0;

    while (rc == 0) {
        uint64_t to = mp->note_id == head_id(head) ? head_end(head) : UINT64_MAX;
        if (to != UINT64_MAX && mp->note_pos >= to)
            break;
        if (mp->note_mem == NULL) {
            rc = mp_attach(db, mp->note_id, MP_READ_ARENA, &mp->note_mem);
            /* At a WAL's start, the cursor means the first WAL from there
             * on (mp_note_catch_up_locked may put it at a table's id). */
            if (rc == STOAT_ENOTFOUND && mp->note_pos == WAL_HEADER_LEN &&
                (rc = mp_next_wal(db, mp->note_id - 1, head_id(head), &next)) == 0) {
                if (next == 0 || next == mp->note_id)
                    rc = STOAT_ENOTFOUND;
                else
                    mp_note_move(db, next, WAL_HEADER_LEN, 0);
                continue;
            }
        }
        if (rc == 0)
            rc = memtable_replay_range(mp->note_mem, mp->note_pos, to, mp_note_entry, &n, &end);
        if (rc != 0)
            break;
        mp->note_pos = end;
        if (to != UINT64_MAX)
            break;
        if ((rc = mp_next_wal(db, mp->note_id, head_id(head), &next)) == 0 && next == 0)
            rc = STOAT_ENOTFOUND;
        if (rc == 0)
            mp_note_move(db, next, WAL_HEADER_LEN, 0);
    }
    if (rc == STOAT_ENOTFOUND) {
        mp->conflict_floor = atomic_load(&mp->hdr->last_version);
        mp_note_move(db, head_id(head), head_end(head), mp->conflict_floor);
        rc = 0;
    }
    /* A bulk load another handle installed wrote no WAL record: its keys
     * are unknown here, so every transaction begun before it that read
     * conflicts (the loading handle's oracle has its keys). */
    uint64_t load = atomic_load(&mp->hdr->load_floor);
    if (load > mp->load_seen) {
        mp->load_seen = load;
        if (load > mp->conflict_floor)
            mp->conflict_floor = load;
    }
    if (n.max_v > mp->note_version)
        mp->note_version = n.max_v;
    pthread_mutex_lock(&db->mu);
    int rk = mp_record_keys_locked(db);
    pthread_mutex_unlock(&db->mu);
    return rc != 0 ? rc : rk;
}

/*
 * With no snapshot older than the read version, and every commit applied
 * at or below it, no transaction of this handle, open or to come, needs a
 * commit before the apply cursor: the oracle's cursor jumps there (tail_mu
 * held), so that it never holds old WALs back.
 */
void mp_note_catch_up_locked(stoat_db *db)
{
    db_mp *mp = db->mp;
    int jump;

    if (mp->note_id > mp->wal_id || (mp->note_id == mp->wal_id && mp->note_pos >= mp->wal_pos))
        return;
    pthread_mutex_lock(&db->mu);
    uint64_t last = atomic_load(&db->last_version);
    /* Without a memtable, the flushed WALs this handle skipped hold
     * commits above its read version: only with no snapshot at all (the
     * next one catches up first, mp_catch_up). */
    if (db->mem == NULL)
        jump = db->snapshots.next == &db->snapshots;
    else
        jump = mp->applied_max <= last &&
               (db->snapshots.next == &db->snapshots || db->snapshots.next->version >= last);
    pthread_mutex_unlock(&db->mu);
    if (jump)
        mp_note_move(db, mp->wal_id, mp->wal_pos, last);
}

