/*
 * buf.h - a growable byte buffer, the builder's friend.
 *
 * A buf owns its bytes (data, len, cap). Appends grow it geometrically;
 * every append returns 0 or STOAT_ENOMEM and leaves the buffer unchanged on
 * failure. A zeroed struct is an empty buffer. Not thread-safe.
 */
#ifndef STOAT_BUF_H
#define STOAT_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
} buf;

/* Ensures room for n more bytes past len. */
int buf_reserve(buf *b, size_t n);
int buf_append(buf *b, const void *p, size_t n);
int buf_put_byte(buf *b, uint8_t v);
int buf_put_fixed32(buf *b, uint32_t v);
int buf_put_fixed64(buf *b, uint64_t v);
int buf_put_varint(buf *b, uint64_t v);
/* varint length followed by the bytes */
int buf_put_lenpref(buf *b, const void *p, size_t n);
static inline void buf_reset(buf *b) { b->len = 0; }
void buf_free(buf *b);

#endif
