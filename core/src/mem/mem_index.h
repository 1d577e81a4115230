/*
 * mem_index.h - a hash index from each user key of a memtable to the node
 * of its newest version, so a point read that finds its key in the
 * memtable reads one or two nodes instead of searching the skiplist.
 *
 * Why: a skiplist search of a large memtable visits some 25 nodes, nearly
 * all cache misses (bench/RESULTS.md, "Issue 15: point reads and scans").
 * The index is a hint the caller checks: it answers only "this node holds
 * the newest version of ukey added before the last publication"; a get
 * uses it when that version is visible at its read version, and searches
 * the skiplist otherwise (older read versions, keys it does not find).
 *
 * Open addressing with linear probing over uint32 node offsets (0: empty),
 * kept at most half full; when it would fill more, the writer builds a
 * table twice the size and publishes it. Retired tables stay allocated
 * (a reader may still be probing one) until the index is freed: at most
 * as many bytes again as the current table. A table never outgrows an
 * eighth of the arena, so the index costs at most a quarter of it; keys
 * that come once the largest table is half full are not indexed (their
 * gets search the skiplist), while the keys in it still follow their
 * newer versions. Process-private memory.
 *
 * Threads: one writer (mem_index_add, serialised like memtable_add), any
 * number of lock-free readers. A slot and the table pointer are stored
 * with release after the node they name is linked, and loaded with
 * acquire. Every add happens before the commit that wrote it is published
 * (db/write.c), so a reader whose read version covers a version sees it
 * in the table it loads (the same argument covers a table switch).
 */
#ifndef STOAT_MEM_INDEX_H
#define STOAT_MEM_INDEX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/slice.h"
#include "mem/skiplist.h"

typedef struct mem_index_table mem_index_table;

typedef struct mem_index {
    _Atomic(mem_index_table *) cur;     /* NULL: no index (readers search) */
    mem_index_table **retired;          /* tables replaced by a larger one */
    size_t n_retired;
    uint32_t count;                     /* user keys in cur; writer only */
    uint32_t max_slots;                 /* the largest table it grows to */
} mem_index;

/* An index whose first table suits an arena of arena_size bytes (one
 * slot per 256 bytes, at least 1,024: a table of 100-byte entries grows
 * once or twice) and whose tables stay within arena_size / 8 bytes (at
 * least 1,024 slots); on ENOMEM an index that is off (every lookup
 * answers 0), so this cannot fail. */
void mem_index_init(mem_index *x, uint64_t arena_size);
void mem_index_free(mem_index *x);

/* Records that node (of sl, internal key ukey ++ suffix, user-key hash
 * `hash` as mem_filter_hash gives it) was linked: it becomes ukey's node
 * unless the node there holds a newer version. Writer only; when a larger
 * table cannot be allocated the index turns itself off. */
void mem_index_add(mem_index *x, const skiplist *sl, slice ukey, uint64_t hash, uint32_t node);

/* Asks the CPU for the slot mem_index_add(hash) will look at first, so
 * that its cache miss overlaps the skiplist insert's. Writer only. */
void mem_index_prefetch(const mem_index *x, uint64_t hash);

/* The node of ukey's newest version, or 0 when the index has none (which
 * does not mean that the skiplist has none). */
uint32_t mem_index_find(const mem_index *x, const skiplist *sl, slice ukey, uint64_t hash);

#endif
