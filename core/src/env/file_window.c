/*
 * file_window.c - the sliding read window of file_window.h.
 */
#include "env/file_window.h"

#include "base/status.h"

int file_window_get(file_window *w, uint64_t off, size_t len, const char **p)
{
    size_t want;
    int rc;

    if (off >= w->off && off + len <= w->off + w->b.len) {
        *p = w->b.data + (off - w->off);
        return 0;
    }
    want = len > w->chunk ? len : w->chunk;
    if (want > w->size - off)
        want = (size_t)(w->size - off);
    buf_reset(&w->b);
    w->off = off;
    if (buf_reserve(&w->b, want) != 0)
        return status_err(STOAT_ENOMEM, "%s: no memory to read %zu bytes", w->path, want);
    if ((rc = env_read_exact(w->f, off, w->b.data, want)) != 0)
        return rc;
    w->b.len = want;
    *p = w->b.data;
    return 0;
}

int file_window_zeros_from(file_window *w, uint64_t off, int *zero)
{
    const char *p;
    int rc;

    *zero = 1;
    while (off < w->size) {
        size_t n = w->size - off < w->chunk ? (size_t)(w->size - off) : w->chunk;
        if ((rc = file_window_get(w, off, n, &p)) != 0)
            return rc;
        for (size_t i = 0; i < n; i++) {
            if (p[i] != 0) {
                *zero = 0;
                return 0;
            }
        }
        off += n;
    }
    return 0;
}
