/*
 * write_record.c - the record of one write group: the group's large
 * values appended to the value log in one batch (db->vlog_ptrs gets
 * their pointers), its entries encoded into the WAL payload under each
 * writer's version, then logged, synced and applied to the memtable.
 * Called by the front writer of write.c without db->mu: the scratch
 * buffers (db->wal_payload, db->vlog_keys, db->vlog_ikeys...) are the
 * front writer's alone. GC rewrites keep their versions (op_version) and
 * are stamped when applied; skipped ones are left out everywhere.
 */
#include <stdlib.h>

#include "db/write_int.h"
#include "db/shared.h"
#include "base/ikey.h"
#include "base/status.h"
#include "log/wal.h"

static inline int op_skipped(const db_writer *w, size_t i)
{
    return w->skip != NULL && w->skip[i];
}

static inline uint64_t op_version(const db_writer *w, const db_write_op *op)
{
    return op->version ? op->version : w->version;
}

static int db_vlog_reserve(stoat_db *db, size_t n)
{
    if (n <= db->vlog_cap)
        return 0;
    free(db->vlog_ikeys);
    free(db->vlog_vals);
    free(db->vlog_ptrs);
    db->vlog_ikeys = malloc(n * sizeof(*db->vlog_ikeys));
    db->vlog_vals = malloc(n * sizeof(*db->vlog_vals));
    db->vlog_ptrs = malloc(n * sizeof(*db->vlog_ptrs));
    db->vlog_cap = n;
    if (db->vlog_ikeys && db->vlog_vals && db->vlog_ptrs)
        return 0;
    db->vlog_cap = 0;
    return status_err(STOAT_ENOMEM, "out of memory writing to the value log");
}

/*
 * Appends the group's large values to the value log in one batch; their
 * pointers land in db->vlog_ptrs, in op order. A failure leaves no record
 * behind and nothing else written: the group just fails.
 */
int db_separate_values(stoat_db *db, db_writer *first, db_writer *last, size_t *n_sep)
{
    size_t n = 0, key_bytes = 0;
    int rc;

    *n_sep = 0;
    for (db_writer *w = first;; w = w->next) {
        for (size_t i = 0; w->version != 0 && i < w->n_ops; i++) {
            if (!op_skipped(w, i) && op_separated(db, &w->ops[i])) {
                n++;
                key_bytes += w->ops[i].key.len + IKEY_SUFFIX_LEN;
            }
        }
        if (w == last)
            break;
    }
    if (n == 0)
        return 0;
    buf_reset(&db->vlog_keys);
    if ((rc = db_vlog_reserve(db, n)) != 0 || (rc = buf_reserve(&db->vlog_keys, key_bytes)) != 0)
        return rc;
    n = 0;
    for (db_writer *w = first;; w = w->next) {
        for (size_t i = 0; w->version != 0 && i < w->n_ops; i++) {
            const db_write_op *op = &w->ops[i];
            char *k = db->vlog_keys.data + db->vlog_keys.len;
            if (op_skipped(w, i) || !op_separated(db, op))
                continue;
            db->vlog_keys.len += ikey_encode(k, op->key.data, op->key.len, op_version(w, op));
            db->vlog_ikeys[n] = slice_make(k, op->key.len + IKEY_SUFFIX_LEN);
            db->vlog_vals[n++] = op->value;
        }
        if (w == last)
            break;
    }
    if ((rc = vlog_append_batch(db->vlog, db->vlog_ikeys, db->vlog_vals, n, db->vlog_ptrs)) != 0)
        return rc;
    *n_sep = n;
    return 0;
}

/* Encodes the group's entries into the WAL payload, each writer's under
 * its own version, separated values as their pointers. */
int db_encode_group(stoat_db *db, db_writer *first, db_writer *last)
{
    buf *key = &db->vlog_keys;   /* reused: the value log has its copies */
    char ptr[VPTR_LEN], vbuf_small[64];
    size_t j = 0;
    int rc = 0;

    buf_reset(&db->wal_payload);
    for (db_writer *w = first;; w = w->next) {
        for (size_t i = 0; i < w->n_ops && rc == 0 && w->version != 0; i++) {
            const db_write_op *op = &w->ops[i];
            vstruct vs = {op->meta, op->user_meta, op->expires_at, op->value};
            char *val;

            if (op_skipped(w, i))
                continue;
            if (op_separated(db, op)) {
                vptr_encode(ptr, &db->vlog_ptrs[j++]);
                vs.meta |= VMETA_VPTR;
                vs.value = slice_make(ptr, VPTR_LEN);
            }
            buf_reset(key);
            if ((rc = buf_reserve(key, op->key.len + IKEY_SUFFIX_LEN + vstruct_encoded_len(&vs))) != 0)
                break;
            key->len = ikey_encode(key->data, op->key.data, op->key.len, op_version(w, op));
            val = vstruct_encoded_len(&vs) <= sizeof(vbuf_small) ? vbuf_small : key->data + key->len;
            rc = wal_encode_entry(&db->wal_payload, slice_make(key->data, key->len),
                                  slice_make(val, vstruct_encode(val, &vs)));
        }
        if (rc != 0 || w == last)
            break;
    }
    return rc;
}


/* The next entry of the logged payload at *p, or -1 past its end. */
static int db_payload_next(const char **p, const char *limit, slice *k, slice *v)
{
    uint64_t klen = 0, vlen = 0;
    const char *q = *p;

    if ((q = get_varint64(q, limit, &klen)) == NULL || klen > (uint64_t)(limit - q))
        return -1;
    *k = slice_make(q, klen);
    if ((q = get_varint64(q + klen, limit, &vlen)) == NULL || vlen > (uint64_t)(limit - q))
        return -1;
    *v = slice_make(q, vlen);
    *p = q + vlen;
    return 0;
}

/*
 * Inserts the logged payload (which this process just encoded from the
 * group first..last, in that order) into the memtable. A GC rewrite (an
 * op that keeps an older version) is stamped with its commit's version,
 * so iterators already reading the memtable never meet it (memtable.h).
 */
static int db_apply_payload(memtable *m, const buf *payload, db_writer *first, db_writer *last)
{
    const char *p = payload->data, *limit = payload->data + payload->len;
    slice k, v;
    int rc;

    for (db_writer *w = first;; w = w->next) {
        for (size_t i = 0; w->version != 0 && i < w->n_ops; i++) {
            if (op_skipped(w, i))
                continue;
            if (db_payload_next(&p, limit, &k, &v) != 0)
                return status_err(STOAT_ECORRUPT, "write path: malformed batch payload");
            if ((rc = memtable_add(m, k, v, w->ops[i].version ? w->version : 0)) != 0)
                return rc;
        }
        if (w == last)
            break;
    }
    if (p != limit)
        return status_err(STOAT_ECORRUPT, "write path: malformed batch payload");
    return 0;
}

/* The front writer's work outside the mutex: log, sync, apply. Any
 * failure here may leave the WAL and memtable disagreeing: sticky. Except
 * STOAT_ENOSPC, which only the WAL append returns, and only once it has
 * cut its partial record back off (memtable.c; a failed fsync is
 * STOAT_EIO): then nothing was logged or applied and the group just
 * fails. */
int db_commit_group(stoat_db *db, memtable *m, int sync, int apply, db_writer *first,
                    db_writer *last)
{
    int rc;

    if (sync && db->vlog != NULL &&
        ((rc = vlog_sync(db->vlog)) != 0 || (rc = db_mp_sync_published_values(db)) != 0))
        return rc;
    if (db->wal_payload.len == 0)
        return sync ? memtable_sync(m) : 0;
    if ((rc = memtable_log(m, db->wal_payload.data, db->wal_payload.len)) != 0)
        return rc;
    if (sync && (rc = memtable_sync(m)) != 0)
        return rc;
    return apply ? db_apply_payload(m, &db->wal_payload, first, last) : 0;
}

/* A group whose WAL record a full disk refused left its large values in
 * the value log, pointed to by nothing: garbage for GC to count. */
void db_count_unlogged_values(stoat_db *db, size_t n_sep)
{
    for (size_t j = 0; j < n_sep && db->disc != NULL; j++)
        discard_add(db->disc, db->vlog_ptrs[j].fid, db->vlog_ptrs[j].len);
}
