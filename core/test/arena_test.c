/*
 * arena_test.c - bounds, alignment and accounting of the bump arena and
 * of its two ends.
 */
#include "base/arena.h"
#include "test.h"

static void test_arena_rejects_bad_capacity(void)
{
    arena *a = (arena *)1;

    CHECK_RC(arena_new(0, &a), STOAT_EINVAL);
    CHECK(a == NULL);
    CHECK_RC(arena_new(ARENA_MAX_CAPACITY + 1, &a), STOAT_EINVAL);
    CHECK(a == NULL);
}

static void test_arena_offsets_are_nonzero_and_aligned(void)
{
    arena *a;
    uint32_t o1, o2, o3;

    REQUIRE_OK(arena_new(1024, &a));
    o1 = arena_alloc(a, 3, 1);
    o2 = arena_alloc(a, 16, 8);
    o3 = arena_alloc(a, 1, 64);
    CHECK(o1 != 0);
    CHECK(o2 >= o1 + 3 && o2 % 8 == 0);
    CHECK(o3 >= o2 + 16 && o3 % 64 == 0);
    CHECK(((uintptr_t)arena_ptr(a, o2)) % 8 == 0);
    CHECK(arena_used(a) == (uint64_t)o3 + 1);
    CHECK(arena_capacity(a) == 1024);
    memset(arena_ptr(a, o2), 0xab, 16);
    CHECK(((unsigned char *)arena_ptr(a, o2))[15] == 0xab);
    arena_free(a);
}

static void test_arena_full_allocation_consumes_nothing(void)
{
    arena *a;
    uint64_t used;
    uint32_t off;

    REQUIRE_OK(arena_new(128, &a));
    off = arena_alloc(a, 100, 8);
    CHECK(off != 0);
    used = arena_used(a);
    CHECK(arena_alloc(a, 128 - used + 1, 1) == 0);
    CHECK(arena_alloc(a, SIZE_MAX, 1) == 0);
    CHECK(arena_used(a) == used);
    /* Exactly the rest still fits, and then nothing does. */
    CHECK(arena_alloc(a, 128 - used, 1) != 0);
    CHECK(arena_used(a) == 128);
    CHECK(arena_alloc(a, 1, 1) == 0);
    CHECK(arena_alloc(a, 0, 1) != 0);
    CHECK(arena_used(a) == 128);
    arena_free(a);
}

static void test_arena_rejects_bad_alignment(void)
{
    arena *a;

    REQUIRE_OK(arena_new(256, &a));
    CHECK(arena_alloc(a, 8, 3) == 0);
    CHECK(arena_alloc(a, 8, 0) == 0);
    CHECK(arena_alloc(a, 8, 8192) == 0);
    CHECK(arena_alloc_back(a, 8, 3) == 0);
    CHECK(arena_alloc_back(a, 8, 0) == 0);
    CHECK(arena_used(a) == 8);
    arena_free(a);
    arena_free(NULL);
}

static void test_arena_back_allocations_grow_down_and_are_counted(void)
{
    arena *a;
    uint32_t b1, b2, b3, f1;

    REQUIRE_OK(arena_new(1024, &a));
    b1 = arena_alloc_back(a, 10, 1);
    b2 = arena_alloc_back(a, 5, 1);
    b3 = arena_alloc_back(a, 16, 8);
    f1 = arena_alloc(a, 8, 8);
    CHECK(b1 == 1024 - 10);
    CHECK(b2 == b1 - 5);
    CHECK(b3 % 8 == 0 && b3 + 16 <= b2 && b3 + 16 + 8 > b2);
    CHECK(f1 != 0 && f1 + 8 <= b3);
    /* Used: the reserved 8, the front's 8, and everything from b3 up. */
    CHECK(arena_used(a) == 8 + 8 + (1024 - (uint64_t)b3));
    memset(arena_ptr(a, b1), 0xcd, 10);
    CHECK(((unsigned char *)arena_ptr(a, b1))[9] == 0xcd);
    arena_free(a);
}

static void test_arena_ends_meet_and_a_failed_allocation_consumes_nothing(void)
{
    arena *a;
    uint64_t used;

    REQUIRE_OK(arena_new(256, &a));
    CHECK(arena_alloc(a, 100, 8) != 0);
    CHECK(arena_alloc_back(a, 100, 1) != 0);
    used = arena_used(a);
    /* 48 bytes are left between the ends, from either side. */
    CHECK(used == 208);
    CHECK(arena_alloc_back(a, 49, 1) == 0);
    CHECK(arena_alloc(a, 49, 1) == 0);
    CHECK(arena_alloc_back(a, SIZE_MAX, 1) == 0);
    CHECK(arena_used(a) == used);
    CHECK(arena_alloc_back(a, 20, 1) != 0);
    CHECK(arena_alloc(a, 28, 1) != 0);
    CHECK(arena_used(a) == 256);
    CHECK(arena_alloc(a, 1, 1) == 0);
    CHECK(arena_alloc_back(a, 1, 1) == 0);
    /* Empty allocations still succeed, at the meeting point (never 0). */
    CHECK(arena_alloc(a, 0, 1) != 0);
    CHECK(arena_alloc_back(a, 0, 1) != 0);
    CHECK(arena_used(a) == 256);
    arena_free(a);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_arena_rejects_bad_capacity);
    TEST_RUN(test_arena_offsets_are_nonzero_and_aligned);
    TEST_RUN(test_arena_full_allocation_consumes_nothing);
    TEST_RUN(test_arena_rejects_bad_alignment);
    TEST_RUN(test_arena_back_allocations_grow_down_and_are_counted);
    TEST_RUN(test_arena_ends_meet_and_a_failed_allocation_consumes_nothing);
    return test_summary();
}
