/*
 * fuzz_manifest.c - MANIFEST replay (manifest_open): the header, record
 * framing (torn tail versus corruption), and every tag of every edit and
 * whether the edits apply (lsm_view_apply).
 *
 * Mode byte bit 0 clear: the rest is the file as it is. Set: a good
 * header, then the input cut into records (a length byte, then that many
 * payload bytes) with right checksums, so that the edit decoder sees any
 * payload. Bit 1: open writable (a torn tail is cut, a format 1 file is
 * rewritten) instead of read-only. A replayed version must hold disjoint
 * sorted tables in L1 and deeper.
 */
#include "base/coding.h"
#include "base/ikey.h"
#include "lsm/manifest.h"
#include "base/status.h"
#include "log/wal.h"
#include "fuzz_util.h"

#define NL 7

static void frame(buf *out, const uint8_t *p, size_t n, int version)
{
    char hdr[16];

    put_fixed64(hdr, MANIFEST_MAGIC);
    put_fixed32(hdr + 8, (uint32_t)version);
    put_fixed32(hdr + 12, 0);
    buf_append(out, hdr, sizeof(hdr));
    while (n > 0) {
        size_t len = p[0] < n - 1 ? p[0] : n - 1;
        wal_encode_record(out, p + 1, len);
        p += 1 + len;
        n -= 1 + len;
    }
}

static void check_version(const lsm_view *v)
{
    for (int l = 1; l < v->num_levels; l++)
        for (size_t i = 1; i < v->n[l]; i++)
            FUZZ_ASSERT(slice_cmp(table_largest_ukey(v->tables[l][i - 1]),
                                  table_smallest_ukey(v->tables[l][i])) < 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_dir();
    char path[512];
    buf file = {0};
    lsm_view *v = NULL;
    manifest_state st;
    manifest *m = NULL;

    if (size < 1)
        return 0;
    if (data[0] & 1)
        frame(&file, data + 1, size - 1, data[0] & 4 ? 1 : MANIFEST_FORMAT_VERSION);
    else
        buf_append(&file, data + 1, size - 1);
    fuzz_write_file(path, dir, "MANIFEST", file.data, file.len);
    buf_free(&file);
    if (manifest_open(env_posix(), dir, NL, !(data[0] & 2), &v, &st, &m) == 0) {
        check_version(v);
        manifest_close(m);
        lsm_view_unref(v);
        /* Whatever a writable open left behind opens again. */
        if (data[0] & 2) {
            FUZZ_ASSERT(manifest_open(env_posix(), dir, NL, 1, &v, &st, &m) == 0);
            check_version(v);
            manifest_close(m);
            lsm_view_unref(v);
        }
    }
    status_clear();
    return 0;
}
