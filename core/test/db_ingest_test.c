/*
 * db_ingest_test.c - bulk loads (stoat_loader_*, db/ingest.c): sorted
 * entries become tables installed as one commit; unsorted keys and
 * ranges holding data are refused; values go to the value log; expiries
 * and user meta are kept; a load survives reopen, a crash before finish
 * leaves nothing; snapshots taken before never see it, transactions
 * begun before conflict on its keys.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db_util.h"
#include "test.h"

#define VLEN 100

static void key_of(int i, char *out)
{
    snprintf(out, 16, "key%08d", i);
}

static stoat_db *open_small(const char *dir)
{
    stoat_options o;
    stoat_db *db;

    dbu_small_options(&o);
    o.auto_gc = 0;
    REQUIRE_OK(stoat_open(dir, &o, &db));
    return db;
}

/* Loads keys [from, to) with step, values dbu_value(i, VLEN); returns the
 * version (0 on failure, with the code in *rc). */
static uint64_t load_range(stoat_db *db, int from, int to, int step, int *rc)
{
    stoat_loader *ld;
    uint64_t version = 0;
    char k[16], v[VLEN];

    REQUIRE_OK(stoat_loader_new(db, &ld));
    for (int i = from; i < to; i += step) {
        key_of(i, k);
        dbu_value((uint64_t)i, v, VLEN);
        REQUIRE_OK(stoat_loader_add(ld, k, strlen(k), v, VLEN, 0, 0));
    }
    *rc = stoat_loader_finish(ld, &version);
    return version;
}

static int has_key(stoat_db *db, int i)
{
    char k[16];
    void *val = NULL;
    size_t vlen = 0;
    int rc;

    key_of(i, k);
    rc = stoat_get(db, k, strlen(k), &val, &vlen);
    if (rc == 0) {
        int good = dbu_value_is((uint64_t)i, VLEN, val, vlen);
        stoat_free(val);
        return good ? 1 : -1;
    }
    return rc == STOAT_ENOTFOUND ? 0 : rc;
}

static long count_keys(stoat_db *db)
{
    stoat_iter *it;
    long n = 0;

    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    for (stoat_iter_seek_first(it); stoat_iter_valid(it); stoat_iter_next(it))
        n++;
    CHECK(stoat_iter_status(it) == 0);
    stoat_iter_close(it);
    return n;
}

static int n_files(const char *dir, const char *suffix)
{
    static char names[DBU_MAX_FILES][64];
    return dbu_list(dir, suffix, names);
}

static void test_db_ingest_sorted_load_reads_back(void)
{
    const char *dir = test_tmpdir();
    stoat_db *db = open_small(dir);
    stoat_stats st;
    int rc, n = 5000, last;
    uint64_t version = load_range(db, 0, n, 1, &rc);

    CHECK_RC(rc, 0);
    CHECK(version > 0);
    for (int i = 0; i < n; i += 7)
        CHECK(has_key(db, i) == 1);
    CHECK(has_key(db, n) == 0);
    CHECK(count_keys(db) == n);
    REQUIRE_OK(stoat_stats_get(db, &st));
    last = st.num_levels - 1;
    CHECK(st.level_tables[last] > 1);         /* several tables, all in the bottom level */
    for (int l = 0; l < last; l++)
        CHECK(st.level_tables[l] == 0);
    CHECK(st.memtable_entries == 0);          /* nothing went through the memtable */
    CHECK(st.last_version == version);
    CHECK_RC(stoat_verify(db, NULL, NULL), 0);
    REQUIRE_OK(stoat_close(db));
}

static void test_db_ingest_refuses_unsorted_keys(void)
{
    stoat_db *db = open_small(test_tmpdir());
    stoat_loader *ld;
    void *val;
    size_t vlen;

    REQUIRE_OK(stoat_loader_new(db, &ld));
    REQUIRE_OK(stoat_loader_add(ld, "b", 1, "1", 1, 0, 0));
    CHECK_RC(stoat_loader_add(ld, "a", 1, "2", 1, 0, 0), STOAT_EINVAL);
    CHECK(strstr(stoat_errmsg(db), "strictly increasing") != NULL);
    CHECK_RC(stoat_loader_add(ld, "b", 1, "3", 1, 0, 0), STOAT_EINVAL);
    CHECK_RC(stoat_loader_add(ld, "", 0, "3", 1, 0, 0), STOAT_EINVAL);
    /* A refused entry leaves the loader usable. */
    REQUIRE_OK(stoat_loader_add(ld, "c", 1, "4", 1, 0, 0));
    REQUIRE_OK(stoat_loader_finish(ld, NULL));
    REQUIRE_OK(stoat_get(db, "b", 1, &val, &vlen));
    CHECK(vlen == 1 && memcmp(val, "1", 1) == 0);
    stoat_free(val);
    CHECK_RC(stoat_get(db, "a", 1, &val, &vlen), STOAT_ENOTFOUND);
    REQUIRE_OK(stoat_get(db, "c", 1, &val, &vlen));
    stoat_free(val);
    REQUIRE_OK(stoat_close(db));
}

static void test_db_ingest_refuses_range_in_memtable(void)
{
    const char *dir = test_tmpdir();
    stoat_db *db = open_small(dir);
    char k[16];
    int rc;

    key_of(50, k);
    REQUIRE_OK(stoat_put(db, k, strlen(k), "x", 1));
    CHECK(load_range(db, 0, 100, 1, &rc) == 0);
    CHECK_RC(rc, STOAT_EEXIST);
    CHECK(strstr(stoat_errmsg(db), "memtable") != NULL);
    CHECK(has_key(db, 10) == 0);
    CHECK(count_keys(db) == 1);
    CHECK(n_files(dir, ".sst") == 0);         /* its tables are gone */
    /* A range beside the data is fine. */
    CHECK(load_range(db, 51, 100, 1, &rc) > 0);
    CHECK_RC(rc, 0);
    CHECK(count_keys(db) == 50);
    REQUIRE_OK(stoat_close(db));
}

static void test_db_ingest_refuses_range_in_tables(void)
{
    const char *dir = test_tmpdir();
    stoat_db *db = open_small(dir);
    char k[16];
    int rc;

    /* A tombstone counts: it would hide the loaded key. */
    key_of(30, k);
    REQUIRE_OK(stoat_put(db, k, strlen(k), "x", 1));
    REQUIRE_OK(stoat_delete(db, k, strlen(k)));
    REQUIRE_OK(stoat_flush(db));
    CHECK(load_range(db, 0, 100, 1, &rc) == 0);
    CHECK_RC(rc, STOAT_EEXIST);
    CHECK(strstr(stoat_errmsg(db), ".sst") != NULL);
    CHECK(count_keys(db) == 0);
    CHECK(n_files(dir, ".sst") == 1);         /* only the flushed one */
    REQUIRE_OK(stoat_close(db));
}

static void test_db_ingest_refuses_early_when_a_table_fills(void)
{
    stoat_db *db = open_small(test_tmpdir());
    stoat_loader *ld;
    char k[16], v[VLEN];
    int rc = 0, i;

    key_of(100, k);
    REQUIRE_OK(stoat_put(db, k, strlen(k), "x", 1));
    REQUIRE_OK(stoat_loader_new(db, &ld));
    for (i = 0; i < 20000 && rc == 0; i++) {
        key_of(i, k);
        dbu_value((uint64_t)i, v, VLEN);
        rc = stoat_loader_add(ld, k, strlen(k), v, VLEN, 0, 0);
    }
    CHECK_RC(rc, STOAT_EEXIST);
    CHECK(i < 20000);                         /* at the first full table */
    CHECK_RC(stoat_loader_add(ld, "zz", 2, "v", 1, 0, 0), STOAT_EEXIST);  /* sticky */
    CHECK_RC(stoat_loader_finish(ld, NULL), STOAT_EEXIST);
    CHECK(count_keys(db) == 1);
    REQUIRE_OK(stoat_close(db));
}

static void test_db_ingest_goes_above_a_straddling_table(void)
{
    const char *dir = test_tmpdir();
    stoat_db *db = open_small(dir);
    stoat_stats st;
    char k[16];
    int rc, last;

    /* One bottom table spanning key0..key9999 holds no key in between. */
    key_of(0, k);
    REQUIRE_OK(stoat_put(db, k, strlen(k), "a", 1));
    key_of(9999, k);
    REQUIRE_OK(stoat_put(db, k, strlen(k), "z", 1));
    REQUIRE_OK(stoat_flatten(db));
    REQUIRE_OK(stoat_stats_get(db, &st));
    last = st.num_levels - 1;
    REQUIRE(st.level_tables[last] == 1);
    CHECK(load_range(db, 100, 200, 1, &rc) > 0);
    CHECK_RC(rc, 0);
    REQUIRE_OK(stoat_stats_get(db, &st));
    CHECK(st.level_tables[last] == 1);
    CHECK(st.level_tables[last - 1] == 1);
    CHECK(count_keys(db) == 102);
    CHECK(has_key(db, 150) == 1);
    /* Compaction merges it down as any other data. */
    REQUIRE_OK(stoat_flatten(db));
    CHECK(count_keys(db) == 102);
    CHECK(has_key(db, 150) == 1);
    REQUIRE_OK(stoat_close(db));
}

static void test_db_ingest_big_values_go_to_the_value_log(void)
{
    const char *dir = test_tmpdir();
    stoat_options o;
    stoat_db *db;
    stoat_loader *ld;
    stoat_stats st;
    char k[16];
    static char v[3000];
    int n = 300;

    dbu_small_options(&o);
    o.value_threshold = 1000;
    o.auto_gc = 0;
    REQUIRE_OK(stoat_open(dir, &o, &db));
    REQUIRE_OK(stoat_loader_new(db, &ld));
    for (int i = 0; i < n; i++) {
        size_t len = i % 3 == 0 ? 10 : 1000 + (size_t)i;   /* mixed: inline and separated */
        key_of(i, k);
        dbu_value((uint64_t)i, v, len);
        REQUIRE_OK(stoat_loader_add(ld, k, strlen(k), v, len, 0, 0));
    }
    REQUIRE_OK(stoat_loader_finish(ld, NULL));
    REQUIRE_OK(stoat_stats_get(db, &st));
    CHECK(st.vlog_bytes > 200u * 1000u);
    CHECK(dbu_dir_bytes(dir, ".sst") < 100u * 1000u);   /* the tables hold pointers */
    CHECK_RC(stoat_verify(db, NULL, NULL), 0);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            size_t len = i % 3 == 0 ? 10 : 1000 + (size_t)i, vlen;
            void *val;
            key_of(i, k);
            REQUIRE_OK(stoat_get(db, k, strlen(k), &val, &vlen));
            CHECK(dbu_value_is((uint64_t)i, len, val, vlen));
            stoat_free(val);
        }
        REQUIRE_OK(stoat_close(db));
        REQUIRE_OK(stoat_open(dir, &o, &db));
    }
    REQUIRE_OK(stoat_close(db));
}

static void test_db_ingest_keeps_expiry_and_meta(void)
{
    stoat_db *db = open_small(test_tmpdir());
    stoat_loader *ld;
    stoat_iter *it;
    uint64_t now = stoat_clock_ms(), version, exp = 0;
    uint8_t meta = 0;
    void *val;
    size_t vlen;

    REQUIRE_OK(stoat_loader_new(db, &ld));
    REQUIRE_OK(stoat_loader_add(ld, "a-expired", 9, "1", 1, now - 1000, 0));
    REQUIRE_OK(stoat_loader_add(ld, "b-later", 7, "2", 1, now + 3600000, 7));
    REQUIRE_OK(stoat_loader_add(ld, "c-never", 7, "3", 1, 0, 0));
    REQUIRE_OK(stoat_loader_finish(ld, &version));
    CHECK_RC(stoat_get(db, "a-expired", 9, &val, &vlen), STOAT_ENOTFOUND);
    REQUIRE_OK(stoat_get(db, "b-later", 7, &val, &vlen));
    stoat_free(val);
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    REQUIRE(stoat_iter_valid(it));
    REQUIRE_OK(stoat_iter_meta(it, &version, &exp, &meta, NULL));
    CHECK(exp == now + 3600000);
    CHECK(meta == 7);
    stoat_iter_next(it);
    REQUIRE(stoat_iter_valid(it));
    REQUIRE_OK(stoat_iter_meta(it, NULL, &exp, &meta, NULL));
    CHECK(exp == 0 && meta == 0);
    stoat_iter_next(it);
    CHECK(!stoat_iter_valid(it));
    stoat_iter_close(it);
    REQUIRE_OK(stoat_close(db));
}

static void test_db_ingest_survives_reopen_and_versions_go_on(void)
{
    const char *dir = test_tmpdir();
    stoat_db *db = open_small(dir);
    stoat_stats st;
    int rc;
    uint64_t version;

    REQUIRE_OK(stoat_put(db, "a", 1, "before", 6));
    version = load_range(db, 0, 3000, 1, &rc);
    CHECK_RC(rc, 0);
    REQUIRE_OK(stoat_close(db));
    db = open_small(dir);
    CHECK(count_keys(db) == 3001);
    CHECK(has_key(db, 2999) == 1);
    REQUIRE_OK(stoat_stats_get(db, &st));
    CHECK(st.last_version >= version);
    REQUIRE_OK(stoat_put(db, "z", 1, "after", 5));
    REQUIRE_OK(stoat_stats_get(db, &st));
    CHECK(st.last_version > version);         /* a later commit is newer */
    CHECK_RC(stoat_verify(db, NULL, NULL), 0);
    REQUIRE_OK(stoat_close(db));
}

/* A process that dies between add and finish leaves tables behind. */
static void test_db_ingest_crash_before_finish_leaves_nothing(void)
{
    static char left[DBU_MAX_FILES][64];
    const char *dir = test_tmpdir();
    stoat_db *db;
    pid_t pid;
    int status, n, before;

    db = open_small(dir);
    REQUIRE_OK(stoat_put(db, "zz", 2, "kept", 4));
    REQUIRE_OK(stoat_flush(db));              /* so that the child flushes nothing */
    REQUIRE_OK(stoat_close(db));
    before = n_files(dir, ".sst");
    fflush(NULL);
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        stoat_options o;
        stoat_loader *ld;
        char k[16], v[VLEN];

        dbu_small_options(&o);
        if (stoat_open(dir, &o, &db) != 0 || stoat_loader_new(db, &ld) != 0)
            _exit(2);
        for (int i = 0; i < 5000; i++) {
            key_of(i, k);
            dbu_value((uint64_t)i, v, VLEN);
            if (stoat_loader_add(ld, k, strlen(k), v, VLEN, 0, 0) != 0)
                _exit(3);
        }
        _exit(n_files(dir, ".sst") > 0 ? 0 : 4);   /* tables written, never installed */
    }
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    n = dbu_list(dir, ".sst", left);
    CHECK(n > before);
    db = open_small(dir);
    CHECK(count_keys(db) == 1);
    CHECK(has_key(db, 0) == 0);
    REQUIRE_OK(stoat_close(db));
    CHECK(n_files(dir, ".sst") == before);   /* the open removed the load's */
}

static void test_db_ingest_abort_leaves_nothing(void)
{
    const char *dir = test_tmpdir();
    stoat_options o;
    stoat_db *db;
    stoat_loader *ld;
    stoat_stats st;
    char k[16];
    static char v[2000];

    dbu_small_options(&o);
    o.value_threshold = 1000;
    o.auto_gc = 0;
    REQUIRE_OK(stoat_open(dir, &o, &db));
    REQUIRE_OK(stoat_loader_new(db, &ld));
    CHECK_RC(stoat_close(db), STOAT_EBUSY);   /* an open loader holds the database */
    for (int i = 0; i < 3000; i++) {
        key_of(i, k);
        dbu_value((uint64_t)i, v, sizeof(v));
        REQUIRE_OK(stoat_loader_add(ld, k, strlen(k), v, sizeof(v), 0, 0));
    }
    REQUIRE_OK(stoat_stats_get(db, &st));
    CHECK(st.vlog_bytes >= 2000u * 2000u);    /* values were appended */
    stoat_loader_abort(ld);
    CHECK(count_keys(db) == 0);
    CHECK(n_files(dir, ".sst") == 0);
    REQUIRE_OK(stoat_stats_get(db, &st));
    CHECK(st.vlog_garbage_bytes >= 2000u * 2000u);  /* GC may take them back */
    REQUIRE_OK(stoat_close(db));
}

static void test_db_ingest_empty_load_installs_nothing(void)
{
    stoat_db *db = open_small(test_tmpdir());
    stoat_loader *ld;
    uint64_t version = 1;

    REQUIRE_OK(stoat_loader_new(db, &ld));
    REQUIRE_OK(stoat_loader_finish(ld, &version));
    CHECK(version == 0);
    CHECK(count_keys(db) == 0);
    REQUIRE_OK(stoat_close(db));
}

static void test_db_ingest_snapshots_before_do_not_see_it(void)
{
    stoat_db *db = open_small(test_tmpdir());
    stoat_txn *ro, *rw, *after;
    stoat_iter *it;
    stoat_loader *ld;
    char k[16], v[VLEN];
    const void *val;
    size_t vlen;

    REQUIRE_OK(stoat_put(db, "a", 1, "1", 1));
    REQUIRE_OK(stoat_loader_new(db, &ld));
    REQUIRE_OK(stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &ro));
    REQUIRE_OK(stoat_txn_begin(db, 0, &rw));
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    key_of(5, k);
    CHECK_RC(stoat_txn_get(rw, k, strlen(k), &val, &vlen), STOAT_ENOTFOUND);
    REQUIRE_OK(stoat_txn_set(rw, "b", 1, "2", 1));
    for (int i = 0; i < 10; i++) {
        key_of(i, k);
        dbu_value((uint64_t)i, v, VLEN);
        REQUIRE_OK(stoat_loader_add(ld, k, strlen(k), v, VLEN, 0, 0));
    }
    REQUIRE_OK(stoat_put(db, "c", 1, "3", 1));  /* writes go on during a load */
    REQUIRE_OK(stoat_loader_finish(ld, NULL));
    key_of(5, k);
    CHECK_RC(stoat_txn_get(ro, k, strlen(k), &val, &vlen), STOAT_ENOTFOUND);
    {
        long n = 0;
        for (stoat_iter_seek_first(it); stoat_iter_valid(it); stoat_iter_next(it))
            n++;
        CHECK(n == 1);                         /* only "a" */
    }
    stoat_iter_close(it);
    /* It read a loaded key as absent: its commit conflicts. */
    CHECK_RC(stoat_txn_commit(rw), STOAT_ECONFLICT);
    stoat_txn_discard(rw);
    stoat_txn_discard(ro);
    REQUIRE_OK(stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &after));
    REQUIRE_OK(stoat_txn_get(after, k, strlen(k), &val, &vlen));
    CHECK(dbu_value_is(5, VLEN, val, vlen));
    stoat_txn_discard(after);
    CHECK(count_keys(db) == 12);
    REQUIRE_OK(stoat_close(db));
}

/* The same entries through batches and through a loader read the same. */
static void test_db_ingest_same_data_as_batches(void)
{
    char d1[DBU_PATH_MAX], d2[DBU_PATH_MAX], k[16], v[VLEN];
    stoat_db *a = open_small(dbu_subdir(d1, "batches"));
    stoat_db *b = open_small(dbu_subdir(d2, "loader"));
    stoat_batch *bt;
    stoat_iter *ia, *ib;
    int rc, n = 4000;

    REQUIRE_OK(stoat_batch_new(a, &bt));
    for (int i = 0; i < n; i++) {
        key_of(i, k);
        dbu_value((uint64_t)i, v, VLEN);
        REQUIRE_OK(stoat_batch_set(bt, k, strlen(k), v, VLEN));
    }
    REQUIRE_OK(stoat_batch_commit(bt));
    stoat_batch_free(bt);
    load_range(b, 0, n, 1, &rc);
    CHECK_RC(rc, 0);
    REQUIRE_OK(stoat_iter_open(a, NULL, &ia));
    REQUIRE_OK(stoat_iter_open(b, NULL, &ib));
    stoat_iter_seek_first(ia);
    stoat_iter_seek_first(ib);
    for (int i = 0; i < n; i++) {
        const void *ka, *kb, *va, *vb;
        size_t kla, klb, vla, vlb;
        REQUIRE(stoat_iter_valid(ia) && stoat_iter_valid(ib));
        REQUIRE_OK(stoat_iter_key(ia, &ka, &kla));
        REQUIRE_OK(stoat_iter_key(ib, &kb, &klb));
        REQUIRE_OK(stoat_iter_value(ia, &va, &vla));
        REQUIRE_OK(stoat_iter_value(ib, &vb, &vlb));
        CHECK(kla == klb && memcmp(ka, kb, kla) == 0);
        CHECK(vla == vlb && memcmp(va, vb, vla) == 0);
        stoat_iter_next(ia);
        stoat_iter_next(ib);
    }
    CHECK(!stoat_iter_valid(ia) && !stoat_iter_valid(ib));
    stoat_iter_close(ia);
    stoat_iter_close(ib);
    REQUIRE_OK(stoat_close(a));
    REQUIRE_OK(stoat_close(b));
}

static void test_db_ingest_loaders_finish_in_order(void)
{
    stoat_db *db = open_small(test_tmpdir());
    stoat_loader *first, *second;

    REQUIRE_OK(stoat_loader_new(db, &first));
    REQUIRE_OK(stoat_loader_new(db, &second));
    REQUIRE_OK(stoat_loader_add(first, "a", 1, "1", 1, 0, 0));
    REQUIRE_OK(stoat_loader_add(second, "b", 1, "2", 1, 0, 0));
    REQUIRE_OK(stoat_loader_finish(first, NULL));
    REQUIRE_OK(stoat_loader_finish(second, NULL));
    REQUIRE_OK(stoat_loader_new(db, &first));
    REQUIRE_OK(stoat_loader_new(db, &second));
    REQUIRE_OK(stoat_loader_add(first, "c", 1, "1", 1, 0, 0));
    REQUIRE_OK(stoat_loader_add(second, "d", 1, "2", 1, 0, 0));
    REQUIRE_OK(stoat_loader_finish(second, NULL));
    CHECK_RC(stoat_loader_finish(first, NULL), STOAT_EBUSY);   /* passed by the later one */
    CHECK(count_keys(db) == 3);
    REQUIRE_OK(stoat_close(db));
}

static void test_db_ingest_refuses_read_only(void)
{
    const char *dir = test_tmpdir();
    stoat_db *db = open_small(dir);
    stoat_options o;
    stoat_loader *ld = (stoat_loader *)&o;

    REQUIRE_OK(stoat_close(db));
    stoat_options_init(&o);
    o.read_only = 1;
    REQUIRE_OK(stoat_open(dir, &o, &db));
    CHECK_RC(stoat_loader_new(db, &ld), STOAT_EREADONLY);
    CHECK(ld == NULL);
    CHECK_RC(stoat_loader_new(db, NULL), STOAT_EINVAL);
    CHECK_RC(stoat_loader_add(NULL, "a", 1, "", 0, 0, 0), STOAT_EINVAL);
    CHECK_RC(stoat_loader_finish(NULL, NULL), STOAT_EINVAL);
    stoat_loader_abort(NULL);
    REQUIRE_OK(stoat_close(db));
}

static _Atomic int flatten_stop;

static void *flatten_loop(void *arg)
{
    stoat_db *db = arg;
    long rc = 0;

    while (!atomic_load(&flatten_stop) && rc == 0)
        rc = stoat_flatten(db);
    return (void *)rc;
}

/* Loads beside writes and flattens that move tables around the loaded
 * ranges: every load lands at a level where it fits, nothing breaks. */
static void test_db_ingest_races_flatten(void)
{
    stoat_db *db = open_small(test_tmpdir());
    pthread_t th;
    void *res;
    char k[16], v[VLEN];
    int rc, rounds = 12;

    for (int i = 0; i < 3000; i++) {    /* data on both sides of every range */
        key_of(i * 100, k);
        dbu_value((uint64_t)i, v, VLEN);
        REQUIRE_OK(stoat_put(db, k, strlen(k), v, VLEN));
    }
    atomic_store(&flatten_stop, 0);
    REQUIRE(pthread_create(&th, NULL, flatten_loop, db) == 0);
    for (int r = 0; r < rounds; r++) {
        int from = r * 20000 + 1;
        load_range(db, from, from + 99 * 40, 40, &rc);  /* spans existing keys */
        CHECK_RC(rc, STOAT_EEXIST);
        load_range(db, from, from + 99, 1, &rc);        /* between two existing keys */
        CHECK_RC(rc, 0);
        key_of(r * 20000 + 5000, k);
        REQUIRE_OK(stoat_put(db, k, strlen(k), "w", 1));
    }
    atomic_store(&flatten_stop, 1);
    REQUIRE(pthread_join(th, &res) == 0);
    CHECK(res == NULL);
    CHECK(count_keys(db) == 3000 + rounds * 99);
    CHECK_RC(stoat_verify(db, NULL, NULL), 0);
    REQUIRE_OK(stoat_close(db));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_db_ingest_sorted_load_reads_back);
    TEST_RUN(test_db_ingest_refuses_unsorted_keys);
    TEST_RUN(test_db_ingest_refuses_range_in_memtable);
    TEST_RUN(test_db_ingest_refuses_range_in_tables);
    TEST_RUN(test_db_ingest_refuses_early_when_a_table_fills);
    TEST_RUN(test_db_ingest_goes_above_a_straddling_table);
    TEST_RUN(test_db_ingest_big_values_go_to_the_value_log);
    TEST_RUN(test_db_ingest_keeps_expiry_and_meta);
    TEST_RUN(test_db_ingest_survives_reopen_and_versions_go_on);
    TEST_RUN(test_db_ingest_crash_before_finish_leaves_nothing);
    TEST_RUN(test_db_ingest_abort_leaves_nothing);
    TEST_RUN(test_db_ingest_empty_load_installs_nothing);
    TEST_RUN(test_db_ingest_snapshots_before_do_not_see_it);
    TEST_RUN(test_db_ingest_same_data_as_batches);
    TEST_RUN(test_db_ingest_loaders_finish_in_order);
    TEST_RUN(test_db_ingest_refuses_read_only);
    TEST_RUN(test_db_ingest_races_flatten);
    return test_summary();
}
