/*
 * block_builder.h - builds one SST block (data or index) in memory.
 *
 * Entries arrive in increasing ikey_cmp order (the SST builder checks
 * that). Each key is stored as the bytes it shares with the previous key,
 * the rest, and the value; every `restart_interval` entries a restart
 * point stores a full key, so readers can binary search the restarts.
 * The finished contents end with the restart offsets (fixed32 each) and
 * their count (fixed32); a data block of a format 3 table may carry a
 * hash index of its user keys between the two (block_builder_hash_index).
 * The byte layout is in core/FORMAT.md ("Data block and index block").
 * A block is at most BLOCK_MAX_LEN bytes.
 *
 * The builder owns its buffers and reuses them across blocks
 * (block_builder_reset). Not thread-safe: one builder, one thread.
 */
#ifndef STOAT_BLOCK_BUILDER_H
#define STOAT_BLOCK_BUILDER_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/slice.h"

#define BLOCK_RESTART_INTERVAL 16

/* The hash index (FORMAT.md): one byte a bucket, a restart index or one
 * of these two marks, so blocks of more restarts go without one. */
#define BLOCK_HASH_EMPTY 0xFF
#define BLOCK_HASH_COLLISION 0xFE
#define BLOCK_HASH_MAX_RESTARTS 254
#define BLOCK_HASH_MAX_BUCKETS 65535
/* The restart count's top bit says a hash index precedes it. */
#define BLOCK_HASH_FLAG 0x80000000u

/* Buckets for n distinct user keys (about 3/4 full at most), or 0 when
 * that many would not fit the 16-bit count. */
static inline uint32_t block_hash_buckets(uint64_t n)
{
    uint64_t b = n + n / 3 + 1;

    return b > BLOCK_HASH_MAX_BUCKETS ? 0 : (uint32_t)b;
}

/* The bucket of a user key whose checksum64 is hash, among n buckets. */
static inline uint32_t block_hash_bucket(uint64_t hash, uint32_t n)
{
    return (uint32_t)(((hash >> 32) * (uint64_t)n) >> 32);
}

/* Restart offsets are fixed32: a block's contents never exceed this. */
#define BLOCK_MAX_LEN ((size_t)UINT32_MAX)

typedef struct block_builder {
    buf data;           /* entries, then (after finish) the restart array */
    buf restarts;       /* fixed32 offsets of the restart entries */
    buf last_key;       /* previous key, to prefix-compress the next */
    int interval;       /* entries between restarts */
    int counter;        /* entries since the last restart */
    size_t n_entries;
    int finished;
    int hash_index;     /* build a hash index (block_builder_hash_index) */
    buf hashes;         /* per distinct user key: (hash >> 32) << 32 | restart */
} block_builder;

/* An empty builder; interval < 1 means BLOCK_RESTART_INTERVAL. */
void block_builder_init(block_builder *b, int restart_interval);
void block_builder_free(block_builder *b);

/* From now on the blocks get a hash index of their user keys (the key
 * minus its 8-byte suffix) for point lookups (block_get_hashed), when
 * they have at most BLOCK_HASH_MAX_RESTARTS restart points: data blocks
 * of format 3 tables. */
void block_builder_hash_index(block_builder *b);
/* Empties the builder for the next block, keeping its memory. */
void block_builder_reset(block_builder *b);

/*
 * Appends one entry (key > the previous key, not checked here). STOAT_ETOOBIG
 * when the block would exceed BLOCK_MAX_LEN, STOAT_ENOMEM; the builder is
 * unchanged on error.
 */
int block_builder_add(block_builder *b, slice key, slice value);

/* Size of the finished block if it were finished now. */
size_t block_builder_size(const block_builder *b);

/* Size the block would have after adding an entry of these lengths. */
size_t block_builder_size_with(const block_builder *b, size_t klen, size_t vlen);

static inline int block_builder_empty(const block_builder *b)
{
    return b->n_entries == 0;
}

/* The last key added. Borrowed: valid until the next add or reset. */
static inline slice block_builder_last_key(const block_builder *b)
{
    return slice_make(b->last_key.data, b->last_key.len);
}

/*
 * Appends the restart array and returns the whole block in *out, borrowed
 * until the next reset. An empty block is valid (one restart at 0).
 */
int block_builder_finish(block_builder *b, slice *out);

#endif
