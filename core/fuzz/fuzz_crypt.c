/*
 * fuzz_crypt.c - encrypted files (crypt/crypt_env.c): the header in the
 * clear, and sealed WAL records read back through the crypt env.
 *
 * Mode byte bit 0 clear: the rest of the input is the file as it is on
 * disk (header included), opened through the crypt env and replayed:
 * replay must end with 0, STOAT_ECORRUPT or STOAT_ENOTSUP.
 * Set: a good encrypted WAL is written through the crypt env, one record
 * per input chunk (a length byte, then that many key bytes; each record
 * one entry whose value names the record), then the input's first bytes
 * after the mode byte name edits of the file on disk (pairs: an offset
 * byte scaled to the file, a byte to XOR there). Replay must end with 0
 * or STOAT_ECORRUPT, and every entry it hands on must be the one written
 * for that record, in order: whatever is done to the bytes, an entry
 * comes back as written or not at all (authentication).
 *
 * The key registry is made once, in a directory of its own, with a fixed
 * master key.
 */
#include "base/coding.h"
#include "base/ikey.h"
#include "base/status.h"
#include "crypt/crypt_env.h"
#include "crypt/key_registry.h"
#include "env/env.h"
#include "log/wal.h"
#include "fuzz_util.h"

#define MAX_RECORDS 64

static env *cenv;

static env *crypt_env_once(void)
{
    static const uint8_t master[KEY_REGISTRY_MASTER_LEN] = "fuzz master key, thirty-two byte";
    static char dir[256];
    key_registry *kr;
    const char *tmp = getenv("TMPDIR");

    if (cenv != NULL)
        return cenv;
    snprintf(dir, sizeof(dir), "%s/stoat-fuzz-kr-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL ||
        key_registry_create(env_posix(), dir, master, UINT64_MAX, 1, &kr) != 0 ||
        crypt_env_new(env_posix(), kr, &cenv) != 0)
        abort();
    /* The registry lives in memory from now on; its directory may go. */
    fuzz_rm_contents(dir);
    rmdir(dir);
    return cenv;
}

typedef struct {
    int n;                      /* records written */
    int seen;                   /* entries replayed */
    char keys[MAX_RECORDS][256];
    size_t key_len[MAX_RECORDS];
} expect;

static int on_entry(void *arg, slice ikey, slice value)
{
    expect *x = arg;
    vstruct v;

    FUZZ_ASSERT(ikey.len >= IKEY_SUFFIX_LEN);
    if (x->n > 0) {
        /* Written: the record `seen`, exactly. */
        FUZZ_ASSERT(x->seen < x->n);
        FUZZ_ASSERT(ikey.len == x->key_len[x->seen] + IKEY_SUFFIX_LEN);
        FUZZ_ASSERT(memcmp(ikey.data, x->keys[x->seen], x->key_len[x->seen]) == 0);
        FUZZ_ASSERT(ikey_version(ikey) == (uint64_t)x->seen + 1);
        FUZZ_ASSERT(vstruct_decode(value, &v) == 0 && v.value.len == 1 &&
                    (unsigned char)v.value.data[0] == (unsigned char)x->seen);
    }
    x->seen++;
    return 0;
}

/* Writes the records of data[0, n) to path through the crypt env. */
static void write_wal(const char *path, const uint8_t *data, size_t n, expect *x)
{
    char hdr[WAL_HEADER_LEN], ik[256 + IKEY_SUFFIX_LEN], val[8];
    buf payload = {0}, rec = {0};
    env_file *f = NULL;
    uint64_t off = WAL_HEADER_LEN;

    if (env_open(cenv, path, ENV_WRITE | ENV_TRUNC, &f) != 0)
        abort();
    put_fixed64(hdr, WAL_MAGIC);
    put_fixed32(hdr + 8, WAL_FORMAT_VERSION);
    put_fixed32(hdr + 12, 0);
    if (env_append(f, hdr, sizeof(hdr)) != 0)
        abort();
    while (n > 0 && x->n < MAX_RECORDS) {
        size_t len = data[0] < n - 1 ? data[0] : n - 1;
        char one = (char)x->n;
        vstruct v = {.value = slice_make(&one, 1)};
        size_t klen = ikey_encode(ik, data + 1, len, (uint64_t)x->n + 1);

        memcpy(x->keys[x->n], data + 1, len);
        x->key_len[x->n] = len;
        buf_reset(&payload);
        buf_reset(&rec);
        if (wal_encode_entry(&payload, slice_make(ik, klen),
                             slice_make(val, vstruct_encode(val, &v))) != 0 ||
            wal_encode_record_at(&rec, f, off, payload.data, payload.len) != 0 ||
            env_append(f, rec.data, rec.len) != 0)
            abort();
        off += rec.len;
        x->n++;
        data += 1 + len;
        n -= 1 + len;
    }
    env_close(f);
    buf_free(&payload);
    buf_free(&rec);
}

/* The whole file at path, malloc'd. */
static char *read_file(const char *path, size_t *len)
{
    struct stat st;
    char *p;
    int fd = open(path, O_RDONLY);

    if (fd < 0 || fstat(fd, &st) != 0 || (p = malloc((size_t)st.st_size + 1)) == NULL ||
        read(fd, p, (size_t)st.st_size) != (ssize_t)st.st_size)
        abort();
    close(fd);
    *len = (size_t)st.st_size;
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_dir();
    static expect x;
    char path[512];
    env_file *f = NULL;
    uint64_t good = 0;
    int rc;

    if (size < 1)
        return 0;
    crypt_env_once();
    memset(&x, 0, sizeof(x));
    if (data[0] & 1) {
        size_t edits = size > 1 ? data[1] % 8 : 0, len;
        const uint8_t *e = data + 2;
        char *file;

        if (size < 2 + 2 * edits)
            return 0;
        snprintf(path, sizeof(path), "%s/000001.wal", dir);
        write_wal(path, e + 2 * edits, size - 2 - 2 * edits, &x);
        file = read_file(path, &len);
        for (size_t i = 0; i < edits && len > 0; i++)
            file[(size_t)e[2 * i] * len / 256] ^= (char)(e[2 * i + 1] ? e[2 * i + 1] : 1);
        fuzz_write_file(path, dir, "000001.wal", file, len);
        free(file);
    } else {
        fuzz_write_file(path, dir, "000001.wal", data + 1, size - 1);
    }
    rc = env_open(cenv, path, ENV_READ, &f);
    FUZZ_ASSERT(rc == 0 || rc == STOAT_ECORRUPT || rc == STOAT_ENOTSUP);
    if (rc == 0) {
        rc = wal_replay(f, path, on_entry, &x, &good);
        FUZZ_ASSERT(rc == 0 || rc == STOAT_ECORRUPT || rc == STOAT_ENOTSUP);
        env_close(f);
    }
    status_clear();
    return 0;
}
