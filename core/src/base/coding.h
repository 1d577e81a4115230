/*
 * coding.h - fixed-width little-endian and varint encoding.
 *
 * The one byte order on disk: fixed fields are little-endian, lengths and
 * counts are LEB128 varints (7 bits a byte, low group first, high bit set
 * on all but the last byte). Decoders never read past `limit` and return
 * NULL on truncated or overlong input. Pure functions, thread-safe.
 */
#ifndef STOAT_CODING_H
#define STOAT_CODING_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VARINT32_MAX_LEN 5
#define VARINT64_MAX_LEN 10

static inline void put_fixed16(char *p, uint16_t v)
{
    p[0] = (char)v;
    p[1] = (char)(v >> 8);
}

static inline void put_fixed32(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (char)(v >> (8 * i));
}

static inline void put_fixed64(char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (char)(v >> (8 * i));
}

static inline uint16_t get_fixed16(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint16_t)(u[0] | (u[1] << 8));
}

static inline uint32_t get_fixed32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] | ((uint32_t)u[1] << 8) | ((uint32_t)u[2] << 16) |
           ((uint32_t)u[3] << 24);
}

static inline uint64_t get_fixed64(const char *p)
{
    return (uint64_t)get_fixed32(p) | ((uint64_t)get_fixed32(p + 4) << 32);
}

/* Big-endian 64-bit, used only by internal keys so that they sort bytewise. */
static inline void put_be64(char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (char)(v >> (56 - 8 * i));
}

/* One load and a byte swap where the compiler allows (it does not turn the
 * byte loop into that by itself); the loop elsewhere. */
static inline uint64_t get_be64(const char *p)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return __builtin_bswap64(v);
#else
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | u[i];
    return v;
#endif
}

/* Writes v at p; returns the number of bytes written (1..10). */
static inline size_t put_varint64(char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (char)v;
    return n;
}

static inline size_t put_varint32(char *p, uint32_t v)
{
    return put_varint64(p, v);
}

static inline size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Decodes a varint at p (not past limit) into *v; returns the byte after
 * it, or NULL when truncated or longer than 10 bytes. */
static inline const char *get_varint64(const char *p, const char *limit, uint64_t *v)
{
    uint64_t result = 0;
    for (unsigned shift = 0; shift <= 63 && p < limit; shift += 7) {
        uint64_t byte = (unsigned char)*p++;
        result |= (byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *v = result;
            return p;
        }
    }
    return NULL;
}

/* As get_varint64, and also NULL when the value exceeds 32 bits. */
static inline const char *get_varint32(const char *p, const char *limit, uint32_t *v)
{
    uint64_t w;
    p = get_varint64(p, limit, &w);
    if (p == NULL || w > UINT32_MAX)
        return NULL;
    *v = (uint32_t)w;
    return p;
}

#endif
