/*
 * engine_stoat.c - the stoat adapter (core/include/stoat.h).
 *
 * Settings: stoat's defaults from stoat_options_init (32 MiB memtables,
 * LZ4, 1% bloom filters, 256 MiB block cache, 2 compactors) plus
 * create_if_missing; --bloom_bits < 0 turns the bloom filter off as it does
 * for the peers, any other value keeps stoat's 1% (about 10 bits per key).
 * Durability: engine_config.sync selects STOAT_SYNC_COMMIT (each write is
 * fsynced, with group commit) or STOAT_SYNC_NONE. engine_config.multi_process
 * sets the multi_process option (--processes: several processes open the
 * directory at once).
 *
 * Batches: each session keeps one stoat_batch, reused from commit to
 * commit. stoat commits a batch in chunks of at most max_txn_entries /
 * max_txn_bytes (each chunk atomic), far above any --batch the benchmarks
 * use, so a benchmark batch is one atomic write with one durability wait.
 *
 * The stoat_db is thread-safe; a session and its batch belong to one
 * thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "stoat.h"

struct engine_db {
    stoat_db *db;
};

struct engine_session {
    stoat_db *db;
    stoat_batch *batch;
};

struct engine_iter {
    stoat_iter *it;
    stoat_db *db;
};

/* Records rc and stoat's detailed message; returns ENGINE_ERR. */
static int sto_fail(stoat_db *db, const char *what, int rc)
{
    const char *msg = stoat_errmsg(db);

    return engine_error("stoat %s: %s%s%s", what, stoat_strerror(rc),
                        *msg ? ": " : "", msg);
}

static void sto_describe(const engine_config *cfg, char *buf, size_t len)
{
    stoat_options o;

    stoat_options_init(&o);
    snprintf(buf, len, "version %s; default options (%llu MiB memtable, %s, %llu MiB "
             "cache, %d compactors), %s, %s", stoat_version(),
             (unsigned long long)(o.memtable_size >> 20),
             o.compression == STOAT_COMPRESSION_LZ4 ? "lz4" :
             o.compression == STOAT_COMPRESSION_ZSTD ? "zstd" : "no compression",
             (unsigned long long)(o.cache_size >> 20), o.num_compactors,
             cfg->bloom_bits < 0 ? "no bloom filter" : "bloom filter 1%",
             cfg->sync ? "sync writes" : "no sync");
    if (cfg->multi_process >= 0) {
        size_t used = strlen(buf);

        snprintf(buf + used, len - used, ", multi_process = %d", cfg->multi_process);
    }
    if (cfg->encrypt) {
        size_t used = strlen(buf);

        snprintf(buf + used, len - used, ", encrypted");
    }
}

/* --encrypt: a fixed key (benchmarks measure the cost, not the secrecy). */
static const uint8_t bench_key[STOAT_KEY_LEN] = "stoat benchmark key, not secret";

static int sto_open(const engine_config *cfg, engine_db **out)
{
    engine_db *db = calloc(1, sizeof *db);
    stoat_options o;
    int rc;

    *out = NULL;
    if (db == NULL)
        return engine_error("out of memory");
    stoat_options_init(&o);
    o.create_if_missing = 1;
    o.sync = cfg->sync ? STOAT_SYNC_COMMIT : STOAT_SYNC_NONE;
    if (cfg->bloom_bits < 0)
        o.bloom_fp_rate = 0;
    if (cfg->value_threshold > 0)
        o.value_threshold = (uint32_t)cfg->value_threshold;
    if (cfg->multi_process >= 0)
        o.multi_process = cfg->multi_process;
    if (cfg->encrypt)
        o.encryption_key = bench_key;
    if ((rc = stoat_open(cfg->dir, &o, &db->db)) != 0) {
        free(db);
        return sto_fail(NULL, "open", rc);
    }
    *out = db;
    return ENGINE_OK;
}

static int sto_close(engine_db *db)
{
    int rc;

    if (db == NULL)
        return ENGINE_OK;
    rc = stoat_close(db->db);
    free(db);
    return rc ? engine_error("stoat close: %s", stoat_strerror(rc)) : ENGINE_OK;
}

static int sto_sync(engine_db *db)
{
    int rc = stoat_sync(db->db);

    return rc ? sto_fail(db->db, "sync", rc) : ENGINE_OK;
}

/*
 * Done when no immutable memtable is left (in multi_process mode a
 * replica goes once the owner flushed it and this process reloaded the
 * MANIFEST) and the flush and compaction counts held still for
 * STO_SETTLE_QUIET polls in a row; gives up after STO_SETTLE_MAX_MS.
 */
#define STO_SETTLE_POLL_MS 20
#define STO_SETTLE_QUIET 10
#define STO_SETTLE_MAX_MS 60000

static int sto_settle(engine_db *db)
{
    struct timespec pause = { 0, STO_SETTLE_POLL_MS * 1000000L };
    uint64_t work = UINT64_MAX;
    int quiet = 0;

    for (int waited = 0; quiet < STO_SETTLE_QUIET && waited < STO_SETTLE_MAX_MS;
         waited += STO_SETTLE_POLL_MS) {
        stoat_stats st;
        int rc = stoat_stats_get(db->db, &st);

        if (rc != 0)
            return sto_fail(db->db, "stats_get", rc);
        quiet = st.memtables <= 1 && st.flushes + st.compactions == work ? quiet + 1 : 0;
        work = st.flushes + st.compactions;
        nanosleep(&pause, NULL);
    }
    return ENGINE_OK;
}

static int sto_session_open(engine_db *db, engine_session **out)
{
    engine_session *s = malloc(sizeof *s);
    int rc;

    *out = NULL;
    if (s == NULL)
        return engine_error("out of memory");
    s->db = db->db;
    if ((rc = stoat_batch_new(s->db, &s->batch)) != 0) {
        free(s);
        return sto_fail(db->db, "batch_new", rc);
    }
    *out = s;
    return ENGINE_OK;
}

static void sto_session_close(engine_session *s)
{
    if (s) {
        stoat_batch_free(s->batch);
        free(s);
    }
}

static int sto_put(engine_session *s, const void *key, size_t klen,
                         const void *val, size_t vlen)
{
    int rc = stoat_put(s->db, key, klen, val, vlen);

    return rc ? sto_fail(s->db, "put", rc) : ENGINE_OK;
}

static int sto_del(engine_session *s, const void *key, size_t klen)
{
    int rc = stoat_delete(s->db, key, klen);

    return rc ? sto_fail(s->db, "delete", rc) : ENGINE_OK;
}

static int sto_get(engine_session *s, const void *key, size_t klen, engine_buf *val)
{
    void *v = NULL;
    size_t vlen = 0;
    int rc = stoat_get(s->db, key, klen, &v, &vlen);

    if (rc == STOAT_ENOTFOUND)
        return ENGINE_NOTFOUND;
    if (rc != 0)
        return sto_fail(s->db, "get", rc);
    rc = engine_buf_set(val, v, vlen);
    stoat_free(v);
    return rc;
}

/* The session's batch is empty after each commit: nothing to begin. */
static int sto_batch_begin(engine_session *s)
{
    (void)s;
    return ENGINE_OK;
}

static int sto_batch_put(engine_session *s, const void *key, size_t klen,
                         const void *val, size_t vlen)
{
    int rc = stoat_batch_set(s->batch, key, klen, val, vlen);

    return rc ? sto_fail(s->db, "batch_set", rc) : ENGINE_OK;
}

static int sto_batch_del(engine_session *s, const void *key, size_t klen)
{
    int rc = stoat_batch_delete(s->batch, key, klen);

    return rc ? sto_fail(s->db, "batch_delete", rc) : ENGINE_OK;
}

static int sto_batch_commit(engine_session *s)
{
    int rc = stoat_batch_commit(s->batch);

    return rc ? sto_fail(s->db, "batch_commit", rc) : ENGINE_OK;
}

static int sto_iter_open(engine_session *s, engine_iter **out)
{
    engine_iter *it = malloc(sizeof *it);
    int rc;

    *out = NULL;
    if (it == NULL)
        return engine_error("out of memory");
    it->db = s->db;
    if ((rc = stoat_iter_open(s->db, NULL, &it->it)) != 0) {
        free(it);
        return sto_fail(s->db, "iter_open", rc);
    }
    *out = it;
    return ENGINE_OK;
}

/* Every move funnels through here: rc of the stoat call, named by what. */
static int sto_iter_moved(engine_iter *it, const char *what, int rc)
{
    return rc ? sto_fail(it->db, what, rc) : ENGINE_OK;
}

static int sto_iter_seek_first(engine_iter *it)
{
    return sto_iter_moved(it, "seek_first", stoat_iter_seek_first(it->it));
}

static int sto_iter_seek_last(engine_iter *it)
{
    return sto_iter_moved(it, "seek_last", stoat_iter_seek_last(it->it));
}

static int sto_iter_seek(engine_iter *it, const void *key, size_t klen)
{
    return sto_iter_moved(it, "seek", stoat_iter_seek(it->it, key, klen));
}

static int sto_iter_next(engine_iter *it)
{
    return sto_iter_moved(it, "next", stoat_iter_next(it->it));
}

static int sto_iter_prev(engine_iter *it)
{
    return sto_iter_moved(it, "prev", stoat_iter_prev(it->it));
}

static int sto_iter_valid(engine_iter *it)
{
    return stoat_iter_valid(it->it);
}

static int sto_iter_key(engine_iter *it, const void **key, size_t *klen)
{
    return sto_iter_moved(it, "iter_key", stoat_iter_key(it->it, key, klen));
}

static int sto_iter_value(engine_iter *it, const void **val, size_t *vlen)
{
    return sto_iter_moved(it, "iter_value", stoat_iter_value(it->it, val, vlen));
}

static void sto_iter_close(engine_iter *it)
{
    if (it) {
        stoat_iter_close(it->it);
        free(it);
    }
}

const engine_ops engine = {
    .name = "stoat",
    .marker = "MANIFEST",
    .describe = sto_describe,
    .open = sto_open,
    .close = sto_close,
    .sync = sto_sync,
    .settle = sto_settle,
    .session_open = sto_session_open,
    .session_close = sto_session_close,
    .put = sto_put,
    .del = sto_del,
    .get = sto_get,
    .batch_begin = sto_batch_begin,
    .batch_put = sto_batch_put,
    .batch_del = sto_batch_del,
    .batch_commit = sto_batch_commit,
    .iter_open = sto_iter_open,
    .iter_seek_first = sto_iter_seek_first,
    .iter_seek_last = sto_iter_seek_last,
    .iter_seek = sto_iter_seek,
    .iter_next = sto_iter_next,
    .iter_prev = sto_iter_prev,
    .iter_valid = sto_iter_valid,
    .iter_key = sto_iter_key,
    .iter_value = sto_iter_value,
    .iter_close = sto_iter_close,
};
