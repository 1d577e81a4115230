/*
 * fuzz_sst_filter.c - an SST filter block (the bloom filter) on any bytes:
 * bloom_filter_valid, bloom_filter_init and both probe paths, which must
 * agree; the first bytes of the input are probed as user keys. Then the
 * input as keys for a builder: every key added must be found.
 */
#include "table/bloom.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    slice filter = slice_make(copy, size);
    bloom_filter f;
    bloom_builder bb;
    buf out = {0};
    int valid;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    valid = bloom_filter_valid(filter);
    FUZZ_ASSERT((bloom_filter_init(&f, filter) == 0) == (valid != 0));
    for (size_t i = 0; i + 1 <= size && i < 64; i += 7) {
        slice k = slice_make(copy + i, size - i < 9 ? size - i : 9);
        int a = bloom_may_contain(filter, k);
        if (valid)
            FUZZ_ASSERT(a == bloom_filter_may_contain(&f, k));
        else
            FUZZ_ASSERT(a == 1);
    }
    /* Keys of 1..8 bytes cut from the input: the builder's filter finds them. */
    bloom_builder_init(&bb, 0.01);
    for (size_t i = 0; i < size; i += 1 + data[i] % 8)
        FUZZ_ASSERT(bloom_builder_add(&bb, slice_make(copy + i, 1 + (size - i - 1) % 8)) == 0);
    FUZZ_ASSERT(bloom_builder_finish(&bb, &out) == 0);
    for (size_t i = 0; i < size; i += 1 + data[i] % 8)
        FUZZ_ASSERT(bloom_may_contain(slice_make(out.data, out.len),
                                      slice_make(copy + i, 1 + (size - i - 1) % 8)));
    bloom_builder_free(&bb);
    buf_free(&out);
    free(copy);
    return 0;
}
