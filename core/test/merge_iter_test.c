/*
 * merge_iter_test.c - the merge against a reference: the sorted union of
 * its children's entries, ordered by (internal key, child index).
 */
#include "base/merge_iter.h"
#include "test.h"
#include "vec_iter.h"

#define MAX_CHILDREN 6
#define MAX_PER_CHILD 40
#define MAX_ENTRIES (MAX_CHILDREN * MAX_PER_CHILD)

typedef struct tent {
    char k[16];
    size_t klen;
    char v[16];
    size_t vlen;
    int child;
} tent;

/* One random case: children's entry arrays plus the reference union. */
typedef struct mcase {
    tent t[MAX_ENTRIES];
    vec_entry e[MAX_CHILDREN][MAX_PER_CHILD];
    size_t n[MAX_CHILDREN];
    int nchildren;
    const tent *ref[MAX_ENTRIES];   /* union in merge order */
    size_t nref;
} mcase;

static slice tkey(const tent *t)
{
    return slice_make(t->k, t->klen);
}

/* A random internal key over a small space, so children overlap a lot. */
static size_t rand_ikey(uint64_t *rs, char *dst)
{
    static const char alpha[] = {'a', 'b', '\0', (char)0xff};
    char u[3];
    size_t ulen = test_rand(rs) % 4;

    for (size_t i = 0; i < ulen; i++)
        u[i] = alpha[test_rand(rs) % 4];
    return ikey_encode(dst, u, ulen, 1 + test_rand(rs) % 4);
}

static int ref_cmp(const void *a, const void *b)
{
    const tent *x = *(const tent *const *)a, *y = *(const tent *const *)b;
    int c = ikey_cmp(tkey(x), tkey(y));

    return c ? c : x->child - y->child;
}

/* Fills children with distinct keys each (a sorted run has no duplicates). */
static void mcase_build(mcase *mc, uint64_t *rs)
{
    size_t nt = 0;

    mc->nchildren = 2 + (int)(test_rand(rs) % (MAX_CHILDREN - 1));
    mc->nref = 0;
    for (int c = 0; c < mc->nchildren; c++) {
        size_t want = test_rand(rs) % MAX_PER_CHILD;
        mc->n[c] = 0;
        for (size_t j = 0; j < want; j++) {
            tent *t = &mc->t[nt];
            int dup = 0;
            t->klen = rand_ikey(rs, t->k);
            for (size_t i = 0; i < mc->n[c]; i++)
                dup |= ikey_cmp(mc->e[c][i].key, tkey(t)) == 0;
            if (dup)
                continue;
            t->child = c;
            t->vlen = (size_t)snprintf(t->v, sizeof(t->v), "%d/%zu", c, j);
            mc->e[c][mc->n[c]].key = tkey(t);
            mc->e[c][mc->n[c]].value = slice_make(t->v, t->vlen);
            mc->n[c]++;
            mc->ref[mc->nref++] = t;
            nt++;
        }
        vec_entries_sort(mc->e[c], mc->n[c]);
    }
    qsort(mc->ref, mc->nref, sizeof(mc->ref[0]), ref_cmp);
}

static iter *mcase_iter(mcase *mc)
{
    iter *kids[MAX_CHILDREN];

    for (int c = 0; c < mc->nchildren; c++)
        kids[c] = vec_iter_new(mc->e[c], mc->n[c]);
    return merge_iter_new(kids, (size_t)mc->nchildren);
}

/* 1 when the merge is on reference entry pos (or both are off the end). */
static int at_ref(iter *m, const mcase *mc, long pos)
{
    const tent *t;

    if (pos < 0 || (size_t)pos >= mc->nref)
        return !iter_valid(m) && iter_status(m) == 0;
    if (!iter_valid(m))
        return 0;
    t = mc->ref[pos];
    return ikey_cmp(iter_key(m), tkey(t)) == 0 &&
           slice_cmp(iter_value(m), slice_make(t->v, t->vlen)) == 0;
}

static long ref_seek(const mcase *mc, slice target)
{
    size_t i = 0;

    while (i < mc->nref && ikey_cmp(tkey(mc->ref[i]), target) < 0)
        i++;
    return (long)i;
}

static long ref_seek_for_prev(const mcase *mc, slice target)
{
    long i = (long)mc->nref - 1;

    while (i >= 0 && ikey_cmp(tkey(mc->ref[i]), target) > 0)
        i--;
    return i;
}

static void test_merge_iter_no_children_is_empty(void)
{
    iter *m = merge_iter_new(NULL, 0);
    char k[16];

    REQUIRE(m != NULL);
    iter_seek_first(m);
    CHECK(!iter_valid(m));
    iter_seek_last(m);
    CHECK(!iter_valid(m));
    iter_seek(m, slice_make(k, ikey_encode(k, "a", 1, 1)));
    CHECK(!iter_valid(m));
    CHECK(iter_status(m) == 0);
    iter_free(m);
}

/* Equal keys: forward lower index first, backward exactly reversed. */
static void test_merge_iter_equal_keys_order(void)
{
    char k[3][16];
    vec_entry a[2], b[1], c[1];
    iter *kids[3], *m;
    size_t la = ikey_encode(k[0], "a", 1, 5), lb = ikey_encode(k[1], "b", 1, 5);

    a[0] = (vec_entry){slice_make(k[0], la), slice_make("A0", 2)};
    a[1] = (vec_entry){slice_make(k[1], lb), slice_make("A1", 2)};
    b[0] = (vec_entry){slice_make(k[0], la), slice_make("B0", 2)};
    c[0] = (vec_entry){slice_make(k[0], la), slice_make("C0", 2)};
    kids[0] = vec_iter_new(a, 2);
    kids[1] = vec_iter_new(b, 1);
    kids[2] = vec_iter_new(c, 1);
    REQUIRE((m = merge_iter_new(kids, 3)) != NULL);
    iter_seek_first(m);
    CHECK(iter_valid(m) && memcmp(iter_value(m).data, "A0", 2) == 0);
    iter_next(m);
    CHECK(iter_valid(m) && memcmp(iter_value(m).data, "B0", 2) == 0);
    iter_next(m);
    CHECK(iter_valid(m) && memcmp(iter_value(m).data, "C0", 2) == 0);
    iter_next(m);
    CHECK(iter_valid(m) && memcmp(iter_value(m).data, "A1", 2) == 0);
    iter_prev(m);
    CHECK(iter_valid(m) && memcmp(iter_value(m).data, "C0", 2) == 0);
    iter_prev(m);
    CHECK(iter_valid(m) && memcmp(iter_value(m).data, "B0", 2) == 0);
    iter_next(m);
    CHECK(iter_valid(m) && memcmp(iter_value(m).data, "C0", 2) == 0);
    iter_seek_for_prev(m, slice_make(k[0], la));
    CHECK(iter_valid(m) && memcmp(iter_value(m).data, "C0", 2) == 0);
    iter_free(m);
}

static void test_merge_iter_scans_equal_sorted_union(void)
{
    static mcase mc;
    uint64_t rs = 42;

    for (int round = 0; round < 200; round++) {
        iter *m;
        long i;
        mcase_build(&mc, &rs);
        REQUIRE((m = mcase_iter(&mc)) != NULL);
        iter_seek_first(m);
        for (i = 0; i < (long)mc.nref && at_ref(m, &mc, i); i++)
            iter_next(m);
        CHECK(i == (long)mc.nref && at_ref(m, &mc, i));
        iter_seek_last(m);
        for (i = (long)mc.nref - 1; i >= 0 && at_ref(m, &mc, i); i--)
            iter_prev(m);
        CHECK(i == -1 && at_ref(m, &mc, i));
        iter_free(m);
    }
}

/* One random move of both the merge and the reference position. */
static long random_move(iter *m, const mcase *mc, long pos, uint64_t *rs)
{
    char k[16];
    slice t;
    int valid = pos >= 0 && (size_t)pos < mc->nref;

    switch (test_rand(rs) % 10) {
    case 0:
        iter_seek_first(m);
        return 0;
    case 1:
        iter_seek_last(m);
        return (long)mc->nref - 1;
    case 2:
        t = slice_make(k, rand_ikey(rs, k));
        iter_seek(m, t);
        return ref_seek(mc, t);
    case 3:
        t = slice_make(k, rand_ikey(rs, k));
        iter_seek_for_prev(m, t);
        return ref_seek_for_prev(mc, t);
    case 4: case 5: case 6:
        if (!valid)
            return pos;
        iter_next(m);
        return pos + 1;
    default:
        if (!valid)
            return pos;
        iter_prev(m);
        return pos - 1;
    }
}

static void test_merge_iter_random_walk_matches_reference(void)
{
    static mcase mc;
    uint64_t rs = 7;
    long steps = 0, bad = 0;

    for (int round = 0; round < 200; round++) {
        iter *m;
        long pos = -1;
        mcase_build(&mc, &rs);
        REQUIRE((m = mcase_iter(&mc)) != NULL);
        for (int s = 0; s < 600 && bad == 0; s++, steps++) {
            pos = random_move(m, &mc, pos, &rs);
            if (!at_ref(m, &mc, pos)) {
                test_fail(__FILE__, __LINE__, "round %d step %d: off reference pos %ld", round,
                          s, pos);
                bad++;
            }
        }
        iter_free(m);
    }
    CHECK(steps >= 100000);
}

static void test_merge_iter_child_error_stops_merge(void)
{
    char k[4][16];
    vec_entry a[2], b[2];
    iter *kids[2], *m;

    for (int i = 0; i < 4; i++) {
        char u = (char)('a' + i);
        vec_entry *e = i % 2 ? &b[i / 2] : &a[i / 2];
        e->key = slice_make(k[i], ikey_encode(k[i], &u, 1, 1));
        e->value = slice_make("v", 1);
    }
    kids[0] = vec_iter_new(a, 2);
    kids[1] = vec_iter_new(b, 2);
    vec_iter_fail_at(kids[1], 1, STOAT_ECORRUPT);
    REQUIRE((m = merge_iter_new(kids, 2)) != NULL);
    iter_seek_first(m);
    REQUIRE(iter_valid(m));             /* a */
    iter_next(m);
    REQUIRE(iter_valid(m));             /* b */
    iter_next(m);                       /* child 1 hits its error */
    CHECK(!iter_valid(m));
    CHECK(iter_status(m) == STOAT_ECORRUPT);
    iter_seek_last(m);                  /* lands on the damaged entry */
    CHECK(!iter_valid(m));
    CHECK(iter_status(m) == STOAT_ECORRUPT);
    iter_free(m);
}

static void test_merge_iter_single_child_passes_through(void)
{
    char k[16];
    vec_entry e = {slice_make(k, ikey_encode(k, "x", 1, 3)), slice_make("v", 1)};
    iter *kid = vec_iter_new(&e, 1), *m;

    REQUIRE(kid != NULL);
    m = merge_iter_new(&kid, 1);
    CHECK(m == kid);
    iter_seek_last(m);
    CHECK(iter_valid(m) && ikey_version(iter_key(m)) == 3);
    iter_free(m);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_merge_iter_no_children_is_empty);
    TEST_RUN(test_merge_iter_equal_keys_order);
    TEST_RUN(test_merge_iter_scans_equal_sorted_union);
    TEST_RUN(test_merge_iter_random_walk_matches_reference);
    TEST_RUN(test_merge_iter_child_error_stops_merge);
    TEST_RUN(test_merge_iter_single_child_passes_through);
    return test_summary();
}
