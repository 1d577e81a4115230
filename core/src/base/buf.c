/*
 * buf.c - growable byte buffer.
 */
#include "base/buf.h"

#include <stdlib.h>
#include <string.h>

#include "base/coding.h"
#include "stoat.h"

int buf_reserve(buf *b, size_t n)
{
    size_t cap;
    char *p;

    if (b->cap - b->len >= n)
        return 0;
    if (n > SIZE_MAX / 2 - b->len)
        return STOAT_ENOMEM;
    cap = b->cap ? b->cap : 64;
    while (cap - b->len < n)
        cap *= 2;
    if ((p = realloc(b->data, cap)) == NULL)
        return STOAT_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(buf *b, const void *p, size_t n)
{
    int rc;

    if (n == 0)
        return 0;
    if ((rc = buf_reserve(b, n)) != 0)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int buf_put_byte(buf *b, uint8_t v)
{
    return buf_append(b, &v, 1);
}

int buf_put_fixed32(buf *b, uint32_t v)
{
    char tmp[4];

    put_fixed32(tmp, v);
    return buf_append(b, tmp, sizeof(tmp));
}

int buf_put_fixed64(buf *b, uint64_t v)
{
    char tmp[8];

    put_fixed64(tmp, v);
    return buf_append(b, tmp, sizeof(tmp));
}

int buf_put_varint(buf *b, uint64_t v)
{
    char tmp[VARINT64_MAX_LEN];

    return buf_append(b, tmp, put_varint64(tmp, v));
}

int buf_put_lenpref(buf *b, const void *p, size_t n)
{
    int rc;

    if ((rc = buf_reserve(b, VARINT64_MAX_LEN + n)) != 0)
        return rc;
    b->len += put_varint64(b->data + b->len, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void buf_free(buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
