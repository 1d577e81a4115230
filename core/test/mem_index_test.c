/*
 * mem_index_test.c - the memtable's user-key index: the newest version
 * wins whatever the order of adds, growth keeps every key, an index that
 * is off answers nothing, a full one takes no new keys, and gets through
 * a memtable stay right while a writer adds keys (and grows the index)
 * under readers at published versions.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "base/arena.h"
#include "base/checksum.h"
#include "base/ikey.h"
#include "base/status.h"
#include "env/env.h"
#include "mem/mem_index.h"
#include "mem/memtable.h"
#include "mem/skiplist.h"
#include "test.h"

static slice user_of(char *b, uint64_t i)
{
    return slice_make(b, (size_t)snprintf(b, 32, "k%09llu", (unsigned long long)i));
}

static uint64_t hash_of(slice u)
{
    return checksum64(u.data, u.len);
}

/* Inserts user key i at version into sl and the index; the node. */
static uint32_t add(skiplist *sl, mem_index *x, uint64_t i, uint64_t version)
{
    char b[32], k[48];
    slice u = user_of(b, i);
    uint32_t node;

    REQUIRE_OK(skiplist_insert_node(sl, slice_make(k, ikey_encode(k, u.data, u.len, version)),
                                    slice_make("v", 1), 0, NULL, &node));
    REQUIRE(node != 0);
    mem_index_add(x, sl, u, hash_of(u), node);
    return node;
}

static uint32_t find(const skiplist *sl, const mem_index *x, uint64_t i)
{
    char b[32];
    slice u = user_of(b, i);

    return mem_index_find(x, sl, u, hash_of(u));
}

static void test_mem_index_newest_version_wins(void)
{
    arena *a;
    skiplist sl;
    mem_index x;
    uint32_t n5, n9;

    REQUIRE_OK(arena_new(1u << 20, &a));
    REQUIRE_OK(skiplist_init(&sl, a, 1));
    mem_index_init(&x, 0);
    n5 = add(&sl, &x, 1, 5);
    CHECK(find(&sl, &x, 1) == n5);
    n9 = add(&sl, &x, 1, 9);
    CHECK(n9 != n5 && find(&sl, &x, 1) == n9);
    add(&sl, &x, 1, 7);     /* older, added later (a GC rewrite): no change */
    CHECK(find(&sl, &x, 1) == n9);
    CHECK(find(&sl, &x, 2) == 0);
    mem_index_free(&x);
    CHECK(find(&sl, &x, 1) == 0);   /* freed: off */
    arena_free(a);
}

/* 100,000 keys in the index of a 16 MiB arena: the first table (65,536
 * slots) grows twice, to 262,144, within its cap (2 MiB of slots). */
static void test_mem_index_growth_keeps_every_key(void)
{
    arena *a;
    skiplist sl;
    mem_index x;
    uint64_t n = 100000, wrong = 0;
    uint32_t *nodes = malloc(n * sizeof(*nodes));

    REQUIRE(nodes != NULL);
    REQUIRE_OK(arena_new(16u << 20, &a));
    REQUIRE_OK(skiplist_init(&sl, a, 1));
    mem_index_init(&x, 16u << 20);
    for (uint64_t i = 0; i < n; i++)
        nodes[i] = add(&sl, &x, 2 * i, 3);
    for (uint64_t i = 0; i < n; i++)
        wrong += find(&sl, &x, 2 * i) != nodes[i] || find(&sl, &x, 2 * i + 1) != 0;
    CHECK(wrong == 0);
    CHECK(x.n_retired == 2);
    mem_index_free(&x);
    arena_free(a);
    free(nodes);
}

/* At its cap (1,024 slots for a 64 KiB arena) the index stops taking new
 * keys, and still follows the newer versions of those it holds. */
static void test_mem_index_full_index_skips_new_keys(void)
{
    arena *a;
    skiplist sl;
    mem_index x;
    uint64_t indexed = 0, wrong = 0;
    uint32_t first[2000], newer;

    REQUIRE_OK(arena_new(1u << 20, &a));
    REQUIRE_OK(skiplist_init(&sl, a, 1));
    mem_index_init(&x, 64u << 10);
    for (uint64_t i = 0; i < 2000; i++)
        first[i] = add(&sl, &x, i, 3);
    for (uint64_t i = 0; i < 2000; i++) {
        uint32_t f = find(&sl, &x, i);
        indexed += f != 0;
        wrong += f != 0 && f != first[i];
    }
    CHECK(indexed == 512);
    CHECK(wrong == 0);
    CHECK(x.n_retired == 0);
    newer = add(&sl, &x, 0, 4);
    CHECK(find(&sl, &x, 0) == newer);
    add(&sl, &x, 1999, 4);      /* not indexed: stays out */
    CHECK(find(&sl, &x, 1999) == 0);
    mem_index_free(&x);
    arena_free(a);
}

/* Writer and readers through memtable_get: a reader at a published
 * version always finds the newest version at or below it. */
typedef struct race {
    memtable *m;
    _Atomic uint64_t published;     /* versions 1..published are added */
    _Atomic int done;
    _Atomic uint64_t wrong, reads;
} race;

#define RACE_KEYS 6000u

static void *race_reader(void *arg)
{
    race *r = arg;
    uint64_t s = (uint64_t)(uintptr_t)&s | 1;

    while (!atomic_load(&r->done)) {
        uint64_t rv = atomic_load_explicit(&r->published, memory_order_acquire), i, want;
        char b[32];
        slice ik, v;
        int rc;

        if (rv == 0)
            continue;
        /* Version w writes key (w - 1) % RACE_KEYS: key i's newest
         * version at or below rv is the largest w <= rv with w - 1 = i. */
        i = test_rand(&s) % RACE_KEYS;
        want = rv >= i + 1 ? rv - (rv - 1 - i) % RACE_KEYS : 0;
        rc = memtable_get(r->m, user_of(b, i), rv, &ik, &v);
        if (want == 0)
            atomic_fetch_add(&r->wrong, rc != STOAT_ENOTFOUND);
        else
            atomic_fetch_add(&r->wrong, rc != 0 || ikey_version(ik) != want);
        atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

static void test_mem_index_readers_during_writes(void)
{
    race r = {0};
    pthread_t th[2];
    uint64_t versions = 3 * RACE_KEYS;

    /* A 1 MiB arena: the index starts at 4,096 slots and grows once (at
     * key 2,049) to its cap of 8,192, so some keys go unindexed too. */
    REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 7, 1u << 20, &r.m));
    for (int t = 0; t < 2; t++)
        REQUIRE(pthread_create(&th[t], NULL, race_reader, &r) == 0);
    for (uint64_t w = 1; w <= versions; w++) {
        char b[32], k[48];
        slice u = user_of(b, (w - 1) % RACE_KEYS);
        REQUIRE_OK(memtable_add(r.m, slice_make(k, ikey_encode(k, u.data, u.len, w)),
                                slice_make("x", 1), 0));
        atomic_store_explicit(&r.published, w, memory_order_release);
    }
    atomic_store(&r.done, 1);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    CHECK(atomic_load(&r.wrong) == 0);
    CHECK(atomic_load(&r.reads) > 0);
    memtable_unref(r.m);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_mem_index_newest_version_wins);
    TEST_RUN(test_mem_index_growth_keeps_every_key);
    TEST_RUN(test_mem_index_full_index_skips_new_keys);
    TEST_RUN(test_mem_index_readers_during_writes);
    return test_summary();
}
