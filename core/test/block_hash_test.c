/*
 * block_hash_test.c - the hash index of data blocks (format 3): lookups
 * through it agree with the binary search for keys present (every
 * version), absent and between; blocks without one (older formats, too
 * many restarts) answer as before; collisions; the builder's size
 * accounting; and a damaged index gives the right value or a corruption
 * error, never a wrong answer.
 */
#include <stdlib.h>

#include "base/checksum.h"
#include "base/coding.h"
#include "base/ikey.h"
#include "base/status.h"
#include "table/block.h"
#include "table/block_builder.h"
#include "test.h"

typedef struct entry {
    char key[48];   /* internal key */
    size_t klen;
    char val[24];
    size_t vlen;
} entry;

/* n user keys "user%06u" (every third one absent: i % 3 == 1 is skipped),
 * each with 1 to 3 versions, newest first: sorted internal keys. */
static entry *make_entries(unsigned n, size_t *out_n)
{
    entry *v = calloc(3 * (size_t)n, sizeof(*v));
    size_t m = 0;

    REQUIRE(v != NULL);
    for (unsigned i = 0; i < n; i++) {
        char uk[16];
        int ul = snprintf(uk, sizeof(uk), "user%06u", i);
        if (i % 3 == 1)
            continue;
        for (unsigned ver = 3 + i % 3; ver > 2; ver--) {  /* 1..3 versions: 5.., 4.., 3 */
            v[m].klen = ikey_encode(v[m].key, uk, (size_t)ul, 10 * ver);
            v[m].vlen = (size_t)snprintf(v[m].val, sizeof(v[m].val), "v%u@%u", i, ver);
            m++;
        }
    }
    *out_n = m;
    return v;
}

static slice K(const entry *e) { return slice_make(e->key, e->klen); }
static slice V(const entry *e) { return slice_make(e->val, e->vlen); }

/* Builds v into bb (hashed or not) and parses it; the size the builder
 * predicted before finishing is the size it wrote. */
static void build(block_builder *bb, int interval, int hashed, const entry *v, size_t n,
                  block *b, slice *contents)
{
    size_t predicted;

    block_builder_init(bb, interval);
    if (hashed)
        block_builder_hash_index(bb);
    for (size_t i = 0; i < n; i++)
        REQUIRE_OK(block_builder_add(bb, K(&v[i]), V(&v[i])));
    predicted = block_builder_size(bb);
    REQUIRE_OK(block_builder_finish(bb, contents));
    CHECK(contents->len == predicted);
    REQUIRE_OK(block_init(b, contents->data, contents->len, "test", 0));
}

static uint64_t hash_of(slice ikey)
{
    slice u = ikey_user(ikey);

    return checksum64(u.data, u.len);
}

/* Probes user key i at read version rv both ways; counts disagreements.
 * Returns the hashed lookup's rc: 0 also when it found the next user key
 * (block_get's contract); *same says whether it found user key i. */
static int probe_key(const block *b, unsigned i, uint64_t rv, size_t *bad, int *same)
{
    char uk[16], t[48];
    int ul = snprintf(uk, sizeof(uk), "user%06u", i);
    slice target = slice_make(t, ikey_encode(t, uk, (size_t)ul, rv)), v1, v2;
    buf k1 = {0}, k2 = {0};
    int rc1 = block_get(b, target, &k1, &v1);
    int rc2 = block_get_hashed(b, target, hash_of(target), &k2, &v2);

    *bad += rc1 != rc2 || slice_cmp(slice_make(k1.data, k1.len), slice_make(k2.data, k2.len)) ||
            slice_cmp(v1, v2);
    *same = rc2 == 0 && k2.len >= IKEY_SUFFIX_LEN &&
            slice_cmp(ikey_user(slice_make(k2.data, k2.len)), ikey_user(target)) == 0;
    buf_free(&k1);
    buf_free(&k2);
    return rc2;
}

static int probe(const block *b, unsigned i, uint64_t rv, size_t *bad)
{
    int same;

    return probe_key(b, i, rv, bad, &same);
}

/* Every user key (present or not) at read versions between, on and
 * around its versions; 0 disagreements, and the index was there. */
static size_t probe_all(const block *b, unsigned n)
{
    size_t bad = 0;

    for (unsigned i = 0; i < n; i++)
        for (uint64_t rv = 5; rv <= 60; rv += 5)
            probe(b, i, rv, &bad);
    return bad;
}

static void test_block_hash_lookups_agree_with_binary_search(void)
{
    unsigned n = 150;   /* about 250 entries */
    size_t m, hits = 0, bad = 0;
    entry *v = make_entries(n, &m);
    int intervals[] = {1, 4, 16};

    for (int k = 0; k < 3; k++) {
        block_builder bb;
        block b;
        slice c;

        build(&bb, intervals[k], 1, v, m, &b, &c);
        REQUIRE(b.n_buckets > 0);
        CHECK(probe_all(&b, n) == 0);
        /* A present key's newest version is found through the index. */
        for (unsigned i = 0; i < n; i++) {
            int same;
            CHECK(probe_key(&b, i, 100, &bad, &same) == 0 || i + 1 == n);
            hits += same;
        }
        block_builder_free(&bb);
    }
    CHECK(bad == 0);
    CHECK(hits == 3 * (n - n / 3));   /* the keys i % 3 != 1, in each of 3 blocks */
    free(v);
}

/* Blocks without an index (format 1 and 2 data blocks, index blocks, or
 * more restarts than a byte names) answer through the binary search. */
static void test_block_hash_absent_index_falls_back(void)
{
    unsigned n = 600;   /* about 1,000 entries: 1,000 restarts at interval 1 */
    size_t m;
    entry *v = make_entries(n, &m);
    block_builder bb;
    block b;
    slice c;

    build(&bb, 16, 0, v, m, &b, &c);
    CHECK(b.n_buckets == 0);
    CHECK((get_fixed32(c.data + c.len - 4) & BLOCK_HASH_FLAG) == 0);
    CHECK(probe_all(&b, n) == 0);
    block_builder_free(&bb);
    build(&bb, 1, 1, v, m, &b, &c);
    CHECK(b.n_restarts > BLOCK_HASH_MAX_RESTARTS);
    CHECK(b.n_buckets == 0);
    CHECK(probe_all(&b, n) == 0);
    block_builder_free(&bb);
    free(v);
}

/* With 3/4-full buckets some keys of different intervals share one:
 * the bucket is marked, and those keys are still found. */
static void test_block_hash_collisions(void)
{
    unsigned n = 150;
    size_t m, collisions = 0;
    entry *v = make_entries(n, &m);
    block_builder bb;
    block b;
    slice c;

    build(&bb, 4, 1, v, m, &b, &c);
    for (uint32_t i = 0; i < b.n_buckets; i++)
        collisions += b.buckets[i] == BLOCK_HASH_COLLISION;
    CHECK(collisions > 0);
    CHECK(probe_all(&b, n) == 0);
    /* Every bucket a collision: the binary search answers everything. */
    memset((void *)b.buckets, BLOCK_HASH_COLLISION, b.n_buckets);
    CHECK(probe_all(&b, n) == 0);
    block_builder_free(&bb);
    free(v);
}

/* A damaged index (the block's checksum would not catch a writer's bug)
 * never gives a wrong answer: buckets naming the wrong interval still
 * find the right version; a bucket that says "absent" for a present key,
 * or names a restart point the block lacks, is corruption. */
static void test_block_hash_corrupt_index_is_never_a_wrong_value(void)
{
    unsigned n = 150;
    size_t m, bad = 0;
    entry *v = make_entries(n, &m);
    block_builder bb;
    block b;
    slice c;
    uint64_t s = 7;
    int rc;

    build(&bb, 4, 1, v, m, &b, &c);
    /* Wrong intervals, at random: answers still agree. */
    for (uint32_t i = 0; i < b.n_buckets; i++)
        ((unsigned char *)b.buckets)[i] = (unsigned char)(test_rand(&s) % b.n_restarts);
    CHECK(probe_all(&b, n) == 0);
    /* "Absent" everywhere: present keys are corruption, absent ones not. */
    memset((void *)b.buckets, BLOCK_HASH_EMPTY, b.n_buckets);
    rc = probe(&b, 0, 100, &bad);
    CHECK(rc == STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "hash index misses a key") != NULL);
    CHECK(probe(&b, 1, 100, &bad) == 0);   /* absent: the next key, as block_get says */
    CHECK(bad == 1);                        /* only the key the index missed differed */
    /* A restart index past the block's. */
    memset((void *)b.buckets, b.n_restarts, b.n_buckets);
    CHECK(probe(&b, 0, 100, &bad) == STOAT_ECORRUPT);
    block_builder_free(&bb);
    free(v);
}

/* The index's tail is checked at block_init. */
static void test_block_hash_bad_tail_is_corrupt(void)
{
    unsigned n = 30;
    size_t m;
    entry *v = make_entries(n, &m);
    block_builder bb;
    block b;
    slice c;
    char *copy;

    build(&bb, 4, 1, v, m, &b, &c);
    copy = malloc(c.len);
    REQUIRE(copy != NULL);
    memcpy(copy, c.data, c.len);
    put_fixed16(copy + c.len - 6, 0);                               /* no buckets */
    CHECK_RC(block_init(&b, copy, c.len, "f", 3), STOAT_ECORRUPT);
    put_fixed16(copy + c.len - 6, 0xffff);                          /* more than the block */
    CHECK_RC(block_init(&b, copy, c.len, "f", 3), STOAT_ECORRUPT);
    memcpy(copy, c.data, c.len);
    put_fixed32(copy + c.len - 4, BLOCK_HASH_FLAG | (BLOCK_HASH_MAX_RESTARTS + 1));
    CHECK_RC(block_init(&b, copy, c.len, "f", 3), STOAT_ECORRUPT);
    put_fixed32(copy + c.len - 4, BLOCK_HASH_FLAG);                 /* zero restarts */
    CHECK_RC(block_init(&b, copy, c.len, "f", 3), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "f: block at offset 3: bad hash index") != NULL);
    CHECK_RC(block_init(&b, copy, 5, "f", 3), STOAT_ECORRUPT);
    free(copy);
    block_builder_free(&bb);
    free(v);
}

/* An empty hashed builder writes the plain empty block. */
static void test_block_hash_empty_block(void)
{
    block_builder bb;
    block b;
    slice c, val;
    buf key = {0};
    char t[16];

    block_builder_init(&bb, 16);
    block_builder_hash_index(&bb);
    REQUIRE_OK(block_builder_finish(&bb, &c));
    CHECK(c.len == 8);
    REQUIRE_OK(block_init(&b, c.data, c.len, "f", 0));
    CHECK(b.n_buckets == 0);
    CHECK_RC(block_get_hashed(&b, slice_make(t, ikey_encode(t, "a", 1, 1)), 1, &key, &val),
             STOAT_ENOTFOUND);
    block_builder_free(&bb);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_block_hash_lookups_agree_with_binary_search);
    TEST_RUN(test_block_hash_absent_index_falls_back);
    TEST_RUN(test_block_hash_collisions);
    TEST_RUN(test_block_hash_corrupt_index_is_never_a_wrong_value);
    TEST_RUN(test_block_hash_bad_tail_is_corrupt);
    TEST_RUN(test_block_hash_empty_block);
    return test_summary();
}
