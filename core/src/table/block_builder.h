/*
 * block_builder.h - builds one SST block (data or index) in memory.
 *
 * Entries arrive in increasing ikey_cmp order (the SST builder checks
 * that). Each key is stored as the bytes it shares with the previous key,
 * the rest, and the value; every `restart_interval` entries a restart
 * point stores a full key, so readers can binary search the restarts.
 * The finished contents end with the restart offsets (fixed32 each) and
 * their count (fixed32); the byte layout is in core/FORMAT.md ("SST
 * block"). A block is at most BLOCK_MAX_LEN bytes.
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
} block_builder;

/* An empty builder; interval < 1 means BLOCK_RESTART_INTERVAL. */
void block_builder_init(block_builder *b, int restart_interval);
void block_builder_free(block_builder *b);

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
