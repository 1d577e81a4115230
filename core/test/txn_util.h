/*
 * txn_util.h - what the transaction tests share (txn_test.c,
 * txn_api_test.c): opening a database per test, values as short strings
 * (an absent key reads as "-", so that expectations are plain strings),
 * gets, sets and walks that return them.
 */
#ifndef STOAT_TXN_UTIL_H
#define STOAT_TXN_UTIL_H

#include <stdio.h>
#include <string.h>

#include "db_util.h"
#include "test.h"

#define ABSENT "-"

#define CHECK_STR(got, want)                                                   \
    do {                                                                       \
        const char *g_ = (got), *w_ = (want);                                  \
        if (strcmp(g_, w_) != 0)                                               \
            test_fail(__FILE__, __LINE__, "%s = \"%s\", want \"%s\"", #got, g_, \
                      w_);                                                     \
    } while (0)

/* ---- helpers ------------------------------------------------------------ */

/* Opens "<tmpdir>/name" with o (create_if_missing forced on). */
static inline stoat_db *open_named(const char *name, stoat_options *o)
{
    char dir[DBU_PATH_MAX];
    stoat_db *db;

    o->create_if_missing = 1;
    REQUIRE_OK(stoat_open(dbu_path(dir, test_tmpdir(), name), o, &db));
    return db;
}

static inline stoat_db *open_default(void)
{
    stoat_options o;

    stoat_options_init(&o);
    return open_named("db", &o);
}

static inline void put_s(stoat_db *db, const char *k, const char *v)
{
    REQUIRE_OK(stoat_put(db, k, strlen(k), v, strlen(v)));
}

static inline stoat_stats stats_of(stoat_db *db)
{
    stoat_stats st;

    REQUIRE_OK(stoat_stats_get(db, &st));
    return st;
}

/* The newest committed version (in a single-threaded test: of the last write). */
static inline uint64_t last_version(stoat_db *db)
{
    return stats_of(db).last_version;
}

/* Copies (p, len) into out as a C string, or ABSENT when rc is ENOTFOUND. */
static inline const char *as_str(int rc, const void *p, size_t len, char *out, size_t cap)
{
    if (rc == STOAT_ENOTFOUND)
        return ABSENT;
    REQUIRE_OK(rc);
    REQUIRE(len < cap);
    memcpy(out, p, len);
    out[len] = '\0';
    return out;
}

static inline const char *db_get_s(stoat_db *db, const char *k, char *out, size_t cap)
{
    void *v = NULL;
    size_t vlen = 0;
    int rc = stoat_get(db, k, strlen(k), &v, &vlen);

    if (rc == 0 && vlen < cap) {
        memcpy(out, v, vlen);
        out[vlen] = '\0';
    }
    stoat_free(v);
    if (rc == STOAT_ENOTFOUND)
        return ABSENT;
    REQUIRE_OK(rc);
    REQUIRE(vlen < cap);
    return out;
}

static inline const char *txn_get_s(stoat_txn *t, const char *k, char *out, size_t cap)
{
    const void *v = NULL;
    size_t vlen = 0;
    int rc = stoat_txn_get(t, k, strlen(k), &v, &vlen);

    return as_str(rc, v, vlen, out, cap);
}

static inline long long txn_get_num(stoat_txn *t, const char *k)
{
    char buf[32];
    const char *s = txn_get_s(t, k, buf, sizeof(buf));

    REQUIRE(strcmp(s, ABSENT) != 0);
    return strtoll(s, NULL, 10);
}

static inline void txn_set_s(stoat_txn *t, const char *k, const char *v)
{
    REQUIRE_OK(stoat_txn_set(t, k, strlen(k), v, strlen(v)));
}

static inline void txn_set_num(stoat_txn *t, const char *k, long long n)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%lld", n);
    txn_set_s(t, k, buf);
}

/*
 * Walks it from where it stands in direction dir (+1 next, -1 prev) to
 * the end, writing "key=value " for each entry into out.
 */
static inline const char *walk(stoat_iter *it, int dir, char *out, size_t cap)
{
    size_t len = 0;

    out[0] = '\0';
    while (stoat_iter_valid(it)) {
        const void *k, *v;
        size_t klen, vlen;
        int n;

        REQUIRE_OK(stoat_iter_key(it, &k, &klen));
        REQUIRE_OK(stoat_iter_value(it, &v, &vlen));
        n = snprintf(out + len, cap - len, "%.*s=%.*s ", (int)klen, (const char *)k, (int)vlen,
                     (const char *)v);
        REQUIRE(n > 0 && (size_t)n < cap - len);
        len += (size_t)n;
        REQUIRE_OK(dir > 0 ? stoat_iter_next(it) : stoat_iter_prev(it));
    }
    CHECK_RC(stoat_iter_status(it), 0);
    return out;
}

/* Number of entries an iterator with options o (NULL: all) yields. */
static inline int count_entries(stoat_db *db, const stoat_iter_options *o)
{
    stoat_iter *it;
    int n = 0;

    REQUIRE_OK(stoat_iter_open(db, o, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    for (; stoat_iter_valid(it); n++)
        REQUIRE_OK(stoat_iter_next(it));
    CHECK_RC(stoat_iter_status(it), 0);
    stoat_iter_close(it);
    return n;
}

static inline stoat_iter_options prefix_opts(const char *p)
{
    return (stoat_iter_options){.prefix = p, .prefix_len = strlen(p)};
}

/* ---- write skew --------------------------------------------------------- */

#endif
