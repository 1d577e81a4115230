/*
 * fuzz_sst_index.c - an SST index block on any bytes: the block itself
 * (as fuzz_sst_block) and every value as a block handle (sst_handle_get).
 * A handle that decodes must decode the same from its encoding (the
 * bytes may differ: a varint need not be minimal).
 */
#include "table/sst_format.h"
#include "base/status.h"
#include "fuzz_block_walk.h"

static void on_entry(slice key, slice value)
{
    sst_handle h, h2;
    buf again = {0};

    (void)key;
    if (sst_handle_get(value, &h) == 0) {
        FUZZ_ASSERT(sst_handle_put(&again, h) == 0);
        FUZZ_ASSERT(sst_handle_get(slice_make(again.data, again.len), &h2) == 0);
        FUZZ_ASSERT(h.offset == h2.offset && h.size == h2.size);
    }
    buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_block_input(data, size, on_entry);
}
