/*
 * skiplist.c - arena skiplist of internal keys with lock-free readers.
 *
 * Node layout in the arena (8-byte aligned, one allocation per node):
 *
 *     _Atomic u64 value    (len << 32) | arena offset of the value bytes
 *     u32 key_len
 *     u8  height, 3 bytes padding
 *     _Atomic u32 next[height]
 *     key bytes (key_len), then the first value's bytes
 *
 * Invariants: at every level the links run in strictly increasing ikey_cmp
 * order and end in 0; a node linked at level i is linked at every level
 * below i; the head's tower has SKIPLIST_MAX_HEIGHT links and no key.
 * Publication (the whole threading story): the writer fills a node,
 * including its own links, before a release store makes it reachable, level
 * 0 first; readers load links and values with acquire. The list's height is
 * a hint for where searches start: a reader that sees a new height before
 * the head's links at that height just finds 0 there and moves down.
 */
#include "skiplist.h"

#include <assert.h>
#include <stdalign.h>
#include <string.h>

#include "coding.h"
#include "ikey.h"
#include "status.h"

typedef struct sl_node {
    _Atomic uint64_t value;
    uint32_t key_len;
    uint8_t height;
    uint8_t pad[3];
    _Atomic uint32_t next[];
} sl_node;

_Static_assert(sizeof(sl_node) == 16, "node header is 16 bytes");
_Static_assert(SKIPLIST_NODE_OVERHEAD <= 96, "MEMTABLE_ENTRY_OVERHEAD covers a node");

static sl_node *sl_node_at(const skiplist *sl, uint32_t off)
{
    return arena_ptr(sl->arena, off);
}

static uint32_t sl_next_at(const skiplist *sl, uint32_t off, int level)
{
    return atomic_load_explicit(&sl_node_at(sl, off)->next[level], memory_order_acquire);
}

static slice sl_node_key(const sl_node *n)
{
    return slice_make((const char *)n + sizeof(sl_node) + 4u * n->height, n->key_len);
}

static uint64_t sl_pack(uint32_t off, uint32_t len)
{
    return ((uint64_t)len << 32) | off;
}

/* Orders a node's key against the internal key ukey ++ suffix (8 bytes). */
static int sl_cmp(const skiplist *sl, uint32_t node, slice ukey, const char *suffix)
{
    slice k = sl_node_key(sl_node_at(sl, node));
    int c = slice_cmp(ikey_user(k), ukey);

    if (c != 0)
        return c;
    return memcmp(k.data + k.len - IKEY_SUFFIX_LEN, suffix, IKEY_SUFFIX_LEN);
}

/*
 * Walks down from the head towards ukey ++ suffix. Returns the first node
 * >= it (0 if none); *lt gets the last node < it (the head if none), and
 * prevs, when not NULL, the last node < it at every level in use.
 */
static uint32_t sl_search(const skiplist *sl, slice ukey, const char *suffix, uint32_t *lt,
                          uint32_t *prevs)
{
    uint32_t x = sl->head, next;
    int level = atomic_load_explicit(&sl->height, memory_order_relaxed) - 1;

    for (;;) {
        next = sl_next_at(sl, x, level);
        if (next != 0 && sl_cmp(sl, next, ukey, suffix) < 0) {
            x = next;
            continue;
        }
        if (prevs)
            prevs[level] = x;
        if (level == 0)
            break;
        level--;
    }
    *lt = x;
    return next;
}

static uint32_t sl_search_ikey(const skiplist *sl, slice ikey, uint32_t *lt, uint32_t *prevs)
{
    assert(ikey.len >= IKEY_SUFFIX_LEN);
    return sl_search(sl, ikey_user(ikey), ikey.data + ikey.len - IKEY_SUFFIX_LEN, lt, prevs);
}

int skiplist_init(skiplist *sl, arena *a, uint64_t seed)
{
    size_t len = sizeof(sl_node) + 4u * SKIPLIST_MAX_HEIGHT;
    uint32_t off = arena_alloc(a, len, alignof(sl_node));
    sl_node *h;

    memset(sl, 0, sizeof(*sl));
    if (off == 0)
        return status_err(STOAT_ENOMEM, "skiplist: arena too small for the head node");
    h = arena_ptr(a, off);
    atomic_init(&h->value, 0);
    h->key_len = 0;
    h->height = SKIPLIST_MAX_HEIGHT;
    for (int i = 0; i < SKIPLIST_MAX_HEIGHT; i++)
        atomic_init(&h->next[i], 0);
    sl->arena = a;
    sl->head = off;
    atomic_init(&sl->height, 1);
    atomic_init(&sl->count, 0);
    sl->rnd = seed ? seed : 0x9e3779b97f4a7c15ull;
    return 0;
}

/* Height 1 with probability 3/4, each further level with probability 1/4. */
static int sl_random_height(skiplist *sl)
{
    int h = 1;

    while (h < SKIPLIST_MAX_HEIGHT) {
        sl->rnd ^= sl->rnd << 13;
        sl->rnd ^= sl->rnd >> 7;
        sl->rnd ^= sl->rnd << 17;
        if ((sl->rnd & 3) != 0)
            break;
        h++;
    }
    return h;
}

static int sl_full(const skiplist *sl, uint64_t need)
{
    return status_err(STOAT_ENOMEM,
                      "skiplist: arena full (%llu of %llu bytes used, %llu more needed)",
                      (unsigned long long)arena_used(sl->arena),
                      (unsigned long long)arena_capacity(sl->arena), (unsigned long long)need);
}

/* Copies value into the arena and swaps it into node in one atomic store. */
static int sl_replace(skiplist *sl, uint32_t node, slice value)
{
    uint32_t off;

    if (value.len > UINT32_MAX || (off = arena_alloc(sl->arena, value.len, 1)) == 0)
        return sl_full(sl, value.len);
    if (value.len)
        memcpy(arena_ptr(sl->arena, off), value.data, value.len);
    atomic_store_explicit(&sl_node_at(sl, node)->value, sl_pack(off, (uint32_t)value.len),
                          memory_order_release);
    return 0;
}

/* Allocates and fills a node of the given height; 0 when the arena is full. */
static uint32_t sl_node_new(skiplist *sl, int height, slice ikey, slice value)
{
    uint64_t tower = 4u * (uint64_t)height;
    uint64_t len = sizeof(sl_node) + tower + ikey.len + value.len;
    uint32_t off;
    sl_node *n;
    char *key;

    if (ikey.len > UINT32_MAX || value.len > UINT32_MAX || len > ARENA_MAX_CAPACITY)
        return 0;
    if ((off = arena_alloc(sl->arena, (size_t)len, alignof(sl_node))) == 0)
        return 0;
    n = arena_ptr(sl->arena, off);
    n->key_len = (uint32_t)ikey.len;
    n->height = (uint8_t)height;
    key = (char *)n + sizeof(sl_node) + tower;
    memcpy(key, ikey.data, ikey.len);
    if (value.len)
        memcpy(key + ikey.len, value.data, value.len);
    atomic_init(&n->value, sl_pack(off + (uint32_t)(sizeof(sl_node) + tower + ikey.len),
                                   (uint32_t)value.len));
    return off;
}

int skiplist_insert(skiplist *sl, slice ikey, slice value, int *added)
{
    uint32_t prevs[SKIPLIST_MAX_HEIGHT], lt, ge, off;
    int height = atomic_load_explicit(&sl->height, memory_order_relaxed), h;
    sl_node *n;

    if (added)
        *added = 0;
    if (ikey.len < IKEY_SUFFIX_LEN)
        return status_err(STOAT_EINVAL, "skiplist: internal key of %zu bytes", ikey.len);
    for (int i = height; i < SKIPLIST_MAX_HEIGHT; i++)
        prevs[i] = sl->head;
    ge = sl_search_ikey(sl, ikey, &lt, prevs);
    if (ge != 0 && sl_cmp(sl, ge, ikey_user(ikey), ikey.data + ikey.len - IKEY_SUFFIX_LEN) == 0)
        return sl_replace(sl, ge, value);
    h = sl_random_height(sl);
    if ((off = sl_node_new(sl, h, ikey, value)) == 0)
        return sl_full(sl, sizeof(sl_node) + 4u * h + ikey.len + value.len);
    n = arena_ptr(sl->arena, off);
    /* The node's own links first (it is invisible), then publish bottom-up. */
    for (int i = 0; i < h; i++)
        atomic_init(&n->next[i], sl_next_at(sl, prevs[i], i));
    for (int i = 0; i < h; i++)
        atomic_store_explicit(&sl_node_at(sl, prevs[i])->next[i], off, memory_order_release);
    if (h > height)
        atomic_store_explicit(&sl->height, h, memory_order_relaxed);
    atomic_fetch_add_explicit(&sl->count, 1, memory_order_relaxed);
    if (added)
        *added = 1;
    return 0;
}

uint64_t skiplist_count(const skiplist *sl)
{
    return atomic_load_explicit(&sl->count, memory_order_relaxed);
}

uint32_t skiplist_first(const skiplist *sl)
{
    return sl_next_at(sl, sl->head, 0);
}

uint32_t skiplist_last(const skiplist *sl)
{
    uint32_t x = sl->head, next;

    for (int level = atomic_load_explicit(&sl->height, memory_order_relaxed) - 1; level >= 0;
         level--) {
        while ((next = sl_next_at(sl, x, level)) != 0)
            x = next;
    }
    return x == sl->head ? 0 : x;
}

uint32_t skiplist_seek(const skiplist *sl, slice target)
{
    uint32_t lt;

    return sl_search_ikey(sl, target, &lt, NULL);
}

uint32_t skiplist_seek_for_prev(const skiplist *sl, slice target)
{
    uint32_t lt, ge = sl_search_ikey(sl, target, &lt, NULL);

    if (ge != 0 && ikey_cmp(skiplist_key(sl, ge), target) == 0)
        return ge;
    return lt == sl->head ? 0 : lt;
}

uint32_t skiplist_next(const skiplist *sl, uint32_t node)
{
    return sl_next_at(sl, node, 0);
}

uint32_t skiplist_prev(const skiplist *sl, uint32_t node)
{
    uint32_t lt;

    sl_search_ikey(sl, skiplist_key(sl, node), &lt, NULL);
    return lt == sl->head ? 0 : lt;
}

uint32_t skiplist_find(const skiplist *sl, slice ukey, uint64_t version)
{
    char suffix[IKEY_SUFFIX_LEN];
    uint32_t lt, ge;

    put_be64(suffix, UINT64_MAX - version);
    ge = sl_search(sl, ukey, suffix, &lt, NULL);
    if (ge == 0 || slice_cmp(ikey_user(skiplist_key(sl, ge)), ukey) != 0)
        return 0;
    return ge;
}

slice skiplist_key(const skiplist *sl, uint32_t node)
{
    return sl_node_key(sl_node_at(sl, node));
}

slice skiplist_value(const skiplist *sl, uint32_t node)
{
    uint64_t v = atomic_load_explicit(&sl_node_at(sl, node)->value, memory_order_acquire);

    return slice_make(arena_ptr(sl->arena, (uint32_t)v), (size_t)(v >> 32));
}
