/*
 * vec_iter.h - a test-only internal iterator over a sorted array of
 * (internal key, value) pairs.
 *
 * The entries array and the bytes its slices point to are borrowed: the
 * caller keeps them alive and unchanged until the iterator is freed. They
 * must be sorted by ikey_cmp (vec_entries_sort does that); equal keys are
 * allowed and keep their array order. To test error paths, vec_iter_fail_at
 * makes the iterator stop with an error code the moment it lands on a given
 * index, as a damaged block would. With vec_iter_lend_copies, key and value
 * are lent from scratch buffers that every move overwrites (as a block
 * iterator rebuilds its key), so a caller that keeps a borrowed entry past
 * a move reads garbage. Header-only; one thread at a time.
 */
#ifndef STOAT_TEST_VEC_ITER_H
#define STOAT_TEST_VEC_ITER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/ikey.h"
#include "base/iter.h"

typedef struct vec_entry {
    slice key;      /* internal key */
    slice value;    /* encoded vstruct (or any bytes) */
} vec_entry;

typedef struct vec_iter {
    iter base;
    const vec_entry *e;
    size_t n;
    size_t pos;         /* n = not positioned */
    size_t fail_at;     /* SIZE_MAX = never */
    int fail_rc;
    int status;
    int copies;         /* lend key and value from kbuf/vbuf */
    char kbuf[256], vbuf[256];
} vec_iter;

static inline int vec_entry_cmp(const void *a, const void *b)
{
    const vec_entry *x = a, *y = b;
    return ikey_cmp(x->key, y->key);
}

/* qsort is not stable: entries with equal keys may come out in any order. */
static inline void vec_entries_sort(vec_entry *e, size_t n)
{
    if (n > 1)
        qsort(e, n, sizeof(*e), vec_entry_cmp);
}

/* Lands on pos (n = off the end), turning into the injected error if asked. */
static inline void vec_iter_land(vec_iter *v, size_t pos)
{
    v->pos = pos;
    if (pos < v->n && pos == v->fail_at) {
        v->status = v->fail_rc;
        v->pos = v->n;
    }
    if (v->copies) {
        memset(v->kbuf, 0x5a, sizeof(v->kbuf));
        memset(v->vbuf, 0xa5, sizeof(v->vbuf));
        if (v->pos < v->n) {
            memcpy(v->kbuf, v->e[v->pos].key.data, v->e[v->pos].key.len);
            memcpy(v->vbuf, v->e[v->pos].value.data, v->e[v->pos].value.len);
        }
    }
}

static inline int vec_iter_valid(const iter *it)
{
    const vec_iter *v = (const vec_iter *)it;
    return v->status == 0 && v->pos < v->n;
}

static inline void vec_iter_seek_first(iter *it)
{
    vec_iter_land((vec_iter *)it, 0);
}

static inline void vec_iter_seek_last(iter *it)
{
    vec_iter *v = (vec_iter *)it;
    vec_iter_land(v, v->n ? v->n - 1 : v->n);
}

/* Index of the first entry >= target (n if none). */
static inline size_t vec_iter_lower_bound(const vec_iter *v, slice target)
{
    size_t lo = 0, hi = v->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ikey_cmp(v->e[mid].key, target) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static inline void vec_iter_seek(iter *it, slice target)
{
    vec_iter *v = (vec_iter *)it;
    vec_iter_land(v, vec_iter_lower_bound(v, target));
}

static inline void vec_iter_seek_for_prev(iter *it, slice target)
{
    vec_iter *v = (vec_iter *)it;
    size_t i = vec_iter_lower_bound(v, target);

    while (i < v->n && ikey_cmp(v->e[i].key, target) == 0)
        i++;
    vec_iter_land(v, i ? i - 1 : v->n);
}

static inline void vec_iter_next(iter *it)
{
    vec_iter *v = (vec_iter *)it;
    vec_iter_land(v, v->pos + 1);
}

static inline void vec_iter_prev(iter *it)
{
    vec_iter *v = (vec_iter *)it;
    vec_iter_land(v, v->pos ? v->pos - 1 : v->n);
}

static inline slice vec_iter_key(const iter *it)
{
    const vec_iter *v = (const vec_iter *)it;
    return v->copies ? slice_make(v->kbuf, v->e[v->pos].key.len) : v->e[v->pos].key;
}

static inline slice vec_iter_value(const iter *it)
{
    const vec_iter *v = (const vec_iter *)it;
    return v->copies ? slice_make(v->vbuf, v->e[v->pos].value.len) : v->e[v->pos].value;
}

static inline int vec_iter_status(const iter *it)
{
    return ((const vec_iter *)it)->status;
}

static inline void vec_iter_free(iter *it)
{
    free(it);
}

/* A new iterator over e[0..n), not positioned; NULL on ENOMEM. */
static inline iter *vec_iter_new(const vec_entry *e, size_t n)
{
    static const struct iter_ops ops = {
        vec_iter_valid, vec_iter_seek_first, vec_iter_seek_last, vec_iter_seek,
        vec_iter_seek_for_prev, vec_iter_next, vec_iter_prev, vec_iter_key,
        vec_iter_value, vec_iter_status, vec_iter_free,
    };
    vec_iter *v = calloc(1, sizeof(*v));

    if (v == NULL)
        return NULL;
    v->base.ops = &ops;
    v->e = e;
    v->n = n;
    v->pos = n;
    v->fail_at = SIZE_MAX;
    return &v->base;
}

/* From now on, landing on index pos turns the iterator invalid with rc. */
static inline void vec_iter_fail_at(iter *it, size_t pos, int rc)
{
    vec_iter *v = (vec_iter *)it;
    v->fail_at = pos;
    v->fail_rc = rc;
}

/* From now on, key and value are lent from buffers each move overwrites
 * (entries of at most 256 bytes each). */
static inline void vec_iter_lend_copies(iter *it)
{
    vec_iter *v = (vec_iter *)it;
    for (size_t i = 0; i < v->n; i++)
        if (v->e[i].key.len > sizeof(v->kbuf) || v->e[i].value.len > sizeof(v->vbuf))
            return;
    v->copies = 1;
}

#endif
