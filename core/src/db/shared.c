/*
 * shared.c - the multi-process mode (stoat_options.multi_process): every
 * process that opens the directory reads and writes the one database.
 *
 * The design (design B of ../shared/reference/multiprocess.md): the WAL
 * files are the shared truth and each process keeps its own memtables,
 * replicas filled from them. What is shared in memory is small and
 * derivable from the files: a header of counters in the region of
 * env/shm.h (db_shared_hdr in db.h), the commit lock (env/proc_lock.h)
 * and the liveness slots (env/proc_slots.h).
 *
 * Commit. The front writer of a process takes the commit lock; when its
 * group holds a transaction that read (or a GC rewrite), it first teaches
 * the oracle every commit the other processes appended since it last
 * looked: the oracle has a cursor of its own along the WALs and reads
 * keys only (mp_note_up_locked), so that the conflict check sees every
 * commit of every process; a blind write skips it. Then it rotates the
 * WAL when the memtables of every process would overflow, takes versions
 * above the published one, appends one record to the head WAL (O_APPEND:
 * the lock makes the end of file the end of the last whole record)
 * through that WAL's memtable (wtail), fsyncs it in sync mode, and
 * publishes: first wal_head (the WAL's id and length), then last_version.
 * A reader loads last_version before wal_head, so the records it replays
 * always cover the version it takes. The record is applied to this
 * process's memtable at once only when that memtable holds every commit
 * before it; else the catch-up applies it later with the others'.
 *
 * Death. The kernel releases the holder's robust mutex; the next holder
 * repairs before anything else: if the holder had not published its
 * record, the WAL is cut back to the published length (the commit was
 * never acknowledged, and a restart would read the same prefix once the
 * region is rebuilt); if it had published wal_head but not last_version,
 * last_version is rolled forward to the intent's version. Nothing else
 * shared can be left half-changed. The region itself is rebuilt from the
 * files when the last process has gone (the first opener recovers, as a
 * restart does).
 *
 * Readers. Each public read path calls db_mp_catch_up first: one atomic
 * load when nothing changed; otherwise it applies the new records (the
 * records the committers appended) under tail_mu, crossing rotations; a
 * WAL the MANIFEST says is flushed is not applied (its commits are in the
 * tables). A value-log GC rewrite (an entry at a version at or below
 * what this process had applied) is stamped, as in write.c, so open
 * iterators never meet it. The keeper applies too in the owner (it
 * flushes its memtables) and in a process that read since its last
 * round; a process that only writes applies nothing: the cost of a
 * commit does not grow with the number of processes.
 *
 * WALs. A process publishes in its slot the oldest WAL it may still
 * read (its apply or its oracle's cursor); the owner removes a flushed
 * WAL only below every live slot's (mp_sweep_wals), so a process that fell
 * behind still learns every commit.
 *
 * Background work runs in one process, the owner, elected through an
 * OFD lock (the keeper thread of every process tries every
 * MP_KEEPER_MS). It flushes its replicas of the immutable memtables,
 * compacts, and bumps manifest_gen after each MANIFEST edit; the other
 * processes reload the MANIFEST then, and drop the memtables it says are
 * flushed. A process pins every table of a view it loads (table cache),
 * so a table the owner deletes stays readable through the descriptor for
 * as long as that process may read it. Compaction keeps what the oldest
 * snapshot of any live process needs: each process publishes in its slot
 * the oldest version it may still read (snapshots.c), the owner takes
 * the minimum over live slots (a dead process's slot does not count).
 *
 * The value log: appends go, under the commit lock, to the file the last
 * committer published (vlog_adopt), after the end it published; a dead
 * committer's unpublished bytes and files are cut off by the repair.
 * Value-log GC runs in the owner (vlog_gc.c): it collects files below
 * the published active one, seals that one under the commit lock
 * (db_mp_vlog_rotate), and its rewrites are commits the other processes
 * replay, stamped so that their open iterators never meet them.
 *
 * Locks: commit lock (process-shared) > tail_mu > manifest_mu > mu >
 * slots_mu.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/shared.h"
#include "db/snapshots.h"
#include "db/state.h"
#include "base/ikey.h"
#include "base/killpoint.h"
#include "base/status.h"
#include "base/vec.h"
#include "env/filename.h"

#define DB_SHARED_MAGIC 0x33485354414f5453ull    /* "STOATSH3" */
#define MP_KEEPER_MS 100
#define MP_RETRIES 1000
#define MP_ARENA_SLACK 1024u    /* the arena's own header, and then some */
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

/* Publishes the value-log file appends go to and the end of its last
 * published record (commit lock held, or the creator before `ready`):
 * the two fields, then both in one word for readers' mappings (0 when
 * they do not fit it: no mapping of that file). */
static void mp_publish_vlog(db_shared_hdr *h, uint64_t fid, uint64_t end)
{
    atomic_store(&h->vlog_fid, fid);
    atomic_store(&h->vlog_end, end);
    atomic_store(&h->vlog_pub, fid < (1ull << (64 - DB_VLOG_PUB_END_BITS)) &&
                                       end <= DB_VLOG_PUB_END_MASK
                                   ? fid << DB_VLOG_PUB_END_BITS | end
                                   : 0);
}

int db_mp_is_owner(stoat_db *db)
{
    return db->mp == NULL || atomic_load(&db->mp->owner);
}

/* Publishes in the slot the oldest WAL this handle may still read (its
 * apply or its oracle's cursor): the owner removes no WAL a live process
 * may still have to read (mp_sweep_wals). */
static void mp_publish_follow(stoat_db *db)
{
    db_mp *mp = db->mp;

    pthread_mutex_lock(&mp->slots_mu);
    proc_slots_publish_wal(mp->slots, mp->wal_id < mp->note_id ? mp->wal_id : mp->note_id);
    pthread_mutex_unlock(&mp->slots_mu);
}

/* The apply cursor moves on to WAL id. */
static void mp_follow(stoat_db *db, uint64_t id)
{
    db->mp->wal_id = id;
    mp_publish_follow(db);
}

/* ---- the oracle's share of what catch-up applies ---- */

static int mp_note_key(db_mp *mp, uint64_t version, slice ukey)
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
static int mp_record_keys_locked(stoat_db *db)
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

typedef struct mp_apply {
    db_mp *mp;
    memtable *m;
    uint64_t stamp_floor;   /* entries at or below: GC rewrites, stamped */
    uint64_t stamp;
    uint64_t note_floor;    /* entries above are commits for the oracle (mp_join) */
    uint64_t max_v;         /* the newest commit applied */
} mp_apply;

static int mp_apply_entry(void *arg, slice ikey, slice value)
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
static int mp_load_view(stoat_db *db, int writable, lsm_view **v, manifest_state *st,
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
static void mp_install_view(stoat_db *db, lsm_view *v, manifest *man, uint64_t log_number,
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

static int mp_reload_manifest(stoat_db *db)
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
static int mp_attach(stoat_db *db, uint64_t id, uint64_t arena, memtable **m)
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

/*
 * Makes durable the value-log bytes every process appended up to the
 * published file (the files from the last point known durable on): a WAL
 * about to be synced, or a memtable about to be flushed, may hold other
 * processes' pointers into them, and their own syncs may never come.
 * Under the commit lock (a rotation) nothing is appended meanwhile;
 * without it (stoat_sync) the files sealed before `to` are final, so they
 * are durable for good once synced.
 */
static int mp_sync_vlog_shared(stoat_db *db)
{
    db_shared_hdr *h = db->mp->hdr;
    uint64_t to = atomic_load(&h->vlog_fid), from = atomic_load(&h->vlog_synced), cur;
    int rc;

    if (db->vlog == NULL || to == 0)
        return 0;
    if ((rc = vlog_sync_shared(db->vlog, (uint32_t)from, (uint32_t)to)) != 0)
        return rc;
    cur = from;
    while (to > cur && !atomic_compare_exchange_weak(&h->vlog_synced, &cur, to))
        ;
    return 0;
}

/* The published value-log file and end: this handle's reads may map it
 * below that end, and the files before it whole (vlog.h). One word, so
 * that the end is always that file's. */
static void mp_note_published_vlog(stoat_db *db)
{
    uint64_t pub;

    /* Once per change: commits call this, and the value log takes a lock. */
    if (db->vlog != NULL && (pub = atomic_load(&db->mp->hdr->vlog_pub)) != 0 &&
        atomic_exchange(&db->mp->vlog_pub_seen, pub) != pub)
        vlog_set_published(db->vlog, (uint32_t)(pub >> DB_VLOG_PUB_END_BITS),
                           pub & DB_VLOG_PUB_END_MASK);
}

/* Makes `last` this handle's read version, and publishes its horizon. */
static int mp_advance(stoat_db *db, uint64_t last)
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

static int mp_catch_up_locked(stoat_db *db)
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

static int mp_catch_up(stoat_db *db)
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

static void mp_note_close(db_mp *mp)
{
    memtable_unref(mp->note_mem);
    mp->note_mem = NULL;
}

/* The oracle's cursor jumps to `id`, `pos`, which hold no commit it
 * still needs. */
static void mp_note_move(stoat_db *db, uint64_t id, uint64_t pos, uint64_t version)
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
static int mp_note_up_locked(stoat_db *db)
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
static void mp_note_catch_up_locked(stoat_db *db)
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

/* ---- the commit lock ---- */

/* The value-log bytes and files an unpublished commit left: its records
 * past the published end, and files it started above the published one. */
static int mp_repair_vlog(stoat_db *db)
{
    uint64_t fid = atomic_load(&db->mp->hdr->vlog_fid), end = atomic_load(&db->mp->hdr->vlog_end);
    char **names = NULL;
    env_file *f = NULL;
    size_t n = 0;
    uint64_t size;
    char *path;
    int rc;

    if (db->vlog == NULL)
        return 0;
    if (fid != 0) {
        if ((path = vlog_path(db->dir, (uint32_t)fid)) == NULL)
            return status_err(STOAT_ENOMEM, "out of memory repairing the value log");
        rc = env_open(db->env, path, ENV_WRITE, &f);
        if (rc == 0)
            rc = env_file_size(f, &size);
        if (rc == 0 && size > end)
            rc = env_truncate(f, end);
        env_close(f);
        free(path);
        if (rc != 0)
            return rc;
    }
    if ((rc = env_list(db->env, db->dir, &names, &n)) != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint64_t id;
        if (filename_parse(names[i], FILENAME_EXT_VLOG, 0, &id) && id > fid) {
            path = env_join(db->dir, names[i]);
            rc = path ? env_remove(db->env, path) : STOAT_ENOMEM;
            free(path);
        }
    }
    env_list_free(names, n);
    return rc;
}

/* A holder died (or failed) mid-commit: undo or finish its append. */
static int mp_repair(proc_lock *l, uint32_t intent, int owner_died, void *arg)
{
    stoat_db *db = arg;
    db_shared_hdr *h = db->mp->hdr;
    uint64_t head = atomic_load(&h->wal_head), ih = atomic_load(&h->intent_head);
    uint64_t top = atomic_load(&h->intent_top);
    env_file *f = NULL;
    uint64_t size;
    char *path;
    int rc;

    (void)l;
    (void)owner_died;
    if (intent == PROC_INTENT_ROTATING) {
        /* A rotation's new WAL (intent_top), unless published, is an empty
         * leftover that no process follows: removed (else it would stay). */
        if (head_id(head) != top &&
            (path = filename_path(db->dir, top, FILENAME_EXT_WAL)) != NULL) {
            env_remove(db->env, path);  /* absent already: fine */
            free(path);
        }
        return 0;
    }
    if (intent != PROC_INTENT_APPENDING && intent != PROC_INTENT_REPAIR)
        return 0;
    if (head != ih) {
        /* Published its record: finish the publication. */
        if (atomic_load(&h->last_version) < top)
            atomic_store(&h->last_version, top);
        return 0;
    }
    if ((path = filename_path(db->dir, head_id(head), FILENAME_EXT_WAL)) == NULL)
        return status_err(STOAT_ENOMEM, "out of memory repairing the WAL");
    rc = env_open(db->env, path, ENV_WRITE, &f);
    if (rc == 0)
        rc = env_file_size(f, &size);
    if (rc == 0 && size > head_end(head))
        rc = env_truncate(f, head_end(head));
    env_close(f);
    free(path);
    return rc == 0 ? mp_repair_vlog(db) : rc;
}

/* The memtable of the head WAL, which commits append to (commit lock and
 * tail_mu held): the applied one when this handle is there, else one
 * attached for the appends (applied when the catch-up gets there). */
static int mp_tail_locked(stoat_db *db)
{
    db_mp *mp = db->mp;
    uint64_t id = head_id(atomic_load(&mp->hdr->wal_head));
    memtable *m;
    int rc;

    if (mp->wtail != NULL && memtable_id(mp->wtail) == id)
        return 0;
    if (db->mem != NULL && memtable_id(db->mem) == id) {
        memtable_ref(db->mem);
        m = db->mem;
    } else if ((rc = memtable_attach(db->env, db->dir, id, atomic_load(&mp->hdr->wal_arena),
                                     &m)) != 0) {
        return rc;
    }
    memtable_unref(mp->wtail);
    mp->wtail = m;
    return 0;
}

int db_mp_commit_begin(stoat_db *db, int note)
{
    db_mp *mp = db->mp;
    uint64_t fatal;
    int rc;

    if ((rc = proc_lock_acquire(mp->lock, mp->lock_timeout_ms, mp_repair, db)) != 0) {
        if (rc == STOAT_EBUSY) {
            char why[STATUS_MSG_MAX];   /* status_err writes where status_msg points */
            snprintf(why, sizeof(why), "%s", status_msg());
            return status_err(rc, "%s: %s; lock_timeout_ms sets the wait", db->dir, why);
        }
        return rc;
    }
    if ((fatal = atomic_load(&mp->hdr->fatal)) != 0) {
        proc_lock_release(mp->lock);
        return status_err(STOAT_EIO, "%s: a write failed to reach the disk in process %llu: "
                          "writes are refused until every handle is closed and reopened",
                          db->dir, (unsigned long long)fatal);
    }
    pthread_mutex_lock(&mp->tail_mu);
    rc = mp_tail_locked(db);
    if (rc == 0 && note)
        rc = mp_note_up_locked(db);
    if (rc != 0) {
        pthread_mutex_unlock(&mp->tail_mu);
        proc_lock_release(mp->lock);
    }
    return rc;
}

void db_mp_commit_end(stoat_db *db, int ok)
{
    db_mp *mp = db->mp;

    if (ok)
        proc_lock_set_intent(mp->lock, PROC_INTENT_IDLE);
    pthread_mutex_unlock(&mp->tail_mu);
    proc_lock_release(mp->lock);
}

uint64_t db_mp_arena_size(uint64_t memtable_size)
{
    uint64_t extra = memtable_size < (1ull << 30) ? memtable_size : (1ull << 30);

    return memtable_size + extra;
}

int db_mp_room(stoat_db *db, uint64_t need, uint64_t est, int force, int *rotated)
{
    db_mp *mp = db->mp;
    db_shared_hdr *h = mp->hdr;
    uint64_t arena = db_mp_arena_size(atomic_load(&h->memtable_size)), id;
    uint64_t head = atomic_load(&h->wal_head);
    memtable *m = NULL;
    int rc;

    *rotated = 0;
    if (force ? head_end(head) <= WAL_HEADER_LEN
              : atomic_load(&h->wal_need) + need + MP_ARENA_SLACK <= atomic_load(&h->wal_arena) &&
                    (head_end(head) <= WAL_HEADER_LEN ||
                     atomic_load(&h->wal_est) + est <= atomic_load(&h->memtable_size)))
        return 0;
    /* A rotation asked for (stoat_flush) hands this handle's memtable to
     * the flush: it must hold every commit first. */
    if (force && (rc = mp_catch_up_locked(db)) != 0)
        return rc;
    if (need + (64u << 10) > arena)
        arena = need + (64u << 10);
    id = atomic_fetch_add(&h->next_file_id, 1);
    atomic_store(&h->intent_top, id);   /* for the repair, should this process die */
    proc_lock_set_intent(mp->lock, PROC_INTENT_ROTATING);
    /* The old WAL stops growing: sync it once, so that stoat_sync (which
     * syncs the active WAL) covers everything written before; this
     * process's value-log appends first, as in write.c (the flush of
     * that WAL's memtable makes tables that point at them). */
    if ((db->vlog == NULL || (rc = vlog_sync(db->vlog)) == 0) &&
        (rc = mp_sync_vlog_shared(db)) == 0)
        rc = memtable_sync(mp->wtail);
    if (rc != 0) {
        /* Acknowledged bytes of it may be lost: sticky, as in write.c. */
        if (rc != STOAT_ENOSPC) {
            db_mp_fatal(db);
            pthread_mutex_lock(&db->mu);
            db_set_bg_error_locked(db, rc);
            pthread_mutex_unlock(&db->mu);
        }
        return rc;
    }
    if ((rc = memtable_new(db->env, db->dir, id, arena, &m)) == 0)
        rc = env_sync_dir(db->env, db->dir);
    KILL_POINT("rotate_created");
    if (rc != 0) {
        if (m != NULL) {
            memtable_mark_obsolete(m);
            memtable_unref(m);
        }
        return rc;
    }
    atomic_store(&h->wal_arena, arena);
    atomic_store(&h->wal_need, 0);
    atomic_store(&h->wal_est, 0);
    atomic_store_explicit(&h->wal_head, head_make(id, WAL_HEADER_LEN), memory_order_release);
    KILL_POINT("rotate_published");
    proc_lock_set_intent(mp->lock, PROC_INTENT_IDLE);
    /* Applied up to the old head: this handle moves on at once. Else its
     * catch-up crosses the rotation later, as another process's. */
    if (db->mem == mp->wtail && mp->wal_pos == head_end(head)) {
        pthread_mutex_lock(&db->mu);
        if ((rc = db_push_imm_locked(db, db->mem)) != 0) {
            pthread_mutex_unlock(&db->mu);
            memtable_unref(m);
            return rc;
        }
        memtable_ref(m);
        db->mem = m;
        pthread_cond_broadcast(&db->bg_cv);
        pthread_mutex_unlock(&db->mu);
        mp->wal_pos = WAL_HEADER_LEN;
        mp->wal_id = id;
        atomic_store(&mp->applied_head, head_make(id, WAL_HEADER_LEN));
        *rotated = 1;
    }
    if (mp->note_id == head_id(head) && mp->note_pos == head_end(head))
        mp_note_move(db, id, WAL_HEADER_LEN, 0);
    memtable_unref(mp->wtail);
    mp->wtail = m;
    mp_publish_follow(db);
    return 0;
}

uint64_t db_mp_next_version(stoat_db *db)
{
    return atomic_load(&db->mp->hdr->last_version) + 1;
}

int db_mp_vlog_adopt(stoat_db *db)
{
    if (db->vlog == NULL)
        return 0;
    mp_note_published_vlog(db);
    return vlog_adopt(db->vlog, (uint32_t)atomic_load(&db->mp->hdr->vlog_fid),
                      atomic_load(&db->mp->hdr->vlog_end));
}

int db_mp_vlog_rotate(stoat_db *db)
{
    db_shared_hdr *h;
    int rc;

    if ((rc = db_mp_commit_begin(db, 0)) != 0)
        return rc;
    h = db->mp->hdr;
    /* A death in here leaves nothing: the repair removes a file numbered
     * above the published one. */
    db_mp_intent(db, atomic_load(&h->last_version), NULL);
    if ((rc = db_mp_vlog_adopt(db)) == 0 && (rc = vlog_rotate(db->vlog)) == 0 &&
        vlog_active_fid(db->vlog) != 0) {
        uint32_t fid = vlog_active_fid(db->vlog);
        mp_publish_vlog(h, fid, vlog_file_size(db->vlog, fid));
    }
    db_mp_commit_end(db, rc == 0);
    return rc;
}

int db_mp_vlog_append(stoat_db *db, const slice *ikeys, const slice *values, size_t n,
                      vptr *ptrs)
{
    db_shared_hdr *h;
    int rc;

    if ((rc = db_mp_commit_begin(db, 0)) != 0)
        return rc;
    h = db->mp->hdr;
    /* No WAL record: a death or failure in here leaves bytes past the
     * published end, which the next holder's repair cuts off. */
    db_mp_intent(db, atomic_load(&h->last_version), NULL);
    if ((rc = db_mp_vlog_adopt(db)) == 0 &&
        (rc = vlog_append_batch(db->vlog, ikeys, values, n, ptrs)) == 0) {
        uint32_t fid = vlog_active_fid(db->vlog);
        mp_publish_vlog(h, fid, vlog_file_size(db->vlog, fid));
        mp_note_published_vlog(db);
    }
    db_mp_commit_end(db, rc == 0);
    return rc;
}

int db_mp_exclusive_begin(stoat_db *db, uint64_t version)
{
    int rc;

    if ((rc = db_mp_commit_begin(db, 0)) != 0)
        return rc;
    /* The range check reads this handle's memtables: every published
     * commit must be in them. */
    rc = mp_catch_up_locked(db);
    if (rc == 0 && version != 0 && db_mp_next_version(db) > version)
        rc = status_err(STOAT_EBUSY, "the version reserved for this write (%llu) was passed by "
                        "other commits", (unsigned long long)version);
    if (rc != 0)
        db_mp_commit_end(db, 1);    /* nothing was appended */
    return rc;
}

void db_mp_exclusive_end(stoat_db *db, uint64_t version, int ok)
{
    db_mp *mp = db->mp;
    db_shared_hdr *h = mp->hdr;

    if (ok && version != 0) {
        /* After the MANIFEST edit's generation (db_install_edit): a
         * reader that takes this version reloads the MANIFEST first. */
        mp->load_seen = version;
        atomic_store(&h->load_floor, version);
        if (version > atomic_load(&h->last_version))
            atomic_store(&h->last_version, version);
        mp_advance(db, version);
    }
    db_mp_commit_end(db, 1);
}

memtable *db_mp_intent(stoat_db *db, uint64_t top, int *apply)
{
    db_mp *mp = db->mp;
    db_shared_hdr *h = mp->hdr;
    uint64_t head = atomic_load(&h->wal_head);

    atomic_store(&h->intent_head, head);
    atomic_store(&h->intent_top, top);
    proc_lock_set_intent(mp->lock, PROC_INTENT_APPENDING);
    /* A failed append is cut back to what is published. */
    memtable_set_wal_size(mp->wtail, head_end(head));
    /* The record is applied now only where this handle's memtable holds
     * every commit before it; else the catch-up applies it with them. */
    mp->apply_now = db->mem == mp->wtail && mp->wal_pos == head_end(head);
    mp->note_now = mp->note_id == head_id(head) && mp->note_pos == head_end(head);
    if (apply != NULL)
        *apply = mp->apply_now;
    return mp->wtail;
}

void db_mp_publish(stoat_db *db, uint64_t need, uint64_t est, uint64_t top)
{
    db_mp *mp = db->mp;
    db_shared_hdr *h = mp->hdr;
    uint64_t end = memtable_wal_size(mp->wtail);

    if (db->vlog != NULL && vlog_active_fid(db->vlog) != 0) {
        uint32_t fid = vlog_active_fid(db->vlog);
        mp_publish_vlog(h, fid, vlog_file_size(db->vlog, fid));
        mp_note_published_vlog(db);
    }
    atomic_fetch_add(&h->wal_need, need);
    atomic_fetch_add(&h->wal_est, est);
    atomic_store_explicit(&h->wal_head, head_make(memtable_id(mp->wtail), end),
                          memory_order_release);
    KILL_POINT("commit_head_published");
    if (top > atomic_load(&h->last_version))
        atomic_store(&h->last_version, top);    /* seq_cst: read-your-writes */
    if (mp->note_now)
        mp->note_pos = end;     /* its own keys are in the oracle (write.c) */
    if (mp->note_now && top > mp->note_version)
        mp->note_version = top;
    if (mp->apply_now) {
        mp->wal_pos = end;
        if (top > mp->applied_max)
            mp->applied_max = top;
        mp_advance(db, top);
    }
}

void db_mp_fatal(stoat_db *db)
{
    uint64_t none = 0;

    if (db->mp != NULL)
        atomic_compare_exchange_strong(&db->mp->hdr->fatal, &none, (uint64_t)getpid());
}

int db_mp_sync_published_values(stoat_db *db)
{
    uint64_t pub;
    int rc;

    if (db->mp == NULL || db->vlog == NULL)
        return 0;
    pub = atomic_load(&db->mp->hdr->vlog_pub);
    if (pub == 0 || pub == atomic_load(&db->mp->vlog_pub_synced))
        return 0;
    if ((rc = mp_sync_vlog_shared(db)) == 0)
        atomic_store(&db->mp->vlog_pub_synced, pub);
    return rc;
}

int db_mp_sync(stoat_db *db)
{
    db_mp *mp = db->mp;
    uint64_t head = atomic_load(&mp->hdr->wal_head);
    memtable *m = NULL;
    int rc;

    /* The head loaded before the value-log files are synced: its records
     * point only into bytes published before it, which the sync covers
     * (a record published later is none this call makes durable). */
    if (db->vlog != NULL &&
        ((rc = vlog_sync(db->vlog)) != 0 || (rc = mp_sync_vlog_shared(db)) != 0))
        goto fail;
    pthread_mutex_lock(&mp->tail_mu);
    rc = mp_attach(db, head_id(head), MP_READ_ARENA, &m);
    pthread_mutex_unlock(&mp->tail_mu);
    if (rc == STOAT_ENOTFOUND)
        return 0;   /* rotated (its rotation synced it), flushed and removed since */
    if (rc == 0)
        rc = memtable_sync(m);
    memtable_unref(m);
    if (rc == 0)
        return 0;
fail:
    if (rc != STOAT_ENOSPC) {
        db_mp_fatal(db);
        pthread_mutex_lock(&db->mu);
        db_set_bg_error_locked(db, rc);
        pthread_mutex_unlock(&db->mu);
    }
    return rc;
}

void db_mp_manifest_changed(stoat_db *db, uint64_t log_number)
{
    if (db->mp == NULL)
        return;
    if (log_number > db->mp->log_number)
        db->mp->log_number = log_number;
    atomic_store(&db->mp->manifest_gen, atomic_fetch_add(&db->mp->hdr->manifest_gen, 1) + 1);
    db_mp_backlog_locked(db);
}

uint64_t db_mp_head_wal(stoat_db *db)
{
    if (db->mp == NULL)
        return memtable_id(db->mem);
    return head_id(atomic_load(&db->mp->hdr->wal_head));
}

uint64_t db_mp_oldest_wal_locked(stoat_db *db)
{
    uint64_t head = atomic_load(&db->mp->hdr->wal_head);

    if (db->n_imm > 0)
        return memtable_id(db->imm[0]);
    if (db->mp->log_number >= head_id(head) && head_end(head) <= WAL_HEADER_LEN)
        return UINT64_MAX;
    return db_mp_next_wal_locked(db);
}

uint64_t db_mp_next_wal_locked(stoat_db *db)
{
    return db->mem != NULL ? memtable_id(db->mem) : db->mp->wal_id;
}

void db_mp_backlog_locked(stoat_db *db)
{
    if (db->mp == NULL || !atomic_load(&db->mp->owner) || db->current == NULL)
        return;
    atomic_store(&db->mp->hdr->backlog, (uint64_t)db->n_imm << 32 | (uint64_t)db->current->n[0]);
}

/* ---- open: the first process recovers, the others join ---- */

typedef struct mp_init_arg {
    stoat_db *db;
    db_recover_fn recover;
} mp_init_arg;

/* The first process to attach: recover as a restart would, publish. */
static int mp_init(void *base, uint64_t size, void *arg)
{
    mp_init_arg *a = arg;
    stoat_db *db = a->db;
    db_shared_hdr *h = (db_shared_hdr *)((char *)base + SHM_OFF_FREE);
    int rc;

    (void)size;
    if ((rc = a->recover(db)) != 0)
        return rc;
    atomic_store(&h->last_version, atomic_load(&db->last_version));
    atomic_store(&h->wal_head, head_make(memtable_id(db->mem), WAL_HEADER_LEN));
    atomic_store(&h->wal_arena, db_mp_arena_size(db->opts.memtable_size));
    atomic_store(&h->memtable_size, db->opts.memtable_size);
    atomic_store(&h->next_file_id, db->next_file_id);
    if (db->vlog != NULL && vlog_active_fid(db->vlog) != 0) {
        mp_publish_vlog(h, vlog_active_fid(db->vlog),
                        vlog_file_size(db->vlog, vlog_active_fid(db->vlog)));
    }
    atomic_store(&h->manifest_gen, 1);
    atomic_store(&h->magic, DB_SHARED_MAGIC);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sealed WALs [log_number, active) as immutable memtables. */
static int mp_join_sealed(stoat_db *db, uint64_t log_number, uint64_t active, uint64_t last)
{
    char **names = NULL;
    size_t n = 0, n_ids = 0;
    uint64_t *ids;
    int rc;

    if ((rc = env_list(db->env, db->dir, &names, &n)) != 0)
        return rc;
    ids = calloc(n + 1, sizeof(*ids));
    for (size_t i = 0; ids != NULL && i < n; i++) {
        uint64_t id;
        if (filename_parse(names[i], FILENAME_EXT_WAL, 0, &id) && id >= log_number &&
            id < active)
            ids[n_ids++] = id;
    }
    env_list_free(names, n);
    if (ids == NULL)
        return status_err(STOAT_ENOMEM, "out of memory joining %s", db->dir);
    qsort(ids, n_ids, sizeof(*ids), cmp_u64);
    for (size_t i = 0; rc == 0 && i < n_ids; i++) {
        uint64_t mv;
        memtable *m;
        if ((rc = memtable_recover(db->env, db->dir, ids[i], db->opts.memtable_size, 1, &mv,
                                   &m)) != 0)
            break;
        if (mv > last) {
            /* Commits published while this process joined: the oracle
             * must know them. */
            iter *it = memtable_iter(m);
            for (iter_seek_first(it); rc == 0 && iter_valid(it); iter_next(it))
                if (ikey_version(iter_key(it)) > last)
                    rc = mp_note_key(db->mp, ikey_version(iter_key(it)), ikey_user(iter_key(it)));
            iter_free(it);
        }
        if (rc == 0)
            rc = db_push_imm_locked(db, m);
        if (rc != 0)
            memtable_unref(m);
    }
    free(ids);
    return rc;
}

static void mp_join_undo(stoat_db *db)
{
    for (size_t i = 0; i < db->n_imm; i++)
        memtable_unref(db->imm[i]);
    db->n_imm = 0;
    memtable_unref(db->mem);
    db->mem = NULL;
    if (db->current != NULL)
        lsm_view_unref(db->current);
    db->current = NULL;
    db->mp->n_key_refs = 0;
    buf_reset(&db->mp->keys);
}

/* A later process: the MANIFEST, the sealed WALs, the active WAL up to
 * its published length. A WAL the owner flushes and removes meanwhile
 * makes it start over. */
static int mp_join(stoat_db *db)
{
    db_mp *mp = db->mp;
    db_shared_hdr *h = mp->hdr;
    int rc = 0;

    for (int i = 0; i < MP_RETRIES; i++) {
        manifest_state st;
        manifest *man = NULL;
        uint64_t last, head, gen;

        if ((rc = mp_load_view(db, 0, &db->current, &st, &man, &gen)) != 0)
            return rc;
        manifest_close(man);
        atomic_store(&mp->manifest_gen, gen);
        mp->log_number = st.log_number;
        /* Published before the WALs are listed and gen checked below: a
         * WAL flushed after that check stays until this process moved on. */
        mp->note_id = st.log_number;
        mp_follow(db, st.log_number);
        last = atomic_load_explicit(&h->last_version, memory_order_acquire);
        head = atomic_load_explicit(&h->wal_head, memory_order_acquire);
        rc = mp_join_sealed(db, st.log_number, head_id(head), last);
        if (rc == 0)
            rc = memtable_attach(db->env, db->dir, head_id(head), atomic_load(&h->wal_arena),
                                 &db->mem);
        if (rc == 0) {
            mp_apply a = {mp, db->mem, 0, 0, last, 0};
            rc = memtable_replay_range(db->mem, WAL_HEADER_LEN, head_end(head), mp_apply_entry,
                                       &a, &mp->wal_pos);
        }
        /* A flush installed meanwhile may have removed a WAL before it was
         * listed, its tables not in the view loaded: start over. */
        if (rc == 0 && atomic_load(&h->manifest_gen) != gen)
            rc = STOAT_ENOTFOUND;
        if (rc == 0) {
            /* Every commit above `last` it met is noted: both cursors
             * start where the replay ended. */
            uint64_t max_v = last;
            for (size_t k = 0; k < mp->n_key_refs; k++)
                if (mp->key_refs[k].version > max_v)
                    max_v = mp->key_refs[k].version;
            mp->applied_max = mp->note_version = max_v;
            mp->note_pos = mp->wal_pos;
            mp->note_id = head_id(head);
            memtable_ref(db->mem);
            mp->wtail = db->mem;
            mp_follow(db, head_id(head));
            atomic_store(&mp->applied_head, head_make(mp->wal_id, mp->wal_pos));
            atomic_store(&db->last_version, last);
            pthread_mutex_lock(&db->mu);
            rc = mp_record_keys_locked(db);
            pthread_mutex_unlock(&db->mu);
            return rc;
        }
        mp_join_undo(db);
        if (rc != STOAT_ENOTFOUND)
            return rc;
        usleep(1000);
    }
    return status_err(STOAT_EBUSY, "%s: could not join: its WALs kept changing", db->dir);
}

/* ---- the keeper: election, catch-up, the oldest snapshot ---- */

/* This handle won the election: it takes the MANIFEST over, removes what
 * a dead owner left half-made, and starts flushing and compacting. */
static int mp_take_over(stoat_db *db)
{
    manifest_state st;
    manifest *man = NULL;
    lsm_view *v = NULL;
    char **names = NULL;
    size_t n = 0;
    uint64_t gen;
    int rc;

    pthread_mutex_lock(&db->mp->tail_mu);   /* no reload meanwhile */
    rc = mp_load_view(db, 1, &v, &st, &man, &gen);
    KILL_POINT("takeover_loaded");
    if (rc == 0 && (rc = env_list(db->env, db->dir, &names, &n)) == 0) {
        for (size_t i = 0; i < n; i++) {
            uint64_t id;
            int known = 0;
            if (filename_parse(names[i], FILENAME_EXT_WAL, 0, &id)) {
                continue;   /* flushed ones go once nobody follows them (mp_sweep_wals) */
            } else if (filename_parse(names[i], FILENAME_EXT_TABLE, 0, &id)) {
                for (int l = 0; l < v->num_levels && !known; l++)
                    for (size_t j = 0; j < v->n[l] && !known; j++)
                        known = v->tables[l][j]->id == id;
            } else {
                continue;
            }
            if (!known) {
                char *path = env_join(db->dir, names[i]);
                if (path != NULL)
                    env_remove(db->env, path);  /* what a dead owner left half-done */
                free(path);
            }
        }
        env_list_free(names, n);
    }
    KILL_POINT("takeover_cleaned");
    if (rc == 0) {
        /* The view and MANIFEST handle first: the flusher and compactors
         * start at `owner`, and must never pick from a view of the
         * follower's lineage nor edit without a MANIFEST handle. Then
         * follow the WALs up to the active one: the flusher needs the
         * memtable commits go to (the install may have dropped a flushed
         * one this handle was still following). */
        mp_install_view(db, v, man, st.log_number, gen);
        if ((rc = mp_catch_up_locked(db)) == 0) {
            atomic_store(&db->mp->hdr->owner_pid, (uint64_t)getpid());
            pthread_mutex_lock(&db->mu);
            atomic_store(&db->mp->owner, 1);
            pthread_cond_broadcast(&db->bg_cv);
            pthread_mutex_unlock(&db->mu);
        }
    } else if (v != NULL) {
        lsm_view_unref(v);
        manifest_close(man);
    }
    pthread_mutex_unlock(&db->mp->tail_mu);
    return rc;
}

int db_mp_refresh_horizon(stoat_db *db)
{
    db_mp *mp = db->mp;
    proc_slots_scan_result res;
    int rc;

    if (mp == NULL)
        return 0;
    pthread_mutex_lock(&mp->slots_mu);
    rc = proc_slots_scan(mp->slots, &res);
    pthread_mutex_unlock(&mp->slots_mu);
    /* Only up: every live slot's value only grows, and a process that
     * joins reads above any horizon taken before. A slower scan (the
     * keeper's beside flatten's) must not store an older minimum over a
     * newer one, or compaction would keep what no reader needs. */
    if (rc == 0 && res.min != PROC_SLOT_NONE) {
        uint64_t cur = atomic_load(&mp->horizon);
        while (res.min > cur && !atomic_compare_exchange_weak(&mp->horizon, &cur, res.min))
            ;
    }
    return rc;
}

/*
 * The owner removes the WALs that are flushed (below the MANIFEST's log
 * number) and that no live process follows any more (below every slot's
 * WAL). A process that fell behind reads the commits of each WAL it
 * crosses, flushed or not: its oracle must see every one (a WAL it never
 * saw would be commits its conflict checks miss). The log number is read
 * before the scan, and a process publishes a WAL before it validates
 * what it read (mp_join), so a stale scan only keeps more.
 */
static void mp_sweep_wals(stoat_db *db)
{
    db_mp *mp = db->mp;
    proc_slots_scan_result res;
    char **names = NULL;
    size_t n = 0;
    uint64_t below;
    int rc;

    pthread_mutex_lock(&db->mu);
    below = mp->log_number;
    pthread_mutex_unlock(&db->mu);
    if (below <= mp->swept_below)
        return;
    pthread_mutex_lock(&mp->slots_mu);
    rc = proc_slots_scan(mp->slots, &res);
    pthread_mutex_unlock(&mp->slots_mu);
    if (rc != 0)
        return;
    if (res.wal_min < below)
        below = res.wal_min;
    if (below <= mp->swept_below || env_list(db->env, db->dir, &names, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        uint64_t id;
        if (filename_parse(names[i], FILENAME_EXT_WAL, 0, &id) && id < below) {
            char *path = env_join(db->dir, names[i]);
            if (path != NULL)
                env_remove(db->env, path);  /* one left over goes at the next sweep or open */
            free(path);
        }
    }
    env_list_free(names, n);
    mp->swept_below = below;
}

static void mp_keeper_round(stoat_db *db)
{
    db_mp *mp = db->mp;
    int owner = atomic_load(&mp->owner), rc;

    if (!owner) {
        pthread_mutex_lock(&mp->slots_mu);
        rc = proc_slots_elect(mp->slots, &owner);
        pthread_mutex_unlock(&mp->slots_mu);
        if (rc == 0 && owner && mp_take_over(db) != 0) {
            pthread_mutex_lock(&mp->slots_mu);
            proc_slots_resign(mp->slots);
            pthread_mutex_unlock(&mp->slots_mu);
            owner = 0;
        }
    }
    /* The owner applies every commit (it flushes its memtables), and so
     * does a process that reads: its reads then find little left to do.
     * One that only writes applies nothing, only follows the flushes. */
    mp_note_published_vlog(db);    /* a process that joined and only reads maps too */
    int read = atomic_exchange_explicit(&mp->read_since, 0, memory_order_relaxed);
    if (owner || read) {
        mp_catch_up(db);    /* a failure shows at the next read or write */
    } else if (atomic_load(&mp->hdr->manifest_gen) != atomic_load(&mp->manifest_gen)) {
        pthread_mutex_lock(&mp->tail_mu);
        mp_reload_manifest(db);
        pthread_mutex_unlock(&mp->tail_mu);
    }
    pthread_mutex_lock(&mp->tail_mu);
    mp_note_catch_up_locked(db);
    pthread_mutex_unlock(&mp->tail_mu);
    if (owner) {
        pthread_mutex_lock(&db->mu);
        db_mp_backlog_locked(db);
        pthread_mutex_unlock(&db->mu);
        mp_sweep_wals(db);
    }
    if (owner && db_mp_refresh_horizon(db) == 0) {
        pthread_mutex_lock(&db->mu);
        pthread_cond_broadcast(&db->bg_cv);
        pthread_mutex_unlock(&db->mu);
    }
}

static void *mp_keeper_main(void *arg)
{
    stoat_db *db = arg;
    db_mp *mp = db->mp;

    pthread_mutex_lock(&db->mu);
    while (!db->closing) {
        struct timespec ts;
        pthread_mutex_unlock(&db->mu);
        mp_keeper_round(db);
        pthread_mutex_lock(&db->mu);
        if (db->closing)
            break;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += MP_KEEPER_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&mp->keeper_cv, &db->mu, &ts);
    }
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

int db_mp_open(stoat_db *db, db_recover_fn recover)
{
    mp_init_arg a = {db, recover};
    shm_opts so = {.init = mp_init, .init_arg = &a};
    db_mp *mp = calloc(1, sizeof(*mp));
    int rc, owner = 0;

    if (mp == NULL)
        return status_err(STOAT_ENOMEM, "out of memory opening %s", db->dir);
    pthread_mutex_init(&mp->slots_mu, NULL);
    pthread_mutex_init(&mp->tail_mu, NULL);
    pthread_cond_init(&mp->keeper_cv, NULL);
    mp->lock_timeout_ms = db->opts.lock_timeout_ms;
    db->mp = mp;
    so.wait_ms = db->opts.open_timeout_ms ? db->opts.open_timeout_ms : 0;
    so.shm_dir = db->opts.shm_dir;
    db->opts.shm_dir = NULL;    /* the caller's string, valid during the open only */
    if ((rc = shm_open_region(db->dir, &so, &mp->region)) != 0)
        return rc;
    mp->hdr = (db_shared_hdr *)((char *)shm_base(mp->region) + SHM_OFF_FREE);
    mp->lock = (proc_lock *)((char *)shm_base(mp->region) + SHM_OFF_COMMIT_LOCK);
    uint64_t magic = atomic_load(&mp->hdr->magic);
    if (magic != DB_SHARED_MAGIC && (magic & 0x00ffffffffffffffull) ==
                                        (DB_SHARED_MAGIC & 0x00ffffffffffffffull))
        return status_err(STOAT_ENOTSUP, "%s: live processes share it with version %c of the "
                          "shared state, this build uses %c: stop them (or wait for them to "
                          "close) first", db->dir, (char)(magic >> 56),
                          (char)(DB_SHARED_MAGIC >> 56));
    if (magic != DB_SHARED_MAGIC)
        return status_err(STOAT_ECORRUPT, "%s: shared region not initialised", db->dir);
    if ((rc = proc_slots_open(mp->region, &mp->slots)) != 0 ||
        (rc = proc_slots_claim(mp->slots)) != 0)
        return rc;
    if (shm_created(mp->region)) {
        mp->note_id = memtable_id(db->mem);
        mp->note_pos = WAL_HEADER_LEN;
        mp->note_version = mp->applied_max = atomic_load(&db->last_version);
        memtable_ref(db->mem);
        mp->wtail = db->mem;
        mp_follow(db, memtable_id(db->mem));
        mp->wal_pos = WAL_HEADER_LEN;
        atomic_store(&mp->applied_head, head_make(mp->wal_id, mp->wal_pos));
        atomic_store(&mp->manifest_gen, 1);
        if ((rc = proc_slots_elect(mp->slots, &owner)) != 0)
            return rc;
        if (owner) {
            atomic_store(&mp->owner, 1);
            atomic_store(&mp->hdr->owner_pid, (uint64_t)getpid());
        } else {
            manifest_close(db->manifest);   /* another handle won meanwhile */
            db->manifest = NULL;
        }
    } else {
        manifest_close(db->manifest);
        db->manifest = NULL;
        if ((rc = mp_join(db)) != 0)
            return rc;
    }
    pthread_mutex_lock(&db->mu);
    db_snapshot_publish_locked(db);
    pthread_mutex_unlock(&db->mu);
    if (atomic_load(&mp->owner) && (rc = db_mp_refresh_horizon(db)) != 0)
        return rc;
    if ((rc = pthread_create(&mp->keeper, NULL, mp_keeper_main, db)) != 0)
        return status_err(STOAT_ENOMEM, "cannot start the keeper thread (error %d)", rc);
    mp->keeper_started = 1;
    return 0;
}

void db_mp_close(stoat_db *db)
{
    db_mp *mp = db->mp;

    if (mp == NULL)
        return;
    if (mp->keeper_started) {
        pthread_mutex_lock(&db->mu);
        db->closing = 1;
        pthread_cond_broadcast(&mp->keeper_cv);
        pthread_mutex_unlock(&db->mu);
        pthread_join(mp->keeper, NULL);
        mp->keeper_started = 0;
    }
    /* The WALs flushed since the keeper's last round go now (when no
     * other process follows them), not at the next open. */
    if (mp->slots != NULL && atomic_load(&mp->owner))
        mp_sweep_wals(db);
    proc_slots_close(mp->slots);
    shm_close(mp->region);
    pthread_mutex_destroy(&mp->slots_mu);
    pthread_mutex_destroy(&mp->tail_mu);
    pthread_cond_destroy(&mp->keeper_cv);
    memtable_unref(mp->wtail);
    mp_note_close(mp);
    buf_free(&mp->keys);
    free(mp->key_refs);
    free(mp);
    db->mp = NULL;
}
