/*
 * wal.c - WAL record framing and replay (format: core/FORMAT.md, "WAL").
 *
 * Owns the byte layout of a WAL file: the 16-byte header, the framing of a
 * record (a 12-byte header of length, payload checksum and a check of
 * those 8 bytes, then the payload) and the entries of a payload. The
 * MANIFEST borrows the record framing. Replay reads the file front to back
 * through a window buffer, verifies each record's header and checksum and
 * parses all of its entries before it hands any of them to the callback,
 * so a torn or damaged record is never half-applied.
 *
 * Torn versus corrupt: only damage that a crash during an append can leave
 * behind counts as a torn tail: less than a record header at end of file,
 * a bad record header followed by zeros only, an intact record header
 * whose payload runs past end of file, a record
 * whose payload checksum fails and that ends exactly at end of file or is
 * followed by zeros only, or zero bytes from a record start to end of
 * file. Replay then
 * stops with 0 and reports where the good prefix ends. Anything else is
 * STOAT_ECORRUPT with the file and offset; in particular a length is
 * believed only once its header's check has passed, so a damaged length
 * can never pass for a cut-short record and hide the records after it.
 *
 * Threads: no shared state; replay reads the file with positional reads,
 * so it may run while nobody appends to the same file.
 */
/* env.h before buf.h (via wal.h): env_read_at's parameter `buf` would
 * otherwise shadow the typedef and fail -Wshadow. */
#include "env/env.h"
#include "env/file_window.h"
#include "log/wal.h"

#include <stdlib.h>
#include <string.h>

#include "base/checksum.h"
#include "base/coding.h"
#include "base/ikey.h"
#include "base/status.h"
#include "crypt/crypt_env.h"

/* Bytes read at a time; a larger record is read whole. */
#define WAL_READ_CHUNK (256u << 10)

/* wal_record_check's verdict for a torn tail (errors are negative). */
#define WAL_TORN 1

int wal_encode_entry(buf *payload, slice ikey, slice value)
{
    if (ikey.len < IKEY_SUFFIX_LEN)
        return status_err(STOAT_EINVAL, "wal: internal key of %zu bytes", ikey.len);
    if (buf_reserve(payload, 2 * VARINT64_MAX_LEN + ikey.len + value.len) != 0)
        return status_err(STOAT_ENOMEM, "wal: no memory for a %zu-byte entry",
                          ikey.len + value.len);
    /* Room is reserved, so neither append can fail half-way. */
    buf_put_lenpref(payload, ikey.data, ikey.len);
    buf_put_lenpref(payload, value.data, value.len);
    return 0;
}

int wal_encode_record(buf *out, const void *payload, size_t len)
{
    if (len > WAL_MAX_RECORD)
        return status_err(STOAT_ETOOBIG, "wal: record of %zu bytes exceeds %u", len,
                          WAL_MAX_RECORD);
    if (buf_reserve(out, WAL_RECORD_HEADER_LEN + len) != 0)
        return status_err(STOAT_ENOMEM, "wal: no memory for a %zu-byte record", len);
    /* Room is reserved: the appends cannot fail. */
    wal_record_header_encode(out->data + out->len, payload, (uint32_t)len);
    out->len += WAL_RECORD_HEADER_LEN;
    buf_append(out, payload, len);
    return 0;
}

int wal_encode_record_at(buf *out, env_file *f, uint64_t off, const void *payload, size_t len)
{
    size_t sealed = crypt_sealed_len(len);
    char *h;
    int rc;

    if (!crypt_sealed(f))
        return wal_encode_record(out, payload, len);
    if (sealed > WAL_MAX_RECORD)
        return status_err(STOAT_ETOOBIG, "wal: record of %zu bytes exceeds %u", len,
                          WAL_MAX_RECORD);
    if (buf_reserve(out, WAL_RECORD_HEADER_LEN + sealed) != 0)
        return status_err(STOAT_ENOMEM, "wal: no memory for a %zu-byte record", len);
    h = out->data + out->len;
    if ((rc = crypt_seal(f, off, payload, len, h + WAL_RECORD_HEADER_LEN)) != 0)
        return rc;
    wal_record_header_encode(h, h + WAL_RECORD_HEADER_LEN, (uint32_t)sealed);
    out->len += WAL_RECORD_HEADER_LEN + sealed;
    return 0;
}

void wal_record_header_encode(char *h, const void *payload, uint32_t len)
{
    put_fixed32(h, len);
    put_fixed32(h + 4, checksum32(payload, len));
    put_fixed32(h + 8, checksum32(h, 8));
}

int wal_record_header_ok(const char *h)
{
    return checksum32(h, 8) == get_fixed32(h + 8);
}

static void wal_header_bytes(char *h)
{
    put_fixed64(h, WAL_MAGIC);
    put_fixed32(h + 8, WAL_FORMAT_VERSION);
    put_fixed32(h + 12, 0);
}

/* Whether the n bytes at p begin the header of a format-1 WAL (0.1, whose
 * entries tell their own expiry unit: see ikey.h), which replays as is. */
static int wal_header_v1_prefix(const char *p, size_t n)
{
    char v1[WAL_HEADER_LEN];

    put_fixed64(v1, WAL_MAGIC);
    put_fixed32(v1 + 8, 1);
    put_fixed32(v1 + 12, 0);
    return memcmp(p, v1, n) == 0;
}

/*
 * Checks the header. Returns 0 when it is good, WAL_TORN for a file that
 * holds no header yet (empty, all zeros, or a cut-short prefix of the
 * header), else an error.
 */
static int wal_check_header(file_window *r)
{
    char want[WAL_HEADER_LEN];
    const char *p;
    int rc, zero;

    wal_header_bytes(want);
    if (r->size < WAL_HEADER_LEN) {
        if ((rc = file_window_zeros_from(r, 0, &zero)) != 0)
            return rc;
        if (!zero && (rc = file_window_get(r, 0, (size_t)r->size, &p)) != 0)
            return rc;
        if (zero || memcmp(p, want, (size_t)r->size) == 0 ||
            wal_header_v1_prefix(p, (size_t)r->size))
            return WAL_TORN;
        return status_err(STOAT_ECORRUPT, "%s: bad WAL header: file of %llu bytes", r->path,
                          (unsigned long long)r->size);
    }
    if ((rc = file_window_get(r, 0, WAL_HEADER_LEN, &p)) != 0)
        return rc;
    if (memcmp(p, want, WAL_HEADER_LEN) == 0 || wal_header_v1_prefix(p, WAL_HEADER_LEN))
        return 0;
    if (get_fixed64(p) == WAL_MAGIC && get_fixed32(p + 8) > WAL_FORMAT_VERSION)
        return status_err(STOAT_ENOTSUP, "%s: WAL format version %u is newer than %u", r->path,
                          get_fixed32(p + 8), WAL_FORMAT_VERSION);
    if ((rc = file_window_zeros_from(r, 0, &zero)) != 0)
        return rc;
    if (zero)
        return WAL_TORN;
    return status_err(STOAT_ECORRUPT, "%s: bad WAL header at offset 0", r->path);
}

/* A record header at off whose check fails: a torn tail if nothing but
 * zeros follows the header's place (a header cut short by a torn write,
 * the file's size persisted ahead of its data; or nothing written at
 * all), else corruption. The caller saw a whole header's bytes. */
static int wal_bad_record_header(file_window *r, uint64_t off)
{
    int rc, zero;

    if ((rc = file_window_zeros_from(r, off + WAL_RECORD_HEADER_LEN, &zero)) != 0)
        return rc;
    if (zero)
        return WAL_TORN;
    return status_err(STOAT_ECORRUPT, "%s: bad checksum at offset %llu (record header)",
                      r->path, (unsigned long long)off);
}

/*
 * Checks the record at off. Returns 0 and its payload, WAL_TORN when it is
 * a torn tail, or an error. The length is used only once the header's
 * check has passed.
 */
static int wal_record_check(file_window *r, uint64_t off, const char **payload, uint32_t *plen)
{
    uint64_t rest = r->size - off;
    const char *p;
    uint32_t len;
    int rc, zero;

    if (rest < WAL_RECORD_HEADER_LEN)
        return WAL_TORN;
    if ((rc = file_window_get(r, off, WAL_RECORD_HEADER_LEN, &p)) != 0)
        return rc;
    if (!wal_record_header_ok(p))
        return wal_bad_record_header(r, off);
    len = get_fixed32(p);
    if (len > WAL_MAX_RECORD)
        return status_err(STOAT_ECORRUPT, "%s: record length %u too large at offset %llu",
                          r->path, len, (unsigned long long)off);
    if (len > rest - WAL_RECORD_HEADER_LEN)
        return WAL_TORN;
    if ((rc = file_window_get(r, off, WAL_RECORD_HEADER_LEN + (size_t)len, &p)) != 0)
        return rc;
    if (checksum32(p + WAL_RECORD_HEADER_LEN, len) == get_fixed32(p + 4)) {
        *payload = p + WAL_RECORD_HEADER_LEN;
        *plen = len;
        return 0;
    }
    /* An intact header is not all zeros, so only a record that ends the
     * file can be the torn one, or one followed by zeros only: a power
     * loss may persist a file's size before its data (the zeros), and the
     * record's first sectors without its last ones. */
    if (len == rest - WAL_RECORD_HEADER_LEN)
        return WAL_TORN;
    if ((rc = file_window_zeros_from(r, off + WAL_RECORD_HEADER_LEN + len, &zero)) != 0)
        return rc;
    if (zero)
        return WAL_TORN;
    return status_err(STOAT_ECORRUPT, "%s: bad checksum at offset %llu", r->path,
                      (unsigned long long)off);
}

/* Parses the entry at *p (not past limit), advancing *p; -1 if malformed. */
static int wal_entry_parse(const char **p, const char *limit, slice *ikey, slice *value)
{
    const char *q = *p;
    uint64_t klen, vlen;
    vstruct v;

    if ((q = get_varint64(q, limit, &klen)) == NULL || klen > (uint64_t)(limit - q) ||
        klen < IKEY_SUFFIX_LEN)
        return -1;
    *ikey = slice_make(q, (size_t)klen);
    q += klen;
    if ((q = get_varint64(q, limit, &vlen)) == NULL || vlen > (uint64_t)(limit - q))
        return -1;
    *value = slice_make(q, (size_t)vlen);
    if (vstruct_decode(*value, &v) != 0)
        return -1;
    *p = q + vlen;
    return 0;
}

/* Parses every entry of a checksummed payload, asks `until` (if any)
 * about each, then hands them to fn. */
static int wal_record_apply(file_window *r, uint64_t off, const char *payload, uint32_t len,
                            wal_entry_fn until, wal_entry_fn fn, void *arg)
{
    const char *limit = payload + len, *p;
    slice ikey, value;
    int rc;

    for (p = payload; p < limit;) {
        if (wal_entry_parse(&p, limit, &ikey, &value) != 0) {
            uint64_t at = off + WAL_RECORD_HEADER_LEN + (uint64_t)(p - payload);
            return status_err(STOAT_ECORRUPT,
                              "%s: malformed entry at offset %llu in record at %llu", r->path,
                              (unsigned long long)at, (unsigned long long)off);
        }
    }
    for (p = payload; until != NULL && p < limit;) {
        wal_entry_parse(&p, limit, &ikey, &value);
        if ((rc = until(arg, ikey, value)) != 0)
            return rc;
    }
    for (p = payload; p < limit;) {
        wal_entry_parse(&p, limit, &ikey, &value);
        if ((rc = fn(arg, ikey, value)) != 0)
            return rc;
    }
    return 0;
}

int wal_replay(env_file *f, const char *path, wal_entry_fn fn, void *arg, uint64_t *good_len)
{
    return wal_replay_until(f, path, NULL, fn, arg, good_len);
}

static int wal_replay_span(env_file *f, const char *path, uint64_t from, uint64_t to,
                           wal_entry_fn until, wal_entry_fn fn, void *arg, uint64_t *good_len);

int wal_replay_until(env_file *f, const char *path, wal_entry_fn until, wal_entry_fn fn,
                     void *arg, uint64_t *good_len)
{
    return wal_replay_span(f, path, 0, UINT64_MAX, until, fn, arg, good_len);
}

int wal_replay_range(env_file *f, const char *path, uint64_t from, uint64_t to, wal_entry_fn fn,
                     void *arg, uint64_t *good_len)
{
    return wal_replay_span(f, path, from, to, NULL, fn, arg, good_len);
}


/* The records from `from` up to `to` (UINT64_MAX: end of file), `until`
 * (may be NULL) asked first about each record's entries. */
static int wal_replay_span(env_file *f, const char *path, uint64_t from, uint64_t to,
                           wal_entry_fn until, wal_entry_fn fn, void *arg, uint64_t *good_len)
{
    file_window r;
    buf plain = {0};
    const char *payload = NULL;
    uint64_t off = from > WAL_HEADER_LEN ? from : WAL_HEADER_LEN;
    uint32_t len = 0;
    int rc;

    *good_len = 0;
    file_window_init(&r, f, path, 0, WAL_READ_CHUNK);
    if ((rc = env_file_size(f, &r.size)) != 0)
        goto done;
    if (to != UINT64_MAX && r.size < to) {
        rc = status_err(STOAT_ECORRUPT, "%s: %llu bytes, shorter than its published length %llu",
                        path, (unsigned long long)r.size, (unsigned long long)to);
        goto done;
    }
    if (to < r.size)
        r.size = to;    /* records past `to` are not ours to read (yet) */
    if (from <= WAL_HEADER_LEN && (rc = wal_check_header(&r)) != 0)
        goto done;
    *good_len = off;
    while (off < r.size) {
        uint32_t stored;

        if ((rc = wal_record_check(&r, off, &payload, &len)) != 0)
            break;
        stored = len;
        if (crypt_sealed(f)) {
            /* The checksum passed: the payload is opened (its tag checked). */
            if ((rc = crypt_open_buf(f, off, payload, len, &plain, "record")) != 0)
                break;
            payload = plain.data;
            len = (uint32_t)plain.len;
        }
        if ((rc = wal_record_apply(&r, off, payload, len, until, fn, arg)) != 0) {
            if (rc == WAL_STOP)
                rc = 0;     /* *good_len is this record's start */
            break;
        }
        off += WAL_RECORD_HEADER_LEN + (uint64_t)stored;
        *good_len = off;
    }
    /* Below a published length every record is whole: a torn one there
     * is damage. */
    if (rc == WAL_TORN && to != UINT64_MAX)
        rc = status_err(STOAT_ECORRUPT, "%s: record at offset %llu cut short before the "
                        "published length %llu", path, (unsigned long long)off,
                        (unsigned long long)to);
done:
    file_window_free(&r);
    buf_free(&plain);
    return rc == WAL_TORN ? 0 : rc;
}
