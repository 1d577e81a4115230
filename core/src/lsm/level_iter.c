/*
 * level_iter.c - one iterator over a sorted run of non-overlapping tables.
 *
 * Holds at most one table open: cur is an iterator over tables[idx],
 * obtained through the table cache when the iteration reaches that table
 * and freed (dropping the reader reference it holds) when it moves to
 * another table or runs off either end. The tables array is borrowed.
 *
 * Invariants: cur == NULL iff idx == n; whenever the level iterator is
 * valid, cur is valid. A table that yields nothing (empty, or nothing on
 * the side of the target asked for) is stepped over to its neighbour.
 * Seeks pick the table by binary search on the tables' largest keys, so
 * only the table that can hold the target is opened.
 *
 * Errors: a table that cannot be opened, or a table iterator that stops
 * with a status, stops the level iterator with that code; the next seek
 * starts afresh. One thread at a time.
 */
#include "base/ikey.h"
#include "lsm/level_iter.h"
#include "base/perturb.h"

#include <stdlib.h>

#include "base/status.h"

typedef struct level_iter {
    iter base;
    table_meta *const *tables;
    size_t n;
    table_cache *tc;
    size_t idx;         /* table cur iterates; n when none */
    iter *cur;
    int status;
    int fill_cache;
} level_iter;

static void level_close(level_iter *li)
{
    iter_free(li->cur);
    li->cur = NULL;
    li->idx = li->n;
}

static void level_fail(level_iter *li, int rc)
{
    level_close(li);
    if (li->status == 0)
        li->status = rc;
}

/* Makes cur an iterator over table i (not positioned); 0 or an error. */
static int level_open(level_iter *li, size_t i)
{
    sst_reader *r;
    int rc;

    if (li->idx == i && li->cur != NULL)
        return 0;
    level_close(li);
    PERTURB("level_iter_switch");
    if ((rc = table_cache_get(li->tc, li->tables[i]->id, &r)) != 0) {
        level_fail(li, rc);
        return rc;
    }
    li->cur = sst_reader_iter_opt(r, li->fill_cache);
    sst_reader_unref(r);
    if (li->cur == NULL) {
        rc = status_err(STOAT_ENOMEM, "level_iter: out of memory for table %llu",
                        (unsigned long long)li->tables[i]->id);
        level_fail(li, rc);
        return rc;
    }
    li->idx = i;
    return 0;
}

/* 1: cur is valid; 0: cur ran off its table; -1: cur failed (the error is
 * recorded and cur closed). */
static int level_cur_state(level_iter *li)
{
    int rc;

    if (iter_valid(li->cur))
        return 1;
    if ((rc = iter_status(li->cur)) != 0) {
        level_fail(li, rc);
        return -1;
    }
    return 0;
}

/* While cur has nothing left, moves to the start of the next table. */
static void level_skip_forward(level_iter *li)
{
    while (li->cur != NULL && level_cur_state(li) == 0) {
        if (li->idx + 1 >= li->n) {
            level_close(li);
            return;
        }
        if (level_open(li, li->idx + 1) != 0)
            return;
        iter_seek_first(li->cur);
    }
}

/* While cur has nothing left, moves to the end of the previous table. */
static void level_skip_backward(level_iter *li)
{
    while (li->cur != NULL && level_cur_state(li) == 0) {
        if (li->idx == 0) {
            level_close(li);
            return;
        }
        if (level_open(li, li->idx - 1) != 0)
            return;
        iter_seek_last(li->cur);
    }
}

/* Index of the first table whose largest key is >= target (n if none). */
static size_t level_find(const level_iter *li, slice target)
{
    size_t lo = 0, hi = li->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const buf *l = &li->tables[mid]->largest;
        if (ikey_cmp(slice_make(l->data, l->len), target) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Every seek starts afresh, forgetting an earlier error. */
static void level_reset(level_iter *li)
{
    li->status = 0;
}

static int level_valid(const iter *it)
{
    const level_iter *li = (const level_iter *)it;
    return li->status == 0 && li->cur != NULL && iter_valid(li->cur);
}

static void level_seek_first(iter *it)
{
    level_iter *li = (level_iter *)it;

    level_reset(li);
    if (li->n == 0 || level_open(li, 0) != 0)
        return;
    iter_seek_first(li->cur);
    level_skip_forward(li);
}

static void level_seek_last(iter *it)
{
    level_iter *li = (level_iter *)it;

    level_reset(li);
    if (li->n == 0 || level_open(li, li->n - 1) != 0)
        return;
    iter_seek_last(li->cur);
    level_skip_backward(li);
}

static void level_seek(iter *it, slice target)
{
    level_iter *li = (level_iter *)it;
    size_t i = level_find(li, target);

    level_reset(li);
    if (i == li->n) {
        level_close(li);
        return;
    }
    if (level_open(li, i) != 0)
        return;
    iter_seek(li->cur, target);
    level_skip_forward(li);
}

/*
 * The first table whose largest key is >= target is the only one that
 * may hold both sides of it; when even its smallest key is above target,
 * the answer is the last entry of the table before.
 */
static void level_seek_for_prev(iter *it, slice target)
{
    level_iter *li = (level_iter *)it;
    size_t i = level_find(li, target);
    const buf *s;

    level_reset(li);
    if (li->n == 0)
        return;
    if (i == li->n) {
        i = li->n - 1;
    } else {
        s = &li->tables[i]->smallest;
        if (ikey_cmp(slice_make(s->data, s->len), target) > 0) {
            if (i == 0) {
                level_close(li);
                return;
            }
            if (level_open(li, i - 1) != 0)
                return;
            iter_seek_last(li->cur);
            level_skip_backward(li);
            return;
        }
    }
    if (level_open(li, i) != 0)
        return;
    iter_seek_for_prev(li->cur, target);
    level_skip_backward(li);
}

static void level_next(iter *it)
{
    level_iter *li = (level_iter *)it;

    if (!level_valid(it))
        return;
    iter_next(li->cur);
    level_skip_forward(li);
}

static void level_prev(iter *it)
{
    level_iter *li = (level_iter *)it;

    if (!level_valid(it))
        return;
    iter_prev(li->cur);
    level_skip_backward(li);
}

static slice level_key(const iter *it)
{
    return iter_key(((const level_iter *)it)->cur);
}

static slice level_value(const iter *it)
{
    return iter_value(((const level_iter *)it)->cur);
}

static int level_status(const iter *it)
{
    return ((const level_iter *)it)->status;
}

static void level_free(iter *it)
{
    level_iter *li = (level_iter *)it;

    level_close(li);
    free(li);
}

static const struct iter_ops level_ops = {
    level_valid, level_seek_first, level_seek_last, level_seek, level_seek_for_prev,
    level_next, level_prev, level_key, level_value, level_status, level_free,
};

iter *level_iter_new(table_meta *const *tables, size_t n, table_cache *tc)
{
    return level_iter_new_opt(tables, n, tc, 1);
}

iter *level_iter_new_opt(table_meta *const *tables, size_t n, table_cache *tc, int fill_cache)
{
    level_iter *li = calloc(1, sizeof(*li));

    if (li == NULL) {
        status_err(STOAT_ENOMEM, "level_iter: out of memory");
        return NULL;
    }
    li->base.ops = &level_ops;
    li->fill_cache = fill_cache;
    li->tables = tables;
    li->n = n;
    li->tc = tc;
    li->idx = n;
    return &li->base;
}
