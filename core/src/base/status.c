/*
 * status.c - error names and thread-local detailed messages.
 */
#include "base/status.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char status_buf[STATUS_MSG_MAX];

/* Formatted into a copy first: a message may quote the one it replaces
 * (status_err(rc, "...: %s", status_msg())). */
int status_err(int rc, const char *fmt, ...)
{
    char msg[STATUS_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    memcpy(status_buf, msg, sizeof(msg));
    return rc;
}

int status_errno(int err, const char *what, const char *path)
{
    int rc = err == ENOSPC ? STOAT_ENOSPC : err == ENOMEM ? STOAT_ENOMEM : STOAT_EIO;

    return status_err(rc, "%s %s: %s", what, path ? path : "", strerror(err));
}

const char *status_msg(void)
{
    return status_buf;
}

void status_set_msg(const char *msg)
{
    snprintf(status_buf, sizeof(status_buf), "%s", msg ? msg : "");
}

void status_clear(void)
{
    status_buf[0] = '\0';
}

const char *stoat_strerror(int rc)
{
    switch (rc) {
    case STOAT_OK: return "ok";
    case STOAT_ENOTFOUND: return "not found";
    case STOAT_EINVAL: return "invalid argument";
    case STOAT_ECORRUPT: return "corruption";
    case STOAT_EIO: return "io error";
    case STOAT_ENOMEM: return "out of memory";
    case STOAT_EBUSY: return "busy";
    case STOAT_ECLOSED: return "closed";
    case STOAT_EFORKED: return "forked";
    case STOAT_ECONFLICT: return "conflict";
    case STOAT_ETOOBIG: return "too big";
    case STOAT_EREADONLY: return "read only";
    case STOAT_ENOSPC: return "no space";
    case STOAT_ENOTSUP: return "not supported";
    case STOAT_EEXIST: return "exists";
    case STOAT_EKEY: return "bad key";
    default: return "unknown error";
    }
}

const char *stoat_errmsg(const stoat_db *db)
{
    (void)db; /* messages are per thread, which covers the handle it used */
    return status_msg();
}

const char *stoat_version(void)
{
    return STOAT_VERSION_STRING;
}

const char *status_key_str(const void *key, size_t len, char *dst)
{
    const unsigned char *p = key;
    size_t n = 0, shown;

    dst[n++] = '"';
    for (shown = 0; shown < len && shown < STATUS_KEY_SHOWN; shown++) {
        if (p[shown] >= 0x20 && p[shown] < 0x7f && p[shown] != '"' && p[shown] != '\\')
            dst[n++] = (char)p[shown];
        else
            n += (size_t)snprintf(dst + n, STATUS_KEY_MAX - n, "\\x%02x", p[shown]);
    }
    if (shown < len)
        n += (size_t)snprintf(dst + n, STATUS_KEY_MAX - n, "...(%zu bytes)", len);
    dst[n++] = '"';
    dst[n] = '\0';
    return dst;
}
