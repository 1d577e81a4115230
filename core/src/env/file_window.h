/*
 * file_window.h - reading a file front to back through a sliding window.
 *
 * Log replays (WAL, value log) walk records that may be large or torn; a
 * window holds [off, off + len) of the file in one buffer, refilled with
 * one read of at least `chunk` bytes when a request falls outside it. The
 * window never reads past `size` (the caller's idea of the file's end).
 * Pointers it hands out are borrowed until the next call. One thread.
 */
#ifndef STOAT_FILE_WINDOW_H
#define STOAT_FILE_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "env/env.h"

typedef struct file_window {
    env_file *f;
    const char *path;       /* for messages */
    uint64_t size;          /* bytes of the file that may be read */
    size_t chunk;           /* smallest refill */
    uint64_t off;           /* file offset of b.data[0] */
    buf b;
} file_window;

static inline void file_window_init(file_window *w, env_file *f, const char *path,
                                    uint64_t size, size_t chunk)
{
    *w = (file_window){.f = f, .path = path, .size = size, .chunk = chunk};
}

/* Points *p at the file's bytes [off, off + len), which the caller has
 * checked lie within size. */
int file_window_get(file_window *w, uint64_t off, size_t len, const char **p);

/* *zero = 1 when every byte from off to size is zero (a tail a crash left
 * unwritten), 0 otherwise. */
int file_window_zeros_from(file_window *w, uint64_t off, int *zero);

static inline void file_window_free(file_window *w)
{
    buf_free(&w->b);
}

#endif
