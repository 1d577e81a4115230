/*
 * mem_filter.c - the blocked bloom filter of a memtable's user keys
 * (contract and threading in mem_filter.h).
 *
 * A key's 64-bit hash picks its block with its low 32 bits (a multiply,
 * not a modulo, maps them onto n_blocks) and its MEM_FILTER_PROBES bit
 * positions inside the block from the high 32 bits by double hashing
 * (LevelDB's bloom does the same over a whole filter). One block is one
 * cache line, so a probe costs at most one miss.
 */
#include "mem/mem_filter.h"

#include <stdlib.h>

#include "base/checksum.h"
#include "base/pages.h"

#define MEM_FILTER_BLOCK_WORDS 8    /* 512 bits, one cache line */

void mem_filter_init(mem_filter *f, uint64_t arena_size)
{
    uint64_t blocks = arena_size / 64 / 64;

    f->words = NULL;
    f->n_blocks = 0;
    if (blocks == 0)
        blocks = 1;
    if (blocks > UINT32_MAX)
        blocks = UINT32_MAX;
    /* Zero pages (page-aligned, so every block is one cache line): a
     * memtable that holds few keys touches few of them. */
    if ((f->words = pages_zalloc((size_t)blocks * 64)) == NULL)
        return;
    f->n_blocks = (uint32_t)blocks;
}

void mem_filter_free(mem_filter *f)
{
    pages_free(f->words, (size_t)f->n_blocks * 64);
    f->words = NULL;
    f->n_blocks = 0;
}

uint64_t mem_filter_hash(slice ukey)
{
    return checksum64(ukey.data, ukey.len);
}

static inline _Atomic uint64_t *mem_filter_block(const mem_filter *f, uint64_t hash)
{
    uint64_t b = ((hash & 0xffffffffu) * (uint64_t)f->n_blocks) >> 32;

    return f->words + b * MEM_FILTER_BLOCK_WORDS;
}

void mem_filter_prefetch(const mem_filter *f, uint64_t hash)
{
    if (f->words != NULL)
        __builtin_prefetch((const void *)mem_filter_block(f, hash), 1);
}

void mem_filter_add(mem_filter *f, uint64_t hash)
{
    _Atomic uint64_t *blk;
    uint32_t h = (uint32_t)(hash >> 32), delta = (h >> 17) | (h << 15);

    if (f->words == NULL)
        return;
    blk = mem_filter_block(f, hash);
    for (int i = 0; i < MEM_FILTER_PROBES; i++, h += delta) {
        _Atomic uint64_t *w = &blk[(h >> 6) & 7];
        /* One writer: a load and a store, no locked read-modify-write. */
        atomic_store_explicit(w, atomic_load_explicit(w, memory_order_relaxed) |
                                     (1ull << (h & 63)),
                              memory_order_relaxed);
    }
}

int mem_filter_may_contain(const mem_filter *f, uint64_t hash)
{
    const _Atomic uint64_t *blk;
    uint32_t h = (uint32_t)(hash >> 32), delta = (h >> 17) | (h << 15);

    if (f->words == NULL)
        return 1;
    blk = mem_filter_block(f, hash);
    for (int i = 0; i < MEM_FILTER_PROBES; i++, h += delta) {
        uint64_t w = atomic_load_explicit(&blk[(h >> 6) & 7], memory_order_relaxed);
        if (!(w & (1ull << (h & 63))))
            return 0;
    }
    return 1;
}
