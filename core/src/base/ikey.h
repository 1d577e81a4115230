/*
 * ikey.h - internal keys and stored values: the data model of every layer.
 *
 * Internal key = user key ++ 8-byte big-endian (UINT64_MAX - version), so
 * that, for one user key, the newest version sorts first. Keys compare by
 * user key (bytewise, shorter first), then by the 8-byte suffix; a plain
 * memcmp of whole internal keys would misorder "a"+ts against "aa"+ts.
 *
 * Stored value ("vstruct"), in memtables, WALs and SSTs:
 *     meta (1 byte) | user_meta (1 byte) | expires_at (varint, 0 = never)
 *     | value bytes (the rest), or a 16-byte value pointer when meta has
 *     VMETA_VPTR.
 * expires_at is unix milliseconds when meta has VMETA_EXPIRY_MS (format 2:
 * set on every expiring entry written since), unix seconds otherwise
 * (format 1). In memory it is always milliseconds: encode sets the bit,
 * decode converts seconds and clears it, so nothing else sees it.
 * Pure functions, thread-safe.
 */
#ifndef STOAT_IKEY_H
#define STOAT_IKEY_H

#include <stdint.h>

#include "base/coding.h"
#include "base/slice.h"

#define IKEY_SUFFIX_LEN 8

/* The version that sorts before every real version of a key: seeking to
 * user_key+IKEY_VERSION_MAX lands on its newest entry. */
#define IKEY_VERSION_MAX UINT64_MAX

/* Writes user key + suffix at dst (ulen + 8 bytes); returns the length. */
static inline size_t ikey_encode(char *dst, const void *ukey, size_t ulen, uint64_t ver)
{
    if (ulen)
        memcpy(dst, ukey, ulen);
    put_be64(dst + ulen, UINT64_MAX - ver);
    return ulen + IKEY_SUFFIX_LEN;
}

/* Callers guarantee ik.len >= 8 (checked where keys enter from disk). */
static inline slice ikey_user(slice ik)
{
    return slice_make(ik.data, ik.len - IKEY_SUFFIX_LEN);
}

static inline uint64_t ikey_version(slice ik)
{
    return UINT64_MAX - get_be64(ik.data + ik.len - IKEY_SUFFIX_LEN);
}

static inline int ikey_cmp(slice a, slice b)
{
    int c = slice_cmp(ikey_user(a), ikey_user(b));
    if (c != 0)
        return c;
    return memcmp(a.data + a.len - IKEY_SUFFIX_LEN, b.data + b.len - IKEY_SUFFIX_LEN,
                  IKEY_SUFFIX_LEN);
}

/* meta bits */
enum {
    VMETA_DELETE = 0x01,            /* tombstone */
    VMETA_VPTR = 0x02,              /* value is a value-log pointer */
    VMETA_DISCARD_EARLIER = 0x04,   /* older versions may be dropped */
    VMETA_EXPIRY_MS = 0x08          /* expires_at is in ms (else seconds) */
};

#define VPTR_LEN 16

typedef struct vstruct {
    uint8_t meta;
    uint8_t user_meta;
    uint64_t expires_at;
    slice value;        /* borrowed from the encoded bytes */
} vstruct;

/* The one expiry rule: a value with an expiry has expired once now
 * (milliseconds since the epoch, db_clock_ms) reaches it. now == 0 means nothing expires
 * (what compaction and iterators are given when time must not matter). */
static inline int vstruct_expired(const vstruct *v, uint64_t now)
{
    return v->expires_at != 0 && now != 0 && v->expires_at <= now;
}

/* Value-log pointer: fixed32 fid | fixed64 offset | fixed32 len, LE. */
typedef struct vptr {
    uint32_t fid;
    uint64_t offset;
    uint32_t len;
} vptr;

static inline size_t vstruct_encoded_len(const vstruct *v)
{
    return 2 + varint_len(v->expires_at) + v->value.len;
}

static inline size_t vstruct_encode(char *dst, const vstruct *v)
{
    size_t n = 0;
    dst[n++] = (char)(v->expires_at ? v->meta | VMETA_EXPIRY_MS : v->meta);
    dst[n++] = (char)v->user_meta;
    n += put_varint64(dst + n, v->expires_at);
    if (v->value.len)
        memcpy(dst + n, v->value.data, v->value.len);
    return n + v->value.len;
}

/* 0, or -1 when malformed (the caller reports corruption with context). */
static inline int vstruct_decode(slice enc, vstruct *out)
{
    const char *p = enc.data, *limit = enc.data + enc.len;
    if (enc.len < 3)
        return -1;
    out->meta = (uint8_t)p[0];
    out->user_meta = (uint8_t)p[1];
    p = get_varint64(p + 2, limit, &out->expires_at);
    if (p == NULL)
        return -1;
    if (out->expires_at != 0 && !(out->meta & VMETA_EXPIRY_MS))
        out->expires_at *= 1000;
    out->meta &= (uint8_t)~VMETA_EXPIRY_MS;
    out->value = slice_make(p, (size_t)(limit - p));
    if ((out->meta & VMETA_VPTR) && out->value.len != VPTR_LEN)
        return -1;
    return 0;
}

static inline void vptr_encode(char *dst, const vptr *p)
{
    put_fixed32(dst, p->fid);
    put_fixed64(dst + 4, p->offset);
    put_fixed32(dst + 12, p->len);
}

static inline void vptr_decode(const char *src, vptr *p)
{
    p->fid = get_fixed32(src);
    p->offset = get_fixed64(src + 4);
    p->len = get_fixed32(src + 12);
}

#endif
