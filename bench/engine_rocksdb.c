/*
 * engine_rocksdb.c - the RocksDB adapter (rocksdb/c.h, Debian's
 * librocksdb-dev).
 *
 * Settings: RocksDB's default options (64 MB write buffer, 32 MB block
 * cache, Snappy compression, max_background_jobs 2: one flush and one
 * compaction thread, which increase_parallelism(2) would not change) plus
 * create_if_missing and, unless --bloom_bits < 0, a full bloom filter of
 * --bloom_bits bits per key (10 by default, as for LevelDB). Durability:
 * WriteOptions.sync follows engine_config.sync (the WAL is fsynced once per
 * write or batch when 1).
 *
 * Gets use rocksdb_get_pinned, RocksDB's cheapest read through the C API
 * (the value stays pinned in the block cache until copied out). The
 * database handle is thread-safe; a session owns its write batch.
 */
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine.h"

#ifndef BENCH_ROCKSDB_VERSION
#define BENCH_ROCKSDB_VERSION "unknown"
#endif

struct engine_db {
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
};

struct engine_session {
    engine_db *db;
    rocksdb_writebatch_t *batch;
};

struct engine_iter {
    rocksdb_iterator_t *it;
};

/* Turns RocksDB's malloc'd error string (if any) into the thread's message. */
static int rocks_check(const char *what, char *err)
{
    if (err == NULL)
        return ENGINE_OK;
    engine_error("rocksdb %s: %s", what, err);
    rocksdb_free(err);
    return ENGINE_ERR;
}

static void rocks_describe(const engine_config *cfg, char *buf, size_t len)
{
    char bloom[48] = "no bloom filter";

    if (cfg->bloom_bits >= 0)
        snprintf(bloom, sizeof bloom, "full bloom filter %d bits/key", cfg->bloom_bits);
    snprintf(buf, len, "version %s; default options (64 MB write buffer, 32 MB cache, "
             "snappy, 2 background jobs), %s, %s", BENCH_ROCKSDB_VERSION, bloom,
             cfg->sync ? "sync writes" : "no sync");
}

static int rocks_close(engine_db *db)
{
    if (db == NULL)
        return ENGINE_OK;
    if (db->db)
        rocksdb_close(db->db);
    if (db->options)
        rocksdb_options_destroy(db->options);
    if (db->ropts)
        rocksdb_readoptions_destroy(db->ropts);
    if (db->wopts)
        rocksdb_writeoptions_destroy(db->wopts);
    free(db);
    return ENGINE_OK;
}

static rocksdb_options_t *rocks_options(const engine_config *cfg)
{
    rocksdb_options_t *o = rocksdb_options_create();

    rocksdb_options_set_create_if_missing(o, 1);
    if (cfg->bloom_bits >= 0) {
        rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();

        /* The table options take ownership of the policy; the options
         * copy the table options. */
        rocksdb_block_based_options_set_filter_policy(
            t, rocksdb_filterpolicy_create_bloom_full(cfg->bloom_bits));
        rocksdb_options_set_block_based_table_factory(o, t);
        rocksdb_block_based_options_destroy(t);
    }
    return o;
}

static int rocks_open(const engine_config *cfg, engine_db **out)
{
    engine_db *db = calloc(1, sizeof *db);
    char *err = NULL;

    *out = NULL;
    if (db == NULL)
        return engine_error("out of memory");
    db->options = rocks_options(cfg);
    db->ropts = rocksdb_readoptions_create();
    db->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(db->wopts, (unsigned char)cfg->sync);
    db->db = rocksdb_open(db->options, cfg->dir, &err);
    if (rocks_check("open", err) != ENGINE_OK) {
        rocks_close(db);
        return ENGINE_ERR;
    }
    *out = db;
    return ENGINE_OK;
}

static int rocks_sync(engine_db *db)
{
    char *err = NULL;

    rocksdb_flush_wal(db->db, 1, &err);
    return rocks_check("flush_wal", err);
}

static int rocks_session_open(engine_db *db, engine_session **out)
{
    engine_session *s = calloc(1, sizeof *s);

    *out = s;
    if (s == NULL)
        return engine_error("out of memory");
    s->db = db;
    s->batch = rocksdb_writebatch_create();
    return ENGINE_OK;
}

static void rocks_session_close(engine_session *s)
{
    if (s) {
        rocksdb_writebatch_destroy(s->batch);
        free(s);
    }
}

static int rocks_put(engine_session *s, const void *key, size_t klen,
                     const void *val, size_t vlen)
{
    char *err = NULL;

    rocksdb_put(s->db->db, s->db->wopts, key, klen, val, vlen, &err);
    return rocks_check("put", err);
}

static int rocks_del(engine_session *s, const void *key, size_t klen)
{
    char *err = NULL;

    rocksdb_delete(s->db->db, s->db->wopts, key, klen, &err);
    return rocks_check("delete", err);
}

static int rocks_get(engine_session *s, const void *key, size_t klen, engine_buf *val)
{
    rocksdb_pinnableslice_t *ps;
    const char *v;
    char *err = NULL;
    size_t vlen = 0;
    int rc;

    ps = rocksdb_get_pinned(s->db->db, s->db->ropts, key, klen, &err);
    if (rocks_check("get", err) != ENGINE_OK)
        return ENGINE_ERR;
    if (ps == NULL)
        return ENGINE_NOTFOUND;
    v = rocksdb_pinnableslice_value(ps, &vlen);
    rc = engine_buf_set(val, v, vlen);
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

static int rocks_batch_begin(engine_session *s)
{
    rocksdb_writebatch_clear(s->batch);
    return ENGINE_OK;
}

static int rocks_batch_put(engine_session *s, const void *key, size_t klen,
                           const void *val, size_t vlen)
{
    rocksdb_writebatch_put(s->batch, key, klen, val, vlen);
    return ENGINE_OK;
}

static int rocks_batch_del(engine_session *s, const void *key, size_t klen)
{
    rocksdb_writebatch_delete(s->batch, key, klen);
    return ENGINE_OK;
}

static int rocks_batch_commit(engine_session *s)
{
    char *err = NULL;

    rocksdb_write(s->db->db, s->db->wopts, s->batch, &err);
    rocksdb_writebatch_clear(s->batch);
    return rocks_check("write", err);
}

static int rocks_iter_open(engine_session *s, engine_iter **out)
{
    engine_iter *it = malloc(sizeof *it);

    *out = it;
    if (it == NULL)
        return engine_error("out of memory");
    it->it = rocksdb_create_iterator(s->db->db, s->db->ropts);
    return ENGINE_OK;
}

/* After a move: an invalid iterator may hide an error. */
static int rocks_iter_status(engine_iter *it)
{
    char *err = NULL;

    if (rocksdb_iter_valid(it->it))
        return ENGINE_OK;
    rocksdb_iter_get_error(it->it, &err);
    return rocks_check("iterator", err);
}

static int rocks_iter_seek_first(engine_iter *it)
{
    rocksdb_iter_seek_to_first(it->it);
    return rocks_iter_status(it);
}

static int rocks_iter_seek_last(engine_iter *it)
{
    rocksdb_iter_seek_to_last(it->it);
    return rocks_iter_status(it);
}

static int rocks_iter_seek(engine_iter *it, const void *key, size_t klen)
{
    rocksdb_iter_seek(it->it, key, klen);
    return rocks_iter_status(it);
}

static int rocks_iter_next(engine_iter *it)
{
    rocksdb_iter_next(it->it);
    return rocks_iter_status(it);
}

static int rocks_iter_prev(engine_iter *it)
{
    rocksdb_iter_prev(it->it);
    return rocks_iter_status(it);
}

static int rocks_iter_valid(engine_iter *it)
{
    return rocksdb_iter_valid(it->it) != 0;
}

static int rocks_iter_key(engine_iter *it, const void **key, size_t *klen)
{
    *key = rocksdb_iter_key(it->it, klen);
    return ENGINE_OK;
}

static int rocks_iter_value(engine_iter *it, const void **val, size_t *vlen)
{
    *val = rocksdb_iter_value(it->it, vlen);
    return ENGINE_OK;
}

static void rocks_iter_close(engine_iter *it)
{
    if (it) {
        rocksdb_iter_destroy(it->it);
        free(it);
    }
}

const engine_ops engine = {
    .name = "rocksdb",
    .marker = "CURRENT",
    .describe = rocks_describe,
    .open = rocks_open,
    .close = rocks_close,
    .sync = rocks_sync,
    .session_open = rocks_session_open,
    .session_close = rocks_session_close,
    .put = rocks_put,
    .del = rocks_del,
    .get = rocks_get,
    .batch_begin = rocks_batch_begin,
    .batch_put = rocks_batch_put,
    .batch_del = rocks_batch_del,
    .batch_commit = rocks_batch_commit,
    .iter_open = rocks_iter_open,
    .iter_seek_first = rocks_iter_seek_first,
    .iter_seek_last = rocks_iter_seek_last,
    .iter_seek = rocks_iter_seek,
    .iter_next = rocks_iter_next,
    .iter_prev = rocks_iter_prev,
    .iter_valid = rocks_iter_valid,
    .iter_key = rocks_iter_key,
    .iter_value = rocks_iter_value,
    .iter_close = rocks_iter_close,
};
