/*
 * block.c - block parsing and the block iterator.
 *
 * The block's bytes are untrusted: every varint, length, restart offset
 * and shared prefix is bounds-checked before use, and a failure puts the
 * iterator in a sticky error state (status != 0, not valid). Keys at
 * restart points (shared == 0) are returned straight from the block;
 * other keys are rebuilt in the iterator's key_buf, which is reused.
 * Invariant while valid: restart_off(restart_idx) <= cur < next <=
 * b->restarts. One thread per iterator.
 *
 * block_get is the point lookup of sst_reader_get: the same restart
 * search and scan as block_iter_seek, without an iterator, rebuilding
 * keys straight into the caller's buffer (which ends up holding the key
 * found), so a get allocates nothing here.
 */
#include "block.h"

#include <string.h>

#include "coding.h"
#include "ikey.h"
#include "status.h"

int block_init(block *b, const char *data, size_t len, const char *path, uint64_t offset)
{
    uint32_t n;

    memset(b, 0, sizeof(*b));
    b->path = path;
    b->offset = offset;
    if (len < 4)
        goto bad;
    n = get_fixed32(data + len - 4);
    if (n == 0 || n > (len - 4) / 4)
        goto bad;
    b->data = data;
    b->len = len;
    b->n_restarts = n;
    b->restarts = len - 4 - 4 * (size_t)n;
    return 0;
bad:
    return status_err(STOAT_ECORRUPT, "%s: block at offset %llu: bad restart array (%zu bytes)",
                      path, (unsigned long long)offset, len);
}

void block_iter_init(block_iter *it)
{
    memset(it, 0, sizeof(*it));
}

void block_iter_set(block_iter *it, const block *b)
{
    it->b = b;
    it->cur = it->next = b->restarts;
    it->restart_idx = b->n_restarts;
    it->key = it->value = slice_make(NULL, 0);
    it->key_in_buf = 0;
    it->status = 0;
}

void block_iter_free(block_iter *it)
{
    buf_free(&it->key_buf);
    it->b = NULL;
}

static void block_iter_invalidate(block_iter *it)
{
    it->cur = it->next = it->b->restarts;
    it->restart_idx = it->b->n_restarts;
    it->key = it->value = slice_make(NULL, 0);
    it->key_in_buf = 0;
}

static void block_iter_corrupt(block_iter *it, size_t pos, const char *what)
{
    it->status = status_err(STOAT_ECORRUPT, "%s: block at offset %llu: %s at %zu", it->b->path,
                            (unsigned long long)it->b->offset, what, pos);
    block_iter_invalidate(it);
}

/* Where and why a block is damaged, for the caller's message. */
typedef struct block_damage {
    size_t pos;
    const char *what;
} block_damage;

/* Offset of restart point i, checked to lie within the entries. */
static inline int block_restart_off(const block *b, uint32_t i, size_t *off, block_damage *d)
{
    size_t o = get_fixed32(b->data + b->restarts + 4 * (size_t)i);

    if (o >= b->restarts) {
        d->pos = b->restarts + 4 * (size_t)i;
        d->what = "bad restart offset";
        return -1;
    }
    *off = o;
    return 0;
}

static int block_iter_restart(block_iter *it, uint32_t i, size_t *off)
{
    block_damage d;

    if (block_restart_off(it->b, i, off, &d) != 0) {
        block_iter_corrupt(it, d.pos, d.what);
        return -1;
    }
    return 0;
}

/* Decodes the entry header at pos: shared, non_shared, value length, and
 * where the key suffix starts. -1 when it does not fit in the entries. */
static inline int block_decode_header(const block *b, size_t pos, uint32_t *shared,
                                      uint32_t *non_shared, uint32_t *vlen, const char **suffix)
{
    const char *p = b->data + pos, *limit = b->data + b->restarts;

    /* Nearly always each of the three fits in one byte (below 128). */
    if (limit - p >= 3 && ((p[0] | p[1] | p[2]) & 0x80) == 0) {
        *shared = (unsigned char)p[0];
        *non_shared = (unsigned char)p[1];
        *vlen = (unsigned char)p[2];
        p += 3;
    } else if ((p = get_varint32(p, limit, shared)) == NULL ||
               (p = get_varint32(p, limit, non_shared)) == NULL ||
               (p = get_varint32(p, limit, vlen)) == NULL) {
        return -1;
    }
    if ((uint64_t)*non_shared + *vlen > (uint64_t)(limit - p))
        return -1;
    *suffix = p;
    return 0;
}

/* Makes the entry at pos current; its shared prefix comes from it->key. */
static int block_iter_parse(block_iter *it, size_t pos)
{
    uint32_t shared, non_shared, vlen;
    const char *suffix;

    if (block_decode_header(it->b, pos, &shared, &non_shared, &vlen, &suffix) != 0) {
        block_iter_corrupt(it, pos, "bad entry");
        return -1;
    }
    if (shared > it->key.len || (size_t)shared + non_shared < IKEY_SUFFIX_LEN) {
        block_iter_corrupt(it, pos, "bad key length");
        return -1;
    }
    if (shared == 0) {
        it->key = slice_make(suffix, non_shared);
        it->key_in_buf = 0;
    } else {
        if (!it->key_in_buf) {
            buf_reset(&it->key_buf);
            if (buf_append(&it->key_buf, it->key.data, shared) != 0)
                goto nomem;
        }
        it->key_buf.len = shared;
        if (buf_append(&it->key_buf, suffix, non_shared) != 0)
            goto nomem;
        it->key = slice_make(it->key_buf.data, it->key_buf.len);
        it->key_in_buf = 1;
    }
    it->value = slice_make(suffix + non_shared, vlen);
    it->cur = pos;
    it->next = (size_t)(suffix - it->b->data) + non_shared + vlen;
    return 0;
nomem:
    it->status = status_err(STOAT_ENOMEM, "%s: out of memory reading a block", it->b->path);
    block_iter_invalidate(it);
    return -1;
}

static int block_iter_to_restart(block_iter *it, uint32_t idx)
{
    size_t off;

    if (block_iter_restart(it, idx, &off) != 0)
        return -1;
    it->key = slice_make(NULL, 0); /* a restart entry shares nothing */
    it->key_in_buf = 0;
    it->restart_idx = idx;
    return block_iter_parse(it, off);
}

/* Moves to the entry after the current one (or past the end). */
static void block_iter_step(block_iter *it)
{
    const block *b = it->b;

    if (it->next >= b->restarts) {
        block_iter_invalidate(it);
        return;
    }
    if (block_iter_parse(it, it->next) != 0)
        return;
    while (it->restart_idx + 1 < b->n_restarts &&
           get_fixed32(b->data + b->restarts + 4 * (size_t)(it->restart_idx + 1)) <= it->cur)
        it->restart_idx++;
}

void block_iter_seek_first(block_iter *it)
{
    if (it->b == NULL || it->status != 0)
        return;
    if (it->b->restarts == 0) {
        block_iter_invalidate(it);
        return;
    }
    block_iter_to_restart(it, 0);
}

void block_iter_seek_last(block_iter *it)
{
    if (it->b == NULL || it->status != 0)
        return;
    if (it->b->restarts == 0) {
        block_iter_invalidate(it);
        return;
    }
    if (block_iter_to_restart(it, it->b->n_restarts - 1) != 0)
        return;
    while (it->next < it->b->restarts)
        if (block_iter_parse(it, it->next) != 0)
            return;
}

void block_iter_next(block_iter *it)
{
    if (block_iter_valid(it))
        block_iter_step(it);
}

void block_iter_prev(block_iter *it)
{
    size_t original = it->cur, off;

    if (!block_iter_valid(it))
        return;
    for (;;) {
        if (block_iter_restart(it, it->restart_idx, &off) != 0)
            return;
        if (off < original)
            break;
        if (it->restart_idx == 0) {
            block_iter_invalidate(it); /* it was the first entry */
            return;
        }
        it->restart_idx--;
    }
    if (block_iter_to_restart(it, it->restart_idx) != 0)
        return;
    while (it->next < original)
        if (block_iter_parse(it, it->next) != 0)
            return;
    if (it->next != original)
        block_iter_corrupt(it, it->cur, "entries overlap");
}

/* The full key stored at restart point idx. */
static int block_restart_key(const block *b, uint32_t idx, slice *key, block_damage *d)
{
    uint32_t shared, non_shared, vlen;
    const char *suffix;
    size_t off;

    if (block_restart_off(b, idx, &off, d) != 0)
        return -1;
    if (block_decode_header(b, off, &shared, &non_shared, &vlen, &suffix) != 0 ||
        shared != 0 || non_shared < IKEY_SUFFIX_LEN) {
        d->pos = off;
        d->what = "bad restart entry";
        return -1;
    }
    *key = slice_make(suffix, non_shared);
    return 0;
}

/* The last restart point whose key is < target (0 when none is): where
 * the scan for the first key >= target starts. b has entries. */
static int block_search_restarts(const block *b, slice target, uint32_t *idx, block_damage *d)
{
    uint32_t left = 0, right = b->n_restarts - 1;
    slice k;

    while (left < right) {
        uint32_t mid = left + (right - left + 1) / 2;
        if (block_restart_key(b, mid, &k, d) != 0)
            return -1;
        if (ikey_cmp(k, target) < 0)
            left = mid;
        else
            right = mid - 1;
    }
    *idx = left;
    return 0;
}

void block_iter_seek(block_iter *it, slice target)
{
    block_damage d;
    uint32_t idx;

    if (it->b == NULL || it->status != 0)
        return;
    if (target.len < IKEY_SUFFIX_LEN) {
        it->status = status_err(STOAT_EINVAL, "block seek: target of %zu bytes is not an internal key",
                                target.len);
        block_iter_invalidate(it);
        return;
    }
    if (it->b->restarts == 0) {
        block_iter_invalidate(it);
        return;
    }
    if (block_search_restarts(it->b, target, &idx, &d) != 0) {
        block_iter_corrupt(it, d.pos, d.what);
        return;
    }
    if (block_iter_to_restart(it, idx) != 0)
        return;
    while (block_iter_valid(it) && ikey_cmp(it->key, target) < 0)
        block_iter_step(it);
}

static int block_corrupt(const block *b, const block_damage *d)
{
    return status_err(STOAT_ECORRUPT, "%s: block at offset %llu: %s at %zu", b->path,
                      (unsigned long long)b->offset, d->what, d->pos);
}

/* Scans from the entry at pos (a restart point) for the first key >=
 * target, rebuilding each key in *key. */
static int block_get_scan(const block *b, size_t pos, slice target, buf *key, slice *value)
{
    block_damage d = {pos, "bad entry"};
    uint32_t shared, non_shared, vlen;
    const char *suffix;

    buf_reset(key);
    while (pos < b->restarts) {
        d.pos = pos;
        if (block_decode_header(b, pos, &shared, &non_shared, &vlen, &suffix) != 0)
            return block_corrupt(b, &d);
        if (shared > key->len || (size_t)shared + non_shared < IKEY_SUFFIX_LEN) {
            d.what = "bad key length";
            return block_corrupt(b, &d);
        }
        key->len = shared;
        if (buf_append(key, suffix, non_shared) != 0)
            return status_err(STOAT_ENOMEM, "%s: out of memory reading a block", b->path);
        if (ikey_cmp(slice_make(key->data, key->len), target) >= 0) {
            *value = slice_make(suffix + non_shared, vlen);
            return 0;
        }
        pos = (size_t)(suffix - b->data) + non_shared + vlen;
    }
    return STOAT_ENOTFOUND;
}

int block_get(const block *b, slice target, buf *key, slice *value)
{
    block_damage d;
    uint32_t idx;
    size_t pos;
    int rc;

    buf_reset(key);
    *value = slice_make(NULL, 0);
    if (target.len < IKEY_SUFFIX_LEN)
        return status_err(STOAT_EINVAL, "block get: target of %zu bytes is not an internal key",
                          target.len);
    if (b->restarts == 0)
        return STOAT_ENOTFOUND;
    if (block_search_restarts(b, target, &idx, &d) != 0 ||
        block_restart_off(b, idx, &pos, &d) != 0)
        return block_corrupt(b, &d);
    if ((rc = block_get_scan(b, pos, target, key, value)) != 0) {
        buf_reset(key);
        *value = slice_make(NULL, 0);
    }
    return rc;
}

void block_iter_seek_for_prev(block_iter *it, slice target)
{
    block_iter_seek(it, target);
    if (it->b == NULL || it->status != 0)
        return;
    if (!block_iter_valid(it))
        block_iter_seek_last(it);
    else if (ikey_cmp(it->key, target) > 0)
        block_iter_prev(it);
}
