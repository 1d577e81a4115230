/*
 * shared.c - the multi-process mode (stoat_options.multi_process): every
 * process that opens the directory reads and writes the one database.
 * This file has the design below, what a process publishes, and the
 * commit path: the commit lock and its repair, rotation, the hooks of
 * write.c. Catching up with the others' commits and the oracle's cursor
 * are in shared_catchup.c; open, join, the keeper and close in
 * shared_open.c (shared_int.h: what the three share).
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
 * what this process had applied) is stamped, as in write_record.c, so open
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
#include <unistd.h>

#include "db/shared_int.h"
#include "db/state.h"
#include "base/killpoint.h"
#include "base/status.h"
#include "env/filename.h"

#define MP_ARENA_SLACK 1024u    /* the arena's own header, and then some */

/* ---- what this process publishes ---- */

/* Publishes the value-log file appends go to and the end of its last
 * published record (commit lock held, or the creator before `ready`):
 * the two fields, then both in one word for readers' mappings (0 when
 * they do not fit it: no mapping of that file). */
void mp_publish_vlog(db_shared_hdr *h, uint64_t fid, uint64_t end)
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
void mp_publish_follow(stoat_db *db)
{
    db_mp *mp = db->mp;

    pthread_mutex_lock(&mp->slots_mu);
    proc_slots_publish_wal(mp->slots, mp->wal_id < mp->note_id ? mp->wal_id : mp->note_id);
    pthread_mutex_unlock(&mp->slots_mu);
}

/* The apply cursor moves on to WAL id. */
void mp_follow(stoat_db *db, uint64_t id)
{
    db->mp->wal_id = id;
    mp_publish_follow(db);
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

