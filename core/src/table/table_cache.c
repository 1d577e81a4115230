/*
 * table_cache.c - an LRU of open sst_readers, keyed by table id.
 *
 * A chained hash table (fixed bucket count, sized from the capacity) and
 * an LRU list (lru.next is the least recently used) under one mutex. Each
 * cached reader carries one reference owned by the cache; callers get
 * their own. Invariant: n <= capacity after every call returns; a
 * capacity below 1 is taken as 1. Evicting (LRU or table_cache_evict)
 * drops the cache's reference outside the mutex, so the file closes when
 * the last caller lets go.
 *
 * A miss opens the table without holding the mutex (the open reads the
 * footer and meta blocks from disk). If two threads miss the same table,
 * both open it and the second to finish adopts the first one's reader,
 * dropping its own. If a table_cache_evict ran while a miss was opening,
 * the new reader is handed to the caller but not cached (the evicted
 * table may be the one being opened, whose file is going away).
 *
 * A pinned entry (table_cache_pin) is out of the LRU and not counted in
 * n: it stays cached, whatever the capacity, until its last unpin. An
 * evict of a pinned entry only marks it doomed: the pins are views that
 * still list the table (multi-process mode: loaded from an older MANIFEST,
 * while this handle's own newer views dropped it), and they read it
 * through the open reader after its file is gone; the last unpin drops it.
 */
#include "table/table_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"

#define TABLE_CACHE_MAX_BUCKETS (1u << 16)

typedef struct tc_entry {
    uint64_t id;
    sst_reader *r;
    int pins;                   /* > 0: out of the LRU, never a victim */
    int doomed;                 /* evicted while pinned: dropped at the last unpin */
    struct tc_entry *chain;
    struct tc_entry *prev, *next;
} tc_entry;

struct table_cache {
    env *env;
    char *dir;
    block_cache *bc;            /* borrowed; may be NULL */
    int capacity;
    pthread_mutex_t mu;
    tc_entry **buckets;
    size_t n_buckets;           /* a power of two */
    int n;                      /* cached readers */
    tc_entry lru;               /* sentinel */
    uint64_t evictions;         /* table_cache_evict calls, to spot races */
};

int table_cache_new(env *e, const char *dir, int capacity, block_cache *bc, table_cache **out)
{
    table_cache *tc = calloc(1, sizeof(*tc));

    *out = NULL;
    if (tc == NULL || (tc->dir = strdup(dir)) == NULL)
        goto nomem;
    tc->env = e;
    tc->bc = bc;
    tc->capacity = capacity < 1 ? 1 : capacity;
    tc->n_buckets = 16;
    while (tc->n_buckets < (size_t)tc->capacity && tc->n_buckets < TABLE_CACHE_MAX_BUCKETS)
        tc->n_buckets *= 2;
    if ((tc->buckets = calloc(tc->n_buckets, sizeof(*tc->buckets))) == NULL)
        goto nomem;
    if (pthread_mutex_init(&tc->mu, NULL) != 0)
        goto nomem;
    tc->lru.next = tc->lru.prev = &tc->lru;
    *out = tc;
    return 0;
nomem:
    if (tc != NULL) {
        free(tc->buckets);
        free(tc->dir);
        free(tc);
    }
    return status_err(STOAT_ENOMEM, "table cache: out of memory");
}

void table_cache_free(table_cache *tc)
{
    tc_entry *e, *next;

    if (tc == NULL)
        return;
    for (size_t b = 0; b < tc->n_buckets; b++) {
        for (e = tc->buckets[b]; e != NULL; e = next) {
            next = e->chain;
            sst_reader_unref(e->r);
            free(e);
        }
    }
    pthread_mutex_destroy(&tc->mu);
    free(tc->buckets);
    free(tc->dir);
    free(tc);
}

static tc_entry **tc_slot_locked(table_cache *tc, uint64_t id)
{
    uint64_t h = id * 0x9e3779b97f4a7c15ull;
    tc_entry **p = &tc->buckets[(h >> 32) & (tc->n_buckets - 1)];

    while (*p != NULL && (*p)->id != id)
        p = &(*p)->chain;
    return p;
}

static void tc_lru_unlink(tc_entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void tc_lru_push(table_cache *tc, tc_entry *e)
{
    e->next = &tc->lru;
    e->prev = tc->lru.prev;
    e->prev->next = e;
    tc->lru.prev = e;
}

/* Takes the entry at *slot out of the cache; the caller unrefs its reader. */
static tc_entry *tc_remove_locked(table_cache *tc, tc_entry **slot)
{
    tc_entry *e = *slot;

    *slot = e->chain;
    if (e->pins == 0) {
        tc_lru_unlink(e);
        tc->n--;
    }
    return e;
}

/* The cached reader for id, referenced and made most recent, or NULL. */
static sst_reader *tc_lookup_locked(table_cache *tc, uint64_t id)
{
    tc_entry *e = *tc_slot_locked(tc, id);

    if (e == NULL)
        return NULL;
    if (e->pins == 0) {
        tc_lru_unlink(e);
        tc_lru_push(tc, e);
    }
    sst_reader_ref(e->r);
    return e->r;
}

/* Caches r (whose reference e takes over); returns the LRU victim, if any. */
static tc_entry *tc_insert_locked(table_cache *tc, tc_entry *e, sst_reader *r, uint64_t id)
{
    tc_entry **slot = tc_slot_locked(tc, id);

    e->id = id;
    e->r = r;
    e->pins = 0;
    e->doomed = 0;
    e->chain = NULL;
    *slot = e;
    tc_lru_push(tc, e);
    tc->n++;
    if (tc->n <= tc->capacity)
        return NULL;
    return tc_remove_locked(tc, tc_slot_locked(tc, tc->lru.next->id));
}

static int tc_open(table_cache *tc, uint64_t id, sst_reader **out)
{
    char *path = sst_path(tc->dir, id);
    int rc;

    if (path == NULL)
        return status_err(STOAT_ENOMEM, "table cache: out of memory");
    rc = sst_reader_open(tc->env, path, id, tc->bc, out);
    free(path);
    return rc;
}

int table_cache_get(table_cache *tc, uint64_t id, sst_reader **out)
{
    sst_reader *r, *cached;
    tc_entry *e = NULL, *victim;
    uint64_t evictions;
    int rc;

    pthread_mutex_lock(&tc->mu);
    *out = tc_lookup_locked(tc, id);
    evictions = tc->evictions;
    pthread_mutex_unlock(&tc->mu);
    if (*out != NULL)
        return 0;
    if ((rc = tc_open(tc, id, &r)) != 0)
        return rc;
    if ((e = calloc(1, sizeof(*e))) == NULL) {
        *out = r; /* usable, just not cached */
        return 0;
    }
    pthread_mutex_lock(&tc->mu);
    if ((cached = tc_lookup_locked(tc, id)) != NULL || evictions != tc->evictions) {
        pthread_mutex_unlock(&tc->mu);
        free(e);
        if (cached == NULL) {
            *out = r;
            return 0;
        }
        sst_reader_unref(r); /* another thread opened it first */
        *out = cached;
        return 0;
    }
    sst_reader_ref(r); /* the caller's; the open's reference goes to the cache */
    victim = tc_insert_locked(tc, e, r, id);
    pthread_mutex_unlock(&tc->mu);
    if (victim != NULL) {
        sst_reader_unref(victim->r);
        free(victim);
    }
    *out = r;
    return 0;
}

void table_cache_evict(table_cache *tc, uint64_t id)
{
    tc_entry **slot, *e = NULL;

    pthread_mutex_lock(&tc->mu);
    tc->evictions++;
    slot = tc_slot_locked(tc, id);
    if (*slot != NULL && (*slot)->pins > 0)
        (*slot)->doomed = 1;
    else if (*slot != NULL)
        e = tc_remove_locked(tc, slot);
    pthread_mutex_unlock(&tc->mu);
    if (e != NULL) {
        sst_reader_unref(e->r);
        free(e);
    }
    if (tc->bc != NULL)
        block_cache_erase_table(tc->bc, id);
}

int table_cache_pin(table_cache *tc, uint64_t id)
{
    sst_reader *r;
    tc_entry *e;
    int rc;

    for (;;) {
        pthread_mutex_lock(&tc->mu);
        if ((e = *tc_slot_locked(tc, id)) != NULL) {
            if (e->pins++ == 0) {
                tc_lru_unlink(e);
                tc->n--;
            }
            pthread_mutex_unlock(&tc->mu);
            return 0;
        }
        pthread_mutex_unlock(&tc->mu);
        /* Not cached: open it through the cache, then pin the entry (a
         * concurrent evict may have kept it out: try again). */
        if ((rc = table_cache_get(tc, id, &r)) != 0)
            return rc;
        sst_reader_unref(r);
    }
}

void table_cache_unpin(table_cache *tc, uint64_t id)
{
    tc_entry *e, *victim = NULL;

    int doomed = 0;

    pthread_mutex_lock(&tc->mu);
    if ((e = *tc_slot_locked(tc, id)) != NULL && e->pins > 0 && --e->pins == 0) {
        tc_lru_push(tc, e);
        tc->n++;
        if ((doomed = e->doomed) != 0)
            victim = tc_remove_locked(tc, tc_slot_locked(tc, id));
        else if (tc->n > tc->capacity)
            victim = tc_remove_locked(tc, tc_slot_locked(tc, tc->lru.next->id));
    }
    pthread_mutex_unlock(&tc->mu);
    if (victim != NULL) {
        sst_reader_unref(victim->r);
        free(victim);
    }
    if (doomed && tc->bc != NULL)
        block_cache_erase_table(tc->bc, id);   /* what its last readers cached */
}

int table_cache_open_count(table_cache *tc)
{
    int n;

    pthread_mutex_lock(&tc->mu);
    n = tc->n;
    pthread_mutex_unlock(&tc->mu);
    return n;
}
