/*
 * vlog_record.c - the value log's names and record layout (format:
 * core/FORMAT.md, "Value log"): file names, the file header, record
 * headers, the walk over a file's records that recovery and scans share,
 * and the verification of one record. No state; thread-safe.
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/checksum.h"
#include "base/coding.h"
#include "base/compress.h"
#include "base/status.h"
#include "base/vec.h"
#include "crypt/crypt_env.h"
#include "env/filename.h"
#include "vlog/vlog_int.h"

/* ---- names, keys and messages ---- */

char *vlog_path(const char *dir, uint32_t fid)
{
    return filename_path(dir, fid, FILENAME_EXT_VLOG);
}

/* The fid a directory entry names, or 0 when it is not a vlog file
 * (only the canonical spelling counts: "1.vlog" is not 000001.vlog). */
uint32_t vlog_parse_name(const char *name)
{
    uint64_t v;

    if (!filename_parse(name, FILENAME_EXT_VLOG, 1, &v) || v == 0 || v > UINT32_MAX)
        return 0;
    return (uint32_t)v;
}

/* A printable form of an internal key for messages: "user key"@version
 * (the key as status_key_str prints every key). */
const char *vlog_key_str(slice ik, char *dst, size_t cap)
{
    size_t ulen = ik.len >= IKEY_SUFFIX_LEN ? ik.len - IKEY_SUFFIX_LEN : ik.len;
    size_t n;

    assert(cap >= STATUS_KEY_MAX + 24);
    status_key_str(ik.data, ulen, dst);
    n = strlen(dst);
    if (ik.len >= IKEY_SUFFIX_LEN)
        snprintf(dst + n, cap - n, "@%llu", (unsigned long long)ikey_version(ik));
    return dst;
}

/* Records a message that does not replace this thread's current one. */
void vlog_quiet_remove(env *e, const char *path)
{
    char msg[STATUS_MSG_MAX];

    snprintf(msg, sizeof(msg), "%s", status_msg());
    (void)env_remove(e, path);
    status_set_msg(msg);
}

/* ---- file headers and the record walk ---- */

void vlog_header_encode(char *h, uint32_t fid)
{
    put_fixed64(h, VLOG_MAGIC);
    put_fixed32(h + 8, VLOG_FORMAT_VERSION);
    put_fixed32(h + 12, fid);
}

/*
 * 0 when the file starts with the header of fid in a format this code
 * reads (1 or VLOG_FORMAT_VERSION); VLOG_TORN when it holds no header yet
 * (shorter than one and a prefix of one, or all zeros); STOAT_ENOTSUP for
 * a newer format; else STOAT_ECORRUPT.
 */
int vlog_header_check(file_window *w, uint32_t fid)
{
    char want[VLOG_HEADER_LEN];
    size_t n = w->size < VLOG_HEADER_LEN ? (size_t)w->size : VLOG_HEADER_LEN;
    const char *p = want;
    uint32_t version;
    int rc, zero;

    if (n > 0 && (rc = file_window_get(w, 0, n, &p)) != 0)
        return rc;
    for (version = 1; version <= VLOG_FORMAT_VERSION; version++) {
        vlog_header_encode(want, fid);
        put_fixed32(want + 8, version);
        if (memcmp(p, want, n) == 0)
            return n == VLOG_HEADER_LEN ? 0 : VLOG_TORN;
    }
    if (n == VLOG_HEADER_LEN && get_fixed64(p) == VLOG_MAGIC &&
        get_fixed32(p + 8) > VLOG_FORMAT_VERSION)
        return status_err(STOAT_ENOTSUP, "%s: value log format version %u is newer than %u",
                          w->path, get_fixed32(p + 8), VLOG_FORMAT_VERSION);
    if (n == VLOG_HEADER_LEN && get_fixed64(p) == VLOG_MAGIC && get_fixed32(p + 8) >= 1)
        return status_err(STOAT_ECORRUPT, "%s: header names file %u", w->path,
                          get_fixed32(p + 12));
    if ((rc = file_window_zeros_from(w, 0, &zero)) != 0)
        return rc;
    if (zero)
        return VLOG_TORN;
    return status_err(STOAT_ECORRUPT, "%s: bad value log header at offset 0", w->path);
}

/* 1 when the 12-byte record header at h is intact and its lengths legal. */
static int vlog_rec_header_ok(const char *h)
{
    uint32_t klen = get_fixed32(h), vlen = get_fixed32(h + 4) & ~VLOG_VLEN_ENCODED;

    return checksum32(h, 8) == get_fixed32(h + 8) && klen >= IKEY_SUFFIX_LEN &&
           klen <= VLOG_MAX_KEY_LEN && vlen <= STOAT_MAX_VALUE_SIZE;
}

/*
 * Classifies the record at off: VLOG_REC_OK (*rec, *len: the whole
 * record), VLOG_REC_BAD (intact header, failing checksum: *len known),
 * VLOG_REC_TORN (cut short by end of file, a bad last record ending at end
 * of file, or zeros to the end) or VLOG_REC_LOST (bad header, non-zero
 * bytes after it: the next record cannot be found).
 */
static int vlog_rec_classify(file_window *w, uint64_t off, const char **rec, uint64_t *len)
{
    uint64_t rest = w->size - off;
    const char *p;
    int rc, zero;

    if (rest < VLOG_REC_HEADER_LEN)
        return VLOG_REC_TORN;
    if ((rc = file_window_get(w, off, VLOG_REC_HEADER_LEN, &p)) != 0)
        return rc;
    if (!vlog_rec_header_ok(p)) {
        if ((rc = file_window_zeros_from(w, off, &zero)) != 0)
            return rc;
        return zero ? VLOG_REC_TORN : VLOG_REC_LOST;
    }
    *len = vlog_record_len(get_fixed32(p), get_fixed32(p + 4) & ~VLOG_VLEN_ENCODED);
    if (crypt_sealed(w->f))
        *len += CRYPT_OVERHEAD;
    if (*len > rest)
        return VLOG_REC_TORN;
    if ((rc = file_window_get(w, off, (size_t)*len, &p)) != 0)
        return rc;
    *rec = p;
    if (checksum64(p, (size_t)*len - 8) == get_fixed64(p + *len - 8))
        return VLOG_REC_OK;
    return *len == rest ? VLOG_REC_TORN : VLOG_REC_BAD;
}

int vlog_walk_run(vlog_walk *k)
{
    uint64_t off = VLOG_HEADER_LEN, len = 0, bad_off = VLOG_NONE;
    const char *rec = NULL;
    int kind;

    k->good_end = VLOG_HEADER_LEN;
    while (off < k->w.size) {
        if ((kind = vlog_rec_classify(&k->w, off, &rec, &len)) < 0)
            return kind;
        if (kind == VLOG_REC_TORN)
            break;
        if (kind == VLOG_REC_LOST) {
            if (k->strict)
                return status_err(STOAT_ECORRUPT, "%s: bad record header at offset %llu",
                                  k->w.path, (unsigned long long)off);
            k->lost = 1;
            break;
        }
        if (kind == VLOG_REC_BAD) {
            if (bad_off == VLOG_NONE)
                bad_off = off;
            off += len;
            continue;
        }
        /* A damaged record followed by an intact one is not a torn tail. */
        if (bad_off != VLOG_NONE && k->strict)
            return status_err(STOAT_ECORRUPT, "%s: bad record checksum at offset %llu",
                              k->w.path, (unsigned long long)bad_off);
        bad_off = VLOG_NONE;
        if (k->fn != NULL) {
            uint32_t klen = get_fixed32(rec);
            vptr p = {k->fid, off, (uint32_t)len}, q;
            slice ik, v;
            int rc = 0;

            if (crypt_sealed(k->w.f) &&
                (rc = vlog_rec_unseal(k->w.f, k->w.path, &p, rec, &k->plain, &q)) == 0)
                rec = k->plain.data;
            if (rc == 0)
                rc = vlog_rec_value(k->w.path, off, rec, &k->raw, &v);
            ik = slice_make(rec + VLOG_REC_HEADER_LEN, klen);
            if (rc == 0)
                rc = k->fn(k->arg, &p, ik, v);
            if (rc != 0)
                return rc;
        }
        off += len;
        k->good_end = off;
    }
    return 0;
}

/* ---- record layout ---- */

/* vword: the stored value's length, with VLOG_VLEN_ENCODED if compressed. */
void vlog_rec_header(char *h, uint32_t klen, uint32_t vword)
{
    put_fixed32(h, klen);
    put_fixed32(h + 4, vword);
    put_fixed32(h + 8, checksum32(h, 8));
}

/* Appends one record to the gather buffer (room reserved by the caller);
 * v is the stored value, compressed (encoded) or not. */
void vlog_gather_rec(buf *g, slice ik, slice v, int encoded)
{
    char *rec = g->data + g->len;
    size_t n = VLOG_REC_HEADER_LEN + ik.len + v.len;

    vlog_rec_header(rec, (uint32_t)ik.len, (uint32_t)v.len | (encoded ? VLOG_VLEN_ENCODED : 0));
    memcpy(rec + VLOG_REC_HEADER_LEN, ik.data, ik.len);
    if (v.len)
        memcpy(rec + VLOG_REC_HEADER_LEN + ik.len, v.data, v.len);
    put_fixed64(rec + n, checksum64(rec, n));
    g->len += n + 8;
}

void vlog_gather_sealed(buf *g, env_file *f, uint64_t off, slice ik, slice v, int encoded,
                        buf *scratch, int *rc)
{
    char *rec = g->data + g->len;
    size_t body = ik.len + v.len, n = VLOG_REC_HEADER_LEN + crypt_sealed_len(body);

    buf_reset(scratch);
    if (buf_append(scratch, ik.data, ik.len) != 0 || buf_append(scratch, v.data, v.len) != 0) {
        *rc = status_err(STOAT_ENOMEM, "vlog: out of memory");
        return;
    }
    vlog_rec_header(rec, (uint32_t)ik.len, (uint32_t)v.len | (encoded ? VLOG_VLEN_ENCODED : 0));
    if ((*rc = crypt_seal(f, off, scratch->data, body, rec + VLOG_REC_HEADER_LEN)) != 0)
        return;
    put_fixed64(rec + n, checksum64(rec, n));
    g->len += n + 8;
}

int vlog_rec_unseal(env_file *f, const char *path, const vptr *p, const char *rec, buf *plain,
                    vptr *q)
{
    unsigned long long off = (unsigned long long)p->offset;
    uint32_t klen, vlen;
    size_t n;
    int rc;

    if (p->len < VLOG_REC_OVERHEAD + CRYPT_OVERHEAD || !vlog_rec_header_ok(rec))
        return status_err(STOAT_ECORRUPT, "%s: bad record header at offset %llu", path, off);
    klen = get_fixed32(rec);
    vlen = get_fixed32(rec + 4) & ~VLOG_VLEN_ENCODED;
    n = (size_t)vlog_record_len(klen, vlen);
    if (n + CRYPT_OVERHEAD != p->len)
        return status_err(STOAT_ECORRUPT, "%s: record at offset %llu is %zu bytes, pointer says "
                          "%u", path, off, n + CRYPT_OVERHEAD, p->len);
    buf_reset(plain);
    if (buf_reserve(plain, n) != 0)
        return status_err(STOAT_ENOMEM, "%s: no memory for a %zu-byte record", path, n);
    memcpy(plain->data, rec, VLOG_REC_HEADER_LEN);
    rc = crypt_open(f, p->offset, rec + VLOG_REC_HEADER_LEN, crypt_sealed_len(klen + (size_t)vlen),
                    plain->data + VLOG_REC_HEADER_LEN, "record");
    if (rc != 0)
        return rc;
    memset(plain->data + n - 8, 0, 8);
    plain->len = n;
    *q = *p;
    q->len = (uint32_t)n;
    return 0;
}

int vlog_validate(slice ik, slice v)
{
    if (ik.len < IKEY_SUFFIX_LEN)
        return status_err(STOAT_EINVAL, "vlog: internal key of %zu bytes", ik.len);
    if (ik.len > VLOG_MAX_KEY_LEN)
        return status_err(STOAT_ETOOBIG, "vlog: key of %zu bytes", ik.len);
    if (v.len > STOAT_MAX_VALUE_SIZE)
        return status_err(STOAT_ETOOBIG, "vlog: value of %zu bytes exceeds %u", v.len,
                          STOAT_MAX_VALUE_SIZE);
    return 0;
}

/*
 * Checks what is cheap in the record rec (p->len bytes, read from p): an
 * intact header, the length the pointer says, and the key ikey. The
 * checksum over the whole record is vlog_rec_verify's.
 */
int vlog_rec_check_header(const char *path, const vptr *p, const char *rec, slice ikey)
{
    char ks[VLOG_KEY_STR];
    uint32_t klen = get_fixed32(rec), vlen = get_fixed32(rec + 4) & ~VLOG_VLEN_ENCODED;
    unsigned long long off = (unsigned long long)p->offset;

    if (!vlog_rec_header_ok(rec))
        return status_err(STOAT_ECORRUPT, "%s: bad record header at offset %llu (key %s)", path,
                          off, vlog_key_str(ikey, ks, sizeof(ks)));
    if (vlog_record_len(klen, vlen) != p->len)
        return status_err(STOAT_ECORRUPT,
                          "%s: record at offset %llu is %llu bytes, pointer says %u (key %s)",
                          path, off, (unsigned long long)vlog_record_len(klen, vlen), p->len,
                          vlog_key_str(ikey, ks, sizeof(ks)));
    if (klen != ikey.len || memcmp(rec + VLOG_REC_HEADER_LEN, ikey.data, klen) != 0) {
        char other[VLOG_KEY_STR];
        return status_err(STOAT_ECORRUPT, "%s: record at offset %llu holds key %s, not %s",
                          path, off,
                          vlog_key_str(slice_make(rec + VLOG_REC_HEADER_LEN, klen), other,
                                       sizeof(other)),
                          vlog_key_str(ikey, ks, sizeof(ks)));
    }
    return 0;
}

/* Checks the record rec (p->len bytes, read from p) against ikey,
 * checksum included. */
int vlog_rec_verify(const char *path, const vptr *p, const char *rec, slice ikey)
{
    char ks[VLOG_KEY_STR];
    int rc;

    if ((rc = vlog_rec_check_header(path, p, rec, ikey)) != 0)
        return rc;
    if (checksum64(rec, p->len - 8) != get_fixed64(rec + p->len - 8))
        return status_err(STOAT_ECORRUPT, "%s: bad record checksum at offset %llu (key %s)",
                          path, (unsigned long long)p->offset,
                          vlog_key_str(ikey, ks, sizeof(ks)));
    return 0;
}

/*
 * The value of the checked record rec (at off): a slice into rec, or, for
 * a compressed one, its decompressed bytes in raw (reset first).
 * STOAT_ECORRUPT when a compressed value does not decompress.
 */
int vlog_rec_value(const char *path, uint64_t off, const char *rec, buf *raw, slice *value)
{
    uint32_t klen = get_fixed32(rec), vword = get_fixed32(rec + 4), raw_len;
    uint32_t vlen = vword & ~VLOG_VLEN_ENCODED;
    const char *v = rec + VLOG_REC_HEADER_LEN + klen, *end = v + vlen, *q;
    int codec, rc;

    if (!(vword & VLOG_VLEN_ENCODED)) {
        *value = slice_make(v, vlen);
        return 0;
    }
    buf_reset(raw);
    codec = vlen > 0 ? (unsigned char)v[0] : -1;
    q = vlen > 0 ? get_varint32(v + 1, end, &raw_len) : NULL;
    if (q == NULL || (codec != STOAT_COMPRESSION_LZ4 && codec != STOAT_COMPRESSION_ZSTD) ||
        raw_len > STOAT_MAX_VALUE_SIZE || !decompress_size_ok(codec, q, (size_t)(end - q), raw_len))
        return status_err(STOAT_ECORRUPT, "%s: bad compressed value in the record at offset %llu",
                          path, (unsigned long long)off);
    if (buf_reserve(raw, raw_len ? raw_len : 1) != 0)
        return status_err(STOAT_ENOMEM, "%s: no memory for a %u-byte value", path, raw_len);
    if ((rc = decompress_block(codec, q, (size_t)(end - q), raw->data, raw_len)) != 0)
        return status_err(rc, "%s: record at offset %llu: %s", path, (unsigned long long)off,
                          status_msg());
    raw->len = raw_len;
    *value = slice_make(raw->data, raw_len);
    return 0;
}

/*
 * The stored form of value v under codec: *encoded = 1 and the encoded
 * bytes (codec byte | varint32 length | compressed) appended to out when
 * compression saves at least an eighth; else *encoded = 0 and out is
 * unchanged (store v as it is).
 */
int vlog_encode_value(int codec, int zstd_level, slice v, buf *out, int *encoded)
{
    size_t start = out->len;
    char h[6];
    int rc;

    *encoded = 0;
    if (codec == STOAT_COMPRESSION_NONE || v.len < VLOG_COMPRESS_MIN)
        return 0;
    h[0] = (char)codec;
    if ((rc = buf_append(out, h, 1 + put_varint32(h + 1, (uint32_t)v.len))) != 0)
        return rc;
    /* lz4 on large values: a faster setting loses little there (measured
     * on db_bench's values, half compressible: 16 KiB at acceleration 8
     * compresses to 0.57 instead of 0.55 in 4 us instead of 14 us; at
     * 1 KiB it would give 0.76 instead of 0.58). */
    if (codec == STOAT_COMPRESSION_LZ4 && v.len >= VLOG_LZ4_FAST_MIN)
        rc = compress_lz4_fast(v.data, v.len, VLOG_LZ4_FAST_ACCEL, out);
    else
        rc = compress_block(codec, zstd_level, v.data, v.len, out);
    if (rc != 0) {
        out->len = start;
        return rc;
    }
    if (out->len - start > v.len - v.len / 8) {
        out->len = start;   /* not worth it: stored raw */
        return 0;
    }
    *encoded = 1;
    return 0;
}
