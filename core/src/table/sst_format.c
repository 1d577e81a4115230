/*
 * sst_format.c - what SST builders and readers share: table file names,
 * properties, and the encoding of trailers, handles, footers and the
 * properties block (sst_format.h). No state; thread-safe.
 */
#include "table/sst.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/checksum.h"
#include "base/coding.h"
#include "table/sst_format.h"
#include "base/status.h"
#include "env/filename.h"

void sst_props_free(sst_props *p)
{
    if (p == NULL)
        return;
    buf_free(&p->smallest);
    buf_free(&p->largest);
}

char *sst_path(const char *dir, uint64_t id)
{
    return filename_path(dir, id, FILENAME_EXT_TABLE);
}

void sst_trailer_encode(char *trailer, int type, uint32_t raw_len, const char *stored, size_t len)
{
    trailer[0] = (char)type;
    put_fixed32(trailer + 1, raw_len);
    put_fixed64(trailer + 5, checksum64_2(stored, len, trailer, 5));
}

int sst_handle_put(buf *out, sst_handle h)
{
    int rc;

    if ((rc = buf_put_varint(out, h.offset)) != 0)
        return rc;
    return buf_put_varint(out, h.size);
}

int sst_handle_get(slice v, sst_handle *h)
{
    const char *p = v.data, *limit = v.data + v.len;

    if ((p = get_varint64(p, limit, &h->offset)) == NULL ||
        (p = get_varint64(p, limit, &h->size)) == NULL || p != limit)
        return -1;
    return 0;
}

static void sst_fixed_handle_put(char *dst, sst_handle h)
{
    put_fixed64(dst, h.offset);
    put_fixed64(dst + 8, h.size);
}

static sst_handle sst_fixed_handle_get(const char *src)
{
    sst_handle h = {get_fixed64(src), get_fixed64(src + 8)};
    return h;
}

void sst_footer_encode(char *dst, const sst_footer *f)
{
    size_t n = 0;

    sst_fixed_handle_put(dst + n, f->filter);
    n += SST_HANDLE_LEN;
    sst_fixed_handle_put(dst + n, f->props);
    n += SST_HANDLE_LEN;
    sst_fixed_handle_put(dst + n, f->index);
    n += SST_HANDLE_LEN;
    put_fixed32(dst + n, f->version);
    n += 4;
    put_fixed64(dst + n, checksum64(dst, n));
    put_fixed64(dst + n + 8, SST_MAGIC);
}

int sst_footer_decode(const char *src, const char *path, sst_footer *f)
{
    size_t ck_at = 3 * SST_HANDLE_LEN + 4;

    memset(f, 0, sizeof(*f));
    if (get_fixed64(src + SST_FOOTER_LEN - 8) != SST_MAGIC)
        return status_err(STOAT_ECORRUPT, "%s: bad magic number in footer (not an SST file)",
                          path);
    /* The checksum comes first: a damaged version field is damage, not a
     * newer format. Only an intact footer can claim another version. */
    f->version = get_fixed32(src + ck_at - 4);
    if (get_fixed64(src + ck_at) != checksum64(src, ck_at)) {
        if (f->version < 1 || f->version > SST_FORMAT_VERSION)
            return status_err(STOAT_ECORRUPT, "%s: bad footer checksum (footer claims format "
                              "version %u; this build reads version %d)",
                              path, (unsigned)f->version, SST_FORMAT_VERSION);
        return status_err(STOAT_ECORRUPT, "%s: bad footer checksum", path);
    }
    if (f->version < 1 || f->version > SST_FORMAT_VERSION)
        return status_err(STOAT_ENOTSUP, "%s: SST format version %u not supported (this build "
                          "reads versions 1 to %d)", path, (unsigned)f->version, SST_FORMAT_VERSION);
    f->filter = sst_fixed_handle_get(src);
    f->props = sst_fixed_handle_get(src + SST_HANDLE_LEN);
    f->index = sst_fixed_handle_get(src + 2 * SST_HANDLE_LEN);
    return 0;
}

int sst_props_encode(const sst_props *p, buf *out)
{
    int rc;

    if ((rc = buf_put_varint(out, p->num_entries)) != 0 ||
        (rc = buf_put_varint(out, p->num_deletions)) != 0 ||
        (rc = buf_put_varint(out, p->min_version)) != 0 ||
        (rc = buf_put_varint(out, p->max_version)) != 0 ||
        (rc = buf_put_varint(out, p->raw_key_bytes)) != 0 ||
        (rc = buf_put_varint(out, p->raw_value_bytes)) != 0 ||
        (rc = buf_put_lenpref(out, p->smallest.data, p->smallest.len)) != 0 ||
        (rc = buf_put_lenpref(out, p->largest.data, p->largest.len)) != 0)
        return rc;
    return 0;
}

static const char *sst_get_lenpref(const char *p, const char *limit, slice *out)
{
    uint64_t n;

    if ((p = get_varint64(p, limit, &n)) == NULL || n > (uint64_t)(limit - p))
        return NULL;
    *out = slice_make(p, (size_t)n);
    return p + n;
}

int sst_props_decode(slice s, sst_props *p)
{
    const char *q = s.data, *limit = s.data + s.len;
    slice smallest, largest;

    memset(p, 0, sizeof(*p));
    if ((q = get_varint64(q, limit, &p->num_entries)) == NULL ||
        (q = get_varint64(q, limit, &p->num_deletions)) == NULL ||
        (q = get_varint64(q, limit, &p->min_version)) == NULL ||
        (q = get_varint64(q, limit, &p->max_version)) == NULL ||
        (q = get_varint64(q, limit, &p->raw_key_bytes)) == NULL ||
        (q = get_varint64(q, limit, &p->raw_value_bytes)) == NULL ||
        (q = sst_get_lenpref(q, limit, &smallest)) == NULL ||
        (q = sst_get_lenpref(q, limit, &largest)) == NULL)
        return -1;
    if ((smallest.len != 0 && smallest.len < 8) || (largest.len != 0 && largest.len < 8))
        return -1;
    if (buf_append(&p->smallest, smallest.data, smallest.len) != 0 ||
        buf_append(&p->largest, largest.data, largest.len) != 0) {
        sst_props_free(p);
        return STOAT_ENOMEM;
    }
    return 0;
}
