/*
 * arena.h - a fixed-capacity bump allocator addressed by offsets, with two
 * ends.
 *
 * An arena is one malloc'd block of `capacity` bytes. Allocation bumps an
 * offset up from the bottom (arena_alloc) or down from the top
 * (arena_alloc_back); the arena is full when the two meet. Nothing is
 * freed until the whole arena is. Two ends let a user keep its small,
 * often visited records (skiplist nodes) packed together at the bottom,
 * away from the bulk it touches once (values) at the top, so a search
 * walks far fewer cache lines. Callers hold uint32 offsets, never
 * pointers, so the block could later live in shared memory at a different
 * address in each process; arena_ptr() turns an offset into a pointer for
 * the current mapping. Offset 0 is never handed out and means "null".
 * Capacity is at most ARENA_MAX_CAPACITY (just under 4 GiB), so every
 * offset fits in 32 bits.
 *
 * Threads: both allocators are lock-free (a compare-and-swap on one word
 * holding both ends), so several allocators are safe, though the memtable
 * has only one writer. arena_ptr, arena_used and arena_capacity may be
 * called from any thread at any time. The bytes of an allocation are
 * published to other threads by whatever structure links them (the
 * skiplist's release stores), not by the arena.
 */
#ifndef STOAT_ARENA_H
#define STOAT_ARENA_H

#include <stddef.h>
#include <stdint.h>

typedef struct arena arena;

#define ARENA_MAX_CAPACITY ((uint64_t)UINT32_MAX)

/* Creates an arena of `capacity` bytes (at least 64, at most
 * ARENA_MAX_CAPACITY): STOAT_EINVAL outside those bounds, STOAT_ENOMEM if
 * malloc fails. */
int arena_new(uint64_t capacity, arena **out);

/* Frees the block; every offset and pointer into it dies. NULL is fine. */
void arena_free(arena *a);

/*
 * Allocates len bytes aligned to `align` (a power of two, at most 4096)
 * from the bottom end and returns the offset, or 0 when the arena has no
 * room; a failed allocation consumes nothing. The bytes are uninitialised.
 */
uint32_t arena_alloc(arena *a, size_t len, size_t align);

/* The same from the top end: successive allocations go down in memory. */
uint32_t arena_alloc_back(arena *a, size_t len, size_t align);

/* The address of offset off (0 < off <= capacity). */
void *arena_ptr(const arena *a, uint32_t off);

/* Bytes handed out so far from both ends, including the reserved offset 0
 * and padding; capacity - used bytes remain between the ends. */
uint64_t arena_used(const arena *a);

uint64_t arena_capacity(const arena *a);

#endif
