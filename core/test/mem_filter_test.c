/*
 * mem_filter_test.c - the memtable's key filter: no false negatives, a
 * false-positive rate that makes it worth probing, the "maybe" answer of a
 * filter that has no memory, and memtable gets that go through it (found,
 * missing, every version, after a recovery that grows the arena).
 */
#include "env/env.h"
#include "base/ikey.h"
#include "log/wal.h"
#include "base/status.h"
#include "mem/mem_filter.h"
#include "mem/memtable.h"
#include "test.h"

static slice key_of(char *b, uint64_t i)
{
    return slice_make(b, (size_t)snprintf(b, 32, "key%012llu", (unsigned long long)i));
}

/* A 64 MiB arena's filter holds 450,000 keys (a memtable of 100-byte
 * values) with every key found and about 1% false positives. */
static void test_mem_filter_no_false_negatives_and_few_false_positives(void)
{
    mem_filter f;
    char b[32];
    uint64_t n = 450000, fp = 0, probes = 200000;

    mem_filter_init(&f, 64ull << 20);
    REQUIRE(f.words != NULL);
    for (uint64_t i = 0; i < n; i++)
        mem_filter_add(&f, mem_filter_hash(key_of(b, i)));
    for (uint64_t i = 0; i < n; i++)
        if (!mem_filter_may_contain(&f, mem_filter_hash(key_of(b, i)))) {
            CHECK(!"a key added is reported absent");
            break;
        }
    for (uint64_t i = n; i < n + probes; i++)
        fp += mem_filter_may_contain(&f, mem_filter_hash(key_of(b, i)));
    /* 18.6 bits a key, 6 probes in a block: about 0.5%. */
    CHECK(fp < probes / 50);
    CHECK(fp > 0);  /* the filter is a filter, not a set */
    mem_filter_free(&f);
}

static void test_mem_filter_empty_answers_no(void)
{
    mem_filter f;
    char b[32];
    uint64_t hits = 0;

    mem_filter_init(&f, 64u << 10);
    for (uint64_t i = 0; i < 1000; i++)
        hits += mem_filter_may_contain(&f, mem_filter_hash(key_of(b, i)));
    CHECK(hits == 0);
    mem_filter_free(&f);
}

static void test_mem_filter_without_memory_answers_maybe(void)
{
    mem_filter f = {NULL, 0};
    char b[32];

    mem_filter_add(&f, mem_filter_hash(key_of(b, 1)));     /* ignored */
    CHECK(mem_filter_may_contain(&f, mem_filter_hash(key_of(b, 1))));
    CHECK(mem_filter_may_contain(&f, mem_filter_hash(key_of(b, 2))));
    mem_filter_free(&f);
}

/* Logs and adds key i at version with a one-byte value (a vstruct). */
static void add(memtable *m, uint64_t i, uint64_t version, char val)
{
    char k[64], b[32], enc[32];
    vstruct vs = {0, 0, 0, slice_make(&val, 1)};
    slice u = key_of(b, i), ik = slice_make(k, ikey_encode(k, u.data, u.len, version));
    slice v = slice_make(enc, vstruct_encode(enc, &vs));
    buf rec = {0};

    REQUIRE_OK(wal_encode_entry(&rec, ik, v));
    REQUIRE_OK(memtable_log(m, rec.data, rec.len));
    buf_free(&rec);
    REQUIRE_OK(memtable_add(m, ik, v, 0));
}

/* Keys 0, 2, .., 2(n-1), each added at versions 5 and 9 (values a, b),
 * read as written; the odd keys between them are missing. */
static void check_gets(memtable *m, uint64_t n)
{
    char b[32];
    slice ik, v;

    for (uint64_t i = 0; i < n; i++) {
        REQUIRE_OK(memtable_get(m, key_of(b, 2 * i), 7, &ik, &v));
        CHECK(ikey_version(ik) == 5 && v.len > 1 && v.data[v.len - 1] == 'a');
        REQUIRE_OK(memtable_get(m, key_of(b, 2 * i), 100, &ik, &v));
        CHECK(ikey_version(ik) == 9 && v.len > 1 && v.data[v.len - 1] == 'b');
        CHECK_RC(memtable_get(m, key_of(b, 2 * i), 4, &ik, &v), STOAT_ENOTFOUND);
        CHECK_RC(memtable_get(m, key_of(b, 2 * i + 1), 100, &ik, &v), STOAT_ENOTFOUND);
    }
}

/* Gets go through the filter: keys added are found at every version,
 * keys never added are not, in a small arena (few filter blocks, so most
 * missing keys pass the filter and reach the skiplist) and a large one. */
static void test_mem_filter_memtable_gets(void)
{
    uint64_t sizes[] = {64u << 10, 16u << 20};

    for (int s = 0; s < 2; s++) {
        memtable *m;

        REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 10 + (uint64_t)s, sizes[s], &m));
        for (uint64_t i = 0; i < 300; i++) {
            add(m, 2 * i, 5, 'a');
            add(m, 2 * i, 9, 'b');
        }
        check_gets(m, 300);
        memtable_unref(m);
    }
}

/* A replay that outgrows its arena starts over in a larger one, with a
 * new filter: what the first attempt added must not be lost from it. */
static void test_mem_filter_recovery_into_a_larger_arena(void)
{
    uint64_t n = 3000, mv;
    memtable *m;

    REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 20, 4u << 20, &m));
    for (uint64_t i = 0; i < n; i++) {
        add(m, 2 * i, 5, 'a');
        add(m, 2 * i, 9, 'b');
    }
    memtable_unref(m);
    REQUIRE_OK(memtable_recover(env_posix(), test_tmpdir(), 20, 64u << 10, 1, &mv, &m));
    CHECK(mv == 9);
    check_gets(m, n);
    memtable_unref(m);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_mem_filter_no_false_negatives_and_few_false_positives);
    TEST_RUN(test_mem_filter_empty_answers_no);
    TEST_RUN(test_mem_filter_without_memory_answers_maybe);
    TEST_RUN(test_mem_filter_memtable_gets);
    TEST_RUN(test_mem_filter_recovery_into_a_larger_arena);
    return test_summary();
}
