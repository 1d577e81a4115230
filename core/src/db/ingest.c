/*
 * ingest.c - bulk loads (stoat_loader_*): entries in strictly increasing
 * key order written straight into SSTables and installed as one commit
 * (Badger's StreamWriter, RocksDB's ingestion of external files).
 *
 * Building. Each entry gets the loader's version; values of
 * value_threshold bytes or more are appended to the value log in batches
 * (entries wait in `pend` until their batch has pointers, so tables
 * still receive them in order); every entry, its value inline or as a
 * pointer, then goes to the table builder of ingest_build.c: chunks of
 * entries built into tables by two worker threads while the caller fills
 * the next one, each table's range checked as soon as it is built.
 *
 * The version. Every entry carries it, so it is fixed when the load
 * begins; yet no snapshot may exist at or above it before the tables are
 * installed (it would see them appear). So it is reserved ahead:
 * next_version + 2^32 (db_version_reserve), and commits that run during
 * the load take versions below it. Finish runs as an exclusive writer
 * (db_write_exclusive: no write in flight, none starting) that publishes
 * the reserved version once the tables are in: snapshots before see
 * nothing, snapshots after see everything. Recovery needs nothing more:
 * the tables' max_version brings next_version past it at open.
 * Transactions begun before the load and committing after it must
 * conflict if they read a loaded key, as with any commit: when snapshots
 * are registered at finish, the loaded keys are recorded in the oracle
 * (read back from the new tables; pruned once those snapshots end).
 *
 * Installing (ingest_install, in the exclusive writer): compactions are
 * paused, automatic ones (manual_compaction) and stoat_flatten's
 * (db->ingesting), and running ones waited for, so that no level changes
 * under the choice below and no compaction output lands over it; any entry at
 * any version (tombstones included) in [first, last] of the memtables or
 * tables refuses the load (STOAT_EEXIST): an older version in a shallower
 * source would hide the new one from reads, which stop at the first
 * source holding the key (read.c). The level is the deepest one where no
 * table's bounds overlap [first, last] (such a table can only straddle
 * the whole range, since no key lies inside it), L0 if none; one MANIFEST
 * edit adds every table (db_install_edit).
 *
 * Several processes (multi_process). A bulk load runs in the background
 * owner only (the install edits the MANIFEST, which only the owner
 * writes; elsewhere stoat_loader_new says busy, naming it). Its values go
 * to the shared value log under the commit lock (db_mp_vlog_append), and
 * the install runs under it too (db_mp_exclusive_begin/_end, shared.c):
 * no process commits meanwhile, this handle has applied every published
 * commit before the range check, and the load's version is published
 * after the MANIFEST generation, so a process that reads at it has the
 * tables. The other processes' oracles never see the loaded keys (no WAL
 * record holds them): their transactions begun before the load that read
 * conflict (the shared load floor).
 *
 * Failure and crash. Until the edit is logged nothing refers to the new
 * tables: abort and failed finishes remove them, and the next open
 * removes those a crash left (open.c removes tables the MANIFEST does not
 * list). Values already appended stay in the value log as garbage: abort
 * counts them in the discard statistics (a crash cannot), so GC reclaims
 * them. While any loader is open value-log GC picks no file
 * (db->gc_holds): its values have no LSM entry yet and would look like
 * garbage.
 *
 * Threads: a loader belongs to one thread at a time (its builder's
 * workers share only the chunks with it). It takes db->mu only briefly (open/close counts, the install). An open loader
 * counts as an open handle (db->open_iters): stoat_close refuses
 * meanwhile.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "db/flush_compact.h"
#include "db/ingest_build.h"
#include "db/shared.h"
#include "db/state.h"
#include "db/write.h"
#include "base/ikey.h"
#include "base/perturb.h"
#include "base/status.h"
#include "base/vec.h"

/* How far ahead of the next commit a load's version is reserved. */
#define INGEST_VERSION_AHEAD (1ull << 32)
/* Entries and bytes waiting for one value-log batch at most. */
#define INGEST_PEND_MAX 1024
#define INGEST_PEND_BYTES (4u << 20)

/* An entry waiting for its value-log pointer (or behind one that is). */
typedef struct pend_entry {
    size_t koff, voff;      /* into pend_data */
    uint32_t klen, vlen;
    uint64_t expires_at;
    uint8_t user_meta;
    uint8_t big;            /* goes to the value log */
} pend_entry;

/* Value-log bytes the load appended to one file (garbage if it fails). */
typedef struct vlog_use {
    uint32_t fid;
    uint64_t bytes;
} vlog_use;

struct stoat_loader {
    stoat_db *db;
    uint64_t version;
    int rc;                         /* first failure (sticky), with its message */
    char msg[STATUS_MSG_MAX];
    int installed;                  /* 1 installed, -1 install failed (files stay) */

    ingest_builder b;               /* its tables (ingest_build.c) */

    buf first, last;                /* first and last user keys added */
    uint64_t n;                     /* entries added */

    pend_entry *pend;
    size_t n_pend, cap_pend;
    buf pend_data;
    size_t n_big;                   /* big entries in pend */
    slice *vk, *vv;                 /* a value-log batch */
    vptr *vp;
    size_t cap_v;
    buf vkeys;
    vlog_use *used;
    size_t n_used, cap_used;
};

static _Atomic uint64_t ingest_serial;

/* Records a failure that dooms the loader; returns rc. */
static int ingest_fail(stoat_loader *ld, int rc)
{
    if (ld->rc == 0 && rc != 0) {
        ld->rc = rc;
        snprintf(ld->msg, sizeof(ld->msg), "%s", status_msg());
    }
    return rc;
}

static int ingest_reserve_batch(stoat_loader *ld, size_t n, size_t key_bytes)
{
    if (n > ld->cap_v) {
        free(ld->vk);
        free(ld->vv);
        free(ld->vp);
        ld->vk = malloc(n * sizeof(*ld->vk));
        ld->vv = malloc(n * sizeof(*ld->vv));
        ld->vp = malloc(n * sizeof(*ld->vp));
        ld->cap_v = n;
        if (ld->vk == NULL || ld->vv == NULL || ld->vp == NULL) {
            ld->cap_v = 0;
            return status_err(STOAT_ENOMEM, "out of memory writing to the value log");
        }
    }
    buf_reset(&ld->vkeys);
    return buf_reserve(&ld->vkeys, key_bytes);
}

static int ingest_count_vlog(stoat_loader *ld, const vptr *p)
{
    if (ld->n_used > 0 && ld->used[ld->n_used - 1].fid == p->fid) {
        ld->used[ld->n_used - 1].bytes += p->len;
        return 0;
    }
    if (VEC_ROOM(ld->used, ld->n_used, ld->cap_used, 4) != 0)
        return status_err(STOAT_ENOMEM, "out of memory writing to the value log");
    ld->used[ld->n_used++] = (vlog_use){p->fid, p->len};
    return 0;
}

/* Appends the waiting big values in one batch, then puts every waiting
 * entry into the table in order. */
static int ingest_flush_pend(stoat_loader *ld)
{
    size_t nb = 0, key_bytes = 0, j = 0;
    int rc;

    if (ld->n_pend == 0)
        return 0;
    for (size_t i = 0; i < ld->n_pend; i++)
        if (ld->pend[i].big)
            key_bytes += ld->pend[i].klen + IKEY_SUFFIX_LEN;
    if ((rc = ingest_reserve_batch(ld, ld->n_big, key_bytes)) != 0)
        return rc;
    for (size_t i = 0; i < ld->n_pend; i++) {
        const pend_entry *e = &ld->pend[i];
        char *k = ld->vkeys.data + ld->vkeys.len;
        if (!e->big)
            continue;
        ld->vkeys.len += ikey_encode(k, ld->pend_data.data + e->koff, e->klen, ld->version);
        ld->vk[nb] = slice_make(k, e->klen + IKEY_SUFFIX_LEN);
        ld->vv[nb++] = slice_make(ld->pend_data.data + e->voff, e->vlen);
    }
    if (ld->db->mp != NULL)
        rc = db_mp_vlog_append(ld->db, ld->vk, ld->vv, nb, ld->vp);
    else
        rc = vlog_append_batch(ld->db->vlog, ld->vk, ld->vv, nb, ld->vp);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < nb; i++)
        if ((rc = ingest_count_vlog(ld, &ld->vp[i])) != 0)
            return rc;
    for (size_t i = 0; i < ld->n_pend && rc == 0; i++) {
        const pend_entry *e = &ld->pend[i];
        char ptr[VPTR_LEN];
        vstruct vs = {0, e->user_meta, e->expires_at,
                      slice_make(ld->pend_data.data + e->voff, e->vlen)};
        if (e->big) {
            vptr_encode(ptr, &ld->vp[j++]);
            vs.meta = VMETA_VPTR;
            vs.value = slice_make(ptr, VPTR_LEN);
        }
        rc = ingest_builder_put(&ld->b, slice_make(ld->pend_data.data + e->koff, e->klen), &vs);
    }
    ld->n_pend = 0;
    ld->n_big = 0;
    buf_reset(&ld->pend_data);
    return rc;
}

static int ingest_pend(stoat_loader *ld, slice key, slice val, uint64_t expires_at,
                       uint8_t user_meta, int big)
{
    pend_entry *e;
    int rc;

    if (VEC_ROOM(ld->pend, ld->n_pend, ld->cap_pend, 64) != 0)
        return status_err(STOAT_ENOMEM, "out of memory in a bulk load");
    e = &ld->pend[ld->n_pend];
    *e = (pend_entry){.koff = ld->pend_data.len, .klen = (uint32_t)key.len,
                      .voff = ld->pend_data.len + key.len, .vlen = (uint32_t)val.len,
                      .expires_at = expires_at, .user_meta = user_meta, .big = (uint8_t)big};
    if ((rc = buf_append(&ld->pend_data, key.data, key.len)) != 0 ||
        (rc = buf_append(&ld->pend_data, val.data, val.len)) != 0)
        return rc;
    ld->n_pend++;
    ld->n_big += big != 0;
    if (ld->n_pend >= INGEST_PEND_MAX || ld->pend_data.len >= INGEST_PEND_BYTES)
        return ingest_flush_pend(ld);
    return 0;
}

/* ---- installing ---- */

/* Records the loaded keys as a commit at the load's version, so that
 * transactions begun before it that read them conflict. Only when
 * snapshots are registered: the oracle forgets commits no snapshot is
 * older than. */
static int ingest_record_oracle(stoat_loader *ld)
{
    stoat_db *db = ld->db;
    slice *keys = NULL;
    size_t *offs = NULL, n = 0;
    uint64_t total = 0;
    buf data = {0};
    int rc = 0, any;

    pthread_mutex_lock(&db->mu);
    any = db->snapshots.next != &db->snapshots;
    pthread_mutex_unlock(&db->mu);
    if (!any)
        return 0;
    for (size_t i = 0; i < ld->b.n_tables; i++)
        total += ld->b.tables[i]->num_entries;
    keys = malloc((total ? total : 1) * sizeof(*keys));
    offs = malloc((total ? total : 1) * sizeof(*offs));
    if (keys == NULL || offs == NULL)
        rc = status_err(STOAT_ENOMEM, "out of memory recording a bulk load");
    for (size_t i = 0; i < ld->b.n_tables && rc == 0; i++) {
        sst_reader *r;
        iter *it;

        if ((rc = table_cache_get(db->tc, ld->b.tables[i]->id, &r)) != 0)
            break;
        if ((it = sst_reader_iter(r)) == NULL) {
            sst_reader_unref(r);
            rc = status_err(STOAT_ENOMEM, "out of memory recording a bulk load");
            break;
        }
        for (iter_seek_first(it); rc == 0 && iter_valid(it) && n < total; iter_next(it)) {
            slice uk = ikey_user(iter_key(it));
            offs[n] = data.len;
            keys[n++].len = uk.len;
            rc = buf_append(&data, uk.data, uk.len);
        }
        if (rc == 0)
            rc = iter_status(it);
        iter_free(it);
        sst_reader_unref(r);
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        keys[i].data = data.data + offs[i];   /* data no longer moves */
    if (rc == 0) {
        pthread_mutex_lock(&db->mu);
        if (oracle_record(&db->oracle, ld->version, keys, n) != 0)
            rc = status_err(STOAT_ENOMEM, "out of memory recording a bulk load");
        pthread_mutex_unlock(&db->mu);
    }
    free(keys);
    free(offs);
    buf_free(&data);
    return rc;
}

/* The deepest level of L1+ where no table's bounds overlap [lo, hi];
 * 0 (L0, where tables may overlap) when there is none. */
static int ingest_pick_level(stoat_db *db, slice lo, slice hi, int *level)
{
    lsm_view *v;
    int rc = 0;

    pthread_mutex_lock(&db->mu);
    v = db->current;
    lsm_view_ref(v);
    pthread_mutex_unlock(&db->mu);
    *level = 0;
    for (int l = v->num_levels - 1; l >= 1; l--) {
        table_meta **ts = NULL;
        size_t n = 0;

        if ((rc = lsm_view_overlapping(v, l, lo, hi, &ts, &n)) != 0)
            break;
        free(ts);
        if (n == 0) {
            *level = l;
            break;
        }
    }
    lsm_view_unref(v);
    return rc;
}

static int ingest_add_to_edit(stoat_loader *ld, lsm_edit *edit, int level)
{
    int rc = 0;

    for (size_t i = 0; i < ld->b.n_tables && rc == 0; i++)
        rc = lsm_edit_add(edit, level, ld->b.tables[i]);
    return rc;
}

/* Runs as the exclusive writer (db_write_exclusive), without db->mu. */
static int ingest_install(stoat_db *db, void *arg)
{
    stoat_loader *ld = arg;
    slice lo = slice_make(ld->first.data, ld->first.len);
    slice hi = slice_make(ld->last.data, ld->last.len);
    lsm_edit edit;
    int level = 0, rc;

    pthread_mutex_lock(&db->mu);
    if ((rc = db_check_running_locked(db)) != 0) {
        pthread_mutex_unlock(&db->mu);
        return rc;
    }
    db->manual_compaction++;    /* automatic picks pause */
    db->ingesting++;            /* stoat_flatten's picks too */
    while (db->running_compactions > 0 && !db->bg_error)
        pthread_cond_wait(&db->done_cv, &db->mu);
    rc = db_check_running_locked(db);
    pthread_mutex_unlock(&db->mu);

    lsm_edit_init(&edit);
    if (rc == 0)
        rc = ingest_check_range(db, lo, hi);
    if (rc == 0)
        rc = ingest_pick_level(db, lo, hi, &level);
    PERTURB("ingest_level_picked");
    if (rc == 0)
        rc = ingest_record_oracle(ld);
    if (rc == 0)
        rc = ingest_add_to_edit(ld, &edit, level);
    if (rc == 0) {
        /* A failed install is sticky and may have logged the edit: the
         * files stay then (the next open removes them if not listed). */
        rc = db_install_edit(db, &edit);
        ld->installed = rc == 0 ? 1 : -1;
    }
    lsm_edit_free(&edit);

    pthread_mutex_lock(&db->mu);
    db->manual_compaction--;
    db->ingesting--;
    pthread_cond_broadcast(&db->bg_cv);
    pthread_cond_broadcast(&db->done_cv);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* ---- the loader ---- */

/* Frees ld; unless installed, removes its tables and counts its values
 * as garbage. Keeps the thread's message. */
static void ingest_free(stoat_loader *ld)
{
    stoat_db *db = ld->db;
    char msg[STATUS_MSG_MAX];

    snprintf(msg, sizeof(msg), "%s", status_msg());
    ingest_builder_stop(&ld->b);
    for (size_t i = 0; i < ld->b.n_tables; i++) {
        if (ld->installed == 0) {
            char *path = sst_path(db->dir, ld->b.tables[i]->id);
            table_cache_evict(db->tc, ld->b.tables[i]->id);
            if (path != NULL)
                env_remove(db->env, path);  /* else the next open removes it */
            free(path);
        }
        table_meta_unref(ld->b.tables[i]);
    }
    if (!ld->installed && ld->n_used > 0 && db->disc != NULL) {
        for (size_t i = 0; i < ld->n_used; i++)
            discard_add(db->disc, ld->used[i].fid, ld->used[i].bytes);
        discard_save(db->disc);     /* advisory: a lost count loses no data */
    }
    pthread_mutex_lock(&db->mu);
    db->open_iters--;
    db->gc_holds--;
    pthread_cond_broadcast(&db->bg_cv);
    pthread_mutex_unlock(&db->mu);
    free(ld->b.tables);
    buf_free(&ld->first);
    buf_free(&ld->last);
    free(ld->pend);
    buf_free(&ld->pend_data);
    free(ld->vk);
    free(ld->vv);
    free(ld->vp);
    buf_free(&ld->vkeys);
    free(ld->used);
    free(ld);
    status_set_msg(msg);
}

int stoat_loader_new(stoat_db *db, stoat_loader **out)
{
    stoat_loader *ld;
    uint64_t serial;
    int rc;

    if (out == NULL)
        return status_err(STOAT_EINVAL, "stoat_loader_new: out is NULL");
    *out = NULL;
    if ((rc = db_check_handle(db)) != 0 || (rc = db_check_writable(db)) != 0)
        return rc;
    if (!db_mp_is_owner(db))
        return status_err(STOAT_EBUSY, "%s: another process runs the background work (pid "
                          "%llu): bulk loads run there (they edit the MANIFEST), or once it "
                          "has closed", db->dir,
                          (unsigned long long)atomic_load(&db->mp->hdr->owner_pid));
    if ((ld = calloc(1, sizeof(*ld))) == NULL)
        return status_err(STOAT_ENOMEM, "out of memory starting a bulk load");
    ld->db = db;
    /* Loaders begun one after the other get growing versions. */
    serial = atomic_fetch_add(&ingest_serial, 1) & 0xffff;
    if ((ld->version = db_version_reserve(db, INGEST_VERSION_AHEAD + serial)) == 0) {
        free(ld);
        return status_err(STOAT_ETOOBIG, "stoat_loader_new: versions are exhausted");
    }
    ingest_builder_init(&ld->b, db, ld->version);
    pthread_mutex_lock(&db->mu);
    if ((rc = db_check_running_locked(db)) == 0) {
        db->open_iters++;
        db->gc_holds++;
    }
    pthread_mutex_unlock(&db->mu);
    if (rc != 0) {
        free(ld);
        return rc;
    }
    *out = ld;
    return 0;
}

/* 0, or why the entry is refused (the loader stays as it was). */
static int ingest_check_entry(stoat_loader *ld, const void *key, size_t klen, const void *val,
                              size_t vlen)
{
    char k[STATUS_KEY_MAX], prev[STATUS_KEY_MAX];
    int rc;

    if ((rc = db_check_key(key, klen)) != 0)
        return rc;
    if (vlen > STOAT_MAX_VALUE_SIZE)
        return status_err(STOAT_ETOOBIG, "value of %zu bytes is over the maximum of %u", vlen,
                          STOAT_MAX_VALUE_SIZE);
    if (vlen > 0 && val == NULL)
        return status_err(STOAT_EINVAL, "value is NULL");
    if (ld->n > 0 && slice_cmp(slice_make(key, klen), slice_make(ld->last.data, ld->last.len)) <= 0)
        return status_err(STOAT_EINVAL,
                          "bulk load: keys must be strictly increasing: %s came after %s",
                          status_key_str(key, klen, k),
                          status_key_str(ld->last.data, ld->last.len, prev));
    return 0;
}

int stoat_loader_add(stoat_loader *ld, const void *key, size_t klen, const void *val,
                     size_t vlen, uint64_t expires_at_ms, uint8_t user_meta)
{
    stoat_db *db;
    slice k = slice_make(key, klen), v = slice_make(val, vlen);
    int big, rc;

    if (ld == NULL)
        return status_err(STOAT_EINVAL, "stoat_loader_add: loader is NULL");
    db = ld->db;
    if ((rc = db_check_handle(db)) != 0)
        return rc;
    if (ld->rc != 0)
        return status_err(ld->rc, "bulk load failed earlier: %s", ld->msg);
    if ((rc = ingest_check_entry(ld, key, klen, val, vlen)) != 0)
        return rc;
    big = db->vlog != NULL && vlen >= db->opts.value_threshold;
    if (big || ld->n_pend > 0) {
        rc = ingest_pend(ld, k, v, expires_at_ms, user_meta, big);
    } else {
        vstruct vs = {0, user_meta, expires_at_ms, v};
        rc = ingest_builder_put(&ld->b, k, &vs);
    }
    if (rc == 0 && ld->n == 0)
        rc = buf_append(&ld->first, key, klen);
    if (rc == 0) {
        buf_reset(&ld->last);
        rc = buf_append(&ld->last, key, klen);
    }
    if (rc != 0)
        return ingest_fail(ld, rc);
    ld->n++;
    return 0;
}

int stoat_loader_finish(stoat_loader *ld, uint64_t *version)
{
    stoat_db *db;
    int rc;

    if (version != NULL)
        *version = 0;
    if (ld == NULL)
        return status_err(STOAT_EINVAL, "stoat_loader_finish: loader is NULL");
    db = ld->db;
    if ((rc = db_check_handle(db)) != 0)
        return rc;  /* a forked child must not touch the parent's loader */
    if (ld->rc != 0)
        rc = status_err(ld->rc, "bulk load failed earlier: %s", ld->msg);
    if (rc == 0)
        rc = ingest_flush_pend(ld);
    if (rc == 0)
        rc = ingest_builder_finish(&ld->b);
    if (rc == 0 && ld->b.n_tables > 0) {
        /* The values, then the tables (synced by their builder), must be
         * durable before the MANIFEST names them. */
        if (ld->n_used > 0)
            rc = vlog_sync(db->vlog);
        if (rc == 0)
            rc = db_write_exclusive(db, ld->version, ingest_install, ld);
        if (rc == 0 && version != NULL)
            *version = ld->version;
    }
    ingest_free(ld);
    return rc;
}

void stoat_loader_abort(stoat_loader *ld)
{
    if (ld == NULL || db_check_handle(ld->db) != 0)
        return;
    ingest_free(ld);
}
