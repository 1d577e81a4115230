/*
 * vlog_gc.c - value-log garbage collection: counting garbage, moving live
 * values out of mostly-dead files, and deleting those files once no
 * reader can reach them.
 *
 * Counting: compaction calls its on_drop for every entry it drops
 * (flush_compact.c); a dropped value pointer adds its record's bytes to
 * its file's discard count (vlog/discard.h), saved after each compaction. A
 * version a compaction keeps only for an open snapshot is counted later:
 * its table records it (table_meta.num_stale, in the MANIFEST), and once
 * that snapshot is gone compaction_pick rewrites the table, dropping and
 * so counting it (issue 16; before, such garbage in the last level was
 * never counted).
 *
 * Collecting one file (gc_collect_file): first a barrier through the
 * writer queue (every write that appended to the file is then published),
 * then a snapshot S. A record is live when it is its key's newest version
 * at S and the LSM still points at exactly it. Live values are written
 * again through the write path under their own versions (db_write_gc),
 * then made durable (sync) before the file is let go. Why this is safe:
 *   - only a key's newest version is moved, and the write path drops the
 *     move of any key written after S (the oracle records every commit):
 *     so a moved value always lands in a source no older than every
 *     version it could shadow, the order point reads rely on, and a key
 *     deleted or overwritten while GC runs never reappears;
 *   - older versions are not moved: the snapshots that may read them are
 *     older than the move, and the file is deleted only when every
 *     snapshot older than the move is gone (db_vlog_gc_reap); plain gets, which
 *     hold no snapshot, look the key up again when a file vanishes under
 *     them (read.c);
 *   - WALs not yet flushed may still hold entries pointing into the file
 *     (older versions, or values moved since), and WAL replay checks every
 *     pointer: the file is deleted only once every memtable that existed
 *     when it was collected is flushed (stoat_gc flushes for that);
 *   - before deletion, the file's discard count is set to its whole size:
 *     if a crash loses the deletion, the file comes back as all garbage,
 *     and the next GC finds nothing live in it and deletes it again.
 *
 * One GC at a time (gc_mu). The background thread (with auto_gc) collects
 * files whose garbage passes auto_gc_ratio, from counts compaction
 * provides as it goes; stoat_gc first flushes and compacts everything so
 * that garbage from recent overwrites and deletes is counted at once.
 * Collected files are deleted by stoat_gc when nothing reaches them any
 * more, else later by the background thread (always running while the
 * value log is writable), which a snapshot release wakes: a reader's
 * close never unlinks or syncs on its own thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/vlog_gc.h"
#include "db/shared.h"
#include "db/flush_compact.h"
#include "db/read.h"
#include "db/snapshots.h"
#include "db/state.h"
#include "db/write.h"
#include "base/perturb.h"
#include "base/ikey.h"
#include "base/status.h"
#include "base/vec.h"

/* Files waiting for deletion: is fid one of them? (mu held) */
static int gc_pending_has_locked(const stoat_db *db, uint32_t fid)
{
    for (size_t i = 0; i < db->n_gc_pending; i++)
        if (db->gc_pending[i].fid == fid)
            return 1;
    return 0;
}

static int gc_pending_add(stoat_db *db, uint32_t fid, uint64_t done_version)
{
    int rc = 0;

    pthread_mutex_lock(&db->mu);
    if (VEC_ROOM(db->gc_pending, db->n_gc_pending, db->cap_gc_pending, 8) != 0) {
        rc = status_err(STOAT_ENOMEM, "out of memory scheduling a value-log deletion");
        goto out;
    }
    /* Every WAL that may point into fid belongs to this memtable or an
     * older one: fid was sealed before its collection began. */
    db->gc_pending[db->n_gc_pending++] =
        (struct gc_pending){fid, done_version, db_mp_head_wal(db)};
out:
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* The id of the oldest memtable with entries not yet flushed: every WAL
 * older than it holds nothing any more (mu held). Any write that pointed
 * into a collected file was applied to its memtable before the collection
 * (its barrier), so an empty active memtable's WAL points nowhere. */
static uint64_t gc_oldest_wal_locked(stoat_db *db)
{
    if (db->mp != NULL)
        return db_mp_oldest_wal_locked(db);
    if (db->n_imm > 0)
        return memtable_id(db->imm[0]);
    return memtable_count(db->mem) > 0 ? memtable_id(db->mem) : UINT64_MAX;
}

/* Deletes every waiting file that no snapshot and no live WAL can reach
 * any more (gc_mu held: a file leaves the waiting list before it leaves
 * the disk and the discard counts, and a GC pick in between would take it
 * for a live file full of garbage). The deletions run without db->mu
 * (they may wait for a value-log sync). */
static void gc_reap_locked(stoat_db *db)
{
    uint32_t ready[16];
    size_t n_ready = 0;

    if (db->vlog == NULL)
        return;
    pthread_mutex_lock(&db->mu);
    for (size_t i = 0; i < db->n_gc_pending && n_ready < 16;) {
        int reachable = (db->snapshots.next != &db->snapshots &&
                         db->snapshots.next->version < db->gc_pending[i].done_version) ||
                        gc_oldest_wal_locked(db) <= db->gc_pending[i].wal_id;
        if (reachable) {
            i++;
            continue;
        }
        ready[n_ready++] = db->gc_pending[i].fid;
        db->gc_pending[i] = db->gc_pending[--db->n_gc_pending];
    }
    pthread_mutex_unlock(&db->mu);
    for (size_t i = 0; i < n_ready; i++) {
        /* A failed unlink leaves a file full of garbage that the next GC
         * deletes again: nothing to report here. */
        if (vlog_remove_file(db->vlog, ready[i]) == 0 || !vlog_file_size(db->vlog, ready[i]))
            discard_forget(db->disc, ready[i]);
    }
    if (n_ready > 0)
        discard_save(db->disc);
}

void db_vlog_gc_reap(stoat_db *db)
{
    /* Busy: a GC is running, and it reaps when it ends (or the background
     * thread does at its next turn). */
    if (db->vlog == NULL || pthread_mutex_trylock(&db->gc_mu) != 0)
        return;
    gc_reap_locked(db);
    pthread_mutex_unlock(&db->gc_mu);
}

/* One file's collection in progress. */
typedef struct gc_run {
    stoat_db *db;
    uint32_t fid;
    buf data;                   /* the live entries' keys and values */
    struct gc_entry {
        uint8_t meta, user_meta;
        uint64_t expires_at, version;
        size_t koff, klen, voff, vlen;
        uint32_t rec_len;       /* its record's bytes in the collected file */
    } *entries;
    size_t n, cap;
    buf stored;
    uint8_t *skip;              /* for db_write_gc */
    uint64_t snap_version;      /* S: liveness is judged at it */
    uint64_t now;
    uint64_t done_version;
    uint64_t rewritten;         /* log bytes written again: the moved records' lengths in
                                 * the collected file (values compressed there are
                                 * compressed again, so they take about as much) */
} gc_run;

static int gc_flush(gc_run *g)
{
    db_write_op *ops;
    uint64_t done = 0;
    int rc;

    if (g->n == 0)
        return 0;
    if ((ops = malloc(g->n * sizeof(*ops))) == NULL)
        return status_err(STOAT_ENOMEM, "out of memory rewriting values");
    free(g->skip);
    if ((g->skip = calloc(g->n, 1)) == NULL) {
        free(ops);
        return status_err(STOAT_ENOMEM, "out of memory rewriting values");
    }
    for (size_t i = 0; i < g->n; i++) {
        const struct gc_entry *e = &g->entries[i];
        ops[i] = (db_write_op){e->meta, e->user_meta, e->expires_at,
                               slice_make(g->data.data + e->koff, e->klen),
                               slice_make(g->data.data + e->voff, e->vlen), e->version};
    }
    rc = db_write_gc(g->db, ops, g->n, g->snap_version, g->skip, &done);
    free(ops);
    if (rc == 0 && done > g->done_version)
        g->done_version = done;
    for (size_t i = 0; rc == 0 && i < g->n; i++)
        if (!g->skip[i])
            g->rewritten += g->entries[i].rec_len;
    g->n = 0;
    buf_reset(&g->data);
    return rc;
}

/* Is the record at p (key ikey) what the LSM still points to? */
static int gc_is_live(gc_run *g, const vptr *p, slice ikey, vstruct *vs)
{
    uint64_t v = ikey_version(ikey), found = 0;
    vptr cur;
    int rc;

    if (v > g->snap_version)
        return status_err(STOAT_ECORRUPT, "value log %06u: record at %llu is newer (%llu) than "
                          "the log's sealing", p->fid, (unsigned long long)p->offset,
                          (unsigned long long)v);
    buf_reset(&g->stored);
    rc = db_get_at(g->db, ikey_user(ikey), g->snap_version, &g->stored, &found);
    if (rc == STOAT_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (found != v || vstruct_decode(slice_make(g->stored.data, g->stored.len), vs) != 0 ||
        !(vs->meta & VMETA_VPTR))
        return 0;
    vptr_decode(vs->value.data, &cur);
    if (cur.fid != p->fid || cur.offset != p->offset)
        return 0;
    /* Expired values are invisible to every reader, now and later. */
    return !vstruct_expired(vs, g->now);
}

static int gc_scan_record(void *arg, const vptr *p, slice ikey, slice value)
{
    gc_run *g = arg;
    const stoat_options *o = &g->db->opts;
    slice ukey;
    vstruct vs = {0};
    int rc;

    if (ikey.len < IKEY_SUFFIX_LEN)
        return status_err(STOAT_ECORRUPT, "value log %06u: record with a short key", p->fid);
    if ((rc = gc_is_live(g, p, ikey, &vs)) <= 0)
        return rc;
    if (g->n > 0 && (g->n + 1 > o->max_txn_entries ||
                     g->data.len + ikey.len + value.len > o->max_txn_bytes))
        if ((rc = gc_flush(g)) != 0)
            return rc;
    if (VEC_ROOM(g->entries, g->n, g->cap, 256) != 0)
        return status_err(STOAT_ENOMEM, "out of memory rewriting values");
    ukey = ikey_user(ikey);
    g->entries[g->n] = (struct gc_entry){vs.meta & ~VMETA_VPTR, vs.user_meta, vs.expires_at,
                                         ikey_version(ikey), g->data.len, ukey.len,
                                         g->data.len + ukey.len, value.len, p->len};
    if ((rc = buf_append(&g->data, ukey.data, ukey.len)) != 0 ||
        (rc = buf_append(&g->data, value.data, value.len)) != 0)
        return status_err(rc, "out of memory rewriting values");
    g->n++;
    return 0;
}

/* Moves file fid's live values and schedules its deletion. */
static int gc_collect_file(stoat_db *db, uint32_t fid, uint64_t *reclaimed)
{
    gc_run g = {.db = db, .fid = fid, .now = db_clock_ms(0)};
    db_snapshot snap;
    uint64_t size = vlog_file_size(db->vlog, fid);
    int rc;

    /* Every write that appended to the (sealed) file is published after
     * this barrier, so S sees all of its records' keys. */
    if ((rc = db_barrier(db)) != 0)
        return rc;
    pthread_mutex_lock(&db->mu);
    snap.version = g.snap_version = atomic_load(&db->last_version);
    db_snapshot_add_locked(db, &snap);
    pthread_mutex_unlock(&db->mu);
    PERTURB("gc_snapshot");
    rc = vlog_scan(db->vlog, fid, gc_scan_record, &g);
    PERTURB("gc_scanned");
    if (rc == 0)
        rc = gc_flush(&g);
    /* The moved values must be durable before the file may go. */
    if (rc == 0 && g.rewritten > 0)
        rc = db_sync_logs(db);
    db_snapshot_remove(db, &snap);
    if (rc == 0) {
        if (g.done_version == 0)
            g.done_version = atomic_load(&db->last_version) + 1;
        discard_add(db->disc, fid, size - discard_get(db->disc, fid));
        discard_save(db->disc);
        rc = gc_pending_add(db, fid, g.done_version);
    }
    if (rc == 0) {
        *reclaimed += size > g.rewritten ? size - g.rewritten : 0;
        pthread_mutex_lock(&db->mu);
        db->stat_gc_runs++;
        db->stat_gc_reclaimed += size > g.rewritten ? size - g.rewritten : 0;
        db->stat_gc_rewritten += g.rewritten;
        pthread_mutex_unlock(&db->mu);
    }
    buf_free(&g.data);
    buf_free(&g.stored);
    free(g.entries);
    free(g.skip);
    gc_reap_locked(db);
    return rc;
}

/* A file whose scan met damage stays where it is (its other values still
 * read) and is not picked again in this process: one bad record must not
 * stop the collection of every other file, nor the writes. (gc_mu held) */
static int gc_damaged_has(const stoat_db *db, uint32_t fid)
{
    for (size_t i = 0; i < db->n_gc_damaged; i++)
        if (db->gc_damaged[i] == fid)
            return 1;
    return 0;
}

static void gc_damaged_add(stoat_db *db, uint32_t fid)
{
    uint32_t *grown = realloc(db->gc_damaged, (db->n_gc_damaged + 1) * sizeof(*grown));

    if (grown != NULL) {
        db->gc_damaged = grown;
        db->gc_damaged[db->n_gc_damaged++] = fid;
    }
}

/* The sealed file below limit with the largest garbage share above ratio,
 * or 0. */
static uint32_t gc_pick(stoat_db *db, double ratio, uint32_t limit)
{
    uint32_t active = vlog_active_fid(db->vlog), best = 0;
    double best_share = ratio;
    discard_entry *e = NULL;
    size_t n = 0;

    if (discard_list(db->disc, &e, &n) != 0)
        return 0;
    pthread_mutex_lock(&db->mu);
    /* A bulk load's values have no LSM entry until it finishes: its
     * files would look all garbage (ingest.c). */
    for (size_t i = 0; i < n && db->gc_holds == 0; i++) {
        uint64_t size = vlog_file_size(db->vlog, e[i].fid);
        double share;

        if (e[i].fid == active || e[i].fid >= limit || gc_pending_has_locked(db, e[i].fid) ||
            gc_damaged_has(db, e[i].fid))
            continue;
        if (size == 0) {
            discard_forget(db->disc, e[i].fid);     /* its file is gone */
            continue;
        }
        share = (double)e[i].bytes / (double)size;
        if (share > best_share) {
            best_share = share;
            best = e[i].fid;
        }
    }
    pthread_mutex_unlock(&db->mu);
    free(e);
    return best;
}

/* Collects the files sealed before it began whose garbage passes ratio
 * (files sealed since, by writers going on meanwhile, wait for the next
 * round: writers faster than GC would keep it busy forever; gc_mu
 * held). A file met damaged is skipped from then on; `retry_damaged`
 * (an explicit stoat_gc) tries such files once more, so that the caller
 * hears about the damage. */
static int gc_loop(stoat_db *db, double ratio, int retry_damaged, uint64_t *reclaimed)
{
    uint32_t active = vlog_active_fid(db->vlog), fid;
    uint64_t size = active ? vlog_file_size(db->vlog, active) : 0;
    char damage[STATUS_MSG_MAX];
    int rc = 0, damaged = 0;

    if (retry_damaged)
        db->n_gc_damaged = 0;

    if (db->mp != NULL) {
        /* Multi-process: the active file is the one every process appends
         * to, sealed only under the commit lock; a barrier commit makes
         * this process's value log follow it (shared.c). Files from it on
         * are left alone. */
        if ((rc = db_barrier(db)) != 0)
            return rc;
        active = vlog_active_fid(db->vlog);
        if (active == 0)
            return 0;
        size = vlog_file_size(db->vlog, active);
        if (size > 0 && (double)discard_get(db->disc, active) / (double)size > ratio &&
            (rc = db_mp_vlog_rotate(db)) != 0)
            return rc;
    } else if (size > 0 && (double)discard_get(db->disc, active) / (double)size > ratio &&
               (rc = vlog_rotate(db->vlog)) != 0) {
        /* Garbage in the active file counts too: seal it so it can go. */
        return rc;
    }
    active = vlog_active_fid(db->vlog);
    while (rc == 0 && (fid = gc_pick(db, ratio, active)) != 0) {
        rc = gc_collect_file(db, fid, reclaimed);
        if (rc == STOAT_ECORRUPT) {
            /* Reported (the message names the file), then the others. */
            gc_damaged_add(db, fid);
            snprintf(damage, sizeof(damage), "%s", status_msg());
            damaged = 1;
            rc = 0;
        }
    }
    if (rc == 0 && damaged)
        rc = status_err(STOAT_ECORRUPT, "value-log GC left a damaged file alone: %s", damage);
    return rc;
}

/* Collected files wait for the WALs that may point into them: flushes
 * those, so that the files go now (unless a snapshot still needs them). */
static int gc_release(stoat_db *db)
{
    int waits = 0, rc = 0;

    pthread_mutex_lock(&db->mu);
    for (size_t i = 0; i < db->n_gc_pending && !waits; i++)
        waits = gc_oldest_wal_locked(db) <= db->gc_pending[i].wal_id;
    pthread_mutex_unlock(&db->mu);
    if (waits && (rc = db_rotate_and_wait(db)) == 0)
        gc_reap_locked(db);
    return rc;
}

int stoat_gc(stoat_db *db, double discard_ratio, uint64_t *reclaimed)
{
    uint64_t total = 0;
    int rc;

    if (reclaimed)
        *reclaimed = 0;
    if ((rc = db_check_handle(db)) != 0)
        return rc;
    if ((rc = db_check_writable(db)) != 0)
        return rc;
    if (!(discard_ratio > 0 && discard_ratio < 1))
        return status_err(STOAT_EINVAL, "stoat_gc: discard_ratio must be in (0, 1)");
    pthread_mutex_lock(&db->gc_mu);
    /* Garbage is counted by compaction: make it see everything first. */
    rc = db_flatten(db);
    if (rc == 0)
        rc = gc_loop(db, discard_ratio, 1, &total);
    if (rc == 0)
        rc = gc_release(db);
    pthread_mutex_unlock(&db->gc_mu);
    if (reclaimed)
        *reclaimed = total;
    return rc;
}

/* The GC thread: collects files (auto_gc) and deletes collected files
 * once no reader can reach them, woken by background work, by snapshot
 * releases, and every second. Runs whenever the value log is writable:
 * with auto_gc off it only deletes what stoat_gc collected. */
static void *db_vlog_gc_main(void *arg)
{
    stoat_db *db = arg;

    pthread_mutex_lock(&db->mu);
    while (!db->closing) {
        struct timespec ts;
        uint64_t reclaimed = 0;
        int rc = 0;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&db->bg_cv, &db->mu, &ts);
        if (db->closing || db->bg_error || !db_mp_is_owner(db))
            continue;   /* multi-process: GC runs in the background owner */
        pthread_mutex_unlock(&db->mu);
        /* A stoat_gc under way deletes what it can by itself. */
        if (pthread_mutex_trylock(&db->gc_mu) == 0) {
            if (db->opts.auto_gc) {
                rc = gc_loop(db, db->opts.auto_gc_ratio, 0, &reclaimed);
                if (rc == 0)
                    rc = gc_release(db);
            }
            gc_reap_locked(db);
            pthread_mutex_unlock(&db->gc_mu);
        }
        pthread_mutex_lock(&db->mu);
        /* Damage GC met is the readers' to report, for the keys it holds:
         * it must not stop the writes (the file is left alone). Nor must
         * a full disk: the rewrite failed whole and is tried again. */
        if (rc != 0 && rc != STOAT_ECLOSED && rc != STOAT_ECORRUPT && rc != STOAT_ENOSPC)
            db_set_bg_error_locked(db, rc);
    }
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

int db_vlog_gc_start(stoat_db *db)
{
    int rc;

    if (db->vlog == NULL || db->read_only)
        return 0;
    if ((rc = pthread_create(&db->gc_thread, NULL, db_vlog_gc_main, db)) != 0)
        return status_err(STOAT_ENOMEM, "cannot start the GC thread (error %d)", rc);
    db->gc_thread_started = 1;
    return 0;
}

void db_vlog_gc_stop(stoat_db *db)
{
    if (db->gc_thread_started)
        pthread_join(db->gc_thread, NULL);
    db->gc_thread_started = 0;
}
