/*
 * block_builder.c - prefix-compressed entries with restart points.
 *
 * Owns three growable buffers (entries, restart offsets, previous key)
 * that survive block_builder_reset, so building a table allocates only
 * while its largest block grows. Invariants: restarts holds at least the
 * offset 0 once an entry was added; counter < interval; data.len plus the
 * restart array never exceeds BLOCK_MAX_LEN. Single-threaded.
 *
 * With a hash index, each entry whose user key differs from the previous
 * entry's adds one word to `hashes`: the high half of the key's
 * checksum64 and the restart interval the key starts in. finish turns
 * them into the buckets; a bucket two keys of different intervals share
 * is marked a collision (readers binary search then).
 */
#include "table/block_builder.h"

#include <string.h>

#include "base/checksum.h"
#include "base/coding.h"
#include "base/ikey.h"
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
    buf_free(&b->hashes);
}

void block_builder_hash_index(block_builder *b)
{
    b->hash_index = 1;
}

/* Bytes the hash index adds to the finished block: 0 without one. */
static size_t block_builder_hash_len(const block_builder *b, size_t n_restarts, size_t n_keys)
{
    uint32_t buckets = block_hash_buckets(n_keys);

    if (!b->hash_index || n_keys == 0 || n_restarts > BLOCK_HASH_MAX_RESTARTS || buckets == 0)
        return 0;
    return buckets + 2;
}

void block_builder_reset(block_builder *b)
{
    buf_reset(&b->data);
    buf_reset(&b->restarts);
    buf_reset(&b->last_key);
    buf_reset(&b->hashes);
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
    return b->data.len + 4 * n_restarts + 4 +
           block_builder_hash_len(b, n_restarts, b->hashes.len / 8);
}

size_t block_builder_size_with(const block_builder *b, size_t klen, size_t vlen)
{
    /* Worst case: nothing shared, a new restart point, a new user key
     * (two more buckets, or the index the two bytes of its count). */
    return block_builder_size(b) + 3 * VARINT32_MAX_LEN + klen + vlen + 4 +
           (b->hash_index ? 4 : 0);
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
    size_t old_hashes = b->hashes.len;
    int old_counter = b->counter;
    char hdr[3 * VARINT32_MAX_LEN];
    uint64_t h;
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
    if (b->hash_index && key.len >= IKEY_SUFFIX_LEN &&
        (b->n_entries == 0 ||
         slice_cmp(ikey_user(block_builder_last_key(b)), ikey_user(key)) != 0)) {
        slice u = ikey_user(key);
        h = (checksum64(u.data, u.len) >> 32) << 32 | (uint32_t)(b->restarts.len / 4 - 1);
        if ((rc = buf_append(&b->hashes, &h, sizeof(h))) != 0)
            goto fail;
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
    b->hashes.len = old_hashes;
    b->counter = old_counter;
    return rc;
}

/*
 * Appends the hash index of len bytes (0: none) and the restart count,
 * flagged when the index precedes it; the room is reserved. Buckets hold
 * a restart index, or BLOCK_HASH_EMPTY, or BLOCK_HASH_COLLISION when keys
 * starting in different restart intervals share them.
 */
static void block_builder_finish_hash(block_builder *b, size_t len)
{
    size_t n_restarts = b->restarts.len / 4, n_keys = b->hashes.len / 8;
    uint32_t buckets = len ? (uint32_t)(len - 2) : 0;
    unsigned char *bk = (unsigned char *)b->data.data + b->data.len;
    char tail[6];

    if (len == 0) {
        put_fixed32(tail, (uint32_t)n_restarts);
        buf_append(&b->data, tail, 4);
        return;
    }
    memset(bk, BLOCK_HASH_EMPTY, buckets);
    for (size_t i = 0; i < n_keys; i++) {
        uint64_t w;
        uint32_t at;
        unsigned char r;

        memcpy(&w, b->hashes.data + 8 * i, sizeof(w));
        at = block_hash_bucket(w, buckets);
        r = (unsigned char)(uint32_t)w;
        bk[at] = bk[at] == BLOCK_HASH_EMPTY || bk[at] == r ? r : BLOCK_HASH_COLLISION;
    }
    b->data.len += buckets;
    put_fixed16(tail, (uint16_t)buckets);
    put_fixed32(tail + 2, (uint32_t)n_restarts | BLOCK_HASH_FLAG);
    buf_append(&b->data, tail, 6);
}

int block_builder_finish(block_builder *b, slice *out)
{
    size_t hlen;
    int rc;

    if (!b->finished) {
        if (b->restarts.len == 0 && (rc = buf_put_fixed32(&b->restarts, 0)) != 0)
            return rc;
        hlen = block_builder_hash_len(b, b->restarts.len / 4, b->hashes.len / 8);
        if ((rc = buf_reserve(&b->data, b->restarts.len + 4 + hlen)) != 0)
            return rc;
        /* Cannot fail now: the room is reserved. */
        buf_append(&b->data, b->restarts.data, b->restarts.len);
        block_builder_finish_hash(b, hlen);
        b->finished = 1;
    }
    *out = slice_make(b->data.data, b->data.len);
    return 0;
}
