/*
 * ingest.c - bulk loads (stoat_loader_*): entries in strictly increasing
 * key order written straight into SSTables and installed as one commit
 * (Badger's StreamWriter, RocksDB's ingestion of external files).
 *
 * Building. Each entry gets the loader's version; values of
 * value_threshold bytes or more are appended to the value log in batches
 * (entries wait in `pend` until their batch has pointers, so tables
 * still receive them in order) and the rest goes straight into the chunk
 * being filled: the encoded entries of one table, table_size bytes at
 * most. Full chunks are built into tables (the existing SST builder) by
 * two worker threads of the loader while the caller fills the next one,
 * and collected in order; so a load holds at most three chunks in memory
 * (3 x table_size). A built table's key range is checked against the
 * database at once, so that a load into a range holding data fails
 * early rather than at the end.
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
 * Failure and crash. Until the edit is logged nothing refers to the new
 * tables: abort and failed finishes remove them, and the next open
 * removes those a crash left (open.c removes tables the MANIFEST does not
 * list). Values already appended stay in the value log as garbage: abort
 * counts them in the discard statistics (a crash cannot), so GC reclaims
 * them. While any loader is open value-log GC picks no file
 * (db->gc_holds): its values have no LSM entry yet and would look like
 * garbage.
 *
 * Threads: a loader belongs to one thread at a time; its workers share
 * only the chunks with it (their states under the loader's mu). It takes
 * db->mu only briefly (open/close counts, the install). An open loader
 * counts as an open handle (db->open_iters): stoat_close refuses
 * meanwhile.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "db/flush_compact.h"
#include "db/read.h"
#include "db/state.h"
#include "db/write.h"
#include "base/ikey.h"
#include "base/perturb.h"
#include "base/status.h"
#include "base/vec.h"
#include "table/sst_builder.h"

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

/* The entries of one table, built by a worker (see ingest_build). */
typedef struct ingest_chunk {
    buf data;
    int state;                      /* CHUNK_*, under the loader's mu */
    uint64_t id;                    /* table id */
    table_meta *t;                  /* the built table */
    int rc;                         /* its failure, with its message */
    char msg[STATUS_MSG_MAX];
} ingest_chunk;

#define INGEST_WORKERS 2
#define INGEST_CHUNKS (INGEST_WORKERS + 1)
/* Bytes of entries a chunk (a table) holds at most, table_size if less. */
#ifndef INGEST_CHUNK_MAX
#define INGEST_CHUNK_MAX (16u << 20)
#endif

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

    ingest_chunk chunks[INGEST_CHUNKS];
    uint64_t fill_seq;              /* chunks handed to the workers so far */
    uint64_t build_seq;             /* ... taken by a worker (mu) */
    uint64_t collect_seq;           /* ... collected */
    pthread_t workers[INGEST_WORKERS];
    int n_workers;
    int stop;                       /* mu */
    pthread_mutex_t mu;             /* chunk states, build_seq, stop */
    pthread_cond_t cv;
    table_meta **tables;            /* finished tables, in key order */
    size_t n_tables, cap_tables;
    uint64_t chunk_size;            /* a chunk (a table) holds this many bytes at most */

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

/* ---- the range check ---- */

/* 1 when it (positioned by a seek to lo) is on an entry <= hi, 0 when
 * not, or an error. */
static int ingest_iter_hit(iter *it, slice hi)
{
    if (iter_valid(it))
        return slice_cmp(ikey_user(iter_key(it)), hi) <= 0;
    return iter_status(it);
}

static int ingest_table_has(stoat_db *db, uint64_t id, slice target, slice hi)
{
    sst_reader *r;
    iter *it;
    int rc;

    if ((rc = table_cache_get(db->tc, id, &r)) != 0)
        return rc;
    if ((it = sst_reader_iter(r)) == NULL) {
        sst_reader_unref(r);
        return status_err(STOAT_ENOMEM, "out of memory checking a bulk load's range");
    }
    iter_seek(it, target);
    rc = ingest_iter_hit(it, hi);
    iter_free(it);
    sst_reader_unref(r);
    return rc;
}

/*
 * 1 when the memtables or tables hold any entry (any version, tombstones
 * too) with a user key in [lo, hi], 0 when none, or an error; *where
 * names the first source found.
 */
static int ingest_range_has_data(stoat_db *db, slice lo, slice hi, char *where, size_t wlen)
{
    read_view rv;
    buf target = {0};
    int rc;

    if ((rc = buf_reserve(&target, lo.len + IKEY_SUFFIX_LEN)) != 0)
        return rc;
    target.len = ikey_encode(target.data, lo.data, lo.len, IKEY_VERSION_MAX);
    if ((rc = read_view_pin(db, &rv, DB_READ_LATEST, NULL)) != 0) {
        buf_free(&target);
        return rc;
    }
    for (size_t i = 0; i < rv.n_mems && rc == 0; i++) {
        iter *it = memtable_iter(rv.mems[i]);
        if (it == NULL) {
            rc = status_err(STOAT_ENOMEM, "out of memory checking a bulk load's range");
            break;
        }
        iter_seek(it, slice_make(target.data, target.len));
        if ((rc = ingest_iter_hit(it, hi)) == 1)
            snprintf(where, wlen, "a memtable");
        iter_free(it);
    }
    for (int l = 0; l < rv.v->num_levels && rc == 0; l++) {
        table_meta **ts = NULL;
        size_t n = 0;

        rc = lsm_view_overlapping(rv.v, l, lo, hi, &ts, &n);
        for (size_t i = 0; i < n && rc == 0; i++) {
            rc = ingest_table_has(db, ts[i]->id, slice_make(target.data, target.len), hi);
            if (rc == 1)
                snprintf(where, wlen, "table %06llu.sst (L%d)", (unsigned long long)ts[i]->id, l);
        }
        free(ts);
    }
    read_view_unpin(&rv);
    buf_free(&target);
    return rc;
}

/* 0 when [lo, hi] holds no data, STOAT_EEXIST naming it, or an error. */
static int ingest_check_range(stoat_db *db, slice lo, slice hi)
{
    char where[64] = "", klo[STATUS_KEY_MAX], khi[STATUS_KEY_MAX];
    int rc = ingest_range_has_data(db, lo, hi, where, sizeof(where));

    if (rc != 1)
        return rc;
    return status_err(STOAT_EEXIST,
                      "bulk load: its key range %s..%s already holds data (in %s); a bulk load "
                      "goes into an empty database or an empty key range (deleted keys count "
                      "until compaction drops their tombstones: stoat_flatten)",
                      status_key_str(lo.data, lo.len, klo), status_key_str(hi.data, hi.len, khi),
                      where);
}

/* ---- building tables ---- */

/*
 * Tables are built by INGEST_WORKERS threads of the loader, in parallel:
 * the caller's thread encodes entries into a chunk (what one table will
 * hold) and hands each full chunk to the workers; chunks are collected
 * in the order they were filled, so ld->tables stays in key order. At
 * most INGEST_CHUNKS chunks exist (the one filling, the rest queued or
 * building): a caller faster than the workers waits for the oldest.
 */
enum { CHUNK_FREE, CHUNK_QUEUED, CHUNK_BUILDING, CHUNK_DONE };

/* Builds chunk c (entries: fixed32 klen | fixed32 vlen | ikey | value)
 * into table c->id; c->t gets it. Any thread. */
static int ingest_build(stoat_db *db, ingest_chunk *c)
{
    const char *p = c->data.data, *end = c->data.data + c->data.len;
    sst_builder *b = NULL;
    sst_props props = {0};
    char *path = sst_path(db->dir, c->id);
    int rc;

    if (path == NULL)
        return status_err(STOAT_ENOMEM, "out of memory writing a table");
    rc = sst_builder_new(db->env, path, &db->sopts, &b);
    free(path);
    while (rc == 0 && p < end) {
        uint32_t kl = get_fixed32(p), vl = get_fixed32(p + 4);
        rc = sst_builder_add(b, slice_make(p + 8, kl), slice_make(p + 8 + kl, vl));
        p += 8 + (size_t)kl + vl;
    }
    if (rc != 0) {
        sst_builder_abandon(b);
        return rc;
    }
    if ((rc = sst_builder_finish(b, &props)) != 0)
        return rc;
    c->t = table_meta_new(c->id, props.file_size,
                          slice_make(props.smallest.data, props.smallest.len),
                          slice_make(props.largest.data, props.largest.len));
    if (c->t == NULL) {
        sst_props_free(&props);
        return status_err(STOAT_ENOMEM, "out of memory finishing a table");
    }
    c->t->num_entries = props.num_entries;
    c->t->num_deletions = props.num_deletions;
    c->t->min_version = props.min_version;
    c->t->max_version = props.max_version;
    sst_props_free(&props);
    /* Checked at once: a load into a range holding data fails early. */
    return ingest_check_range(db, table_smallest_ukey(c->t), table_largest_ukey(c->t));
}

static void *ingest_worker_main(void *arg)
{
    stoat_loader *ld = arg;

    pthread_mutex_lock(&ld->mu);
    for (;;) {
        ingest_chunk *c = &ld->chunks[ld->build_seq % INGEST_CHUNKS];
        int rc;

        while (!ld->stop && c->state != CHUNK_QUEUED) {
            pthread_cond_wait(&ld->cv, &ld->mu);
            c = &ld->chunks[ld->build_seq % INGEST_CHUNKS];
        }
        if (ld->stop)
            break;
        c->state = CHUNK_BUILDING;
        ld->build_seq++;
        pthread_mutex_unlock(&ld->mu);
        rc = ingest_build(ld->db, c);
        pthread_mutex_lock(&ld->mu);
        c->rc = rc;
        if (rc != 0)
            snprintf(c->msg, sizeof(c->msg), "%s", status_msg());
        c->state = CHUNK_DONE;
        pthread_cond_broadcast(&ld->cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

static int ingest_start_workers(stoat_loader *ld)
{
    int rc;

    while (ld->n_workers < INGEST_WORKERS) {
        if ((rc = pthread_create(&ld->workers[ld->n_workers], NULL, ingest_worker_main, ld)) != 0)
            return status_err(STOAT_ENOMEM, "cannot start a bulk load thread (error %d)", rc);
        ld->n_workers++;
    }
    return 0;
}

/* Stops the workers once the chunks they are building are built (chunks
 * still queued stay unbuilt). */
static void ingest_stop_workers(stoat_loader *ld)
{
    pthread_mutex_lock(&ld->mu);
    ld->stop = 1;
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
    for (int i = 0; i < ld->n_workers; i++)
        pthread_join(ld->workers[i], NULL);
    ld->n_workers = 0;
}

/* Waits for the oldest chunk handed out, takes its table into
 * ld->tables (or its failure) and frees the chunk. */
static int ingest_collect(stoat_loader *ld)
{
    ingest_chunk *c = &ld->chunks[ld->collect_seq % INGEST_CHUNKS];
    int rc;

    pthread_mutex_lock(&ld->mu);
    while (c->state != CHUNK_DONE)
        pthread_cond_wait(&ld->cv, &ld->mu);
    c->state = CHUNK_FREE;
    pthread_mutex_unlock(&ld->mu);
    ld->collect_seq++;
    buf_reset(&c->data);
    if (c->t != NULL) {
        if (VEC_ROOM(ld->tables, ld->n_tables, ld->cap_tables, 8) != 0) {
            table_meta_unref(c->t);
            c->t = NULL;
            return status_err(STOAT_ENOMEM, "out of memory finishing a table");
        }
        ld->tables[ld->n_tables++] = c->t;   /* removed by ingest_free unless installed */
        c->t = NULL;
    }
    if ((rc = c->rc) != 0)
        status_set_msg(c->msg);
    return rc;
}

/* Hands the chunk being filled to the workers. */
static int ingest_submit(stoat_loader *ld)
{
    ingest_chunk *c = &ld->chunks[ld->fill_seq % INGEST_CHUNKS];
    int rc, busy;

    if (c->data.len == 0)
        return 0;
    if ((rc = ingest_start_workers(ld)) != 0)
        return rc;
    c->id = db_new_file_id(ld->db);
    pthread_mutex_lock(&ld->mu);
    c->state = CHUNK_QUEUED;
    ld->fill_seq++;
    pthread_cond_broadcast(&ld->cv);
    busy = ld->chunks[ld->fill_seq % INGEST_CHUNKS].state != CHUNK_FREE;
    pthread_mutex_unlock(&ld->mu);
    /* The next chunk to fill must be free: collect the oldest first. */
    return busy ? ingest_collect(ld) : 0;
}

/* Adds one entry (its value inline or a pointer) to the chunk filling. */
static int ingest_put(stoat_loader *ld, slice ukey, const vstruct *vs)
{
    ingest_chunk *c = &ld->chunks[ld->fill_seq % INGEST_CHUNKS];
    size_t kl = ukey.len + IKEY_SUFFIX_LEN, vl = vstruct_encoded_len(vs);
    char *p;
    int rc;

    if (c->data.cap == 0 && (rc = buf_reserve(&c->data, ld->chunk_size + (64u << 10))) != 0)
        return rc;     /* once: no regrowth copying a whole chunk */
    if ((rc = buf_reserve(&c->data, 8 + kl + vl)) != 0)
        return rc;
    p = c->data.data + c->data.len;
    put_fixed32(p, (uint32_t)kl);
    put_fixed32(p + 4, (uint32_t)vl);
    ikey_encode(p + 8, ukey.data, ukey.len, ld->version);
    vstruct_encode(p + 8 + kl, vs);
    c->data.len += 8 + kl + vl;
    if (c->data.len >= ld->chunk_size)
        return ingest_submit(ld);
    return 0;
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
    if ((rc = vlog_append_batch(ld->db->vlog, ld->vk, ld->vv, nb, ld->vp)) != 0)
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
        rc = ingest_put(ld, slice_make(ld->pend_data.data + e->koff, e->klen), &vs);
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
    for (size_t i = 0; i < ld->n_tables; i++)
        total += ld->tables[i]->num_entries;
    keys = malloc((total ? total : 1) * sizeof(*keys));
    offs = malloc((total ? total : 1) * sizeof(*offs));
    if (keys == NULL || offs == NULL)
        rc = status_err(STOAT_ENOMEM, "out of memory recording a bulk load");
    for (size_t i = 0; i < ld->n_tables && rc == 0; i++) {
        sst_reader *r;
        iter *it;

        if ((rc = table_cache_get(db->tc, ld->tables[i]->id, &r)) != 0)
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

    for (size_t i = 0; i < ld->n_tables && rc == 0; i++)
        rc = lsm_edit_add(edit, level, ld->tables[i]);
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
    ingest_stop_workers(ld);
    for (int i = 0; i < INGEST_CHUNKS; i++) {
        ingest_chunk *c = &ld->chunks[i];
        if (c->t != NULL && VEC_ROOM(ld->tables, ld->n_tables, ld->cap_tables, 8) == 0)
            ld->tables[ld->n_tables++] = c->t;   /* built, never collected: removed below */
        else if (c->t != NULL)
            table_meta_unref(c->t);             /* its file goes at the next open */
        buf_free(&c->data);
    }
    pthread_mutex_destroy(&ld->mu);
    pthread_cond_destroy(&ld->cv);
    for (size_t i = 0; i < ld->n_tables; i++) {
        if (ld->installed == 0) {
            char *path = sst_path(db->dir, ld->tables[i]->id);
            table_cache_evict(db->tc, ld->tables[i]->id);
            if (path != NULL)
                env_remove(db->env, path);  /* else the next open removes it */
            free(path);
        }
        table_meta_unref(ld->tables[i]);
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
    free(ld->tables);
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
    if ((ld = calloc(1, sizeof(*ld))) == NULL)
        return status_err(STOAT_ENOMEM, "out of memory starting a bulk load");
    ld->db = db;
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->cv, NULL);
    ld->chunk_size = db->opts.table_size < INGEST_CHUNK_MAX ? db->opts.table_size
                                                            : INGEST_CHUNK_MAX;
    /* Loaders begun one after the other get growing versions. */
    serial = atomic_fetch_add(&ingest_serial, 1) & 0xffff;
    if ((ld->version = db_version_reserve(db, INGEST_VERSION_AHEAD + serial)) == 0) {
        free(ld);
        return status_err(STOAT_ETOOBIG, "stoat_loader_new: versions are exhausted");
    }
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
        rc = ingest_put(ld, k, &vs);
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
        rc = ingest_submit(ld);
    while (rc == 0 && ld->collect_seq < ld->fill_seq)
        rc = ingest_collect(ld);
    if (rc == 0 && ld->n_tables > 0) {
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
