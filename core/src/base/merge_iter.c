/*
 * merge_iter.c - a heap-based merge of sorted internal iterators.
 *
 * Order: the merge yields every entry of every child, in the total order
 * of (internal key, child index). Moving forward, entries with equal keys
 * therefore come out lower index (newer source) first; moving backward the
 * order is exactly reversed, so equal keys come out higher index (older
 * source) first. A reader that wants the newest source's copy of a
 * duplicate key takes the first one forward and the last one backward.
 *
 * Invariants: in direction FWD every valid child is positioned at its
 * smallest entry not yet yielded and heap[] is a min-heap of the valid
 * children under that order; in BWD the same with "largest" and a
 * max-heap. The current entry is the heap top's, borrowed from that child
 * (zero copy). keys[i] caches children[i]'s key while it is valid, so the
 * heap never calls through the vtable to compare. Switching direction
 * repositions every other child around the current key (as LevelDB's
 * MergingIterator does).
 *
 * Errors: the first child that stops with a status stops the merge:
 * valid() becomes 0 and status() returns that code until the next seek.
 * One thread at a time, like every iterator.
 */
#include "base/merge_iter.h"

#include <stdlib.h>

#include "base/ikey.h"
#include "base/status.h"

enum { MERGE_FWD, MERGE_BWD };

typedef struct merge_iter {
    iter base;
    iter **children;
    slice *keys;        /* keys[i] valid while children[i] is */
    size_t *heap;       /* child indices */
    size_t n;
    size_t heap_n;
    int dir;
    int status;
} merge_iter;

/* merge_iter_new places the three arrays right after the struct. */
_Static_assert(sizeof(merge_iter) % _Alignof(iter *) == 0 &&
               sizeof(iter *) % _Alignof(slice) == 0 && sizeof(slice) % _Alignof(size_t) == 0,
               "merge arrays stay aligned after the struct");

/* 1 when child a's entry comes out before child b's in the direction. */
static inline int merge_before(const merge_iter *m, size_t a, size_t b)
{
    int c = ikey_cmp(m->keys[a], m->keys[b]);

    if (c == 0)
        c = a < b ? -1 : 1;
    return m->dir == MERGE_FWD ? c < 0 : c > 0;
}

static void merge_sift_down(merge_iter *m, size_t i)
{
    size_t *h = m->heap;

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i, tmp;
        if (l < m->heap_n && merge_before(m, h[l], h[best]))
            best = l;
        if (r < m->heap_n && merge_before(m, h[r], h[best]))
            best = r;
        if (best == i)
            return;
        tmp = h[i];
        h[i] = h[best];
        h[best] = tmp;
        i = best;
    }
}

/* Notes child i's new position: caches its key, or records its error. */
static int merge_note(merge_iter *m, size_t i)
{
    iter *c = m->children[i];
    int rc;

    if (iter_valid(c)) {
        m->keys[i] = iter_key(c);
        return 1;
    }
    if ((rc = iter_status(c)) != 0 && m->status == 0)
        m->status = rc;
    return 0;
}

/* Rebuilds the heap from every child's current position. */
static void merge_rebuild(merge_iter *m, int dir)
{
    m->dir = dir;
    m->heap_n = 0;
    for (size_t i = 0; i < m->n; i++)
        if (merge_note(m, i))
            m->heap[m->heap_n++] = i;
    for (size_t i = m->heap_n / 2; i-- > 0;)
        merge_sift_down(m, i);
}

/* After the top child moved: restores the heap, dropping it if exhausted. */
static void merge_fix_top(merge_iter *m)
{
    if (!merge_note(m, m->heap[0]))
        m->heap[0] = m->heap[--m->heap_n];
    if (m->heap_n > 0)
        merge_sift_down(m, 0);
}

static int merge_valid(const iter *it)
{
    const merge_iter *m = (const merge_iter *)it;
    return m->status == 0 && m->heap_n > 0;
}

static void merge_seek_first(iter *it)
{
    merge_iter *m = (merge_iter *)it;

    m->status = 0;
    for (size_t i = 0; i < m->n; i++)
        iter_seek_first(m->children[i]);
    merge_rebuild(m, MERGE_FWD);
}

static void merge_seek_last(iter *it)
{
    merge_iter *m = (merge_iter *)it;

    m->status = 0;
    for (size_t i = 0; i < m->n; i++)
        iter_seek_last(m->children[i]);
    merge_rebuild(m, MERGE_BWD);
}

static void merge_seek(iter *it, slice target)
{
    merge_iter *m = (merge_iter *)it;

    m->status = 0;
    for (size_t i = 0; i < m->n; i++)
        iter_seek(m->children[i], target);
    merge_rebuild(m, MERGE_FWD);
}

static void merge_seek_for_prev(iter *it, slice target)
{
    merge_iter *m = (merge_iter *)it;

    m->status = 0;
    for (size_t i = 0; i < m->n; i++)
        iter_seek_for_prev(m->children[i], target);
    merge_rebuild(m, MERGE_BWD);
}

/*
 * Turns a backward merge forward around the current entry (child cur, key
 * k): every other child moves to its first entry after (k, cur) in merge
 * order, i.e. > k for lower indices and >= k for higher ones. k stays
 * valid because child cur does not move.
 */
static void merge_turn_forward(merge_iter *m)
{
    size_t cur = m->heap[0];
    slice k = m->keys[cur];

    for (size_t i = 0; i < m->n; i++) {
        iter *c = m->children[i];
        if (i == cur)
            continue;
        iter_seek(c, k);
        while (i < cur && iter_valid(c) && ikey_cmp(iter_key(c), k) == 0)
            iter_next(c);
    }
    merge_rebuild(m, MERGE_FWD);
}

/* The mirror image: every other child moves to its last entry before
 * (k, cur), i.e. < k for higher indices and <= k for lower ones. */
static void merge_turn_backward(merge_iter *m)
{
    size_t cur = m->heap[0];
    slice k = m->keys[cur];

    for (size_t i = 0; i < m->n; i++) {
        iter *c = m->children[i];
        if (i == cur)
            continue;
        iter_seek_for_prev(c, k);
        while (i > cur && iter_valid(c) && ikey_cmp(iter_key(c), k) == 0)
            iter_prev(c);
    }
    merge_rebuild(m, MERGE_BWD);
}

static void merge_next(iter *it)
{
    merge_iter *m = (merge_iter *)it;

    if (!merge_valid(it))
        return;
    if (m->dir != MERGE_FWD) {
        merge_turn_forward(m);
        if (m->status != 0)
            return;
    }
    iter_next(m->children[m->heap[0]]);
    merge_fix_top(m);
}

static void merge_prev(iter *it)
{
    merge_iter *m = (merge_iter *)it;

    if (!merge_valid(it))
        return;
    if (m->dir != MERGE_BWD) {
        merge_turn_backward(m);
        if (m->status != 0)
            return;
    }
    iter_prev(m->children[m->heap[0]]);
    merge_fix_top(m);
}

static slice merge_key(const iter *it)
{
    const merge_iter *m = (const merge_iter *)it;
    return m->keys[m->heap[0]];
}

static slice merge_value(const iter *it)
{
    const merge_iter *m = (const merge_iter *)it;
    return iter_value(m->children[m->heap[0]]);
}

static int merge_status(const iter *it)
{
    return ((const merge_iter *)it)->status;
}

static void merge_free(iter *it)
{
    merge_iter *m = (merge_iter *)it;

    for (size_t i = 0; i < m->n; i++)
        iter_free(m->children[i]);
    free(m);
}

static const struct iter_ops merge_ops = {
    merge_valid, merge_seek_first, merge_seek_last, merge_seek, merge_seek_for_prev,
    merge_next, merge_prev, merge_key, merge_value, merge_status, merge_free,
};

/*
 * A single child is returned as it is: it already is its own merge. With
 * no children the merge is simply always invalid. The merge and its
 * three arrays are one allocation (an iterator is often opened for a
 * single seek).
 */
iter *merge_iter_new(iter **children, size_t n)
{
    merge_iter *m;
    size_t alloc_n = n ? n : 1;
    char *p;

    if (n == 1)
        return children[0];
    /* children, keys and heap follow the struct, each aligned (asserted
     * below the struct). */
    m = calloc(1, sizeof(*m) + alloc_n * (sizeof(*m->children) + sizeof(*m->keys) +
                                          sizeof(*m->heap)));
    if (m == NULL) {
        for (size_t i = 0; i < n; i++)
            iter_free(children[i]);
        status_err(STOAT_ENOMEM, "merge_iter: out of memory for %zu children", n);
        return NULL;
    }
    p = (char *)(m + 1);
    m->base.ops = &merge_ops;
    m->children = (iter **)p;
    m->keys = (slice *)(p + alloc_n * sizeof(*m->children));
    m->heap = (size_t *)(p + alloc_n * (sizeof(*m->children) + sizeof(*m->keys)));
    for (size_t i = 0; i < n; i++)
        m->children[i] = children[i];
    m->n = n;
    m->dir = MERGE_FWD;
    return &m->base;
}
