/*
 * block_cache.c - sharded LRU of decompressed blocks.
 *
 * BLOCK_CACHE_SHARDS shards, picked by the top bits of a hash of (table
 * id, offset), each with its own mutex, hash table (chained, grown by
 * doubling) and a capacity of capacity / BLOCK_CACHE_SHARDS. An entry's
 * refs count its users plus one for the cache while it is in the table
 * (in_cache). Entries in the cache and unpinned (refs == 1) sit on the
 * shard's LRU list, oldest first; pinned ones are on no list. usage is
 * the sum of the charges (len) of entries in the cache, pinned or not;
 * after every insert and release, unpinned entries are evicted oldest
 * first until usage <= capacity. An entry that leaves the cache while
 * pinned is freed by its last release. All fields of an entry except
 * data/len/key are guarded by its shard's mutex.
 */
#include "block_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "stoat.h"

#define BLOCK_CACHE_SHARD_BITS 4
#define BLOCK_CACHE_SHARDS (1 << BLOCK_CACHE_SHARD_BITS)

struct block_handle {
    uint64_t table_id, offset, hash;
    char *data;
    size_t len;
    uint32_t refs;
    int in_cache;
    block_handle *chain;        /* next in the hash bucket */
    block_handle *prev, *next;  /* LRU list, when in_cache && refs == 1 */
};

typedef struct cache_shard {
    pthread_mutex_t mu;
    block_handle **buckets;
    size_t n_buckets;           /* a power of two, or 0 */
    size_t n_entries;
    uint64_t capacity, usage, hits, misses;
    block_handle lru;           /* sentinel: lru.next is the oldest */
} cache_shard;

struct block_cache {
    uint64_t capacity;
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

int block_cache_new(uint64_t capacity, block_cache **out)
{
    block_cache *c = calloc(1, sizeof(*c));
    int i;

    *out = NULL;
    if (c == NULL)
        return STOAT_ENOMEM;
    c->capacity = capacity;
    for (i = 0; i < BLOCK_CACHE_SHARDS; i++) {
        cache_shard *s = &c->shards[i];
        if (pthread_mutex_init(&s->mu, NULL) != 0)
            goto fail;
        s->capacity = capacity / BLOCK_CACHE_SHARDS + (i < (int)(capacity % BLOCK_CACHE_SHARDS));
        s->lru.next = s->lru.prev = &s->lru;
    }
    *out = c;
    return 0;
fail:
    while (--i >= 0)
        pthread_mutex_destroy(&c->shards[i].mu);
    free(c);
    return STOAT_ENOMEM;
}

static void handle_free(block_handle *h)
{
    free(h->data);
    free(h);
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

static void lru_remove(block_handle *h)
{
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->prev = h->next = NULL;
}

static void lru_append(cache_shard *s, block_handle *h)
{
    h->next = &s->lru;
    h->prev = s->lru.prev;
    h->prev->next = h;
    s->lru.prev = h;
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

/* Drops the cache's reference; returns 1 if the caller must free h. */
static int shard_unref_locked(cache_shard *s, block_handle *h)
{
    if (--h->refs == 0)
        return 1;
    if (h->in_cache && h->refs == 1)
        lru_append(s, h);
    return 0;
}

/* Takes h (found at *slot) out of the table; returns 1 to free it. */
static int shard_remove_locked(cache_shard *s, block_handle **slot)
{
    block_handle *h = *slot;

    *slot = h->chain;
    h->chain = NULL;
    if (h->prev != NULL)
        lru_remove(h);
    h->in_cache = 0;
    s->usage -= h->len;
    s->n_entries--;
    return --h->refs == 0;
}

static void shard_evict_locked(cache_shard *s)
{
    while (s->usage > s->capacity && s->lru.next != &s->lru) {
        block_handle *h = s->lru.next;
        block_handle **slot = shard_slot_locked(s, h->hash, h->table_id, h->offset);
        if (shard_remove_locked(s, slot))
            handle_free(h);
    }
}

block_handle *block_cache_lookup(block_cache *c, uint64_t table_id, uint64_t offset)
{
    uint64_t hash = block_cache_hash(table_id, offset);
    cache_shard *s = block_cache_shard(c, hash);
    block_handle **slot, *h = NULL;

    pthread_mutex_lock(&s->mu);
    slot = shard_slot_locked(s, hash, table_id, offset);
    if (slot != NULL && *slot != NULL) {
        h = *slot;
        if (h->refs++ == 1)
            lru_remove(h);
        s->hits++;
    } else {
        s->misses++;
    }
    pthread_mutex_unlock(&s->mu);
    return h;
}

block_handle *block_cache_insert(block_cache *c, uint64_t table_id, uint64_t offset, char *data,
                                 size_t len)
{
    uint64_t hash = block_cache_hash(table_id, offset);
    cache_shard *s = block_cache_shard(c, hash);
    block_handle **slot, *h;

    pthread_mutex_lock(&s->mu);
    slot = shard_slot_locked(s, hash, table_id, offset);
    if (slot != NULL && *slot != NULL) {
        h = *slot;
        if (h->refs++ == 1)
            lru_remove(h);
        pthread_mutex_unlock(&s->mu);
        free(data);
        return h;
    }
    if ((h = calloc(1, sizeof(*h))) == NULL) {
        pthread_mutex_unlock(&s->mu);
        free(data);
        return NULL;
    }
    h->table_id = table_id;
    h->offset = offset;
    h->hash = hash;
    h->data = data;
    h->len = len;
    h->refs = 1;
    if (s->capacity > 0) {
        if (s->n_entries >= s->n_buckets)
            shard_grow_locked(s);
        if (s->n_buckets > 0) {
            slot = &s->buckets[hash & (s->n_buckets - 1)];
            h->chain = *slot;
            *slot = h;
            h->in_cache = 1;
            h->refs++;
            s->usage += len;
            s->n_entries++;
            shard_evict_locked(s);
        }
    }
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
    int dead;

    if (h == NULL)
        return;
    s = block_cache_shard(c, h->hash);
    pthread_mutex_lock(&s->mu);
    dead = shard_unref_locked(s, h);
    if (!dead)
        shard_evict_locked(s);
    pthread_mutex_unlock(&s->mu);
    if (dead)
        handle_free(h);
}

void block_cache_erase_table(block_cache *c, uint64_t table_id)
{
    if (c == NULL)
        return;
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
    out->capacity = c->capacity;
    for (int i = 0; i < BLOCK_CACHE_SHARDS; i++) {
        cache_shard *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        out->usage += s->usage;
        out->hits += s->hits;
        out->misses += s->misses;
        out->entries += s->n_entries;
        pthread_mutex_unlock(&s->mu);
    }
}
