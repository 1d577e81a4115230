/*
 * ingest_build.c - the tables of a bulk load (ingest.c): entries encoded
 * into chunks, each built into one SSTable by the loader's worker threads,
 * and the check that a key range holds no data.
 *
 * Tables are built by INGEST_WORKERS threads, in parallel: the caller's
 * thread encodes entries into a chunk (the entries of one table,
 * chunk_size bytes at most: table_size, 16 MiB if less) and hands each
 * full chunk to the workers; chunks are collected in the order they were
 * filled, so ib->tables stays in key order. At most INGEST_CHUNKS chunks
 * exist (the one filling, the rest queued or building), so a load holds
 * at most INGEST_CHUNKS x chunk_size bytes; a caller faster than the
 * workers waits for the oldest. A built table's key range is checked at
 * once (ingest_check_range), so that a load into a range holding data
 * fails early rather than at the end. Each table is fsynced by its
 * builder.
 *
 * Threads: a builder belongs to its loader's thread; the workers share
 * the chunks with it, their states under ib->mu (a chunk's bytes belong
 * to the caller while FREE, to one worker while BUILDING).
 */
#include <stdlib.h>
#include <string.h>

#include "db/ingest_build.h"
#include "db/read.h"
#include "db/state.h"
#include "base/ikey.h"
#include "base/status.h"
#include "base/vec.h"
#include "table/sst_builder.h"

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

int ingest_check_range(stoat_db *db, slice lo, slice hi)
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
    ingest_builder *ib = arg;

    pthread_mutex_lock(&ib->mu);
    for (;;) {
        ingest_chunk *c = &ib->chunks[ib->build_seq % INGEST_CHUNKS];
        int rc;

        while (!ib->stop && c->state != CHUNK_QUEUED) {
            pthread_cond_wait(&ib->cv, &ib->mu);
            c = &ib->chunks[ib->build_seq % INGEST_CHUNKS];
        }
        if (ib->stop)
            break;
        c->state = CHUNK_BUILDING;
        ib->build_seq++;
        pthread_mutex_unlock(&ib->mu);
        rc = ingest_build(ib->db, c);
        pthread_mutex_lock(&ib->mu);
        c->rc = rc;
        if (rc != 0)
            snprintf(c->msg, sizeof(c->msg), "%s", status_msg());
        c->state = CHUNK_DONE;
        pthread_cond_broadcast(&ib->cv);
    }
    pthread_mutex_unlock(&ib->mu);
    return NULL;
}

static int ingest_start_workers(ingest_builder *ib)
{
    int rc;

    while (ib->n_workers < INGEST_WORKERS) {
        if ((rc = pthread_create(&ib->workers[ib->n_workers], NULL, ingest_worker_main, ib)) != 0)
            return status_err(STOAT_ENOMEM, "cannot start a bulk load thread (error %d)", rc);
        ib->n_workers++;
    }
    return 0;
}

/* Stops the workers once the chunks they are building are built (chunks
 * still queued stay unbuilt). */
static void ingest_stop_workers(ingest_builder *ib)
{
    pthread_mutex_lock(&ib->mu);
    ib->stop = 1;
    pthread_cond_broadcast(&ib->cv);
    pthread_mutex_unlock(&ib->mu);
    for (int i = 0; i < ib->n_workers; i++)
        pthread_join(ib->workers[i], NULL);
    ib->n_workers = 0;
}

/* Waits for the oldest chunk handed out, takes its table into
 * ib->tables (or its failure) and frees the chunk. */
static int ingest_collect(ingest_builder *ib)
{
    ingest_chunk *c = &ib->chunks[ib->collect_seq % INGEST_CHUNKS];
    int rc;

    pthread_mutex_lock(&ib->mu);
    while (c->state != CHUNK_DONE)
        pthread_cond_wait(&ib->cv, &ib->mu);
    c->state = CHUNK_FREE;
    pthread_mutex_unlock(&ib->mu);
    ib->collect_seq++;
    buf_reset(&c->data);
    if (c->t != NULL) {
        if (VEC_ROOM(ib->tables, ib->n_tables, ib->cap_tables, 8) != 0) {
            table_meta_unref(c->t);
            c->t = NULL;
            return status_err(STOAT_ENOMEM, "out of memory finishing a table");
        }
        ib->tables[ib->n_tables++] = c->t;
        c->t = NULL;
    }
    if ((rc = c->rc) != 0)
        status_set_msg(c->msg);
    return rc;
}

/* Hands the chunk being filled to the workers. */
static int ingest_submit(ingest_builder *ib)
{
    ingest_chunk *c = &ib->chunks[ib->fill_seq % INGEST_CHUNKS];
    int rc, busy;

    if (c->data.len == 0)
        return 0;
    if ((rc = ingest_start_workers(ib)) != 0)
        return rc;
    c->id = db_new_file_id(ib->db);
    pthread_mutex_lock(&ib->mu);
    c->state = CHUNK_QUEUED;
    ib->fill_seq++;
    pthread_cond_broadcast(&ib->cv);
    busy = ib->chunks[ib->fill_seq % INGEST_CHUNKS].state != CHUNK_FREE;
    pthread_mutex_unlock(&ib->mu);
    /* The next chunk to fill must be free: collect the oldest first. */
    return busy ? ingest_collect(ib) : 0;
}

int ingest_builder_put(ingest_builder *ib, slice ukey, const vstruct *vs)
{
    ingest_chunk *c = &ib->chunks[ib->fill_seq % INGEST_CHUNKS];
    size_t kl = ukey.len + IKEY_SUFFIX_LEN, vl = vstruct_encoded_len(vs);
    char *p;
    int rc;

    if (c->data.cap == 0 && (rc = buf_reserve(&c->data, ib->chunk_size + (64u << 10))) != 0)
        return rc;     /* once: no regrowth copying a whole chunk */
    if ((rc = buf_reserve(&c->data, 8 + kl + vl)) != 0)
        return rc;
    p = c->data.data + c->data.len;
    put_fixed32(p, (uint32_t)kl);
    put_fixed32(p + 4, (uint32_t)vl);
    ikey_encode(p + 8, ukey.data, ukey.len, ib->version);
    vstruct_encode(p + 8 + kl, vs);
    c->data.len += 8 + kl + vl;
    if (c->data.len >= ib->chunk_size)
        return ingest_submit(ib);
    return 0;
}

void ingest_builder_init(ingest_builder *ib, stoat_db *db, uint64_t version)
{
    *ib = (ingest_builder){.db = db, .version = version};
    pthread_mutex_init(&ib->mu, NULL);
    pthread_cond_init(&ib->cv, NULL);
    ib->chunk_size = db->opts.table_size < INGEST_CHUNK_MAX ? db->opts.table_size
                                                            : INGEST_CHUNK_MAX;
}

int ingest_builder_finish(ingest_builder *ib)
{
    int rc = ingest_submit(ib);

    while (rc == 0 && ib->collect_seq < ib->fill_seq)
        rc = ingest_collect(ib);
    return rc;
}

void ingest_builder_stop(ingest_builder *ib)
{
    ingest_stop_workers(ib);
    for (int i = 0; i < INGEST_CHUNKS; i++) {
        ingest_chunk *c = &ib->chunks[i];
        if (c->t != NULL && VEC_ROOM(ib->tables, ib->n_tables, ib->cap_tables, 8) == 0)
            ib->tables[ib->n_tables++] = c->t;   /* built, never collected */
        else if (c->t != NULL)
            table_meta_unref(c->t);             /* its file goes at the next open */
        c->t = NULL;
        buf_free(&c->data);
    }
    pthread_mutex_destroy(&ib->mu);
    pthread_cond_destroy(&ib->cv);
}
