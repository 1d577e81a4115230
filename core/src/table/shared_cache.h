/*
 * shared_cache.h - decompressed SST blocks shared by every process of one
 * database: the second level under each handle's block cache in
 * multi-process mode (core/FORMAT.md "Shared block cache").
 *
 * It lives in a file every process maps (the region's companion file,
 * env/shm.h) and holds nothing a process could keep: no lock, no pin, no
 * pointer handed out. A put reserves ring space with one compare-and-swap
 * on the head, writes the record, then publishes an index entry; a get
 * copies the record out and keeps the copy only if the ring's overwrite
 * frontier did not reach it meanwhile. A process killed anywhere leaves
 * at worst reserved space that nothing names, or an index entry naming a
 * record of another block, which a get rejects: there is nothing to
 * repair, and the zero-filled file is the empty cache.
 *
 * Blocks are keyed by (table id, block offset): table ids are never
 * reused within a database, so a key's bytes never change and any copy
 * of them is good. The cache is a FIFO: what the ring overwrites goes,
 * hot or not (each process's own block cache in front keeps what it uses
 * most; what the ring dropped comes back at the next miss).
 *
 * Threading: any number of threads of any number of processes.
 */
#ifndef STOAT_SHARED_CACHE_H
#define STOAT_SHARED_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct shared_cache shared_cache;

/* reserve(arg, off, len) makes bytes [off, off + len) of the mapping safe
 * to write (their pages exist: posix_fallocate); 0 on success. */
typedef int (*shared_cache_reserve_fn)(void *arg, uint64_t off, uint64_t len);

/* Bytes at the start of a file of `size` bytes that hold the header and
 * the index: the creator reserves them before anyone attaches. 0 when
 * size is too small for a cache. */
uint64_t shared_cache_fixed_size(uint64_t size);

/* A handle on the mapping base[0, size) (zero-filled when new). NULL
 * when size is too small or on ENOMEM. */
shared_cache *shared_cache_attach(void *base, uint64_t size, shared_cache_reserve_fn reserve,
                                  void *arg);
void shared_cache_detach(shared_cache *c);

/* A malloc'd copy of block (table_id, offset), allocated with
 * block_cache_alloc_size(*len) bytes so that block_cache_insert adopts
 * it; NULL when the cache does not hold it (or on ENOMEM). */
char *shared_cache_get(shared_cache *c, uint64_t table_id, uint64_t offset, size_t *len);

/* Adds a copy of the block. Best effort: a block too large for the ring,
 * or whose space cannot be reserved, is not added. */
void shared_cache_put(shared_cache *c, uint64_t table_id, uint64_t offset, const char *data,
                      size_t len);

/* Forgets every block of table_id (its file was removed): their ring
 * space is left to be reused, and while less than half of the reserved
 * ring is named by the index the ring comes round in it instead of
 * taking more pages, so that it holds about what is live, not whatever
 * was read since it last came round. */
void shared_cache_erase_table(shared_cache *c, uint64_t table_id);

/* This handle's counts, and the cache's bytes in use (ring space written
 * at least once, plus the fixed part): the memory it holds. */
typedef struct shared_cache_stats {
    uint64_t hits, misses, puts, bytes;
} shared_cache_stats;
void shared_cache_get_stats(shared_cache *c, shared_cache_stats *out);

#endif
