/*
 * mem_filter.h - a bloom filter over the user keys of one memtable, so a
 * point read skips the skiplist search of a memtable that does not hold
 * its key.
 *
 * Why: a search of a large memtable visits some 25 nodes, nearly all cache
 * misses; right after a burst of writes, readrandom spent about half of
 * its time there (bench/RESULTS.md, "Issue 15: point reads and scans").
 * The filter answers "surely not here" with one cache line: it is a
 * blocked bloom filter, each key setting MEM_FILTER_PROBES bits inside one
 * 64-byte block.
 *
 * Process-private memory (never in the arena: each process of a
 * multi-process database fills its own memtables). Sized once, from the
 * arena's capacity; a filter of 0 blocks (allocation refused) answers
 * "maybe" to everything.
 *
 * Threads: one writer (mem_filter_add, serialised like memtable_add) and
 * any number of lock-free readers. Bits are only ever set, with relaxed
 * atomics, right after the skiplist links the entry and before
 * memtable_add returns, so before the commit that wrote it is published
 * (db/write.c): a reader whose read version covers an entry sees its
 * bits. A reader may find an entry linked whose bits it does not see yet;
 * it belongs to a commit the reader cannot see (or is a GC rewrite, which
 * a reader that misses it reads at its old place, as it would have a
 * moment earlier).
 */
#ifndef STOAT_MEM_FILTER_H
#define STOAT_MEM_FILTER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/slice.h"

/* Bits each key sets, all inside one 512-bit block. */
#define MEM_FILTER_PROBES 6

typedef struct mem_filter {
    _Atomic uint64_t *words;    /* n_blocks * 8 words; NULL: no filter */
    uint32_t n_blocks;
} mem_filter;

/* Sizes the filter at one bit per 8 bytes of arena (arena_size / 64 bytes,
 * at least one block); on ENOMEM the filter is left empty (every answer
 * "maybe"), which is slower but correct, so this cannot fail. */
void mem_filter_init(mem_filter *f, uint64_t arena_size);
void mem_filter_free(mem_filter *f);

/* The hash both calls take, so a caller probing several memtables for one
 * key hashes it once. */
uint64_t mem_filter_hash(slice ukey);

void mem_filter_add(mem_filter *f, uint64_t hash);
/* Asks the CPU for the block mem_filter_add(hash) will write, so that its
 * cache miss overlaps other work (the skiplist insert). */
void mem_filter_prefetch(const mem_filter *f, uint64_t hash);

/* 0 when no key with this hash was added; 1 when one may have been. */
int mem_filter_may_contain(const mem_filter *f, uint64_t hash);

#endif
