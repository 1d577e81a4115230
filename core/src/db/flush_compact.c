/*
 * flush_compact.c - background work: flushing immutable memtables to L0 tables and
 * compacting levels, and installing what they produce.
 *
 * One flusher thread takes immutable memtables oldest first, writes each
 * into an L0 table, records it in the manifest together with the WAL
 * number it makes obsolete, and drops the memtable (its WAL file goes with
 * the last reference). num_compactors threads pick compactions
 * (compaction_pick marks their inputs, so two never take the same table)
 * and run them without holding db->mu. When no level needs work they
 * repair the shape reads pay for: a seek compaction of the table point
 * reads kept probing in vain (db_charge_seek, from read.c), and once no
 * commit has come for idle_after_ms an idle compaction step towards one
 * level (compaction_pick_idle), re-checked before every step so that it
 * stops when writes resume.
 *
 * Every version change goes through db_install_edit under manifest_mu, so
 * edits are logged in the order they are applied. A table an edit deletes
 * is removed from disk when the last version listing it is released (an
 * iterator may still read it until then).
 *
 * A failure of any background job is sticky (db->bg_error): writes fail
 * from then on with its message, reads go on, and close reports it. Except
 * a full disk (STOAT_ENOSPC), which leaves nothing behind (a failed table
 * is removed, a failed manifest record cut off, the tables of an edit
 * the manifest did not take removed): the job is retried after a pause
 * (state.c, "a full disk"), and writes resume once space is freed.
 */
#include <stdlib.h>
#include <time.h>

#include "db/flush_compact.h"
#include "db/shared.h"
#include "db/snapshots.h"
#include "db/state.h"
#include "db/write.h"
#include "base/killpoint.h"
#include "base/perturb.h"
#include "base/ikey.h"
#include "table/sst_builder.h"
#include "base/status.h"

/* Called when the last version listing a deleted table lets go of it. */
static void db_table_obsolete(void *arg, table_meta *t)
{
    stoat_db *db = arg;
    char *path = sst_path(db->dir, t->id);

    table_cache_evict(db->tc, t->id);
    if (path != NULL)
        env_remove(db->env, path);  /* an unremoved file is removed at next open */
    free(path);
}

static void db_mark_deleted_tables(stoat_db *db, const lsm_view *v, const lsm_edit *e)
{
    for (size_t i = 0; i < e->n_dels; i++) {
        int l = e->dels[i].level;
        for (size_t j = 0; j < v->n[l]; j++) {
            table_meta *t = v->tables[l][j];
            if (t->id == e->dels[i].id) {
                t->on_free_arg = db;
                t->on_free = db_table_obsolete;
            }
        }
    }
}

/* A full disk kept the edit out of the manifest (manifest.c cut the
 * record back off): its new tables are nobody's, and take space the
 * retry needs. */
static void db_remove_unrecorded_tables(stoat_db *db, const lsm_edit *e)
{
    for (size_t i = 0; i < e->n_adds; i++) {
        uint64_t id = e->adds[i].t->id;
        char *path;
        int moved = 0;

        for (size_t j = 0; j < e->n_dels; j++)
            moved |= e->dels[j].id == id;   /* a table moved, not made: keep it */
        if (moved || (path = sst_path(db->dir, id)) == NULL)
            continue;
        env_remove(db->env, path);  /* a leftover is removed at next open */
        free(path);
    }
}

int db_install_edit(stoat_db *db, lsm_edit *edit)
{
    lsm_view *cur, *next = NULL;
    int rc = 0;

    pthread_mutex_lock(&db->manifest_mu);
    /* New tables' directory entries must be durable before the manifest
     * names them, or a power loss would leave it pointing at nothing. */
    if (edit->n_adds > 0)
        rc = env_sync_dir(db->env, db->dir);
    pthread_mutex_lock(&db->mu);
    cur = db->current;          /* stable: it changes only under manifest_mu */
    edit->has_next_file_id = 1;
    edit->next_file_id = db->mp ? atomic_load(&db->mp->hdr->next_file_id) : db->next_file_id;
    edit->has_last_version = 1;
    edit->last_version = atomic_load(&db->last_version);
    pthread_mutex_unlock(&db->mu);
    if (rc == 0)
        rc = manifest_append(db->manifest, cur, edit);
    if (rc == 0)
        rc = lsm_view_apply(cur, db->opts.num_levels, edit, &next);
    PERTURB("version_install");
    pthread_mutex_lock(&db->mu);
    if (rc == 0) {
        db_mark_deleted_tables(db, cur, edit);
        db->current = next;
        db_mp_manifest_changed(db, edit->has_log_number ? edit->log_number : 0);
    } else if (db_bg_failed_locked(db, rc)) {
        db_remove_unrecorded_tables(db, edit);
    }
    pthread_cond_broadcast(&db->done_cv);
    pthread_cond_broadcast(&db->bg_cv);
    pthread_mutex_unlock(&db->mu);
    pthread_mutex_unlock(&db->manifest_mu);
    if (rc == 0)
        lsm_view_unref(cur);
    return rc;
}

/* Writes memtable m into a new L0 table; adds it to edit (none if empty). */
static int db_write_l0(stoat_db *db, memtable *m, lsm_edit *edit)
{
    uint64_t id = db_new_file_id(db);
    char *path = sst_path(db->dir, id);
    sst_builder *b = NULL;
    sst_props props = {0};
    table_meta *t;
    iter *it = NULL;
    int rc;

    if (path == NULL)
        return status_err(STOAT_ENOMEM, "out of memory flushing");
    if (memtable_count(m) == 0) {
        free(path);
        return 0;
    }
    if ((rc = sst_builder_new(db->env, path, &db->sopts, &b)) != 0)
        goto fail;
    if ((it = memtable_iter(m)) == NULL) {
        rc = status_err(STOAT_ENOMEM, "out of memory flushing");
        goto fail;
    }
    for (iter_seek_first(it); iter_valid(it) && rc == 0; iter_next(it))
        rc = sst_builder_add(b, iter_key(it), iter_value(it));
    if (rc == 0)
        rc = iter_status(it);
    iter_free(it);
    if (rc != 0)
        goto fail;
    rc = sst_builder_finish(b, &props);
    b = NULL;
    if (rc != 0)
        goto fail;
    t = table_meta_new(id, props.file_size, slice_make(props.smallest.data, props.smallest.len),
                       slice_make(props.largest.data, props.largest.len));
    if (t == NULL) {
        rc = status_err(STOAT_ENOMEM, "out of memory flushing");
        goto fail;
    }
    t->num_entries = props.num_entries;
    t->num_deletions = props.num_deletions;
    t->min_version = props.min_version;
    t->max_version = props.max_version;
    rc = lsm_edit_add(edit, 0, t);
    table_meta_unref(t);
    sst_props_free(&props);
    free(path);
    return rc;
fail:
    sst_builder_abandon(b);
    sst_props_free(&props);
    env_remove(db->env, path);
    free(path);
    return rc;
}

static int db_flush_one(stoat_db *db, memtable *m)
{
    lsm_edit edit;
    int rc;

    lsm_edit_init(&edit);
    rc = db_write_l0(db, m, &edit);
    KILL_POINT("flush_written");
    if (rc == 0) {
        /* Every WAL older than the next unflushed memtable is obsolete. */
        pthread_mutex_lock(&db->mu);
        edit.has_log_number = 1;
        edit.log_number = db->n_imm > 1 ? memtable_id(db->imm[1]) : db_mp_next_wal_locked(db);
        pthread_mutex_unlock(&db->mu);
        rc = db_install_edit(db, &edit);
    }
    lsm_edit_free(&edit);
    return rc;
}

static void *db_flusher_main(void *arg)
{
    stoat_db *db = arg;

    pthread_mutex_lock(&db->mu);
    for (;;) {
        memtable *m;
        int rc;

        while (!db->closing && (db->n_imm == 0 || db->bg_error || !db_mp_is_owner(db)))
            pthread_cond_wait(&db->bg_cv, &db->mu);
        if (db->closing)
            break;
        m = db->imm[0];
        memtable_ref(m);
        db->flushing = 1;
        pthread_mutex_unlock(&db->mu);
        rc = db_flush_one(db, m);
        PERTURB("flush_installed");
        KILL_POINT("flush_installed");
        pthread_mutex_lock(&db->mu);
        db->flushing = 0;
        if (rc == 0) {
            /* m is imm[0]: only this thread removes from the front. */
            db->n_imm--;
            for (size_t i = 0; i < db->n_imm; i++)
                db->imm[i] = db->imm[i + 1];
            /* Multi-process: the keeper removes the WAL once no process
             * follows it (shared_open.c, mp_sweep_wals). */
            if (db->mp == NULL)
                memtable_mark_obsolete(m);
            memtable_unref(m);  /* the queue's reference */
            db_mp_backlog_locked(db);
            db->stat_flushes++;
            db_bg_succeeded_locked(db);
        }
        memtable_unref(m);
        pthread_cond_broadcast(&db->done_cv);
        pthread_cond_broadcast(&db->bg_cv);
        /* A full disk: m stays queued, tried again after a while. */
        if (rc != 0 && db_bg_failed_locked(db, rc))
            db_nospace_backoff_locked(db);
    }
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

/* A dropped entry's value-log bytes become garbage: compaction's on_drop
 * (the counts value-log GC picks files by). */
static void compaction_count_drop(void *arg, slice ikey, slice value)
{
    stoat_db *db = arg;
    vstruct vs;
    vptr p;

    (void)ikey;
    if (db->disc == NULL || vstruct_decode(value, &vs) != 0 || !(vs.meta & VMETA_VPTR))
        return;
    vptr_decode(vs.value.data, &p);
    discard_add(db->disc, p.fid, p.len);   /* advisory: a lost count loses no data */
}

static int db_run_compaction(stoat_db *db, compaction *c, uint64_t oldest)
{
    compaction_ctx ctx = {
        .env = db->env,
        .dir = db->dir,
        .tc = db->tc,
        .sst = db->sopts,
        .oldest_read_version = oldest,
        .now = db_clock_ms(0),
        .versions_to_keep = db->opts.num_versions_to_keep,
        .on_drop = compaction_count_drop,
        .new_file_id = db_new_file_id,
        .arg = db,
    };
    lsm_edit edit;
    int rc;

    lsm_edit_init(&edit);
    PERTURB("compaction_start");
    rc = compaction_run(c, &ctx, &edit);
    PERTURB("compaction_run");
    KILL_POINT("compaction_written");
    if (rc == 0)
        rc = db_install_edit(db, &edit);
    KILL_POINT("compaction_installed");
    lsm_edit_free(&edit);
    /* Counted garbage is advisory: a failed save is retried next time. */
    if (rc == 0 && db->disc)
        discard_save(db->disc);
    return rc;
}

/* Runs compaction c (picked under mu, which is held on entry and exit). */
static int db_compact_locked(stoat_db *db, compaction *c)
{
    uint64_t oldest;
    int rc;

    db->running_compactions++;
    if (db->mp != NULL && atomic_load(&db->mp->horizon) < atomic_load(&db->last_version)) {
        /* The keeper's scan (every MP_KEEPER_MS) may lag the commits: the
         * compaction would keep versions no reader needs any more, in
         * tables not picked again while a reader older than their newest
         * key lives. */
        pthread_mutex_unlock(&db->mu);
        db_mp_refresh_horizon(db);
        pthread_mutex_lock(&db->mu);
    }
    oldest = db_oldest_snapshot_locked(db);
    pthread_mutex_unlock(&db->mu);
    rc = db_run_compaction(db, c, oldest);
    pthread_mutex_lock(&db->mu);
    compaction_release(c);
    db->running_compactions--;
    if (rc != 0) {
        db_bg_failed_locked(db, rc);
    } else {
        db->stat_compactions++;
        db_bg_succeeded_locked(db);
    }
    pthread_cond_broadcast(&db->done_cv);
    pthread_cond_broadcast(&db->bg_cv);
    return rc;
}

/* Idle: no commit for 1 s (writes have stopped; the tree may be left in a
 * shape reads pay for). */
#define DB_IDLE_AFTER_MS 1000

static uint64_t db_monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t db_newest_version(stoat_db *db)
{
    return db->mp ? db_mp_next_version(db) : atomic_load(&db->last_version);
}

/* Milliseconds until the database counts as idle (0: it is), restarting
 * the count when a commit or a flush happened since the last call. */
static uint64_t db_idle_wait_locked(stoat_db *db, uint64_t now)
{
    uint64_t v = db_newest_version(db);

    if (v != db->idle_version || db->n_imm > 0 || db->flushing) {
        db->idle_version = v;
        db->idle_since_ms = now;
    }
    if (now - db->idle_since_ms >= db->idle_after_ms)
        return 0;
    return db->idle_after_ms - (now - db->idle_since_ms);
}

/* What to do when no level needs compacting: a seek compaction of a table
 * reads kept probing in vain, or, once writes have stopped, a step towards
 * one level. *wait_ms gets how long until the idle check is due. */
static compaction *db_pick_repair_locked(stoat_db *db, uint64_t *wait_ms)
{
    compaction *c = NULL;

    *wait_ms = db_idle_wait_locked(db, db_monotonic_ms());
    if (db->seek_due) {
        c = compaction_pick_seek(db->current, &db->lopts, db->seek_level, db->seek_id);
        db->seek_due = 0;       /* done with it, picked or not */
        if (c != NULL) {
            db->stat_seek_compactions++;
            return c;
        }
    }
    if (*wait_ms == 0 && (c = compaction_pick_idle(db->current, &db->lopts)) != NULL)
        db->stat_idle_compactions++;
    return c;
}

static void *db_compactor_main(void *arg)
{
    stoat_db *db = arg;

    pthread_mutex_lock(&db->mu);
    while (!db->closing) {
        compaction *c = NULL;
        uint64_t wait_ms = 1000;

        if (!db->bg_error && !db->manual_compaction && db_mp_is_owner(db)) {
            db->lopts.discard_version = db_oldest_snapshot_locked(db);
            c = compaction_pick(db->current, &db->lopts);
            if (c == NULL)
                c = db_pick_repair_locked(db, &wait_ms);
        }
        if (c == NULL) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            /* Re-check now and then (tombstone picks), and when idle is due. */
            if (wait_ms == 0 || wait_ms > 1000)
                wait_ms = 1000;
            ts.tv_sec += (time_t)(wait_ms / 1000);
            ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&db->bg_cv, &db->mu, &ts);
            continue;
        }
        if (db_compact_locked(db, c) == STOAT_ENOSPC)
            db_nospace_backoff_locked(db);
    }
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

int db_flush_compact_start(stoat_db *db)
{
    int rc;

    pthread_mutex_lock(&db->mu);
    db->idle_after_ms = DB_IDLE_AFTER_MS;
    db->idle_version = db_newest_version(db);
    db->idle_since_ms = db_monotonic_ms();
    pthread_mutex_unlock(&db->mu);
    if ((rc = pthread_create(&db->flusher, NULL, db_flusher_main, db)) != 0)
        return status_err(STOAT_ENOMEM, "cannot start the flush thread (error %d)", rc);
    db->threads_started = 1;
    for (int i = 0; i < db->opts.num_compactors; i++) {
        if ((rc = pthread_create(&db->compactors[i], NULL, db_compactor_main, db)) != 0)
            return status_err(STOAT_ENOMEM, "cannot start a compaction thread (error %d)", rc);
        db->n_compactors++;
    }
    return 0;
}

void db_flush_compact_stop(stoat_db *db)
{
    pthread_mutex_lock(&db->mu);
    db->closing = 1;
    pthread_cond_broadcast(&db->bg_cv);
    pthread_mutex_unlock(&db->mu);
    if (db->threads_started)
        pthread_join(db->flusher, NULL);
    for (int i = 0; i < db->n_compactors; i++)
        pthread_join(db->compactors[i], NULL);
    db->threads_started = 0;
    db->n_compactors = 0;
}

int db_flatten(stoat_db *db)
{
    int rc;

    if (!db_mp_is_owner(db))
        return status_err(STOAT_EBUSY, "%s: another process runs the background work (pid "
                          "%llu): run this there, or once it has closed", db->dir,
                          (unsigned long long)atomic_load(&db->mp->hdr->owner_pid));
    /* The horizon after the rotation: in multi-process mode it caught
     * this handle up, so that its own slot says how far it read. */
    if ((rc = db_rotate_and_wait(db)) != 0 || (rc = db_mp_refresh_horizon(db)) != 0)
        return rc;
    pthread_mutex_lock(&db->mu);
    db->manual_compaction++;
    while (db->running_compactions > 0 && !db->bg_error)
        pthread_cond_wait(&db->done_cv, &db->mu);
    while (rc == 0) {
        compaction *c;

        if ((rc = db_check_running_locked(db)) != 0)
            break;
        if (db->ingesting) {    /* its level choice must not change under it */
            pthread_cond_wait(&db->done_cv, &db->mu);
            continue;
        }
        db->lopts.discard_version = db_oldest_snapshot_locked(db);
        if ((c = compaction_pick_manual(db->current, &db->lopts)) == NULL)
            break;
        rc = db_compact_locked(db, c);
    }
    db->manual_compaction--;
    pthread_cond_broadcast(&db->bg_cv);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

int stoat_flatten(stoat_db *db)
{
    int rc;

    if ((rc = db_check_handle(db)) != 0)
        return rc;
    if ((rc = db_check_writable(db)) != 0)
        return rc;
    return db_flatten(db);
}
