/*
 * aead_test.c - crypt/aead.c: seal/open round trips, every single-bit
 * flip of a sealed buffer and of its associated data refused as
 * corruption (output zeroed), nonce uniqueness, buffer limits, keys wiped
 * on free, no key bytes in error messages.
 */
#include <string.h>

#include "base/status.h"
#include "crypt/aead.h"
#include "test.h"

static const uint8_t key_bytes[AEAD_KEY_LEN] = "KEY-for-aead_test-0123456789abcd";

static aead_key *test_key(void)
{
    aead_key *k = NULL;

    REQUIRE_OK(aead_key_new(key_bytes, &k));
    return k;
}

static void fill(uint8_t *p, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)test_rand(&seed);
}

/* 1 if msg holds any 8 consecutive bytes of key, or its first 8 in hex. */
static int msg_leaks(const char *msg, const uint8_t *key)
{
    char hex[17];

    for (size_t i = 0; i + 8 <= AEAD_KEY_LEN; i++)
        if (memmem(msg, strlen(msg), key + i, 8) != NULL)
            return 1;
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    return strcasestr(msg, hex) != NULL;
}

static void test_aead_round_trip(void)
{
    static const size_t lens[] = {0, 1, 15, 16, 17, 100, 4096, 65537};
    aead_key *k = test_key();

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t len = lens[i], ad_len = i * 7;
        uint8_t *plain = malloc(len + 1), *sealed = malloc(aead_sealed_len(len));
        uint8_t *back = malloc(len + 1), ad[64];

        REQUIRE(plain && sealed && back);
        fill(plain, len, i + 1);
        fill(ad, sizeof(ad), i + 100);
        CHECK_RC(aead_seal(k, ad, ad_len, plain, len, sealed, aead_sealed_len(len)), 0);
        /* The ciphertext is not the plaintext (for lengths where that means something). */
        if (len >= 16)
            CHECK(memcmp(sealed + AEAD_NONCE_LEN, plain, len) != 0);
        memset(back, 0xAA, len + 1);
        CHECK_RC(aead_open(k, ad, ad_len, sealed, aead_sealed_len(len), back, len, "unit"), 0);
        CHECK(memcmp(back, plain, len) == 0);
        CHECK(back[len] == 0xAA);   /* nothing written past the plaintext */
        free(plain);
        free(sealed);
        free(back);
    }
    aead_key_free(k);
}

static void test_aead_every_bit_flip_is_corruption(void)
{
    enum { LEN = 100, AD_LEN = 20 };
    uint8_t plain[LEN], ad[AD_LEN], sealed[LEN + AEAD_OVERHEAD], out[LEN];
    aead_key *k = test_key();
    int accepted = 0, not_zeroed = 0, leaked = 0;

    fill(plain, LEN, 7);
    fill(ad, AD_LEN, 8);
    REQUIRE_OK(aead_seal(k, ad, AD_LEN, plain, LEN, sealed, sizeof(sealed)));
    for (size_t bit = 0; bit < 8 * sizeof(sealed); bit++) {
        sealed[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        memset(out, 0xAA, LEN);
        if (aead_open(k, ad, AD_LEN, sealed, sizeof(sealed), out, LEN, "unit") != STOAT_ECORRUPT)
            accepted++;
        for (size_t i = 0; i < LEN; i++)
            not_zeroed += out[i] != 0;
        leaked += msg_leaks(status_msg(), key_bytes);
        sealed[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    for (size_t bit = 0; bit < 8 * AD_LEN; bit++) {
        ad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (aead_open(k, ad, AD_LEN, sealed, sizeof(sealed), out, LEN, "unit") != STOAT_ECORRUPT)
            accepted++;
        ad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    CHECK(accepted == 0);
    CHECK(not_zeroed == 0);
    CHECK(leaked == 0);
    /* Shorter associated data, a truncated buffer: refused too. */
    CHECK_RC(aead_open(k, ad, AD_LEN - 1, sealed, sizeof(sealed), out, LEN, "unit"),
             STOAT_ECORRUPT);
    CHECK_RC(aead_open(k, ad, AD_LEN, sealed, sizeof(sealed) - 1, out, LEN, "unit"),
             STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "unit") != NULL);
    /* And the untouched buffer still opens. */
    CHECK_RC(aead_open(k, ad, AD_LEN, sealed, sizeof(sealed), out, LEN, "unit"), 0);
    CHECK(memcmp(out, plain, LEN) == 0);
    aead_key_free(k);
}

static void test_aead_wrong_key_is_corruption(void)
{
    uint8_t other_bytes[AEAD_KEY_LEN], sealed[10 + AEAD_OVERHEAD], out[10];
    aead_key *k = test_key(), *other = NULL;

    memcpy(other_bytes, key_bytes, AEAD_KEY_LEN);
    other_bytes[31] ^= 1;
    REQUIRE_OK(aead_key_new(other_bytes, &other));
    REQUIRE_OK(aead_seal(k, NULL, 0, "0123456789", 10, sealed, sizeof(sealed)));
    CHECK_RC(aead_open(other, NULL, 0, sealed, sizeof(sealed), out, 10, "unit"), STOAT_ECORRUPT);
    CHECK(!msg_leaks(status_msg(), key_bytes) && !msg_leaks(status_msg(), other_bytes));
    aead_key_free(k);
    aead_key_free(other);
}

static int cmp_nonce(const void *a, const void *b)
{
    return memcmp(a, b, AEAD_NONCE_LEN);
}

static void test_aead_nonces_unique(void)
{
    enum { N = 50000 };
    uint8_t *nonces = malloc((size_t)N * AEAD_NONCE_LEN), sealed[8 + AEAD_OVERHEAD];
    aead_key *k = test_key();
    int dups = 0;

    REQUIRE(nonces != NULL);
    for (int i = 0; i < N; i++) {
        REQUIRE_OK(aead_seal(k, NULL, 0, "same one", 8, sealed, sizeof(sealed)));
        memcpy(nonces + (size_t)i * AEAD_NONCE_LEN, sealed, AEAD_NONCE_LEN);
    }
    qsort(nonces, N, AEAD_NONCE_LEN, cmp_nonce);
    for (int i = 1; i < N; i++)
        dups += memcmp(nonces + (size_t)(i - 1) * AEAD_NONCE_LEN,
                       nonces + (size_t)i * AEAD_NONCE_LEN, AEAD_NONCE_LEN) == 0;
    CHECK(dups == 0);
    free(nonces);
    aead_key_free(k);
}

static void test_aead_buffer_limits(void)
{
    uint8_t sealed[16 + AEAD_OVERHEAD], out[16];
    aead_key *k = test_key();

    CHECK_RC(aead_seal(k, NULL, 0, "0123456789abcdef", 16, sealed, sizeof(sealed) - 1),
             STOAT_EINVAL);
    REQUIRE_OK(aead_seal(k, NULL, 0, "0123456789abcdef", 16, sealed, sizeof(sealed)));
    CHECK_RC(aead_open(k, NULL, 0, sealed, sizeof(sealed), out, 15, "unit"), STOAT_EINVAL);
    CHECK_RC(aead_open(k, NULL, 0, sealed, AEAD_OVERHEAD - 1, out, 16, "unit"), STOAT_ECORRUPT);
    /* An empty plaintext seals to nonce and tag alone, and opens. */
    REQUIRE_OK(aead_seal(k, NULL, 0, NULL, 0, sealed, AEAD_OVERHEAD));
    CHECK_RC(aead_open(k, NULL, 0, sealed, AEAD_OVERHEAD, out, 0, "unit"), 0);
    aead_key_free(k);
}

static int wiped_calls, wiped_all_zero;

static void record_wipe(const uint8_t *bytes, size_t len)
{
    wiped_calls++;
    wiped_all_zero = 1;
    for (size_t i = 0; i < len; i++)
        if (bytes[i] != 0)
            wiped_all_zero = 0;
}

static void test_aead_key_wiped_on_free(void)
{
    aead_key *k = test_key(), *r = NULL;

    CHECK(memcmp(aead_key_bytes(k), key_bytes, AEAD_KEY_LEN) == 0);
    aead_key_free_hook = record_wipe;
    wiped_calls = wiped_all_zero = 0;
    aead_key_free(k);
    CHECK(wiped_calls == 1 && wiped_all_zero);
    REQUIRE_OK(aead_key_random(&r));
    wiped_calls = wiped_all_zero = 0;
    aead_key_free(r);
    CHECK(wiped_calls == 1 && wiped_all_zero);
    aead_key_free_hook = NULL;
}

static void test_aead_derive_and_mac(void)
{
    uint8_t salt[AEAD_SALT_LEN] = {1}, a[32], b[32], c[32], m1[32], m2[32];

    aead_derive(key_bytes, salt, "stoat test lab 1", a);
    aead_derive(key_bytes, salt, "stoat test lab 2", b);
    salt[0] = 2;
    aead_derive(key_bytes, salt, "stoat test lab 1", c);
    CHECK(memcmp(a, b, 32) != 0 && memcmp(a, c, 32) != 0);
    CHECK(memcmp(a, key_bytes, 32) != 0);
    aead_mac(a, "data", 4, m1);
    aead_mac(b, "data", 4, m2);
    CHECK(!aead_equal(m1, m2, 32));
    aead_mac(a, "data", 4, m2);
    CHECK(aead_equal(m1, m2, 32));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_aead_round_trip);
    TEST_RUN(test_aead_every_bit_flip_is_corruption);
    TEST_RUN(test_aead_wrong_key_is_corruption);
    TEST_RUN(test_aead_nonces_unique);
    TEST_RUN(test_aead_buffer_limits);
    TEST_RUN(test_aead_key_wiped_on_free);
    TEST_RUN(test_aead_derive_and_mac);
    return test_summary();
}
