/*
 * vlog_db_test.c - key/value separation and value-log GC at the database
 * level, through the public API (helpers in vlog_db_util.h).
 *
 * The tests: where value_threshold splits values; values of several MiB; a
 * damaged value-log record (only its key fails); an iterator that needs
 * only keys never reads the value log; a WAL pointing past the end of the
 * value log; discard counts across a reopen; one GC call right after
 * overwrites; a collected file kept while a snapshot may read it, and
 * deleted by the GC thread, never by the reader's release; a scan that
 * looks one entry ahead (issue 15) while its files are collected. GC racing
 * other threads is vlog_db_race_test.c; crashes during GC and automatic
 * GC are vlog_db_fault_test.c; the space test is vlog_gc_test.c.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

#include "db/db_env.h"
#include "base/coding.h"
#include "log/wal.h"
#include "db_util.h"
#include "support/env_fault.h"
#include "test.h"
#include "vlog_db_util.h"

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

/* 100 values in the value log, pointed at by one WAL only; the last
 * value is then torn off the value log (a power loss kept the WAL's
 * unsynced record but not the value's). */
static void wal_past_log_end_setup(const char *dir, stoat_options *o, uint64_t *model)
{
    static char names[DBU_MAX_FILES][64];
    char p[DBU_PATH_MAX];
    stoat_db *db;
    int n;

    vd_options(o);
    o->memtable_size = 64u << 20;   /* nothing is flushed: the WAL has the pointers */
    db = vd_open(dir, o);
    vd_fill(db, model, 0, 100, 1, 1000);
    REQUIRE_OK(stoat_close(db));
    REQUIRE(dbu_list(dir, ".sst", names) == 0);
    n = dbu_list(dir, ".vlog", names);
    REQUIRE(n >= 1);
    dbu_path(p, dir, names[n - 1]);
    dbu_truncate(p, dbu_file_size(p) - 100);    /* the last value, v000099's, is torn */
}

/*
 * The newest WAL's record whose value the value log lost was never
 * synced (the value log is synced first): recovery ends the WAL there, as
 * at a torn tail, and the rest reads (powerloss_test found the open
 * failing instead). Twice: the first open cut the WAL.
 */
static void test_vlog_db_newest_wal_points_past_log_end(void)
{
    const char *dir = test_tmpdir();
    uint64_t model[100];
    stoat_options o;
    stoat_db *db;

    wal_past_log_end_setup(dir, &o, model);
    model[99] = ABSENT;
    for (int i = 0; i < 2; i++) {
        REQUIRE_OK(stoat_open(dir, &o, &db));
        vd_check_model(db, model, 100);
        REQUIRE_OK(stoat_close(db));
    }
}

/* In an older WAL (synced at its rotation) the same is damage: the open
 * fails naming the key, and passes no dangling pointer on. */
static void test_vlog_db_older_wal_points_past_log_end(void)
{
    const char *dir = test_tmpdir();
    char p[DBU_PATH_MAX], h[WAL_HEADER_LEN];
    uint64_t model[100];
    stoat_options o;
    stoat_db *db;

    wal_past_log_end_setup(dir, &o, model);
    put_fixed64(h, WAL_MAGIC);
    put_fixed32(h + 8, WAL_FORMAT_VERSION);
    put_fixed32(h + 12, 0);
    dbu_write_file(dbu_path(p, dir, "999999.wal"), h, sizeof(h));    /* a newer, empty WAL */
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

/* ---- scans that look ahead (issue 15) ---------------------------------- */

/* vd_value's layout, with a body that compresses when the tag is even. */
static void la_value(uint64_t tag, size_t len, char *out)
{
    vd_value(tag, len, out);
    if (tag % 2 == 0)
        for (size_t i = VD_HEAD; i < len; i++)
            out[i] = (char)('a' + (tag + i / 16) % 7);
}

/* The tag of a value la_value made, BAD for anything else. */
static uint64_t la_tag(const void *v, size_t vlen)
{
    char want[4096];
    uint64_t tag;

    if (vlen < VD_HEAD || vlen > sizeof(want))
        return BAD;
    memcpy(&tag, v, 8);
    if (tag >= BAD)
        return BAD;
    la_value(tag, vlen, want);
    return memcmp(want, v, vlen) == 0 ? tag : BAD;
}

static void la_put(stoat_db *db, uint32_t i, uint64_t tag, size_t len, uint64_t ttl_ms)
{
    char k[16], v[4096];
    stoat_batch *b;

    vd_key(i, k);
    la_value(tag, len, v);
    REQUIRE_OK(stoat_batch_new(db, &b));
    REQUIRE_OK(stoat_batch_set_ex(b, k, VD_KLEN, v, len, ttl_ms, 0));
    REQUIRE_OK(stoat_batch_commit(b));
    stoat_batch_free(b);
}

/* One position of a forward walk against want[]: the key is the next one
 * want has (none skipped, none twice), with its value (read when
 * read_value). Differences count into *diffs; *next moves past the key. */
static void la_check_pos(stoat_iter *it, const uint64_t *want, uint32_t n, uint32_t *next,
                         int read_value, int *diffs)
{
    const void *k, *v;
    size_t klen, vlen;
    uint32_t i;

    if (stoat_iter_key(it, &k, &klen) != 0 || (i = vd_index(k, klen)) >= n || i < *next) {
        (*diffs)++;
        return;
    }
    while (*next < i)
        *diffs += want[(*next)++] != ABSENT;
    *next = i + 1;
    if (read_value)
        *diffs += stoat_iter_value(it, &v, &vlen) != 0 || la_tag(v, vlen) != want[i];
}

/* The rest of a forward walk from the iterator's position to the end of
 * [from, to): reads every value but those of keys divisible by skip (a
 * walk that sometimes needs only the key); every so often steps back and
 * forth again. Returns the differences. */
static int la_walk(stoat_iter *it, const uint64_t *want, uint32_t from, uint32_t to,
                   uint32_t stop, int skip)
{
    uint32_t next = from, steps = 0;
    int diffs = 0;

    for (; stoat_iter_valid(it) && next < stop; stoat_iter_next(it), steps++) {
        const void *k;
        size_t klen;
        REQUIRE_OK(stoat_iter_key(it, &k, &klen));
        la_check_pos(it, want, to, &next, vd_index(k, klen) % (uint32_t)skip != 0, &diffs);
        if (steps % 61 == 60 && next - 1 > from) {
            /* back one entry and forth again: the same key, same value */
            uint32_t here = next - 1;
            stoat_iter_prev(it);
            diffs += !stoat_iter_valid(it);
            stoat_iter_next(it);
            next = here;
            la_check_pos(it, want, to, &next, 1, &diffs);
        }
    }
    diffs += stoat_iter_status(it) != 0;
    if (next >= stop)
        return diffs;
    while (next < to)
        diffs += want[next++] != ABSENT;
    return diffs;
}

/*
 * A forward scan keeps one entry ahead and prefetches that entry's
 * value-log record while the caller reads the current value. Values in
 * several value-log files in no key order, compressed and not, deletes
 * and expired entries between them; halfway through the scan every key
 * is overwritten or deleted and GC collects the files the scan's
 * snapshot still reads (while it holds a pin and a pointer ahead): the
 * scan sees each key of its snapshot once, with its value, through
 * prevs, prefix ends and seeks followed by nexts. In both process modes.
 */
static void test_vlog_db_scan_looks_ahead(void)
{
    enum { N = 4000 };
    static uint64_t model[N], snap[N];
    static char first[DBU_MAX_FILES][64];
    uint64_t rs = vd_seed(), reclaimed, total = 0;
    static uint32_t perm[N];

    for (int mp = 0; mp < 2; mp++) {
        char dir[DBU_PATH_MAX];
        stoat_iter_options po = {0};
        stoat_options o;
        stoat_iter *it;
        stoat_db *db;
        uint32_t next = 0;
        int n_first, diffs = 0;

        snprintf(dir, sizeof(dir), "%s/mp%d", test_tmpdir(), mp);
        vd_options(&o);
        o.multi_process = mp;
        db = vd_open(dir, &o);
        for (uint32_t i = 0; i < N; i++)
            perm[i] = i;
        for (uint32_t i = N - 1; i > 0; i--) {
            uint32_t j = (uint32_t)rnd(&rs, i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (uint32_t p = 0; p < N; p++) {
            uint32_t i = perm[p];
            la_put(db, i, 1 + i, 400 + rnd(&rs, 1600), i % 11 == 5 ? 1 : 0);
            model[i] = i % 11 == 5 ? ABSENT : 1 + i;
        }
        for (uint32_t i = 3; i < N; i += 7) {
            vd_delete(db, i);
            model[i] = ABSENT;
        }
        n_first = dbu_list(dir, ".vlog", first);
        CHECK(n_first >= 3);
        /* Half of those files' values garbage before the scan's snapshot,
         * so that GC collects them while the scan still reads the rest. */
        for (uint32_t p = 0; p < N; p++) {
            uint32_t i = perm[p];
            if (i % 2 == 0 && model[i] != ABSENT) {
                la_put(db, i, N + 1 + i, 400 + rnd(&rs, 1600), 0);
                model[i] = N + 1 + i;
            }
        }
        usleep(20000);      /* the 1 ms entries have expired */
        memcpy(snap, model, sizeof(snap));

        REQUIRE_OK(stoat_iter_open(db, NULL, &it));
        REQUIRE_OK(stoat_iter_seek_first(it));
        diffs += la_walk(it, snap, 0, N, N / 2, 5);
        for (uint32_t i = 0; i < N; i++) {
            if (i % 13 == 0) {
                vd_delete(db, i);
                model[i] = ABSENT;
            } else {
                la_put(db, i, 2 * N + i, 400 + rnd(&rs, 1600), 0);
                model[i] = 2 * N + i;
            }
        }
        for (int g = 0; g < 8 && stoat_gc(db, 0.3, &reclaimed) == 0 && reclaimed > 0; g++)
            total += reclaimed;
        CHECK(vd_files_gone(dir, first, n_first) == 0);     /* the scan still reads them */
        /* Where the walk stands now: the first key of snap at or after N / 2. */
        for (next = N / 2; next < N && snap[next] == ABSENT; next++)
            ;
        diffs += la_walk(it, snap, next, N, N, 3);
        for (int s = 0; s < 20; s++) {
            char k[16];
            uint32_t at = (uint32_t)rnd(&rs, N);
            vd_key(at, k);
            REQUIRE_OK(stoat_iter_seek(it, k, VD_KLEN));
            diffs += la_walk(it, snap, at, N, at + 60 < N ? at + 60 : N, 2);
        }
        stoat_iter_close(it);
        CHECK(diffs == 0);

        po.prefix = "v0012";
        po.prefix_len = 5;
        REQUIRE_OK(stoat_iter_open(db, &po, &it));
        REQUIRE_OK(stoat_iter_seek_first(it));
        CHECK(la_walk(it, model, 1200, 1300, 1300, 1000000) == 0);
        stoat_iter_close(it);
        REQUIRE_OK(stoat_iter_open(db, NULL, &it));
        REQUIRE_OK(stoat_iter_seek_first(it));
        CHECK(la_walk(it, model, 0, N, N, 1000000) == 0);
        stoat_iter_close(it);
        REQUIRE_OK(stoat_close(db));
    }
    CHECK(total > 0);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_vlog_db_scan_looks_ahead);
    TEST_RUN(test_vlog_db_threshold_boundary);
    TEST_RUN(test_vlog_db_big_value);
    TEST_RUN(test_vlog_db_corrupt_record);
    TEST_RUN(test_vlog_db_gc_leaves_damaged_file_alone);
    TEST_RUN(test_vlog_db_keys_only_reads_no_value);
    TEST_RUN(test_vlog_db_newest_wal_points_past_log_end);
    TEST_RUN(test_vlog_db_older_wal_points_past_log_end);
    TEST_RUN(test_vlog_db_discard_counts_survive_reopen);
    TEST_RUN(test_vlog_db_gc_once_after_overwrites);
    TEST_RUN(test_vlog_db_snapshot_keeps_collected_file);
    TEST_RUN(test_vlog_db_snapshot_release_does_no_fsync);
    return test_summary();
}
