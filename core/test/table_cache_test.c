/*
 * table_cache_test.c - bounded open readers: LRU eviction, reuse after
 * eviction, readers in use outliving eviction, explicit eviction with
 * block cache cleanup, missing files, and concurrent gets.
 */
#include <pthread.h>
#include <stdlib.h>

#include "env/env.h"
#include "base/ikey.h"
#include "table/sst_builder.h"
#include "table/table_cache.h"
#include "test.h"

#define N_TABLES 40

/* Table id holds keys "t<id>-k<j>" (j < 50) at version id. */
static void make_tables(const char *dir, int n)
{
    sst_options o = {4096, STOAT_COMPRESSION_LZ4, 1, 0.01};

    for (int id = 1; id <= n; id++) {
        char *path = sst_path(dir, (uint64_t)id);
        sst_builder *b;
        sst_props props;
        REQUIRE(path != NULL);
        REQUIRE_OK(sst_builder_new(env_posix(), path, &o, &b));
        for (int j = 0; j < 50; j++) {
            char uk[32], ik[48], val[32];
            int ul = snprintf(uk, sizeof(uk), "t%03d-k%03d", id, j);
            size_t il = ikey_encode(ik, uk, (size_t)ul, (uint64_t)id);
            int vl = snprintf(val, sizeof(val), "%c%c%cv%d.%d", 0, 0, 0, id, j);
            REQUIRE_OK(sst_builder_add(b, slice_make(ik, il), slice_make(val, (size_t)vl)));
        }
        REQUIRE_OK(sst_builder_finish(b, &props));
        CHECK(props.num_entries == 50);
        sst_props_free(&props);
        free(path);
    }
}

/* Reads key j of table id through the cache; 1 if it holds the right value. */
static int read_key(table_cache *tc, int id, int j)
{
    sst_reader *r;
    buf k = {0}, v = {0};
    char uk[32], want[32];
    int ul = snprintf(uk, sizeof(uk), "t%03d-k%03d", id, j), ok;
    int wl = snprintf(want, sizeof(want), "%c%c%cv%d.%d", 0, 0, 0, id, j);

    if (table_cache_get(tc, (uint64_t)id, &r) != 0)
        return 0;
    ok = sst_reader_id(r) == (uint64_t)id &&
         sst_reader_get(r, slice_make(uk, (size_t)ul), UINT64_MAX, &k, &v) == 0 &&
         v.len == (size_t)wl && memcmp(v.data, want, v.len) == 0;
    sst_reader_unref(r);
    buf_free(&k);
    buf_free(&v);
    return ok;
}

static void test_table_cache_open_count_bounded_by_capacity(void)
{
    const char *dir = test_tmpdir();
    table_cache *tc;

    make_tables(dir, N_TABLES);
    REQUIRE_OK(table_cache_new(env_posix(), dir, 8, NULL, &tc));
    CHECK(table_cache_open_count(tc) == 0);
    for (int round = 0; round < 3; round++)
        for (int id = 1; id <= N_TABLES; id++) {
            CHECK(read_key(tc, id, id % 50));
            CHECK(table_cache_open_count(tc) <= 8);
        }
    CHECK(table_cache_open_count(tc) == 8);
    table_cache_free(tc);
}

static void test_table_cache_hit_returns_same_reader(void)
{
    const char *dir = test_tmpdir();
    table_cache *tc;
    sst_reader *a, *b;

    make_tables(dir, 3);
    REQUIRE_OK(table_cache_new(env_posix(), dir, 4, NULL, &tc));
    REQUIRE_OK(table_cache_get(tc, 2, &a));
    REQUIRE_OK(table_cache_get(tc, 2, &b));
    CHECK(a == b);
    sst_reader_unref(a);
    sst_reader_unref(b);
    CHECK(table_cache_open_count(tc) == 1);
    table_cache_free(tc);
}

static void test_table_cache_lru_evicts_least_recent_then_reopens(void)
{
    const char *dir = test_tmpdir();
    table_cache *tc;
    sst_reader *first, *again;

    make_tables(dir, 5);
    REQUIRE_OK(table_cache_new(env_posix(), dir, 3, NULL, &tc));
    REQUIRE_OK(table_cache_get(tc, 1, &first)); /* held: a reopen would differ */
    CHECK(read_key(tc, 2, 0) && read_key(tc, 3, 0));
    CHECK(read_key(tc, 1, 1)); /* touch 1: now 2 is the oldest */
    CHECK(read_key(tc, 4, 0)); /* evicts 2 */
    REQUIRE_OK(table_cache_get(tc, 1, &again));
    CHECK(again == first); /* 1 was kept */
    sst_reader_unref(again);
    sst_reader_unref(first);
    CHECK(table_cache_open_count(tc) == 3);
    CHECK(read_key(tc, 2, 7)); /* reopened after eviction */
    CHECK(table_cache_open_count(tc) == 3);
    table_cache_free(tc);
}

static void test_table_cache_reader_in_use_survives_eviction(void)
{
    const char *dir = test_tmpdir();
    table_cache *tc;
    sst_reader *held;
    buf k = {0}, v = {0};

    make_tables(dir, 6);
    REQUIRE_OK(table_cache_new(env_posix(), dir, 2, NULL, &tc));
    REQUIRE_OK(table_cache_get(tc, 1, &held));
    for (int id = 2; id <= 6; id++)
        CHECK(read_key(tc, id, 3));
    CHECK(table_cache_open_count(tc) == 2);
    /* evicted from the cache, still open for its user */
    CHECK_RC(sst_reader_get(held, slice_make("t001-k004", 9), 10, &k, &v), 0);
    sst_reader_unref(held);
    buf_free(&k);
    buf_free(&v);
    table_cache_free(tc);
}

static void test_table_cache_evict_forgets_table_and_blocks(void)
{
    const char *dir = test_tmpdir();
    table_cache *tc;
    block_cache *bc;
    block_cache_stats st;
    sst_reader *r;
    char *path;

    make_tables(dir, 3);
    REQUIRE_OK(block_cache_new(1 << 20, &bc));
    REQUIRE_OK(table_cache_new(env_posix(), dir, 10, bc, &tc));
    CHECK(read_key(tc, 1, 0) && read_key(tc, 2, 0));
    block_cache_get_stats(bc, &st);
    CHECK(st.entries == 2);
    table_cache_evict(tc, 1);
    block_cache_get_stats(bc, &st);
    CHECK(st.entries == 1); /* table 1's block is gone, table 2's stays */
    CHECK(table_cache_open_count(tc) == 1);
    /* its file is removed: a get now fails */
    path = sst_path(dir, 1);
    REQUIRE_OK(env_remove(env_posix(), path));
    CHECK_RC(table_cache_get(tc, 1, &r), STOAT_ENOTFOUND);
    CHECK(r == NULL);
    CHECK(read_key(tc, 2, 1));
    table_cache_evict(tc, 99); /* unknown: nothing happens */
    table_cache_free(tc);
    block_cache_free(bc);
    free(path);
}

/* A pinned table evicted (another lineage of views dropped it, its file
 * removed) stays readable for its pins; the last unpin forgets it. */
static void test_table_cache_evict_of_pinned_waits_for_last_unpin(void)
{
    const char *dir = test_tmpdir();
    table_cache *tc;
    sst_reader *r;
    char *path;

    make_tables(dir, 3);
    REQUIRE_OK(table_cache_new(env_posix(), dir, 10, NULL, &tc));
    REQUIRE_OK(table_cache_pin(tc, 1));
    REQUIRE_OK(table_cache_pin(tc, 1));
    table_cache_evict(tc, 1);
    path = sst_path(dir, 1);
    REQUIRE_OK(env_remove(env_posix(), path));
    CHECK(read_key(tc, 1, 5));          /* still there for its pins */
    table_cache_unpin(tc, 1);
    CHECK(read_key(tc, 1, 6));          /* one pin left */
    table_cache_unpin(tc, 1);
    CHECK_RC(table_cache_get(tc, 1, &r), STOAT_ENOTFOUND);
    CHECK(table_cache_open_count(tc) == 0);
    CHECK(read_key(tc, 2, 1));
    table_cache_free(tc);
    free(path);
}

static void test_table_cache_damaged_table_is_not_cached(void)
{
    const char *dir = test_tmpdir();
    table_cache *tc;
    sst_reader *r;
    env_file *f;
    char *path = sst_path(dir, 7);

    REQUIRE(path != NULL);
    REQUIRE_OK(env_open(env_posix(), path, ENV_WRITE | ENV_TRUNC, &f));
    REQUIRE_OK(env_append(f, "not an sst", 10));
    env_close(f);
    REQUIRE_OK(table_cache_new(env_posix(), dir, 0, NULL, &tc)); /* taken as 1 */
    CHECK_RC(table_cache_get(tc, 7, &r), STOAT_ECORRUPT);
    CHECK(table_cache_open_count(tc) == 0);
    table_cache_free(tc);
    free(path);
}

typedef struct worker_arg {
    table_cache *tc;
    uint64_t seed;
    int bad;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;

    for (int i = 0; i < 400; i++) {
        int id = 1 + (int)(test_rand(&a->seed) % 12);
        if (!read_key(a->tc, id, (int)(test_rand(&a->seed) % 50)))
            a->bad++;
        if (table_cache_open_count(a->tc) > 4)
            a->bad++;
    }
    return NULL;
}

static void test_table_cache_concurrent_gets(void)
{
    const char *dir = test_tmpdir();
    table_cache *tc;
    block_cache *bc;
    pthread_t th[4];
    worker_arg args[4];

    make_tables(dir, 12);
    REQUIRE_OK(block_cache_new(64 << 10, &bc));
    REQUIRE_OK(table_cache_new(env_posix(), dir, 4, bc, &tc));
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){tc, (uint64_t)i + 7, 0};
        REQUIRE(pthread_create(&th[i], NULL, worker, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].bad == 0);
    }
    CHECK(table_cache_open_count(tc) <= 4);
    table_cache_free(tc);
    block_cache_free(bc);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_table_cache_open_count_bounded_by_capacity);
    TEST_RUN(test_table_cache_hit_returns_same_reader);
    TEST_RUN(test_table_cache_lru_evicts_least_recent_then_reopens);
    TEST_RUN(test_table_cache_reader_in_use_survives_eviction);
    TEST_RUN(test_table_cache_evict_forgets_table_and_blocks);
    TEST_RUN(test_table_cache_evict_of_pinned_waits_for_last_unpin);
    TEST_RUN(test_table_cache_damaged_table_is_not_cached);
    TEST_RUN(test_table_cache_concurrent_gets);
    return test_summary();
}
