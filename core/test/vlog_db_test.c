/*
 * vlog_db_test.c - key/value separation and value-log GC at the database
 * level, through the public API and the fault env.
 *
 * Values carry their own tag and length (vd_value), so a reader tells the
 * value it expects from a stale one, a misplaced one or garbage. The
 * tests: where value_threshold splits values; values of several MiB; a
 * damaged value-log record (only its key fails); an iterator that needs
 * only keys never reads the value log; a WAL pointing past the end of the
 * value log; discard counts across a reopen; one GC call right after
 * overwrites; a collected file kept while a snapshot may read it; deletes
 * racing GC; GC under writes, then a clean reopen; a GC call ends while
 * writes go on; GC among writers, readers and long-lived iterators (0
 * wrong reads); crashes and failed writes during GC (100 runs: nothing
 * durable lost); automatic GC. The space test of the issue is
 * vlog_gc_test.c.
 *
 * Threads started by a test never REQUIRE (longjmp belongs to the main
 * thread): they count what went wrong and keep the first message, which
 * the main thread reports. STOAT_SEED replays the randomised tests (the
 * seed is printed).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

#include "db/db_env.h"
#include "db_util.h"
#include "support/env_fault.h"
#include "test.h"

#define VD_KLEN 7               /* keys "v000000": key i is index i in sort order */
#define VD_HEAD 12              /* a value starts with its tag and length */
#define VD_REC(vlen) (20 + VD_KLEN + 8 + (uint64_t)(vlen))  /* its value-log record */
#define ABSENT UINT64_MAX
#define BAD (UINT64_MAX - 1)

static uint64_t vd_seed(void)
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

static uint64_t rnd(uint64_t *state, uint64_t n)
{
    return test_rand(state) % n;
}

static long now_micros(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void vd_key(uint32_t i, char out[16])
{
    snprintf(out, 16, "v%06u", i % 1000000u);
}

/* The index of a key vd_key made, UINT32_MAX for any other key. */
static uint32_t vd_index(const void *key, size_t klen)
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
static void vd_value(uint64_t tag, size_t len, char *out)
{
    uint32_t l32 = (uint32_t)len;

    memcpy(out, &tag, 8);
    memcpy(out + 8, &l32, 4);
    dbu_value(tag, out + VD_HEAD, len - VD_HEAD);
}

/* The tag of a value vd_value made, BAD for anything else. Thread-safe. */
static uint64_t vd_tag(const void *v, size_t vlen)
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
static int vd_put_rc(stoat_db *db, uint32_t i, uint64_t tag, size_t len)
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

static void vd_put(stoat_db *db, uint32_t i, uint64_t tag, size_t len)
{
    REQUIRE_OK(vd_put_rc(db, i, tag, len));
}

static void vd_delete(stoat_db *db, uint32_t i)
{
    char k[16];

    vd_key(i, k);
    REQUIRE_OK(stoat_delete(db, k, VD_KLEN));
}

/* Gets key i: the rc, and in *tag its value's tag (ABSENT if none, BAD
 * if not a value we wrote). Thread-safe. */
static int vd_read(stoat_db *db, uint32_t i, uint64_t *tag)
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
static int vd_scan_diffs(stoat_db *db, const uint64_t *model, uint32_t n)
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
static void vd_check_model_at(stoat_db *db, const uint64_t *model, uint32_t n, int line)
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
static void vd_options(stoat_options *o)
{
    dbu_small_options(o);
    o->value_threshold = 256;
    o->value_log_file_size = 1u << 20;
    o->auto_gc = 0;
}

static stoat_db *vd_open(const char *dir, const stoat_options *o)
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
static void vd_fill(stoat_db *db, uint64_t *model, uint32_t from, uint32_t to, uint64_t tag0,
                    size_t len)
{
    for (uint32_t i = from; i < to; i++) {
        vd_put(db, i, tag0 + i, len);
        model[i] = tag0 + i;
    }
}

static void test_vlog_db_threshold_boundary(void)
{
    const char *dir = test_tmpdir();
    const size_t t = 1000;
    uint64_t model[4] = {ABSENT, ABSENT, ABSENT, ABSENT};
    stoat_options o;
    stoat_stats st;
    stoat_db *db;
    void *v;
    size_t vlen = 1;

    vd_options(&o);
    o.value_threshold = (uint32_t)t;
    db = vd_open(dir, &o);
    vd_fill(db, model, 0, 1, 100, t - 1);
    REQUIRE_OK(stoat_stats_get(db, &st));
    CHECK(st.vlog_files == 0 && st.vlog_bytes == 0);
    CHECK(dbu_dir_bytes(dir, ".vlog") == 0);

    vd_fill(db, model, 1, 2, 100, t);
    REQUIRE_OK(stoat_stats_get(db, &st));
    CHECK(st.vlog_files == 1 && st.vlog_bytes == 16 + VD_REC(t));
    vd_fill(db, model, 2, 3, 100, VD_HEAD);
    vd_fill(db, model, 3, 4, 100, t + 1);
    REQUIRE_OK(stoat_stats_get(db, &st));
    CHECK(st.vlog_bytes == 16 + VD_REC(t) + VD_REC(t + 1));
    CHECK(dbu_dir_bytes(dir, ".vlog") == st.vlog_bytes);
    vd_check_model(db, model, 4);

    REQUIRE_OK(stoat_flush(db));
    vd_check_model(db, model, 4);
    REQUIRE_OK(stoat_close(db));
    db = vd_open(dir, &o);
    vd_check_model(db, model, 4);
    REQUIRE_OK(stoat_put(db, "empty", 5, "", 0));
    REQUIRE_OK(stoat_stats_get(db, &st));
    CHECK(st.vlog_bytes == 16 + VD_REC(t) + VD_REC(t + 1));
    CHECK_RC(stoat_get(db, "empty", 5, &v, &vlen), 0);
    CHECK(vlen == 0);
    stoat_free(v);
    REQUIRE_OK(stoat_close(db));
}

static void test_vlog_db_big_value(void)
{
    const char *dir = test_tmpdir();
    const size_t big = 6u << 20;
    uint64_t model[3], reclaimed = 0;
    stoat_options o;
    stoat_stats st;
    stoat_db *db;

    vd_options(&o);     /* 1 MiB files: the value gets a file of its own */
    db = vd_open(dir, &o);
    vd_fill(db, model, 0, 1, 1, 100);
    vd_fill(db, model, 1, 2, 1, big);
    vd_fill(db, model, 2, 3, 1, 300);
    vd_check_model(db, model, 3);
    REQUIRE_OK(stoat_stats_get(db, &st));
    CHECK(st.vlog_bytes >= big && st.vlog_bytes < big + 4096);

    REQUIRE_OK(stoat_flush(db));
    REQUIRE_OK(stoat_close(db));
    db = vd_open(dir, &o);
    vd_check_model(db, model, 3);

    vd_fill(db, model, 1, 2, 10, big + 12345);
    REQUIRE_OK(stoat_gc(db, 0.5, &reclaimed));
    CHECK(reclaimed >= big);
    CHECK(dbu_dir_bytes(dir, ".vlog") < big + 12345 + 4096);
    vd_check_model(db, model, 3);
    REQUIRE_OK(stoat_close(db));
}

/* The offset of the bytes want[0..len) in file path, or -1. */
static int64_t vd_find_in_file(const char *path, const char *want, size_t len)
{
    size_t flen;
    char *data = dbu_read_file(path, &flen);
    int64_t off = -1;

    for (size_t i = 0; off < 0 && i + len <= flen; i++)
        if (data[i] == want[0] && memcmp(data + i, want, len) == 0)
            off = (int64_t)i;
    free(data);
    return off;
}

/* Where value tag (len bytes) sits in the value log: file name and offset. */
static int vd_find_value(const char *dir, uint64_t tag, size_t len, char *name, uint64_t *off)
{
    static char names[DBU_MAX_FILES][64];
    char p[DBU_PATH_MAX], *want = malloc(len);
    int n = dbu_list(dir, ".vlog", names), found = 0;

    REQUIRE(want != NULL);
    vd_value(tag, len, want);
    for (int i = 0; i < n && !found; i++) {
        int64_t at = vd_find_in_file(dbu_path(p, dir, names[i]), want, len);

        if (at >= 0) {
            found = 1;
            *off = (uint64_t)at;
            memcpy(name, names[i], strlen(names[i]) + 1);
        }
    }
    free(want);
    return found;
}

static void test_vlog_db_corrupt_record(void)
{
    enum { N = 1000, LEN = 2000 };
    const uint32_t victims[2] = {200, N - 200};
    const char *dir = test_tmpdir();
    char names[2][64], p[DBU_PATH_MAX];
    uint64_t model[N], off;
    stoat_options o;
    stoat_iter *it;
    stoat_db *db;
    uint32_t seen = 0;

    vd_options(&o);
    db = vd_open(dir, &o);
    vd_fill(db, model, 0, N, 1, LEN);
    REQUIRE_OK(stoat_flush(db));    /* the WAL replay would refuse the damage */
    REQUIRE_OK(stoat_close(db));
    for (int j = 0; j < 2; j++) {
        REQUIRE(vd_find_value(dir, model[victims[j]], LEN, names[j], &off));
        dbu_flip(dbu_path(p, dir, names[j]), off + LEN / 2);
    }
    CHECK(strcmp(names[0], names[1]) != 0);     /* a sealed file and the newest */

    db = vd_open(dir, &o);
    for (uint32_t i = 0; i < N; i++) {
        uint64_t tag;
        int rc = vd_read(db, i, &tag), victim = i == victims[0] || i == victims[1];

        if (victim) {
            CHECK_RC(rc, STOAT_ECORRUPT);
            CHECK(strstr(stoat_errmsg(db), names[i == victims[1]]) != NULL);
        } else if (rc != 0 || tag != model[i]) {
            test_fail(__FILE__, __LINE__, "key %u: rc %d, tag %llx", i, rc,
                      (unsigned long long)tag);
        }
    }
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    for (stoat_iter_seek_first(it); stoat_iter_valid(it); stoat_iter_next(it), seen++) {
        const void *k, *v;
        size_t klen, vlen;
        uint32_t i;
        int rc;

        REQUIRE_OK(stoat_iter_key(it, &k, &klen));
        i = vd_index(k, klen);
        rc = stoat_iter_value(it, &v, &vlen);
        if (i == victims[0] || i == victims[1])
            CHECK_RC(rc, STOAT_ECORRUPT);
        else
            CHECK(i == seen && rc == 0 && vd_tag(v, vlen) == model[i]);
    }
    CHECK_RC(stoat_iter_status(it), 0);
    CHECK(seen == N);
    stoat_iter_close(it);
    REQUIRE_OK(stoat_close(db));
}

/*
 * GC that meets a damaged record leaves that file alone and reports it,
 * collects the other files, and never stops the writes: the background
 * thread does not turn the damage into the sticky error, and stoat_gc
 * returns STOAT_ECORRUPT naming the file after collecting the rest.
 */
static void test_vlog_db_gc_leaves_damaged_file_alone(void)
{
    enum { N = 1000, LEN = 2000 };
    const char *dir = test_tmpdir();
    char name[64], p[DBU_PATH_MAX];
    uint64_t model[N], off, reclaimed = 0, tag;
    stoat_options o;
    stoat_db *db;

    vd_options(&o);
    db = vd_open(dir, &o);
    vd_fill(db, model, 0, N, 1, LEN);
    REQUIRE_OK(stoat_flush(db));
    REQUIRE_OK(stoat_close(db));
    REQUIRE(vd_find_value(dir, model[100], LEN, name, &off));
    dbu_flip(dbu_path(p, dir, name), off + LEN / 2);

    /* The background thread meets the damage: writes go on. */
    o.auto_gc = 1;
    o.auto_gc_ratio = 0.3;
    db = vd_open(dir, &o);
    vd_fill(db, model, 200, N / 2, 100000, LEN);    /* the damaged file is mostly garbage */
    REQUIRE_OK(stoat_flatten(db));
    usleep(2500 * 1000);                            /* the background thread's turn */
    vd_put(db, 5, 777, LEN);
    model[5] = 777;
    REQUIRE_OK(stoat_close(db));

    /* An explicit GC collects what it can, then reports the damage. */
    o.auto_gc = 0;
    db = vd_open(dir, &o);
    vd_fill(db, model, N / 2, N, 200000, LEN);      /* now the other files too */
    CHECK_RC(stoat_gc(db, 0.3, &reclaimed), STOAT_ECORRUPT);
    CHECK(strstr(stoat_errmsg(db), name) != NULL);
    CHECK(reclaimed > 0);
    for (uint32_t i = 0; i < N; i++) {
        int rc = vd_read(db, i, &tag);
        if (i == 100)
            CHECK_RC(rc, STOAT_ECORRUPT);   /* never overwritten: still damaged */
        else if (rc != 0 || tag != model[i])
            test_fail(__FILE__, __LINE__, "key %u: rc %d (%s), tag %llx want %llx", i, rc,
                      stoat_errmsg(db), (unsigned long long)tag, (unsigned long long)model[i]);
    }
    REQUIRE_OK(stoat_close(db));
}

/* Counts the entries a keys-only walk sees; the iterator's status in *rc. */
static uint32_t vd_count_keys(stoat_iter *it, int *rc)
{
    uint32_t n = 0;

    for (stoat_iter_seek_first(it); stoat_iter_valid(it); stoat_iter_next(it)) {
        const void *k;
        size_t klen;

        n += stoat_iter_key(it, &k, &klen) == 0 && vd_index(k, klen) == n;
    }
    *rc = stoat_iter_status(it);
    stoat_iter_close(it);
    return n;
}

static void test_vlog_db_keys_only_reads_no_value(void)
{
    enum { N = 300 };
    static char names[DBU_MAX_FILES][64];
    stoat_iter_options io = {.keys_only = 1};
    const char *dir = test_tmpdir();
    char p[DBU_PATH_MAX];
    uint64_t model[N], tag;
    const void *v;
    size_t vlen;
    stoat_options o;
    stoat_iter *it;
    stoat_txn *txn;
    stoat_db *db;
    int n, rc;

    vd_options(&o);
    db = vd_open(dir, &o);
    vd_fill(db, model, 0, N, 1, 1000);
    REQUIRE_OK(stoat_flush(db));
    REQUIRE_OK(stoat_close(db));
    /* Every value is gone: only the files' headers stay. */
    n = dbu_list(dir, ".vlog", names);
    REQUIRE(n >= 1);
    for (int i = 0; i < n; i++)
        dbu_truncate(dbu_path(p, dir, names[i]), 16);

    db = vd_open(dir, &o);
    REQUIRE_OK(stoat_iter_open(db, &io, &it));
    CHECK(vd_count_keys(it, &rc) == N);
    CHECK_RC(rc, 0);
    REQUIRE_OK(stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &txn));
    REQUIRE_OK(stoat_txn_iter_open(txn, &io, &it));
    CHECK(vd_count_keys(it, &rc) == N);
    CHECK_RC(rc, 0);
    stoat_txn_discard(txn);
    /* ... while reading a value finds the damage. */
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    CHECK_RC(stoat_iter_value(it, &v, &vlen), STOAT_ECORRUPT);
    stoat_iter_close(it);
    CHECK_RC(vd_read(db, 7, &tag), STOAT_ECORRUPT);
    REQUIRE_OK(stoat_close(db));
}

static void test_vlog_db_wal_points_past_log_end(void)
{
    static char names[DBU_MAX_FILES][64];
    const char *dir = test_tmpdir();
    char p[DBU_PATH_MAX];
    uint64_t model[100];
    stoat_options o;
    stoat_db *db;
    int n;

    vd_options(&o);
    o.memtable_size = 64u << 20;    /* nothing is flushed: the WAL has the pointers */
    db = vd_open(dir, &o);
    vd_fill(db, model, 0, 100, 1, 1000);
    REQUIRE_OK(stoat_close(db));
    REQUIRE(dbu_list(dir, ".sst", names) == 0);
    n = dbu_list(dir, ".vlog", names);
    REQUIRE(n >= 1);
    dbu_path(p, dir, names[n - 1]);
    dbu_truncate(p, dbu_file_size(p) - 100);    /* the last value, v000099's, is torn */

    /* Twice: the first open cut the torn tail, the second must not pass. */
    for (int i = 0; i < 2; i++) {
        CHECK_RC(stoat_open(dir, &o, &db), STOAT_ECORRUPT);
        CHECK(db == NULL);
        CHECK(strstr(stoat_errmsg(NULL), "v000099") != NULL);
    }
}

static void test_vlog_db_discard_counts_survive_reopen(void)
{
    enum { N = 1000, LEN = 1000 };
    const char *dir = test_tmpdir();
    uint64_t model[N], garbage;
    stoat_options o;
    stoat_stats st;
    stoat_db *db;

    vd_options(&o);
    db = vd_open(dir, &o);
    vd_fill(db, model, 0, N, 1, LEN);
    vd_fill(db, model, 0, N, N + 1, LEN);
    REQUIRE_OK(stoat_flatten(db));
    REQUIRE_OK(stoat_stats_get(db, &st));
    garbage = st.vlog_garbage_bytes;
    /* Every first-round record became garbage, each counted once. */
    CHECK(garbage == N * VD_REC(LEN));
    REQUIRE_OK(stoat_close(db));

    db = vd_open(dir, &o);
    REQUIRE_OK(stoat_stats_get(db, &st));
    CHECK(st.vlog_garbage_bytes == garbage);
    vd_check_model(db, model, N);
    REQUIRE_OK(stoat_close(db));
}

static void test_vlog_db_gc_once_after_overwrites(void)
{
    enum { N = 2000, LEN = 1000 };
    const char *dir = test_tmpdir();
    uint64_t model[N], before, after, reclaimed = 0;
    stoat_options o;
    stoat_db *db;

    vd_options(&o);
    db = vd_open(dir, &o);
    CHECK_RC(stoat_gc(NULL, 0.5, NULL), STOAT_EINVAL);
    CHECK_RC(stoat_gc(db, 0, NULL), STOAT_EINVAL);
    CHECK_RC(stoat_gc(db, 1, NULL), STOAT_EINVAL);
    CHECK_RC(stoat_gc(db, -0.5, NULL), STOAT_EINVAL);
    CHECK_RC(stoat_gc(db, NAN, NULL), STOAT_EINVAL);
    CHECK_RC(stoat_gc(db, 0.5, &reclaimed), 0);     /* an empty log */
    CHECK(reclaimed == 0);

    vd_fill(db, model, 0, N, 1, LEN);
    vd_fill(db, model, 0, N, N + 1, LEN);
    before = dbu_dir_bytes(dir, ".vlog");
    /* No flush, no compaction asked for: the one call finds the garbage. */
    REQUIRE_OK(stoat_gc(db, 0.5, &reclaimed));
    after = dbu_dir_bytes(dir, ".vlog");
    CHECK(reclaimed > 0 && before - after <= reclaimed);
    /* At most one file (half of it live) is left with garbage. */
    CHECK(after <= N * VD_REC(LEN) + (1u << 20));
    vd_check_model(db, model, N);
    REQUIRE_OK(stoat_gc(db, 0.5, &reclaimed));
    CHECK(reclaimed == 0);
    CHECK(dbu_dir_bytes(dir, ".vlog") == after);
    REQUIRE_OK(stoat_close(db));
}

/* How many of the files in names[0..n) are no longer in dir. */
static int vd_files_gone(const char *dir, char (*names)[64], int n)
{
    char p[DBU_PATH_MAX];
    int gone = 0;

    for (int i = 0; i < n; i++)
        gone += !dbu_exists(dbu_path(p, dir, names[i]));
    return gone;
}

/* Waits (up to 10 s) until at least `want` of names[0..n) are gone from
 * dir (the GC thread deletes collected files); how many are gone. */
static int vd_wait_files_gone(const char *dir, char (*names)[64], int n, int want)
{
    int gone = 0;

    for (int i = 0; i < 1000 && (gone = vd_files_gone(dir, names, n)) < want; i++)
        usleep(10000);
    return gone;
}

/* Reads every key through txn: the number that differ from model. */
static int vd_txn_diffs(stoat_txn *txn, const uint64_t *model, uint32_t n)
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
static int vd_iter_diffs(stoat_iter *it, const uint64_t *model, uint32_t n)
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

static void test_vlog_db_snapshot_keeps_collected_file(void)
{
    enum { N = 2000, LEN = 1000 };
    static char first[DBU_MAX_FILES][64];
    const char *dir = test_tmpdir();
    uint64_t model[N], snap[N], reclaimed = 0;
    stoat_options o;
    stoat_iter *it;
    stoat_txn *txn;
    stoat_db *db;
    int n_first;

    vd_options(&o);
    db = vd_open(dir, &o);
    vd_fill(db, model, 0, N, 1, LEN);
    n_first = dbu_list(dir, ".vlog", first);
    REQUIRE(n_first >= 2);
    /* The even keys' first values are garbage before the snapshot, the
     * odd keys' after: GC collects every file of first values (half
     * garbage) while the snapshot still reads the other half. */
    for (uint32_t i = 0; i < N; i += 2)
        vd_fill(db, model, i, i + 1, N + 1, LEN);
    memcpy(snap, model, sizeof(snap));
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    REQUIRE_OK(stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &txn));
    for (uint32_t i = 1; i < N; i += 2)
        vd_fill(db, model, i, i + 1, N + 1, LEN);
    REQUIRE_OK(stoat_gc(db, 0.3, &reclaimed));
    CHECK(reclaimed > 0);
    CHECK(vd_files_gone(dir, first, n_first) == 0);

    CHECK(vd_iter_diffs(it, snap, N) == 0);
    CHECK(vd_txn_diffs(txn, snap, N) == 0);
    vd_check_model(db, model, N);
    stoat_iter_close(it);
    CHECK(vd_files_gone(dir, first, n_first) == 0);     /* the transaction still reads */
    CHECK(vd_txn_diffs(txn, snap, N) == 0);
    stoat_txn_discard(txn);
    CHECK(vd_wait_files_gone(dir, first, n_first, n_first - 1) >= n_first - 1);
    vd_check_model(db, model, N);
    REQUIRE_OK(stoat_close(db));
}

/* Closing an iterator or discarding a transaction never does file I/O on
 * the caller's thread (an nginx worker's event loop): the last reader of
 * collected value-log files only wakes the GC thread, which deletes them. */
static void test_vlog_db_snapshot_release_does_no_fsync(void)
{
    enum { N = 2000, LEN = 1000 };
    static char first[DBU_MAX_FILES][64];
    const char *dir = test_tmpdir();
    env *fault = env_fault_new(env_posix());
    uint64_t model[N], reclaimed = 0;
    stoat_options o;
    stoat_iter *it;
    stoat_txn *txn;
    stoat_db *db;
    long s0;
    int n_first;

    REQUIRE(fault != NULL);
    vd_options(&o);
    REQUIRE_OK(db_open_env(dir, &o, fault, &db));
    vd_fill(db, model, 0, N, 1, LEN);
    n_first = dbu_list(dir, ".vlog", first);
    REQUIRE(n_first >= 2);
    /* As above: the files of first values are half garbage before the
     * readers begin, and GC collects them while the readers hold them. */
    for (uint32_t i = 0; i < N; i += 2)
        vd_fill(db, model, i, i + 1, N + 1, LEN);
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    REQUIRE_OK(stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &txn));
    for (uint32_t i = 1; i < N; i += 2)
        vd_fill(db, model, i, i + 1, N + 1, LEN);
    REQUIRE_OK(stoat_gc(db, 0.3, &reclaimed));
    CHECK(reclaimed > 0);
    CHECK(vd_files_gone(dir, first, n_first) == 0);    /* the readers hold them */

    s0 = env_fault_thread_syncs();
    stoat_iter_close(it);
    stoat_txn_discard(txn);
    CHECK(env_fault_thread_syncs() == s0);
    CHECK(vd_wait_files_gone(dir, first, n_first, n_first - 1) >= n_first - 1);
    vd_check_model(db, model, N);
    REQUIRE_OK(stoat_close(db));
    env_fault_free(fault);
}

/* What a thread saw go wrong: a count and the first message. */
typedef struct vd_errors {
    atomic_ulong n;
    pthread_mutex_t mu;
    char msg[512];
} vd_errors;

static void vd_error(vd_errors *e, const char *fmt, ...)
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

static void vd_errors_report(vd_errors *e, const char *what, int line)
{
    pthread_mutex_lock(&e->mu);
    if (atomic_load(&e->n) != 0)
        test_fail(__FILE__, line, "%lu %s; the first: %s", atomic_load(&e->n), what, e->msg);
    pthread_mutex_unlock(&e->mu);
}

/* Deletes random keys of [from, to) until told to stop, flushing now and
 * then so that tombstones sit in an older source than GC's rewrites. */
typedef struct deleter {
    stoat_db *db;
    uint32_t from, to;
    uint64_t rng;
    uint8_t *deleted;           /* by key index */
    uint32_t n_deleted;
    atomic_int stop;
    vd_errors err;
} deleter;

static void *deleter_main(void *arg)
{
    deleter *d = arg;
    char k[16];

    while (!atomic_load(&d->stop) && d->n_deleted < d->to - d->from) {
        uint32_t i = d->from + (uint32_t)rnd(&d->rng, d->to - d->from);
        int rc;

        if (d->deleted[i])
            continue;
        vd_key(i, k);
        if ((rc = stoat_delete(d->db, k, VD_KLEN)) != 0) {
            vd_error(&d->err, "delete %s: %s: %s", k, stoat_strerror(rc), stoat_errmsg(d->db));
            break;
        }
        d->deleted[i] = 1;
        if (++d->n_deleted % 64 == 0 && (rc = stoat_flush(d->db)) != 0) {
            vd_error(&d->err, "flush: %s: %s", stoat_strerror(rc), stoat_errmsg(d->db));
            break;
        }
    }
    return NULL;
}

/* One round: fresh keys [from, to) written twice, then GC while a thread
 * deletes some of them. */
static void delete_round(stoat_db *db, uint64_t *model, uint8_t *deleted, uint32_t from,
                         uint32_t to, uint64_t *rng, uint32_t *during)
{
    deleter d = {.db = db, .from = from, .to = to, .rng = test_rand(rng), .deleted = deleted,
                 .err = {.mu = PTHREAD_MUTEX_INITIALIZER}};
    pthread_t th;

    vd_fill(db, model, from, to, 1, 700);
    vd_fill(db, model, from, to, to + 1, 700);
    REQUIRE(pthread_create(&th, NULL, deleter_main, &d) == 0);
    REQUIRE_OK(stoat_gc(db, 0.3, NULL));
    atomic_store(&d.stop, 1);
    pthread_join(th, NULL);
    vd_errors_report(&d.err, "failed deletes", __LINE__);
    for (uint32_t i = from; i < to; i++)
        if (deleted[i])
            model[i] = ABSENT;
    *during += d.n_deleted;
}

static void test_vlog_db_delete_during_gc_stays_deleted(void)
{
    enum { ROUNDS = 5, PER = 3000, N = ROUNDS * PER };
    const char *dir = test_tmpdir();
    uint64_t *model = malloc(N * sizeof(*model)), rng = vd_seed() ^ 0xde1e7e;
    uint8_t *deleted = calloc(N, 1);
    uint32_t during = 0;
    stoat_options o;
    stoat_db *db;

    REQUIRE(model != NULL && deleted != NULL);
    vd_options(&o);
    db = vd_open(dir, &o);
    for (uint32_t r = 0; r < ROUNDS; r++) {
        delete_round(db, model, deleted, r * PER, (r + 1) * PER, &rng, &during);
        vd_check_model(db, model, (r + 1) * PER);
        REQUIRE_OK(stoat_flatten(db));
        vd_check_model(db, model, (r + 1) * PER);
    }
    printf("  %u keys deleted while GC ran\n", during);
    CHECK(during > 0);
    REQUIRE_OK(stoat_close(db));
    db = vd_open(dir, &o);
    vd_check_model(db, model, N);
    REQUIRE_OK(stoat_gc(db, 0.1, NULL));
    vd_check_model(db, model, N);
    REQUIRE_OK(stoat_close(db));
    free(model);
    free(deleted);
}

/* One writer overwriting a few keys with separated values, as fast as it
 * can (pause_us 0) or a little slower, until told to stop or for at most
 * max_us. The only writer: after it stops, model holds the truth. */
typedef struct churn {
    stoat_db *db;
    uint64_t *model;
    uint32_t keys;
    uint64_t next_tag, rng;
    size_t len_min, len_span;   /* value lengths */
    int batch;                  /* puts per write batch (0: single puts) */
    long pause_us, max_us;
    atomic_int stop, done;
    vd_errors err;
} churn;

/* One write of the churn: a put, or a batch of w->batch puts. */
static int churn_write(churn *w)
{
    char k[16], v[4096];
    stoat_batch *b;
    int rc, n = w->batch ? w->batch : 1;
    uint32_t keys[256];
    uint64_t tags[256];

    if (w->batch == 0) {
        keys[0] = (uint32_t)rnd(&w->rng, w->keys);
        tags[0] = w->next_tag++;
        rc = vd_put_rc(w->db, keys[0], tags[0], w->len_min + rnd(&w->rng, w->len_span));
    } else if ((rc = stoat_batch_new(w->db, &b)) == 0) {
        for (int j = 0; j < n && rc == 0; j++) {
            size_t len = w->len_min + rnd(&w->rng, w->len_span);
            keys[j] = (uint32_t)rnd(&w->rng, w->keys);
            tags[j] = w->next_tag++;
            vd_key(keys[j], k);
            vd_value(tags[j], len, v);
            rc = stoat_batch_set(b, k, VD_KLEN, v, len);
        }
        if (rc == 0)
            rc = stoat_batch_commit(b);
        stoat_batch_free(b);
    }
    for (int j = 0; j < n && rc == 0; j++)
        w->model[keys[j]] = tags[j];
    return rc;
}

static void *churn_main(void *arg)
{
    churn *w = arg;
    long t0 = now_micros();
    int rc;

    while (!atomic_load(&w->stop) && now_micros() - t0 < w->max_us) {
        if ((rc = churn_write(w)) != 0) {
            vd_error(&w->err, "write: %s: %s", stoat_strerror(rc), stoat_errmsg(w->db));
            break;
        }
        if (w->pause_us)
            usleep((useconds_t)w->pause_us);
    }
    atomic_store(&w->done, 1);
    return NULL;
}

/*
 * Regression: GC deleted a collected file while a WAL not yet flushed still
 * held older entries pointing into it, and the next open refused the
 * database ("points at value-log record ... that is missing"). Writes go
 * on while GC collects; then a clean close and reopen, several times.
 */
static void test_vlog_db_gc_under_writes_then_reopen(void)
{
    enum { CYCLES = 20, KEYS = 50 };
    const char *dir = test_tmpdir();
    uint64_t model[KEYS];
    churn w = {.model = model, .keys = KEYS, .next_tag = 1, .rng = vd_seed() ^ 0x3e09e4,
               .len_min = 300, .len_span = 900, .pause_us = 20, .max_us = 60 * 1000000L, .err = {.mu = PTHREAD_MUTEX_INITIALIZER}};
    stoat_options o;
    pthread_t th;

    for (uint32_t i = 0; i < KEYS; i++)
        model[i] = ABSENT;
    vd_options(&o);
    for (int cycle = 0; cycle < CYCLES && !test_failed_now; cycle++) {
        w.db = vd_open(dir, &o);
        atomic_store(&w.stop, 0);
        REQUIRE(pthread_create(&th, NULL, churn_main, &w) == 0);
        for (int i = 0; i < 3; i++)
            CHECK_RC(stoat_gc(w.db, 0.3, NULL), 0);
        atomic_store(&w.stop, 1);
        pthread_join(th, NULL);
        vd_errors_report(&w.err, "failed writes", __LINE__);
        vd_check_model(w.db, model, KEYS);
        REQUIRE_OK(stoat_close(w.db));
    }
    w.db = vd_open(dir, &o);
    vd_check_model(w.db, model, KEYS);
    REQUIRE_OK(stoat_close(w.db));
}

/* Regression: stoat_gc collected files sealed while it ran, so a writer
 * faster than GC kept one call going for as long as it wrote (seconds,
 * not always: it ended whenever compaction's counts lagged behind). */
static void test_vlog_db_gc_returns_while_writes_go_on(void)
{
    enum { KEYS = 50 };
    const char *dir = test_tmpdir();
    uint64_t model[KEYS], reclaimed = 0;
    churn w = {.model = model, .keys = KEYS, .next_tag = 1, .rng = vd_seed() ^ 0x9e7,
               .len_min = 1000, .len_span = 200, .batch = 100, .pause_us = 0, .max_us = 20 * 1000000L, .err = {.mu = PTHREAD_MUTEX_INITIALIZER}};
    stoat_options o;
    pthread_t th;
    long slowest = 0;

    for (uint32_t i = 0; i < KEYS; i++)
        model[i] = ABSENT;
    vd_options(&o);
    w.db = vd_open(dir, &o);
    REQUIRE(pthread_create(&th, NULL, churn_main, &w) == 0);
    usleep(100000);
    for (int i = 0; i < 3 && !atomic_load(&w.done); i++) {
        long t0 = now_micros();
        uint64_t r = 0;

        CHECK_RC(stoat_gc(w.db, 0.3, &r), 0);
        reclaimed += r;
        if (now_micros() - t0 > slowest)
            slowest = now_micros() - t0;
    }
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    printf("  stoat_gc under writes: at most %.2f s a call, %.1f MB reclaimed\n",
           (double)slowest / 1e6, (double)reclaimed / 1e6);
    CHECK(slowest < 5 * 1000000L);
    CHECK(reclaimed > 0);
    vd_errors_report(&w.err, "failed writes", __LINE__);
    vd_check_model(w.db, model, KEYS);
    REQUIRE_OK(stoat_close(w.db));
}

/*
 * GC among writers, readers and long-lived iterators. Each key has one
 * writer, which gives its writes sequence numbers 1, 2, ... (a value's tag
 * is key << 40 | seq; some seqs are deletes, c_is_delete). committed[k] is
 * the last seq whose write returned, inflight[k] the last one started. A
 * read that began after seq lo returned and ended before seq hi + 1
 * started may see exactly: the value of a put seq in [lo, hi], or nothing
 * if a delete seq lies in [lo, hi] (or lo is 0). Anything else, any error,
 * is a wrong read.
 */
#define CK 160
#define C_WRITERS 2
#define C_READERS 2
#define C_ITERS 2
#define C_RUN_MS 1500
#define C_SEQ_BITS 40

typedef struct conc {
    stoat_db *db;
    atomic_uint_least64_t committed[CK], inflight[CK];
    atomic_int stop;
    atomic_ulong writes, reads, snapshot_reads, iter_entries, iter_passes, gc_calls;
    atomic_uint_least64_t reclaimed;
    vd_errors err;
    uint64_t seed;
} conc;

typedef struct conc_thread {
    conc *c;
    int id;
    pthread_t th;
} conc_thread;

static int c_is_delete(uint32_t k, uint64_t seq)
{
    return (((uint64_t)k << C_SEQ_BITS ^ seq) * 0x9e3779b97f4a7c15ull) >> 60 == 0;
}

static size_t c_len(uint64_t tag)
{
    return 64 + (size_t)((tag * 0x2545f4914f6cdd1dull) >> 40) % 1500;
}

static int c_allowed(uint32_t k, int rc, uint64_t tag, uint64_t lo, uint64_t hi)
{
    uint64_t seq = tag & ((1ull << C_SEQ_BITS) - 1);

    if (rc == STOAT_ENOTFOUND) {
        for (uint64_t s = lo; s <= hi; s++)
            if (s == 0 || c_is_delete(k, s))
                return 1;
        return 0;
    }
    return rc == 0 && tag != BAD && tag >> C_SEQ_BITS == k && seq >= lo && seq <= hi &&
           seq != 0 && !c_is_delete(k, seq);
}

static void c_check(conc *c, const char *how, uint32_t k, int rc, uint64_t tag, uint64_t lo,
                    uint64_t hi)
{
    if (!c_allowed(k, rc, tag, lo, hi))
        vd_error(&c->err, "%s key %u: rc %d (%s), seq %llu (tag %llx); allowed seqs %llu..%llu",
                 how, k, rc, rc ? stoat_errmsg(c->db) : "",
                 (unsigned long long)(tag & ((1ull << C_SEQ_BITS) - 1)),
                 (unsigned long long)tag, (unsigned long long)lo, (unsigned long long)hi);
}

static int c_write(conc *c, uint32_t k, uint64_t seq, int use_txn)
{
    uint64_t tag = (uint64_t)k << C_SEQ_BITS | seq;
    char key[16], v[2048];
    size_t len = c_len(tag);
    stoat_txn *txn;
    int rc;

    if (!c_is_delete(k, seq) && !use_txn)
        return vd_put_rc(c->db, k, tag, len);
    vd_key(k, key);
    if (!use_txn)
        return stoat_delete(c->db, key, VD_KLEN);
    if ((rc = stoat_txn_begin(c->db, 0, &txn)) != 0)
        return rc;
    vd_value(tag, len, v);
    rc = c_is_delete(k, seq) ? stoat_txn_delete(txn, key, VD_KLEN)
                             : stoat_txn_set(txn, key, VD_KLEN, v, len);
    if (rc == 0)
        rc = stoat_txn_commit(txn);
    stoat_txn_discard(txn);
    return rc;
}

/* Writer id owns the keys k with k % C_WRITERS == id; odd ids commit
 * through transactions. */
static void *c_writer(void *arg)
{
    conc_thread *t = arg;
    conc *c = t->c;
    uint64_t rng = c->seed ^ (uint64_t)(t->id + 1) << 48;

    while (!atomic_load(&c->stop)) {
        uint32_t k = (uint32_t)(t->id + C_WRITERS * (int)rnd(&rng, CK / C_WRITERS));
        uint64_t seq = atomic_load(&c->committed[k]) + 1;
        int rc;

        atomic_store(&c->inflight[k], seq);
        if ((rc = c_write(c, k, seq, t->id % 2)) != 0) {
            vd_error(&c->err, "write key %u: %s: %s", k, stoat_strerror(rc), stoat_errmsg(c->db));
            break;
        }
        atomic_store(&c->committed[k], seq);
        atomic_fetch_add(&c->writes, 1);
        usleep(20);     /* leave GC time for many rounds */
    }
    return NULL;
}

/* A read-only transaction reads a few keys, waits while GC runs, and must
 * read the same again. */
static void c_snapshot_check(conc *c, uint64_t *rng)
{
    uint32_t ks[8];
    uint64_t lo[8], hi[8], first[8];
    stoat_txn *txn;
    int rc;

    for (int j = 0; j < 8; j++) {
        ks[j] = (uint32_t)rnd(rng, CK);
        lo[j] = atomic_load(&c->committed[ks[j]]);
    }
    if ((rc = stoat_txn_begin(c->db, STOAT_TXN_READ_ONLY, &txn)) != 0) {
        vd_error(&c->err, "txn begin: %s", stoat_strerror(rc));
        return;
    }
    for (int j = 0; j < 8; j++)
        hi[j] = atomic_load(&c->inflight[ks[j]]);
    for (int pass = 0; pass < 2; pass++) {
        for (int j = 0; j < 8; j++) {
            char k[16];
            const void *v;
            size_t vlen;
            uint64_t tag;

            vd_key(ks[j], k);
            rc = stoat_txn_get(txn, k, VD_KLEN, &v, &vlen);
            tag = rc == 0 ? vd_tag(v, vlen) : ABSENT;
            if (pass == 0) {
                c_check(c, "snapshot", ks[j], rc, tag, lo[j], hi[j]);
                first[j] = rc == 0 || rc == STOAT_ENOTFOUND ? tag : BAD;
            } else if (tag != first[j] || (rc != 0 && rc != STOAT_ENOTFOUND)) {
                vd_error(&c->err, "snapshot key %u changed: tag %llx, then rc %d tag %llx", ks[j],
                         (unsigned long long)first[j], rc, (unsigned long long)tag);
            }
            atomic_fetch_add(&c->snapshot_reads, 1);
        }
        if (pass == 0)
            usleep(5000);
    }
    stoat_txn_discard(txn);
}

static void *c_reader(void *arg)
{
    conc_thread *t = arg;
    conc *c = t->c;
    uint64_t rng = c->seed ^ (uint64_t)(t->id + 1) << 40;

    for (unsigned long n = 1; !atomic_load(&c->stop); n++) {
        uint32_t k = (uint32_t)rnd(&rng, CK);
        uint64_t lo = atomic_load(&c->committed[k]), tag;
        int rc = vd_read(c->db, k, &tag);

        c_check(c, "get", k, rc, tag, lo, atomic_load(&c->inflight[k]));
        atomic_fetch_add(&c->reads, 1);
        if (n % 500 == 0)
            c_snapshot_check(c, &rng);
    }
    return NULL;
}

/* One slow pass of an iterator over its snapshot. */
static void c_iter_pass(conc *c)
{
    uint64_t lo[CK], hi[CK];
    uint32_t next = 0;
    stoat_iter *it;
    int rc;

    for (uint32_t k = 0; k < CK; k++)
        lo[k] = atomic_load(&c->committed[k]);
    if ((rc = stoat_iter_open(c->db, NULL, &it)) != 0) {
        vd_error(&c->err, "iter open: %s", stoat_strerror(rc));
        return;
    }
    for (uint32_t k = 0; k < CK; k++)
        hi[k] = atomic_load(&c->inflight[k]);
    for (stoat_iter_seek_first(it); stoat_iter_valid(it) && !atomic_load(&c->stop);
         stoat_iter_next(it)) {
        const void *key, *v = NULL;
        size_t klen = 0, vlen = 0;
        uint32_t k;

        stoat_iter_key(it, &key, &klen);
        if ((k = vd_index(key, klen)) >= CK || k < next) {
            vd_error(&c->err, "iterator: key %u out of order (after %u)", k, next);
            break;
        }
        for (; next < k; next++)
            c_check(c, "iterator (absent)", next, STOAT_ENOTFOUND, ABSENT, lo[next], hi[next]);
        next = k + 1;
        rc = stoat_iter_value(it, &v, &vlen);
        c_check(c, "iterator", k, rc, rc == 0 ? vd_tag(v, vlen) : ABSENT, lo[k], hi[k]);
        atomic_fetch_add(&c->iter_entries, 1);
        usleep(3000);   /* GC collects and deletes files meanwhile */
    }
    if ((rc = stoat_iter_status(it)) != 0)
        vd_error(&c->err, "iterator status: %s", stoat_strerror(rc));
    for (; next < CK && !atomic_load(&c->stop); next++)
        c_check(c, "iterator (absent)", next, STOAT_ENOTFOUND, ABSENT, lo[next], hi[next]);
    stoat_iter_close(it);
    atomic_fetch_add(&c->iter_passes, 1);
}

static void *c_iterator(void *arg)
{
    conc_thread *t = arg;

    usleep((useconds_t)t->id * 150000);     /* staggered lifetimes */
    while (!atomic_load(&t->c->stop))
        c_iter_pass(t->c);
    return NULL;
}

static void *c_gc(void *arg)
{
    conc *c = ((conc_thread *)arg)->c;

    while (!atomic_load(&c->stop)) {
        uint64_t reclaimed = 0;
        int rc = stoat_gc(c->db, 0.3, &reclaimed);

        if (rc != 0) {
            vd_error(&c->err, "stoat_gc: %s: %s", stoat_strerror(rc), stoat_errmsg(c->db));
            break;
        }
        atomic_fetch_add(&c->reclaimed, reclaimed);
        atomic_fetch_add(&c->gc_calls, 1);
        usleep(5000);
    }
    return NULL;
}

/* The last committed state as a model (no write is in flight). */
static void c_model(conc *c, uint64_t *model)
{
    for (uint32_t k = 0; k < CK; k++) {
        uint64_t seq = atomic_load(&c->committed[k]);
        model[k] = seq == 0 || c_is_delete(k, seq) ? ABSENT : (uint64_t)k << C_SEQ_BITS | seq;
    }
}

static void c_run_threads(conc *c)
{
    static void *(*const mains[4])(void *) = {c_writer, c_reader, c_iterator, c_gc};
    const int counts[4] = {C_WRITERS, C_READERS, C_ITERS, 1};
    conc_thread th[C_WRITERS + C_READERS + C_ITERS + 1];
    int n = 0;

    for (int kind = 0; kind < 4; kind++) {
        for (int id = 0; id < counts[kind]; id++, n++) {
            th[n] = (conc_thread){c, id, 0};
            REQUIRE(pthread_create(&th[n].th, NULL, mains[kind], &th[n]) == 0);
        }
    }
    usleep(C_RUN_MS * 1000);
    atomic_store(&c->stop, 1);
    for (int i = 0; i < n; i++)
        pthread_join(th[i].th, NULL);
}

static void test_vlog_db_gc_concurrent_no_wrong_reads(void)
{
    static char names[DBU_MAX_FILES][64];
    const char *dir = test_tmpdir();
    conc *c = calloc(1, sizeof(*c));
    uint64_t model[CK];
    stoat_options o;

    REQUIRE(c != NULL);
    pthread_mutex_init(&c->err.mu, NULL);
    c->seed = vd_seed();
    vd_options(&o);
    c->db = vd_open(dir, &o);
    c_run_threads(c);
    printf("  %lu writes, %lu gets, %lu snapshot gets, %lu iterator entries in %lu passes, %lu GC calls "
           "reclaiming %.1f MB; %lu wrong\n", atomic_load(&c->writes), atomic_load(&c->reads),
           atomic_load(&c->snapshot_reads), atomic_load(&c->iter_entries),
           atomic_load(&c->iter_passes), atomic_load(&c->gc_calls),
           (double)atomic_load(&c->reclaimed) / 1e6, atomic_load(&c->err.n));
    vd_errors_report(&c->err, "wrong reads or failed calls", __LINE__);
    CHECK(atomic_load(&c->gc_calls) > 0 && atomic_load(&c->reclaimed) > 0);
    CHECK(atomic_load(&c->iter_passes) > 0 && atomic_load(&c->reads) > 0);
    /* Files were deleted on the way, not only scheduled. */
    CHECK(dbu_list(dir, ".vlog", names) > 0 && strcmp(names[0], "000001.vlog") != 0);

    c_model(c, model);
    vd_check_model(c->db, model, CK);
    REQUIRE_OK(stoat_close(c->db));
    c->db = vd_open(dir, &o);
    vd_check_model(c->db, model, CK);
    REQUIRE_OK(stoat_gc(c->db, 0.1, NULL));
    vd_check_model(c->db, model, CK);
    REQUIRE_OK(stoat_close(c->db));
    pthread_mutex_destroy(&c->err.mu);
    free(c);
}

/*
 * Crashes and failed writes during GC. Each run loads a small database (a
 * couple of MB over F_KEYS keys: overwrites and deletes), makes it durable
 * with stoat_sync, arms one fault and calls stoat_gc: the n-th append
 * fails (EIO or ENOSPC), or the n-th sync, or the power goes at a random
 * moment (env_fault_crash from a thread). n and the moment are drawn from
 * what an undisturbed GC of the same kind of load does (a calibration
 * run). Then close, drop what was not synced, reopen: every key has its
 * value from before GC, and (every fourth run) so after a GC of the
 * recovered database.
 */
#define F_KEYS 300
#define F_RUNS 100

typedef struct fault_calib {
    long appends, syncs, micros;
} fault_calib;

typedef struct crasher {
    env *e;
    long micros;
    pthread_t th;
} crasher;

static void *crasher_main(void *arg)
{
    crasher *cr = arg;

    usleep((useconds_t)cr->micros);
    env_fault_crash(cr->e);
    return NULL;
}

/* Removes every file of the flat directory dir, hidden ones too. */
static void vd_clear_dir(const char *dir)
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

static void fault_load(stoat_db *db, uint64_t *model, uint64_t *rng)
{
    uint64_t tag = 1;

    for (int round = 0; round < 4; round++) {
        for (uint32_t i = 0; i < F_KEYS; i++) {
            if (round > 0 && rnd(rng, 3) == 0)
                continue;
            vd_put(db, i, tag, 1000 + rnd(rng, 2500));
            model[i] = tag++;
        }
    }
    for (uint32_t i = 0; i < F_KEYS; i++) {
        if (rnd(rng, 6) == 0) {
            vd_delete(db, i);
            model[i] = ABSENT;
        }
    }
    REQUIRE_OK(stoat_sync(db));
}

/* Arms fault `mode` (0..3; other: none) for the GC about to run. */
static int fault_arm(env *fault, int mode, const fault_calib *cal, uint64_t *rng, crasher *cr)
{
    switch (mode) {
    case 0:
        env_fault_fail_append(fault, 1 + (long)rnd(rng, (uint64_t)cal->appends), EIO);
        return 0;
    case 1:
        env_fault_fail_append(fault, 1 + (long)rnd(rng, (uint64_t)cal->appends), ENOSPC);
        return 0;
    case 2:
        env_fault_fail_sync(fault, 1 + (long)rnd(rng, (uint64_t)cal->syncs));
        return 0;
    case 3:
        *cr = (crasher){fault, (long)rnd(rng, (uint64_t)cal->micros), 0};
        REQUIRE(pthread_create(&cr->th, NULL, crasher_main, cr) == 0);
        return 1;
    default:
        return 0;
    }
}

/* One run; returns stoat_gc's rc. With `measure`, records what the GC did. */
static int fault_run(const char *dir, int mode, const fault_calib *cal, uint64_t *rng,
                     fault_calib *measure)
{
    env *fault = env_fault_new(env_posix());
    uint64_t model[F_KEYS];
    long a0, s0, t0;
    stoat_options o;
    stoat_db *db;
    crasher cr;
    int rc_gc, crashing, rc;

    REQUIRE(fault != NULL);
    vd_options(&o);
    vd_clear_dir(dir);
    REQUIRE_OK(db_open_env(dir, &o, fault, &db));
    fault_load(db, model, rng);
    a0 = env_fault_appends(fault);
    s0 = env_fault_syncs(fault);
    t0 = now_micros();
    crashing = fault_arm(fault, mode, cal, rng, &cr);
    rc_gc = stoat_gc(db, 0.2, NULL);
    if (measure)
        *measure = (fault_calib){env_fault_appends(fault) - a0, env_fault_syncs(fault) - s0,
                                 now_micros() - t0};
    if (crashing)
        pthread_join(cr.th, NULL);
    stoat_close(db);
    REQUIRE_OK(env_fault_drop_unsynced(fault));
    if ((rc = db_open_env(dir, &o, fault, &db)) != 0)
        test_fail(__FILE__, __LINE__, "fault %d: reopen: %s: %s", mode, stoat_strerror(rc),
                  stoat_errmsg(NULL));
    REQUIRE(rc == 0);
    vd_check_model(db, model, F_KEYS);
    if (mode < 0 || rnd(rng, 4) == 0) {   /* the recovered files collect too */
        REQUIRE_OK(stoat_gc(db, 0.2, NULL));
        vd_check_model(db, model, F_KEYS);
    }
    REQUIRE_OK(stoat_close(db));
    env_fault_free(fault);
    return rc_gc;
}

static void test_vlog_db_gc_crash_loses_nothing(void)
{
    char dir[DBU_PATH_MAX];
    uint64_t rng = vd_seed() ^ 0xc4a54;
    fault_calib cal;
    int hits = 0;
    long t0 = now_micros();

    dbu_subdir(dir, "run");
    REQUIRE_OK(fault_run(dir, -1, NULL, &rng, &cal));
    printf("  an undisturbed GC: %ld appends, %ld syncs, %ld us\n", cal.appends, cal.syncs,
           cal.micros);
    REQUIRE(cal.appends > 0 && cal.syncs > 0);
    cal.micros += 1;
    for (int i = 0; i < F_RUNS && !test_failed_now; i++)
        hits += fault_run(dir, i % 4, &cal, &rng, NULL) != 0;
    printf("  %d of %d GC calls stopped by the fault; %.1f s\n", hits, F_RUNS,
           (double)(now_micros() - t0) / 1e6);
    CHECK(hits >= F_RUNS / 4);
}

static void test_vlog_db_auto_gc_shrinks_log(void)
{
    enum { N = 2000, LEN = 1000 };
    const char *dir = test_tmpdir();
    uint64_t model[N], before, live = N * VD_REC(LEN);
    long t0;
    stoat_options o;
    stoat_stats st;
    stoat_db *db;

    vd_options(&o);
    o.auto_gc = 1;
    o.auto_gc_ratio = 0.3;
    db = vd_open(dir, &o);
    for (uint64_t r = 0; r < 3; r++)
        vd_fill(db, model, 0, N, 1 + r * N, LEN);
    REQUIRE_OK(stoat_stats_get(db, &st));
    before = st.vlog_bytes;
    t0 = now_micros();
    while (st.vlog_bytes > live + live / 2 && now_micros() - t0 < 20 * 1000000L) {
        usleep(100000);
        REQUIRE_OK(stoat_stats_get(db, &st));
    }
    printf("  value log %.1f MB -> %.1f MB by itself in %.1f s (live %.1f MB)\n", before / 1e6,
           st.vlog_bytes / 1e6, (double)(now_micros() - t0) / 1e6, live / 1e6);
    CHECK(st.vlog_bytes <= live + live / 2);
    CHECK(dbu_dir_bytes(dir, ".vlog") <= live + live / 2);
    vd_check_model(db, model, N);
    REQUIRE_OK(stoat_close(db));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_vlog_db_threshold_boundary);
    TEST_RUN(test_vlog_db_big_value);
    TEST_RUN(test_vlog_db_corrupt_record);
    TEST_RUN(test_vlog_db_gc_leaves_damaged_file_alone);
    TEST_RUN(test_vlog_db_keys_only_reads_no_value);
    TEST_RUN(test_vlog_db_wal_points_past_log_end);
    TEST_RUN(test_vlog_db_discard_counts_survive_reopen);
    TEST_RUN(test_vlog_db_gc_once_after_overwrites);
    TEST_RUN(test_vlog_db_snapshot_keeps_collected_file);
    TEST_RUN(test_vlog_db_snapshot_release_does_no_fsync);
    TEST_RUN(test_vlog_db_delete_during_gc_stays_deleted);
    TEST_RUN(test_vlog_db_gc_under_writes_then_reopen);
    TEST_RUN(test_vlog_db_gc_returns_while_writes_go_on);
    TEST_RUN(test_vlog_db_gc_concurrent_no_wrong_reads);
    TEST_RUN(test_vlog_db_gc_crash_loses_nothing);
    TEST_RUN(test_vlog_db_auto_gc_shrinks_log);
    return test_summary();
}
