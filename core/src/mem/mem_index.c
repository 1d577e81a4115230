/*
 * mem_index.c - the user-key hash index of a memtable (contract and
 * threading in mem_index.h).
 *
 * Invariants: a table's size is a power of two; count < size / 2, so
 * every probe sequence reaches an empty slot; a slot, once filled, only
 * changes to a node of the same user key with a newer version; retired
 * tables are never written again.
 */
#include "mem/mem_index.h"

#include <stdlib.h>

#include "base/ikey.h"
#include "base/pages.h"

/* A slot: the high half of the user key's hash (its tag) above the node
 * offset; 0: empty. The tag spares most probes a visit to a node, and a
 * rehash every one. */
struct mem_index_table {
    uint32_t mask;                  /* slots - 1 */
    _Atomic uint64_t slot[];
};

#define SLOT(hash, node) (((hash) >> 32) << 32 | (node))
#define SLOT_NODE(s) ((uint32_t)(s))
#define SLOT_TAG(s) ((s) >> 32)

#define MEM_INDEX_FIRST_SLOTS 1024u

static size_t mem_index_table_bytes(uint32_t slots)
{
    return sizeof(mem_index_table) + (size_t)slots * sizeof(uint64_t);
}

/* A table of empty slots (zero pages: a slot is 0 until written). */
static mem_index_table *mem_index_table_new(uint32_t slots)
{
    mem_index_table *t = pages_zalloc(mem_index_table_bytes(slots));

    if (t != NULL)
        t->mask = slots - 1;
    return t;
}

static void mem_index_table_free(mem_index_table *t)
{
    if (t != NULL)
        pages_free(t, mem_index_table_bytes(t->mask + 1));
}

void mem_index_init(mem_index *x, uint64_t arena_size)
{
    uint32_t slots = MEM_INDEX_FIRST_SLOTS, max = MEM_INDEX_FIRST_SLOTS;

    while (slots < (1u << 30) && (uint64_t)slots * 256 < arena_size)
        slots *= 2;
    while (max < (1u << 30) && (uint64_t)2 * max * sizeof(uint64_t) <= arena_size / 8)
        max *= 2;
    x->max_slots = max > slots ? max : slots;
    x->retired = NULL;
    x->n_retired = 0;
    x->count = 0;
    atomic_init(&x->cur, mem_index_table_new(slots));
}

void mem_index_free(mem_index *x)
{
    mem_index_table_free(atomic_load_explicit(&x->cur, memory_order_relaxed));
    for (size_t i = 0; i < x->n_retired; i++)
        mem_index_table_free(x->retired[i]);
    free(x->retired);
    atomic_store_explicit(&x->cur, NULL, memory_order_relaxed);
    x->retired = NULL;
    x->n_retired = 0;
    x->count = 0;
}

static int mem_index_same_user(const skiplist *sl, uint32_t node, slice ukey)
{
    return slice_cmp(ikey_user(skiplist_key(sl, node)), ukey) == 0;
}

/* The first slot of a key: from its tag, so a rehash needs no key. */
static inline uint32_t mem_index_home(uint64_t tag, uint32_t mask)
{
    return (uint32_t)tag & mask;
}

/* Copies every filled slot of `from` into `to` (empty, larger): each user
 * key appears once in `from`, so no key is compared, nor read. */
static void mem_index_rehash(const mem_index_table *from, mem_index_table *to)
{
    for (uint32_t i = 0; i <= from->mask; i++) {
        uint64_t s = atomic_load_explicit(&from->slot[i], memory_order_relaxed);
        uint32_t j;

        if (s == 0)
            continue;
        for (j = mem_index_home(SLOT_TAG(s), to->mask);
             atomic_load_explicit(&to->slot[j], memory_order_relaxed) != 0; j = (j + 1) & to->mask)
            ;
        atomic_init(&to->slot[j], s);
    }
}

/* Publishes a table twice the size of cur; the old one is retired. On
 * ENOMEM the index is turned off (readers then search the skiplist). */
static mem_index_table *mem_index_grow(mem_index *x, mem_index_table *cur)
{
    mem_index_table *t = cur->mask < UINT32_MAX / 4 ? mem_index_table_new(2 * (cur->mask + 1))
                                                    : NULL;
    mem_index_table **r = realloc(x->retired, (x->n_retired + 1) * sizeof(*r));

    if (r != NULL)
        x->retired = r;
    if (t == NULL || r == NULL) {
        mem_index_table_free(t);
        /* Off for good: cur cannot be freed while readers may probe it. */
        if (r != NULL)
            x->retired[x->n_retired++] = cur;
        atomic_store_explicit(&x->cur, NULL, memory_order_release);
        return NULL;
    }
    mem_index_rehash(cur, t);
    x->retired[x->n_retired++] = cur;
    atomic_store_explicit(&x->cur, t, memory_order_release);
    return t;
}

void mem_index_add(mem_index *x, const skiplist *sl, slice ukey, uint64_t hash, uint32_t node)
{
    mem_index_table *t = atomic_load_explicit(&x->cur, memory_order_relaxed);
    uint64_t tag = hash >> 32, at;
    uint32_t i;

    if (t == NULL || node == 0)
        return;
    for (i = mem_index_home(tag, t->mask);; i = (i + 1) & t->mask) {
        at = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        if (at == 0)
            break;
        if (SLOT_TAG(at) == tag && mem_index_same_user(sl, SLOT_NODE(at), ukey)) {
            if (SLOT_NODE(at) != node && ikey_version(skiplist_key(sl, node)) >
                                             ikey_version(skiplist_key(sl, SLOT_NODE(at))))
                atomic_store_explicit(&t->slot[i], SLOT(hash, node), memory_order_release);
            return;
        }
    }
    if (x->count + 1 > (t->mask + 1) / 2) {
        if (t->mask + 1 >= x->max_slots)
            return;     /* full: this key is not indexed (mem_index.h) */
        if ((t = mem_index_grow(x, t)) == NULL)
            return;
        for (i = mem_index_home(tag, t->mask);
             atomic_load_explicit(&t->slot[i], memory_order_relaxed) != 0; i = (i + 1) & t->mask)
            ;
    }
    atomic_store_explicit(&t->slot[i], SLOT(hash, node), memory_order_release);
    x->count++;
}

void mem_index_prefetch(const mem_index *x, uint64_t hash)
{
    const mem_index_table *t = atomic_load_explicit(&x->cur, memory_order_relaxed);

    if (t != NULL)
        __builtin_prefetch((const void *)&t->slot[mem_index_home(hash >> 32, t->mask)], 1);
}

uint32_t mem_index_find(const mem_index *x, const skiplist *sl, slice ukey, uint64_t hash)
{
    const mem_index_table *t = atomic_load_explicit(&x->cur, memory_order_acquire);
    uint64_t tag = hash >> 32, at;
    uint32_t i;

    if (t == NULL)
        return 0;
    for (i = mem_index_home(tag, t->mask);; i = (i + 1) & t->mask) {
        at = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (at == 0)
            return 0;
        if (SLOT_TAG(at) == tag && mem_index_same_user(sl, SLOT_NODE(at), ukey))
            return SLOT_NODE(at);
    }
}
