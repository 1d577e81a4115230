/*
 * vlog_db_util.h - what the value-log database tests share
 * (vlog_db_test.c, vlog_db_race_test.c, vlog_db_fault_test.c): values that
 * carry their own tag and length (vd_value), so that a reader tells the
 * value it expects from a stale one, a misplaced one or garbage; a model
 * of the expected tags and the checks against it; error collection for
 * threads, which never REQUIRE (longjmp belongs to the main thread): they
 * count what went wrong and keep the first message, which the main thread
 * reports. STOAT_SEED replays the randomised tests (the seed is printed).
 */
#ifndef STOAT_VLOG_DB_UTIL_H
#define STOAT_VLOG_DB_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "db_util.h"
#include "test.h"

#define VD_KLEN 7               /* keys "v000000": key i is index i in sort order */
#define VD_HEAD 12              /* a value starts with its tag and length */
#define VD_REC(vlen) (20 + VD_KLEN + 8 + (uint64_t)(vlen))  /* its value-log record */
#define ABSENT UINT64_MAX
#define BAD (UINT64_MAX - 1)

static inline uint64_t vd_seed(void)
{
    static uint64_t seed;
    const char *s = getenv("STOAT_SEED");

    if (seed == 0) {
        seed = s && *s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
        seed = seed ? seed : 1;
        printf("  seed %llu (STOAT_SEED)\n", (unsigned long long)seed);
    }
    return seed;
}

static inline uint64_t rnd(uint64_t *state, uint64_t n)
{
    return test_rand(state) % n;
}

static inline long now_micros(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline void vd_key(uint32_t i, char out[16])
{
    snprintf(out, 16, "v%06u", i % 1000000u);
}

/* The index of a key vd_key made, UINT32_MAX for any other key. */
static inline uint32_t vd_index(const void *key, size_t klen)
{
    const char *k = key;
    uint32_t i = 0;

    if (klen != VD_KLEN || k[0] != 'v')
        return UINT32_MAX;
    for (size_t j = 1; j < VD_KLEN; j++) {
        if (k[j] < '0' || k[j] > '9')
            return UINT32_MAX;
        i = i * 10 + (uint32_t)(k[j] - '0');
    }
    return i;
}

/* A value of len (>= VD_HEAD) bytes: tag, length, bytes derived from tag. */
static inline void vd_value(uint64_t tag, size_t len, char *out)
{
    uint32_t l32 = (uint32_t)len;

    memcpy(out, &tag, 8);
    memcpy(out + 8, &l32, 4);
    dbu_value(tag, out + VD_HEAD, len - VD_HEAD);
}

/* The tag of a value vd_value made, BAD for anything else. Thread-safe. */
static inline uint64_t vd_tag(const void *v, size_t vlen)
{
    char small[4096], *want;
    uint64_t tag;
    uint32_t len;
    int same;

    if (vlen < VD_HEAD)
        return BAD;
    memcpy(&tag, v, 8);
    memcpy(&len, (const char *)v + 8, 4);
    if (len != vlen || tag >= BAD)
        return BAD;
    if ((want = vlen <= sizeof(small) ? small : malloc(vlen)) == NULL)
        return BAD;
    vd_value(tag, vlen, want);
    same = memcmp(want, v, vlen) == 0;
    if (want != small)
        free(want);
    return same ? tag : BAD;
}

/* Puts key i = vd_value(tag, len); returns the rc. Thread-safe. */
static inline int vd_put_rc(stoat_db *db, uint32_t i, uint64_t tag, size_t len)
{
    char k[16], small[4096], *v = len <= sizeof(small) ? small : malloc(len);
    int rc;

    if (v == NULL)
        return STOAT_ENOMEM;
    vd_key(i, k);
    vd_value(tag, len, v);
    rc = stoat_put(db, k, VD_KLEN, v, len);
    if (v != small)
        free(v);
    return rc;
}

static inline void vd_put(stoat_db *db, uint32_t i, uint64_t tag, size_t len)
{
    REQUIRE_OK(vd_put_rc(db, i, tag, len));
}

static inline void vd_delete(stoat_db *db, uint32_t i)
{
    char k[16];

    vd_key(i, k);
    REQUIRE_OK(stoat_delete(db, k, VD_KLEN));
}

/* Gets key i: the rc, and in *tag its value's tag (ABSENT if none, BAD
 * if not a value we wrote). Thread-safe. */
static inline int vd_read(stoat_db *db, uint32_t i, uint64_t *tag)
{
    char k[16];
    void *v = NULL;
    size_t vlen = 0;
    int rc;

    vd_key(i, k);
    rc = stoat_get(db, k, VD_KLEN, &v, &vlen);
    *tag = rc == 0 ? vd_tag(v, vlen) : ABSENT;
    stoat_free(v);
    return rc;
}

/* A full scan against model[0..n): the number of differences. */
static inline int vd_scan_diffs(stoat_db *db, const uint64_t *model, uint32_t n)
{
    stoat_iter *it;
    uint32_t next = 0;
    int diffs = 0;

    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    for (stoat_iter_seek_first(it); stoat_iter_valid(it); stoat_iter_next(it)) {
        const void *k, *v;
        size_t klen, vlen;
        uint32_t i;

        REQUIRE_OK(stoat_iter_key(it, &k, &klen));
        if ((i = vd_index(k, klen)) >= n || i < next) {
            diffs++;
            continue;
        }
        while (next < i)
            diffs += model[next++] != ABSENT;
        next = i + 1;
        diffs += stoat_iter_value(it, &v, &vlen) != 0 || vd_tag(v, vlen) != model[i];
    }
    diffs += stoat_iter_status(it) != 0;
    while (next < n)
        diffs += model[next++] != ABSENT;
    stoat_iter_close(it);
    return diffs;
}

/* Every key [0, n) reads model[i] (ABSENT: not found), by get and scan. */
static inline void vd_check_model_at(stoat_db *db, const uint64_t *model, uint32_t n, int line)
{
    int diffs = 0, scan_diffs;

    for (uint32_t i = 0; i < n; i++) {
        uint64_t tag;
        int rc = vd_read(db, i, &tag);

        if ((rc == 0 || rc == STOAT_ENOTFOUND) && tag == model[i])
            continue;
        if (diffs++ == 0)
            test_fail(__FILE__, line, "key %u: rc %d (%s), tag %llx, want %llx", i, rc,
                      rc ? stoat_errmsg(db) : "", (unsigned long long)tag,
                      (unsigned long long)model[i]);
    }
    scan_diffs = vd_scan_diffs(db, model, n);
    if (diffs || scan_diffs)
        test_fail(__FILE__, line, "%d keys differ from the model by get, %d by a scan", diffs,
                  scan_diffs);
}

#define vd_check_model(db, model, n) vd_check_model_at(db, model, n, __LINE__)

/* Small memtables and levels (flushes and compactions come fast), values
 * of 256 bytes and more separated, 1 MiB value-log files, no auto GC. */
static inline void vd_options(stoat_options *o)
{
    dbu_small_options(o);
    o->value_threshold = 256;
    o->value_log_file_size = 1u << 20;
    o->auto_gc = 0;
}

static inline stoat_db *vd_open(const char *dir, const stoat_options *o)
{
    stoat_db *db;
    int rc = stoat_open(dir, o, &db);

    if (rc != 0)
        test_fail(__FILE__, __LINE__, "open %s: %s: %s", dir, stoat_strerror(rc),
                  stoat_errmsg(NULL));
    REQUIRE(rc == 0);
    return db;
}

/* Writes keys [from, to) with tags tag0 + i and length len; records them. */
static inline void vd_fill(stoat_db *db, uint64_t *model, uint32_t from, uint32_t to, uint64_t tag0,
                    size_t len)
{
    for (uint32_t i = from; i < to; i++) {
        vd_put(db, i, tag0 + i, len);
        model[i] = tag0 + i;
    }
}

/* How many of the files in names[0..n) are no longer in dir. */
static inline int vd_files_gone(const char *dir, char (*names)[64], int n)
{
    char p[DBU_PATH_MAX];
    int gone = 0;

    for (int i = 0; i < n; i++)
        gone += !dbu_exists(dbu_path(p, dir, names[i]));
    return gone;
}

/* Waits (up to 10 s) until at least `want` of names[0..n) are gone from
 * dir (the GC thread deletes collected files); how many are gone. */
static inline int vd_wait_files_gone(const char *dir, char (*names)[64], int n, int want)
{
    int gone = 0;

    for (int i = 0; i < 1000 && (gone = vd_files_gone(dir, names, n)) < want; i++)
        usleep(10000);
    return gone;
}

/* Reads every key through txn: the number that differ from model. */
static inline int vd_txn_diffs(stoat_txn *txn, const uint64_t *model, uint32_t n)
{
    int diffs = 0;

    for (uint32_t i = 0; i < n; i++) {
        char k[16];
        const void *v;
        size_t vlen;
        int rc;

        vd_key(i, k);
        rc = stoat_txn_get(txn, k, VD_KLEN, &v, &vlen);
        diffs += rc == 0 ? vd_tag(v, vlen) != model[i] : rc != STOAT_ENOTFOUND ||
                                                         model[i] != ABSENT;
    }
    return diffs;
}

/* Walks the open iterator it (every key [0, n) present): the number of
 * entries that differ from model. */
static inline int vd_iter_diffs(stoat_iter *it, const uint64_t *model, uint32_t n)
{
    uint32_t i = 0;
    int diffs = 0;

    for (stoat_iter_seek_first(it); stoat_iter_valid(it); stoat_iter_next(it), i++) {
        const void *k, *v;
        size_t klen, vlen;

        diffs += stoat_iter_key(it, &k, &klen) != 0 || vd_index(k, klen) != i || i >= n ||
                 stoat_iter_value(it, &v, &vlen) != 0 || vd_tag(v, vlen) != model[i];
    }
    return diffs + (i != n) + (stoat_iter_status(it) != 0);
}

/* What a thread saw go wrong: a count and the first message. */
typedef struct vd_errors {
    atomic_ulong n;
    pthread_mutex_t mu;
    char msg[512];
} vd_errors;

static inline void vd_error(vd_errors *e, const char *fmt, ...)
{
    va_list ap;

    if (atomic_fetch_add(&e->n, 1) != 0)
        return;
    pthread_mutex_lock(&e->mu);
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&e->mu);
}

static inline void vd_errors_report(vd_errors *e, const char *what, int line)
{
    pthread_mutex_lock(&e->mu);
    if (atomic_load(&e->n) != 0)
        test_fail(__FILE__, line, "%lu %s; the first: %s", atomic_load(&e->n), what, e->msg);
    pthread_mutex_unlock(&e->mu);
}

/* Removes every file of the flat directory dir, hidden ones too. */
static inline void vd_clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[DBU_PATH_MAX];

    REQUIRE(d != NULL);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            REQUIRE(unlink(dbu_path(p, dir, de->d_name)) == 0);
    closedir(d);
}

#endif
