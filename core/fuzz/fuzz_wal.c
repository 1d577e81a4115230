/*
 * fuzz_wal.c - WAL replay (wal_replay): the file header, record framing
 * (torn tail versus corruption) and the entries of each payload.
 *
 * Mode byte bit 0 clear: the rest of the input is the file as it is.
 * Set: a good file header, then the input cut into records, each a length
 * byte and that many payload bytes, framed with right checksums (bit 1
 * set: the last record is cut short, a torn tail). Every entry handed on
 * must have an internal key of at least 8 bytes; replay must end with 0 or
 * STOAT_ECORRUPT, and good_len within the file.
 */
#include "base/coding.h"
#include "env/env.h"
#include "base/status.h"
#include "log/wal.h"
#include "fuzz_util.h"

static int on_entry(void *arg, slice ikey, slice value)
{
    (void)value;
    FUZZ_ASSERT(ikey.len >= 8);
    ++*(long *)arg;
    return 0;
}

static void frame(buf *out, const uint8_t *p, size_t n, int torn)
{
    char hdr[WAL_HEADER_LEN];

    put_fixed64(hdr, WAL_MAGIC);
    put_fixed32(hdr + 8, WAL_FORMAT_VERSION);
    put_fixed32(hdr + 12, 0);
    buf_append(out, hdr, sizeof(hdr));
    while (n > 0) {
        size_t len = p[0] < n - 1 ? p[0] : n - 1;
        wal_encode_record(out, p + 1, len);
        p += 1 + len;
        n -= 1 + len;
    }
    if (torn && out->len > WAL_HEADER_LEN)
        out->len--;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_dir();
    char path[512];
    buf file = {0};
    env_file *f = NULL;
    uint64_t good = 0, fsize;
    long n = 0;
    int rc;

    if (size < 1)
        return 0;
    if (data[0] & 1)
        frame(&file, data + 1, size - 1, data[0] & 2);
    else
        buf_append(&file, data + 1, size - 1);
    fuzz_write_file(path, dir, "000001.wal", file.data, file.len);
    fsize = file.len;
    buf_free(&file);
    if (env_open(env_posix(), path, 0, &f) != 0)
        abort();
    rc = wal_replay(f, path, on_entry, &n, &good);
    FUZZ_ASSERT(rc == 0 || rc == STOAT_ECORRUPT || rc == STOAT_ENOTSUP);
    if (rc == 0)
        FUZZ_ASSERT(good <= fsize);
    env_close(f);
    status_clear();
    return 0;
}
