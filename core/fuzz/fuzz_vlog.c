/*
 * fuzz_vlog.c - value-log records: recovery of the newest file at open
 * (vlog_open: header, torn tail versus damaged versus lost chain), a scan
 * of a sealed file (vlog_scan, as GC does) and reads through the pointers
 * the scan gave (vlog_read, vlog_check).
 *
 * The input is two files: 000001.vlog (sealed) and 000002.vlog (newest),
 * split at a point given by the second byte. Mode byte bit 0 set: each
 * file gets a right header and every record whose lengths fit gets right
 * checks (fix_file), so that what lies behind them is parsed too. The
 * newest file is recovered read-only (bit 1 clear) or writable (set: it
 * may be truncated). Every pointer a scan gives must read back the same
 * key and value.
 */
#include "base/checksum.h"
#include "base/coding.h"
#include "env/env.h"
#include "base/ikey.h"
#include "base/status.h"
#include "vlog/vlog.h"
#include "fuzz_util.h"

static void fix_file(char *d, size_t len, uint32_t fid)
{
    size_t off = VLOG_HEADER_LEN;

    if (len < VLOG_HEADER_LEN)
        return;
    put_fixed64(d, VLOG_MAGIC);
    put_fixed32(d + 8, VLOG_FORMAT_VERSION);
    put_fixed32(d + 12, fid);
    while (len - off >= VLOG_REC_OVERHEAD) {
        /* Small lengths from the input's bytes, so that records fit. */
        uint32_t klen = 8 + (uint8_t)d[off] % 24, vlen = (uint8_t)d[off + 4];
        uint64_t rec = vlog_record_len(klen, vlen);

        if (rec > len - off)
            break;
        put_fixed32(d + off, klen);
        put_fixed32(d + off + 4, vlen);
        put_fixed32(d + off + 8, checksum32(d + off, 8));
        put_fixed64(d + off + rec - 8, checksum64(d + off, (size_t)rec - 8));
        off += (size_t)rec;
    }
}

typedef struct scan_state {
    vlog *l;
    long n;
} scan_state;

static int on_record(void *arg, const vptr *p, slice ikey, slice value)
{
    scan_state *s = arg;
    buf out = {0};
    char *k = malloc(ikey.len ? ikey.len : 1);

    FUZZ_ASSERT(k != NULL);
    memcpy(k, ikey.data, ikey.len);
    FUZZ_ASSERT(ikey.len >= IKEY_SUFFIX_LEN);
    /* Damaged records between good ones are reported by reads, not scans. */
    if (vlog_read(s->l, p, slice_make(k, ikey.len), &out) == 0)
        FUZZ_ASSERT(out.len == value.len && memcmp(out.data, value.data, value.len) == 0);
    vlog_check(s->l, p, slice_make(k, ikey.len));
    buf_free(&out);
    free(k);
    s->n++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_dir();
    char path[512], *copy;
    vlog_options o = {0};
    vlog *l = NULL;
    size_t split, n;

    if (size < 2 || (copy = malloc(size)) == NULL)
        return 0;
    n = size - 2;
    memcpy(copy, data + 2, n);
    split = n ? (size_t)data[1] * n / 255 : 0;
    if (data[0] & 1) {
        fix_file(copy, split, 1);
        fix_file(copy + split, n - split, 2);
    }
    fuzz_write_file(path, dir, "000001.vlog", copy, split);
    fuzz_write_file(path, dir, "000002.vlog", copy + split, n - split);
    free(copy);
    o.read_only = !(data[0] & 2);
    o.file_size = 1 << 20;
    if (vlog_open(env_posix(), dir, &o, &l) == 0) {
        scan_state s = {l, 0};
        int rc = vlog_scan(l, 1, on_record, &s);

        FUZZ_ASSERT(rc == 0 || rc == STOAT_ECORRUPT || rc == STOAT_ENOTFOUND);
        if (!o.read_only) {
            vptr p;
            char ik[9] = "k\0\0\0\0\0\0\0\1";
            vlog_append(l, slice_make(ik, 9), slice_make("value", 5), &p);
        }
        vlog_close(l);
    }
    status_clear();
    return 0;
}
