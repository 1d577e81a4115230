/*
 * vlog_util.h - what the value-log tests share (vlog_test.c,
 * vlog_faults_test.c): records that know how to rebuild their values,
 * appending and reading them back, and raw file access for damaging them.
 */
#ifndef STOAT_VLOG_UTIL_H
#define STOAT_VLOG_UTIL_H

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "env/env.h"
#include "base/ikey.h"
#include "base/status.h"
#include "vlog/vlog.h"
#include "test.h"

/* One record a test wrote: internal key, how to rebuild its value, where. */
typedef struct rec {
    char key[40];
    size_t klen;
    size_t vlen;
    uint64_t seed;
    vptr p;
} rec;

static inline void fill_value(char *dst, size_t len, uint64_t seed)
{
    uint64_t s = seed | 1;

    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0)
            s = s * 6364136223846793005ull + 1442695040888963407ull;
        dst[i] = (char)(s >> (8 * (i % 8)));
    }
}

static inline void rec_make(rec *r, int i, size_t vlen)
{
    char ukey[24];
    int n = snprintf(ukey, sizeof(ukey), "key%06d", i);

    memset(r, 0, sizeof(*r));
    r->klen = ikey_encode(r->key, ukey, (size_t)n, (uint64_t)i + 1);
    r->vlen = vlen;
    r->seed = (uint64_t)i * 7919 + 17;
}

static inline slice rec_key(const rec *r)
{
    return slice_make(r->key, r->klen);
}

static inline void append_rec(vlog *l, rec *r)
{
    char *v = malloc(r->vlen ? r->vlen : 1);

    REQUIRE(v != NULL);
    fill_value(v, r->vlen, r->seed);
    CHECK_RC(vlog_append(l, rec_key(r), slice_make(v, r->vlen), &r->p), 0);
    free(v);
}

/* 0 when the record reads back intact, 1 when it reads wrong bytes, else
 * the error. */
static inline int read_rec(vlog *l, const rec *r)
{
    buf out = {0};
    char *want = malloc(r->vlen ? r->vlen : 1);
    int rc;

    if (want == NULL)   /* no REQUIRE: reader threads call this */
        return STOAT_ENOMEM;
    fill_value(want, r->vlen, r->seed);
    rc = vlog_read(l, &r->p, rec_key(r), &out);
    if (rc == 0 && (out.len != r->vlen || (r->vlen && memcmp(out.data, want, r->vlen) != 0)))
        rc = 1;
    if (rc != 0 && out.len != 0)
        rc = 2;     /* a failed read must leave nothing behind */
    buf_free(&out);
    free(want);
    return rc;
}

static inline const char *fpath(int fid)
{
    static char path[4096];

    snprintf(path, sizeof(path), "%s/%06d.vlog", test_tmpdir(), fid);
    return path;
}

static inline void file_get(const char *path, buf *out)
{
    char *data;
    size_t len;

    REQUIRE_OK(env_read_all(env_posix(), path, &data, &len));
    buf_reset(out);
    REQUIRE_OK(buf_append(out, data, len));
    free(data);
}

static inline void file_put(const char *path, const void *data, size_t len)
{
    env_file *f;

    REQUIRE_OK(env_open(env_posix(), path, ENV_WRITE | ENV_TRUNC, &f));
    if (len > 0)
        REQUIRE_OK(env_append(f, data, len));
    REQUIRE_OK(env_close(f));
}

static inline void flip_byte(const char *path, uint64_t off)
{
    buf b = {0};

    file_get(path, &b);
    REQUIRE(off < b.len);
    b.data[off] ^= 0x40;
    file_put(path, b.data, b.len);
    buf_free(&b);
}

static inline uint64_t disk_size(const char *path)
{
    buf b = {0};
    uint64_t n;

    file_get(path, &b);
    n = b.len;
    buf_free(&b);
    return n;
}

static inline vlog *open_log(env *e, const char *dir, uint64_t file_size, int read_only)
{
    vlog_options o = {0};
    vlog *l = NULL;

    o.file_size = file_size;
    o.read_only = read_only;
    REQUIRE_OK(vlog_open(e, dir, &o, &l));
    return l;
}

static inline int count_fn(void *arg, const vptr *p, slice ikey, slice value)
{
    (void)p;
    (void)ikey;
    (void)value;
    ++*(int *)arg;
    return 0;
}

#endif
