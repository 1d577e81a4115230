/*
 * block_test.c - block builder, block iterator and point lookup: round
 * trips, seeks in both directions, block_get against seek, large entries,
 * and damaged blocks.
 */
#include <stdlib.h>

#include "table/block.h"
#include "table/block_builder.h"
#include "base/ikey.h"
#include "base/status.h"
#include "test.h"

typedef struct kv {
    char *key;      /* internal key */
    size_t klen;
    char val[24];
    size_t vlen;
} kv;

static int kv_cmp(const void *a, const void *b)
{
    const kv *x = a, *y = b;
    return ikey_cmp(slice_make(x->key, x->klen), slice_make(y->key, y->klen));
}

/* n distinct internal keys over a small alphabet (so prefixes are shared
 * a lot), several versions of some user keys, sorted. */
static kv *make_keys(size_t n, uint64_t seed, size_t *out_n)
{
    kv *v = calloc(n, sizeof(*v));
    uint64_t s = seed;
    size_t m = 0;

    REQUIRE(v != NULL);
    for (size_t i = 0; i < n; i++) {
        char uk[40];
        size_t ul = 1 + test_rand(&s) % 30;
        for (size_t j = 0; j < ul; j++)
            uk[j] = "abc"[test_rand(&s) % 3];
        v[i].key = malloc(ul + IKEY_SUFFIX_LEN);
        REQUIRE(v[i].key != NULL);
        v[i].klen = ikey_encode(v[i].key, uk, ul, test_rand(&s) % 4);
        v[i].vlen = (size_t)snprintf(v[i].val, sizeof(v[i].val), "v%zu", i);
    }
    qsort(v, n, sizeof(*v), kv_cmp);
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && kv_cmp(&v[m - 1], &v[i]) == 0) {
            free(v[i].key);
            continue;
        }
        v[m++] = v[i];
    }
    *out_n = m;
    return v;
}

static void free_keys(kv *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].key);
    free(v);
}

static slice K(const kv *e) { return slice_make(e->key, e->klen); }
static slice V(const kv *e) { return slice_make(e->val, e->vlen); }

static int at(const block_iter *it, const kv *e)
{
    return block_iter_valid(it) && slice_cmp(block_iter_key(it), K(e)) == 0 &&
           slice_cmp(block_iter_value(it), V(e)) == 0;
}

static void build(block_builder *bb, const kv *v, size_t n, block *b, slice *contents)
{
    for (size_t i = 0; i < n; i++)
        REQUIRE_OK(block_builder_add(bb, K(&v[i]), V(&v[i])));
    REQUIRE_OK(block_builder_finish(bb, contents));
    REQUIRE(contents->len == block_builder_size(bb));
    REQUIRE_OK(block_init(b, contents->data, contents->len, "test", 0));
}

static void round_trip(int interval)
{
    size_t n;
    kv *v = make_keys(3000, 42 + (uint64_t)interval, &n);
    block_builder bb;
    block b;
    block_iter it;
    slice contents;
    size_t i;

    block_builder_init(&bb, interval);
    block_iter_init(&it);
    build(&bb, v, n, &b, &contents);
    block_iter_set(&it, &b);
    for (i = 0, block_iter_seek_first(&it); block_iter_valid(&it); block_iter_next(&it), i++)
        if (i >= n || !at(&it, &v[i]))
            break;
    CHECK(i == n);
    for (i = n, block_iter_seek_last(&it); block_iter_valid(&it); block_iter_prev(&it), i--)
        if (i == 0 || !at(&it, &v[i - 1]))
            break;
    CHECK(i == 0);
    CHECK(block_iter_status(&it) == 0);
    block_iter_free(&it);
    block_builder_free(&bb);
    free_keys(v, n);
}

static void test_block_round_trip_forward_and_backward(void)
{
    round_trip(16);
    round_trip(1);
    round_trip(3);
}

static void test_block_seek_lands_on_first_key_at_or_after(void)
{
    size_t n;
    kv *v = make_keys(2000, 7, &n);
    block_builder bb;
    block b;
    block_iter it;
    slice contents;
    char probe[64];

    block_builder_init(&bb, 16);
    block_iter_init(&it);
    build(&bb, v, n, &b, &contents);
    block_iter_set(&it, &b);
    for (size_t i = 0; i < n; i++) {
        block_iter_seek(&it, K(&v[i]));
        CHECK(at(&it, &v[i]));
        block_iter_seek_for_prev(&it, K(&v[i]));
        CHECK(at(&it, &v[i]));
        /* version 0 of this user key: its oldest possible entry */
        kv p = {probe, 0, "", 0};
        p.klen = ikey_encode(probe, v[i].key, v[i].klen - IKEY_SUFFIX_LEN, 0);
        if (ikey_version(K(&v[i])) != 0) {
            size_t j = i;
            block_iter_seek(&it, K(&p));
            while (j < n && kv_cmp(&v[j], &p) < 0)
                j++;
            if (j < n)
                CHECK(at(&it, &v[j]));
            else
                CHECK(!block_iter_valid(&it));
            block_iter_seek_for_prev(&it, K(&p));
            CHECK(at(&it, &v[j < n && kv_cmp(&v[j], &p) == 0 ? j : j - 1]));
        }
    }
    /* before everything and after everything */
    block_iter_seek(&it, slice_make("\0\0\0\0\0\0\0\0", 8));
    CHECK(at(&it, &v[0]));
    block_iter_seek_for_prev(&it, slice_make("\0\0\0\0\0\0\0\0", 8));
    CHECK(!block_iter_valid(&it) && block_iter_status(&it) == 0);
    size_t zl = ikey_encode(probe, "zzz", 3, 0);
    block_iter_seek(&it, slice_make(probe, zl));
    CHECK(!block_iter_valid(&it));
    block_iter_seek_for_prev(&it, slice_make(probe, zl));
    CHECK(at(&it, &v[n - 1]));
    block_iter_free(&it);
    block_builder_free(&bb);
    free_keys(v, n);
}

/* block_get finds what block_iter_seek finds, for present keys, keys
 * between them, and keys past either end, with any restart interval. */
static void test_block_get_agrees_with_seek(void)
{
    block_builder bb;
    block b;
    block_iter it;
    slice contents, val;
    buf key = {0};
    char probe[64];
    size_t n, mismatches = 0;
    kv *v = make_keys(1500, 5, &n);

    for (int interval = 1; interval <= 32; interval *= 4) {
        block_builder_init(&bb, interval);
        block_iter_init(&it);
        build(&bb, v, n, &b, &contents);
        block_iter_set(&it, &b);
        for (size_t i = 0; i < n; i++) {
            slice targets[2] = {K(&v[i]), {probe, 0}};
            /* version 0: after every entry of this user key */
            targets[1].len = ikey_encode(probe, v[i].key, v[i].klen - IKEY_SUFFIX_LEN, 0);
            for (int t = 0; t < 2; t++) {
                int rc = block_get(&b, targets[t], &key, &val);
                block_iter_seek(&it, targets[t]);
                if (!block_iter_valid(&it))
                    mismatches += rc != STOAT_ENOTFOUND || key.len != 0 || val.len != 0;
                else
                    mismatches += rc != 0 ||
                                  slice_cmp(slice_make(key.data, key.len), block_iter_key(&it)) ||
                                  slice_cmp(val, block_iter_value(&it));
            }
        }
        CHECK(block_get(&b, slice_make("\0\0\0\0\0\0\0\0", 8), &key, &val) == 0);
        CHECK(slice_cmp(slice_make(key.data, key.len), K(&v[0])) == 0 &&
              slice_cmp(val, V(&v[0])) == 0);
        CHECK(block_get(&b, slice_make(probe, ikey_encode(probe, "zzz", 3, 0)), &key, &val) ==
              STOAT_ENOTFOUND);
        CHECK(block_get(&b, slice_make("short", 5), &key, &val) == STOAT_EINVAL);
        block_iter_free(&it);
        block_builder_free(&bb);
    }
    CHECK(mismatches == 0);
    buf_free(&key);
    free_keys(v, n);
}

static void test_block_next_prev_zigzag(void)
{
    size_t n;
    kv *v = make_keys(500, 9, &n);
    block_builder bb;
    block b;
    block_iter it;
    slice contents;
    uint64_t s = 3;
    size_t i = n / 2;

    block_builder_init(&bb, 16);
    block_iter_init(&it);
    build(&bb, v, n, &b, &contents);
    block_iter_set(&it, &b);
    block_iter_seek(&it, K(&v[i]));
    for (int step = 0; step < 5000; step++) {
        REQUIRE(at(&it, &v[i]));
        if (test_rand(&s) % 2 && i + 1 < n) {
            block_iter_next(&it);
            i++;
        } else if (i > 0) {
            block_iter_prev(&it);
            i--;
        }
    }
    block_iter_seek_first(&it);
    block_iter_prev(&it);
    CHECK(!block_iter_valid(&it) && block_iter_status(&it) == 0);
    block_iter_free(&it);
    block_builder_free(&bb);
    free_keys(v, n);
}

/* Random walks mixing next, prev, seeks and re-aiming at another block
 * and back: prev's backward cache never answers for a stale position.
 * The second block is the first with its user keys in upper case: every
 * entry at the same offset, with other key bytes. */
static void test_block_prev_cache_survives_seeks_and_reaims(void)
{
    size_t n[2];
    kv *v[2] = {make_keys(400, 21, &n[0]), make_keys(400, 21, &n[1])};
    block_builder bb[2];
    block b[2];
    block_iter it;
    slice contents;
    uint64_t s = 5;
    size_t i = 0, bad = 0;
    int cur = 0;

    for (size_t j = 0; j < n[1]; j++)
        for (size_t c = 0; c + IKEY_SUFFIX_LEN < v[1][j].klen; c++)
            v[1][j].key[c] = (char)(v[1][j].key[c] - 'a' + 'A');
    block_iter_init(&it);
    for (int k = 0; k < 2; k++) {
        block_builder_init(&bb[k], 8);
        build(&bb[k], v[k], n[k], &b[k], &contents);
    }
    CHECK(b[0].len == b[1].len);
    block_iter_set(&it, &b[0]);
    block_iter_seek_last(&it);
    i = n[0] - 1;
    for (int step = 0; step < 20000; step++) {
        uint64_t op = test_rand(&s) % 10;
        if (op < 4 && i > 0) {
            block_iter_prev(&it);
            i--;
        } else if (op < 7 && i + 1 < n[cur]) {
            block_iter_next(&it);
            i++;
        } else if (op < 9) {
            i = (size_t)(test_rand(&s) % n[cur]);
            block_iter_seek(&it, K(&v[cur][i]));
        } else {
            cur = !cur;
            block_iter_set(&it, &b[cur]);
            i = (size_t)(test_rand(&s) % n[cur]);
            block_iter_seek(&it, K(&v[cur][i]));
        }
        bad += !at(&it, &v[cur][i]);
    }
    CHECK(bad == 0);
    block_iter_free(&it);
    for (int k = 0; k < 2; k++) {
        block_builder_free(&bb[k]);
        free_keys(v[k], n[k]);
    }
}

static void test_block_empty_block_has_no_entries(void)
{
    block_builder bb;
    block b;
    block_iter it;
    slice contents;
    char k[16];
    size_t kl = ikey_encode(k, "a", 1, 1);

    block_builder_init(&bb, 16);
    block_iter_init(&it);
    REQUIRE_OK(block_builder_finish(&bb, &contents));
    CHECK(contents.len == 8);
    REQUIRE_OK(block_init(&b, contents.data, contents.len, "test", 0));
    block_iter_set(&it, &b);
    block_iter_seek_first(&it);
    CHECK(!block_iter_valid(&it));
    block_iter_seek_last(&it);
    CHECK(!block_iter_valid(&it));
    block_iter_seek(&it, slice_make(k, kl));
    CHECK(!block_iter_valid(&it));
    CHECK(block_iter_status(&it) == 0);
    /* reset and reuse for a real block */
    block_builder_reset(&bb);
    REQUIRE_OK(block_builder_add(&bb, slice_make(k, kl), slice_make("x", 1)));
    REQUIRE_OK(block_builder_finish(&bb, &contents));
    REQUIRE_OK(block_init(&b, contents.data, contents.len, "test", 0));
    block_iter_set(&it, &b);
    block_iter_seek_first(&it);
    CHECK(block_iter_valid(&it) && slice_cmp(block_iter_key(&it), slice_make(k, kl)) == 0);
    block_iter_free(&it);
    block_builder_free(&bb);
}

static void test_block_large_key_and_value(void)
{
    size_t ul = STOAT_MAX_KEY_SIZE, vl = 3u << 20;
    char *k1 = malloc(ul + 8), *k2 = malloc(ul + 8), *val = malloc(vl);
    block_builder bb;
    block b;
    block_iter it;
    slice contents;

    REQUIRE(k1 && k2 && val);
    memset(k1, 'k', ul + 8);
    memset(val, 'v', vl);
    val[vl - 1] = 'e';
    ikey_encode(k1, k1, ul, 2);
    memcpy(k2, k1, ul);
    ikey_encode(k2, k2, ul, 1);
    block_builder_init(&bb, 16);
    block_iter_init(&it);
    REQUIRE_OK(block_builder_add(&bb, slice_make(k1, ul + 8), slice_make(val, vl)));
    REQUIRE_OK(block_builder_add(&bb, slice_make(k2, ul + 8), slice_make("s", 1)));
    REQUIRE_OK(block_builder_finish(&bb, &contents));
    CHECK(contents.len < ul + vl + 100); /* k2 shared its 64 KiB prefix */
    REQUIRE_OK(block_init(&b, contents.data, contents.len, "test", 0));
    block_iter_set(&it, &b);
    block_iter_seek_last(&it);
    CHECK(block_iter_valid(&it) && slice_cmp(block_iter_key(&it), slice_make(k2, ul + 8)) == 0);
    block_iter_prev(&it);
    CHECK(block_iter_valid(&it) && block_iter_value(&it).len == vl &&
          block_iter_value(&it).data[vl - 1] == 'e');
    block_iter_free(&it);
    block_builder_free(&bb);
    free(k1);
    free(k2);
    free(val);
}

/* Every iterator operation on a damaged block ends valid or with
 * STOAT_ECORRUPT; none reads out of bounds (run under ASan/valgrind). */
static void test_block_damage_never_reads_out_of_bounds(void)
{
    size_t n;
    kv *v = make_keys(300, 11, &n);
    block_builder bb;
    block b;
    block_iter it;
    slice contents;
    uint64_t s = 99;
    int corrupt_seen = 0;
    buf key = {0};
    slice val;

    block_builder_init(&bb, 4);
    block_iter_init(&it);
    build(&bb, v, n, &b, &contents);
    for (int round = 0; round < 3000; round++) {
        size_t len = contents.len;
        char *copy = malloc(len);
        REQUIRE(copy != NULL);
        memcpy(copy, contents.data, len);
        for (int f = 0; f < 1 + round % 4; f++)
            copy[test_rand(&s) % len] ^= (char)(1 + test_rand(&s) % 255);
        if (round % 7 == 0)
            len = (size_t)(test_rand(&s) % len); /* truncated */
        if (block_init(&b, copy, len, "test", 0) == 0) {
            block_iter_set(&it, &b);
            size_t steps = 0;
            for (block_iter_seek_first(&it); block_iter_valid(&it) && steps < 2 * n; steps++)
                block_iter_next(&it);
            for (block_iter_seek_last(&it); block_iter_valid(&it) && steps < 4 * n; steps++)
                block_iter_prev(&it);
            block_iter_seek(&it, K(&v[test_rand(&s) % n]));
            if (block_iter_valid(&it))
                block_iter_prev(&it);
            CHECK(block_iter_status(&it) == 0 || block_iter_status(&it) == STOAT_ECORRUPT);
            corrupt_seen += block_iter_status(&it) == STOAT_ECORRUPT;
            for (int g = 0; g < 8; g++) {
                int rc = block_get(&b, K(&v[test_rand(&s) % n]), &key, &val);
                CHECK(rc == 0 || rc == STOAT_ENOTFOUND || rc == STOAT_ECORRUPT);
                CHECK(rc == 0 || (key.len == 0 && val.len == 0));
                corrupt_seen += rc == STOAT_ECORRUPT;
            }
        }
        free(copy);
    }
    CHECK(corrupt_seen > 0);
    CHECK(strstr(status_msg(), "test: block at offset 0") != NULL || corrupt_seen == 0);
    buf_free(&key);
    block_iter_free(&it);
    block_builder_free(&bb);
    free_keys(v, n);
}

static void test_block_bad_restart_array_is_corrupt(void)
{
    block b;
    char data[8] = {0};

    CHECK(block_init(&b, data, 3, "f", 10) == STOAT_ECORRUPT);
    CHECK(block_init(&b, data, 8, "f", 10) == STOAT_ECORRUPT); /* zero restarts */
    put_fixed32(data + 4, 5);
    CHECK(block_init(&b, data, 8, "f", 10) == STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "f: block at offset 10") != NULL);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_block_round_trip_forward_and_backward);
    TEST_RUN(test_block_seek_lands_on_first_key_at_or_after);
    TEST_RUN(test_block_get_agrees_with_seek);
    TEST_RUN(test_block_next_prev_zigzag);
    TEST_RUN(test_block_prev_cache_survives_seeks_and_reaims);
    TEST_RUN(test_block_empty_block_has_no_entries);
    TEST_RUN(test_block_large_key_and_value);
    TEST_RUN(test_block_damage_never_reads_out_of_bounds);
    TEST_RUN(test_block_bad_restart_array_is_corrupt);
    return test_summary();
}
