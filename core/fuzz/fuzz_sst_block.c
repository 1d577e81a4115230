/*
 * fuzz_sst_block.c - an SST data block (block_init and block_iter: entries
 * with shared-prefix keys and a restart array) on any bytes, walked every
 * way a reader walks it (fuzz_block_walk.h), point lookups through its
 * hash index too when it has one. Each value is also decoded as a
 * vstruct, as the database does.
 */
#include "base/status.h"
#include "fuzz_block_walk.h"

static void on_entry(slice key, slice value)
{
    vstruct vs;

    (void)key;
    if (vstruct_decode(value, &vs) == 0 && (vs.meta & VMETA_VPTR) && vs.value.len == 16) {
        vptr p;
        vptr_decode(vs.value.data, &p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_block_input(data, size, on_entry);
}
