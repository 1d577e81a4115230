/*
 * fuzz_found_test.c - regressions for what the fuzzers (core/fuzz/) found,
 * one test per finding, named after the bug.
 */
#include "base/checksum.h"
#include "base/coding.h"
#include "base/ikey.h"
#include "table/sst_builder.h"
#include "table/sst_format.h"
#include "table/sst_reader.h"
#include "base/status.h"
#include "db_util.h"
#include "test.h"

/* fuzz_db_model: a transaction begun before the database's first commit
 * reads at version 0, which the read path took for "the latest": its
 * snapshot saw every later commit (gets and iterators alike). */
static void test_fuzz_found_txn_before_first_commit_sees_no_later_commit(void)
{
    stoat_options o;
    stoat_db *db;
    stoat_txn *t, *rw;
    stoat_iter *it;
    const void *val;
    size_t vlen;

    dbu_small_options(&o);
    REQUIRE_OK(stoat_open(test_tmpdir(), &o, &db));
    REQUIRE_OK(stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &t));
    REQUIRE_OK(stoat_txn_begin(db, 0, &rw));
    CHECK(stoat_txn_read_version(t) == 0);
    REQUIRE_OK(stoat_put(db, "k", 1, "v", 1));
    CHECK_RC(stoat_txn_get(t, "k", 1, &val, &vlen), STOAT_ENOTFOUND);
    REQUIRE_OK(stoat_txn_iter_open(t, NULL, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    CHECK(!stoat_iter_valid(it));
    stoat_iter_close(it);
    /* A read-write one: its own write shows, the other commit does not,
     * and it conflicts on the key it read. */
    CHECK_RC(stoat_txn_get(rw, "k", 1, &val, &vlen), STOAT_ENOTFOUND);
    REQUIRE_OK(stoat_txn_set(rw, "mine", 4, "1", 1));
    REQUIRE_OK(stoat_txn_iter_open(rw, NULL, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    REQUIRE(stoat_iter_valid(it));
    {
        const void *key;
        size_t klen;
        REQUIRE_OK(stoat_iter_key(it, &key, &klen));
        CHECK(klen == 4 && memcmp(key, "mine", 4) == 0);
    }
    REQUIRE_OK(stoat_iter_next(it));
    CHECK(!stoat_iter_valid(it));
    stoat_iter_close(it);
    CHECK_RC(stoat_txn_commit(rw), STOAT_ECONFLICT);
    stoat_txn_discard(rw);
    stoat_txn_discard(t);
    /* Plain reads see the latest. */
    {
        void *v = NULL;
        size_t n = 0;
        CHECK_RC(stoat_get(db, "k", 1, &v, &n), 0);
        CHECK(n == 1 && v != NULL && memcmp(v, "v", 1) == 0);
        stoat_free(v);
    }
    REQUIRE_OK(stoat_close(db));
}

/* fuzz_sst_table: a block trailer (checksum right) claiming lz4 and an
 * uncompressed length of 3.5 GiB made the reader allocate that much
 * before the decompression failed. Now the length is judged first. */
static void test_fuzz_found_sst_huge_uncompressed_length_is_corrupt(void)
{
    sst_options so = {.block_size = 4096, .compression = STOAT_COMPRESSION_NONE,
                      .bloom_fp_rate = 0.01};
    char path[DBU_PATH_MAX], ik[16], *data = NULL, *trailer;
    sst_builder *b;
    sst_props props = {0};
    sst_footer f;
    sst_reader *r = NULL;
    size_t len = 0;

    dbu_path(path, test_tmpdir(), "000001.sst");
    REQUIRE_OK(sst_builder_new(env_posix(), path, &so, &b));
    for (int i = 0; i < 10; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        REQUIRE_OK(sst_builder_add(b, slice_make(ik, ikey_encode(ik, k, strlen(k), 1)),
                                   slice_make("\0\0\0v", 4)));
    }
    REQUIRE_OK(sst_builder_finish(b, &props));
    sst_props_free(&props);
    REQUIRE_OK(env_read_all(env_posix(), path, &data, &len));
    REQUIRE_OK(sst_footer_decode(data + len - SST_FOOTER_LEN, path, &f));
    REQUIRE(f.filter.size > 0);
    trailer = data + f.filter.offset + f.filter.size;
    trailer[0] = STOAT_COMPRESSION_LZ4;
    put_fixed32(trailer + 1, 0xde000000u);
    put_fixed64(trailer + 5, checksum64(data + f.filter.offset, (size_t)f.filter.size + 5));
    REQUIRE_OK(env_write_atomic(env_posix(), test_tmpdir(), path, data, len));
    free(data);
    CHECK_RC(sst_reader_open(env_posix(), path, 1, NULL, &r), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "uncompressed length") != NULL);
    CHECK(r == NULL);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_fuzz_found_txn_before_first_commit_sees_no_later_commit);
    TEST_RUN(test_fuzz_found_sst_huge_uncompressed_length_is_corrupt);
    return test_summary();
}
