/*
 * open.c - opening, recovering and closing a database (the top of db/:
 * it starts everything the other files run).
 *
 * Open, in order: create the directory if asked; take LOCK (exclusive, or
 * shared when read-only); replay the MANIFEST (or create one); check that
 * every table it lists exists; remove files it does not know (unknown
 * tables, WALs already flushed, a stale MANIFEST.tmp); replay the WALs
 * still needed, oldest first, into immutable memtables queued for flush;
 * start a fresh WAL; start the background threads. Nothing runs at load
 * time: the fork generation hook (state.c) is registered by the first
 * open. Close waits for the writers, stops the threads, deletes the
 * value-log files the last readers let go, and syncs the logs.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db_env.h"
#include "db/db.h"
#include "db/flush_compact.h"
#include "db/options.h"
#include "db/shared.h"
#include "db/state.h"
#include "db/vlog_gc.h"
#include "base/status.h"
#include "crypt/crypt_env.h"
#include "env/filename.h"

static int view_has_table(const lsm_view *v, uint64_t id)
{
    for (int l = 0; l < v->num_levels; l++)
        for (size_t i = 0; i < v->n[l]; i++)
            if (v->tables[l][i]->id == id)
                return 1;
    return 0;
}

static int db_check_tables(stoat_db *db, uint64_t *max_version)
{
    const lsm_view *v = db->current;

    for (int l = 0; l < v->num_levels; l++) {
        for (size_t i = 0; i < v->n[l]; i++) {
            const table_meta *t = v->tables[l][i];
            char *path = sst_path(db->dir, t->id);
            int exists;

            if (path == NULL)
                return STOAT_ENOMEM;
            exists = env_exists(db->env, path);
            free(path);
            if (exists < 0)
                return exists;
            if (!exists)
                return status_err(STOAT_ECORRUPT,
                                  "%s: MANIFEST lists table %06llu.sst (level %d) but the file is "
                                  "missing",
                                  db->dir, (unsigned long long)t->id, l);
            if (t->max_version > *max_version)
                *max_version = t->max_version;
        }
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * Every value pointer a WAL restores must point at a complete value-log
 * record with a good checksum: a WAL record may have reached the disk
 * while the value it points to did not (no sync, power loss). That is
 * corruption naming the key, never a silently missing value.
 */
static int db_check_value_pointers(stoat_db *db, memtable *m, uint64_t wal_id)
{
    iter *it = memtable_iter(m);
    int rc = 0;

    if (it == NULL)
        return status_err(STOAT_ENOMEM, "out of memory checking value pointers");
    for (iter_seek_first(it); iter_valid(it) && rc == 0; iter_next(it)) {
        slice k = iter_key(it);
        vstruct vs;
        vptr p;

        if (vstruct_decode(iter_value(it), &vs) != 0 || !(vs.meta & VMETA_VPTR))
            continue;
        vptr_decode(vs.value.data, &p);
        rc = db->vlog ? vlog_check(db->vlog, &p, k) : STOAT_ENOTFOUND;
        if (rc != 0) {
            char msg[STATUS_MSG_MAX], key[STATUS_KEY_MAX];
            slice uk = ikey_user(k);
            snprintf(msg, sizeof(msg), "%s", status_msg());
            rc = status_err(STOAT_ECORRUPT,
                            "%s/%06llu.wal: key %s (version %llu) points at value-log record "
                            "%06u:%llu that is missing or damaged: %s",
                            db->dir, (unsigned long long)wal_id,
                            status_key_str(uk.data, uk.len, key),
                            (unsigned long long)ikey_version(k), p.fid,
                            (unsigned long long)p.offset, msg);
        }
    }
    iter_free(it);
    return rc;
}

/*
 * The newest WAL's tail may hold records whose values never reached the
 * value log: without a sync, a power loss keeps each file's unsynced
 * writes, or not, on its own. Those records were never acknowledged (a
 * sync, and sync "commit", make the value log durable before the WAL, and
 * a rotation syncs both, so older WALs and the newest one's synced part
 * point only at durable values): the replay ends at the first record
 * whose value is missing, as at a torn tail. The engine cannot tell this
 * from later damage to a synced value; it opens rather than refuses.
 * Older WALs are checked by db_check_value_pointers.
 */
static int db_wal_tail_until(void *arg, slice ikey, slice value)
{
    stoat_db *db = arg;
    vstruct vs;
    vptr p;
    int rc;

    if (db->vlog == NULL || vstruct_decode(value, &vs) != 0 || !(vs.meta & VMETA_VPTR))
        return 0;   /* db_check_value_pointers reports these */
    vptr_decode(vs.value.data, &p);
    rc = vlog_check(db->vlog, &p, ikey);
    return rc == STOAT_ECORRUPT || rc == STOAT_ENOTFOUND ? WAL_STOP : rc;
}

/* Replays the WALs in ids (sorted) into immutable memtables. */
static int db_replay_wals(stoat_db *db, const uint64_t *ids, size_t n, uint64_t *max_version)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t mv = 0;
        memtable *m;
        int rc = memtable_recover_until(db->env, db->dir, ids[i], db->opts.memtable_size,
                                        db->read_only, i + 1 == n ? db_wal_tail_until : NULL,
                                        db, &mv, &m);
        if (rc != 0)
            return rc;
        if (mv > *max_version)
            *max_version = mv;
        if ((rc = db_check_value_pointers(db, m, ids[i])) != 0) {
            memtable_unref(m);
            return rc;
        }
        if (memtable_count(m) == 0 && !db->read_only) {
            memtable_mark_obsolete(m);
            memtable_unref(m);
            continue;
        }
        if ((rc = db_push_imm_locked(db, m)) != 0) {
            memtable_unref(m);
            return rc;
        }
    }
    return 0;
}

/* Sorts the directory into what to keep, replay and remove. */
static int db_scan_dir(stoat_db *db, const manifest_state *st, uint64_t *max_version)
{
    char **names = NULL;
    size_t n = 0, n_wal = 0;
    uint64_t *wal_ids = NULL, max_id = 0;
    int rc;

    if ((rc = env_list(db->env, db->dir, &names, &n)) != 0)
        return rc;
    if ((wal_ids = calloc(n + 1, sizeof(*wal_ids))) == NULL) {
        rc = status_err(STOAT_ENOMEM, "out of memory scanning %s", db->dir);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t id;
        int remove = 0;

        if (filename_parse(names[i], FILENAME_EXT_TABLE, 0, &id)) {
            remove = !view_has_table(db->current, id);
        } else if (filename_parse(names[i], FILENAME_EXT_WAL, 0, &id)) {
            if (id < st->log_number)
                remove = 1;
            else
                wal_ids[n_wal++] = id;
        } else if (strcmp(names[i], FILENAME_MANIFEST_TMP) == 0) {
            remove = 1;
            id = 0;
        } else {
            continue;
        }
        if (id > max_id)
            max_id = id;
        if (remove && !db->read_only) {
            char *path = env_join(db->dir, names[i]);
            rc = path ? env_remove(db->env, path) : STOAT_ENOMEM;
            free(path);
            if (rc != 0)
                goto done;
        }
    }
    if (max_id + 1 > db->next_file_id)
        db->next_file_id = max_id + 1;
    qsort(wal_ids, n_wal, sizeof(*wal_ids), cmp_u64);
    rc = db_replay_wals(db, wal_ids, n_wal, max_version);
done:
    free(wal_ids);
    env_list_free(names, n);
    return rc;
}

static int db_load_manifest(stoat_db *db, manifest_state *st)
{
    int rc = manifest_open(db->env, db->dir, db->opts.num_levels, db->read_only, &db->current,
                           st, &db->manifest);

    if (rc == 0 && db->opts.error_if_exists)
        return status_err(STOAT_EEXIST, "%s: a database exists (error_if_exists is set)",
                          db->dir);
    if (rc != STOAT_ENOTFOUND)
        return rc;
    if (db->read_only || !db->opts.create_if_missing)
        return status_err(STOAT_ENOTFOUND, "%s: no stoat database here%s", db->dir,
                          db->read_only ? " (read-only open)" : " (create_if_missing is off)");
    st->next_file_id = 1;
    st->log_number = 0;
    st->last_version = 0;
    if ((rc = manifest_create(db->env, db->dir, db->opts.num_levels, st, &db->manifest)) != 0)
        return rc;
    if ((db->current = lsm_view_new_empty(db->opts.num_levels)) == NULL)
        return status_err(STOAT_ENOMEM, "out of memory creating the version set");
    return 0;
}

/* The value log and its discard counts. The counts are advisory: a
 * damaged DISCARD file is replaced by zero counts (GC then finds garbage
 * again as compaction goes), never a reason not to open. */
static int db_open_value_log(stoat_db *db)
{
    vlog_options vo = {.file_size = db->opts.value_log_file_size, .read_only = db->read_only,
                       .shared = db->opts.multi_process,
                       .compression = db->opts.value_log_compression,
                       .zstd_level = db->opts.zstd_level};
    int rc;

    if ((rc = vlog_open(db->env, db->dir, &vo, &db->vlog)) != 0)
        return rc;
    rc = discard_open(db->env, db->dir, db->read_only, &db->disc);
    if (rc == STOAT_ECORRUPT && !db->read_only) {
        char *path = env_join(db->dir, FILENAME_DISCARD);
        if (path == NULL)
            return status_err(STOAT_ENOMEM, "out of memory");
        rc = env_remove(db->env, path);
        free(path);
        if (rc == 0)
            rc = discard_open(db->env, db->dir, db->read_only, &db->disc);
    }
    return rc;
}

/* A process joining a multi-process database: the value log as the first
 * process recovered it (shared_open.c). */
static int db_open_value_log_shared(stoat_db *db)
{
    vlog_options vo = {.file_size = db->opts.value_log_file_size, .shared = 1, .attach = 1,
                       .compression = db->opts.value_log_compression,
                       .zstd_level = db->opts.zstd_level};
    int rc;

    if ((rc = vlog_open(db->env, db->dir, &vo, &db->vlog)) != 0)
        return rc;
    return discard_open(db->env, db->dir, 1, &db->disc);
}

static int db_recover(stoat_db *db)
{
    manifest_state st = {0};
    uint64_t max_version = 0;
    int rc;

    if ((rc = db_load_manifest(db, &st)) != 0)
        return rc;
    db->next_file_id = st.next_file_id ? st.next_file_id : 1;
    max_version = st.last_version;
    if ((rc = db_check_tables(db, &max_version)) != 0)
        return rc;
    if ((rc = db_open_value_log(db)) != 0)
        return rc;
    if ((rc = db_scan_dir(db, &st, &max_version)) != 0)
        return rc;
    db->next_version = max_version + 1;
    atomic_store(&db->last_version, max_version);
    if (db->read_only)
        return 0;
    rc = memtable_new(db->env, db->dir, db->next_file_id++,
                      db->opts.multi_process ? db_mp_arena_size(db->opts.memtable_size)
                                             : db->opts.memtable_size,
                      &db->mem);
    if (rc == 0)
        rc = env_sync_dir(db->env, db->dir);
    return rc;
}

static int db_alloc(const char *dir, const stoat_options *opts, env *e, stoat_db **out)
{
    stoat_db *db = calloc(1, sizeof(*db));

    *out = NULL;
    if (db == NULL || (db->dir = strdup(dir)) == NULL) {
        free(db);
        return status_err(STOAT_ENOMEM, "out of memory opening %s", dir);
    }
    db->opts = *opts;
    if (db->opts.max_txn_bytes == 0)
        db->opts.max_txn_bytes = db->opts.memtable_size / 2;
    db->opts.encryption_key = NULL;    /* the caller's memory: read once, by db_keys_open */
    db->env = e;
    db->base_env = e;
    db->read_only = opts->read_only != 0;
    if (db->read_only)      /* reads a snapshot of the files beside any writers */
        db->opts.multi_process = 0;
    db->fork_gen = db_fork_generation();
    pthread_mutex_init(&db->mu, NULL);
    pthread_mutex_init(&db->manifest_mu, NULL);
    pthread_mutex_init(&db->gc_mu, NULL);
    pthread_cond_init(&db->bg_cv, NULL);
    pthread_cond_init(&db->done_cv, NULL);
    pthread_cond_init(&db->arrive_cv, NULL);
    db->snapshots.next = db->snapshots.prev = &db->snapshots;
    db->lopts = (level_options){
        .num_levels = opts->num_levels,
        .base_level_size = opts->base_level_size,
        .level_size_multiplier = opts->level_size_multiplier,
        .table_size = opts->table_size,
        .l0_compaction_trigger = opts->l0_compaction_trigger,
    };
    db->sopts = (sst_options){
        .block_size = opts->block_size,
        .compression = opts->compression,
        .zstd_level = opts->zstd_level,
        .bloom_fp_rate = opts->bloom_fp_rate,
    };
    *out = db;
    return 0;
}

static void db_free(stoat_db *db)
{
    if (db == NULL)
        return;
    int owner = db_mp_is_owner(db);
    db_mp_close(db);    /* first: its keeper thread reads what follows */
    memtable_unref(db->mem);
    for (size_t i = 0; i < db->n_imm; i++)
        memtable_unref(db->imm[i]);
    free(db->imm);
    /* Tables the current version drops here are live: nothing is removed. */
    if (db->current)
        lsm_view_unref(db->current);
    manifest_close(db->manifest);
    if (db->disc && !db->read_only && owner)
        discard_save(db->disc);
    discard_close(db->disc);
    vlog_close(db->vlog);
    free(db->vlog_ikeys);
    free(db->vlog_vals);
    free(db->vlog_ptrs);
    buf_free(&db->vlog_keys);
    free(db->gc_pending);
    free(db->gc_damaged);
    pthread_mutex_destroy(&db->gc_mu);
    table_cache_free(db->tc);
    block_cache_free(db->bc);
    env_unlock(db->base_env, db->lock);
    if (db->env != db->base_env)
        crypt_env_free(db->env);
    key_registry_close(db->kr);     /* wipes the keys */
    buf_free(&db->wal_payload);
    oracle_free(&db->oracle);
    pthread_mutex_destroy(&db->mu);
    pthread_mutex_destroy(&db->manifest_mu);
    pthread_cond_destroy(&db->bg_cv);
    pthread_cond_destroy(&db->done_cv);
    pthread_cond_destroy(&db->arrive_cv);
    free(db->dir);
    free(db);
}

static int db_lock_dir(stoat_db *db)
{
    char *path;
    int rc;

    if (!db->read_only && db->opts.create_if_missing && (rc = env_mkdir(db->env, db->dir)) != 0)
        return rc;
    if ((path = env_join(db->dir, FILENAME_LOCK)) == NULL)
        return status_err(STOAT_ENOMEM, "out of memory");
    /* Without create_if_missing, touch nothing where no database is. */
    if ((db->read_only || !db->opts.create_if_missing) && (rc = env_exists(db->env, path)) <= 0) {
        free(path);
        if (rc < 0)
            return rc;
        return status_err(STOAT_ENOTFOUND, "%s: no stoat database here%s", db->dir,
                          db->read_only ? " (read-only open)" : " (create_if_missing is off)");
    }
    /* Multi-process handles share the lock; a single-process writer
     * excludes them all (and they it). */
    for (uint32_t waited = 0;; waited += 10) {
        rc = env_lock(db->env, path, !db->read_only && !db->opts.multi_process, &db->lock);
        if (rc != STOAT_EBUSY || waited >= db->opts.open_timeout_ms)
            break;
        usleep(10000);
    }
    free(path);
    return rc;
}

/* 1 when dir/name exists, 0 when not, or an error. */
static int db_has_file(stoat_db *db, const char *name)
{
    char *path = env_join(db->dir, name);
    int rc = path ? env_exists(db->base_env, path) : status_err(STOAT_ENOMEM, "out of memory");

    free(path);
    return rc;
}

/* STOAT_EKEY for a master key the registry refused (its check value
 * differs: the file itself passed its checksum). */
static int db_wrong_key(const char *dir)
{
    return status_err(STOAT_EKEY, "%s: wrong encryption key", dir);
}

/*
 * Encryption at rest: with a key, opens the key registry (creating it for
 * a new database) and puts the crypt env in front of every file; without
 * one, refuses an encrypted database. Runs under LOCK, before anything
 * else is read or written: a failure here modifies nothing (a new
 * database gets its registry first, before any file that needs it).
 */
static int db_keys_open(stoat_db *db, const stoat_options *opts)
{
    const uint8_t *key = opts->encryption_key;
    int has_reg, has_db, rc;

    if ((has_reg = db_has_file(db, FILENAME_KEYREGISTRY)) < 0 ||
        (has_db = db_has_file(db, FILENAME_MANIFEST)) < 0)
        return has_reg < 0 ? has_reg : has_db;
    if (key == NULL) {
        if (has_reg)
            return status_err(STOAT_EKEY, "%s: the database is encrypted and no "
                              "encryption_key was given", db->dir);
        return 0;
    }
    if (!has_reg && has_db)
        return status_err(STOAT_EKEY, "%s: an encryption_key was given but the database is "
                          "not encrypted", db->dir);
    if (!has_reg && (db->read_only || !opts->create_if_missing))
        return 0;   /* no database: the open fails further on, as without a key */
    rc = key_registry_open_or_create(db->base_env, db->dir, key,
                                     opts->encryption_key_rotation_ms, stoat_clock_ms(),
                                     !db->read_only, &db->kr);
    if (rc == STOAT_EINVAL)
        return db_wrong_key(db->dir);
    if (rc != 0)
        return rc;
    return crypt_env_new(db->base_env, db->kr, &db->env);
}

int db_open_env(const char *dir, const stoat_options *opts, env *e, stoat_db **out)
{
    stoat_options defaults;
    stoat_db *db = NULL;
    int rc;

    if (out == NULL)
        return status_err(STOAT_EINVAL, "stoat_open: out is NULL");
    *out = NULL;
    if (dir == NULL || *dir == '\0')
        return status_err(STOAT_EINVAL, "stoat_open: no directory given");
    if (opts == NULL) {
        stoat_options_init(&defaults);
        opts = &defaults;
    }
    if ((rc = db_options_check(opts)) != 0)
        return rc;
    if ((rc = db_alloc(dir, opts, e, &db)) != 0)
        return rc;
    if ((rc = db_lock_dir(db)) != 0 || (rc = db_keys_open(db, opts)) != 0)
        goto fail;
    if ((rc = block_cache_new(opts->cache_size, &db->bc)) != 0)
        goto fail;
    if ((rc = table_cache_new(db->env, db->dir, opts->max_open_files, db->bc, &db->tc)) != 0)
        goto fail;
    if (db->opts.multi_process) {
        if ((rc = db_mp_open(db, db_recover)) != 0)
            goto fail;
        if (db->vlog == NULL && (rc = db_open_value_log_shared(db)) != 0)
            goto fail;
        /* The keeper reads db->vlog: it starts once the handle is whole. */
        if ((rc = db_mp_start(db)) != 0)
            goto fail;
        if ((rc = db_flush_compact_start(db)) != 0 || (rc = db_vlog_gc_start(db)) != 0)
            goto fail;
    } else {
        if ((rc = db_recover(db)) != 0)
            goto fail;
        if (!db->read_only &&
            ((rc = db_flush_compact_start(db)) != 0 || (rc = db_vlog_gc_start(db)) != 0))
            goto fail;
    }
    *out = db;
    return 0;
fail:
    {
        char msg[STATUS_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", status_msg());
        db_vlog_gc_stop(db);
        db_flush_compact_stop(db);     /* sets closing: threads that started end */
        db_free(db);
        status_set_msg(msg);
    }
    return rc;
}

int stoat_open(const char *dir, const stoat_options *opts, stoat_db **out)
{
    return db_open_env(dir, opts, env_posix(), out);
}

int stoat_close(stoat_db *db)
{
    int rc;

    if (db == NULL)
        return 0;
    if ((rc = db_check_handle(db)) != 0)
        return rc;
    pthread_mutex_lock(&db->mu);
    if (db->open_iters > 0) {
        int n = db->open_iters;
        pthread_mutex_unlock(&db->mu);
        return status_err(STOAT_EBUSY, "stoat_close: %d iterator(s) or transaction(s) still open",
                          n);
    }
    db->closing = 1;
    pthread_cond_broadcast(&db->bg_cv);
    pthread_cond_broadcast(&db->done_cv);
    while (db->writers_head != NULL)
        pthread_cond_wait(&db->done_cv, &db->mu);
    pthread_mutex_unlock(&db->mu);
    db_vlog_gc_stop(db);
    db_flush_compact_stop(db);
    db_vlog_gc_reap(db);     /* what the last readers' releases let go */
    rc = db->bg_error;
    if (rc != 0) {
        status_set_msg(db->bg_msg);
    } else if (db->mem != NULL && memtable_count(db->mem) > 0) {
        if ((rc = vlog_sync(db->vlog)) == 0)
            rc = memtable_sync(db->mem);
    }
    db_free(db);
    return rc;
}

int stoat_rotate_key(stoat_db *db)
{
    uint64_t id;
    int rc;

    if (db == NULL)
        return status_err(STOAT_EINVAL, "stoat_rotate_key: db is NULL");
    if ((rc = db_check_handle(db)) != 0)
        return rc;
    if (db->kr == NULL)
        return status_err(STOAT_ENOTSUP, "%s: the database is not encrypted", db->dir);
    if (db->read_only)
        return status_err(STOAT_EREADONLY, "%s: opened read-only", db->dir);
    return key_registry_rotate(db->kr, stoat_clock_ms(), &id);
}

int stoat_rekey(const char *dir, const uint8_t *old_key, const uint8_t *new_key)
{
    env *e = env_posix();
    struct env_lock *lock = NULL;
    key_registry *kr = NULL;
    char *path;
    int rc;

    if (dir == NULL || old_key == NULL || new_key == NULL)
        return status_err(STOAT_EINVAL, "stoat_rekey: NULL argument");
    if ((path = env_join(dir, FILENAME_MANIFEST)) == NULL)
        return status_err(STOAT_ENOMEM, "out of memory");
    rc = env_exists(e, path);
    free(path);
    if (rc <= 0)
        return rc < 0 ? rc : status_err(STOAT_EINVAL, "%s: no stoat database here", dir);
    /* Closed everywhere: an open handle would write the old wrapping back
     * when it next rotates. */
    if ((path = env_join(dir, FILENAME_LOCK)) == NULL)
        return status_err(STOAT_ENOMEM, "out of memory");
    rc = env_lock(e, path, 1, &lock);
    free(path);
    if (rc == STOAT_EBUSY)
        return status_err(rc, "%s: the database is open; stoat_rekey needs it closed", dir);
    if (rc != 0)
        return rc;
    rc = key_registry_open(e, dir, old_key, 0, &kr);
    if (rc == STOAT_ENOTFOUND)
        rc = status_err(STOAT_EKEY, "%s: the database is not encrypted", dir);
    else if (rc == STOAT_EINVAL)
        rc = db_wrong_key(dir);
    else if (rc == 0)
        rc = key_registry_rekey(kr, new_key);
    key_registry_close(kr);
    env_unlock(e, lock);
    return rc;
}
