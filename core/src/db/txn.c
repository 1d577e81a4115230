/*
 * txn.c - transactions: snapshot reads, buffered writes, commit.
 *
 * A transaction reads at the version published when it began and
 * registers that version as a snapshot, so that compaction keeps every
 * version it may read until it ends. Its writes wait in a pending map
 * (mvcc/txn_writes.h) and are visible to its own reads and iterators. A read-write
 * transaction records its read set (keys it got from the snapshot) and
 * range set (the hulls its iterators covered, handed over when each
 * closes); commit hands the writes to the write path, which checks that
 * set against commits made since the read version (oracle.h) in the same
 * critical section that gives the commit its version.
 *
 * Limits: max_txn_entries writes and max_txn_bytes of keys + values. The
 * set that would cross a limit fails with STOAT_ETOOBIG and the
 * transaction keeps what it had: a transaction never outgrows a memtable.
 *
 * One thread at a time uses a transaction.
 */
#include <stdlib.h>
#include <time.h>

#include "db/iterator.h"
#include "db/read.h"
#include "db/shared.h"
#include "db/snapshots.h"
#include "db/state.h"
#include "db/write.h"
#include "base/ikey.h"
#include "mvcc/oracle.h"
#include "mvcc/txn_writes.h"
#include "base/status.h"
#include "base/vec.h"

struct stoat_txn {
    stoat_db *db;
    int read_only;
    int finished;               /* committed (or failed to): only discard remains */
    uint64_t read_version;
    db_snapshot snap;
    txn_writes writes;
    txn_reads reads;
    int track_reads;            /* read-write with detect_conflicts; -1: a range was lost */
    stoat_iter **iters;         /* open iterators, detached at discard */
    size_t n_iters, cap_iters;
    buf scratch;                /* the last get's stored value */
    vlog_value vscratch;        /* ... and its separated value (may pin a mapped
                                 * value-log file until the next get) */
};

static int txn_begin(stoat_db *db, int read_only, uint64_t read_version, stoat_txn **out)
{
    stoat_txn *t;
    int rc;

    if (out == NULL)
        return status_err(STOAT_EINVAL, "stoat_txn_begin: out is NULL");
    *out = NULL;
    if ((rc = db_check_handle(db)) != 0)
        return rc;
    if (!read_only && (rc = db_check_writable(db)) != 0)
        return rc;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return status_err(STOAT_ENOMEM, "out of memory beginning a transaction");
    t->db = db;
    t->read_only = read_only;
    t->track_reads = !read_only && db->opts.detect_conflicts;
    /* Multi-process: first what other processes committed (shared.c). */
    if (read_version == 0 && (rc = db_mp_catch_up(db)) != 0) {
        free(t);
        return rc;
    }
    pthread_mutex_lock(&db->mu);
    if (db->closing) {
        pthread_mutex_unlock(&db->mu);
        free(t);
        return status_err(STOAT_ECLOSED, "database is closing");
    }
    t->read_version = read_version ? read_version : atomic_load(&db->last_version);
    t->snap.version = t->read_version;
    /* Registered in the same critical section: no commit above the read
     * version may be pruned from the oracle before it is. */
    db_snapshot_add_locked(db, &t->snap);
    db->open_iters++;           /* a live transaction keeps close away too */
    pthread_mutex_unlock(&db->mu);
    *out = t;
    return 0;
}

int stoat_txn_begin(stoat_db *db, int flags, stoat_txn **out)
{
    if (out != NULL)
        *out = NULL;
    if (flags & ~STOAT_TXN_READ_ONLY)
        return status_err(STOAT_EINVAL, "stoat_txn_begin: unknown flags 0x%x", (unsigned)flags);
    return txn_begin(db, (flags & STOAT_TXN_READ_ONLY) != 0, 0, out);
}

int stoat_txn_begin_at(stoat_db *db, uint64_t read_version, stoat_txn **out)
{
    if (out != NULL)
        *out = NULL;
    if (read_version == 0)
        return status_err(STOAT_EINVAL, "stoat_txn_begin_at: read version 0");
    if (db && db_check_handle(db) == 0 && db_mp_catch_up(db) != 0)
        return status_err(STOAT_EIO, "stoat_txn_begin_at: %s", status_msg());
    if (db && read_version > atomic_load(&db->last_version))
        return status_err(STOAT_EINVAL, "stoat_txn_begin_at: version %llu is not committed yet",
                          (unsigned long long)read_version);
    return txn_begin(db, 1, read_version, out);
}

uint64_t stoat_txn_read_version(const stoat_txn *t)
{
    return t ? t->read_version : 0;
}

static int txn_check(stoat_txn *t, int writing)
{
    int rc;

    if (t == NULL)
        return status_err(STOAT_EINVAL, "transaction is NULL");
    if ((rc = db_check_handle(t->db)) != 0)
        return rc;
    if (t->finished)
        return status_err(STOAT_EINVAL, "transaction already committed: only discard is allowed");
    if (writing && t->read_only)
        return status_err(STOAT_EREADONLY, "transaction is read-only");
    return 0;
}

int stoat_txn_get_meta(stoat_txn *t, const void *key, size_t klen, const void **val,
                       size_t *vlen, uint64_t *version, uint64_t *expires_at,
                       uint8_t *user_meta)
{
    slice k = slice_make(key, klen);
    const txn_write *pe;
    vstruct vs;
    int rc;

    if ((rc = txn_check(t, 0)) != 0 || (rc = db_check_key(key, klen)) != 0)
        return rc;
    if (val == NULL || vlen == NULL)
        return status_err(STOAT_EINVAL, "stoat_txn_get: val and vlen must not be NULL");
    *val = NULL;
    *vlen = 0;
    if ((pe = txn_writes_get(&t->writes, k)) != NULL) {
        /* Its own write: what the snapshot holds does not matter. It has
         * no version until commit: report 0. */
        vs = (vstruct){pe->meta, pe->user_meta, pe->expires_at, pe->value};
        if (version)
            *version = 0;
    } else {
        if (t->track_reads && txn_reads_add_key(&t->reads, k) != 0)
            return status_err(STOAT_ENOMEM, "out of memory recording a read");
        rc = db_read_value(t->db, k, t->read_version, &t->scratch, &t->vscratch, &vs, version);
        if (rc != 0)
            return rc;
    }
    if ((vs.meta & VMETA_DELETE) || vstruct_expired(&vs, db_clock_ms(0)))
        return STOAT_ENOTFOUND;
    *val = vs.value.len ? vs.value.data : "";
    *vlen = vs.value.len;
    if (expires_at)
        *expires_at = vs.expires_at;
    if (user_meta)
        *user_meta = vs.user_meta;
    return 0;
}

int stoat_txn_get(stoat_txn *t, const void *key, size_t klen, const void **val, size_t *vlen)
{
    return stoat_txn_get_meta(t, key, klen, val, vlen, NULL, NULL, NULL);
}

static int txn_put(stoat_txn *t, uint8_t meta, const void *key, size_t klen, const void *val,
                   size_t vlen, uint64_t ttl, uint8_t user_meta)
{
    db_write_op op = {.meta = meta, .user_meta = user_meta, .key = slice_make(key, klen),
                      .value = slice_make(val, vlen)};
    const txn_write *old;
    uint64_t bytes, entries;
    int rc;

    if ((rc = txn_check(t, 1)) != 0 || (rc = db_check_write_op(&op)) != 0)
        return rc;
    old = txn_writes_get(&t->writes, op.key);
    bytes = t->writes.bytes + klen + vlen - (old ? old->key.len + old->value.len : 0);
    entries = t->writes.n + (old == NULL);
    if (entries > t->db->opts.max_txn_entries || bytes > t->db->opts.max_txn_bytes)
        return status_err(STOAT_ETOOBIG,
                          "transaction too big: %llu writes, %llu bytes (limits %llu writes, "
                          "%llu bytes: options max_txn_entries, max_txn_bytes)",
                          (unsigned long long)entries, (unsigned long long)bytes,
                          (unsigned long long)t->db->opts.max_txn_entries,
                          (unsigned long long)t->db->opts.max_txn_bytes);
    if (ttl != 0)
        op.expires_at = db_clock_ms(1) + ttl;
    if ((rc = txn_writes_put(&t->writes, op.meta, op.user_meta, op.expires_at, op.key, op.value)) != 0)
        return status_err(rc, "out of memory buffering a write");
    return 0;
}

int stoat_txn_set(stoat_txn *t, const void *key, size_t klen, const void *val, size_t vlen)
{
    return txn_put(t, 0, key, klen, val, vlen, 0, 0);
}

int stoat_txn_set_ex(stoat_txn *t, const void *key, size_t klen, const void *val, size_t vlen,
                     uint64_t ttl_ms, uint8_t user_meta)
{
    if (ttl_ms > STOAT_MAX_TTL_MS)
        return status_err(STOAT_EINVAL, "ttl of %llu ms is out of range",
                          (unsigned long long)ttl_ms);
    return txn_put(t, 0, key, klen, val, vlen, ttl_ms, user_meta);
}

int stoat_txn_delete(stoat_txn *t, const void *key, size_t klen)
{
    return txn_put(t, VMETA_DELETE, key, klen, NULL, 0, 0, 0);
}

/* An iterator of t closes (its sink): forget it, and record the range it
 * covered. */
static void txn_iter_closed(void *arg, stoat_iter *it, int tracked, slice lo, slice hi)
{
    stoat_txn *t = arg;

    for (size_t i = 0; i < t->n_iters; i++) {
        if (t->iters[i] == it) {
            t->iters[i] = t->iters[--t->n_iters];
            break;
        }
    }
    if (tracked && txn_reads_add_range(&t->reads, lo, hi) != 0)
        t->track_reads = -1;    /* lost a range: commit must refuse */
}

int stoat_txn_iter_open(stoat_txn *t, const stoat_iter_options *o, stoat_iter **out)
{
    stoat_iter_options none = {0};
    iter *pend = NULL;
    int rc;

    if (out == NULL)
        return status_err(STOAT_EINVAL, "stoat_txn_iter_open: out is NULL");
    *out = NULL;
    if ((rc = txn_check(t, 0)) != 0)
        return rc;
    if (o == NULL)
        o = &none;
    if ((rc = db_check_iter_options(o)) != 0)
        return rc;
    if (VEC_ROOM(t->iters, t->n_iters, t->cap_iters, 4) != 0)
        return status_err(STOAT_ENOMEM, "out of memory opening an iterator");
    if (t->writes.n > 0 && (pend = txn_writes_iter_new(&t->writes, t->read_version)) == NULL)
        return status_err(STOAT_ENOMEM, "out of memory opening an iterator");
    rc = db_iterator_open(t->db, &(db_iterator_sink){txn_iter_closed, t}, t->track_reads > 0,
                          t->read_version, pend, o, out);
    if (rc == 0)
        t->iters[t->n_iters++] = *out;
    return rc;
}

/* The pending writes as write-path operations (borrowing their bytes). */
static int txn_ops(stoat_txn *t, db_write_op **out)
{
    db_write_op *ops = malloc((t->writes.n ? t->writes.n : 1) * sizeof(*ops));

    if (ops == NULL)
        return status_err(STOAT_ENOMEM, "out of memory committing");
    for (size_t i = 0; i < t->writes.n; i++) {
        const txn_write *e = t->writes.entries[i];
        ops[i] = (db_write_op){e->meta, e->user_meta, e->expires_at, e->key, e->value, 0};
    }
    *out = ops;
    return 0;
}

int stoat_txn_commit(stoat_txn *t)
{
    db_write_op *ops = NULL;
    int rc;

    if ((rc = txn_check(t, 0)) != 0)
        return rc;
    if (t->n_iters > 0)
        return status_err(STOAT_EINVAL, "stoat_txn_commit: %zu iterator(s) still open",
                          t->n_iters);
    t->finished = 1;
    if (t->read_only || t->writes.n == 0)
        return 0;
    if (t->track_reads < 0)
        return status_err(STOAT_ENOMEM, "out of memory recording an iterated range");
    if ((rc = txn_ops(t, &ops)) != 0)
        return rc;
    rc = db_write_txn(t->db, ops, t->writes.n, t->track_reads ? &t->reads : NULL, t->read_version);
    free(ops);
    return rc;
}

void stoat_txn_discard(stoat_txn *t)
{
    stoat_db *db;

    if (t == NULL || db_check_handle(t->db) != 0)
        return;
    db = t->db;
    for (size_t i = 0; i < t->n_iters; i++)
        db_iterator_detach(t->iters[i]);
    free(t->iters);
    db_snapshot_remove(db, &t->snap);
    pthread_mutex_lock(&db->mu);
    db->open_iters--;
    pthread_mutex_unlock(&db->mu);
    txn_writes_free(&t->writes);
    txn_reads_free(&t->reads);
    buf_free(&t->scratch);
    db_vlog_value_release(db, &t->vscratch, 1);
    free(t);
}
