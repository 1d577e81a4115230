/*
 * arena.c - a fixed-capacity bump allocator addressed by offsets.
 *
 * Invariants: `used` only grows, never exceeds `capacity`, and starts at
 * ARENA_FIRST so offset 0 stays reserved as the null offset. The block is
 * never moved or resized, so a pointer obtained from arena_ptr stays valid
 * until arena_free. Threads: see arena.h; the CAS loop in arena_alloc makes
 * concurrent allocations safe and a failed one leaves `used` untouched.
 */
#include "arena.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "status.h"

/* The first offset handed out; 0..7 are reserved so that 0 means null. */
#define ARENA_FIRST 8
#define ARENA_MIN_CAPACITY 64
#define ARENA_MAX_ALIGN 4096

struct arena {
    char *base;
    uint64_t capacity;
    _Atomic uint64_t used;
};

int arena_new(uint64_t capacity, arena **out)
{
    arena *a = NULL;

    *out = NULL;
    if (capacity < ARENA_MIN_CAPACITY || capacity > ARENA_MAX_CAPACITY)
        return status_err(STOAT_EINVAL, "arena capacity %llu out of range [%u, %llu]",
                          (unsigned long long)capacity, ARENA_MIN_CAPACITY,
                          (unsigned long long)ARENA_MAX_CAPACITY);
    if ((a = calloc(1, sizeof(*a))) == NULL)
        goto fail;
    /* Large blocks come from mmap, so untouched pages cost no memory. */
    if ((a->base = malloc((size_t)capacity)) == NULL)
        goto fail;
    a->capacity = capacity;
    atomic_init(&a->used, ARENA_FIRST);
    *out = a;
    return 0;
fail:
    free(a);
    return status_err(STOAT_ENOMEM, "arena: cannot allocate %llu bytes",
                      (unsigned long long)capacity);
}

void arena_free(arena *a)
{
    if (a == NULL)
        return;
    free(a->base);
    free(a);
}

uint32_t arena_alloc(arena *a, size_t len, size_t align)
{
    uint64_t old = atomic_load_explicit(&a->used, memory_order_relaxed);
    uint64_t start, end;

    if (align == 0 || align > ARENA_MAX_ALIGN || (align & (align - 1)) != 0)
        return 0;
    do {
        start = (old + align - 1) & ~(uint64_t)(align - 1);
        if (len > a->capacity || start > a->capacity - len)
            return 0;
        end = start + len;
    } while (!atomic_compare_exchange_weak_explicit(&a->used, &old, end, memory_order_relaxed,
                                                    memory_order_relaxed));
    return (uint32_t)start;
}

void *arena_ptr(const arena *a, uint32_t off)
{
    return a->base + off;
}

uint64_t arena_used(const arena *a)
{
    return atomic_load_explicit(&a->used, memory_order_relaxed);
}

uint64_t arena_capacity(const arena *a)
{
    return a->capacity;
}
