/*
 * discard_test.c - discard statistics: counting, saving only changes,
 * surviving reopen, damaged and foreign DISCARD files, read-only handles,
 * failed saves, and concurrent adds.
 */
#include <pthread.h>

#include "base/buf.h"
#include "base/checksum.h"
#include "base/coding.h"
#include "vlog/discard.h"
#include "env/env.h"
#include "base/status.h"
#include "support/env_fault.h"
#include "test.h"

static const char *dpath(void)
{
    static char path[4096];

    snprintf(path, sizeof(path), "%s/DISCARD", test_tmpdir());
    return path;
}

static void file_put(const char *path, const void *data, size_t len)
{
    env_file *f;

    REQUIRE_OK(env_open(env_posix(), path, ENV_WRITE | ENV_TRUNC, &f));
    if (len > 0)
        REQUIRE_OK(env_append(f, data, len));
    REQUIRE_OK(env_close(f));
}

static discard *open_d(env *e, int read_only)
{
    discard *d = NULL;

    REQUIRE_OK(discard_open(e, test_tmpdir(), read_only, &d));
    return d;
}

static void test_discard_add_get_forget(void)
{
    discard_entry *list;
    size_t n;
    discard *d = open_d(env_posix(), 0);

    CHECK(discard_get(d, 1) == 0);
    CHECK_RC(discard_add(d, 7, 100), 0);
    CHECK_RC(discard_add(d, 3, 10), 0);
    CHECK_RC(discard_add(d, 7, 50), 0);
    CHECK_RC(discard_add(d, 5, 0), 0);      /* nothing to count */
    CHECK_RC(discard_add(d, UINT32_MAX, UINT64_MAX), 0);
    CHECK_RC(discard_add(d, UINT32_MAX, 5), 0);
    CHECK(discard_get(d, 7) == 150 && discard_get(d, 3) == 10 && discard_get(d, 5) == 0);
    CHECK(discard_get(d, UINT32_MAX) == UINT64_MAX);    /* saturates */
    REQUIRE_OK(discard_list(d, &list, &n));
    CHECK(n == 3 && list[0].fid == 3 && list[1].fid == 7 && list[2].fid == UINT32_MAX);
    free(list);
    discard_forget(d, UINT32_MAX);
    discard_forget(d, 42);
    CHECK(discard_total(d) == 160);
    discard_forget(d, 3);
    discard_forget(d, 7);
    REQUIRE_OK(discard_list(d, &list, &n));
    CHECK(n == 0 && list == NULL);
    CHECK(discard_total(d) == 0);
    discard_close(d);
}

static void test_discard_save_and_reopen(void)
{
    discard *d = open_d(env_posix(), 0);

    CHECK_RC(discard_save(d), 0);
    CHECK(env_exists(env_posix(), dpath()) == 0);   /* nothing changed: nothing written */
    for (uint32_t fid = 1; fid <= 100; fid++)
        REQUIRE_OK(discard_add(d, fid * 3, fid * 1000ull));
    discard_forget(d, 30);
    CHECK_RC(discard_save(d), 0);
    CHECK(env_exists(env_posix(), dpath()) == 1);
    discard_close(d);
    d = open_d(env_posix(), 0);
    for (uint32_t fid = 1; fid <= 100; fid++)
        CHECK(discard_get(d, fid * 3) == (fid == 10 ? 0 : fid * 1000ull));
    CHECK(discard_get(d, 4) == 0);
    /* Saving again without changes does not rewrite the file. */
    REQUIRE_OK(env_remove(env_posix(), dpath()));
    CHECK_RC(discard_save(d), 0);
    CHECK(env_exists(env_posix(), dpath()) == 0);
    discard_add(d, 3, 1);
    CHECK_RC(discard_save(d), 0);
    discard_close(d);
    d = open_d(env_posix(), 0);
    CHECK(discard_get(d, 3) == 1001 && discard_get(d, 300) == 100000);
    discard_close(d);
}

/* A valid DISCARD file of the given entries, then edited by the caller. */
static void build(buf *b, const uint32_t *fids, const uint64_t *bytes, uint32_t n)
{
    buf_reset(b);
    buf_put_fixed64(b, DISCARD_MAGIC);
    buf_put_fixed32(b, DISCARD_FORMAT_VERSION);
    buf_put_fixed32(b, n);
    for (uint32_t i = 0; i < n; i++) {
        buf_put_fixed32(b, fids[i]);
        buf_put_fixed64(b, bytes[i]);
    }
    buf_put_fixed64(b, checksum64(b->data, b->len));
}

static void reseal(buf *b)
{
    put_fixed64(b->data + b->len - 8, checksum64(b->data, b->len - 8));
}

static void expect_open(const buf *b, int rc_want, const char *msg)
{
    discard *d = NULL;

    file_put(dpath(), b->data, b->len);
    CHECK_RC(discard_open(env_posix(), test_tmpdir(), 0, &d), rc_want);
    CHECK(d == NULL);
    if (msg != NULL && strstr(status_msg(), msg) == NULL)
        test_fail(__FILE__, __LINE__, "message \"%s\" lacks \"%s\"", status_msg(), msg);
    discard_close(d);
}

static void test_discard_damaged_file_is_corruption(void)
{
    uint32_t fids[] = {2, 5, 9};
    uint64_t bytes[] = {20, 50, 90};
    buf b = {0};
    discard *d;

    build(&b, fids, bytes, 3);
    for (size_t i = 0; i < b.len; i++) {
        b.data[i] ^= 0x10;
        expect_open(&b, i >= 8 && i < 12 ? STOAT_ENOTSUP : STOAT_ECORRUPT, "DISCARD");
        b.data[i] ^= 0x10;
        if (test_failed_now)
            break;
    }
    for (size_t len = 0; len < b.len; len++) {
        buf cut = {0};
        REQUIRE_OK(buf_append(&cut, b.data, len));
        expect_open(&cut, STOAT_ECORRUPT, "DISCARD");
        buf_free(&cut);
    }
    /* Well framed but unsorted, or a zero count: still corruption. */
    fids[2] = 5;
    build(&b, fids, bytes, 3);
    expect_open(&b, STOAT_ECORRUPT, "bad entry 2");
    fids[2] = 9;
    bytes[0] = 0;
    build(&b, fids, bytes, 3);
    expect_open(&b, STOAT_ECORRUPT, "bad entry 0");
    /* A version from the future. */
    bytes[0] = 20;
    build(&b, fids, bytes, 3);
    put_fixed32(b.data + 8, DISCARD_FORMAT_VERSION + 1);
    reseal(&b);
    expect_open(&b, STOAT_ENOTSUP, "version");
    /* The documented way out: the counts are advisory; remove and reopen. */
    REQUIRE_OK(env_remove(env_posix(), dpath()));
    d = open_d(env_posix(), 0);
    CHECK(discard_total(d) == 0);
    discard_close(d);
    /* And the intact file loads. */
    build(&b, fids, bytes, 3);
    file_put(dpath(), b.data, b.len);
    d = open_d(env_posix(), 0);
    CHECK(discard_get(d, 5) == 50 && discard_total(d) == 160);
    discard_close(d);
    buf_free(&b);
}

static void test_discard_read_only_never_writes(void)
{
    discard *d = open_d(env_posix(), 1);

    CHECK_RC(discard_save(d), 0);
    discard_add(d, 1, 10);
    CHECK_RC(discard_save(d), STOAT_EREADONLY);
    CHECK(env_exists(env_posix(), dpath()) == 0);
    discard_close(d);
}

static void test_discard_failed_save_keeps_old_file_and_retries(void)
{
    env *fe = env_fault_new(env_posix());
    discard *d = open_d(fe, 0);

    discard_add(d, 1, 10);
    REQUIRE_OK(discard_save(d));
    discard_add(d, 2, 20);
    env_fault_fail_sync(fe, 1);
    CHECK(discard_save(d) < 0);
    env_fault_fail_sync(fe, 0);
    discard_close(d);
    /* Power loss now: the first save survives whole. */
    env_fault_crash(fe);
    REQUIRE_OK(env_fault_drop_unsynced(fe));
    d = open_d(fe, 0);
    CHECK(discard_get(d, 1) == 10 && discard_get(d, 2) == 0);
    discard_add(d, 2, 20);
    env_fault_fail_append(fe, 1, 28);
    CHECK(discard_save(d) < 0);
    env_fault_fail_append(fe, 0, 0);
    CHECK_RC(discard_save(d), 0);   /* still changed: the retry writes */
    discard_close(d);
    d = open_d(fe, 0);
    CHECK(discard_get(d, 2) == 20);
    discard_close(d);
    env_fault_free(fe);
}

static void *adder(void *arg)
{
    discard *d = arg;

    for (int i = 0; i < 20000; i++) {
        discard_add(d, (uint32_t)(i % 50) + 1, 3);
        if (i % 5000 == 0)
            discard_save(d);
    }
    return NULL;
}

static void test_discard_concurrent_adds_and_saves(void)
{
    pthread_t t[4];
    discard *d = open_d(env_posix(), 0);

    for (int i = 0; i < 4; i++)
        REQUIRE(pthread_create(&t[i], NULL, adder, d) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK(discard_total(d) == 4 * 20000 * 3ull);
    CHECK(discard_get(d, 1) == 4 * 400 * 3ull);
    CHECK_RC(discard_save(d), 0);
    discard_close(d);
    d = open_d(env_posix(), 0);
    CHECK(discard_total(d) == 4 * 20000 * 3ull);
    discard_close(d);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_discard_add_get_forget);
    TEST_RUN(test_discard_save_and_reopen);
    TEST_RUN(test_discard_damaged_file_is_corruption);
    TEST_RUN(test_discard_read_only_never_writes);
    TEST_RUN(test_discard_failed_save_keeps_old_file_and_retries);
    TEST_RUN(test_discard_concurrent_adds_and_saves);
    return test_summary();
}
