/*
 * compaction_pick_test.c - level targets, base level, scores and the
 * choice of inputs: L0 trigger, level overflow, compacting tables
 * skipped, tombstone-heavy tables, manual flatten.
 */
#include "base/ikey.h"
#include "lsm/compaction.h"
#include "base/status.h"
#include "test.h"

#define NL 7

static const level_options opts = {
    .num_levels = NL,
    .base_level_size = 1000,
    .level_size_multiplier = 10,
    .table_size = 100,
    .l0_compaction_trigger = 4,
};

typedef struct spec {
    int level;
    uint64_t id;
    const char *lo, *hi;
    uint64_t size;
    uint64_t entries, dels, max_version;
} spec;

static table_meta *mk(const spec *sp)
{
    char a[64], b[64];
    size_t alen = ikey_encode(a, sp->lo, strlen(sp->lo), sp->max_version);
    size_t blen = ikey_encode(b, sp->hi, strlen(sp->hi), 0);
    table_meta *t = table_meta_new(sp->id, sp->size, slice_make(a, alen), slice_make(b, blen));

    if (t != NULL) {
        t->num_entries = sp->entries;
        t->num_deletions = sp->dels;
        t->max_version = sp->max_version ? sp->max_version : sp->id;
    }
    return t;
}

/* A version holding the tables of sp[0..n). */
static lsm_view *build(const spec *sp, size_t n)
{
    lsm_edit e;
    lsm_view *v = NULL;

    lsm_edit_init(&e);
    for (size_t i = 0; i < n; i++) {
        table_meta *t = mk(&sp[i]);

        if (t == NULL || lsm_edit_add(&e, sp[i].level, t) != 0) {
            table_meta_unref(t);
            lsm_edit_free(&e);
            return NULL;
        }
        table_meta_unref(t);
    }
    if (lsm_view_apply(NULL, NL, &e, &v) != 0)
        v = NULL;
    lsm_edit_free(&e);
    return v;
}

static int has_input(const compaction *c, int which, uint64_t id)
{
    for (size_t i = 0; i < c->n_inputs[which]; i++)
        if (c->inputs[which][i]->id == id)
            return 1;
    return 0;
}

/*
 * Stands in for compaction_run + install: replaces the inputs with one
 * table over their range at out_level, then releases c.
 */
static lsm_view *fake_run(lsm_view *v, compaction *c, uint64_t id)
{
    lsm_edit e;
    lsm_view *nv = NULL;
    slice lo = {NULL, 0}, hi = {NULL, 0};
    uint64_t size = 0;
    int levels[2] = {c->level, c->out_level}, rc = 0;
    table_meta *t;

    lsm_edit_init(&e);
    for (int w = 0; w < 2; w++) {
        for (size_t i = 0; i < c->n_inputs[w]; i++) {
            slice a, b;

            t = c->inputs[w][i];
            a = slice_make(t->smallest.data, t->smallest.len);
            b = slice_make(t->largest.data, t->largest.len);
            if (lo.data == NULL || ikey_cmp(a, lo) < 0)
                lo = a;
            if (hi.data == NULL || ikey_cmp(b, hi) > 0)
                hi = b;
            size += t->file_size;
            rc |= lsm_edit_del(&e, levels[w], t->id);
        }
    }
    t = table_meta_new(id, size, lo, hi);
    if (rc != 0 || t == NULL || lsm_edit_add(&e, c->out_level, t) != 0 ||
        lsm_view_apply(v, NL, &e, &nv) != 0)
        nv = NULL;
    table_meta_unref(t);
    lsm_edit_free(&e);
    compaction_release(c);
    lsm_view_unref(v);
    return nv;
}

static void test_compaction_pick_empty_db_sends_l0_to_last_level(void)
{
    spec sp[] = {
        {0, 1, "a", "f", 50, 0, 0, 0}, {0, 2, "c", "k", 50, 0, 0, 0},
        {0, 3, "b", "d", 50, 0, 0, 0},
    };
    lsm_view *v = build(sp, 3);
    uint64_t targets[MAX_LEVELS];
    int base = -1;
    compaction *c;

    REQUIRE(v != NULL);
    compaction_level_targets(v, &opts, targets, &base);
    CHECK(base == NL - 1);
    CHECK(targets[0] == 0);
    CHECK(targets[1] == 1000 && targets[NL - 1] == 1000);
    CHECK(compaction_pick(v, &opts) == NULL);   /* 3 tables, trigger is 4 */
    lsm_view_unref(v);

    spec sp4[] = {
        {0, 1, "a", "f", 50, 0, 0, 0}, {0, 2, "c", "k", 50, 0, 0, 0},
        {0, 3, "b", "d", 50, 0, 0, 0}, {0, 4, "x", "z", 50, 0, 0, 0},
    };
    REQUIRE((v = build(sp4, 4)) != NULL);
    REQUIRE((c = compaction_pick(v, &opts)) != NULL);
    CHECK(c->level == 0 && c->out_level == NL - 1);
    CHECK(c->n_inputs[0] == 4 && c->n_inputs[1] == 0);
    CHECK(c->inputs[0][0]->id == 4);            /* newest first, as in L0 */
    CHECK(c->drop_tombstones == 1);
    CHECK(c->table_size == 100);
    CHECK(c->score >= 1.0);
    CHECK(v->tables[0][2]->compacting == 1);
    CHECK(atomic_load(&v->tables[0][2]->refs) == 2);
    CHECK(compaction_pick(v, &opts) == NULL);   /* L0 is busy now */
    compaction_release(c);
    CHECK(v->tables[0][2]->compacting == 0);
    CHECK(atomic_load(&v->tables[0][2]->refs) == 1);
    lsm_view_unref(v);
}

static void test_compaction_pick_base_level_from_last_level_size(void)
{
    spec sp[] = {{NL - 1, 1, "a", "z", 100000, 0, 0, 0}};
    lsm_view *v = build(sp, 1);
    uint64_t targets[MAX_LEVELS];
    int base = -1;

    REQUIRE(v != NULL);
    compaction_level_targets(v, &opts, targets, &base);
    CHECK(base == 4);   /* 100000 / 10 / 10 = 1000 fits base_level_size */
    CHECK(targets[6] == 100000);
    CHECK(targets[5] == 10000);
    CHECK(targets[4] == 1000);
    CHECK(targets[3] == 1000 && targets[1] == 1000);
    lsm_view_unref(v);
}

static void test_compaction_pick_base_level_never_below_nonempty(void)
{
    /* Data only in L2: L0 must go to L2, not below it. */
    spec sp[] = {
        {2, 1, "a", "c", 300, 0, 0, 0}, {2, 2, "m", "p", 300, 0, 0, 0},
        {0, 3, "b", "n", 10, 0, 0, 0},  {0, 4, "b", "b", 10, 0, 0, 0},
        {0, 5, "b", "b", 10, 0, 0, 0},  {0, 6, "b", "b", 10, 0, 0, 0},
    };
    lsm_view *v = build(sp, 6);
    uint64_t targets[MAX_LEVELS];
    int base = -1;
    compaction *c;

    REQUIRE(v != NULL);
    compaction_level_targets(v, &opts, targets, &base);
    CHECK(base == 2);
    REQUIRE((c = compaction_pick(v, &opts)) != NULL);
    CHECK(c->level == 0 && c->out_level == 2);
    CHECK(c->n_inputs[0] == 4);
    CHECK(c->n_inputs[1] == 2 && has_input(c, 1, 1) && has_input(c, 1, 2));
    CHECK(c->drop_tombstones == 1);
    compaction_release(c);
    lsm_view_unref(v);

    /* A big last level would put the base at L3; L2's data clamps it. */
    spec sp2[] = {{2, 1, "a", "c", 300, 0, 0, 0}, {6, 2, "a", "z", 1000000, 0, 0, 0}};
    REQUIRE((v = build(sp2, 2)) != NULL);
    compaction_level_targets(v, &opts, targets, &base);
    CHECK(base == 2);
    lsm_view_unref(v);
    spec sp3[] = {{6, 2, "a", "z", 1000000, 0, 0, 0}};
    REQUIRE((v = build(sp3, 1)) != NULL);
    compaction_level_targets(v, &opts, targets, &base);
    CHECK(base == 3);
    lsm_view_unref(v);
}

static void test_compaction_pick_level_overflow_goes_down_one(void)
{
    /* L6 = 100000 -> L5 target 10000; L5 holds 25000. */
    spec sp[] = {
        {6, 1, "a", "c", 50000, 0, 0, 0}, {6, 2, "p", "z", 50000, 0, 0, 0},
        {5, 3, "a", "b", 10000, 0, 0, 0},   /* overlaps 50000 bytes: ratio 5 */
        {5, 4, "d", "f", 5000, 0, 0, 0},    /* no overlap: ratio 0 */
        {5, 5, "q", "r", 10000, 0, 0, 0},   /* ratio 5 */
    };
    lsm_view *v = build(sp, 5);
    compaction *c1, *c2, *c3;

    REQUIRE(v != NULL);
    REQUIRE((c1 = compaction_pick(v, &opts)) != NULL);
    CHECK(c1->level == 5 && c1->out_level == 6);
    CHECK(c1->n_inputs[0] == 1 && has_input(c1, 0, 4));
    CHECK(c1->n_inputs[1] == 0);
    CHECK(c1->score > 2.4 && c1->score < 2.6);
    /* 20000 of L5 left free: still over target; ties go to older data. */
    REQUIRE((c2 = compaction_pick(v, &opts)) != NULL);
    CHECK(c2->level == 5 && has_input(c2, 0, 3) && has_input(c2, 1, 1));
    CHECK(c2->n_inputs[1] == 1);
    /* 10000 left: score 1 still picks. */
    REQUIRE((c3 = compaction_pick(v, &opts)) != NULL);
    CHECK(has_input(c3, 0, 5) && has_input(c3, 1, 2));
    CHECK(compaction_pick(v, &opts) == NULL);
    compaction_release(c1);
    compaction_release(c2);
    compaction_release(c3);
    lsm_view_unref(v);
}

static void test_compaction_pick_skips_compacting_tables(void)
{
    spec sp[] = {
        {6, 1, "a", "c", 50000, 0, 0, 0}, {6, 2, "p", "z", 50000, 0, 0, 0},
        {5, 3, "a", "b", 30000, 0, 0, 0},
        {0, 4, "q", "q", 10, 0, 0, 0}, {0, 5, "q", "q", 10, 0, 0, 0},
        {0, 6, "q", "r", 10, 0, 0, 0}, {0, 7, "q", "q", 10, 0, 0, 0},
        {0, 8, "q", "q", 10, 0, 0, 0},
    };
    lsm_view *v = build(sp, 8);
    compaction *c;

    REQUIRE(v != NULL);
    /* L5 scores 3 > L0's 1.25, but its only table's L6 partner is busy. */
    v->tables[6][0]->compacting = 1;
    REQUIRE((c = compaction_pick(v, &opts)) != NULL);
    CHECK(c->level == 0 && c->out_level == 4);
    compaction_release(c);
    /* A busy L0 table blocks L0 compactions altogether (the other four
     * still score 1). */
    v->tables[0][1]->compacting = 1;
    CHECK(compaction_pick(v, &opts) == NULL);
    v->tables[0][1]->compacting = 0;
    v->tables[6][0]->compacting = 0;
    REQUIRE((c = compaction_pick(v, &opts)) != NULL);
    CHECK(c->level == 5 && has_input(c, 1, 1));
    compaction_release(c);
    lsm_view_unref(v);
}

static void test_compaction_pick_l0_blocked_by_busy_base_table(void)
{
    spec sp[] = {
        {2, 1, "a", "c", 300, 0, 0, 0},
        {0, 3, "b", "b", 10, 0, 0, 0}, {0, 4, "b", "b", 10, 0, 0, 0},
        {0, 5, "b", "b", 10, 0, 0, 0}, {0, 6, "b", "b", 10, 0, 0, 0},
    };
    lsm_view *v = build(sp, 5);

    REQUIRE(v != NULL);
    v->tables[2][0]->compacting = 1;
    CHECK(compaction_pick(v, &opts) == NULL);
    lsm_view_unref(v);
}

static void test_compaction_pick_l0_keeps_tombstones_over_deeper_data(void)
{
    spec sp[] = {
        {3, 1, "a", "c", 300, 0, 0, 0}, {6, 2, "m", "z", 100000, 0, 0, 0},
        {0, 3, "b", "n", 10, 0, 0, 0}, {0, 4, "b", "b", 10, 0, 0, 0},
        {0, 5, "b", "b", 10, 0, 0, 0}, {0, 6, "b", "b", 10, 0, 0, 0},
    };
    lsm_view *v = build(sp, 6);
    compaction *c;

    REQUIRE(v != NULL);
    REQUIRE((c = compaction_pick(v, &opts)) != NULL);
    CHECK(c->level == 0 && c->out_level == 3);
    CHECK(c->drop_tombstones == 0);     /* "m".."n" lives in L6 too */
    compaction_release(c);
    lsm_view_unref(v);
}

static void test_compaction_pick_tombstone_heavy_tables(void)
{
    spec sp[] = {
        {6, 1, "a", "c", 500, 2000, 1000, 50},
        {6, 2, "d", "f", 500, 2000, 100, 50},
        {3, 3, "a", "b", 100, 999, 999, 60},    /* too few entries */
        {3, 4, "x", "y", 100, 1000, 400, 70},
    };
    lsm_view *v = build(sp, 4);
    level_options o = opts;
    compaction *c;

    REQUIRE(v != NULL);
    /* Within target everywhere: the L3 table moves down a level. */
    REQUIRE((c = compaction_pick(v, &o)) != NULL);
    CHECK(c->level == 3 && c->out_level == 4 && has_input(c, 0, 4));
    CHECK(c->score < 1.0);
    /* Table 1 lives in the deepest level; with versions a snapshot may
     * still read, a rewrite could not drop its tombstones. */
    CHECK(compaction_pick(v, &o) == NULL);
    o.discard_version = 49;
    CHECK(compaction_pick(v, &o) == NULL);
    o.discard_version = 50;
    compaction_release(c);
    v->tables[3][1]->compacting = 1;
    REQUIRE((c = compaction_pick(v, &o)) != NULL);
    CHECK(c->level == 6 && c->out_level == 6);
    CHECK(c->n_inputs[0] == 1 && has_input(c, 0, 1) && c->n_inputs[1] == 0);
    CHECK(c->drop_tombstones == 1);
    compaction_release(c);
    v->tables[3][1]->compacting = 0;
    lsm_view_unref(v);
}

static int levels_used(const lsm_view *v)
{
    int k = 0;

    for (int l = 0; l < v->num_levels; l++)
        k += v->n[l] != 0;
    return k;
}

static void test_compaction_pick_manual_flatten_ends_in_one_level(void)
{
    spec sp[] = {
        {0, 1, "a", "f", 10, 0, 0, 0}, {0, 2, "e", "k", 10, 0, 0, 0},
        {2, 3, "a", "b", 10, 0, 0, 0}, {2, 4, "x", "y", 10, 0, 0, 0},
        {4, 5, "c", "d", 10, 0, 0, 0}, {4, 6, "m", "n", 10, 0, 0, 0},
        {5, 7, "z", "zz", 10, 0, 0, 0},
    };
    lsm_view *v = build(sp, 7);
    uint64_t id = 100;
    int steps = 0;
    compaction *c;

    REQUIRE(v != NULL);
    v->tables[0][1]->compacting = 1;    /* a running compaction */
    CHECK(compaction_pick_manual(v, &opts) == NULL);
    v->tables[0][1]->compacting = 0;
    while ((c = compaction_pick_manual(v, &opts)) != NULL) {
        CHECK(c->out_level > c->level);
        REQUIRE(steps++ < 10);
        REQUIRE((v = fake_run(v, c, id++)) != NULL);
    }
    CHECK(steps == 3);          /* L0->L2, L2->L4, L4->L5 */
    CHECK(levels_used(v) == 1);
    CHECK(v->n[5] == 2);
    lsm_view_unref(v);

    /* Only L0: straight to the last level. */
    spec l0[] = {{0, 1, "a", "f", 10, 0, 0, 0}};
    REQUIRE((v = build(l0, 1)) != NULL);
    REQUIRE((c = compaction_pick_manual(v, &opts)) != NULL);
    CHECK(c->level == 0 && c->out_level == NL - 1);
    REQUIRE((v = fake_run(v, c, id++)) != NULL);
    CHECK(compaction_pick_manual(v, &opts) == NULL);
    lsm_view_unref(v);
}

static void test_compaction_pick_manual_step_count(void)
{
    /* Three non-empty levels: exactly two steps. */
    spec sp[] = {
        {1, 1, "a", "f", 10, 0, 0, 0}, {3, 2, "c", "k", 10, 0, 0, 0},
        {6, 3, "b", "z", 10, 0, 0, 0},
    };
    lsm_view *v = build(sp, 3);
    compaction *c;
    int steps = 0;

    REQUIRE(v != NULL);
    while ((c = compaction_pick_manual(v, &opts)) != NULL) {
        REQUIRE(steps++ < 5);
        REQUIRE((v = fake_run(v, c, 50 + steps)) != NULL);
    }
    CHECK(steps == 2);
    CHECK(v->n[6] == 1 && levels_used(v) == 1);
    lsm_view_unref(v);
}

/* Tables with entries kept only for a reader (issue 16) are compacted
 * once no snapshot is older than their stale_version: in the last level
 * into themselves (also by a manual compaction, when all data is in one
 * level), above it down one level; never while a reader may need them. */
static void test_compaction_pick_tables_kept_for_a_reader(void)
{
    spec sp[] = {
        {3, 1, "a", "f", 10, 5, 0, 90}, {6, 2, "a", "c", 10, 5, 0, 50},
        {6, 3, "d", "k", 10, 5, 0, 60}, {6, 4, "m", "p", 10, 5, 0, 70},
    };
    level_options o = opts;
    lsm_view *v = build(sp, 4);
    compaction *c;

    REQUIRE(v != NULL);
    v->tables[6][1]->num_stale = 3;
    v->tables[6][1]->stale_version = 40;
    v->tables[3][0]->num_stale = 1;
    v->tables[3][0]->stale_version = 80;
    o.discard_version = 39;             /* a reader at 39 still needs them */
    CHECK(compaction_pick(v, &o) == NULL);
    o.discard_version = 0;              /* unknown */
    CHECK(compaction_pick(v, &o) == NULL);
    o.discard_version = 40;
    REQUIRE((c = compaction_pick(v, &o)) != NULL);
    CHECK(c->level == 6 && c->out_level == 6 && c->n_inputs[0] == 1 && c->n_inputs[1] == 0);
    CHECK(has_input(c, 0, 3) && c->drop_tombstones);
    compaction_release(c);
    v->tables[6][1]->compacting = 1;
    o.discard_version = 100;            /* L3's is due too: it moves down */
    REQUIRE((c = compaction_pick(v, &o)) != NULL);
    CHECK(c->level == 3 && c->out_level == 4 && has_input(c, 0, 1));
    compaction_release(c);
    v->tables[6][1]->compacting = 0;
    lsm_view_unref(v);

    /* All data in the last level: a manual compaction picks the table. */
    spec last[] = {{6, 2, "a", "c", 10, 5, 0, 50}, {6, 3, "d", "k", 10, 5, 0, 60}};
    REQUIRE((v = build(last, 2)) != NULL);
    o.discard_version = 100;
    CHECK(compaction_pick_manual(v, &o) == NULL);
    v->tables[6][0]->num_stale = 2;
    v->tables[6][0]->stale_version = 50;
    REQUIRE((c = compaction_pick_manual(v, &o)) != NULL);
    CHECK(c->level == 6 && c->out_level == 6 && has_input(c, 0, 2) && c->n_inputs[0] == 1);
    compaction_release(c);
    o.discard_version = 49;
    CHECK(compaction_pick_manual(v, &o) == NULL);
    lsm_view_unref(v);
}

/* A floored base level may not sit above the last one with more than a
 * quarter of its bytes: overwritten versions get merged away. */
static void test_compaction_pick_space_amp_caps_level_above_last(void)
{
    level_options big = opts;
    spec sp[] = {
        {6, 1, "a", "m", 200000, 0, 0, 0}, {6, 2, "n", "z", 200000, 0, 0, 0},
        {5, 3, "a", "c", 60000, 0, 0, 0},  {5, 4, "p", "r", 60000, 0, 0, 0},
    };
    lsm_view *v;
    compaction *c;

    big.base_level_size = 1000000;  /* L5's floored target: 1000000 */
    REQUIRE((v = build(sp, 4)) != NULL);
    /* 120000 over 400000 is 30 %: over the cap of 100000. */
    REQUIRE((c = compaction_pick(v, &big)) != NULL);
    CHECK(c->level == 5 && c->out_level == 6);
    CHECK(c->score > 1.1 && c->score < 1.3);
    compaction_release(c);
    lsm_view_unref(v);
    /* 20 %: within the cap, nothing to do. */
    sp[2].size = sp[3].size = 40000;
    REQUIRE((v = build(sp, 4)) != NULL);
    CHECK(compaction_pick(v, &big) == NULL);
    lsm_view_unref(v);
}

/* Idle: L0 first, then the levels above the deepest one table at a time,
 * until they hold less than a tenth of it; then nothing. */
static void test_compaction_pick_idle_repairs_the_shape(void)
{
    spec sp[] = {
        {0, 1, "a", "z", 5000, 0, 0, 0},
        {5, 2, "a", "f", 8000, 0, 0, 0},   {5, 3, "g", "p", 8000, 0, 0, 0},
        {6, 4, "a", "m", 50000, 0, 0, 0},  {6, 5, "n", "z", 50000, 0, 0, 0},
    };
    lsm_view *v = build(sp, 5);
    level_options o = opts;
    uint64_t id = 100;
    int steps = 0;
    compaction *c;

    o.base_level_size = 20000;  /* L5 within its target */
    REQUIRE(v != NULL);
    CHECK(compaction_pick(v, &o) == NULL);
    REQUIRE((c = compaction_pick_idle(v, &o)) != NULL);
    CHECK(c->level == 0 && c->out_level == 5);
    REQUIRE((v = fake_run(v, c, id++)) != NULL);
    while ((c = compaction_pick_idle(v, &o)) != NULL) {
        CHECK(c->level == 5 && c->out_level == 6);
        REQUIRE(steps++ < 10);
        REQUIRE((v = fake_run(v, c, id++)) != NULL);
    }
    CHECK(steps >= 1);
    CHECK(v->n[0] == 0);
    CHECK(lsm_view_level_bytes(v, 5) * 10 < lsm_view_level_bytes(v, 6));
    lsm_view_unref(v);

    /* A small L0 over a large last level: not worth a rewrite. */
    spec sp2[] = {{0, 1, "a", "z", 500, 0, 0, 0}, {6, 2, "a", "z", 100000, 0, 0, 0}};
    REQUIRE((v = build(sp2, 2)) != NULL);
    CHECK(compaction_pick_idle(v, &opts) == NULL);
    lsm_view_unref(v);
    /* Only L0: into the last level. */
    spec sp3[] = {{0, 1, "a", "z", 500, 0, 0, 0}};
    REQUIRE((v = build(sp3, 1)) != NULL);
    REQUIRE((c = compaction_pick_idle(v, &opts)) != NULL);
    CHECK(c->level == 0 && c->out_level == NL - 1);
    compaction_release(c);
    lsm_view_unref(v);
}

/* A table whose seeks ran out: L0 goes with all of L0, Li into the level
 * below; not the deepest level's, nor a table that is gone or busy. */
static void test_compaction_pick_seek(void)
{
    spec sp[] = {
        {0, 1, "a", "z", 500, 0, 0, 0},   {0, 2, "b", "c", 500, 0, 0, 0},
        {4, 3, "a", "f", 800, 0, 0, 0},   {4, 4, "g", "p", 800, 0, 0, 0},
        {6, 5, "a", "m", 50000, 0, 0, 0}, {6, 6, "n", "z", 50000, 0, 0, 0},
    };
    lsm_view *v = build(sp, 6);
    compaction *c;

    REQUIRE(v != NULL);
    REQUIRE((c = compaction_pick_seek(v, &opts, 0, 2)) != NULL);
    CHECK(c->level == 0 && c->out_level == 4 && c->n_inputs[0] == 2);
    compaction_release(c);
    REQUIRE((c = compaction_pick_seek(v, &opts, 4, 4)) != NULL);
    CHECK(c->level == 4 && c->out_level == 6);
    CHECK(c->n_inputs[0] == 1 && has_input(c, 0, 4));
    CHECK(has_input(c, 1, 5) && has_input(c, 1, 6));
    CHECK(compaction_pick_seek(v, &opts, 4, 4) == NULL);    /* now compacting */
    compaction_release(c);
    CHECK(compaction_pick_seek(v, &opts, 6, 5) == NULL);    /* deepest level */
    CHECK(compaction_pick_seek(v, &opts, 4, 99) == NULL);   /* gone */
    lsm_view_unref(v);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_compaction_pick_empty_db_sends_l0_to_last_level);
    TEST_RUN(test_compaction_pick_base_level_from_last_level_size);
    TEST_RUN(test_compaction_pick_base_level_never_below_nonempty);
    TEST_RUN(test_compaction_pick_level_overflow_goes_down_one);
    TEST_RUN(test_compaction_pick_skips_compacting_tables);
    TEST_RUN(test_compaction_pick_l0_blocked_by_busy_base_table);
    TEST_RUN(test_compaction_pick_l0_keeps_tombstones_over_deeper_data);
    TEST_RUN(test_compaction_pick_tombstone_heavy_tables);
    TEST_RUN(test_compaction_pick_manual_flatten_ends_in_one_level);
    TEST_RUN(test_compaction_pick_manual_step_count);
    TEST_RUN(test_compaction_pick_tables_kept_for_a_reader);
    TEST_RUN(test_compaction_pick_space_amp_caps_level_above_last);
    TEST_RUN(test_compaction_pick_idle_repairs_the_shape);
    TEST_RUN(test_compaction_pick_seek);
    return test_summary();
}
