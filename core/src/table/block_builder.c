/*
 * block_builder.c - prefix-compressed entries with restart points.
 *
 * Owns three growable buffers (entries, restart offsets, previous key)
 * that survive block_builder_reset, so building a table allocates only
 * while its largest block grows. Invariants: restarts holds at least the
 * offset 0 once an entry was added; counter < interval; data.len plus the
 * restart array never exceeds BLOCK_MAX_LEN. Single-threaded.
 */
#include "table/block_builder.h"

#include <string.h>

#include "base/coding.h"
#include "base/status.h"

void block_builder_init(block_builder *b, int restart_interval)
{
    memset(b, 0, sizeof(*b));
    b->interval = restart_interval < 1 ? BLOCK_RESTART_INTERVAL : restart_interval;
}

void block_builder_free(block_builder *b)
{
    buf_free(&b->data);
    buf_free(&b->restarts);
    buf_free(&b->last_key);
}

void block_builder_reset(block_builder *b)
{
    buf_reset(&b->data);
    buf_reset(&b->restarts);
    buf_reset(&b->last_key);
    b->counter = 0;
    b->n_entries = 0;
    b->finished = 0;
}

size_t block_builder_size(const block_builder *b)
{
    size_t n_restarts = b->restarts.len / 4;

    if (b->finished)
        return b->data.len;
    if (n_restarts == 0)
        n_restarts = 1; /* an empty block still has its restart at 0 */
    return b->data.len + 4 * n_restarts + 4;
}

size_t block_builder_size_with(const block_builder *b, size_t klen, size_t vlen)
{
    /* Worst case: nothing shared, and a new restart point. */
    return block_builder_size(b) + 3 * VARINT32_MAX_LEN + klen + vlen + 4;
}

static size_t shared_prefix(slice a, slice b)
{
    size_t n = a.len < b.len ? a.len : b.len, i = 0;

    while (i < n && a.data[i] == b.data[i])
        i++;
    return i;
}

int block_builder_add(block_builder *b, slice key, slice value)
{
    size_t shared = 0, old_data = b->data.len, old_restarts = b->restarts.len;
    int old_counter = b->counter;
    char hdr[3 * VARINT32_MAX_LEN];
    size_t hlen;
    int rc;

    if (block_builder_size_with(b, key.len, value.len) > BLOCK_MAX_LEN)
        return status_err(STOAT_ETOOBIG, "block: entry of %zu+%zu bytes does not fit a block",
                          key.len, value.len);
    if (b->counter < b->interval && b->n_entries > 0) {
        shared = shared_prefix(block_builder_last_key(b), key);
    } else {
        if ((rc = buf_put_fixed32(&b->restarts, (uint32_t)b->data.len)) != 0)
            return rc;
        b->counter = 0;
    }
    hlen = put_varint32(hdr, (uint32_t)shared);
    hlen += put_varint32(hdr + hlen, (uint32_t)(key.len - shared));
    hlen += put_varint32(hdr + hlen, (uint32_t)value.len);
    if ((rc = buf_reserve(&b->data, hlen + key.len - shared + value.len)) != 0 ||
        (rc = buf_reserve(&b->last_key, key.len)) != 0)
        goto fail;
    /* Cannot fail now: the room is reserved. */
    buf_append(&b->data, hdr, hlen);
    buf_append(&b->data, key.data + shared, key.len - shared);
    buf_append(&b->data, value.data, value.len);
    buf_reset(&b->last_key);
    buf_append(&b->last_key, key.data, key.len);
    b->counter++;
    b->n_entries++;
    return 0;
fail:
    b->data.len = old_data;
    b->restarts.len = old_restarts;
    b->counter = old_counter;
    return rc;
}

int block_builder_finish(block_builder *b, slice *out)
{
    int rc;

    if (!b->finished) {
        if (b->restarts.len == 0 && (rc = buf_put_fixed32(&b->restarts, 0)) != 0)
            return rc;
        if ((rc = buf_reserve(&b->data, b->restarts.len + 4)) != 0)
            return rc;
        buf_append(&b->data, b->restarts.data, b->restarts.len);
        buf_put_fixed32(&b->data, (uint32_t)(b->restarts.len / 4));
        b->finished = 1;
    }
    *out = slice_make(b->data.data, b->data.len);
    return 0;
}
