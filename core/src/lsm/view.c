/*
 * view.c - table_meta and lsm_view refcounting, lsm_edits, and the
 * queries readers and compaction picking make on a view.
 *
 * Owns: table_meta lifetime (atomic refcount; the last unref calls on_free
 * and frees), version lifetime (a version holds one reference on every
 * table it lists), and lsm_view_apply, the only way to make a non-empty
 * version.
 *
 * Invariants of every version lsm_view_apply returns:
 *   - L0 is ordered newest source first: id descending. Every L0 table is
 *     a flush, and flushes happen in memtable order with growing ids. The
 *     order is by source, not by max_version, because an entry can be
 *     rewritten under its old version (value-log GC moves a value and keeps
 *     its version): the later copy of an internal key must win, and it
 *     lives in the later table. A lookup stops at the first L0 table that
 *     holds the key.
 *   - L1+ are sorted by smallest internal key (ikey_cmp) and their user-key
 *     ranges are disjoint: table i's largest user key < table i+1's
 *     smallest user key (one user key's versions never straddle tables).
 *   - no level lists a table id twice; every table's smallest <= largest.
 * Versions are immutable once returned; only refcounts change (atomics),
 * and table_meta.compacting, which the database mutex guards.
 */
#include "base/ikey.h"
#include "lsm/view.h"

#include <stdlib.h>
#include <string.h>

#include "base/status.h"

/* ---- table_meta ---- */

table_meta *table_meta_new(uint64_t id, uint64_t file_size, slice smallest, slice largest)
{
    table_meta *t;

    /* Keys are internal keys: shorter ones would break table_*_ukey. */
    if (smallest.len < IKEY_SUFFIX_LEN || largest.len < IKEY_SUFFIX_LEN)
        return NULL;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return NULL;
    if (buf_append(&t->smallest, smallest.data, smallest.len) != 0 ||
        buf_append(&t->largest, largest.data, largest.len) != 0) {
        buf_free(&t->smallest);
        buf_free(&t->largest);
        free(t);
        return NULL;
    }
    t->id = id;
    t->file_size = file_size;
    atomic_init(&t->refs, 1);
    atomic_init(&t->seeks_left, (long)(file_size / TABLE_SEEK_BYTES < TABLE_SEEK_MIN
                                           ? TABLE_SEEK_MIN
                                           : file_size / TABLE_SEEK_BYTES));
    return t;
}

int table_meta_charge_seek(table_meta *t)
{
    return atomic_fetch_sub_explicit(&t->seeks_left, 1, memory_order_relaxed) == 1;
}

void table_meta_ref(table_meta *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void table_meta_unref(table_meta *t)
{
    if (t == NULL)
        return;
    /* acq_rel: the thread that frees sees every write made before the
     * other threads dropped their references. */
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (t->on_free)
        t->on_free(t->on_free_arg, t);
    buf_free(&t->smallest);
    buf_free(&t->largest);
    free(t);
}

/* ---- version ---- */

lsm_view *lsm_view_new_empty(int num_levels)
{
    lsm_view *v;

    if (num_levels < 1 || num_levels > MAX_LEVELS)
        return NULL;
    if ((v = calloc(1, sizeof(*v))) == NULL)
        return NULL;
    atomic_init(&v->refs, 1);
    v->num_levels = num_levels;
    return v;
}

void lsm_view_ref(lsm_view *v)
{
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
}

void lsm_view_unref(lsm_view *v)
{
    if (v == NULL)
        return;
    if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int l = 0; l < MAX_LEVELS; l++) {
        for (size_t i = 0; i < v->n[l]; i++)
            table_meta_unref(v->tables[l][i]);
        free(v->tables[l]);
    }
    free(v);
}

/* ---- lsm_edit ---- */

void lsm_edit_init(lsm_edit *e)
{
    memset(e, 0, sizeof(*e));
}

/* Grows *arr (of elements of size sz) to hold one more than *n. */
static int edit_grow(void **arr, size_t *cap, size_t n, size_t sz)
{
    size_t ncap;
    void *p;

    if (n < *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 8;
    if ((p = realloc(*arr, ncap * sz)) == NULL)
        return STOAT_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

int lsm_edit_add(lsm_edit *e, int level, table_meta *t)
{
    int rc;

    if (level < 0 || level >= MAX_LEVELS || t == NULL)
        return status_err(STOAT_EINVAL, "lsm_edit_add: bad level %d or table", level);
    if ((rc = edit_grow((void **)&e->adds, &e->cap_adds, e->n_adds, sizeof(*e->adds))) != 0)
        return status_err(rc, "lsm_edit_add: out of memory");
    table_meta_ref(t);
    e->adds[e->n_adds].level = level;
    e->adds[e->n_adds].t = t;
    e->n_adds++;
    return 0;
}

int lsm_edit_del(lsm_edit *e, int level, uint64_t id)
{
    int rc;

    if (level < 0 || level >= MAX_LEVELS)
        return status_err(STOAT_EINVAL, "lsm_edit_del: bad level %d", level);
    if ((rc = edit_grow((void **)&e->dels, &e->cap_dels, e->n_dels, sizeof(*e->dels))) != 0)
        return status_err(rc, "lsm_edit_del: out of memory");
    e->dels[e->n_dels].level = level;
    e->dels[e->n_dels].id = id;
    e->n_dels++;
    return 0;
}

void lsm_edit_free(lsm_edit *e)
{
    for (size_t i = 0; i < e->n_adds; i++)
        table_meta_unref(e->adds[i].t);
    free(e->adds);
    free(e->dels);
    lsm_edit_init(e);
}

/* ---- lsm_view_apply ---- */

static int cmp_l0(const void *a, const void *b)
{
    const table_meta *x = *(table_meta *const *)a, *y = *(table_meta *const *)b;

    return x->id > y->id ? -1 : x->id < y->id ? 1 : 0;
}

static int cmp_sorted(const void *a, const void *b)
{
    const table_meta *x = *(table_meta *const *)a, *y = *(table_meta *const *)b;
    int c = ikey_cmp(slice_make(x->smallest.data, x->smallest.len),
                     slice_make(y->smallest.data, y->smallest.len));

    if (c != 0)
        return c;
    return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

/* Checks the invariants of one freshly sorted level (see the top). */
static int level_check(int level, table_meta **t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ikey_cmp(slice_make(t[i]->smallest.data, t[i]->smallest.len),
                     slice_make(t[i]->largest.data, t[i]->largest.len)) > 0)
            return status_err(STOAT_ECORRUPT, "version: table %llu in L%d has smallest > largest",
                              (unsigned long long)t[i]->id, level);
    }
    if (level == 0) {
        /* L0 is short (flushes wait when it is long): quadratic is fine. */
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (t[i]->id == t[j]->id)
                    return status_err(STOAT_ECORRUPT, "version: table %llu twice in L0",
                                      (unsigned long long)t[i]->id);
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if (slice_cmp(table_largest_ukey(t[i - 1]), table_smallest_ukey(t[i])) >= 0)
            return status_err(STOAT_ECORRUPT, "version: tables %llu and %llu overlap in L%d",
                              (unsigned long long)t[i - 1]->id, (unsigned long long)t[i]->id,
                              level);
    }
    return 0;
}

/* Marks in `gone` (one flag per base table) the tables e deletes at level.
 * A deletion of an absent or already deleted table is corruption. */
static int level_mark_dels(const lsm_edit *e, int level, table_meta *const *base,
                           size_t base_n, char *gone, size_t *n_gone)
{
    for (size_t d = 0; d < e->n_dels; d++) {
        size_t i;

        if (e->dels[d].level != level)
            continue;
        for (i = 0; i < base_n && base[i]->id != e->dels[d].id; i++)
            ;
        if (i == base_n || gone[i])
            return status_err(STOAT_ECORRUPT, "version: edit deletes table %llu, not in L%d",
                              (unsigned long long)e->dels[d].id, level);
        gone[i] = 1;
        (*n_gone)++;
    }
    return 0;
}

/* Builds level `level` of the new version: base minus deletions plus
 * additions, sorted and checked. On success takes a reference on every
 * table of *out. */
static int level_build(const lsm_view *base, int level, const lsm_edit *e,
                       table_meta ***out, size_t *n_out)
{
    table_meta *const *bt = NULL;
    table_meta **t = NULL;
    size_t base_n = 0, n_gone = 0, n_add = 0, n = 0;
    char *gone = NULL;
    int rc;

    *out = NULL;
    *n_out = 0;
    if (base != NULL && level < base->num_levels) {
        bt = base->tables[level];
        base_n = base->n[level];
    }
    for (size_t a = 0; a < e->n_adds; a++)
        n_add += e->adds[a].level == level;
    if (base_n + n_add == 0)
        return level_mark_dels(e, level, NULL, 0, NULL, &n_gone);
    rc = STOAT_ENOMEM;
    if (base_n && (gone = calloc(base_n, 1)) == NULL)
        goto fail;
    if ((t = malloc((base_n + n_add) * sizeof(*t))) == NULL)
        goto fail;
    if ((rc = level_mark_dels(e, level, bt, base_n, gone, &n_gone)) != 0)
        goto fail;
    for (size_t i = 0; i < base_n; i++)
        if (!gone[i])
            t[n++] = bt[i];
    for (size_t a = 0; a < e->n_adds; a++)
        if (e->adds[a].level == level)
            t[n++] = e->adds[a].t;
    qsort(t, n, sizeof(*t), level == 0 ? cmp_l0 : cmp_sorted);
    if ((rc = level_check(level, t, n)) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        table_meta_ref(t[i]);
    free(gone);
    if (n == 0) {
        free(t);
        t = NULL;
    }
    *out = t;
    *n_out = n;
    return 0;
fail:
    if (rc == STOAT_ENOMEM)
        status_err(rc, "lsm_view_apply: out of memory");
    free(gone);
    free(t);
    return rc;
}

/* Rejects edits naming levels the new version does not have, and bases
 * whose tables would fall off the end of a smaller num_levels. */
static int apply_check_levels(const lsm_view *base, int num_levels, const lsm_edit *e)
{
    /* lsm_edit_add/del keep levels below MAX_LEVELS; beyond
     * num_levels is a database opened with fewer levels than it has. */
    for (size_t a = 0; a < e->n_adds; a++)
        if (e->adds[a].level < 0 || e->adds[a].level >= num_levels)
            return status_err(STOAT_EINVAL, "version: table %llu is in L%d but num_levels is %d",
                              (unsigned long long)e->adds[a].t->id, e->adds[a].level, num_levels);
    for (size_t d = 0; d < e->n_dels; d++)
        if (e->dels[d].level < 0 || e->dels[d].level >= num_levels)
            return status_err(STOAT_EINVAL, "version: table %llu is in L%d but num_levels is %d",
                              (unsigned long long)e->dels[d].id, e->dels[d].level, num_levels);
    for (int l = num_levels; base != NULL && l < base->num_levels; l++)
        if (base->n[l] != 0)
            return status_err(STOAT_EINVAL, "version: L%d holds tables but num_levels is %d", l,
                              num_levels);
    return 0;
}

int lsm_view_apply(const lsm_view *base, int num_levels, const lsm_edit *e, lsm_view **out)
{
    lsm_view *v = NULL;
    int rc;

    *out = NULL;
    if (num_levels < 1 || num_levels > MAX_LEVELS)
        return status_err(STOAT_EINVAL, "lsm_view_apply: bad num_levels %d", num_levels);
    if ((rc = apply_check_levels(base, num_levels, e)) != 0)
        return rc;
    if ((v = lsm_view_new_empty(num_levels)) == NULL)
        return status_err(STOAT_ENOMEM, "lsm_view_apply: out of memory");
    for (int l = 0; l < num_levels; l++)
        if ((rc = level_build(base, l, e, &v->tables[l], &v->n[l])) != 0)
            goto fail;
    *out = v;
    return 0;
fail:
    lsm_view_unref(v);
    return rc;
}

/* ---- queries ---- */

uint64_t lsm_view_level_bytes(const lsm_view *v, int level)
{
    uint64_t sum = 0;

    if (level < 0 || level >= v->num_levels)
        return 0;
    for (size_t i = 0; i < v->n[level]; i++)
        sum += v->tables[level][i]->file_size;
    return sum;
}

/* First index of a sorted level (L1+) whose largest user key >= ukey
 * (n when none). */
static size_t level_lower_bound(const lsm_view *v, int level, slice ukey)
{
    size_t lo = 0, hi = v->n[level];

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (slice_cmp(table_largest_ukey(v->tables[level][mid]), ukey) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

long lsm_view_find_table(const lsm_view *v, int level, slice ukey)
{
    size_t i;

    if (level < 1 || level >= v->num_levels)
        return -1;
    i = level_lower_bound(v, level, ukey);
    if (i == v->n[level] || slice_cmp(table_smallest_ukey(v->tables[level][i]), ukey) > 0)
        return -1;
    return (long)i;
}

/* 1 if t's user-key range meets [lo, hi] (NULL data = unbounded). */
static int table_overlaps(const table_meta *t, slice lo, slice hi)
{
    if (lo.data != NULL && slice_cmp(table_largest_ukey(t), lo) < 0)
        return 0;
    if (hi.data != NULL && slice_cmp(table_smallest_ukey(t), hi) > 0)
        return 0;
    return 1;
}

/* The span [*first, *end) of tables of `level` overlapping [lo, hi]; for
 * L0 the whole level (callers filter). */
static void level_span(const lsm_view *v, int level, slice lo, slice hi, size_t *first,
                       size_t *end)
{
    size_t i = 0, n = v->n[level];

    if (level > 0 && lo.data != NULL)
        i = level_lower_bound(v, level, lo);
    *first = i;
    if (level > 0 && hi.data != NULL)
        while (i < n && slice_cmp(table_smallest_ukey(v->tables[level][i]), hi) <= 0)
            i++;
    else
        i = n;
    *end = i;
}

int lsm_view_overlapping(const lsm_view *v, int level, slice lo, slice hi, table_meta ***out,
                        size_t *n)
{
    size_t first, end, k = 0;
    table_meta **t;

    *out = NULL;
    *n = 0;
    if (level < 0 || level >= v->num_levels)
        return 0;
    level_span(v, level, lo, hi, &first, &end);
    if (first == end)
        return 0;
    if ((t = malloc((end - first) * sizeof(*t))) == NULL)
        return status_err(STOAT_ENOMEM, "lsm_view_overlapping: out of memory");
    for (size_t i = first; i < end; i++)
        if (table_overlaps(v->tables[level][i], lo, hi))
            t[k++] = v->tables[level][i];
    if (k == 0) {
        free(t);
        return 0;
    }
    *out = t;
    *n = k;
    return 0;
}

int lsm_view_overlaps_below(const lsm_view *v, int level, slice lo, slice hi)
{
    for (int l = level + 1; l < v->num_levels; l++) {
        size_t first, end;

        level_span(v, l, lo, hi, &first, &end);
        for (size_t i = first; i < end; i++)
            if (table_overlaps(v->tables[l][i], lo, hi))
                return 1;
    }
    return 0;
}
