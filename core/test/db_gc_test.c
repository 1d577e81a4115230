/*
 * db_gc_test.c - value-log GC accounting regressions (issue 16).
 *
 * Stranded garbage (issue 16, item 1; ../shared/reference/lua-trial.md B3): values overwritten
 * while a reader holds an older snapshot, with a compaction in between
 * that must keep the old versions for that reader. Once the reader ends,
 * one stoat_gc must bring the value log down to at most 1.1 x the live
 * value bytes: after the reader ends, after a flatten, and after a reopen
 * (the record of what was kept only for a snapshot must survive it).
 *
 * Old versions of a collected file (item 2): with num_versions_to_keep > 1
 * compaction keeps older versions, but value-log GC moves only the newest
 * one. An older version whose value-log file was collected reads as absent
 * (STOAT_ENOTFOUND), exactly as if compaction had dropped it; the newest
 * version pointing into a missing file is still corruption.
 */
#include "db_util.h"
#include "test.h"

#define N_KEYS 64
#define VALUE_LEN (64 << 10)
#define MAX_AMPLIFICATION 1.1

static void gc_options(stoat_options *o)
{
    stoat_options_init(o);
    o->create_if_missing = 1;
    o->value_log_file_size = 1 << 20;
    o->auto_gc = 0;
    o->memtable_size = 1 << 20;
}

static void key_of(int i, char out[16])
{
    snprintf(out, 16, "k%d", i);
}

static void put_all(stoat_db *db, uint64_t round)
{
    char key[16], *val = malloc(VALUE_LEN);

    REQUIRE(val != NULL);
    for (int i = 0; i < N_KEYS; i++) {
        key_of(i, key);
        dbu_value(round * 1000 + (uint64_t)i, val, VALUE_LEN);
        REQUIRE_OK(stoat_put(db, key, strlen(key), val, VALUE_LEN));
    }
    free(val);
}

static void check_all(stoat_db *db, uint64_t round)
{
    char key[16];

    for (int i = 0; i < N_KEYS; i++) {
        void *val = NULL;
        size_t vlen = 0;

        key_of(i, key);
        CHECK_RC(stoat_get(db, key, strlen(key), &val, &vlen), 0);
        CHECK(val != NULL && dbu_value_is(round * 1000 + (uint64_t)i, VALUE_LEN, val, vlen));
        stoat_free(val);
    }
}

static uint64_t vlog_bytes(stoat_db *db)
{
    stoat_stats st;

    REQUIRE_OK(stoat_stats_get(db, &st));
    return st.vlog_bytes;
}

/* The value log against the live values, printed for the report. */
static void check_amplification(stoat_db *db, const char *when)
{
    uint64_t live = (uint64_t)N_KEYS * VALUE_LEN, bytes = vlog_bytes(db);

    printf("%s: value log %llu bytes for %llu live (%.2fx)\n", when, (unsigned long long)bytes,
           (unsigned long long)live, (double)bytes / (double)live);
    CHECK((double)bytes <= MAX_AMPLIFICATION * (double)live);
}

/* Overwrites every value under an open snapshot, runs `during` (NULL or a
 * flatten) and a gc while the reader is still open, then ends the reader:
 * the compactions in between had to keep the old versions for it. */
static stoat_db *overwrite_under_reader(stoat_db *db, int (*during)(stoat_db *))
{
    stoat_txn *reader;
    uint64_t reclaimed = 1;

    put_all(db, 1);
    REQUIRE_OK(stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &reader));
    put_all(db, 2);
    if (during != NULL)
        REQUIRE_OK(during(db));
    /* The reader still reads round 1: nothing may be collected for it. */
    REQUIRE_OK(stoat_gc(db, 0.1, &reclaimed));
    {
        const void *val;
        size_t vlen;
        CHECK_RC(stoat_txn_get(reader, "k7", 2, &val, &vlen), 0);
        CHECK(dbu_value_is(1000 + 7, VALUE_LEN, val, vlen));
    }
    stoat_txn_discard(reader);
    printf("with the reader open: value log %llu bytes, gc reclaimed %llu\n",
           (unsigned long long)vlog_bytes(db), (unsigned long long)reclaimed);
    return db;
}

static void test_db_gc_collects_garbage_kept_for_a_reader(void)
{
    stoat_options o;
    stoat_db *db;
    uint64_t reclaimed = 0;

    gc_options(&o);
    REQUIRE_OK(stoat_open(test_tmpdir(), &o, &db));
    overwrite_under_reader(db, NULL);
    REQUIRE_OK(stoat_gc(db, 0.1, &reclaimed));
    CHECK(reclaimed > 0);
    check_amplification(db, "one gc after the reader ended");
    check_all(db, 2);
    REQUIRE_OK(stoat_close(db));
    REQUIRE_OK(stoat_open(test_tmpdir(), &o, &db));
    check_all(db, 2);
    check_amplification(db, "reopened");
    REQUIRE_OK(stoat_close(db));
}

static void test_db_gc_collects_garbage_kept_for_a_reader_after_flatten(void)
{
    stoat_options o;
    stoat_db *db;
    uint64_t reclaimed = 0;

    gc_options(&o);
    REQUIRE_OK(stoat_open(test_tmpdir(), &o, &db));
    overwrite_under_reader(db, stoat_flatten);
    REQUIRE_OK(stoat_flatten(db));
    REQUIRE_OK(stoat_gc(db, 0.1, &reclaimed));
    CHECK(reclaimed > 0);
    check_amplification(db, "flatten and one gc after the reader ended");
    check_all(db, 2);
    REQUIRE_OK(stoat_close(db));
}

/* The knowledge that the table holds versions kept only for a reader
 * must survive a restart (no reader exists after it). */
static void test_db_gc_collects_garbage_kept_for_a_reader_after_reopen(void)
{
    stoat_options o;
    stoat_db *db;
    uint64_t reclaimed = 0;

    gc_options(&o);
    REQUIRE_OK(stoat_open(test_tmpdir(), &o, &db));
    overwrite_under_reader(db, stoat_flatten);
    REQUIRE_OK(stoat_close(db));
    REQUIRE_OK(stoat_open(test_tmpdir(), &o, &db));
    REQUIRE_OK(stoat_gc(db, 0.1, &reclaimed));
    CHECK(reclaimed > 0);
    check_amplification(db, "reopen and one gc");
    check_all(db, 2);
    REQUIRE_OK(stoat_close(db));
}

/* Background compaction and auto GC get there without an explicit call. */
static void test_db_gc_auto_collects_garbage_kept_for_a_reader(void)
{
    stoat_options o;
    stoat_db *db;
    uint64_t live = (uint64_t)N_KEYS * VALUE_LEN;

    gc_options(&o);
    o.auto_gc = 1;
    o.auto_gc_ratio = 0.1;
    REQUIRE_OK(stoat_open(test_tmpdir(), &o, &db));
    overwrite_under_reader(db, stoat_flatten);
    for (int i = 0; i < 100 && (double)vlog_bytes(db) > MAX_AMPLIFICATION * (double)live; i++)
        usleep(100 * 1000);
    check_amplification(db, "auto gc after the reader ended");
    check_all(db, 2);
    REQUIRE_OK(stoat_close(db));
}

/*
 * Item 2: "x" is written once (x@1) next to 64 values that are then
 * overwritten twice, and once more (x@2): with num_versions_to_keep = 2
 * compaction keeps x@1, but its value-log file is all garbage otherwise
 * and GC, which moves only a key's newest version, collects it.
 */
static void write_old_version_next_to_garbage(stoat_db *db, uint64_t *x1_version)
{
    char *val = malloc(VALUE_LEN);
    stoat_iter *it;
    stoat_iter_options io = {.all_versions = 1, .prefix = "x", .prefix_len = 1};
    uint64_t ver = 0;

    REQUIRE(val != NULL);
    dbu_value(1, val, VALUE_LEN);
    REQUIRE_OK(stoat_put(db, "x", 1, val, VALUE_LEN));
    put_all(db, 1);
    dbu_value(2, val, VALUE_LEN);
    REQUIRE_OK(stoat_put(db, "x", 1, val, VALUE_LEN));
    put_all(db, 2);
    put_all(db, 3);
    free(val);
    REQUIRE_OK(stoat_iter_open(db, &io, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    REQUIRE(stoat_iter_valid(it));
    REQUIRE_OK(stoat_iter_next(it));
    REQUIRE(stoat_iter_valid(it));
    REQUIRE_OK(stoat_iter_meta(it, &ver, NULL, NULL, NULL));
    stoat_iter_close(it);
    *x1_version = ver;
}

static void test_db_gc_old_version_of_a_collected_file_reads_absent(void)
{
    stoat_options o;
    stoat_db *db;
    stoat_txn *old;
    stoat_iter *it;
    stoat_iter_options io = {.all_versions = 1, .prefix = "x", .prefix_len = 1};
    const void *val;
    size_t vlen;
    uint64_t x1 = 0, reclaimed = 0, ver = 0;

    gc_options(&o);
    o.num_versions_to_keep = 2;
    REQUIRE_OK(stoat_open(test_tmpdir(), &o, &db));
    write_old_version_next_to_garbage(db, &x1);
    /* Before GC the old version reads back. */
    REQUIRE_OK(stoat_txn_begin_at(db, x1, &old));
    CHECK_RC(stoat_txn_get(old, "x", 1, &val, &vlen), 0);
    CHECK(dbu_value_is(1, VALUE_LEN, val, vlen));
    stoat_txn_discard(old);
    REQUIRE_OK(stoat_gc(db, 0.5, &reclaimed));
    CHECK(reclaimed > 0);
    check_all(db, 3);
    {
        void *v = NULL;
        size_t n = 0;
        CHECK_RC(stoat_get(db, "x", 1, &v, &n), 0);     /* the newest was moved */
        CHECK(v != NULL && dbu_value_is(2, VALUE_LEN, v, n));
        stoat_free(v);
    }
    /* A reader at x@1's version: absent, not corruption. */
    REQUIRE_OK(stoat_txn_begin_at(db, x1, &old));
    CHECK_RC(stoat_txn_get(old, "x", 1, &val, &vlen), STOAT_ENOTFOUND);
    stoat_txn_discard(old);
    /* Every version: x@2 reads, x@1 is listed with an absent value. */
    REQUIRE_OK(stoat_iter_open(db, &io, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    REQUIRE(stoat_iter_valid(it));
    CHECK_RC(stoat_iter_value(it, &val, &vlen), 0);
    CHECK(dbu_value_is(2, VALUE_LEN, val, vlen));
    REQUIRE_OK(stoat_iter_next(it));
    REQUIRE(stoat_iter_valid(it));
    REQUIRE_OK(stoat_iter_meta(it, &ver, NULL, NULL, NULL));
    CHECK(ver == x1);
    CHECK_RC(stoat_iter_value(it, &val, &vlen), STOAT_ENOTFOUND);
    stoat_iter_close(it);
    REQUIRE_OK(stoat_close(db));
}

/* The newest version pointing into a missing file is still damage: GC
 * always moves it, so only a lost file can do that. */
static void test_db_gc_newest_version_in_a_missing_file_is_corruption(void)
{
    stoat_options o;
    stoat_db *db;
    stoat_txn *t;
    char path[DBU_PATH_MAX], key[16];
    int corrupt = 0;

    gc_options(&o);
    REQUIRE_OK(stoat_open(test_tmpdir(), &o, &db));
    put_all(db, 1);
    REQUIRE_OK(stoat_flush(db));
    REQUIRE_OK(stoat_close(db));
    REQUIRE(unlink(dbu_path(path, test_tmpdir(), "000002.vlog")) == 0);
    REQUIRE_OK(stoat_open(test_tmpdir(), &o, &db));
    REQUIRE_OK(stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &t));
    for (int i = 0; i < N_KEYS; i++) {
        const void *val;
        size_t vlen;
        int rc;

        key_of(i, key);
        rc = stoat_txn_get(t, key, strlen(key), &val, &vlen);
        CHECK(rc == 0 || rc == STOAT_ECORRUPT);
        corrupt += rc == STOAT_ECORRUPT;
    }
    stoat_txn_discard(t);
    CHECK(corrupt > 0);
    REQUIRE_OK(stoat_close(db));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_db_gc_collects_garbage_kept_for_a_reader);
    TEST_RUN(test_db_gc_collects_garbage_kept_for_a_reader_after_flatten);
    TEST_RUN(test_db_gc_collects_garbage_kept_for_a_reader_after_reopen);
    TEST_RUN(test_db_gc_auto_collects_garbage_kept_for_a_reader);
    TEST_RUN(test_db_gc_old_version_of_a_collected_file_reads_absent);
    TEST_RUN(test_db_gc_newest_version_in_a_missing_file_is_corruption);
    return test_summary();
}
