/*
 * stats.c - stoat_stats_get: one consistent look at the database's
 * shape and counters, taken under db->mu.
 */
#include <stdlib.h>
#include <string.h>

#include "db/state.h"
#include "base/status.h"
#include "env/filename.h"

/* Multi-process mode: the value log is every process's, and this handle
 * knows only the files it wrote or read: count the files on disk. */
static void stats_vlog_files_on_disk(stoat_db *db, stoat_stats *out)
{
    char **names = NULL;
    size_t n = 0;

    if (env_list(db->env, db->dir, &names, &n) != 0)
        return;
    out->vlog_files = 0;
    out->vlog_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t id, size = 0;
        env_file *f = NULL;
        char *path;

        if (!filename_parse(names[i], FILENAME_EXT_VLOG, 0, &id) ||
            (path = env_join(db->dir, names[i])) == NULL)
            continue;
        if (env_open(db->env, path, ENV_READ, &f) == 0 && env_file_size(f, &size) == 0) {
            out->vlog_files++;
            out->vlog_bytes += size;
        }
        env_close(f);
        free(path);
    }
    env_list_free(names, n);
}

int stoat_stats_get(stoat_db *db, stoat_stats *out)
{
    block_cache_stats bcs;
    const lsm_view *v;
    int rc;

    if (out == NULL)
        return status_err(STOAT_EINVAL, "stoat_stats_get: out is NULL");
    memset(out, 0, sizeof(*out));
    if ((rc = db_check_handle(db)) != 0)
        return rc;
    block_cache_get_stats(db->bc, &bcs);
    pthread_mutex_lock(&db->mu);
    v = db->current;
    out->num_levels = v->num_levels;
    for (int l = 0; l < v->num_levels && l < STOAT_STATS_LEVELS; l++) {
        out->level_tables[l] = v->n[l];
        out->level_bytes[l] = lsm_view_level_bytes(v, l);
    }
    for (int l = 0; l < v->num_levels; l++)
        for (size_t i = 0; i < v->n[l]; i++) {
            out->table_entries += v->tables[l][i]->num_entries;
            out->table_deletions += v->tables[l][i]->num_deletions;
        }
    out->memtables = db->n_imm + (db->mem != NULL);
    for (size_t i = 0; i < db->n_imm; i++) {
        out->memtable_bytes += memtable_arena_used(db->imm[i]);
        out->memtable_entries += memtable_count(db->imm[i]);
    }
    if (db->mem) {
        out->memtable_bytes += memtable_arena_used(db->mem);
        out->memtable_entries += memtable_count(db->mem);
    }
    out->last_version = atomic_load(&db->last_version);
    out->flushes = db->stat_flushes;
    out->compactions = db->stat_compactions;
    out->stall_micros = db->stat_stall_micros;
    out->txn_commits = db->stat_commits;
    out->txn_conflicts = db->stat_conflicts;
    pthread_mutex_unlock(&db->mu);
    out->block_cache_bytes = bcs.usage;
    out->block_cache_capacity = bcs.capacity;
    out->block_cache_hits = bcs.hits;
    out->block_cache_misses = bcs.misses;
    out->open_files = (uint64_t)table_cache_open_count(db->tc);
    if (db->mp != NULL && db->mp->sc != NULL) {
        shared_cache_stats scs;

        shared_cache_get_stats(db->mp->sc, &scs);
        out->shared_cache_bytes = scs.bytes;
        out->shared_cache_hits = scs.hits;
        out->shared_cache_misses = scs.misses;
    }
    if (db->vlog != NULL) {
        uint32_t *fids = NULL;
        size_t n = 0;
        if (vlog_files(db->vlog, &fids, &n) == 0) {
            out->vlog_files = n;
            for (size_t i = 0; i < n; i++)
                out->vlog_bytes += vlog_file_size(db->vlog, fids[i]);
            free(fids);
        }
        out->vlog_garbage_bytes = discard_total(db->disc);
        out->open_files += (uint64_t)vlog_open_count(db->vlog);
        if (db->mp != NULL)
            stats_vlog_files_on_disk(db, out);
    }
    return 0;
}
