/*
 * block.h - reads one decompressed SST block and iterates over it.
 *
 * A block (see block_builder.h and core/FORMAT.md) holds entries whose
 * keys are internal keys in ikey_cmp order, prefix-compressed against the
 * previous key, with a full key at each restart point. A `block` is a
 * borrowed view of such bytes plus where they came from (path, offset)
 * for error messages; it does not own them.
 *
 * block_iter walks a block in both directions: seek binary searches the
 * restart points and then scans; prev goes back to the restart point
 * before the current entry and scans forward (LevelDB style), keeping
 * the entries it passes so the next prevs in that interval are O(1). Any
 * malformed entry stops the iterator with STOAT_ECORRUPT naming the file,
 * the block offset and the entry offset; it never reads outside the block.
 * key() and value() are borrowed until the iterator moves, is re-aimed or
 * freed, or the block's bytes go away. One iterator, one thread; any
 * number of iterators may share a block.
 */
#ifndef STOAT_BLOCK_H
#define STOAT_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/slice.h"

typedef struct block {
    const char *data;       /* borrowed contents */
    size_t len;
    size_t restarts;        /* offset of the restart array = end of entries */
    uint32_t n_restarts;
    uint32_t n_buckets;     /* the hash index's buckets; 0: the block has none */
    const unsigned char *buckets;
    const char *path;       /* borrowed, for messages */
    uint64_t offset;        /* the block's offset in its file, for messages */
} block;

/* Checks the restart array (and the hash index, when the block has one)
 * and fills *b. STOAT_ECORRUPT when they do not fit in len. path and data
 * must outlive *b. */
int block_init(block *b, const char *data, size_t len, const char *path, uint64_t offset);

/* Keys up to this long are rebuilt inside the iterator, without malloc. */
#define BLOCK_ITER_KEY_INLINE 64

/* One entry of the backward cache (see block_iter_prev). */
typedef struct block_prev_entry {
    size_t cur, next;       /* the entry's offset and the one after it */
    size_t key_off;         /* its key: prev_keys.data + key_off */
    size_t key_len;
    size_t val_off;         /* its value: b->data + val_off */
    size_t val_len;
} block_prev_entry;

typedef struct block_iter {
    const block *b;         /* borrowed */
    size_t cur;             /* offset of the current entry; b->restarts if none */
    size_t next;            /* offset just past the current entry */
    uint32_t restart_idx;   /* restart interval holding cur */
    slice key;              /* into the block, the key buffer or prev_keys */
    slice value;            /* into the block */
    int key_in_buf;         /* key is in the key buffer */
    char *key_heap;         /* the key buffer when longer than key_inline */
    size_t key_cap;         /* bytes at key_heap */
    char key_inline[BLOCK_ITER_KEY_INLINE];
    /* Backward cache: the entries before cur in its restart interval, in
     * order, valid while cur == prev_at (SIZE_MAX: none). */
    block_prev_entry *prev;
    size_t n_prev, prev_cap;
    size_t prev_at;
    buf prev_keys;
    int status;
} block_iter;

/* An iterator positioned nowhere, with no block. An initialised iterator
 * must not be copied or moved (its key may point into itself). */
void block_iter_init(block_iter *it);
/* Aims the iterator at block b (borrowed), unpositioned; keeps its memory. */
void block_iter_set(block_iter *it, const block *b);
void block_iter_free(block_iter *it);

static inline int block_iter_valid(const block_iter *it)
{
    return it->b != NULL && it->status == 0 && it->cur < it->b->restarts;
}

void block_iter_seek_first(block_iter *it);
void block_iter_seek_last(block_iter *it);
/* First entry with key >= target (ikey_cmp). */
void block_iter_seek(block_iter *it, slice target);
/* Last entry with key <= target. */
void block_iter_seek_for_prev(block_iter *it, slice target);
void block_iter_next(block_iter *it);
void block_iter_prev(block_iter *it);

/*
 * Point lookup: the first entry of b with key >= target (ikey_cmp), as
 * block_iter_seek finds it, without an iterator. 0: its key is copied
 * into *key and *value is borrowed from b's bytes. STOAT_ENOTFOUND when
 * every key is < target; STOAT_ECORRUPT naming the file, block and entry;
 * STOAT_ENOMEM; EINVAL when target is shorter than an internal key. *key
 * is scratch during the search: it is empty, and *value empty, unless 0
 * is returned. Thread-safe for any number of callers sharing b.
 */
int block_get(const block *b, slice target, buf *key, slice *value);

/*
 * block_get for a target whose user key's checksum64 is hash, through the
 * block's hash index when it has one (block_get otherwise): the bucket
 * names the restart interval where the user key starts, and the scan
 * starts there instead of after a binary search. The index is a hint that
 * is checked, never trusted: the scan starts at a restart point only when
 * its key is below the target (else the binary search decides), and when
 * the bucket says the user key is absent, the binary search confirms it;
 * a key the index misses is STOAT_ECORRUPT, a bucket naming no restart
 * point too. Same results and ownership as block_get otherwise.
 */
int block_get_hashed(const block *b, slice target, uint64_t hash, buf *key, slice *value);

static inline slice block_iter_key(const block_iter *it) { return it->key; }
static inline slice block_iter_value(const block_iter *it) { return it->value; }
static inline int block_iter_status(const block_iter *it) { return it->status; }

#endif
