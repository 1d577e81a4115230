/*
 * lsm_view_test.c - table_meta refcounts, lsm_view_apply (order, deletions,
 * overlap rejection) and the version queries.
 */
#include "base/ikey.h"
#include "lsm/view.h"
#include "base/status.h"
#include "test.h"

/* A table over user keys [lo, hi] with versions up to max_version. */
static table_meta *mk(uint64_t id, const char *lo, const char *hi, uint64_t max_version)
{
    char a[64], b[64];
    size_t alen = ikey_encode(a, lo, strlen(lo), max_version);
    size_t blen = ikey_encode(b, hi, strlen(hi), 1);
    table_meta *t = table_meta_new(id, 1000 * id, slice_make(a, alen), slice_make(b, blen));

    if (t != NULL)
        t->max_version = max_version;
    return t;
}

/* Adds t to e at level and drops the caller's reference. */
static void add(lsm_edit *e, int level, table_meta *t)
{
    REQUIRE(t != NULL);
    REQUIRE_OK(lsm_edit_add(e, level, t));
    table_meta_unref(t);
}

static slice s(const char *p)
{
    return slice_make(p, strlen(p));
}

static const slice unbounded = {NULL, 0};

static int n_freed;
static uint64_t last_freed;

static void on_free(void *arg, table_meta *t)
{
    (void)arg;
    n_freed++;
    last_freed = t->id;
}

static void test_version_l0_newest_first_and_l1_sorted(void)
{
    lsm_edit e;
    lsm_view *v = NULL;

    lsm_edit_init(&e);
    add(&e, 0, mk(3, "a", "z", 30));
    add(&e, 0, mk(5, "a", "z", 50));
    add(&e, 0, mk(4, "a", "z", 50));
    add(&e, 0, mk(7, "a", "z", 20));   /* the latest flush, even with older versions */
    add(&e, 1, mk(9, "m", "p", 5));
    add(&e, 1, mk(8, "a", "c", 5));
    add(&e, 1, mk(10, "x", "y", 5));
    REQUIRE_OK(lsm_view_apply(NULL, 4, &e, &v));
    REQUIRE(v->n[0] == 4 && v->n[1] == 3 && v->n[2] == 0);
    CHECK(v->tables[0][0]->id == 7);   /* newest source (id) first */
    CHECK(v->tables[0][1]->id == 5);
    CHECK(v->tables[0][2]->id == 4);
    CHECK(v->tables[0][3]->id == 3);
    CHECK(v->tables[1][0]->id == 8);
    CHECK(v->tables[1][1]->id == 9);
    CHECK(v->tables[1][2]->id == 10);
    CHECK(lsm_view_level_bytes(v, 1) == 27000);
    CHECK(lsm_view_level_bytes(v, 3) == 0);
    lsm_edit_free(&e);
    lsm_view_unref(v);
}

static void test_version_delete_and_refcounts(void)
{
    lsm_edit e;
    lsm_view *v1 = NULL, *v2 = NULL;
    table_meta *t = mk(1, "a", "b", 1);

    n_freed = 0;
    REQUIRE(t != NULL);
    t->on_free = on_free;
    lsm_edit_init(&e);
    add(&e, 2, t);
    add(&e, 2, mk(2, "c", "d", 1));
    REQUIRE_OK(lsm_view_apply(NULL, 3, &e, &v1));
    lsm_edit_free(&e);

    lsm_edit_init(&e);
    REQUIRE_OK(lsm_edit_del(&e, 2, 1));
    REQUIRE_OK(lsm_view_apply(v1, 3, &e, &v2));
    REQUIRE(v2->n[2] == 1);
    CHECK(v2->tables[2][0]->id == 2);
    CHECK(n_freed == 0);        /* v1 still lists table 1 */
    lsm_view_unref(v1);
    CHECK(n_freed == 1 && last_freed == 1);
    lsm_edit_free(&e);
    lsm_view_unref(v2);
}

static void test_version_rejects_bad_deletions(void)
{
    lsm_edit e;
    lsm_view *v1 = NULL, *v2 = NULL;

    lsm_edit_init(&e);
    add(&e, 1, mk(1, "a", "b", 1));
    REQUIRE_OK(lsm_view_apply(NULL, 3, &e, &v1));
    lsm_edit_free(&e);

    lsm_edit_init(&e);
    REQUIRE_OK(lsm_edit_del(&e, 2, 1));     /* wrong level */
    CHECK_RC(lsm_view_apply(v1, 3, &e, &v2), STOAT_ECORRUPT);
    CHECK(v2 == NULL);
    lsm_edit_free(&e);

    lsm_edit_init(&e);
    REQUIRE_OK(lsm_edit_del(&e, 1, 1));
    REQUIRE_OK(lsm_edit_del(&e, 1, 1));     /* twice */
    CHECK_RC(lsm_view_apply(v1, 3, &e, &v2), STOAT_ECORRUPT);
    lsm_edit_free(&e);

    lsm_edit_init(&e);
    REQUIRE_OK(lsm_edit_del(&e, 0, 42));    /* empty level */
    CHECK_RC(lsm_view_apply(v1, 3, &e, &v2), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "42") != NULL);
    lsm_edit_free(&e);
    lsm_view_unref(v1);
}

static void test_version_rejects_overlap_in_l1(void)
{
    lsm_edit e;
    lsm_view *v1 = NULL, *v2 = NULL;

    lsm_edit_init(&e);
    add(&e, 1, mk(1, "a", "f", 1));
    REQUIRE_OK(lsm_view_apply(NULL, 3, &e, &v1));
    lsm_edit_free(&e);

    /* Sharing only the boundary user key "f" is an overlap too. */
    lsm_edit_init(&e);
    add(&e, 1, mk(2, "f", "k", 9));
    CHECK_RC(lsm_view_apply(v1, 3, &e, &v2), STOAT_ECORRUPT);
    CHECK(v2 == NULL);
    lsm_edit_free(&e);

    /* The same ranges are fine in L0 and across levels. */
    lsm_edit_init(&e);
    add(&e, 0, mk(3, "a", "k", 9));
    add(&e, 2, mk(4, "a", "k", 9));
    REQUIRE_OK(lsm_view_apply(v1, 3, &e, &v2));
    lsm_edit_free(&e);
    lsm_view_unref(v2);

    /* A table may move down a level in one edit (delete + add). */
    lsm_edit_init(&e);
    REQUIRE_OK(lsm_edit_del(&e, 1, 1));
    REQUIRE(v1->tables[1][0]->id == 1);
    REQUIRE_OK(lsm_edit_add(&e, 2, v1->tables[1][0]));
    REQUIRE_OK(lsm_view_apply(v1, 3, &e, &v2));
    CHECK(v2->n[1] == 0 && v2->n[2] == 1);
    lsm_edit_free(&e);
    lsm_view_unref(v2);
    lsm_view_unref(v1);
}

static void test_version_rejects_bad_levels(void)
{
    lsm_edit e;
    lsm_view *v = NULL;

    lsm_edit_init(&e);
    add(&e, 5, mk(1, "a", "b", 1));
    CHECK_RC(lsm_view_apply(NULL, 3, &e, &v), STOAT_EINVAL);
    CHECK(v == NULL);
    lsm_edit_free(&e);
    CHECK_RC(lsm_edit_del(&e, MAX_LEVELS, 1), STOAT_EINVAL);
    CHECK(table_meta_new(1, 1, s("short"), s("ab")) == NULL);
}

static lsm_view *three_tables(void)
{
    lsm_edit e;
    lsm_view *v = NULL;

    lsm_edit_init(&e);
    add(&e, 1, mk(1, "b", "d", 1));
    add(&e, 1, mk(2, "f", "h", 1));
    add(&e, 1, mk(3, "m", "m", 1));
    add(&e, 0, mk(4, "a", "c", 1));
    add(&e, 3, mk(5, "x", "z", 1));
    if (lsm_view_apply(NULL, 4, &e, &v) != 0)
        v = NULL;
    lsm_edit_free(&e);
    return v;
}

static void test_version_find_table(void)
{
    lsm_view *v = three_tables();

    REQUIRE(v != NULL);
    CHECK(lsm_view_find_table(v, 1, s("a")) == -1);
    CHECK(lsm_view_find_table(v, 1, s("b")) == 0);
    CHECK(lsm_view_find_table(v, 1, s("c")) == 0);
    CHECK(lsm_view_find_table(v, 1, s("d")) == 0);
    CHECK(lsm_view_find_table(v, 1, s("dd")) == -1);
    CHECK(lsm_view_find_table(v, 1, s("g")) == 1);
    CHECK(lsm_view_find_table(v, 1, s("m")) == 2);
    CHECK(lsm_view_find_table(v, 1, s("ma")) == -1);
    CHECK(lsm_view_find_table(v, 1, s("zz")) == -1);
    CHECK(lsm_view_find_table(v, 2, s("b")) == -1);
    CHECK(lsm_view_find_table(v, 3, s("y")) == 0);
    lsm_view_unref(v);
}

static void test_version_overlapping_and_below(void)
{
    lsm_view *v = three_tables();
    table_meta **t = NULL;
    size_t n = 0;

    REQUIRE(v != NULL);
    REQUIRE_OK(lsm_view_overlapping(v, 1, s("c"), s("f"), &t, &n));
    REQUIRE(n == 2);
    CHECK(t[0]->id == 1 && t[1]->id == 2);
    free(t);
    REQUIRE_OK(lsm_view_overlapping(v, 1, s("i"), s("l"), &t, &n));
    CHECK(n == 0 && t == NULL);
    REQUIRE_OK(lsm_view_overlapping(v, 1, unbounded, s("b"), &t, &n));
    CHECK(n == 1);
    free(t);
    REQUIRE_OK(lsm_view_overlapping(v, 1, s("g"), unbounded, &t, &n));
    CHECK(n == 2);
    free(t);
    REQUIRE_OK(lsm_view_overlapping(v, 0, s("c"), s("c"), &t, &n));
    CHECK(n == 1);
    free(t);
    REQUIRE_OK(lsm_view_overlapping(v, 0, s("d"), s("z"), &t, &n));
    CHECK(n == 0);

    CHECK(lsm_view_overlaps_below(v, 1, s("y"), s("y")) == 1);
    CHECK(lsm_view_overlaps_below(v, 1, s("n"), s("w")) == 0);
    CHECK(lsm_view_overlaps_below(v, 0, s("b"), s("b")) == 1);
    CHECK(lsm_view_overlaps_below(v, 3, unbounded, unbounded) == 0);
    CHECK(lsm_view_overlaps_below(v, 2, unbounded, unbounded) == 1);
    lsm_view_unref(v);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_version_l0_newest_first_and_l1_sorted);
    TEST_RUN(test_version_delete_and_refcounts);
    TEST_RUN(test_version_rejects_bad_deletions);
    TEST_RUN(test_version_rejects_overlap_in_l1);
    TEST_RUN(test_version_rejects_bad_levels);
    TEST_RUN(test_version_find_table);
    TEST_RUN(test_version_overlapping_and_below);
    return test_summary();
}
