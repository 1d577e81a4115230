/*
 * level_iter_test.c - the level iterator over real tables (SST builder,
 * table cache), checked against the sorted array they were written from.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/ikey.h"
#include "mvcc/visible_iter.h"
#include "env/env.h"
#include "lsm/level_iter.h"
#include "base/merge_iter.h"
#include "table/sst_builder.h"
#include "table/table_cache.h"
#include "test.h"

#define MAX_ENTRIES 1024
#define MAX_TABLES 8

typedef struct lent {
    char ik[24];
    size_t iklen;
    char v[16];
    size_t vlen;
} lent;

/* A level: entries in order, split into tables at user-key boundaries. */
typedef struct lcase {
    lent e[MAX_ENTRIES];
    size_t n;
    table_meta *t[MAX_TABLES];
    size_t nt;
} lcase;

static slice lkey(const lent *e)
{
    return slice_make(e->ik, e->iklen);
}

static size_t ukey_fmt(char *dst, int k, const char *tail)
{
    return (size_t)sprintf(dst, "k%04d%s", k, tail);
}

static void sst_opts(sst_options *so)
{
    memset(so, 0, sizeof(*so));
    so->block_size = 256;
    so->compression = STOAT_COMPRESSION_NONE;
    so->bloom_fp_rate = 0.01;
}

/*
 * Writes e[0..n) as table id. With widen, the meta claims more than the
 * table holds: from before the first user key's versions to a key just
 * past the last user key, as a level's metadata may after compaction.
 */
static table_meta *write_table(const char *dir, uint64_t id, const lent *e, size_t n, int widen)
{
    char *path = sst_path(dir, id), lo[32], hi[32], u[24];
    sst_options so;
    sst_builder *b;
    sst_props props;
    slice first = lkey(&e[0]), last = lkey(&e[n - 1]);
    table_meta *t;

    REQUIRE(path != NULL);
    sst_opts(&so);
    REQUIRE_OK(sst_builder_new(env_posix(), path, &so, &b));
    for (size_t i = 0; i < n; i++)
        REQUIRE_OK(sst_builder_add(b, lkey(&e[i]), slice_make(e[i].v, e[i].vlen)));
    REQUIRE_OK(sst_builder_finish(b, &props));
    if (widen) {
        slice uf = ikey_user(first), ul = ikey_user(last);
        first = slice_make(lo, ikey_encode(lo, uf.data, uf.len, IKEY_VERSION_MAX));
        memcpy(u, ul.data, ul.len);
        u[ul.len] = '~';
        last = slice_make(hi, ikey_encode(hi, u, ul.len + 1, 0));
    }
    t = table_meta_new(id, props.file_size, first, last);
    sst_props_free(&props);
    free(path);
    REQUIRE(t != NULL);
    return t;
}

/* Even user keys 0..2*nkeys, 1..3 versions each, cut into 1..MAX_TABLES. */
static void lcase_build(lcase *lc, const char *dir, uint64_t *rs, uint64_t first_id)
{
    size_t nkeys = 20 + test_rand(rs) % 200, start = 0;
    size_t cuts = 1 + test_rand(rs) % MAX_TABLES;
    char u[16];

    lc->n = 0;
    for (size_t k = 0; k < nkeys; k++) {
        size_t ulen = ukey_fmt(u, (int)(2 * k), "");
        for (uint64_t v = 1 + test_rand(rs) % 3; v > 0; v--) {
            lent *e = &lc->e[lc->n++];
            e->iklen = ikey_encode(e->ik, u, ulen, v * 10);
            e->vlen = (size_t)sprintf(e->v, "%zu", lc->n);
        }
    }
    lc->nt = 0;
    for (size_t i = 0; i < lc->n; i++) {
        int at_boundary = i + 1 == lc->n ||
                          slice_cmp(ikey_user(lkey(&lc->e[i])), ikey_user(lkey(&lc->e[i + 1]))) != 0;
        int cut = i + 1 == lc->n || (lc->nt + 1 < cuts && test_rand(rs) % (lc->n / cuts + 1) == 0);
        if (!at_boundary || !cut)
            continue;
        lc->t[lc->nt] = write_table(dir, first_id + lc->nt, &lc->e[start], i + 1 - start,
                                    (int)(test_rand(rs) % 2));
        lc->nt++;
        start = i + 1;
    }
}

static void lcase_free(lcase *lc)
{
    for (size_t i = 0; i < lc->nt; i++)
        table_meta_unref(lc->t[i]);
    lc->nt = 0;
}

static int at_ref(iter *it, const lcase *lc, long pos)
{
    const lent *e;

    if (pos < 0 || (size_t)pos >= lc->n)
        return !iter_valid(it) && iter_status(it) == 0;
    if (!iter_valid(it))
        return 0;
    e = &lc->e[pos];
    return ikey_cmp(iter_key(it), lkey(e)) == 0 &&
           slice_cmp(iter_value(it), slice_make(e->v, e->vlen)) == 0;
}

/* A target anywhere: an entry's key (often a table's first or last), or
 * on, between, before or after the user keys. */
static slice rand_target(const lcase *lc, uint64_t *rs, char *dst)
{
    static const char *tails[] = {"", "", "~", "\x01"};
    char u[24];
    size_t ulen;
    const buf *b;

    switch (test_rand(rs) % 4) {
    case 0:
        b = &lc->t[test_rand(rs) % lc->nt]->largest;
        memcpy(dst, b->data, b->len);
        return slice_make(dst, b->len);
    case 1:
        b = &lc->t[test_rand(rs) % lc->nt]->smallest;
        memcpy(dst, b->data, b->len);
        return slice_make(dst, b->len);
    case 2:
        return lkey(&lc->e[test_rand(rs) % lc->n]);
    default:
        ulen = ukey_fmt(u, (int)(test_rand(rs) % 460) - 5, tails[test_rand(rs) % 4]);
        return slice_make(dst, ikey_encode(dst, u, ulen, test_rand(rs) % 40));
    }
}

static long random_move(iter *it, const lcase *lc, long pos, uint64_t *rs)
{
    char k[32];
    slice t;
    long i;
    int valid = pos >= 0 && (size_t)pos < lc->n;

    switch (test_rand(rs) % 10) {
    case 0:
        iter_seek_first(it);
        return 0;
    case 1:
        iter_seek_last(it);
        return (long)lc->n - 1;
    case 2:
        t = rand_target(lc, rs, k);
        iter_seek(it, t);
        for (i = 0; i < (long)lc->n && ikey_cmp(lkey(&lc->e[i]), t) < 0; i++)
            ;
        return i;
    case 3:
        t = rand_target(lc, rs, k);
        iter_seek_for_prev(it, t);
        for (i = (long)lc->n - 1; i >= 0 && ikey_cmp(lkey(&lc->e[i]), t) > 0; i--)
            ;
        return i;
    case 4: case 5: case 6:
        if (!valid)
            return pos;
        iter_next(it);
        return pos + 1;
    default:
        if (!valid)
            return pos;
        iter_prev(it);
        return pos - 1;
    }
}

static void test_level_iter_empty_level(void)
{
    table_cache *tc;
    iter *it;
    char k[16];

    REQUIRE_OK(table_cache_new(env_posix(), test_tmpdir(), 4, NULL, &tc));
    REQUIRE((it = level_iter_new(NULL, 0, tc)) != NULL);
    iter_seek_first(it);
    CHECK(!iter_valid(it));
    iter_seek_last(it);
    CHECK(!iter_valid(it));
    iter_seek_for_prev(it, slice_make(k, ikey_encode(k, "a", 1, 1)));
    CHECK(!iter_valid(it) && iter_status(it) == 0);
    iter_free(it);
    table_cache_free(tc);
}

static void test_level_iter_matches_entries(void)
{
    static lcase lc;
    const char *dir = test_tmpdir();
    uint64_t rs = 99, id = 1;
    table_cache *tc;
    long moves = 0;

    REQUIRE_OK(table_cache_new(env_posix(), dir, 4, NULL, &tc));
    for (int round = 0; round < 12 && !test_failed_now; round++) {
        iter *it;
        long pos;
        lcase_build(&lc, dir, &rs, id);
        id += lc.nt;
        REQUIRE((it = level_iter_new(lc.t, lc.nt, tc)) != NULL);
        iter_seek_first(it);
        for (pos = 0; pos < (long)lc.n && at_ref(it, &lc, pos); pos++)
            iter_next(it);
        CHECK(pos == (long)lc.n && at_ref(it, &lc, pos));
        iter_seek_last(it);
        for (pos = (long)lc.n - 1; pos >= 0 && at_ref(it, &lc, pos); pos--)
            iter_prev(it);
        CHECK(pos == -1 && at_ref(it, &lc, pos));
        for (int s = 0; s < 2000; s++, moves++) {
            pos = random_move(it, &lc, pos, &rs);
            if (!at_ref(it, &lc, pos)) {
                test_fail(__FILE__, __LINE__, "round %d step %d: off reference pos %ld of %zu",
                          round, s, pos, lc.n);
                break;
            }
        }
        iter_free(it);
        lcase_free(&lc);
    }
    CHECK(moves >= 20000);
    table_cache_free(tc);
}

/* A table whose file is gone stops the scan with an error; a seek that
 * stays clear of it works again. */
static void test_level_iter_missing_table_fails(void)
{
    static lcase lc;
    const char *dir = test_tmpdir();
    uint64_t rs = 5;
    table_cache *tc;
    char *path;
    iter *it;
    long pos = 0;

    do {
        lcase_free(&lc);
        lcase_build(&lc, dir, &rs, 1);
    } while (lc.nt < 3);
    REQUIRE((path = sst_path(dir, lc.t[1]->id)) != NULL);
    REQUIRE(unlink(path) == 0);
    free(path);
    REQUIRE_OK(table_cache_new(env_posix(), dir, 4, NULL, &tc));
    REQUIRE((it = level_iter_new(lc.t, lc.nt, tc)) != NULL);
    iter_seek_first(it);
    while (iter_valid(it) && at_ref(it, &lc, pos)) {
        iter_next(it);
        pos++;
    }
    CHECK(!iter_valid(it));
    CHECK(iter_status(it) != 0);
    CHECK(ikey_cmp(lkey(&lc.e[pos]), slice_make(lc.t[1]->smallest.data,
                                                lc.t[1]->smallest.len)) >= 0);
    iter_seek_last(it);
    CHECK(at_ref(it, &lc, (long)lc.n - 1));
    iter_seek_first(it);
    CHECK(at_ref(it, &lc, 0));
    iter_free(it);
    table_cache_free(tc);
    lcase_free(&lc);
}

/* Two levels under a merge and a visible_iter: the newer level's version wins. */
static void test_level_iter_under_visible_iter(void)
{
    const char *dir = test_tmpdir();
    static lent upper[4], lower[4];
    table_meta *tu, *tl;
    table_cache *tc;
    iter *kids[2];
    visible_iter *it;
    visible_iter_options o = {0};
    vstruct vs = {0};

    for (int i = 0; i < 4; i++) {
        char u[16];
        size_t ulen = ukey_fmt(u, i, "");
        vs.value = slice_make("new", 3);
        upper[i].iklen = ikey_encode(upper[i].ik, u, ulen, 20);
        upper[i].vlen = vstruct_encode(upper[i].v, &vs);
        vs.value = slice_make("old", 3);
        lower[i].iklen = ikey_encode(lower[i].ik, u, ulen, 10);
        lower[i].vlen = vstruct_encode(lower[i].v, &vs);
    }
    tu = write_table(dir, 1, upper, 4, 0);
    tl = write_table(dir, 2, lower, 4, 0);
    REQUIRE_OK(table_cache_new(env_posix(), dir, 4, NULL, &tc));
    kids[0] = level_iter_new(&tu, 1, tc);
    kids[1] = level_iter_new(&tl, 1, tc);
    o.read_version = 15;
    REQUIRE_OK(visible_iter_new(merge_iter_new(kids, 2), &o, &it));
    visible_iter_seek_last(it);
    CHECK(visible_iter_valid(it) && visible_iter_version(it) == 10);
    visible_iter_free(it);

    kids[0] = level_iter_new(&tu, 1, tc);
    kids[1] = level_iter_new(&tl, 1, tc);
    o.read_version = 25;
    REQUIRE_OK(visible_iter_new(merge_iter_new(kids, 2), &o, &it));
    for (int i = 0; i < 4; i++) {
        if (i == 0)
            visible_iter_seek_last(it);
        else
            visible_iter_prev(it);
        CHECK(visible_iter_valid(it) && visible_iter_version(it) == 20);
        CHECK(visible_iter_valid(it) && memcmp(visible_iter_vstruct(it)->value.data, "new", 3) == 0);
    }
    visible_iter_prev(it);
    CHECK(!visible_iter_valid(it) && visible_iter_status(it) == 0);
    visible_iter_free(it);
    table_cache_free(tc);
    table_meta_unref(tu);
    table_meta_unref(tl);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_level_iter_empty_level);
    TEST_RUN(test_level_iter_matches_entries);
    TEST_RUN(test_level_iter_missing_table_fails);
    TEST_RUN(test_level_iter_under_visible_iter);
    return test_summary();
}
