/*
 * batch.c - write batches for bulk loading, and dropping key ranges.
 *
 * A batch copies its entries into one buffer and commits them through the
 * write path in chunks that respect the transaction limits
 * (max_txn_entries, max_txn_bytes): each chunk is atomic, the batch as a
 * whole is not. No conflict checks, no snapshot: it is for loading data.
 * A failed chunk stops the batch; later calls return the same error.
 *
 * drop_prefix writes a tombstone for every live key with the prefix, as
 * found in one snapshot, through a batch; compaction then frees the space.
 * One thread at a time uses a batch.
 */
#include <stdlib.h>
#include <time.h>

#include "db/state.h"
#include "db/write.h"
#include "base/ikey.h"
#include "base/status.h"
#include "base/vec.h"

struct stoat_batch {
    stoat_db *db;
    buf data;                   /* the entries' keys and values */
    struct batch_entry {
        uint8_t meta, user_meta;
        uint64_t expires_at;
        size_t koff, klen, voff, vlen;
    } *entries;
    size_t n, cap;
    db_write_op *ops;           /* scratch for a chunk */
    int error;                  /* sticky once a chunk failed */
};

int stoat_batch_new(stoat_db *db, stoat_batch **out)
{
    stoat_batch *b;
    int rc;

    if (out == NULL)
        return status_err(STOAT_EINVAL, "stoat_batch_new: out is NULL");
    *out = NULL;
    if ((rc = db_check_handle(db)) != 0)
        return rc;
    if ((rc = db_check_writable(db)) != 0)
        return rc;
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return status_err(STOAT_ENOMEM, "out of memory creating a batch");
    b->db = db;
    *out = b;
    return 0;
}

/* Commits everything buffered, as one atomic chunk. */
static int batch_flush(stoat_batch *b)
{
    db_write_op *ops;
    int rc;

    if (b->n == 0)
        return 0;
    if ((ops = realloc(b->ops, b->n * sizeof(*ops))) == NULL)
        return status_err(STOAT_ENOMEM, "out of memory committing a batch");
    b->ops = ops;
    for (size_t i = 0; i < b->n; i++) {
        const struct batch_entry *e = &b->entries[i];
        ops[i] = (db_write_op){e->meta, e->user_meta, e->expires_at,
                               slice_make(b->data.data + e->koff, e->klen),
                               slice_make(b->data.data + e->voff, e->vlen), 0};
    }
    rc = db_write(b->db, ops, b->n);
    b->n = 0;
    buf_reset(&b->data);
    if (rc != 0)
        b->error = rc;
    return rc;
}

static int batch_add(stoat_batch *b, uint8_t meta, const void *key, size_t klen, const void *val,
                     size_t vlen, uint64_t ttl, uint8_t user_meta)
{
    db_write_op op = {.meta = meta, .key = slice_make(key, klen), .value = slice_make(val, vlen)};
    const stoat_options *o;
    struct batch_entry *e;
    int rc;

    if (b == NULL)
        return status_err(STOAT_EINVAL, "batch is NULL");
    if ((rc = db_check_handle(b->db)) != 0 || (rc = db_check_write_op(&op)) != 0)
        return rc;
    if (b->error)
        return status_err(b->error, "batch stopped by an earlier failure");
    o = &b->db->opts;
    if (b->n > 0 && (b->n + 1 > o->max_txn_entries || b->data.len + klen + vlen > o->max_txn_bytes))
        if ((rc = batch_flush(b)) != 0)
            return rc;
    if (VEC_ROOM(b->entries, b->n, b->cap, 256) != 0)
        return status_err(STOAT_ENOMEM, "out of memory adding to a batch");
    e = &b->entries[b->n];
    *e = (struct batch_entry){meta, user_meta, ttl ? db_clock_ms(1) + ttl : 0,
                              b->data.len, klen, b->data.len + klen, vlen};
    if ((rc = buf_append(&b->data, key, klen)) != 0 || (rc = buf_append(&b->data, val, vlen)) != 0)
        return status_err(rc, "out of memory adding to a batch");
    b->n++;
    return 0;
}

int stoat_batch_set(stoat_batch *b, const void *key, size_t klen, const void *val, size_t vlen)
{
    return batch_add(b, 0, key, klen, val, vlen, 0, 0);
}

int stoat_batch_set_ex(stoat_batch *b, const void *key, size_t klen, const void *val,
                       size_t vlen, uint64_t ttl_ms, uint8_t user_meta)
{
    if (ttl_ms > STOAT_MAX_TTL_MS)
        return status_err(STOAT_EINVAL, "ttl of %llu ms is out of range",
                          (unsigned long long)ttl_ms);
    return batch_add(b, 0, key, klen, val, vlen, ttl_ms, user_meta);
}

int stoat_batch_delete(stoat_batch *b, const void *key, size_t klen)
{
    return batch_add(b, VMETA_DELETE, key, klen, NULL, 0, 0, 0);
}

int stoat_batch_commit(stoat_batch *b)
{
    int rc;

    if (b == NULL)
        return status_err(STOAT_EINVAL, "batch is NULL");
    if ((rc = db_check_handle(b->db)) != 0)
        return rc;
    if (b->error)
        return status_err(b->error, "batch stopped by an earlier failure");
    return batch_flush(b);
}

void stoat_batch_free(stoat_batch *b)
{
    if (b == NULL)
        return;
    buf_free(&b->data);
    free(b->entries);
    free(b->ops);
    free(b);
}

int stoat_drop_prefix(stoat_db *db, const void *prefix, size_t plen)
{
    stoat_iter_options o = {.prefix = prefix, .prefix_len = plen, .keys_only = 1};
    stoat_batch *b = NULL;
    stoat_iter *it = NULL;
    int rc;

    if (plen > 0 && prefix == NULL)
        return status_err(STOAT_EINVAL, "stoat_drop_prefix: prefix is NULL");
    if ((rc = stoat_batch_new(db, &b)) != 0)
        return rc;
    if ((rc = stoat_iter_open(db, &o, &it)) != 0)
        goto done;
    for (rc = stoat_iter_seek_first(it); rc == 0 && stoat_iter_valid(it);
         rc = stoat_iter_next(it)) {
        const void *k;
        size_t klen;
        if ((rc = stoat_iter_key(it, &k, &klen)) != 0 ||
            (rc = stoat_batch_delete(b, k, klen)) != 0)
            break;
    }
    if (rc == 0)
        rc = stoat_iter_status(it);
    if (rc == 0)
        rc = stoat_batch_commit(b);
done:
    stoat_iter_close(it);
    stoat_batch_free(b);
    return rc;
}

int stoat_drop_all(stoat_db *db)
{
    return stoat_drop_prefix(db, NULL, 0);
}
