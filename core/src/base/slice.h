/*
 * slice.h - a borrowed view of bytes. Whoever hands out a slice says how
 * long its bytes stay valid.
 */
#ifndef STOAT_SLICE_H
#define STOAT_SLICE_H

#include <stddef.h>
#include <string.h>

typedef struct slice {
    const char *data;
    size_t len;
} slice;

static inline slice slice_make(const void *p, size_t len)
{
    slice s = {(const char *)p, len};
    return s;
}

/* Bytewise comparison, shorter first on a common prefix. */
static inline int slice_cmp(slice a, slice b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.data, b.data, n) : 0;
    if (c != 0)
        return c;
    return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

static inline int slice_starts_with(slice s, slice prefix)
{
    return s.len >= prefix.len && (prefix.len == 0 || memcmp(s.data, prefix.data, prefix.len) == 0);
}

#endif
