/*
 * engine_lmdb.c - the LMDB adapter (lmdb.h, Debian's liblmdb-dev).
 *
 * Settings: a 64 GiB map (sparse: the file only grows as pages are used),
 * MDB_NOTLS so that a thread may hold a read transaction for its gets and
 * others for its iterators at once, MDB_WRITEMAP off (LMDB's default: pages
 * are written with pwrite). Durability: sync=0 opens with MDB_NOSYNC |
 * MDB_NOMETASYNC (a commit is in the page cache, safe from a process
 * crash, as for the LSM engines without sync); sync=1 uses LMDB's default,
 * an fsync per commit.
 *
 * Every write is a write transaction: put is a transaction of one entry,
 * a batch one transaction of all its entries. LMDB serializes write
 * transactions with its own lock.
 *
 * Each session keeps a read transaction for gets, reset while idle and
 * renewed per get (cheap: the reader slot is kept), and one spare
 * transaction with a cursor that the next iterator reuses. Sessions belong
 * to one thread; the environment is shared.
 */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine.h"

#define LMDB_MAP_SIZE ((size_t)64 << 30)

struct engine_db {
    MDB_env *env;
    MDB_dbi dbi;
};

struct engine_iter {
    engine_session *s;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val key;
    MDB_val val;
    int valid;
};

struct engine_session {
    engine_db *db;
    MDB_txn *rtxn;          /* reset between gets; NULL until the first */
    MDB_txn *wtxn;          /* the open batch */
    engine_iter *spare;     /* a closed iterator kept for reuse */
};

static int lmdb_fail(const char *what, int rc)
{
    return engine_error("lmdb %s: %s", what, mdb_strerror(rc));
}

static void lmdb_describe(const engine_config *cfg, char *buf, size_t len)
{
    int major, minor, patch;

    mdb_version(&major, &minor, &patch);
    snprintf(buf, len, "version %d.%d.%d; map %zu GiB, MDB_NOTLS, no MDB_WRITEMAP, %s",
             major, minor, patch, LMDB_MAP_SIZE >> 30,
             cfg->sync ? "fsync per commit" : "MDB_NOSYNC|MDB_NOMETASYNC");
}

static int lmdb_close(engine_db *db)
{
    if (db) {
        mdb_env_close(db->env);
        free(db);
    }
    return ENGINE_OK;
}

static int lmdb_open(const engine_config *cfg, engine_db **out)
{
    unsigned flags = MDB_NOTLS | (cfg->sync ? 0 : MDB_NOSYNC | MDB_NOMETASYNC);
    engine_db *db = calloc(1, sizeof *db);
    MDB_txn *txn = NULL;
    int rc;

    *out = NULL;
    if (db == NULL)
        return engine_error("out of memory");
    if ((rc = mdb_env_create(&db->env)) != 0) {
        free(db);
        return lmdb_fail("env_create", rc);
    }
    if ((rc = mdb_env_set_mapsize(db->env, LMDB_MAP_SIZE)) != 0 ||
        (rc = mdb_env_set_maxreaders(db->env, (unsigned)(cfg->threads * 4 + 126))) != 0 ||
        (rc = mdb_env_open(db->env, cfg->dir, flags, 0644)) != 0 ||
        (rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, NULL, 0, &db->dbi)) != 0)
        goto fail;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        goto fail;
    *out = db;
    return ENGINE_OK;
fail:
    if (txn)
        mdb_txn_abort(txn);
    lmdb_close(db);
    return lmdb_fail("open", rc);
}

static int lmdb_sync(engine_db *db)
{
    int rc = mdb_env_sync(db->env, 1);

    return rc ? lmdb_fail("env_sync", rc) : ENGINE_OK;
}

static int lmdb_session_open(engine_db *db, engine_session **out)
{
    engine_session *s = calloc(1, sizeof *s);

    *out = s;
    if (s == NULL)
        return engine_error("out of memory");
    s->db = db;
    return ENGINE_OK;
}

static void lmdb_iter_free(engine_iter *it)
{
    if (it) {
        mdb_cursor_close(it->cur);
        mdb_txn_abort(it->txn);
        free(it);
    }
}

static void lmdb_session_close(engine_session *s)
{
    if (s == NULL)
        return;
    if (s->wtxn)
        mdb_txn_abort(s->wtxn);
    if (s->rtxn)
        mdb_txn_abort(s->rtxn);
    lmdb_iter_free(s->spare);
    free(s);
}

static int lmdb_put(engine_session *s, const void *key, size_t klen,
                    const void *val, size_t vlen)
{
    MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
    MDB_txn *txn;
    int rc;

    if ((rc = mdb_txn_begin(s->db->env, NULL, 0, &txn)) != 0)
        return lmdb_fail("txn_begin", rc);
    if ((rc = mdb_put(txn, s->db->dbi, &k, &v, 0)) != 0) {
        mdb_txn_abort(txn);
        return lmdb_fail("put", rc);
    }
    return (rc = mdb_txn_commit(txn)) ? lmdb_fail("commit", rc) : ENGINE_OK;
}

static int lmdb_del(engine_session *s, const void *key, size_t klen)
{
    MDB_val k = { klen, (void *)key };
    MDB_txn *txn;
    int rc;

    if ((rc = mdb_txn_begin(s->db->env, NULL, 0, &txn)) != 0)
        return lmdb_fail("txn_begin", rc);
    if ((rc = mdb_del(txn, s->db->dbi, &k, NULL)) != 0 && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return lmdb_fail("del", rc);
    }
    return (rc = mdb_txn_commit(txn)) ? lmdb_fail("commit", rc) : ENGINE_OK;
}

static int lmdb_get(engine_session *s, const void *key, size_t klen, engine_buf *val)
{
    MDB_val k = { klen, (void *)key }, v;
    int rc;

    rc = s->rtxn ? mdb_txn_renew(s->rtxn)
                 : mdb_txn_begin(s->db->env, NULL, MDB_RDONLY, &s->rtxn);
    if (rc != 0)
        return lmdb_fail("read txn", rc);
    rc = mdb_get(s->rtxn, s->db->dbi, &k, &v);
    if (rc == 0)
        rc = engine_buf_set(val, v.mv_data, v.mv_size) ? ENGINE_ERR : ENGINE_OK;
    else if (rc == MDB_NOTFOUND)
        rc = ENGINE_NOTFOUND;
    else
        rc = lmdb_fail("get", rc);
    mdb_txn_reset(s->rtxn);
    return rc;
}

static int lmdb_batch_begin(engine_session *s)
{
    int rc = mdb_txn_begin(s->db->env, NULL, 0, &s->wtxn);

    return rc ? lmdb_fail("txn_begin", rc) : ENGINE_OK;
}

static int lmdb_batch_put(engine_session *s, const void *key, size_t klen,
                          const void *val, size_t vlen)
{
    MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
    int rc = mdb_put(s->wtxn, s->db->dbi, &k, &v, 0);

    return rc ? lmdb_fail("put", rc) : ENGINE_OK;
}

static int lmdb_batch_del(engine_session *s, const void *key, size_t klen)
{
    MDB_val k = { klen, (void *)key };
    int rc = mdb_del(s->wtxn, s->db->dbi, &k, NULL);

    return rc && rc != MDB_NOTFOUND ? lmdb_fail("del", rc) : ENGINE_OK;
}

static int lmdb_batch_commit(engine_session *s)
{
    int rc = mdb_txn_commit(s->wtxn);

    s->wtxn = NULL;
    return rc ? lmdb_fail("commit", rc) : ENGINE_OK;
}

static int lmdb_iter_open(engine_session *s, engine_iter **out)
{
    engine_iter *it = s->spare;
    int rc;

    *out = NULL;
    if (it) {
        s->spare = NULL;
        if ((rc = mdb_txn_renew(it->txn)) != 0 || (rc = mdb_cursor_renew(it->txn, it->cur)) != 0) {
            lmdb_iter_free(it);
            return lmdb_fail("iterator renew", rc);
        }
    } else {
        if ((it = calloc(1, sizeof *it)) == NULL)
            return engine_error("out of memory");
        if ((rc = mdb_txn_begin(s->db->env, NULL, MDB_RDONLY, &it->txn)) != 0 ||
            (rc = mdb_cursor_open(it->txn, s->db->dbi, &it->cur)) != 0) {
            lmdb_iter_free(it);
            return lmdb_fail("iterator open", rc);
        }
    }
    it->s = s;
    it->valid = 0;
    *out = it;
    return ENGINE_OK;
}

/* One cursor move; running off either end leaves the iterator invalid. */
static int lmdb_iter_move(engine_iter *it, MDB_cursor_op op)
{
    int rc = mdb_cursor_get(it->cur, &it->key, &it->val, op);

    it->valid = rc == 0;
    return rc == 0 || rc == MDB_NOTFOUND ? ENGINE_OK : lmdb_fail("cursor_get", rc);
}

static int lmdb_iter_seek_first(engine_iter *it)
{
    return lmdb_iter_move(it, MDB_FIRST);
}

static int lmdb_iter_seek_last(engine_iter *it)
{
    return lmdb_iter_move(it, MDB_LAST);
}

static int lmdb_iter_seek(engine_iter *it, const void *key, size_t klen)
{
    it->key.mv_data = (void *)key;
    it->key.mv_size = klen;
    return lmdb_iter_move(it, MDB_SET_RANGE);
}

static int lmdb_iter_next(engine_iter *it)
{
    return lmdb_iter_move(it, MDB_NEXT);
}

static int lmdb_iter_prev(engine_iter *it)
{
    return lmdb_iter_move(it, MDB_PREV);
}

static int lmdb_iter_valid(engine_iter *it)
{
    return it->valid;
}

static int lmdb_iter_key(engine_iter *it, const void **key, size_t *klen)
{
    *key = it->key.mv_data;
    *klen = it->key.mv_size;
    return ENGINE_OK;
}

static int lmdb_iter_value(engine_iter *it, const void **val, size_t *vlen)
{
    *val = it->val.mv_data;
    *vlen = it->val.mv_size;
    return ENGINE_OK;
}

/* Keeps one closed iterator (its transaction reset) for the next open. */
static void lmdb_iter_close(engine_iter *it)
{
    if (it == NULL)
        return;
    if (it->s->spare == NULL) {
        mdb_txn_reset(it->txn);
        it->s->spare = it;
    } else {
        lmdb_iter_free(it);
    }
}

const engine_ops engine = {
    .name = "lmdb",
    .marker = "data.mdb",
    .describe = lmdb_describe,
    .open = lmdb_open,
    .close = lmdb_close,
    .sync = lmdb_sync,
    .session_open = lmdb_session_open,
    .session_close = lmdb_session_close,
    .put = lmdb_put,
    .del = lmdb_del,
    .get = lmdb_get,
    .batch_begin = lmdb_batch_begin,
    .batch_put = lmdb_batch_put,
    .batch_del = lmdb_batch_del,
    .batch_commit = lmdb_batch_commit,
    .iter_open = lmdb_iter_open,
    .iter_seek_first = lmdb_iter_seek_first,
    .iter_seek_last = lmdb_iter_seek_last,
    .iter_seek = lmdb_iter_seek,
    .iter_next = lmdb_iter_next,
    .iter_prev = lmdb_iter_prev,
    .iter_valid = lmdb_iter_valid,
    .iter_key = lmdb_iter_key,
    .iter_value = lmdb_iter_value,
    .iter_close = lmdb_iter_close,
};
