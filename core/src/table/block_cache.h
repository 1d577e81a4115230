/*
 * block_cache.h - decompressed SST blocks under one memory budget.
 *
 * Sharded LRU keyed by (table id, block offset). Entries are refcounted
 * handles: a lookup or insert returns a pinned handle whose bytes stay
 * valid until block_cache_release, even if the entry is evicted or the
 * table erased meanwhile. The charge of an entry is its size; the total of
 * unpinned charges is kept under the capacity (pinned entries may exceed
 * it briefly). Thread-safe.
 */
#ifndef STOAT_BLOCK_CACHE_H
#define STOAT_BLOCK_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct block_cache block_cache;
typedef struct block_handle block_handle;

/* capacity 0 = cache nothing (lookups miss, inserts pass through). */
int block_cache_new(uint64_t capacity, block_cache **out);
void block_cache_free(block_cache *c);

/* A new capacity: a smaller one evicts unpinned entries down to it at
 * once (pinned ones go as they are released). */
void block_cache_set_capacity(block_cache *c, uint64_t capacity);

/* Pinned handle or NULL on a miss. */
block_handle *block_cache_lookup(block_cache *c, uint64_t table_id, uint64_t offset);

/*
 * The size to malloc for a block of len bytes so that block_cache_insert
 * adopts it without moving it (the entry's bookkeeping goes right after
 * the bytes). Any malloc'd size is accepted; this one saves a copy.
 */
size_t block_cache_alloc_size(size_t len);

/*
 * Takes ownership of data (malloc'd, len bytes) and returns a pinned
 * handle to it. If the key is already present the existing entry is
 * returned and data is freed. NULL only on ENOMEM (data freed then too).
 */
block_handle *block_cache_insert(block_cache *c, uint64_t table_id, uint64_t offset,
                                 char *data, size_t len);

const char *block_handle_data(const block_handle *h);
size_t block_handle_len(const block_handle *h);
void block_cache_release(block_cache *c, block_handle *h);

/* The shared block cache behind this one (multi-process mode), or NULL,
 * and whether to use it (while the handle is not alone); erasing a table
 * erases it there either way. It may be set while readers run; what it
 * points to must outlive every reader. */
struct shared_cache;
void block_cache_set_shared(block_cache *c, struct shared_cache *sc, int use);
struct shared_cache *block_cache_shared(block_cache *c);

/* Drops every unpinned entry of table_id (its file is gone), and the
 * table's blocks in the shared block cache. */
void block_cache_erase_table(block_cache *c, uint64_t table_id);

typedef struct block_cache_stats {
    uint64_t capacity, usage, hits, misses, entries;
} block_cache_stats;
void block_cache_get_stats(block_cache *c, block_cache_stats *out);

#endif
