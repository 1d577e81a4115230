/*
 * txn_writes.c - the buffered-writes map and its snapshot iterator.
 *
 * Entries are individually allocated (header, key and value in one block)
 * and indexed by an open-addressing table of entry numbers, resized at
 * half load. The iterator copies the entries' encoded internal keys and
 * stored values into one sorted array at creation.
 */
#include "mvcc/txn_writes.h"

#include <stdlib.h>
#include <string.h>

#include "base/checksum.h"
#include "base/ikey.h"
#include "base/vec.h"
#include "stoat.h"

static size_t slot_of(const txn_writes *p, slice key)
{
    return (size_t)checksum64(key.data, key.len) & (p->n_slots - 1);
}

static txn_write **txn_writes_find(const txn_writes *p, slice key, size_t *slot)
{
    if (p->n_slots == 0)
        return NULL;
    for (size_t s = slot_of(p, key);; s = (s + 1) & (p->n_slots - 1)) {
        uint32_t e = p->slots[s];
        if (e == 0) {
            *slot = s;
            return NULL;
        }
        if (slice_cmp(p->entries[e - 1]->key, key) == 0) {
            *slot = s;
            return &p->entries[e - 1];
        }
    }
}

static int txn_writes_grow(txn_writes *p)
{
    size_t n_slots = p->n_slots ? 2 * p->n_slots : 64;
    uint32_t *slots = calloc(n_slots, sizeof(*slots));

    if (slots == NULL)
        return STOAT_ENOMEM;
    free(p->slots);
    p->slots = slots;
    p->n_slots = n_slots;
    for (size_t i = 0; i < p->n; i++) {
        size_t s = slot_of(p, p->entries[i]->key);
        while (slots[s] != 0)
            s = (s + 1) & (n_slots - 1);
        slots[s] = (uint32_t)(i + 1);
    }
    return 0;
}

static txn_write *entry_new(uint8_t meta, uint8_t user_meta, uint64_t expires_at, slice key,
                                slice value)
{
    txn_write *e = malloc(sizeof(*e) + key.len + value.len);
    char *p;

    if (e == NULL)
        return NULL;
    p = (char *)(e + 1);
    memcpy(p, key.data, key.len);
    if (value.len)
        memcpy(p + key.len, value.data, value.len);
    *e = (txn_write){meta, user_meta, expires_at, slice_make(p, key.len),
                         slice_make(p + key.len, value.len)};
    return e;
}

int txn_writes_put(txn_writes *p, uint8_t meta, uint8_t user_meta, uint64_t expires_at, slice key,
                slice value)
{
    txn_write **found, *e;
    size_t slot = 0;

    if ((p->n + 1) * 2 > p->n_slots && txn_writes_grow(p) != 0)
        return STOAT_ENOMEM;
    if ((e = entry_new(meta, user_meta, expires_at, key, value)) == NULL)
        return STOAT_ENOMEM;
    if ((found = txn_writes_find(p, key, &slot)) != NULL) {
        p->bytes -= (*found)->key.len + (*found)->value.len;
        free(*found);
        *found = e;
    } else {
        if (VEC_ROOM(p->entries, p->n, p->cap, 16) != 0) {
            free(e);
            return STOAT_ENOMEM;
        }
        p->entries[p->n++] = e;
        p->slots[slot] = (uint32_t)p->n;
    }
    p->bytes += key.len + value.len;
    return 0;
}

const txn_write *txn_writes_get(const txn_writes *p, slice key)
{
    size_t slot;
    txn_write **found = txn_writes_find(p, key, &slot);

    return found ? *found : NULL;
}

void txn_writes_free(txn_writes *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->entries[i]);
    free(p->entries);
    free(p->slots);
    *p = (txn_writes){0};
}

/* The snapshot iterator: a sorted array of (internal key, stored value). */

typedef struct pend_item {
    slice key, value;
} pend_item;

typedef struct txn_writes_iter {
    iter base;
    pend_item *items;
    size_t n;
    size_t pos;                 /* n = not valid */
    char *bytes;
} txn_writes_iter;

static int pi_valid(const iter *it)
{
    const txn_writes_iter *p = (const txn_writes_iter *)it;
    return p->pos < p->n;
}

static void pi_seek_first(iter *it)
{
    ((txn_writes_iter *)it)->pos = 0;
}

static void pi_seek_last(iter *it)
{
    txn_writes_iter *p = (txn_writes_iter *)it;
    p->pos = p->n ? p->n - 1 : 0;
}

/* Index of the first item >= target. */
static size_t pi_lower_bound(const txn_writes_iter *p, slice target)
{
    size_t lo = 0, hi = p->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ikey_cmp(p->items[mid].key, target) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void pi_seek(iter *it, slice target)
{
    txn_writes_iter *p = (txn_writes_iter *)it;
    p->pos = pi_lower_bound(p, target);
}

static void pi_seek_for_prev(iter *it, slice target)
{
    txn_writes_iter *p = (txn_writes_iter *)it;
    size_t i = pi_lower_bound(p, target);

    if (i < p->n && ikey_cmp(p->items[i].key, target) == 0)
        p->pos = i;
    else
        p->pos = i == 0 ? p->n : i - 1;
}

static void pi_next(iter *it)
{
    txn_writes_iter *p = (txn_writes_iter *)it;
    if (p->pos < p->n)
        p->pos++;
}

static void pi_prev(iter *it)
{
    txn_writes_iter *p = (txn_writes_iter *)it;
    p->pos = p->pos == 0 || p->pos >= p->n ? p->n : p->pos - 1;
}

static slice pi_key(const iter *it)
{
    const txn_writes_iter *p = (const txn_writes_iter *)it;
    return p->items[p->pos].key;
}

static slice pi_value(const iter *it)
{
    const txn_writes_iter *p = (const txn_writes_iter *)it;
    return p->items[p->pos].value;
}

static int pi_status(const iter *it)
{
    (void)it;
    return 0;
}

static void pi_free(iter *it)
{
    txn_writes_iter *p = (txn_writes_iter *)it;
    free(p->items);
    free(p->bytes);
    free(p);
}

static const struct iter_ops txn_writes_iter_ops = {
    pi_valid, pi_seek_first, pi_seek_last, pi_seek, pi_seek_for_prev,
    pi_next,  pi_prev,       pi_key,       pi_value, pi_status, pi_free,
};

static int cmp_items(const void *a, const void *b)
{
    return ikey_cmp(((const pend_item *)a)->key, ((const pend_item *)b)->key);
}

iter *txn_writes_iter_new(const txn_writes *p, uint64_t version)
{
    txn_writes_iter *it = calloc(1, sizeof(*it));
    size_t total = 0, off = 0;

    if (it == NULL)
        return NULL;
    it->base.ops = &txn_writes_iter_ops;
    for (size_t i = 0; i < p->n; i++) {
        const txn_write *e = p->entries[i];
        vstruct vs = {e->meta, e->user_meta, e->expires_at, e->value};
        total += e->key.len + IKEY_SUFFIX_LEN + vstruct_encoded_len(&vs);
    }
    it->items = malloc((p->n ? p->n : 1) * sizeof(*it->items));
    it->bytes = malloc(total ? total : 1);
    if (it->items == NULL || it->bytes == NULL) {
        pi_free(&it->base);
        return NULL;
    }
    for (size_t i = 0; i < p->n; i++) {
        const txn_write *e = p->entries[i];
        vstruct vs = {e->meta, e->user_meta, e->expires_at, e->value};
        size_t klen = ikey_encode(it->bytes + off, e->key.data, e->key.len, version);
        size_t vlen;

        it->items[i].key = slice_make(it->bytes + off, klen);
        off += klen;
        vlen = vstruct_encode(it->bytes + off, &vs);
        it->items[i].value = slice_make(it->bytes + off, vlen);
        off += vlen;
    }
    it->n = p->n;
    it->pos = p->n;
    qsort(it->items, it->n, sizeof(*it->items), cmp_items);
    return &it->base;
}
