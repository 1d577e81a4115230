/*
 * skiplist.c - arena skiplist of internal keys with lock-free readers.
 *
 * Node layout at the bottom of the arena (8-byte aligned, one allocation
 * per node):
 *
 *     _Atomic u64 value    (len << 32) | arena offset of the value bytes
 *     u32 key_len
 *     u8  height, u8 flags (SL_STAMPED), 2 bytes padding
 *     _Atomic u32 next[height]
 *     key bytes (key_len)
 *     u64 stamp, unaligned, only when flags has SL_STAMPED
 *
 * Values are allocated from the top of the arena, apart from their nodes.
 * Why: an insert's search visits some 30 nodes, nearly all cache misses in
 * a large memtable, and keeping values out of the nodes packs up to three
 * times as many nodes per cache level and page. In a test of 400,000
 * random inserts it saved about a fifth of the time with 100-byte values
 * and a tenth even with 19-byte ones (value-log pointers), against values
 * inline; a scan in key order, which reads every value, got no slower.
 *
 * Invariants: at every level the links run in strictly increasing ikey_cmp
 * order and end in 0; a node linked at level i is linked at every level
 * below i; the head's tower has SKIPLIST_MAX_HEIGHT links and no key. The
 * splice holds, at every level, the last node <= the last key inserted:
 * the search path of that key, valid because only the writer changes the
 * list. Publication (the whole threading story): the writer fills a node,
 * including its own links and value, before a release store makes it
 * reachable, level 0 first; readers load links and values with acquire.
 * The list's height is a hint for where searches start: a reader that sees
 * a new height before the head's links at that height just finds 0 there
 * and moves down.
 */
#include "mem/skiplist.h"
#include "base/perturb.h"

#include <assert.h>
#include <stdalign.h>
#include <string.h>

#include "base/coding.h"
#include "base/ikey.h"
#include "base/status.h"

typedef struct sl_node {
    _Atomic uint64_t value;
    uint32_t key_len;
    uint8_t height;
    uint8_t flags;
    uint8_t pad[2];
    _Atomic uint32_t next[];
} sl_node;

/* flags: the node's stamp follows its key (skiplist.h, "Stamps"). */
#define SL_STAMPED 1

_Static_assert(sizeof(sl_node) == 16, "node header is 16 bytes");

/* A search target: an internal key given as its user key and suffix, so
 * that a lookup by user key and version needs no contiguous copy. */
typedef struct sl_target {
    const char *ukey;
    size_t ulen;
    const char *suffix;     /* IKEY_SUFFIX_LEN bytes */
} sl_target;

static sl_node *sl_node_at(const skiplist *sl, uint32_t off)
{
    return arena_ptr(sl->arena, off);
}

static uint32_t sl_next_at(const skiplist *sl, uint32_t off, int level)
{
    return atomic_load_explicit(&sl_node_at(sl, off)->next[level], memory_order_acquire);
}

static const char *sl_key_bytes(const sl_node *n)
{
    return (const char *)n + sizeof(sl_node) + 4u * n->height;
}

static slice sl_node_key(const sl_node *n)
{
    return slice_make(sl_key_bytes(n), n->key_len);
}

static uint64_t sl_pack(uint32_t off, uint32_t len)
{
    return ((uint64_t)len << 32) | off;
}


/*
 * memcmp's sign, eight bytes at a time: big-endian numbers order like
 * their bytes. Keys here are short, and the two calls to memcmp per
 * comparison were a sixth of all the time spent comparing.
 */
static inline int sl_bytes_cmp(const char *a, const char *b, size_t n)
{
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        uint64_t x = get_be64(a), y = get_be64(b);
        if (x != y)
            return x < y ? -1 : 1;
    }
    for (; n > 0; a++, b++, n--) {
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
    }
    return 0;
}

/* Orders node's internal key against the target, as ikey_cmp does: user
 * keys bytewise with the shorter first on a common prefix, then suffixes. */
static inline int sl_cmp(const sl_node *node, const sl_target *t)
{
    const char *k = sl_key_bytes(node);
    size_t ulen = node->key_len - IKEY_SUFFIX_LEN;
    int c;

    if (ulen == t->ulen) {
        if ((c = sl_bytes_cmp(k, t->ukey, ulen)) != 0)
            return c;
        return sl_bytes_cmp(k + ulen, t->suffix, IKEY_SUFFIX_LEN);
    }
    c = sl_bytes_cmp(k, t->ukey, ulen < t->ulen ? ulen : t->ulen);
    return c != 0 ? c : ulen < t->ulen ? -1 : 1;
}

static sl_target sl_target_of(slice ikey)
{
    sl_target t = {ikey.data, ikey.len - IKEY_SUFFIX_LEN, ikey.data + ikey.len - IKEY_SUFFIX_LEN};

    assert(ikey.len >= IKEY_SUFFIX_LEN);
    return t;
}

/* 1 if node is 0 (the end) or its key >= the target. */
static int sl_at_or_after(const skiplist *sl, uint32_t node, const sl_target *t)
{
    return node == 0 || sl_cmp(sl_node_at(sl, node), t) >= 0;
}

/*
 * Walks down from the head towards the target. Returns the first node >=
 * it (0 if none); *lt gets the last node < it (the head if none), and
 * prevs, when not NULL, the last node < it at every level in use.
 */
static uint32_t sl_search(const skiplist *sl, const sl_target *t, uint32_t *lt, uint32_t *prevs)
{
    uint32_t x = sl->head, next;
    int level = atomic_load_explicit(&sl->height, memory_order_relaxed) - 1;

    for (;;) {
        next = sl_next_at(sl, x, level);
        if (next != 0 && sl_cmp(sl_node_at(sl, next), t) < 0) {
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
    for (int i = 0; i < SKIPLIST_MAX_HEIGHT; i++) {
        atomic_init(&h->next[i], 0);
        sl->splice[i] = off;
    }
    sl->arena = a;
    sl->head = off;
    atomic_init(&sl->height, 1);
    atomic_init(&sl->count, 0);
    sl->rnd = seed ? seed : 0x9e3779b97f4a7c15ull;
    return 0;
}

/*
 * Height 1 with probability 1/2, each further level with probability 1/2.
 * Why not 1/4, which makes half as many levels: a search then walks three
 * nodes per level on average instead of one, and in a large memtable the
 * levels near the bottom miss the cache on every node. With 1/2 a search
 * among 400,000 keys touched 24 distinct nodes instead of 31, and random
 * inserts took 7% (400,000 keys) to 25% (1,000,000 keys) less time.
 */
static int sl_random_height(skiplist *sl)
{
    uint64_t bits;
    int h = 1;

    sl->rnd ^= sl->rnd << 13;
    sl->rnd ^= sl->rnd >> 7;
    sl->rnd ^= sl->rnd << 17;
    for (bits = sl->rnd; h < SKIPLIST_MAX_HEIGHT && (bits & 1) != 0; bits >>= 1)
        h++;
    return h;
}

static int sl_full(const skiplist *sl, uint64_t need)
{
    return status_err(STOAT_ENOMEM,
                      "skiplist: arena full (%llu of %llu bytes used, %llu more needed)",
                      (unsigned long long)arena_used(sl->arena),
                      (unsigned long long)arena_capacity(sl->arena), (unsigned long long)need);
}

/* Copies value to the top of the arena: its offset, 0 if there is no room.
 * An empty value needs no bytes; any nonzero offset does for it. */
static uint32_t sl_value_new(skiplist *sl, slice value)
{
    uint32_t off;

    if (value.len == 0)
        return sl->head;
    if (value.len > UINT32_MAX || (off = arena_alloc_back(sl->arena, value.len, 1)) == 0)
        return 0;
    memcpy(arena_ptr(sl->arena, off), value.data, value.len);
    return off;
}

/* Copies value into the arena and swaps it into node in one atomic store. */
static int sl_replace(skiplist *sl, uint32_t node, slice value)
{
    uint32_t off = sl_value_new(sl, value);

    if (off == 0)
        return sl_full(sl, value.len);
    atomic_store_explicit(&sl_node_at(sl, node)->value, sl_pack(off, (uint32_t)value.len),
                          memory_order_release);
    return 0;
}

static uint64_t sl_node_len(int height, slice ikey, int stamped)
{
    return sizeof(sl_node) + 4u * (uint64_t)height + ikey.len + (stamped ? 8u : 0u);
}

/* Arena bytes a new entry needs at most: node, its alignment padding and
 * its value. */
static uint64_t sl_entry_need(int height, slice ikey, slice value, int stamped)
{
    return sl_node_len(height, ikey, stamped) + alignof(sl_node) - 1 + value.len;
}

/*
 * Allocates and fills a node of the given height and its value; 0 when the
 * arena is full. Room for both is checked first (with the node's worst
 * alignment padding): this writer is the arena's only allocator, so
 * nothing is consumed when either would not fit.
 */
static uint32_t sl_node_new(skiplist *sl, int height, slice ikey, slice value, uint64_t stamp)
{
    uint32_t off, voff;
    sl_node *n;
    char *key;

    if (ikey.len > UINT32_MAX || value.len > UINT32_MAX ||
        sl_entry_need(height, ikey, value, stamp != 0) >
            arena_capacity(sl->arena) - arena_used(sl->arena))
        return 0;
    off = arena_alloc(sl->arena, (size_t)sl_node_len(height, ikey, stamp != 0), alignof(sl_node));
    voff = sl_value_new(sl, value);
    assert(off != 0 && voff != 0);
    n = arena_ptr(sl->arena, off);
    n->key_len = (uint32_t)ikey.len;
    n->height = (uint8_t)height;
    n->flags = stamp != 0 ? SL_STAMPED : 0;
    key = (char *)n + sizeof(sl_node) + 4u * (uint32_t)height;
    memcpy(key, ikey.data, ikey.len);
    if (stamp != 0)
        memcpy(key + ikey.len, &stamp, sizeof(stamp));
    atomic_init(&n->value, sl_pack(voff, (uint32_t)value.len));
    return off;
}

/*
 * Where ikey goes: its predecessor at every level into prevs, and the
 * first node >= it (returned). When ikey comes right after the last key
 * inserted, with nothing in between at level 0 (sequential inserts), the
 * splice is that answer already: every level's gap around the last key
 * contains level 0's gap (see the invariants). Otherwise a full search.
 */
static uint32_t sl_locate(skiplist *sl, const sl_target *t, uint32_t *prevs)
{
    uint32_t lt, ge, last = sl->splice[0];
    int height = atomic_load_explicit(&sl->height, memory_order_relaxed);

    if (last != sl->head && sl_cmp(sl_node_at(sl, last), t) < 0 &&
        sl_at_or_after(sl, ge = sl_next_at(sl, last, 0), t)) {
        memcpy(prevs, sl->splice, sizeof(sl->splice));
        return ge;
    }
    for (int i = height; i < SKIPLIST_MAX_HEIGHT; i++)
        prevs[i] = sl->head;
    return sl_search(sl, t, &lt, prevs);
}

/* Links node (height h) after prevs, bottom-up; it becomes the splice. */
static void sl_link(skiplist *sl, uint32_t off, int h, const uint32_t *prevs)
{
    sl_node *n = arena_ptr(sl->arena, off);
    int height = atomic_load_explicit(&sl->height, memory_order_relaxed);

    /* The node's own links first (it is invisible), then publish bottom-up. */
    for (int i = 0; i < h; i++)
        atomic_init(&n->next[i], sl_next_at(sl, prevs[i], i));
    for (int i = 0; i < h; i++) {
        atomic_store_explicit(&sl_node_at(sl, prevs[i])->next[i], off, memory_order_release);
        PERTURB("skiplist_link");
    }
    if (h > height)
        atomic_store_explicit(&sl->height, h, memory_order_relaxed);
    for (int i = 0; i < SKIPLIST_MAX_HEIGHT; i++)
        sl->splice[i] = i < h ? off : prevs[i];
}

int skiplist_insert(skiplist *sl, slice ikey, slice value, uint64_t visible_from, int *added)
{
    uint32_t node;

    return skiplist_insert_node(sl, ikey, value, visible_from, added, &node);
}

int skiplist_insert_node(skiplist *sl, slice ikey, slice value, uint64_t visible_from, int *added,
                         uint32_t *node)
{
    uint32_t prevs[SKIPLIST_MAX_HEIGHT], ge, off;
    sl_target t;
    int h, rc;

    *node = 0;
    if (added)
        *added = 0;
    if (ikey.len < IKEY_SUFFIX_LEN)
        return status_err(STOAT_EINVAL, "skiplist: internal key of %zu bytes", ikey.len);
    t = sl_target_of(ikey);
    ge = sl_locate(sl, &t, prevs);
    PERTURB("skiplist_splice");
    if (ge != 0 && sl_cmp(sl_node_at(sl, ge), &t) == 0) {
        if ((rc = sl_replace(sl, ge, value)) == 0)
            *node = ge;
        return rc;
    }
    h = sl_random_height(sl);
    if ((off = sl_node_new(sl, h, ikey, value, visible_from)) == 0)
        return sl_full(sl, sl_entry_need(h, ikey, value, visible_from != 0));
    sl_link(sl, off, h, prevs);
    atomic_fetch_add_explicit(&sl->count, 1, memory_order_relaxed);
    if (added)
        *added = 1;
    *node = off;
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
    sl_target t = sl_target_of(target);
    uint32_t lt;

    return sl_search(sl, &t, &lt, NULL);
}

uint32_t skiplist_seek_for_prev(const skiplist *sl, slice target)
{
    sl_target t = sl_target_of(target);
    uint32_t lt, ge = sl_search(sl, &t, &lt, NULL);

    if (ge != 0 && sl_cmp(sl_node_at(sl, ge), &t) == 0)
        return ge;
    return lt == sl->head ? 0 : lt;
}

uint32_t skiplist_next(const skiplist *sl, uint32_t node)
{
    return sl_next_at(sl, node, 0);
}

/* A node (header, links, key, stamp: some 50 to 100 bytes, 8-byte
 * aligned) and a value may straddle a cache line: both ends are asked for,
 * the node's end as far as a key of up to about 40 bytes reaches. */
void skiplist_prefetch(const skiplist *sl, uint32_t node)
{
    const sl_node *n = sl_node_at(sl, node);
    uint64_t v = atomic_load_explicit(&n->value, memory_order_acquire);
    uint32_t next = sl_next_at(sl, node, 0);
    const char *val = arena_ptr(sl->arena, (uint32_t)v);

    __builtin_prefetch(val);
    if ((v >> 32) > 1)
        __builtin_prefetch(val + (v >> 32) - 1);
    if (next != 0) {
        const char *nx = (const char *)sl_node_at(sl, next);
        __builtin_prefetch(nx);
        __builtin_prefetch(nx + 64);
    }
}

uint32_t skiplist_prev(const skiplist *sl, uint32_t node)
{
    sl_target t = sl_target_of(skiplist_key(sl, node));
    uint32_t lt;

    sl_search(sl, &t, &lt, NULL);
    return lt == sl->head ? 0 : lt;
}

uint32_t skiplist_find(const skiplist *sl, slice ukey, uint64_t version)
{
    char suffix[IKEY_SUFFIX_LEN];
    sl_target t = {ukey.data, ukey.len, suffix};
    const sl_node *n;
    uint32_t lt, ge;

    put_be64(suffix, UINT64_MAX - version);
    ge = sl_search(sl, &t, &lt, NULL);
    if (ge == 0)
        return 0;
    n = sl_node_at(sl, ge);
    if (n->key_len - IKEY_SUFFIX_LEN != ukey.len ||
        sl_bytes_cmp(sl_key_bytes(n), ukey.data, ukey.len) != 0)
        return 0;
    return ge;
}

uint64_t skiplist_stamp(const skiplist *sl, uint32_t node)
{
    const sl_node *n = sl_node_at(sl, node);
    uint64_t stamp;

    if (!(n->flags & SL_STAMPED))
        return 0;
    memcpy(&stamp, sl_key_bytes(n) + n->key_len, sizeof(stamp));
    return stamp;
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
