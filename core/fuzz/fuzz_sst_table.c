/*
 * fuzz_sst_table.c - a whole SST file through the reader: footer, index,
 * filter and properties blocks at open (sst_reader_open), block trailers,
 * decompression, then every data block by a full scan both ways and point
 * lookups. Mode byte odd: the footer's and every reachable block's
 * checksum are made right first (fuzz_fix_table), so that bytes behind
 * the checksums are parsed too. Scans forward and backward must agree.
 */
#include "table/block.h"
#include "base/checksum.h"
#include "base/coding.h"
#include "base/ikey.h"
#include "base/iter.h"
#include "table/sst_format.h"
#include "table/sst_reader.h"
#include "base/status.h"
#include "fuzz_util.h"

/* Makes the trailer checksum of the block at h right, if h fits. */
static int fix_block(char *d, size_t len, sst_handle h)
{
    if (h.size > len || h.offset > len - h.size || len - h.offset - h.size < SST_TRAILER_LEN)
        return -1;
    put_fixed64(d + h.offset + h.size + 5, checksum64(d + h.offset, (size_t)h.size + 5));
    return 0;
}

static void fix_table(char *d, size_t len)
{
    char *foot;
    sst_footer f;
    block b;
    block_iter it;

    if (len < SST_FOOTER_LEN)
        return;
    foot = d + len - SST_FOOTER_LEN;
    put_fixed64(foot + 60, SST_MAGIC);
    put_fixed64(foot + 52, checksum64(foot, 52));
    if (sst_footer_decode(foot, "fuzz.sst", &f) != 0)
        return;
    if (f.filter.size)
        fix_block(d, len, f.filter);
    fix_block(d, len, f.props);
    if (fix_block(d, len, f.index) != 0 || d[f.index.offset + f.index.size] != 0)
        return;                 /* a compressed index: its data blocks stay as they are */
    if (block_init(&b, d + f.index.offset, (size_t)f.index.size, "fuzz.sst", 0) != 0)
        return;
    block_iter_init(&it);
    block_iter_set(&it, &b);
    for (block_iter_seek_first(&it); block_iter_valid(&it); block_iter_next(&it)) {
        sst_handle h;
        if (sst_handle_get(block_iter_value(&it), &h) == 0)
            fix_block(d, len, h);
    }
    block_iter_free(&it);
}

static void scan(sst_reader *r)
{
    iter *it = sst_reader_iter(r);
    buf prev = {0}, k = {0}, v = {0};
    long n = 0, back = 0;
    int ok;

    if (it == NULL)
        return;
    for (iter_seek_first(it); iter_valid(it); iter_next(it), n++) {
        slice key = iter_key(it);
        /* A table whose checksums pass may still hold keys out of order
         * (they are not checked on read): no order assertion here. */
        buf_reset(&prev);
        buf_append(&prev, key.data, key.len);
    }
    ok = iter_status(it) == 0;
    for (iter_seek_last(it); iter_valid(it) && back <= n; iter_prev(it))
        back++;
    if (ok && iter_status(it) == 0)
        FUZZ_ASSERT(back == n);
    if (prev.len >= IKEY_SUFFIX_LEN) {
        slice last = slice_make(prev.data, prev.len);
        iter_seek(it, last);
        sst_reader_may_contain(r, ikey_user(last));
        sst_reader_get(r, ikey_user(last), ikey_version(last), &k, &v);
    }
    sst_reader_get(r, slice_make("k", 1), UINT64_MAX >> 1, &k, &v);
    iter_free(it);
    buf_free(&prev);
    buf_free(&k);
    buf_free(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_dir();
    char path[512], *copy;
    sst_reader *r = NULL;

    if (size < 1 || (copy = malloc(size)) == NULL)
        return 0;
    memcpy(copy, data + 1, size - 1);
    if (data[0] & 1)
        fix_table(copy, size - 1);
    fuzz_write_file(path, dir, "000001.sst", copy, size - 1);
    free(copy);
    if (sst_reader_open(env_posix(), path, 1, NULL, &r) == 0) {
        scan(r);
        sst_reader_unref(r);
    }
    status_clear();
    return 0;
}
