/*
 * block_cache.c - sharded cache of decompressed blocks, CLOCK eviction.
 *
 * BLOCK_CACHE_SHARDS shards, picked by the top bits of a hash of (table
 * id, offset), each with its own mutex, hash table (chained, grown by
 * doubling) and a capacity of capacity / BLOCK_CACHE_SHARDS. An entry's
 * refs count its users plus one for the cache while it is in the table
 * (in_cache). usage is the sum of the charges (len) of the entries in
 * the cache, pinned or not.
 *
 * Eviction is CLOCK, an approximation of LRU that keeps hits cheap: the
 * entries in the cache form a ring; a hit only sets the entry's visited
 * bit (no list surgery touching its neighbours). When usage exceeds the
 * capacity the hand sweeps the ring: a pinned entry (refs > 1) is passed,
 * a visited one loses its bit and is passed, any other is evicted. New
 * entries join the ring just behind the hand, the last place it reaches.
 * Two turns of the hand clear every bit, so a sweep stops after 2n + 1
 * steps: by then whatever is left is pinned. A block larger than its
 * shard's capacity is never cached (it would only flush the shard).
 * A handle lives in its block's allocation, right after the bytes
 * (handle_new), so freeing the data frees the handle.
 *
 * Locking: everything but refs and usage is guarded by the shard's mutex,
 * and usage is written only under it. Pins are taken under the mutex
 * (lookup, insert); release drops one without it. That is safe because
 * only the cache's own reference keeps an unpinned entry alive and only a
 * thread holding the mutex can add a pin: when the sweep sees refs == 1
 * under the mutex, nobody else holds or can obtain the entry. Whoever
 * drops refs to 0 frees the entry (an entry that left the cache while
 * pinned is freed by its last release). After a release leaves an entry
 * unpinned in a shard over its capacity, the releaser sweeps under the
 * mutex, so usage returns under the capacity once nothing is pinned.
 */
#include "table/block_cache.h"
#include "base/perturb.h"
#include "table/shared_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stoat.h"

#define BLOCK_CACHE_SHARD_BITS 4
#define BLOCK_CACHE_SHARDS (1 << BLOCK_CACHE_SHARD_BITS)

struct block_handle {
    uint64_t table_id, offset, hash;
    char *data;
    size_t len;
    atomic_uint refs;
    int in_cache;
    int visited;                /* CLOCK bit: hit since the hand last passed */
    block_handle *chain;        /* next in the hash bucket */
    block_handle *prev, *next;  /* the ring, while in_cache */
};

typedef struct cache_shard {
    pthread_mutex_t mu;
    block_handle **buckets;
    size_t n_buckets;           /* a power of two, or 0; kept at twice n_entries or more:
                                 * a lookup that walks past another entry's handle pays a
                                 * cache miss for it (a scan does one lookup per block) */
    size_t n_entries;
    uint64_t hits, misses;
    _Atomic uint64_t capacity;  /* written under mu (set_capacity); release reads it without */
    _Atomic uint64_t usage;     /* written under mu; release reads it without */
    block_handle *hand;         /* next entry the sweep looks at; NULL: empty ring */
} cache_shard;

struct block_cache {
    _Atomic uint64_t capacity;
    _Atomic(struct shared_cache *) shared;  /* the second level, while in use; borrowed */
    _Atomic(struct shared_cache *) erase_in; /* the same, in use or not: erase there too */
    cache_shard shards[BLOCK_CACHE_SHARDS];
};

static uint64_t block_cache_hash(uint64_t table_id, uint64_t offset)
{
    uint64_t h = table_id * 0x9e3779b97f4a7c15ull ^ offset;

    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 32);
}

static cache_shard *block_cache_shard(block_cache *c, uint64_t hash)
{
    return &c->shards[hash >> (64 - BLOCK_CACHE_SHARD_BITS)];
}

/* Shard i's part of a capacity (the remainder spread over the first). */
static uint64_t shard_capacity(uint64_t capacity, int i)
{
    return capacity / BLOCK_CACHE_SHARDS + (i < (int)(capacity % BLOCK_CACHE_SHARDS));
}

static uint64_t shard_cap(const cache_shard *s)
{
    return atomic_load_explicit(&s->capacity, memory_order_relaxed);
}

int block_cache_new(uint64_t capacity, block_cache **out)
{
    block_cache *c = calloc(1, sizeof(*c));
    int i;

    *out = NULL;
    if (c == NULL)
        return STOAT_ENOMEM;
    atomic_init(&c->capacity, capacity);
    for (i = 0; i < BLOCK_CACHE_SHARDS; i++) {
        cache_shard *s = &c->shards[i];
        if (pthread_mutex_init(&s->mu, NULL) != 0)
            goto fail;
        atomic_init(&s->capacity, shard_capacity(capacity, i));
        atomic_init(&s->usage, 0);
    }
    *out = c;
    return 0;
fail:
    while (--i >= 0)
        pthread_mutex_destroy(&c->shards[i].mu);
    free(c);
    return STOAT_ENOMEM;
}

/* Where a block of len bytes ends and its handle starts; 0 on overflow. */
static size_t handle_at(size_t len)
{
    size_t at = (len + _Alignof(block_handle) - 1) / _Alignof(block_handle) *
                _Alignof(block_handle);

    return at < len || at > SIZE_MAX - sizeof(block_handle) ? 0 : at;
}

size_t block_cache_alloc_size(size_t len)
{
    size_t at = handle_at(len);

    return at ? at + sizeof(block_handle) : len;
}

/*
 * A handle for data (malloc'd, len bytes), placed in the same allocation
 * right after the data: a hit then finds the block's last bytes, where
 * its restart array is, next to the handle it had to read anyway,
 * instead of one more cache miss away. realloc leaves data in place when
 * it was allocated with block_cache_alloc_size. On failure data is freed
 * and NULL returned.
 */
static block_handle *handle_new(char *data, size_t len)
{
    size_t at = handle_at(len);
    block_handle *h;
    char *p;

    if ((at == 0 && len > 0) || (p = realloc(data, at + sizeof(*h))) == NULL) {
        free(data);
        return NULL;
    }
    h = (block_handle *)(p + at);
    memset(h, 0, sizeof(*h));
    h->data = p;
    h->len = len;
    return h;
}

static void handle_free(block_handle *h)
{
    free(h->data); /* the handle too */
}

void block_cache_free(block_cache *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < BLOCK_CACHE_SHARDS; i++) {
        cache_shard *s = &c->shards[i];
        /* Every handle must be released by now; free what the cache holds. */
        for (size_t b = 0; b < s->n_buckets; b++) {
            block_handle *h = s->buckets[b], *next;
            for (; h != NULL; h = next) {
                next = h->chain;
                handle_free(h);
            }
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(c);
}

/* Takes h off the ring, moving the hand on if it pointed at h. */
static void ring_remove(cache_shard *s, block_handle *h)
{
    if (h->next == h) {
        s->hand = NULL;
    } else {
        h->prev->next = h->next;
        h->next->prev = h->prev;
        if (s->hand == h)
            s->hand = h->next;
    }
    h->prev = h->next = NULL;
}

/* Puts h on the ring just behind the hand: the sweep reaches it last. */
static void ring_insert(cache_shard *s, block_handle *h)
{
    if (s->hand == NULL) {
        h->prev = h->next = h;
        s->hand = h;
        return;
    }
    h->next = s->hand;
    h->prev = s->hand->prev;
    h->prev->next = h;
    s->hand->prev = h;
}

static void usage_add_locked(cache_shard *s, int64_t delta)
{
    uint64_t u = atomic_load_explicit(&s->usage, memory_order_relaxed);

    atomic_store_explicit(&s->usage, u + (uint64_t)delta, memory_order_relaxed);
}

static block_handle **shard_slot_locked(cache_shard *s, uint64_t hash, uint64_t table_id,
                                        uint64_t offset)
{
    block_handle **p;

    if (s->n_buckets == 0)
        return NULL;
    p = &s->buckets[hash & (s->n_buckets - 1)];
    while (*p != NULL && ((*p)->table_id != table_id || (*p)->offset != offset))
        p = &(*p)->chain;
    return p;
}

/* Doubles the bucket array; on ENOMEM the chains just stay longer. */
static void shard_grow_locked(cache_shard *s)
{
    size_t n = s->n_buckets ? s->n_buckets * 2 : 64;
    block_handle **nb = calloc(n, sizeof(*nb));

    if (nb == NULL)
        return;
    for (size_t b = 0; b < s->n_buckets; b++) {
        block_handle *h = s->buckets[b], *next;
        for (; h != NULL; h = next) {
            next = h->chain;
            h->chain = nb[h->hash & (n - 1)];
            nb[h->hash & (n - 1)] = h;
        }
    }
    free(s->buckets);
    s->buckets = nb;
    s->n_buckets = n;
}

/* Takes h (found at *slot) out of the table and drops the cache's
 * reference; returns 1 if that was the last one (the caller frees h). */
static int shard_remove_locked(cache_shard *s, block_handle **slot)
{
    block_handle *h = *slot;

    *slot = h->chain;
    h->chain = NULL;
    ring_remove(s, h);
    h->in_cache = 0;
    usage_add_locked(s, -(int64_t)h->len);
    s->n_entries--;
    return atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1;
}

/* The CLOCK sweep (see the top of the file). */
static void shard_evict_locked(cache_shard *s)
{
    size_t budget = 2 * s->n_entries + 1;

    while (atomic_load_explicit(&s->usage, memory_order_relaxed) > shard_cap(s) &&
           s->hand != NULL && budget-- > 0) {
        block_handle *h = s->hand, **slot;
        if (atomic_load_explicit(&h->refs, memory_order_acquire) > 1) {
            s->hand = h->next;
        } else if (h->visited) {
            h->visited = 0;
            s->hand = h->next;
        } else {
            slot = shard_slot_locked(s, h->hash, h->table_id, h->offset);
            if (shard_remove_locked(s, slot))
                handle_free(h);
        }
    }
}

/* A new pin on h, found in the table (the caller holds its shard's mutex). */
static block_handle *handle_pin_locked(block_handle *h)
{
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
    h->visited = 1;
    return h;
}

block_handle *block_cache_lookup(block_cache *c, uint64_t table_id, uint64_t offset)
{
    uint64_t hash = block_cache_hash(table_id, offset);
    cache_shard *s = block_cache_shard(c, hash);
    block_handle **slot, *h = NULL;

    PERTURB("block_cache_lookup");
    pthread_mutex_lock(&s->mu);
    slot = shard_slot_locked(s, hash, table_id, offset);
    if (slot != NULL && *slot != NULL) {
        h = handle_pin_locked(*slot);
        s->hits++;
    } else {
        s->misses++;
    }
    pthread_mutex_unlock(&s->mu);
    return h;
}

/* Puts the new entry h in the table (it is pinned by the caller). */
static void shard_add_locked(cache_shard *s, block_handle *h)
{
    block_handle **slot;

    if (s->n_entries * 2 >= s->n_buckets)
        shard_grow_locked(s);
    if (s->n_buckets == 0)
        return; /* no memory for a table: passed through uncached */
    slot = &s->buckets[h->hash & (s->n_buckets - 1)];
    h->chain = *slot;
    *slot = h;
    h->in_cache = 1;
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
    ring_insert(s, h);
    usage_add_locked(s, (int64_t)h->len);
    s->n_entries++;
    shard_evict_locked(s);
}

block_handle *block_cache_insert(block_cache *c, uint64_t table_id, uint64_t offset, char *data,
                                 size_t len)
{
    uint64_t hash = block_cache_hash(table_id, offset);
    cache_shard *s = block_cache_shard(c, hash);
    block_handle **slot, *h, *found;

    if ((h = handle_new(data, len)) == NULL) /* outside the mutex: it may copy */
        return NULL;
    h->table_id = table_id;
    h->offset = offset;
    h->hash = hash;
    atomic_init(&h->refs, 1);
    pthread_mutex_lock(&s->mu);
    slot = shard_slot_locked(s, hash, table_id, offset);
    if (slot != NULL && *slot != NULL) {
        found = handle_pin_locked(*slot);
        pthread_mutex_unlock(&s->mu);
        handle_free(h);
        return found;
    }
    if (shard_cap(s) > 0 && len <= shard_cap(s))
        shard_add_locked(s, h);
    pthread_mutex_unlock(&s->mu);
    return h;
}

const char *block_handle_data(const block_handle *h)
{
    return h->data;
}

size_t block_handle_len(const block_handle *h)
{
    return h->len;
}

void block_cache_release(block_cache *c, block_handle *h)
{
    cache_shard *s;
    unsigned before;

    if (h == NULL)
        return;
    s = block_cache_shard(c, h->hash); /* h may be freed by others once unpinned */
    PERTURB("block_cache_release");
    before = atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel);
    PERTURB("block_cache_released");
    if (before == 1) {
        handle_free(h); /* it had left the cache: this was the last pin */
        return;
    }
    if (before == 2 && atomic_load_explicit(&s->usage, memory_order_relaxed) > shard_cap(s)) {
        pthread_mutex_lock(&s->mu);
        shard_evict_locked(s);
        pthread_mutex_unlock(&s->mu);
    }
}

void block_cache_set_capacity(block_cache *c, uint64_t capacity)
{
    if (c == NULL || atomic_exchange(&c->capacity, capacity) == capacity)
        return;
    for (int i = 0; i < BLOCK_CACHE_SHARDS; i++) {
        cache_shard *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        atomic_store_explicit(&s->capacity, shard_capacity(capacity, i), memory_order_relaxed);
        shard_evict_locked(s);
        pthread_mutex_unlock(&s->mu);
    }
}

void block_cache_erase_table(block_cache *c, uint64_t table_id)
{
    struct shared_cache *sc;

    if (c == NULL)
        return;
    if ((sc = atomic_load_explicit(&c->erase_in, memory_order_relaxed)) != NULL)
        shared_cache_erase_table(sc, table_id);
    for (int i = 0; i < BLOCK_CACHE_SHARDS; i++) {
        cache_shard *s = &c->shards[i];
        block_handle *dead = NULL;

        pthread_mutex_lock(&s->mu);
        for (size_t b = 0; b < s->n_buckets; b++) {
            block_handle **slot = &s->buckets[b];
            while (*slot != NULL) {
                block_handle *h = *slot;
                if (h->table_id != table_id) {
                    slot = &h->chain;
                } else if (shard_remove_locked(s, slot)) {
                    h->chain = dead; /* free after unlocking */
                    dead = h;
                }
            }
        }
        pthread_mutex_unlock(&s->mu);
        while (dead != NULL) {
            block_handle *next = dead->chain;
            handle_free(dead);
            dead = next;
        }
    }
}

void block_cache_get_stats(block_cache *c, block_cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->capacity = atomic_load_explicit(&c->capacity, memory_order_relaxed);
    for (int i = 0; i < BLOCK_CACHE_SHARDS; i++) {
        cache_shard *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        out->usage += atomic_load_explicit(&s->usage, memory_order_relaxed);
        out->hits += s->hits;
        out->misses += s->misses;
        out->entries += s->n_entries;
        pthread_mutex_unlock(&s->mu);
    }
}

void block_cache_set_shared(block_cache *c, struct shared_cache *sc, int use)
{
    atomic_store_explicit(&c->erase_in, sc, memory_order_relaxed);
    atomic_store_explicit(&c->shared, use ? sc : NULL, memory_order_relaxed);
}

struct shared_cache *block_cache_shared(block_cache *c)
{
    return atomic_load_explicit(&c->shared, memory_order_relaxed);
}
