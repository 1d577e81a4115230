/*
 * iter_step_test.c - stoat_iter_step (core/src/db/iter_step.c): one call
 * per scan step gives what the move, stoat_iter_valid, stoat_iter_key and
 * stoat_iter_value give, in both directions, with and without values,
 * over inline and separated values; it rejects bad arguments; a damaged
 * value fails the step but leaves the iterator on its entry, and the scan
 * goes on past it.
 */
#include "db_util.h"
#include "test.h"
#include "vlog_db_util.h"

enum { STEP_N = 600 };

/* Keys [0, STEP_N): even ones with 300-byte values (separated under
 * vd_options' threshold of 256), odd ones with 40-byte values (inline). */
static stoat_db *step_fill(const char *dir, uint64_t *model)
{
    stoat_options o;
    stoat_db *db;

    vd_options(&o);
    db = vd_open(dir, &o);
    for (uint32_t i = 0; i < STEP_N; i++) {
        vd_put(db, i, 100 + i, i % 2 ? 40 : 300);
        model[i] = 100 + i;
    }
    return db;
}

/* Walks it with stoat_iter_step from the seek `first` on, and a second
 * iterator over the same database with the four calls, and checks that
 * both see the same entries; with values, that they match the model.
 * Returns the number of entries seen. */
static uint32_t step_walk(stoat_db *db, stoat_iter *it, int first, int values,
                          const uint64_t *model)
{
    stoat_iter *ref;
    uint32_t seen = 0;
    int move = first, fwd = first == STOAT_STEP_FIRST;

    REQUIRE_OK(stoat_iter_open(db, NULL, &ref));
    REQUIRE_OK(fwd ? stoat_iter_seek_first(ref) : stoat_iter_seek_last(ref));
    for (;;) {
        const void *k = "x", *v = "x", *rk, *rv;
        size_t klen = 9, vlen = 9, rklen, rvlen;
        int rc = stoat_iter_step(it, move, &k, &klen, values ? &v : NULL, values ? &vlen : NULL);

        move = first - 2;
        if (!stoat_iter_valid(ref)) {
            CHECK_RC(rc, 0);
            CHECK(k == NULL && klen == 0);
            CHECK(!values || (v == NULL && vlen == 0));
            break;
        }
        REQUIRE(rc == 1);
        REQUIRE_OK(stoat_iter_key(ref, &rk, &rklen));
        REQUIRE_OK(stoat_iter_value(ref, &rv, &rvlen));
        CHECK(klen == rklen && memcmp(k, rk, klen) == 0);
        if (values) {
            uint32_t i = vd_index(k, klen);

            CHECK(vlen == rvlen && memcmp(v, rv, vlen) == 0);
            CHECK(i < STEP_N && vd_tag(v, vlen) == model[i]);
            CHECK(vlen == (i % 2 ? 40u : 300u));
        } else {
            CHECK(v != NULL && vlen == 9);      /* untouched */
        }
        seen++;
        REQUIRE_OK(fwd ? stoat_iter_next(ref) : stoat_iter_prev(ref));
    }
    stoat_iter_close(ref);
    return seen;
}

static void test_iter_step_walks_as_the_four_calls(void)
{
    const char *dir = test_tmpdir();
    uint64_t model[STEP_N];
    stoat_db *db = step_fill(dir, model);
    stoat_iter_options ko = {0};
    stoat_iter *it;

    for (int pass = 0; pass < 2; pass++) {  /* memtable, then tables */
        REQUIRE_OK(stoat_iter_open(db, NULL, &it));
        CHECK(step_walk(db, it, STOAT_STEP_FIRST, 1, model) == STEP_N);
        stoat_iter_close(it);
        REQUIRE_OK(stoat_iter_open(db, NULL, &it));
        CHECK(step_walk(db, it, STOAT_STEP_LAST, 1, model) == STEP_N);
        stoat_iter_close(it);
        ko.keys_only = 1;
        REQUIRE_OK(stoat_iter_open(db, &ko, &it));
        CHECK(step_walk(db, it, STOAT_STEP_FIRST, 0, model) == STEP_N);
        stoat_iter_close(it);
        REQUIRE_OK(stoat_flush(db));
    }
    REQUIRE_OK(stoat_close(db));
}

static void test_iter_step_rejects_bad_arguments(void)
{
    const char *dir = test_tmpdir();
    uint64_t model[STEP_N];
    stoat_db *db = step_fill(dir, model);
    const void *k, *v;
    size_t klen, vlen;
    stoat_iter *it;

    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    CHECK_RC(stoat_iter_step(NULL, STOAT_STEP_FIRST, &k, &klen, &v, &vlen), STOAT_EINVAL);
    CHECK_RC(stoat_iter_step(it, STOAT_STEP_FIRST, NULL, &klen, &v, &vlen), STOAT_EINVAL);
    CHECK_RC(stoat_iter_step(it, STOAT_STEP_FIRST, &k, NULL, &v, &vlen), STOAT_EINVAL);
    CHECK_RC(stoat_iter_step(it, STOAT_STEP_FIRST, &k, &klen, &v, NULL), STOAT_EINVAL);
    CHECK_RC(stoat_iter_step(it, STOAT_STEP_FIRST, &k, &klen, NULL, &vlen), STOAT_EINVAL);
    CHECK_RC(stoat_iter_step(it, 4, &k, &klen, &v, &vlen), STOAT_EINVAL);
    CHECK(strstr(stoat_errmsg(NULL), "unknown move") != NULL);
    CHECK_RC(stoat_iter_step(it, -1, &k, &klen, &v, &vlen), STOAT_EINVAL);
    /* None of them moved it: a next on an unpositioned iterator finds
     * nothing, the first seek finds key 0. */
    CHECK_RC(stoat_iter_step(it, STOAT_STEP_FIRST, &k, &klen, &v, &vlen), 1);
    CHECK(vd_index(k, klen) == 0);
    stoat_iter_close(it);
    REQUIRE_OK(stoat_close(db));
}

/* A damaged separated value: the step that reaches it fails with
 * STOAT_ECORRUPT and NULL outs, the iterator stays valid on that entry,
 * and the next step goes on to the entry after it. */
static void test_iter_step_value_error_keeps_position(void)
{
    enum { VICTIM = 200 };
    const char *dir = test_tmpdir();
    uint64_t model[STEP_N];
    stoat_db *db = step_fill(dir, model);
    char names[DBU_MAX_FILES][64], p[DBU_PATH_MAX], want[300];
    const void *k, *v;
    size_t klen, vlen;
    stoat_options o;
    stoat_iter *it;
    uint32_t seen = 0, failed = 0;
    int n, damaged = 0, rc;

    REQUIRE_OK(stoat_flush(db));    /* the WAL replay would refuse the damage */
    REQUIRE_OK(stoat_close(db));
    vd_value(model[VICTIM], sizeof want, want);
    n = dbu_list(dir, ".vlog", names);
    for (int i = 0; i < n && !damaged; i++) {
        size_t flen;
        char *data = dbu_read_file(dbu_path(p, dir, names[i]), &flen);

        for (size_t at = 0; !damaged && at + sizeof want <= flen; at++)
            if (memcmp(data + at, want, sizeof want) == 0) {
                dbu_flip(p, at + sizeof want / 2);
                damaged = 1;
            }
        free(data);
    }
    REQUIRE(damaged);
    vd_options(&o);
    db = vd_open(dir, &o);
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    for (int move = STOAT_STEP_FIRST;; move = STOAT_STEP_NEXT) {
        rc = stoat_iter_step(it, move, &k, &klen, &v, &vlen);
        if (rc == 0)
            break;
        if (rc == STOAT_ECORRUPT) {
            const void *ck;
            size_t cklen;

            failed++;
            CHECK(k == NULL && klen == 0 && v == NULL && vlen == 0);
            CHECK(stoat_iter_valid(it));
            REQUIRE_OK(stoat_iter_key(it, &ck, &cklen));
            CHECK(vd_index(ck, cklen) == VICTIM);
        } else {
            REQUIRE(rc == 1);
            CHECK(vd_tag(v, vlen) == model[vd_index(k, klen)]);
        }
        seen++;
    }
    CHECK(failed == 1);
    CHECK(seen == STEP_N);
    CHECK_RC(stoat_iter_status(it), 0);
    stoat_iter_close(it);
    REQUIRE_OK(stoat_close(db));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_iter_step_walks_as_the_four_calls);
    TEST_RUN(test_iter_step_rejects_bad_arguments);
    TEST_RUN(test_iter_step_value_error_keeps_position);
    return test_summary();
}
