/*
 * fuzz_sst_props.c - the SST properties block decoder (sst_props_decode)
 * on any bytes (readers ignore bytes after the known fields). A block
 * that decodes must encode again.
 */
#include "table/sst_format.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    sst_props p;
    buf again = {0};

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    memset(&p, 0, sizeof(p));
    if (sst_props_decode(slice_make(copy, size), &p) == 0) {
        FUZZ_ASSERT(sst_props_encode(&p, &again) == 0);
    }
    sst_props_free(&p);
    buf_free(&again);
    free(copy);
    return 0;
}
