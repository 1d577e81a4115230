/*
 * block_cache_test.c - hits and misses, eviction under the budget (recent
 * and recently hit entries kept), pinned entries outliving eviction and
 * erasure, releases evicting down to the budget, pass-through mode,
 * concurrent use, and a budget changed while entries are cached.
 */
#include <pthread.h>
#include <stdlib.h>

#include "table/block_cache.h"
#include "test.h"

static char *block_of(size_t len, char fill)
{
    char *p = malloc(len);

    REQUIRE(p != NULL);
    memset(p, fill, len);
    return p;
}

static void test_block_cache_hit_after_insert(void)
{
    block_cache *c;
    block_cache_stats st;
    block_handle *h;

    REQUIRE_OK(block_cache_new(1 << 20, &c));
    CHECK(block_cache_lookup(c, 1, 0) == NULL);
    h = block_cache_insert(c, 1, 0, block_of(100, 'a'), 100);
    REQUIRE(h != NULL);
    CHECK(block_handle_len(h) == 100 && block_handle_data(h)[99] == 'a');
    block_cache_release(c, h);
    h = block_cache_lookup(c, 1, 0);
    REQUIRE(h != NULL);
    CHECK(block_handle_data(h)[0] == 'a');
    block_cache_release(c, h);
    CHECK(block_cache_lookup(c, 1, 4096) == NULL); /* other offset */
    CHECK(block_cache_lookup(c, 2, 0) == NULL);    /* other table */
    block_cache_get_stats(c, &st);
    CHECK(st.hits == 1 && st.misses == 3 && st.entries == 1 && st.usage == 100);
    CHECK(st.capacity == 1 << 20);
    block_cache_free(c);
}

static void test_block_cache_insert_of_present_key_returns_existing(void)
{
    block_cache *c;
    block_handle *a, *b;

    REQUIRE_OK(block_cache_new(1 << 20, &c));
    a = block_cache_insert(c, 1, 0, block_of(10, 'a'), 10);
    b = block_cache_insert(c, 1, 0, block_of(20, 'b'), 20); /* freed */
    REQUIRE(a != NULL && b != NULL);
    CHECK(a == b && block_handle_data(b)[0] == 'a' && block_handle_len(b) == 10);
    block_cache_release(c, a);
    block_cache_release(c, b);
    block_cache_free(c);
}

static void test_block_cache_usage_stays_under_capacity(void)
{
    uint64_t cap = 64 * 1024;
    block_cache *c;
    block_cache_stats st;
    int hits = 0;

    REQUIRE_OK(block_cache_new(cap, &c));
    for (uint64_t i = 0; i < 1000; i++) {
        block_handle *h = block_cache_insert(c, i % 7, i * 4096, block_of(1000, 'x'), 1000);
        REQUIRE(h != NULL);
        block_cache_release(c, h);
        block_cache_get_stats(c, &st);
        REQUIRE(st.usage <= cap);
    }
    CHECK(st.entries > 0 && st.entries < 1000);
    /* the most recent entries are the ones kept */
    for (uint64_t i = 990; i < 1000; i++) {
        block_handle *h = block_cache_lookup(c, i % 7, i * 4096);
        hits += h != NULL;
        block_cache_release(c, h);
    }
    CHECK(hits >= 8);
    block_cache_free(c);
}

static void test_block_cache_lru_keeps_recently_used(void)
{
    block_cache *c;
    block_handle *h;

    /* 16 shards of 1000 bytes: all these keys are in one table, so spread
     * over shards; touch key 0 between inserts so it stays. */
    REQUIRE_OK(block_cache_new(16 * 1000, &c));
    h = block_cache_insert(c, 5, 0, block_of(300, '0'), 300);
    block_cache_release(c, h);
    for (uint64_t i = 1; i < 400; i++) {
        h = block_cache_insert(c, 5, i, block_of(300, 'x'), 300);
        block_cache_release(c, h);
        h = block_cache_lookup(c, 5, 0);
        REQUIRE(h != NULL);
        block_cache_release(c, h);
    }
    block_cache_free(c);
}

static void test_block_cache_pinned_entry_survives_eviction(void)
{
    block_cache *c;
    block_cache_stats st;
    block_handle *pinned, *h;

    REQUIRE_OK(block_cache_new(16 * 1024, &c));
    pinned = block_cache_insert(c, 9, 0, block_of(512, 'p'), 512);
    REQUIRE(pinned != NULL);
    for (uint64_t i = 1; i < 2000; i++) {
        h = block_cache_insert(c, 9, i * 512, block_of(512, 'y'), 512);
        block_cache_release(c, h);
    }
    /* still pinned: still cached and still readable */
    CHECK(block_handle_data(pinned)[511] == 'p');
    h = block_cache_lookup(c, 9, 0);
    CHECK(h == pinned);
    block_cache_release(c, h);
    /* erased while pinned: bytes stay valid, gone from the cache */
    block_cache_erase_table(c, 9);
    CHECK(block_cache_lookup(c, 9, 0) == NULL);
    CHECK(block_handle_data(pinned)[0] == 'p');
    block_cache_get_stats(c, &st);
    CHECK(st.entries == 0 && st.usage == 0);
    block_cache_release(c, pinned); /* freed now (valgrind checks) */
    block_cache_free(c);
}

/* Pins hold the shard over its capacity; the releases bring it back. */
static void test_block_cache_release_evicts_down_to_capacity(void)
{
    block_cache *c;
    block_cache_stats st;
    block_handle *h[50];

    REQUIRE_OK(block_cache_new(16 * 1000, &c)); /* 1000 bytes a shard */
    for (int i = 0; i < 50; i++)
        REQUIRE((h[i] = block_cache_insert(c, 3, (uint64_t)i, block_of(400, 'q'), 400)) != NULL);
    block_cache_get_stats(c, &st);
    CHECK(st.entries == 50 && st.usage == 50 * 400); /* all pinned: nothing evicted */
    for (int i = 0; i < 50; i++)
        block_cache_release(c, h[i]);
    block_cache_get_stats(c, &st);
    CHECK(st.usage <= 16 * 1000 && st.entries > 0);
    block_cache_free(c);
}

static void test_block_cache_erase_table_spares_others(void)
{
    block_cache *c;
    block_handle *h;
    block_cache_stats st;

    REQUIRE_OK(block_cache_new(1 << 20, &c));
    for (uint64_t t = 1; t <= 3; t++)
        for (uint64_t off = 0; off < 50; off++) {
            h = block_cache_insert(c, t, off * 100, block_of(100, (char)('0' + t)), 100);
            block_cache_release(c, h);
        }
    block_cache_erase_table(c, 2);
    block_cache_get_stats(c, &st);
    CHECK(st.entries == 100 && st.usage == 100 * 100);
    CHECK(block_cache_lookup(c, 2, 0) == NULL);
    h = block_cache_lookup(c, 3, 4900);
    CHECK(h != NULL && block_handle_data(h)[0] == '3');
    block_cache_release(c, h);
    block_cache_free(c);
}

static void test_block_cache_zero_capacity_passes_through(void)
{
    block_cache *c;
    block_cache_stats st;
    block_handle *h;

    REQUIRE_OK(block_cache_new(0, &c));
    h = block_cache_insert(c, 1, 0, block_of(64, 'z'), 64);
    REQUIRE(h != NULL);
    CHECK(block_handle_data(h)[63] == 'z');
    CHECK(block_cache_lookup(c, 1, 0) == NULL);
    block_cache_release(c, h);
    block_cache_get_stats(c, &st);
    CHECK(st.entries == 0 && st.usage == 0);
    block_cache_free(c);
}

static void test_block_cache_oversized_entry_not_kept(void)
{
    block_cache *c;
    block_cache_stats st;
    block_handle *h;

    REQUIRE_OK(block_cache_new(16 * 100, &c));
    h = block_cache_insert(c, 1, 0, block_of(5000, 'b'), 5000);
    REQUIRE(h != NULL);
    CHECK(block_handle_data(h)[4999] == 'b');
    block_cache_release(c, h);
    block_cache_get_stats(c, &st);
    CHECK(st.usage <= 16 * 100 && st.entries == 0);
    block_cache_free(c);
}

typedef struct worker_arg {
    block_cache *c;
    uint64_t seed;
    int errors;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;

    for (int i = 0; i < 20000; i++) {
        uint64_t t = test_rand(&a->seed) % 4, off = test_rand(&a->seed) % 200;
        block_handle *h = block_cache_lookup(a->c, t, off);
        if (h == NULL) {
            char *d = malloc(256);
            if (d == NULL)
                continue;
            memset(d, (char)(t * 200 + off), 256);
            h = block_cache_insert(a->c, t, off, d, 256);
        }
        if (h == NULL || block_handle_data(h)[255] != (char)(t * 200 + off))
            a->errors++;
        if (i % 5000 == 4999)
            block_cache_erase_table(a->c, t);
        block_cache_release(a->c, h);
    }
    return NULL;
}

static void test_block_cache_concurrent_use(void)
{
    block_cache *c;
    pthread_t th[4];
    worker_arg args[4];
    block_cache_stats st;

    REQUIRE_OK(block_cache_new(32 * 1024, &c));
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){c, (uint64_t)i + 1, 0};
        REQUIRE(pthread_create(&th[i], NULL, worker, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].errors == 0);
    }
    block_cache_get_stats(c, &st);
    CHECK(st.usage <= 32 * 1024 && st.hits > 0 && st.misses > 0);
    block_cache_free(c);
}

/* A smaller capacity evicts unpinned entries down to it at once; a pinned
 * one stays readable and goes when released; a larger one keeps more. */
static void test_block_cache_set_capacity_shrinks_and_grows(void)
{
    block_cache *c;
    block_cache_stats st;
    block_handle *pinned;

    REQUIRE_OK(block_cache_new(4 << 20, &c));
    for (uint64_t t = 0; t < 512; t++)
        block_cache_release(c, block_cache_insert(c, t, 0, block_of(4096, 'x'), 4096));
    pinned = block_cache_lookup(c, 7, 0);
    REQUIRE(pinned != NULL);
    block_cache_get_stats(c, &st);
    CHECK(st.entries == 512 && st.usage == 512 * 4096);
    block_cache_set_capacity(c, 512 << 10);
    block_cache_get_stats(c, &st);
    CHECK(st.capacity == 512 << 10);
    CHECK(st.usage <= (512 << 10) + 4096);     /* the pinned one may be over */
    CHECK(block_handle_data(pinned)[4095] == 'x');
    block_cache_release(c, pinned);
    block_cache_get_stats(c, &st);
    CHECK(st.usage <= 512 << 10);
    block_cache_set_capacity(c, 4 << 20);
    for (uint64_t t = 1000; t < 1512; t++)
        block_cache_release(c, block_cache_insert(c, t, 0, block_of(4096, 'y'), 4096));
    block_cache_get_stats(c, &st);
    CHECK(st.usage > (2 << 20) && st.usage <= (4 << 20));
    block_cache_free(c);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_block_cache_hit_after_insert);
    TEST_RUN(test_block_cache_insert_of_present_key_returns_existing);
    TEST_RUN(test_block_cache_usage_stays_under_capacity);
    TEST_RUN(test_block_cache_lru_keeps_recently_used);
    TEST_RUN(test_block_cache_pinned_entry_survives_eviction);
    TEST_RUN(test_block_cache_release_evicts_down_to_capacity);
    TEST_RUN(test_block_cache_erase_table_spares_others);
    TEST_RUN(test_block_cache_zero_capacity_passes_through);
    TEST_RUN(test_block_cache_oversized_entry_not_kept);
    TEST_RUN(test_block_cache_concurrent_use);
    TEST_RUN(test_block_cache_set_capacity_shrinks_and_grows);
    return test_summary();
}
