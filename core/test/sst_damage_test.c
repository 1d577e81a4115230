/*
 * sst_damage_test.c - damaged SST files: a flipped data, index or footer
 * byte, truncation, an unknown format version, any flipped byte: every
 * damage is an error, never wrong data. Helpers in sst_util.h.
 */
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
#include "sst_util.h"

static void file_read(const char *path, char **data, size_t *len)
{
    REQUIRE_OK(env_read_all(env_posix(), path, data, len));
}

static void file_write(const char *path, const char *data, size_t len)
{
    env_file *f;

    REQUIRE_OK(env_open(env_posix(), path, ENV_WRITE | ENV_TRUNC, &f));
    REQUIRE_OK(env_append(f, data, len));
    env_close(f);
}

static int open_rc(const char *path)
{
    sst_reader *r = NULL;
    int rc = sst_reader_open(env_posix(), path, 1, NULL, &r);

    sst_reader_unref(r);
    return rc;
}

/* Builds a small table; returns its bytes (malloc'd) for mutation. */
static void small_table(const char *path, int compression, table_data *t, char **data, size_t *len)
{
    sst_options o = opts_with(compression);
    sst_props props;

    td_make(t, 2000);
    build(path, &o, t, &props);
    sst_props_free(&props);
    file_read(path, data, len);
}

static void test_sst_flipped_data_byte_is_corruption(void)
{
    table_data t;
    sst_reader *r;
    block_cache *bc;
    buf k = {0}, v = {0};
    char *data, *path = path_in_tmp("000010.sst");
    size_t len, n = 0;
    iter *it;

    REQUIRE_OK(block_cache_new(1 << 20, &bc));
    small_table(path, STOAT_COMPRESSION_LZ4, &t, &data, &len);
    data[100] ^= 0x20; /* inside the first data block */
    file_write(path, data, len);
    REQUIRE_OK(sst_reader_open(env_posix(), path, 10, bc, &r));
    CHECK_RC(sst_reader_get(r, ikey_user(tk(&t, 0)), 100, &k, &v), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "000010.sst: block at offset 0: bad checksum") != NULL);
    CHECK(k.len == 0 && v.len == 0);
    /* a key in a later block still reads */
    REQUIRE_OK(sst_reader_get(r, ikey_user(tk(&t, t.n - 1)), 100, &k, &v));
    it = sst_reader_iter(r);
    REQUIRE(it != NULL);
    for (iter_seek_first(it); iter_valid(it); iter_next(it))
        n++;
    CHECK(n == 0 && iter_status(it) == STOAT_ECORRUPT);
    iter_free(it);
    /* backwards, the damage is met after the good blocks */
    it = sst_reader_iter(r);
    for (n = t.n, iter_seek_last(it); iter_valid(it); iter_prev(it), n--)
        if (!iter_at(it, &t, n - 1))
            break;
    CHECK(!iter_valid(it) && iter_status(it) == STOAT_ECORRUPT && n > 0 && n < t.n);
    iter_free(it);
    sst_reader_unref(r);
    block_cache_free(bc);
    buf_free(&k);
    buf_free(&v);
    td_free(&t);
    free(data);
    free(path);
}

static void test_sst_flipped_index_footer_or_truncation_fails_open(void)
{
    table_data t;
    char *data, *copy, *path = path_in_tmp("000011.sst");
    size_t len, foot, index_off;

    small_table(path, STOAT_COMPRESSION_NONE, &t, &data, &len);
    REQUIRE((copy = malloc(len)) != NULL);
    foot = len - FOOTER_LEN;
    index_off = (size_t)get_fixed64(data + foot + 32);
    REQUIRE(index_off < foot);
    /* a byte of the index block */
    memcpy(copy, data, len);
    copy[index_off + 3] ^= 1;
    file_write(path, copy, len);
    CHECK_RC(open_rc(path), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "bad checksum") != NULL);
    /* a byte of a footer handle, and of the magic */
    memcpy(copy, data, len);
    copy[foot + 33] ^= 1;
    file_write(path, copy, len);
    CHECK_RC(open_rc(path), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "000011.sst: bad footer checksum") != NULL);
    memcpy(copy, data, len);
    copy[len - 1] ^= 1;
    file_write(path, copy, len);
    CHECK_RC(open_rc(path), STOAT_ECORRUPT);
    /* truncated anywhere */
    size_t cuts[] = {0, 1, FOOTER_LEN - 1, FOOTER_LEN, len / 2, len - FOOTER_LEN, len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        file_write(path, data, cuts[i]);
        CHECK_RC(open_rc(path), STOAT_ECORRUPT);
        CHECK(strstr(status_msg(), "000011.sst") != NULL);
    }
    /* intact again: opens */
    file_write(path, data, len);
    CHECK_RC(open_rc(path), 0);
    free(path);
    path = path_in_tmp("missing.sst");
    CHECK_RC(open_rc(path), STOAT_ENOTFOUND);
    td_free(&t);
    free(copy);
    free(data);
    free(path);
}

static void test_sst_unknown_format_version_is_not_supported(void)
{
    table_data t;
    char *data, *path = path_in_tmp("000012.sst"), want[32];
    size_t len, foot;

    small_table(path, STOAT_COMPRESSION_NONE, &t, &data, &len);
    foot = len - FOOTER_LEN;
    put_fixed32(data + foot + FOOTER_VERSION_AT, SST_FORMAT_VERSION + 1);
    put_fixed64(data + foot + FOOTER_CHECKSUM_AT, checksum64(data + foot, FOOTER_CHECKSUM_AT));
    file_write(path, data, len);
    CHECK_RC(open_rc(path), STOAT_ENOTSUP);
    snprintf(want, sizeof(want), "version %d", SST_FORMAT_VERSION + 1);
    CHECK(strstr(status_msg(), want) != NULL);
    td_free(&t);
    free(data);
    free(path);
}

/* Flip each byte of a small table in turn: open fails, or every get and
 * the whole iteration return the right data or STOAT_ECORRUPT. */
static void test_sst_any_flipped_byte_is_caught(void)
{
    table_data t;
    sst_options o = opts_with(STOAT_COMPRESSION_LZ4);
    sst_props props;
    char *data, uk[32], *path = path_in_tmp("000013.sst");
    size_t len, wrong = 0, opened = 0;
    buf k = {0}, v = {0};

    o.block_size = 256;
    memset(&t, 0, sizeof(t));
    for (uint64_t i = 0; i < 40; i++)
        td_add(&t, ukey_of(uk, i), 7, 0, slice_make("some value bytes", 16));
    build(path, &o, &t, &props);
    file_read(path, &data, &len);
    for (size_t pos = 0; pos < len; pos++) {
        sst_reader *r;
        iter *it;
        size_t i;
        data[pos] ^= 0x04;
        file_write(path, data, len);
        data[pos] ^= 0x04;
        if (sst_reader_open(env_posix(), path, 13, NULL, &r) != 0)
            continue;
        opened++;
        for (i = 0; i < t.n; i++) {
            int rc = sst_reader_get(r, ikey_user(tk(&t, i)), 7, &k, &v);
            if (rc != STOAT_ECORRUPT &&
                (rc != 0 || slice_cmp(slice_make(v.data, v.len), tv(&t, i)) != 0))
                wrong++;
        }
        it = sst_reader_iter(r);
        REQUIRE(it != NULL);
        for (i = 0, iter_seek_first(it); iter_valid(it); iter_next(it), i++)
            wrong += !iter_at(it, &t, i);
        wrong += iter_status(it) == 0 ? i != t.n : iter_status(it) != STOAT_ECORRUPT;
        iter_free(it);
        sst_reader_unref(r);
    }
    CHECK(wrong == 0);
    CHECK(opened > 0 && opened < len); /* data-block damage opens, meta damage does not */
    buf_free(&k);
    buf_free(&v);
    sst_props_free(&props);
    td_free(&t);
    free(data);
    free(path);
}

/* ---- threads ---- */

int main(int argc, char **argv)
{
    TEST_RUN(test_sst_flipped_data_byte_is_corruption);
    TEST_RUN(test_sst_flipped_index_footer_or_truncation_fails_open);
    TEST_RUN(test_sst_unknown_format_version_is_not_supported);
    TEST_RUN(test_sst_any_flipped_byte_is_caught);
    return test_summary();
}
