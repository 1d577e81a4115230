/*
 * block.c - block parsing and the block iterator.
 *
 * The block's bytes are untrusted: every varint, length, restart offset
 * and shared prefix is bounds-checked before use, and a failure puts the
 * iterator in a sticky error state (status != 0, not valid). Keys at
 * restart points (shared == 0) are returned straight from the block;
 * other keys are rebuilt in the iterator's key buffer: key_inline, or
 * key_heap once a key outgrows it (kept for the iterator's life).
 * Invariant while valid: restart_off(restart_idx) <= cur < next <=
 * b->restarts. One thread per iterator.
 *
 * Going backward, entries can only be decoded forward from a restart
 * point, so prev scans the current entry's interval from its start; it
 * keeps every entry it passes (offsets, value, a copy of the key) in the
 * backward cache, and while the cache belongs to the current position
 * (prev_at == cur) the next prev just pops its last entry. Anything that
 * moves the iterator otherwise leaves prev_at behind, which retires the
 * cache; block_iter_set resets it (a new block).
 *
 * block_get is the point lookup of sst_reader_get: the same restart
 * search and scan as block_iter_seek, without an iterator, rebuilding
 * keys straight into the caller's buffer (which ends up holding the key
 * found), so a get allocates nothing here. block_get_hashed starts the
 * same scan where the block's hash index (format 3 data blocks) says the
 * user key starts, skipping the binary search; iterators never use the
 * index.
 */
#include "table/block.h"
#include "table/block_builder.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/coding.h"
#include "base/ikey.h"
#include "base/status.h"

/* The tail of a block with a hash index: restarts, n buckets of a byte,
 * fixed16 n, fixed32 count | BLOCK_HASH_FLAG (FORMAT.md). */
static int block_init_hashed(block *b, const char *data, size_t len, uint32_t n)
{
    uint32_t nb;

    if (len < 6 || n == 0 || n > BLOCK_HASH_MAX_RESTARTS)
        goto bad;
    nb = get_fixed16(data + len - 6);
    if (nb == 0 || 4 * (size_t)n + nb + 6 > len)
        goto bad;
    b->data = data;
    b->len = len;
    b->n_restarts = n;
    b->n_buckets = nb;
    b->buckets = (const unsigned char *)data + len - 6 - nb;
    b->restarts = len - 6 - nb - 4 * (size_t)n;
    return 0;
bad:
    return status_err(STOAT_ECORRUPT, "%s: block at offset %llu: bad hash index (%zu bytes)",
                      b->path, (unsigned long long)b->offset, len);
}

int block_init(block *b, const char *data, size_t len, const char *path, uint64_t offset)
{
    uint32_t n;

    memset(b, 0, sizeof(*b));
    b->path = path;
    b->offset = offset;
    if (len < 4)
        goto bad;
    n = get_fixed32(data + len - 4);
    if (n & BLOCK_HASH_FLAG)
        return block_init_hashed(b, data, len, n & ~BLOCK_HASH_FLAG);
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
    it->prev_at = SIZE_MAX;
}

void block_iter_set(block_iter *it, const block *b)
{
    it->b = b;
    it->cur = it->next = b->restarts;
    it->restart_idx = b->n_restarts;
    it->key = it->value = slice_make(NULL, 0);
    it->key_in_buf = 0;
    it->prev_at = SIZE_MAX;
    it->status = 0;
}

void block_iter_free(block_iter *it)
{
    free(it->key_heap);
    free(it->prev);
    buf_free(&it->prev_keys);
    block_iter_init(it);
}

static void block_iter_invalidate(block_iter *it)
{
    it->cur = it->next = it->b->restarts;
    it->restart_idx = it->b->n_restarts;
    it->key = it->value = slice_make(NULL, 0);
    it->key_in_buf = 0;
}

static void block_iter_nomem(block_iter *it)
{
    it->status = status_err(STOAT_ENOMEM, "%s: out of memory reading a block", it->b->path);
    block_iter_invalidate(it);
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

/* One entry's header, decoded and checked. */
typedef struct block_entry {
    uint32_t shared, non_shared, vlen;
    const char *suffix;     /* the key suffix; the value follows it */
    size_t next;            /* offset of the entry after it */
} block_entry;

/* The three header varints at p, any length; NULL if they run past limit. */
static const char *block_decode_varints(const char *p, const char *limit, block_entry *e)
{
    if ((p = get_varint32(p, limit, &e->shared)) == NULL ||
        (p = get_varint32(p, limit, &e->non_shared)) == NULL)
        return NULL;
    return get_varint32(p, limit, &e->vlen);
}

/* Decodes the entry at pos, whose predecessor's key is prev_len bytes
 * (0 at a restart point): -1 with *d filled when it does not fit in the
 * entries or its key lengths are impossible. */
static inline int block_entry_decode(const block *b, size_t pos, size_t prev_len, block_entry *e,
                                     block_damage *d)
{
    const char *p = b->data + pos, *limit = b->data + b->restarts;

    d->pos = pos;
    d->what = "bad entry";
    /* Nearly always each of the three fits in one byte (below 128). */
    if (limit - p >= 3 && ((p[0] | p[1] | p[2]) & 0x80) == 0) {
        e->shared = (unsigned char)p[0];
        e->non_shared = (unsigned char)p[1];
        e->vlen = (unsigned char)p[2];
        p += 3;
    } else if ((p = block_decode_varints(p, limit, e)) == NULL) {
        return -1;
    }
    if ((uint64_t)e->non_shared + e->vlen > (uint64_t)(limit - p))
        return -1;
    if (e->shared > prev_len || (size_t)e->shared + e->non_shared < IKEY_SUFFIX_LEN) {
        d->what = "bad key length";
        return -1;
    }
    e->suffix = p;
    e->next = (size_t)(p - b->data) + e->non_shared + e->vlen;
    return 0;
}

/* Grows the key buffer to at least n bytes, moving its first `keep`
 * bytes along. NULL on ENOMEM. */
static char *block_iter_key_grow(block_iter *it, size_t n, size_t keep)
{
    size_t cap = it->key_heap ? it->key_cap : sizeof(it->key_inline);
    char *p;

    cap = n > 2 * cap ? n : 2 * cap;
    if (it->key_heap != NULL) {
        if ((p = realloc(it->key_heap, cap)) == NULL)
            return NULL;
    } else {
        if ((p = malloc(cap)) == NULL)
            return NULL;
        memcpy(p, it->key_inline, keep);
    }
    it->key_heap = p;
    it->key_cap = cap;
    return p;
}

/* The key buffer, made to hold n bytes (see block_iter_key_grow). */
static inline char *block_iter_key_room(block_iter *it, size_t n, size_t keep)
{
    if (it->key_heap == NULL)
        return n <= sizeof(it->key_inline) ? it->key_inline : block_iter_key_grow(it, n, keep);
    return n <= it->key_cap ? it->key_heap : block_iter_key_grow(it, n, keep);
}

/* Makes the entry at pos current; its shared prefix comes from it->key. */
static int block_iter_parse(block_iter *it, size_t pos)
{
    block_damage d;
    block_entry e;
    char *kb;

    if (block_entry_decode(it->b, pos, it->key.len, &e, &d) != 0) {
        block_iter_corrupt(it, d.pos, d.what);
        return -1;
    }
    if (e.shared == 0) {
        it->key = slice_make(e.suffix, e.non_shared);
        it->key_in_buf = 0;
    } else {
        /* The prefix is in the buffer already, or (key in the block or the
         * backward cache, never in the buffer) copied there. */
        if ((kb = block_iter_key_room(it, (size_t)e.shared + e.non_shared,
                                      it->key_in_buf ? e.shared : 0)) == NULL) {
            block_iter_nomem(it);
            return -1;
        }
        if (!it->key_in_buf)
            memcpy(kb, it->key.data, e.shared);
        memcpy(kb + e.shared, e.suffix, e.non_shared);
        it->key = slice_make(kb, (size_t)e.shared + e.non_shared);
        it->key_in_buf = 1;
    }
    it->value = slice_make(e.suffix + e.non_shared, e.vlen);
    it->cur = pos;
    it->next = e.next;
    return 0;
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

/* Appends the current entry to the backward cache. */
static int block_iter_push_prev(block_iter *it)
{
    block_prev_entry *e;

    if (it->n_prev == it->prev_cap) {
        size_t cap = it->prev_cap ? 2 * it->prev_cap : 16;
        if ((e = realloc(it->prev, cap * sizeof(*e))) == NULL)
            return -1;
        it->prev = e;
        it->prev_cap = cap;
    }
    e = &it->prev[it->n_prev];
    e->cur = it->cur;
    e->next = it->next;
    e->key_off = it->prev_keys.len;
    e->key_len = it->key.len;
    e->val_off = (size_t)(it->value.data - it->b->data);
    e->val_len = it->value.len;
    if (buf_append(&it->prev_keys, it->key.data, it->key.len) != 0)
        return -1;
    it->n_prev++;
    return 0;
}

/*
 * Decodes restart interval idx from its start up to the entry that ends
 * at `end`, which becomes current; the entries before it go to the
 * backward cache. end must be where an entry ends (else "entries
 * overlap").
 */
static void block_iter_scan_to(block_iter *it, uint32_t idx, size_t end)
{
    it->n_prev = 0;
    buf_reset(&it->prev_keys);
    it->prev_at = SIZE_MAX;
    if (block_iter_to_restart(it, idx) != 0)
        return;
    while (it->next < end) {
        if (block_iter_push_prev(it) != 0) {
            block_iter_nomem(it);
            return;
        }
        if (block_iter_parse(it, it->next) != 0)
            return;
    }
    if (it->next != end) {
        block_iter_corrupt(it, it->cur, "entries overlap");
        return;
    }
    it->prev_at = it->cur;
}

void block_iter_seek_last(block_iter *it)
{
    if (it->b == NULL || it->status != 0)
        return;
    if (it->b->restarts == 0) {
        block_iter_invalidate(it);
        return;
    }
    block_iter_scan_to(it, it->b->n_restarts - 1, it->b->restarts);
}

void block_iter_next(block_iter *it)
{
    if (block_iter_valid(it))
        block_iter_step(it);
}

/* Makes the last entry of the backward cache current. */
static void block_iter_pop_prev(block_iter *it)
{
    const block_prev_entry *e = &it->prev[--it->n_prev];

    it->cur = e->cur;
    it->next = e->next;
    it->key = slice_make(it->prev_keys.data + e->key_off, e->key_len);
    it->key_in_buf = 0;
    it->value = slice_make(it->b->data + e->val_off, e->val_len);
    it->prev_at = it->cur;
}

void block_iter_prev(block_iter *it)
{
    size_t original = it->cur, off;

    if (!block_iter_valid(it))
        return;
    if (it->prev_at == it->cur && it->n_prev > 0) {
        block_iter_pop_prev(it); /* same interval: restart_idx stays */
        return;
    }
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
    block_iter_scan_to(it, it->restart_idx, original);
}

/* The full key stored at restart point idx. */
static int block_restart_key(const block *b, uint32_t idx, slice *key, block_damage *d)
{
    block_entry e;
    size_t off;

    if (block_restart_off(b, idx, &off, d) != 0)
        return -1;
    if (block_entry_decode(b, off, 0, &e, d) != 0) { /* 0: it shares nothing */
        d->what = "bad restart entry";
        return -1;
    }
    *key = slice_make(e.suffix, e.non_shared);
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

/*
 * From restart point idx on, makes the first entry with key >= target
 * current (or runs past the end). Unlike stepping, every key is rebuilt
 * in the key buffer, restart keys too, so the loop stays tight.
 */
static void block_iter_seek_scan(block_iter *it, uint32_t idx, slice target)
{
    const block *b = it->b;
    block_damage d;
    block_entry e = {0};
    size_t pos, len = 0;
    char *kb = NULL;

    if (block_iter_restart(it, idx, &pos) != 0)
        return;
    for (; pos < b->restarts; pos = e.next) {
        if (block_entry_decode(b, pos, len, &e, &d) != 0) {
            block_iter_corrupt(it, d.pos, d.what);
            return;
        }
        if ((kb = block_iter_key_room(it, (size_t)e.shared + e.non_shared, e.shared)) == NULL) {
            block_iter_nomem(it);
            return;
        }
        memcpy(kb + e.shared, e.suffix, e.non_shared);
        len = (size_t)e.shared + e.non_shared;
        if (ikey_cmp(slice_make(kb, len), target) >= 0)
            break;
    }
    if (pos >= b->restarts) {
        block_iter_invalidate(it);
        return;
    }
    it->cur = pos;
    it->next = e.next;
    it->key = slice_make(kb, len);
    it->key_in_buf = 1;
    it->value = slice_make(e.suffix + e.non_shared, e.vlen);
    while (idx + 1 < b->n_restarts && get_fixed32(b->data + b->restarts + 4 * (size_t)(idx + 1)) <= pos)
        idx++;
    it->restart_idx = idx;
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
    block_iter_seek_scan(it, idx, target);
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
    block_damage d;
    block_entry e;

    buf_reset(key);
    for (; pos < b->restarts; pos = e.next) {
        if (block_entry_decode(b, pos, key->len, &e, &d) != 0)
            return block_corrupt(b, &d);
        /* key keeps its first e.shared bytes (buf_reserve counts from len) */
        key->len = e.shared;
        if (e.non_shared > key->cap - key->len && buf_reserve(key, e.non_shared) != 0)
            return status_err(STOAT_ENOMEM, "%s: out of memory reading a block", b->path);
        memcpy(key->data + key->len, e.suffix, e.non_shared);
        key->len += e.non_shared;
        if (ikey_cmp(slice_make(key->data, key->len), target) >= 0) {
            *value = slice_make(e.suffix + e.non_shared, e.vlen);
            return 0;
        }
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

/* The binary search's answer where the hash index said the user key is
 * absent: corruption if the key is there after all. */
static int block_get_confirm_absent(const block *b, slice target, buf *key, slice *value)
{
    int rc = block_get(b, target, key, value);

    if (rc == 0 && slice_cmp(ikey_user(slice_make(key->data, key->len)), ikey_user(target)) == 0) {
        buf_reset(key);
        *value = slice_make(NULL, 0);
        return status_err(STOAT_ECORRUPT, "%s: block at offset %llu: hash index misses a key",
                          b->path, (unsigned long long)b->offset);
    }
    return rc;
}

int block_get_hashed(const block *b, slice target, uint64_t hash, buf *key, slice *value)
{
    block_damage d;
    unsigned r;
    slice k;
    size_t pos;
    int rc;

    if (b->n_buckets == 0 || target.len < IKEY_SUFFIX_LEN || b->restarts == 0)
        return block_get(b, target, key, value);
    r = b->buckets[block_hash_bucket(hash, b->n_buckets)];
    if (r == BLOCK_HASH_COLLISION)
        return block_get(b, target, key, value);
    if (r == BLOCK_HASH_EMPTY)
        return block_get_confirm_absent(b, target, key, value);
    buf_reset(key);
    *value = slice_make(NULL, 0);
    if (r >= b->n_restarts)
        return status_err(STOAT_ECORRUPT, "%s: block at offset %llu: hash bucket names restart "
                          "%u of %u", b->path, (unsigned long long)b->offset, r, b->n_restarts);
    /* Scanning from restart r finds what the binary search would when
     * r's key is below the target (restart keys increase); otherwise,
     * or when r is wrong, the binary search decides. */
    if (r > 0) {
        if (block_restart_key(b, r, &k, &d) != 0)
            return block_corrupt(b, &d);
        if (ikey_cmp(k, target) >= 0)
            return block_get(b, target, key, value);
    }
    if (block_restart_off(b, r, &pos, &d) != 0)
        return block_corrupt(b, &d);
    if ((rc = block_get_scan(b, pos, target, key, value)) != 0) {
        buf_reset(key);
        *value = slice_make(NULL, 0);
    }
    return rc;
}
