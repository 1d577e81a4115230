/*
 * engine.c - the helpers every adapter shares: the per-thread error
 * message and the caller-owned value buffer of engine.h.
 *
 * Thread-safe: the message lives in thread-local storage; a buffer belongs
 * to one thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

static _Thread_local char engine_msg[512];

int engine_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(engine_msg, sizeof engine_msg, fmt, ap);
    va_end(ap);
    return ENGINE_ERR;
}

const char *engine_errmsg(void)
{
    return engine_msg;
}

int engine_buf_set(engine_buf *b, const void *p, size_t len)
{
    if (len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *np;

        while (cap < len)
            cap *= 2;
        if ((np = realloc(b->p, cap)) == NULL)
            return engine_error("out of memory for a %zu-byte value", len);
        b->p = np;
        b->cap = cap;
    }
    if (len)
        memcpy(b->p, p, len);
    b->len = len;
    return ENGINE_OK;
}

void engine_buf_free(engine_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
