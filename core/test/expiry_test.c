/*
 * expiry_test.c - time to live with millisecond resolution (format 2), and
 * databases written by 0.1, whose expiries are unix seconds (format 1).
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "base/ikey.h"
#include "test.h"

static stoat_db *open_dir(const char *dir)
{
    stoat_options o;
    stoat_db *db = NULL;

    stoat_options_init(&o);
    o.auto_gc = 0;
    REQUIRE_OK(stoat_open(dir, &o, &db));
    return db;
}

static uint64_t clock_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int set_ttl(stoat_db *db, const char *k, uint64_t ttl_ms, uint8_t um)
{
    stoat_txn *t;
    int rc;

    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    rc = stoat_txn_set_ex(t, k, strlen(k), "v", 1, ttl_ms, um);
    if (rc == 0)
        rc = stoat_txn_commit(t);
    stoat_txn_discard(t);
    return rc;
}

/* get_meta of k: its rc; *exp and *um when found. */
static int meta(stoat_db *db, const char *k, uint64_t *exp, uint8_t *um)
{
    stoat_txn *t;
    const void *v;
    size_t vlen;
    int rc;

    REQUIRE_OK(stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &t));
    rc = stoat_txn_get_meta(t, k, strlen(k), &v, &vlen, NULL, exp, um);
    stoat_txn_discard(t);
    return rc;
}

static void test_expiry_vstruct_marks_ms(void)
{
    char enc[32];
    vstruct in = {0, 3, 1234567, slice_make("v", 1)}, out;
    const char old[] = {0, 3, 5, 'v'};   /* format 1: expires at unix second 5 */

    vstruct_encode(enc, &in);
    CHECK(((uint8_t)enc[0] & VMETA_EXPIRY_MS) != 0);
    REQUIRE(vstruct_decode(slice_make(enc, vstruct_encoded_len(&in)), &out) == 0);
    CHECK(out.meta == 0 && out.user_meta == 3 && out.expires_at == 1234567);
    REQUIRE(vstruct_decode(slice_make(old, sizeof(old)), &out) == 0);
    CHECK(out.meta == 0 && out.expires_at == 5000);
    in.expires_at = 0;
    vstruct_encode(enc, &in);
    CHECK(enc[0] == 0);     /* no expiry: the byte 0.1 wrote */
}

static void test_expiry_has_ms_resolution(void)
{
    stoat_db *db = open_dir(test_tmpdir());
    uint64_t before = stoat_clock_ms(), exp = 0, after;
    void *got;
    size_t len;

    REQUIRE_OK(set_ttl(db, "k", 300, 0));
    after = stoat_clock_ms();
    REQUIRE_OK(meta(db, "k", &exp, NULL));
    CHECK(exp >= before + 300 && exp <= after + 301);
    REQUIRE_OK(stoat_get(db, "k", 1, &got, &len));
    stoat_free(got);
    while (stoat_clock_ms() < exp)
        usleep(10 * 1000);
    CHECK_RC(stoat_get(db, "k", 1, &got, &len), STOAT_ENOTFOUND);
    CHECK_RC(meta(db, "k", &exp, NULL), STOAT_ENOTFOUND);
    REQUIRE_OK(stoat_close(db));
}

/* The expiry is rounded up: never before the write's time plus its ttl. */
static void test_expiry_never_early(void)
{
    stoat_db *db = open_dir(test_tmpdir());
    char k[16];

    for (int i = 0; i < 50; i++) {
        uint64_t t0 = clock_us(), exp = 0;

        snprintf(k, sizeof(k), "k%d", i);
        REQUIRE_OK(set_ttl(db, k, 7, 0));
        REQUIRE_OK(meta(db, k, &exp, NULL));
        CHECK(exp * 1000 >= t0 + 7000);
        usleep(137);
    }
    REQUIRE_OK(stoat_close(db));
}

static void test_expiry_ttl_range(void)
{
    stoat_db *db = open_dir(test_tmpdir());
    stoat_batch *b;

    CHECK_RC(set_ttl(db, "k", STOAT_MAX_TTL_MS + 1, 0), STOAT_EINVAL);
    REQUIRE_OK(set_ttl(db, "k", STOAT_MAX_TTL_MS, 0));
    REQUIRE_OK(stoat_batch_new(db, &b));
    CHECK_RC(stoat_batch_set_ex(b, "b", 1, "v", 1, STOAT_MAX_TTL_MS + 1, 0), STOAT_EINVAL);
    REQUIRE_OK(stoat_batch_set_ex(b, "b", 1, "v", 1, STOAT_MAX_TTL_MS, 0));
    REQUIRE_OK(stoat_batch_commit(b));
    stoat_batch_free(b);
    REQUIRE_OK(stoat_close(db));
}

static void copy_file(const char *from, const char *to)
{
    char buf[4096];
    size_t n;
    FILE *in = fopen(from, "rb"), *out;

    REQUIRE(in != NULL);
    out = fopen(to, "wb");
    REQUIRE(out != NULL);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        REQUIRE(fwrite(buf, 1, n, out) == n);
    fclose(in);
    REQUIRE(fclose(out) == 0);
}

/* A copy of core/test/data/format1 (see its README) in a fresh directory. */
static const char *format1_copy(void)
{
    static const char *files[] = {"MANIFEST", "000002.wal", "000003.sst"};
    static char dir[512];
    char src[1024], dst[1024], here[512];
    const char *slash;

    snprintf(here, sizeof(here), "%s", __FILE__);
    slash = strrchr(here, '/');
    here[slash ? (size_t)(slash - here) : 0] = '\0';
    snprintf(dir, sizeof(dir), "%s/db", test_tmpdir());
    snprintf(dst, sizeof(dst), "mkdir -p '%s'", dir);
    REQUIRE(system(dst) == 0);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(src, sizeof(src), "%s/data/format1/%s", *here ? here : ".", files[i]);
        snprintf(dst, sizeof(dst), "%s/%s", dir, files[i]);
        copy_file(src, dst);
    }
    return dir;
}

/* What the format-1 keys read as, in a table ("sst:") or the WAL ("wal:"). */
static void check_format1_keys(stoat_db *db, const char *where)
{
    char k[32];
    uint64_t exp = 1;
    uint8_t um = 0;

    snprintf(k, sizeof(k), "%s:never", where);
    REQUIRE_OK(meta(db, k, &exp, &um));
    CHECK(exp == 0 && um == 7);
    snprintf(k, sizeof(k), "%s:far", where);
    REQUIRE_OK(meta(db, k, &exp, &um));
    /* 2^40 seconds after a write in 2026, as milliseconds. */
    CHECK(exp % 1000 == 0 && exp / 1000 > (1ull << 40) + 1700000000ull &&
          exp / 1000 < (1ull << 40) + 2000000000ull && um == 7);
    snprintf(k, sizeof(k), "%s:gone", where);
    CHECK_RC(meta(db, k, &exp, &um), STOAT_ENOTFOUND);
}

static int count_versions(stoat_db *db)
{
    stoat_iter_options o = {.all_versions = 1};
    stoat_iter *it;
    int n = 0;

    REQUIRE_OK(stoat_iter_open(db, &o, &it));
    for (stoat_iter_seek_first(it); stoat_iter_valid(it); stoat_iter_next(it))
        n++;
    stoat_iter_close(it);
    return n;
}

static void test_expiry_reads_format1_database(void)
{
    const char *dir = format1_copy();
    stoat_db *db = open_dir(dir);

    check_format1_keys(db, "sst");
    check_format1_keys(db, "wal");
    /* New writes beside the old ones, then everything rewritten. */
    REQUIRE_OK(set_ttl(db, "new:hour", 3600000, 1));
    REQUIRE_OK(stoat_flush(db));
    REQUIRE_OK(stoat_close(db));
    db = open_dir(dir);
    check_format1_keys(db, "sst");
    check_format1_keys(db, "wal");
    CHECK(count_versions(db) == 7);         /* the expired ones are still stored */
    REQUIRE_OK(stoat_flatten(db));
    CHECK(count_versions(db) == 5);         /* compaction dropped the expired ones */
    check_format1_keys(db, "sst");
    check_format1_keys(db, "wal");
    REQUIRE_OK(meta(db, "new:hour", NULL, NULL));
    REQUIRE_OK(stoat_close(db));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_expiry_vstruct_marks_ms);
    TEST_RUN(test_expiry_has_ms_resolution);
    TEST_RUN(test_expiry_never_early);
    TEST_RUN(test_expiry_ttl_range);
    TEST_RUN(test_expiry_reads_format1_database);
    return test_summary();
}
