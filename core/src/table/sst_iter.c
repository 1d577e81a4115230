/*
 * sst_iter.c - the table iterator (sst_reader_iter): a two-level
 * iterator over one SSTable. A position in the index array picks the
 * data block, a block_iter walks it; the iterator pins its current block
 * and drops the pin when it runs off either end, and prefetches the
 * memory of the next block in its direction from where that block was
 * last seen in the cache (sst_block_hint). Its first error is sticky:
 * later moves do nothing, valid() is 0 and status() returns it. One
 * iterator is one thread's; many may share the reader (sst_reader.c).
 */
#include <stdlib.h>

#include "table/sst_reader_int.h"
#include "base/ikey.h"
#include "base/perturb.h"
#include "base/status.h"

typedef struct sst_iter {
    iter base;
    sst_reader *r;
    size_t bi;          /* index entry of the current block; r->index.n: none */
    block_iter data;
    block blk;          /* the current data block, pinned by pin, while bi < n */
    sst_pin pin;
    int status;
    int fill_cache;     /* blocks read go into the block cache */
} sst_iter;

static void sst_iter_drop_block(sst_iter *it)
{
    sst_reader_unpin(it->r, &it->pin);
    it->bi = it->r->index.n;
}

static void sst_iter_fail(sst_iter *it, int rc)
{
    it->status = rc;
    sst_iter_drop_block(it);
}

/* Aims the data iterator (unpositioned) at block i and prefetches the
 * block after it in the direction of travel; -1 after a failure. */
static int sst_iter_load_block(sst_iter *it, size_t i, int forward)
{
    int rc;

    if (it->bi != i) {
        sst_iter_drop_block(it);
        PERTURB("sst_iter_switch");
        if ((rc = sst_reader_pin(it->r, i, &it->pin, &it->blk, it->fill_cache)) != 0) {
            sst_iter_fail(it, rc);
            return -1;
        }
        it->bi = i;
        sst_reader_prefetch(it->r, forward ? i + 1 : i - 1, forward); /* 0 - 1 wraps: ignored */
    }
    block_iter_set(&it->data, &it->blk);
    return 0;
}

/* The data iterator ran off its block: fails on its error, else 0. */
static int sst_iter_block_done(sst_iter *it)
{
    if (block_iter_status(&it->data) != 0) {
        sst_iter_fail(it, block_iter_status(&it->data));
        return -1;
    }
    return 0;
}

static void sst_iter_skip_forward(sst_iter *it)
{
    size_t n = it->r->index.n;

    while (it->status == 0 && it->bi < n && !block_iter_valid(&it->data)) {
        if (sst_iter_block_done(it) != 0)
            return;
        if (it->bi + 1 == n) {
            sst_iter_drop_block(it);
            return;
        }
        if (sst_iter_load_block(it, it->bi + 1, 1) != 0)
            return;
        block_iter_seek_first(&it->data);
    }
}

static void sst_iter_skip_backward(sst_iter *it)
{
    size_t n = it->r->index.n;

    while (it->status == 0 && it->bi < n && !block_iter_valid(&it->data)) {
        if (sst_iter_block_done(it) != 0)
            return;
        if (it->bi == 0) {
            sst_iter_drop_block(it);
            return;
        }
        if (sst_iter_load_block(it, it->bi - 1, 0) != 0)
            return;
        block_iter_seek_last(&it->data);
    }
}

static int sst_iter_valid(const iter *base)
{
    const sst_iter *it = (const sst_iter *)base;

    return it->status == 0 && it->bi < it->r->index.n && block_iter_valid(&it->data);
}

static void sst_iter_seek_first(iter *base)
{
    sst_iter *it = (sst_iter *)base;

    if (it->status != 0)
        return;
    if (it->r->index.n == 0 || sst_iter_load_block(it, 0, 1) != 0)
        return;
    block_iter_seek_first(&it->data);
    sst_iter_skip_forward(it);
}

static void sst_iter_seek_last(iter *base)
{
    sst_iter *it = (sst_iter *)base;

    if (it->status != 0)
        return;
    if (it->r->index.n == 0 || sst_iter_load_block(it, it->r->index.n - 1, 0) != 0)
        return;
    block_iter_seek_last(&it->data);
    sst_iter_skip_backward(it);
}

static void sst_iter_seek(iter *base, slice target)
{
    sst_iter *it = (sst_iter *)base;
    size_t i;

    if (it->status != 0)
        return;
    if ((i = sst_index_find(&it->r->index, target)) == it->r->index.n) {
        sst_iter_drop_block(it);
        return;
    }
    if (sst_iter_load_block(it, i, 1) != 0)
        return;
    block_iter_seek(&it->data, target);
    sst_iter_skip_forward(it);
}

static void sst_iter_seek_for_prev(iter *base, slice target)
{
    sst_iter *it = (sst_iter *)base;

    sst_iter_seek(base, target);
    if (it->status != 0)
        return;
    if (!sst_iter_valid(base))
        sst_iter_seek_last(base);
    else if (ikey_cmp(block_iter_key(&it->data), target) > 0)
        base->ops->prev(base);
}

static void sst_iter_next(iter *base)
{
    sst_iter *it = (sst_iter *)base;

    if (!sst_iter_valid(base))
        return;
    block_iter_next(&it->data);
    if (!block_iter_valid(&it->data))
        sst_iter_skip_forward(it);
}

static void sst_iter_prev(iter *base)
{
    sst_iter *it = (sst_iter *)base;

    if (!sst_iter_valid(base))
        return;
    block_iter_prev(&it->data);
    if (!block_iter_valid(&it->data))
        sst_iter_skip_backward(it);
}

static slice sst_iter_key(const iter *base)
{
    return block_iter_key(&((const sst_iter *)base)->data);
}

static slice sst_iter_value(const iter *base)
{
    return block_iter_value(&((const sst_iter *)base)->data);
}

static int sst_iter_status(const iter *base)
{
    return ((const sst_iter *)base)->status;
}

static void sst_iter_free(iter *base)
{
    sst_iter *it = (sst_iter *)base;

    sst_iter_drop_block(it);
    block_iter_free(&it->data);
    sst_reader_unref(it->r);
    free(it);
}

static const struct iter_ops sst_iter_ops = {
    sst_iter_valid, sst_iter_seek_first, sst_iter_seek_last, sst_iter_seek,
    sst_iter_seek_for_prev, sst_iter_next, sst_iter_prev, sst_iter_key,
    sst_iter_value, sst_iter_status, sst_iter_free,
};

iter *sst_reader_iter(sst_reader *r)
{
    return sst_reader_iter_opt(r, 1);
}

iter *sst_reader_iter_opt(sst_reader *r, int fill_cache)
{
    sst_iter *it = calloc(1, sizeof(*it));

    if (it == NULL)
        return NULL;
    it->base.ops = &sst_iter_ops;
    it->fill_cache = fill_cache;
    it->r = r;
    sst_reader_ref(r);
    it->bi = r->index.n;
    block_iter_init(&it->data);
    return &it->base;
}
