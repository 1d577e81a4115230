/*
 * sst_reader_int.h - what the SSTable reader's two files share (private
 * to them): the reader's struct and its decoded index, block pins, and
 * the index search. sst_reader.c opens a table and answers gets;
 * sst_iter.c is the table iterator. The invariants and the threading are
 * in sst_reader.c's opening comment.
 */
#ifndef STOAT_SST_READER_INT_H
#define STOAT_SST_READER_INT_H

#include <stdatomic.h>

#include "table/block.h"
#include "table/bloom.h"
#include "table/sst_format.h"
#include "table/sst_reader.h"

/*
 * Where a data block was last seen in the block cache: its bytes and
 * length, recorded at every pin. Iterators use the next block's hint,
 * and gets their block's, only as prefetch addresses
 * (sst_reader_prefetch): a hint is never dereferenced, so a stale one
 * (the block evicted, its memory reused) costs nothing but a useless
 * prefetch. Relaxed atomics: any value read is as good as another.
 */
typedef struct sst_block_hint {
    atomic_uintptr_t data;
    atomic_size_t len;
} sst_block_hint;

/* One data block as the index names it; its handle and its hint share a
 * cache line (a get reads both). */
typedef struct sst_index_entry {
    sst_handle h;
    sst_block_hint hint;
} sst_index_entry;

/* Where an entry's key is in the index's key bytes. */
typedef struct sst_key_ref {
    size_t off;
    size_t len;
} sst_key_ref;

/* The decoded index block: entry i is data block i, in file order. */
typedef struct sst_index {
    size_t n;
    sst_index_entry *e;
    sst_key_ref *key_at;    /* key_at[i]: the last internal key of block i */
    uint64_t *tags;         /* tags[i] = sst_tag(user key of entry i) */
    size_t prefix_len;      /* every entry's user key starts with these bytes of keys */
    buf keys;               /* the entries' keys, back to back */
} sst_index;

struct sst_reader {
    atomic_int refs;
    env *env;
    env_file *file;
    char *path;
    uint64_t id;
    block_cache *cache;     /* borrowed; may be NULL */
    uint64_t data_end;      /* data blocks lie in [0, data_end) */
    sst_props props;
    sst_index index;
    char *filter_data;      /* NULL: no filter */
    bloom_filter filter;
};

/* A data block in use: pinned in the cache, or owned when there is none. */
typedef struct sst_pin {
    block_handle *h;
    char *owned;
} sst_pin;

/* Pins data block i (of the index) and parses it into *b; fill: add a
 * block not in the cache to it. unpin lets the block go. */
int sst_reader_pin(sst_reader *r, size_t i, sst_pin *pin, block *b, int fill);
void sst_reader_unpin(sst_reader *r, sst_pin *pin);
/* The first index entry whose key is >= target (ix->n when none). */
size_t sst_index_find(const sst_index *ix, slice target);
/* Prefetches block i's memory from its hint (forward: the direction of
 * the walk into it). */
void sst_reader_prefetch(const sst_reader *r, size_t i, int forward);

#endif
