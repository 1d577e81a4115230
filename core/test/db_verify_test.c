/*
 * db_verify_test.c - stoat_verify: sound databases verify clean (also
 * while GC has removed value-log files that old entries still point to),
 * and each kind of damage it walks (an SST data block, a value-log record,
 * a missing value-log file) is reported naming the file.
 */
#include "db_util.h"
#include "test.h"

#define VKEYS 400

static void verify_options(stoat_options *o)
{
    dbu_small_options(o);
    o->compression = STOAT_COMPRESSION_NONE;
    o->value_threshold = 256;
    o->value_log_file_size = 1 << 20;
    o->auto_gc = 0;
}

/* Writes n keys, every third with a value-log value, then flattens. */
static void fill(const char *dir, int n)
{
    stoat_options o;
    stoat_db *db;
    char k[16], v[2048];

    verify_options(&o);
    REQUIRE_OK(stoat_open(dir, &o, &db));
    for (int i = 0; i < n; i++) {
        size_t len = i % 3 == 0 ? 1500 : 40;
        snprintf(k, sizeof(k), "v%05d", i);
        dbu_value((uint64_t)i, v, len);
        REQUIRE_OK(stoat_put(db, k, strlen(k), v, len));
    }
    REQUIRE_OK(stoat_flatten(db));
    REQUIRE_OK(stoat_close(db));
}

/* Opens dir read-only and verifies: the code, and the report in *report. */
static int verify(const char *dir, char **report)
{
    stoat_options o;
    stoat_db *db;
    int rc;

    verify_options(&o);
    o.read_only = 1;
    o.create_if_missing = 0;
    REQUIRE_OK(stoat_open(dir, &o, &db));
    rc = stoat_verify(db, report, NULL);
    REQUIRE_OK(stoat_close(db));
    return rc;
}

static void test_db_verify_sound(void)
{
    char dir[DBU_PATH_MAX], path[DBU_PATH_MAX], *report = NULL;
    stoat_options o;
    stoat_db *db;
    size_t len = 99;

    dbu_subdir(dir, "sound");
    fill(dir, 6 * VKEYS); /* two value-log files */
    CHECK_RC(verify(dir, &report), 0);
    REQUIRE(report != NULL);
    CHECK(report[0] == '\0');
    stoat_free(report);
    /* Overwritten values, GC, old pointers into removed files: still sound. */
    verify_options(&o);
    REQUIRE_OK(stoat_open(dir, &o, &db));
    for (int i = 0; i < 6 * VKEYS; i += 3) {
        char k[16];
        snprintf(k, sizeof(k), "v%05d", i);
        REQUIRE_OK(stoat_put(db, k, strlen(k), "small", 5));
    }
    REQUIRE_OK(stoat_gc(db, 0.1, NULL));
    CHECK(!dbu_exists(dbu_path(path, dir, "000001.vlog")));
    CHECK_RC(stoat_verify(db, &report, &len), 0);
    CHECK(len == 0);
    stoat_free(report);
    CHECK_RC(stoat_verify(db, NULL, NULL), 0);
    REQUIRE_OK(stoat_close(db));
}

static void test_db_verify_sst_block(void)
{
    char dir[DBU_PATH_MAX], path[DBU_PATH_MAX], names[DBU_MAX_FILES][64], *report = NULL;
    int n;

    dbu_subdir(dir, "sst");
    fill(dir, VKEYS);
    n = dbu_list(dir, ".sst", names);
    REQUIRE(n >= 1);
    dbu_flip(dbu_path(path, dir, names[0]), 100);
    CHECK_RC(verify(dir, &report), STOAT_ECORRUPT);
    REQUIRE(report != NULL);
    CHECK(strstr(report, names[0]) != NULL);
    CHECK(strstr(report, "not readable") != NULL);
    stoat_free(report);
}

static void test_db_verify_vlog_record(void)
{
    char dir[DBU_PATH_MAX], path[DBU_PATH_MAX], *report = NULL;

    dbu_subdir(dir, "vlog");
    fill(dir, VKEYS);
    dbu_flip(dbu_path(path, dir, "000001.vlog"), 20000);
    CHECK_RC(verify(dir, &report), STOAT_ECORRUPT);
    REQUIRE(report != NULL);
    CHECK(strstr(report, "000001.vlog: value pointer of key v") != NULL);
    CHECK(strstr(report, "the damaged record follows the one of key v") != NULL);
    stoat_free(report);
}

static void test_db_verify_vlog_missing(void)
{
    char dir[DBU_PATH_MAX], path[DBU_PATH_MAX], *report = NULL;

    dbu_subdir(dir, "missing");
    fill(dir, VKEYS);
    REQUIRE(unlink(dbu_path(path, dir, "000001.vlog")) == 0);
    CHECK_RC(verify(dir, &report), STOAT_ECORRUPT);
    REQUIRE(report != NULL);
    CHECK(strstr(report, "000001.vlog: value pointer of key v00000 ") != NULL);
    stoat_free(report);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_db_verify_sound);
    TEST_RUN(test_db_verify_sst_block);
    TEST_RUN(test_db_verify_vlog_record);
    TEST_RUN(test_db_verify_vlog_missing);
    return test_summary();
}
