/*
 * sst_util.h - what the SST tests share (sst_test.c, sst_damage_test.c):
 * tables of known entries, building them, and checking a reader's gets,
 * iteration and seeks against them.
 */
#ifndef STOAT_SST_UTIL_H
#define STOAT_SST_UTIL_H

#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <stdlib.h>

#include "base/checksum.h"
#include "base/coding.h"
#include "env/env.h"
#include "base/ikey.h"
#include "table/sst_builder.h"
#include "table/sst_reader.h"
#include "base/status.h"
#include "test.h"

/* The footer's tail, as sst_format.h lays it out. */
#define FOOTER_LEN 68
#define FOOTER_VERSION_AT 48
#define FOOTER_CHECKSUM_AT 52

/* Entries in ikey order: all bytes in one buffer, offsets in an array. */
typedef struct entry {
    size_t koff, klen, voff, vlen;
} entry;

typedef struct table_data {
    buf bytes;
    entry *e;
    size_t n, cap;
    uint64_t deletions;
} table_data;

static inline slice tk(const table_data *t, size_t i)
{
    return slice_make(t->bytes.data + t->e[i].koff, t->e[i].klen);
}

static inline slice tv(const table_data *t, size_t i)
{
    return slice_make(t->bytes.data + t->e[i].voff, t->e[i].vlen);
}

static inline void td_add(table_data *t, slice ukey, uint64_t version, uint8_t meta, slice value)
{
    char hdr[2 + VARINT64_MAX_LEN];
    vstruct vs = {meta, 0, 0, slice_make(NULL, 0)};
    entry *en;

    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1024;
        REQUIRE((t->e = realloc(t->e, t->cap * sizeof(*t->e))) != NULL);
    }
    en = &t->e[t->n++];
    REQUIRE_OK(buf_reserve(&t->bytes, ukey.len + IKEY_SUFFIX_LEN));
    en->koff = t->bytes.len;
    en->klen = ikey_encode(t->bytes.data + t->bytes.len, ukey.data, ukey.len, version);
    t->bytes.len += en->klen;
    en->voff = t->bytes.len;
    REQUIRE_OK(buf_append(&t->bytes, hdr, vstruct_encode(hdr, &vs)));
    REQUIRE_OK(buf_append(&t->bytes, value.data, value.len));
    en->vlen = t->bytes.len - en->voff;
    t->deletions += (meta & VMETA_DELETE) != 0;
}

static inline void td_free(table_data *t)
{
    buf_free(&t->bytes);
    free(t->e);
}

static inline slice ukey_of(char *tmp, uint64_t i)
{
    return slice_make(tmp, (size_t)snprintf(tmp, 32, "key%08llu", (unsigned long long)i));
}

/* n entries: user keys key00000000.. (every third number, i % 3 == 2,
 * absent), key i with versions 10 * (i % 3 + 1) down to 10 in steps of
 * 10, some newest versions tombstones, values of varying length. */
static inline void td_make(table_data *t, size_t n)
{
    char uk[32], val[200];
    uint64_t s = 12345;

    memset(t, 0, sizeof(*t));
    for (uint64_t i = 0; t->n < n; i++) {
        if (i % 3 == 2)
            continue;
        slice u = ukey_of(uk, i);
        for (uint64_t v = i % 3 + 1; v >= 1 && t->n < n; v--) {
            size_t vl = (size_t)snprintf(val, sizeof(val), "value-%llu-%llu-",
                                         (unsigned long long)i, (unsigned long long)v);
            size_t pad = test_rand(&s) % 100;
            memset(val + vl, 'a' + (char)(i % 26), pad);
            uint8_t meta = (i % 17 == 0 && v == i % 3 + 1) ? VMETA_DELETE : 0;
            td_add(t, u, 10 * v, meta, slice_make(val, meta ? 0 : vl + pad));
        }
    }
}

static inline sst_options opts_with(int compression)
{
    sst_options o = {4096, compression, 1, 0.01};
    return o;
}

static inline char *path_in_tmp(const char *name)
{
    char *p = env_join(test_tmpdir(), name);
    REQUIRE(p != NULL);
    return p;
}

static inline void build(const char *path, const sst_options *o, const table_data *t, sst_props *props)
{
    sst_builder *b;

    REQUIRE_OK(sst_builder_new(env_posix(), path, o, &b));
    for (size_t i = 0; i < t->n; i++) {
        int rc = sst_builder_add(b, tk(t, i), tv(t, i));
        if (rc != 0)
            sst_builder_abandon(b);
        REQUIRE_OK(rc);
    }
    REQUIRE_OK(sst_builder_finish(b, props));
}

static inline int iter_at(const iter *it, const table_data *t, size_t i)
{
    return iter_valid(it) && slice_cmp(iter_key(it), tk(t, i)) == 0 &&
           slice_cmp(iter_value(it), tv(t, i)) == 0;
}

static inline void check_props(const sst_props *p, const table_data *t, const char *path)
{
    env_file *f;
    uint64_t size;

    CHECK(p->num_entries == t->n);
    CHECK(p->num_deletions == t->deletions);
    CHECK(p->min_version == 10 && p->max_version == 20);
    CHECK(slice_cmp(slice_make(p->smallest.data, p->smallest.len), tk(t, 0)) == 0);
    CHECK(slice_cmp(slice_make(p->largest.data, p->largest.len), tk(t, t->n - 1)) == 0);
    REQUIRE_OK(env_open(env_posix(), path, ENV_READ, &f));
    REQUIRE_OK(env_file_size(f, &size));
    env_close(f);
    CHECK(p->file_size == size);
}

/* Every entry by get at its own version, plus newer and older probes. */
static inline void check_gets(sst_reader *r, const table_data *t)
{
    buf k = {0}, v = {0};
    char uk[32];
    size_t bad = 0;

    for (size_t i = 0; i < t->n; i++) {
        slice ik = tk(t, i), u = ikey_user(ik);
        uint64_t ver = ikey_version(ik);
        if (sst_reader_get(r, u, ver, &k, &v) != 0 ||
            slice_cmp(slice_make(k.data, k.len), ik) != 0 ||
            slice_cmp(slice_make(v.data, v.len), tv(t, i)) != 0)
            bad++;
        /* a version between this one and the next newer gives this one */
        if (sst_reader_get(r, u, ver + 5, &k, &v) != 0 ||
            slice_cmp(slice_make(k.data, k.len), ik) != 0)
            bad++;
        /* older than the oldest version: nothing */
        if (ver == 10 && sst_reader_get(r, u, 9, &k, &v) != STOAT_ENOTFOUND)
            bad++;
    }
    CHECK(bad == 0);
    /* absent user keys, inside and outside the key range */
    for (uint64_t i = 2; i < 3000; i += 3)
        CHECK_RC(sst_reader_get(r, ukey_of(uk, i), UINT64_MAX, &k, &v), STOAT_ENOTFOUND);
    CHECK_RC(sst_reader_get(r, slice_make("a", 1), UINT64_MAX, &k, &v), STOAT_ENOTFOUND);
    CHECK_RC(sst_reader_get(r, slice_make("zzz", 3), UINT64_MAX, &k, &v), STOAT_ENOTFOUND);
    CHECK(k.len == 0 && v.len == 0);
    buf_free(&k);
    buf_free(&v);
}

static inline void check_iteration(sst_reader *r, const table_data *t)
{
    iter *it = sst_reader_iter(r);
    size_t i;

    REQUIRE(it != NULL);
    for (i = 0, iter_seek_first(it); iter_valid(it); iter_next(it), i++)
        if (i >= t->n || !iter_at(it, t, i))
            break;
    CHECK(i == t->n && iter_status(it) == 0);
    for (i = t->n, iter_seek_last(it); iter_valid(it); iter_prev(it), i--)
        if (i == 0 || !iter_at(it, t, i - 1))
            break;
    CHECK(i == 0 && iter_status(it) == 0);
    iter_free(it);
}

static inline void check_seeks(sst_reader *r, const table_data *t)
{
    iter *it = sst_reader_iter(r);
    char probe[64], uk[32];
    uint64_t s = 77;
    size_t bad = 0;

    REQUIRE(it != NULL);
    for (int round = 0; round < 2000; round++) {
        size_t i = (size_t)(test_rand(&s) % t->n);
        iter_seek(it, tk(t, i));
        bad += !iter_at(it, t, i);
        iter_seek_for_prev(it, tk(t, i));
        bad += !iter_at(it, t, i);
        /* a missing user key: seek lands on the next, seek_for_prev on the
         * previous; then step across the spot both ways */
        slice u = ukey_of(uk, 3 * (test_rand(&s) % (t->n / 3)) + 2);
        slice target = slice_make(probe, ikey_encode(probe, u.data, u.len, UINT64_MAX));
        size_t j = 0, lo = 0, hi = t->n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (ikey_cmp(tk(t, mid), target) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        j = lo;
        iter_seek(it, target);
        bad += j < t->n ? !iter_at(it, t, j) : iter_valid(it);
        if (j < t->n && j > 0) {
            iter_prev(it);
            bad += !iter_at(it, t, j - 1);
            iter_next(it);
            bad += !iter_at(it, t, j);
        }
        iter_seek_for_prev(it, target);
        bad += j > 0 ? !iter_at(it, t, j - 1) : iter_valid(it);
    }
    CHECK(bad == 0);
    /* past both ends */
    iter_seek(it, slice_make(probe, ikey_encode(probe, "zzz", 3, 0)));
    CHECK(!iter_valid(it) && iter_status(it) == 0);
    iter_seek_for_prev(it, slice_make(probe, ikey_encode(probe, "zzz", 3, 0)));
    CHECK(iter_at(it, t, t->n - 1));
    iter_seek_for_prev(it, slice_make(probe, ikey_encode(probe, "a", 1, 0)));
    CHECK(!iter_valid(it) && iter_status(it) == 0);
    iter_seek(it, slice_make(probe, ikey_encode(probe, "a", 1, 0)));
    CHECK(iter_at(it, t, 0));
    iter_prev(it);
    CHECK(!iter_valid(it) && iter_status(it) == 0);
    iter_free(it);
}

#endif
