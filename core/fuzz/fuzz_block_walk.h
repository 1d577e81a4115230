/*
 * fuzz_block_walk.h - walks a block every way a reader does (forward,
 * backward, seeks, point lookups with and without the data blocks' hash
 * index), for the data and index block targets.
 * Nothing is asserted about what a walk yields: a block whose restart
 * array does not match its entries (which its checksum rules out on disk)
 * may list different entries forward and backward; such a block must only
 * never crash the reader or read outside it.
 */
#ifndef STOAT_FUZZ_BLOCK_WALK_H
#define STOAT_FUZZ_BLOCK_WALK_H

#include "table/block.h"
#include "base/checksum.h"
#include "base/ikey.h"
#include "fuzz_util.h"

/* Calls on_entry for each entry of a forward walk; returns the count, or
 * -1 when the walk ended on an error. */
static long fuzz_block_walk(const block *b, void (*on_entry)(slice key, slice value))
{
    block_iter it;
    buf prev = {0}, key = {0};
    long fwd = 0, back = 0;
    int fwd_ok;
    slice value;

    block_iter_init(&it);
    block_iter_set(&it, b);
    for (block_iter_seek_first(&it); block_iter_valid(&it); block_iter_next(&it)) {
        slice k = block_iter_key(&it);

        if (on_entry)
            on_entry(k, block_iter_value(&it));
        buf_reset(&prev);
        buf_append(&prev, k.data, k.len);
        fwd++;
    }
    fwd_ok = block_iter_status(&it) == 0;
    for (block_iter_seek_last(&it); block_iter_valid(&it) && back <= fwd; block_iter_prev(&it))
        back++;
    /* Seeks to the keys seen (the last one) and to odd targets. */
    if (prev.len > 0) {
        block_iter_seek(&it, slice_make(prev.data, prev.len));
        block_iter_seek_for_prev(&it, slice_make(prev.data, prev.len));
        block_get(b, slice_make(prev.data, prev.len), &key, &value);
        if (prev.len >= IKEY_SUFFIX_LEN) {
            slice u = ikey_user(slice_make(prev.data, prev.len));
            block_get_hashed(b, slice_make(prev.data, prev.len), checksum64(u.data, u.len),
                             &key, &value);
        }
        /* A hash landing in each of the first 256 buckets, whatever
         * they hold. */
        for (uint32_t i = 0; i < b->n_buckets && i < 256; i++)
            block_get_hashed(b, slice_make(prev.data, prev.len),
                             ((uint64_t)(((uint64_t)i << 32) / b->n_buckets + 1) << 32), &key,
                             &value);
    }
    block_iter_seek(&it, slice_make("", 0));
    block_iter_seek(&it, slice_make("\xff\xff\xff\xff\xff\xff\xff\xff\xff", 9));
    block_iter_seek_for_prev(&it, slice_make("m\0\0\0\0\0\0\0\0", 9));
    block_iter_free(&it);
    buf_free(&prev);
    buf_free(&key);
    return fwd_ok ? fwd : -1;
}

/* The data and index block targets' entry: walks the input as a block
 * (a copy of exactly its bytes, so that ASan sees any overread). */
static int fuzz_block_input(const uint8_t *data, size_t size,
                            void (*on_entry)(slice key, slice value))
{
    char *copy = malloc(size ? size : 1);
    block b;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    if (block_init(&b, copy, size, "fuzz.sst", 0) == 0)
        fuzz_block_walk(&b, on_entry);
    status_clear();
    free(copy);
    return 0;
}

#endif
