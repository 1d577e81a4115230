/*
 * arena.c - a fixed-capacity bump allocator addressed by offsets, with two
 * ends (contract in arena.h).
 *
 * Invariants: one atomic word holds both ends, the bottom's next free
 * offset in its low 32 bits and the top's lowest handed-out offset in its
 * high 32 bits; ARENA_FIRST <= bottom <= top <= capacity always. The
 * bottom only grows and the top only shrinks; the bottom starts at
 * ARENA_FIRST so offset 0 stays reserved as the null offset, and a top
 * allocation never lands below the bottom, so it is never 0 either. The
 * block is never moved or resized, so a pointer obtained from arena_ptr
 * stays valid until arena_free. Threads: see arena.h; the CAS loops make
 * concurrent allocations safe and a failed one leaves both ends untouched.
 *
 * (Mapping large arenas on transparent huge pages was tried, to spare the
 * random walks of a 64 MiB skiplist their TLB misses: it made no
 * measurable difference on the benchmark machine, a VM, and was dropped.)
 */
#include "base/arena.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "base/status.h"

/* The first offset handed out; 0..7 are reserved so that 0 means null. */
#define ARENA_FIRST 8
#define ARENA_MIN_CAPACITY 64
#define ARENA_MAX_ALIGN 4096

struct arena {
    char *base;
    uint64_t capacity;
    _Atomic uint64_t ends;  /* bottom | top << 32 */
};

static uint64_t arena_pack(uint64_t bottom, uint64_t top)
{
    return bottom | (top << 32);
}

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
    atomic_init(&a->ends, arena_pack(ARENA_FIRST, capacity));
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

static int arena_bad_align(size_t align)
{
    return align == 0 || align > ARENA_MAX_ALIGN || (align & (align - 1)) != 0;
}

uint32_t arena_alloc(arena *a, size_t len, size_t align)
{
    uint64_t old = atomic_load_explicit(&a->ends, memory_order_relaxed);
    uint64_t start, top;

    if (arena_bad_align(align))
        return 0;
    do {
        top = old >> 32;
        start = ((old & UINT32_MAX) + align - 1) & ~(uint64_t)(align - 1);
        if (start > top || len > top - start)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&a->ends, &old, arena_pack(start + len, top),
                                                    memory_order_relaxed, memory_order_relaxed));
    return (uint32_t)start;
}

uint32_t arena_alloc_back(arena *a, size_t len, size_t align)
{
    uint64_t old = atomic_load_explicit(&a->ends, memory_order_relaxed);
    uint64_t start, bottom;

    if (arena_bad_align(align))
        return 0;
    do {
        bottom = old & UINT32_MAX;
        if (len > (old >> 32))
            return 0;
        start = ((old >> 32) - len) & ~(uint64_t)(align - 1);
        if (start < bottom)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&a->ends, &old, arena_pack(bottom, start),
                                                    memory_order_relaxed, memory_order_relaxed));
    return (uint32_t)start;
}

void *arena_ptr(const arena *a, uint32_t off)
{
    return a->base + off;
}

uint64_t arena_used(const arena *a)
{
    uint64_t ends = atomic_load_explicit(&a->ends, memory_order_relaxed);

    return (ends & UINT32_MAX) + (a->capacity - (ends >> 32));
}

uint64_t arena_capacity(const arena *a)
{
    return a->capacity;
}
