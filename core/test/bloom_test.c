/*
 * bloom_test.c - bloom filter sizing, no false negatives, a false
 * positive rate close to the target, and probing exactly as FORMAT.md says.
 */
#include <stdio.h>
#include <stdlib.h>

#include "table/bloom.h"
#include "base/checksum.h"
#include "test.h"

static slice key_of(char *tmp, const char *prefix, int i)
{
    int n = snprintf(tmp, 32, "%s%08d", prefix, i);
    return slice_make(tmp, (size_t)n);
}

static void check_rate(double target, int nkeys)
{
    bloom_builder b;
    buf f = {0};
    char tmp[32];
    int fp = 0, probes = 100000;
    double rate;

    bloom_builder_init(&b, target);
    for (int i = 0; i < nkeys; i++)
        REQUIRE_OK(bloom_builder_add(&b, key_of(tmp, "present-", i)));
    REQUIRE_OK(bloom_builder_finish(&b, &f));
    CHECK(bloom_filter_valid(slice_make(f.data, f.len)));
    for (int i = 0; i < nkeys; i++)
        if (!bloom_may_contain(slice_make(f.data, f.len), key_of(tmp, "present-", i))) {
            CHECK(!"false negative");
            break;
        }
    for (int i = 0; i < probes; i++)
        fp += bloom_may_contain(slice_make(f.data, f.len), key_of(tmp, "absent-", i));
    rate = (double)fp / probes;
    if (!(rate <= 2 * target))
        test_fail(__FILE__, __LINE__, "fp rate %.5f, target %.5f", rate, target);
    /* and the filter is not absurdly large: about bits_per_key bits a key */
    CHECK(f.len <= (size_t)nkeys * (size_t)bloom_bits_per_key(target) / 8 + 2);
    buf_free(&f);
    bloom_builder_free(&b);
}

static void test_bloom_fp_rate_within_twice_the_target(void)
{
    check_rate(0.01, 10000);
    check_rate(0.001, 10000);
    check_rate(0.05, 10000);
}

static void test_bloom_bits_per_key_follow_the_rate(void)
{
    CHECK(bloom_bits_per_key(0.01) == 10);
    CHECK(bloom_bits_per_key(0.001) > bloom_bits_per_key(0.01));
    CHECK(bloom_bits_per_key(0.5) >= 1);
    CHECK(bloom_bits_per_key(1e-30) == 64);
    CHECK(bloom_bits_per_key(0) == 1);
}

static void test_bloom_repeated_key_counted_once(void)
{
    bloom_builder b;
    buf one = {0}, many = {0};
    char tmp[32];

    bloom_builder_init(&b, 0.01);
    for (int i = 0; i < 100; i++)
        REQUIRE_OK(bloom_builder_add(&b, key_of(tmp, "k", i)));
    REQUIRE_OK(bloom_builder_finish(&b, &one));
    for (int i = 0; i < 100; i++)
        for (int v = 0; v < 5; v++) /* five versions of each user key */
            REQUIRE_OK(bloom_builder_add(&b, key_of(tmp, "k", i)));
    REQUIRE_OK(bloom_builder_finish(&b, &many));
    CHECK(one.len == many.len && memcmp(one.data, many.data, one.len) == 0);
    buf_free(&one);
    buf_free(&many);
    bloom_builder_free(&b);
}

static void test_bloom_empty_and_malformed_filters(void)
{
    bloom_builder b;
    buf f = {0};
    char tmp[32];

    bloom_builder_init(&b, 0.01);
    REQUIRE_OK(bloom_builder_finish(&b, &f));
    CHECK(bloom_filter_valid(slice_make(f.data, f.len)));
    CHECK(!bloom_may_contain(slice_make(f.data, f.len), key_of(tmp, "x", 1)));
    /* malformed: says "maybe" rather than hiding data */
    CHECK(!bloom_filter_valid(slice_make("\x00", 1)));
    CHECK(bloom_may_contain(slice_make("\x00", 1), key_of(tmp, "x", 1)));
    f.data[f.len - 1] = 99;
    CHECK(!bloom_filter_valid(slice_make(f.data, f.len)));
    CHECK(bloom_may_contain(slice_make(f.data, f.len), key_of(tmp, "x", 1)));
    buf_free(&f);
    bloom_builder_free(&b);
}

/* The probing rule of core/FORMAT.md, word for word: a division a probe. */
static int format_may_contain(slice filter, slice ukey)
{
    const unsigned char *bits = (const unsigned char *)filter.data;
    uint64_t nbits = (uint64_t)(filter.len - 1) * 8, h = checksum64(ukey.data, ukey.len);
    uint64_t delta = ((h >> 31) | (h << 33)) | 1;

    for (int j = 0; j < bits[filter.len - 1]; j++, h += delta)
        if (!(bits[(h % nbits) / 8] & (1u << (h % nbits % 8))))
            return 0;
    return 1;
}

/* Random bit arrays of many sizes and probe counts, most bits set so that
 * probes go deep: both probing functions answer as the format says. */
static void test_bloom_probes_match_the_format(void)
{
    uint64_t seed = 7;
    char tmp[32], f[400];
    size_t mismatches = 0, positives = 0;

    for (size_t len = 2; len < sizeof(f); len += 13) {
        bloom_filter bf;
        for (size_t i = 0; i + 1 < len; i++)
            f[i] = (char)(test_rand(&seed) | test_rand(&seed));  /* ~3/4 of bits set */
        f[len - 1] = (char)(1 + len % BLOOM_MAX_PROBES);
        REQUIRE_OK(bloom_filter_init(&bf, slice_make(f, len)));
        for (int i = 0; i < 2000; i++) {
            slice k = key_of(tmp, "probe", i);
            int want = format_may_contain(slice_make(f, len), k);
            mismatches += bloom_filter_may_contain(&bf, k) != want;
            mismatches += bloom_may_contain(slice_make(f, len), k) != want;
            positives += want;
        }
    }
    CHECK(mismatches == 0);
    CHECK(positives > 1000);
}

/* The builder's bits, set by a walk of additions, are exactly the bits of
 * the format's rule (a division a probe), for filters of many sizes and
 * probe counts: every bit the rule sets for every key, and no other. */
static void test_bloom_builder_sets_the_format_bits(void)
{
    static const double rates[] = {0.5, 0.1, 0.01, 0.001, 0.0001};
    char tmp[32];
    size_t wrong = 0;

    for (size_t r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
        for (int n = 1; n < 3000; n = n * 3 + 1) {
            bloom_builder b;
            buf f = {0};
            unsigned char *want;
            uint64_t nbits;

            bloom_builder_init(&b, rates[r]);
            for (int i = 0; i < n; i++)
                REQUIRE_OK(bloom_builder_add(&b, key_of(tmp, "set", i)));
            REQUIRE_OK(bloom_builder_finish(&b, &f));
            nbits = (uint64_t)(f.len - 1) * 8;
            REQUIRE((want = calloc(f.len, 1)) != NULL);
            for (int i = 0; i < n; i++) {
                slice k = key_of(tmp, "set", i);
                uint64_t h = checksum64(k.data, k.len), delta = ((h >> 31) | (h << 33)) | 1;
                for (int j = 0; j < (unsigned char)f.data[f.len - 1]; j++, h += delta)
                    want[(h % nbits) / 8] |= (unsigned char)(1u << (h % nbits % 8));
            }
            want[f.len - 1] = (unsigned char)f.data[f.len - 1];
            wrong += memcmp(want, f.data, f.len) != 0;
            free(want);
            buf_free(&f);
            bloom_builder_free(&b);
        }
    }
    CHECK(wrong == 0);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_bloom_fp_rate_within_twice_the_target);
    TEST_RUN(test_bloom_bits_per_key_follow_the_rate);
    TEST_RUN(test_bloom_repeated_key_counted_once);
    TEST_RUN(test_bloom_empty_and_malformed_filters);
    TEST_RUN(test_bloom_probes_match_the_format);
    TEST_RUN(test_bloom_builder_sets_the_format_bits);
    return test_summary();
}
