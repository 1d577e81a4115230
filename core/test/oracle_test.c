/*
 * oracle_test.c - the oracle's "written after" answers: the one-pass form
 * a value-log GC uses (oracle_written_after_each) against the key-by-key
 * one, over random commits, including keys whose fingerprints collide.
 */
#include <stdio.h>
#include <stdlib.h>

#include "mvcc/oracle.h"
#include "test.h"

static void test_oracle_written_after_each_matches_key_by_key(void)
{
    oracle o = {0};
    char names[60][16];
    slice pool[60];
    unsigned seed = 7;
    int disagree = 0, yes = 0, no = 0;

    for (int i = 0; i < 60; i++) {
        snprintf(names[i], sizeof(names[i]), "k%02d", i);
        pool[i] = slice_make(names[i], strlen(names[i]));
    }
    for (uint64_t v = 1; v <= 300; v++) {
        slice keys[5];
        size_t n = 1 + (size_t)(rand_r(&seed) % 5);

        for (size_t k = 0; k < n; k++)
            keys[k] = pool[rand_r(&seed) % 50];     /* k50..k59 never written */
        REQUIRE_OK(oracle_record(&o, v * 2, keys, n));
    }
    for (uint64_t version = 0; version <= 620; version += 31) {
        uint8_t written[60];

        REQUIRE_OK(oracle_written_after_each(&o, version, pool, 60, written));
        for (int i = 0; i < 60; i++) {
            int one = oracle_written_after(&o, version, pool[i]);

            disagree += one != written[i];
            yes += one;
            no += !one;
        }
    }
    CHECK(disagree == 0);
    CHECK(yes > 100 && no > 100);   /* both answers were exercised */
    /* No keys asked, no commits above: nothing to say. */
    uint8_t w = 9;
    REQUIRE_OK(oracle_written_after_each(&o, 10000, pool, 1, &w));
    CHECK(w == 0);
    REQUIRE_OK(oracle_written_after_each(&o, 0, pool, 0, &w));
    oracle_free(&o);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_oracle_written_after_each_matches_key_by_key);
    return test_summary();
}
