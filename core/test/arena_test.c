/*
 * arena_test.c - bounds, alignment and accounting of the bump arena.
 */
#include "arena.h"
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
    arena_free(a);
    arena_free(NULL);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_arena_rejects_bad_capacity);
    TEST_RUN(test_arena_offsets_are_nonzero_and_aligned);
    TEST_RUN(test_arena_full_allocation_consumes_nothing);
    TEST_RUN(test_arena_rejects_bad_alignment);
    return test_summary();
}
