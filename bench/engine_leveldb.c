/*
 * engine_leveldb.c - the LevelDB adapter (leveldb/c.h, Debian's
 * libleveldb-dev, built with Snappy).
 *
 * Settings: LevelDB's default options (4 MB write buffer, 8 MB block cache,
 * 4 KB blocks, Snappy compression, 1000 open files) plus create_if_missing
 * and, unless --bloom_bits < 0, a bloom filter of --bloom_bits bits per key
 * (10 by default, about stoat's default 1% false positives; LevelDB's
 * documentation recommends one but does not turn it on). Durability:
 * WriteOptions.sync follows engine_config.sync, so sync=1 fsyncs the log
 * once per write or batch.
 *
 * The database handle is thread-safe; a session only owns its write batch,
 * used by one thread.
 */
#include <leveldb/c.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine.h"

struct engine_db {
    leveldb_t *db;
    leveldb_options_t *options;
    leveldb_filterpolicy_t *filter;
    leveldb_readoptions_t *ropts;
    leveldb_writeoptions_t *wopts;
    leveldb_writeoptions_t *sync_wopts;   /* for engine.sync */
};

struct engine_session {
    engine_db *db;
    leveldb_writebatch_t *batch;
};

struct engine_iter {
    leveldb_iterator_t *it;
};

/* Turns LevelDB's malloc'd error string (if any) into the thread's message. */
static int ldb_check(const char *what, char *err)
{
    if (err == NULL)
        return ENGINE_OK;
    engine_error("leveldb %s: %s", what, err);
    leveldb_free(err);
    return ENGINE_ERR;
}

static void ldb_describe(const engine_config *cfg, char *buf, size_t len)
{
    char bloom[48] = "no bloom filter";

    if (cfg->bloom_bits >= 0)
        snprintf(bloom, sizeof bloom, "bloom filter %d bits/key", cfg->bloom_bits);
    snprintf(buf, len, "version %d.%d; default options (4 MB write buffer, 8 MB cache, "
             "snappy), %s, %s", leveldb_major_version(), leveldb_minor_version(),
             bloom, cfg->sync ? "sync writes" : "no sync");
}

static int ldb_close(engine_db *db)
{
    if (db == NULL)
        return ENGINE_OK;
    if (db->db)
        leveldb_close(db->db);
    if (db->options)
        leveldb_options_destroy(db->options);
    if (db->filter)
        leveldb_filterpolicy_destroy(db->filter);
    if (db->ropts)
        leveldb_readoptions_destroy(db->ropts);
    if (db->wopts)
        leveldb_writeoptions_destroy(db->wopts);
    if (db->sync_wopts)
        leveldb_writeoptions_destroy(db->sync_wopts);
    free(db);
    return ENGINE_OK;
}

static int ldb_open(const engine_config *cfg, engine_db **out)
{
    engine_db *db = calloc(1, sizeof *db);
    char *err = NULL;

    *out = NULL;
    if (db == NULL)
        return engine_error("out of memory");
    db->options = leveldb_options_create();
    leveldb_options_set_create_if_missing(db->options, 1);
    if (cfg->bloom_bits >= 0) {
        db->filter = leveldb_filterpolicy_create_bloom(cfg->bloom_bits);
        leveldb_options_set_filter_policy(db->options, db->filter);
    }
    db->ropts = leveldb_readoptions_create();
    db->wopts = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(db->wopts, (unsigned char)cfg->sync);
    db->sync_wopts = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(db->sync_wopts, 1);
    db->db = leveldb_open(db->options, cfg->dir, &err);
    if (ldb_check("open", err) != ENGINE_OK) {
        ldb_close(db);
        return ENGINE_ERR;
    }
    *out = db;
    return ENGINE_OK;
}

/* LevelDB has no fsync call: an empty synced write syncs its log. */
static int ldb_sync(engine_db *db)
{
    leveldb_writebatch_t *batch = leveldb_writebatch_create();
    char *err = NULL;

    leveldb_write(db->db, db->sync_wopts, batch, &err);
    leveldb_writebatch_destroy(batch);
    return ldb_check("sync", err);
}

static int ldb_session_open(engine_db *db, engine_session **out)
{
    engine_session *s = calloc(1, sizeof *s);

    *out = s;
    if (s == NULL)
        return engine_error("out of memory");
    s->db = db;
    s->batch = leveldb_writebatch_create();
    return ENGINE_OK;
}

static void ldb_session_close(engine_session *s)
{
    if (s) {
        leveldb_writebatch_destroy(s->batch);
        free(s);
    }
}

static int ldb_put(engine_session *s, const void *key, size_t klen,
                           const void *val, size_t vlen)
{
    char *err = NULL;

    leveldb_put(s->db->db, s->db->wopts, key, klen, val, vlen, &err);
    return ldb_check("put", err);
}

static int ldb_del(engine_session *s, const void *key, size_t klen)
{
    char *err = NULL;

    leveldb_delete(s->db->db, s->db->wopts, key, klen, &err);
    return ldb_check("delete", err);
}

static int ldb_get(engine_session *s, const void *key, size_t klen, engine_buf *val)
{
    char *err = NULL, *v;
    size_t vlen = 0;
    int rc;

    v = leveldb_get(s->db->db, s->db->ropts, key, klen, &vlen, &err);
    if (ldb_check("get", err) != ENGINE_OK)
        return ENGINE_ERR;
    if (v == NULL)
        return ENGINE_NOTFOUND;
    rc = engine_buf_set(val, v, vlen);
    leveldb_free(v);
    return rc;
}

static int ldb_batch_begin(engine_session *s)
{
    leveldb_writebatch_clear(s->batch);
    return ENGINE_OK;
}

static int ldb_batch_put(engine_session *s, const void *key, size_t klen,
                             const void *val, size_t vlen)
{
    leveldb_writebatch_put(s->batch, key, klen, val, vlen);
    return ENGINE_OK;
}

static int ldb_batch_del(engine_session *s, const void *key, size_t klen)
{
    leveldb_writebatch_delete(s->batch, key, klen);
    return ENGINE_OK;
}

static int ldb_batch_commit(engine_session *s)
{
    char *err = NULL;

    leveldb_write(s->db->db, s->db->wopts, s->batch, &err);
    leveldb_writebatch_clear(s->batch);
    return ldb_check("write", err);
}

static int ldb_iter_open(engine_session *s, engine_iter **out)
{
    engine_iter *it = malloc(sizeof *it);

    *out = it;
    if (it == NULL)
        return engine_error("out of memory");
    it->it = leveldb_create_iterator(s->db->db, s->db->ropts);
    return ENGINE_OK;
}

/* After a move: an invalid iterator may hide an error. */
static int ldb_iter_status(engine_iter *it)
{
    char *err = NULL;

    if (leveldb_iter_valid(it->it))
        return ENGINE_OK;
    leveldb_iter_get_error(it->it, &err);
    return ldb_check("iterator", err);
}

static int ldb_iter_seek_first(engine_iter *it)
{
    leveldb_iter_seek_to_first(it->it);
    return ldb_iter_status(it);
}

static int ldb_iter_seek_last(engine_iter *it)
{
    leveldb_iter_seek_to_last(it->it);
    return ldb_iter_status(it);
}

static int ldb_iter_seek(engine_iter *it, const void *key, size_t klen)
{
    leveldb_iter_seek(it->it, key, klen);
    return ldb_iter_status(it);
}

static int ldb_iter_next(engine_iter *it)
{
    leveldb_iter_next(it->it);
    return ldb_iter_status(it);
}

static int ldb_iter_prev(engine_iter *it)
{
    leveldb_iter_prev(it->it);
    return ldb_iter_status(it);
}

static int ldb_iter_valid(engine_iter *it)
{
    return leveldb_iter_valid(it->it) != 0;
}

static int ldb_iter_key(engine_iter *it, const void **key, size_t *klen)
{
    *key = leveldb_iter_key(it->it, klen);
    return ENGINE_OK;
}

static int ldb_iter_value(engine_iter *it, const void **val, size_t *vlen)
{
    *val = leveldb_iter_value(it->it, vlen);
    return ENGINE_OK;
}

static void ldb_iter_close(engine_iter *it)
{
    if (it) {
        leveldb_iter_destroy(it->it);
        free(it);
    }
}

const engine_ops engine = {
    .name = "leveldb",
    .marker = "CURRENT",
    .describe = ldb_describe,
    .open = ldb_open,
    .close = ldb_close,
    .sync = ldb_sync,
    .session_open = ldb_session_open,
    .session_close = ldb_session_close,
    .put = ldb_put,
    .del = ldb_del,
    .get = ldb_get,
    .batch_begin = ldb_batch_begin,
    .batch_put = ldb_batch_put,
    .batch_del = ldb_batch_del,
    .batch_commit = ldb_batch_commit,
    .iter_open = ldb_iter_open,
    .iter_seek_first = ldb_iter_seek_first,
    .iter_seek_last = ldb_iter_seek_last,
    .iter_seek = ldb_iter_seek,
    .iter_next = ldb_iter_next,
    .iter_prev = ldb_iter_prev,
    .iter_valid = ldb_iter_valid,
    .iter_key = ldb_iter_key,
    .iter_value = ldb_iter_value,
    .iter_close = ldb_iter_close,
};
