/*
 * bloom_test.c - bloom filter sizing, no false negatives, and a false
 * positive rate close to the target.
 */
#include <stdio.h>

#include "bloom.h"
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

int main(int argc, char **argv)
{
    TEST_RUN(test_bloom_fp_rate_within_twice_the_target);
    TEST_RUN(test_bloom_bits_per_key_follow_the_rate);
    TEST_RUN(test_bloom_repeated_key_counted_once);
    TEST_RUN(test_bloom_empty_and_malformed_filters);
    return test_summary();
}
