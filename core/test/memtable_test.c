/*
 * memtable_test.c - reads by version, tombstones, iteration, recovery from
 * the WAL (clean, torn, corrupt, read-only, oversized), appends after
 * recovery, room accounting and WAL removal on the last unref.
 */
#include <errno.h>

#include "env/env.h"
#include "base/ikey.h"
#include "mem/memtable.h"
#include "base/status.h"
#include "log/wal.h"
#include "support/env_fault.h"
#include "test.h"

#define ARENA (1u << 20)

/* Commits one entry (WAL record + skiplist) of ukey@version; value `val`,
 * or a tombstone when val is NULL. */
static void put(memtable *m, const char *ukey, uint64_t version, const char *val)
{
    char key[64], enc[128];
    vstruct v = {val ? 0 : VMETA_DELETE, 0, 0, slice_make(val, val ? strlen(val) : 0)};
    slice k = slice_make(key, ikey_encode(key, ukey, strlen(ukey), version));
    slice vs = slice_make(enc, vstruct_encode(enc, &v));
    buf payload = {0};

    REQUIRE_OK(wal_encode_entry(&payload, k, vs));
    REQUIRE_OK(memtable_log(m, payload.data, payload.len));
    REQUIRE_OK(memtable_add(m, k, vs, 0));
    buf_free(&payload);
}

/* 1 if get(ukey, version) finds exactly value `want` (NULL: a tombstone)
 * at version want_version. */
static int got(memtable *m, const char *ukey, uint64_t version, const char *want,
               uint64_t want_version)
{
    slice ik, val;
    vstruct v;

    if (memtable_get(m, slice_make(ukey, strlen(ukey)), version, &ik, &val) != 0)
        return 0;
    if (vstruct_decode(val, &v) != 0 || ikey_version(ik) != want_version)
        return 0;
    if (want == NULL)
        return (v.meta & VMETA_DELETE) != 0;
    return !(v.meta & VMETA_DELETE) && v.value.len == strlen(want) &&
           memcmp(v.value.data, want, v.value.len) == 0;
}

static char *wal_path(uint64_t id)
{
    char name[32], *p;

    snprintf(name, sizeof(name), "%06llu.wal", (unsigned long long)id);
    p = env_join(test_tmpdir(), name);
    REQUIRE(p != NULL);
    return p;
}

static uint64_t file_size(const char *path)
{
    env_file *f;
    uint64_t size = 0;

    REQUIRE_OK(env_open(env_posix(), path, ENV_READ, &f));
    REQUIRE_OK(env_file_size(f, &size));
    env_close(f);
    return size;
}

static void append_raw(const char *path, const void *data, size_t len)
{
    env_file *f;

    REQUIRE_OK(env_open(env_posix(), path, ENV_WRITE, &f));
    REQUIRE_OK(env_append(f, data, len));
    env_close(f);
}

static memtable *recover(uint64_t id, uint64_t arena, int read_only, uint64_t *maxv)
{
    memtable *m = NULL;
    uint64_t v;

    REQUIRE_OK(memtable_recover(env_posix(), test_tmpdir(), id, arena, read_only,
                                maxv ? maxv : &v, &m));
    return m;
}

static void test_memtable_get_newest_version_at_or_below(void)
{
    memtable *m;

    REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 1, ARENA, &m));
    CHECK(memtable_min_version(m) == 0 && memtable_max_version(m) == 0);
    put(m, "k", 1, "v1");
    put(m, "k", 3, "v3");
    put(m, "k", 5, "v5");
    put(m, "ka", 2, "a2");
    put(m, "", 4, "empty");
    CHECK(got(m, "k", 4, "v3", 3));
    CHECK(got(m, "k", 3, "v3", 3));
    CHECK(got(m, "k", 5, "v5", 5));
    CHECK(got(m, "k", UINT64_MAX, "v5", 5));
    CHECK(got(m, "ka", 9, "a2", 2));
    CHECK(got(m, "", 4, "empty", 4));
    {
        slice ik, val;
        CHECK_RC(memtable_get(m, slice_make("k", 1), 0, &ik, &val), STOAT_ENOTFOUND);
        CHECK(ik.len == 0 && val.len == 0);
        CHECK_RC(memtable_get(m, slice_make("ka", 2), 1, &ik, &val), STOAT_ENOTFOUND);
        CHECK_RC(memtable_get(m, slice_make("j", 1), 9, &ik, &val), STOAT_ENOTFOUND);
        CHECK_RC(memtable_get(m, slice_make("kb", 2), 9, &ik, &val), STOAT_ENOTFOUND);
    }
    CHECK(memtable_count(m) == 5);
    CHECK(memtable_min_version(m) == 1 && memtable_max_version(m) == 5);
    CHECK(memtable_id(m) == 1);
    memtable_unref(m);
}

static void test_memtable_tombstones_are_found(void)
{
    memtable *m;

    REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 2, ARENA, &m));
    put(m, "k", 1, "v1");
    put(m, "k", 2, NULL);
    CHECK(got(m, "k", 2, NULL, 2));
    CHECK(got(m, "k", 1, "v1", 1));
    /* Re-adding an internal key replaces its value. */
    put(m, "k", 2, "back");
    CHECK(got(m, "k", 9, "back", 2));
    CHECK(memtable_count(m) == 2);
    memtable_unref(m);
}

/* Walks the iterator both ways and checks it yields n keys in order. */
static void check_iter_order(memtable *m, size_t n)
{
    iter *it = memtable_iter(m);
    size_t seen = 0;
    char prev[64];
    size_t plen = 0;

    REQUIRE(it != NULL);
    for (iter_seek_first(it); iter_valid(it); iter_next(it), seen++) {
        slice k = iter_key(it);
        if (seen > 0)
            CHECK(ikey_cmp(slice_make(prev, plen), k) < 0);
        REQUIRE(k.len <= sizeof(prev));
        memcpy(prev, k.data, k.len);
        plen = k.len;
    }
    CHECK(seen == n && iter_status(it) == 0);
    seen = 0;
    for (iter_seek_last(it); iter_valid(it); iter_prev(it))
        seen++;
    CHECK(seen == n);
    iter_free(it);
}

static void test_memtable_iterator_navigates(void)
{
    char key[32];
    memtable *m;
    iter *it;

    REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 3, ARENA, &m));
    put(m, "a", 1, "a1");
    put(m, "b", 2, "b2");
    put(m, "b", 1, "b1");
    put(m, "c", 7, "c7");
    check_iter_order(m, 4);
    it = memtable_iter(m);
    REQUIRE(it != NULL);
    iter_seek(it, slice_make(key, ikey_encode(key, "b", 1, IKEY_VERSION_MAX)));
    REQUIRE(iter_valid(it));
    CHECK(ikey_version(iter_key(it)) == 2);
    iter_next(it);
    REQUIRE(iter_valid(it));
    CHECK(ikey_version(iter_key(it)) == 1);
    iter_prev(it);
    iter_prev(it);
    REQUIRE(iter_valid(it));
    CHECK(iter_key(it).len == 9 && iter_key(it).data[0] == 'a');
    iter_prev(it);
    CHECK(!iter_valid(it));
    iter_seek_for_prev(it, slice_make(key, ikey_encode(key, "bb", 2, 0)));
    REQUIRE(iter_valid(it));
    CHECK(ikey_version(iter_key(it)) == 1 && iter_key(it).data[0] == 'b');
    iter_seek(it, slice_make(key, ikey_encode(key, "d", 1, 0)));
    CHECK(!iter_valid(it));
    iter_free(it);
    memtable_unref(m);
}

/* A GC rewrite: ukey@version added with visible_from = stamp. */
static void put_stamped(memtable *m, const char *ukey, uint64_t version, const char *val,
                        uint64_t stamp)
{
    char key[64], enc[128];
    vstruct v = {0, 0, 0, slice_make(val, strlen(val))};
    slice k = slice_make(key, ikey_encode(key, ukey, strlen(ukey), version));

    REQUIRE_OK(memtable_add(m, k, slice_make(enc, vstruct_encode(enc, &v)), stamp));
}

/* The user keys an iterator yields walking one way from a positioning. */
static void walk_keys(iter *it, int forward, char *out, size_t cap)
{
    size_t n = 0;

    for (; iter_valid(it) && n + 1 < cap; forward ? iter_next(it) : iter_prev(it))
        out[n++] = iter_key(it).data[0];
    out[n] = 0;
}

/* Issue 9: an iterator bounded at a read version never meets a GC rewrite
 * stamped after it, whichever way it moves; an unbounded one (a flush)
 * sees everything; a replaced value does not hide its node. */
static void test_memtable_iter_at_hides_later_gc_rewrites(void)
{
    char key[32], seen[16];
    memtable *m;
    iter *it;

    REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 3, ARENA, &m));
    put(m, "a", 1, "a1");
    put(m, "c", 3, "c3");
    put(m, "e", 5, "e5");
    it = memtable_iter_at(m, 5);
    REQUIRE(it != NULL);
    put_stamped(m, "b", 2, "b2", 6);    /* rewrites committed at version 6 */
    put_stamped(m, "d", 4, "d4", 6);
    put_stamped(m, "f", 1, "f1", 6);
    put_stamped(m, "0", 1, "01", 6);
    put_stamped(m, "c", 3, "c3", 6);    /* same internal key: value replaced */
    iter_seek_first(it);
    walk_keys(it, 1, seen, sizeof(seen));
    CHECK(strcmp(seen, "ace") == 0);
    iter_seek_last(it);
    walk_keys(it, 0, seen, sizeof(seen));
    CHECK(strcmp(seen, "eca") == 0);
    iter_seek(it, slice_make(key, ikey_encode(key, "b", 1, IKEY_VERSION_MAX)));
    CHECK(iter_valid(it) && iter_key(it).data[0] == 'c');
    iter_seek_for_prev(it, slice_make(key, ikey_encode(key, "d", 1, 0)));
    CHECK(iter_valid(it) && iter_key(it).data[0] == 'c');
    iter_next(it);
    CHECK(iter_valid(it) && iter_key(it).data[0] == 'e');
    iter_prev(it);
    iter_prev(it);
    CHECK(iter_valid(it) && iter_key(it).data[0] == 'a');
    iter_free(it);
    it = memtable_iter_at(m, 6);        /* a reader that began after them */
    REQUIRE(it != NULL);
    iter_seek_first(it);
    walk_keys(it, 1, seen, sizeof(seen));
    CHECK(strcmp(seen, "0abcdef") == 0);
    iter_free(it);
    it = memtable_iter(m);
    REQUIRE(it != NULL);
    iter_seek_last(it);
    walk_keys(it, 0, seen, sizeof(seen));
    CHECK(strcmp(seen, "fedcba0") == 0);
    iter_free(it);
    memtable_unref(m);
}

static void test_memtable_recovers_from_wal(void)
{
    memtable *m;
    uint64_t maxv = 0, wal_size;
    char *path = wal_path(4);

    REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 4, ARENA, &m));
    CHECK(memtable_wal_size(m) == WAL_HEADER_LEN);
    put(m, "x", 10, "x10");
    put(m, "y", 11, NULL);
    put(m, "x", 12, "x12");
    REQUIRE_OK(memtable_sync(m));
    wal_size = memtable_wal_size(m);
    CHECK(wal_size == file_size(path));
    memtable_unref(m);
    CHECK(env_exists(env_posix(), path));

    m = recover(4, ARENA, 0, &maxv);
    CHECK(maxv == 12);
    CHECK(memtable_count(m) == 3 && memtable_min_version(m) == 10);
    CHECK(memtable_wal_size(m) == wal_size);
    CHECK(got(m, "x", 11, "x10", 10) && got(m, "x", 99, "x12", 12) && got(m, "y", 11, NULL, 11));
    check_iter_order(m, 3);
    memtable_unref(m);
    free(path);
}

static void test_memtable_recovers_after_torn_tail_and_accepts_appends(void)
{
    memtable *m;
    char *path = wal_path(5), torn[WAL_RECORD_HEADER_LEN + 100] = {0};
    uint64_t good, maxv;

    REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 5, ARENA, &m));
    put(m, "a", 1, "a1");
    put(m, "b", 2, "b2");
    good = memtable_wal_size(m);
    memtable_unref(m);
    /* A record cut short by a crash: its intact header says 100 bytes, 5 follow. */
    memcpy(torn + WAL_RECORD_HEADER_LEN, "hello", 5);
    wal_record_header_encode(torn, torn + WAL_RECORD_HEADER_LEN, 100);
    append_raw(path, torn, WAL_RECORD_HEADER_LEN + 5);

    m = recover(5, ARENA, 0, &maxv);
    CHECK(maxv == 2 && memtable_count(m) == 2);
    CHECK(file_size(path) == good && memtable_wal_size(m) == good);
    put(m, "c", 3, "c3");
    CHECK(memtable_wal_size(m) == file_size(path));
    memtable_unref(m);

    m = recover(5, ARENA, 0, &maxv);
    CHECK(maxv == 3 && memtable_count(m) == 3);
    CHECK(got(m, "a", 1, "a1", 1) && got(m, "c", 3, "c3", 3));
    memtable_unref(m);
    free(path);
}

static void test_memtable_read_only_recovery_leaves_file_alone(void)
{
    memtable *m;
    char *path = wal_path(6);
    uint64_t size, good;

    REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 6, ARENA, &m));
    put(m, "a", 1, "a1");
    good = memtable_wal_size(m);
    memtable_unref(m);
    append_raw(path, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
    size = file_size(path);

    m = recover(6, ARENA, 1, NULL);
    CHECK(got(m, "a", 1, "a1", 1));
    CHECK(memtable_wal_size(m) == good);
    CHECK_RC(memtable_log(m, "", 0), STOAT_EREADONLY);
    CHECK_RC(memtable_sync(m), 0);
    memtable_unref(m);
    CHECK(file_size(path) == size);
    free(path);
}

static void test_memtable_recover_rewrites_missing_header(void)
{
    memtable *m;
    char *path = wal_path(7);

    append_raw(path, "", 0);
    m = recover(7, ARENA, 0, NULL);
    CHECK(memtable_count(m) == 0 && memtable_wal_size(m) == WAL_HEADER_LEN);
    put(m, "z", 1, "z1");
    memtable_unref(m);
    m = recover(7, ARENA, 0, NULL);
    CHECK(got(m, "z", 1, "z1", 1));
    memtable_unref(m);
    free(path);
}

static void test_memtable_recover_errors(void)
{
    memtable *m = (memtable *)1;
    uint64_t maxv = 7;
    char *path = wal_path(8);
    char junk[40];
    env *e = env_posix();

    CHECK_RC(memtable_recover(e, test_tmpdir(), 99, ARENA, 0, &maxv, &m), STOAT_ENOTFOUND);
    CHECK(m == NULL && maxv == 0);
    CHECK(!env_exists(e, path));
    CHECK_RC(memtable_recover(e, test_tmpdir(), 99, ARENA, 1, &maxv, &m), STOAT_ENOTFOUND);

    REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 8, ARENA, &m));
    put(m, "a", 1, "a1");
    put(m, "b", 2, "b2");
    memtable_unref(m);
    /* Damage the first record, then add a good-looking tail after it. */
    {
        env_file *f;
        char *data;
        size_t len;
        REQUIRE_OK(env_read_all(env_posix(), path, &data, &len));
        data[WAL_HEADER_LEN + 9] ^= 0x40;
        REQUIRE_OK(env_open(env_posix(), path, ENV_WRITE | ENV_TRUNC, &f));
        REQUIRE_OK(env_append(f, data, len));
        env_close(f);
        free(data);
    }
    CHECK_RC(memtable_recover(env_posix(), test_tmpdir(), 8, ARENA, 0, &maxv, &m), STOAT_ECORRUPT);
    CHECK(m == NULL && strstr(status_msg(), "000008.wal: bad checksum at offset 16") != NULL);

    memset(junk, 'j', sizeof(junk));
    free(path);
    path = wal_path(9);
    append_raw(path, junk, sizeof(junk));
    CHECK_RC(memtable_recover(env_posix(), test_tmpdir(), 9, ARENA, 0, &maxv, &m), STOAT_ECORRUPT);
    CHECK(file_size(path) == sizeof(junk));
    free(path);
}

static void test_memtable_recover_grows_a_small_arena(void)
{
    memtable *m;
    char ukey[16];
    uint64_t maxv;

    REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 10, ARENA, &m));
    for (int i = 0; i < 2000; i++) {
        snprintf(ukey, sizeof(ukey), "key%05d", i);
        put(m, ukey, (uint64_t)i + 1, "v");
    }
    memtable_unref(m);
    m = recover(10, 4096, 0, &maxv);
    CHECK(maxv == 2000 && memtable_count(m) == 2000);
    CHECK(got(m, "key01234", 9999, "v", 1235));
    check_iter_order(m, 2000);
    memtable_unref(m);
}

static void test_memtable_room_accounts_overhead(void)
{
    memtable *m;
    uint64_t free_bytes;
    char ukey[16];
    int i;

    REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 11, 8192, &m));
    free_bytes = 8192 - memtable_arena_used(m);
    CHECK(memtable_room(m, free_bytes, 0));
    CHECK(!memtable_room(m, free_bytes + 1, 0));
    CHECK(!memtable_room(m, free_bytes - MEMTABLE_ENTRY_OVERHEAD + 1, 1));
    CHECK(!memtable_room(m, 1, UINT64_MAX / 2));
    /* Whatever room promises, add delivers. */
    for (i = 0;; i++) {
        snprintf(ukey, sizeof(ukey), "key%05d", i);
        /* ikey: 8 + 8 bytes; vstruct of "v": 4 bytes */
        if (!memtable_room(m, 20, 1))
            break;
        put(m, ukey, 1, "v");
    }
    CHECK(i > 10);
    /* ...and says no only when the worst case truly might not fit. */
    CHECK(8192 - memtable_arena_used(m) < 20 + MEMTABLE_ENTRY_OVERHEAD);
    memtable_unref(m);
}

static void test_memtable_wal_removed_only_when_obsolete_and_unreferenced(void)
{
    memtable *m;
    char *p12 = wal_path(12), *p13 = wal_path(13);
    iter *it;

    REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 12, ARENA, &m));
    put(m, "a", 1, "a1");
    memtable_unref(m);
    CHECK(env_exists(env_posix(), p12));    /* not obsolete: kept */

    REQUIRE_OK(memtable_new(env_posix(), test_tmpdir(), 13, ARENA, &m));
    put(m, "a", 1, "a1");
    it = memtable_iter(m);
    REQUIRE(it != NULL);
    memtable_ref(m);
    memtable_mark_obsolete(m);
    memtable_unref(m);
    memtable_unref(m);
    CHECK(env_exists(env_posix(), p13));    /* the iterator still holds it */
    iter_seek_first(it);
    CHECK(iter_valid(it) && iter_key(it).data[0] == 'a');
    iter_free(it);
    CHECK(!env_exists(env_posix(), p13));
    free(p12);
    free(p13);
}

static void test_memtable_failed_append_keeps_wal_replayable(void)
{
    env *e = env_fault_new(env_posix());
    memtable *m;
    uint64_t size;
    uint64_t maxv;

    REQUIRE(e != NULL);
    REQUIRE_OK(memtable_new(e, test_tmpdir(), 14, ARENA, &m));
    put(m, "a", 1, "a1");
    size = memtable_wal_size(m);
    env_fault_fail_append(e, 1, ENOSPC);
    CHECK_RC(memtable_log(m, "\x08", 1), STOAT_ENOSPC);
    CHECK(memtable_wal_size(m) == size);
    env_fault_fail_append(e, 0, 0);
    put(m, "b", 2, "b2");
    memtable_unref(m);
    REQUIRE_OK(memtable_recover(e, test_tmpdir(), 14, ARENA, 0, &maxv, &m));
    CHECK(maxv == 2 && got(m, "a", 1, "a1", 1) && got(m, "b", 2, "b2", 2));
    memtable_unref(m);
    env_fault_free(e);
}

static void test_memtable_failed_create_leaves_no_wal(void)
{
    env *e = env_fault_new(env_posix());
    memtable *m = (memtable *)1;
    char *path = wal_path(15);

    REQUIRE(e != NULL);
    env_fault_fail_append(e, 1, EIO);
    CHECK_RC(memtable_new(e, test_tmpdir(), 15, ARENA, &m), STOAT_EIO);
    CHECK(m == NULL && !env_exists(e, path));
    env_fault_free(e);
    free(path);
}

static void test_memtable_power_loss_keeps_synced_records(void)
{
    env *e = env_fault_new(env_posix());
    memtable *m;
    uint64_t maxv;

    REQUIRE(e != NULL);
    REQUIRE_OK(memtable_new(e, test_tmpdir(), 16, ARENA, &m));
    REQUIRE_OK(env_sync_dir(e, test_tmpdir()));
    put(m, "a", 1, "a1");
    put(m, "b", 2, "b2");
    REQUIRE_OK(memtable_sync(m));
    put(m, "c", 3, "c3");   /* never synced */
    env_fault_crash(e);
    memtable_unref(m);
    REQUIRE_OK(env_fault_drop_unsynced(e));
    REQUIRE_OK(memtable_recover(e, test_tmpdir(), 16, ARENA, 0, &maxv, &m));
    CHECK(maxv == 2 && memtable_count(m) == 2);
    CHECK(got(m, "b", 2, "b2", 2));
    memtable_unref(m);
    env_fault_free(e);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_memtable_get_newest_version_at_or_below);
    TEST_RUN(test_memtable_tombstones_are_found);
    TEST_RUN(test_memtable_iterator_navigates);
    TEST_RUN(test_memtable_iter_at_hides_later_gc_rewrites);
    TEST_RUN(test_memtable_recovers_from_wal);
    TEST_RUN(test_memtable_recovers_after_torn_tail_and_accepts_appends);
    TEST_RUN(test_memtable_read_only_recovery_leaves_file_alone);
    TEST_RUN(test_memtable_recover_rewrites_missing_header);
    TEST_RUN(test_memtable_recover_errors);
    TEST_RUN(test_memtable_recover_grows_a_small_arena);
    TEST_RUN(test_memtable_room_accounts_overhead);
    TEST_RUN(test_memtable_wal_removed_only_when_obsolete_and_unreferenced);
    TEST_RUN(test_memtable_failed_append_keeps_wal_replayable);
    TEST_RUN(test_memtable_failed_create_leaves_no_wal);
    TEST_RUN(test_memtable_power_loss_keeps_synced_records);
    return test_summary();
}
