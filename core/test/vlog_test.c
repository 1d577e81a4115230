/*
 * vlog_test.c - the value log's records and files: round trips (empty and
 * multi-MiB values, batches), rollover, reopen, torn tails at every byte,
 * corruption in the middle, bad pointers, scans, file headers, names that
 * are not value-log files. Removal, eviction, failures, power loss and
 * concurrent readers are vlog_faults_test.c; helpers in vlog_util.h.
 */
#include <dirent.h>
#include <pthread.h>
#include <unistd.h>

#include "env/env.h"
#include "base/ikey.h"
#include "base/status.h"
#include "vlog/vlog.h"
#include "support/env_fault.h"
#include "test.h"
#include "vlog_util.h"

static void test_vlog_round_trip_empty_small_and_large_values(void)
{
    size_t sizes[] = {0, 1, 100, 4096, 300 << 10, 3 << 20, 7};
    rec r[7];
    vlog *l = open_log(env_posix(), test_tmpdir(), 0, 0);

    CHECK(vlog_active_fid(l) == 0);     /* no file before the first append */
    for (int i = 0; i < 7; i++) {
        rec_make(&r[i], i, sizes[i]);
        append_rec(l, &r[i]);
        CHECK(r[i].p.fid == 1);
        CHECK(r[i].p.len == vlog_record_len(r[i].klen, sizes[i]));
        CHECK(i == 0 ? r[i].p.offset == VLOG_HEADER_LEN
                     : r[i].p.offset == r[i - 1].p.offset + r[i - 1].p.len);
    }
    for (int i = 0; i < 7; i++) {
        CHECK_RC(read_rec(l, &r[i]), 0);
        CHECK_RC(vlog_check(l, &r[i].p, rec_key(&r[i])), 0);
    }
    CHECK(vlog_active_fid(l) == 1);
    CHECK(vlog_file_size(l, 1) == r[6].p.offset + r[6].p.len);
    CHECK_RC(vlog_sync(l), 0);
    vlog_close(l);
    CHECK(disk_size(fpath(1)) == r[6].p.offset + r[6].p.len);
}

static void test_vlog_batch_append_is_contiguous_and_rolls_over(void)
{
    enum { N = 300 };
    static rec r[N];
    slice keys[N], vals[N];
    vptr ptrs[N];
    char *v = malloc(N * 100);
    vlog *l = open_log(env_posix(), test_tmpdir(), 8192, 0);

    REQUIRE(v != NULL);
    for (int i = 0; i < N; i++) {
        rec_make(&r[i], i, 100);
        fill_value(v + i * 100, 100, r[i].seed);
        keys[i] = rec_key(&r[i]);
        vals[i] = slice_make(v + i * 100, 100);
    }
    REQUIRE_OK(vlog_append_batch(l, keys, vals, N, ptrs));
    for (int i = 0; i < N; i++) {
        r[i].p = ptrs[i];
        CHECK_RC(read_rec(l, &r[i]), 0);
        if (i > 0 && ptrs[i].fid == ptrs[i - 1].fid)
            CHECK(ptrs[i].offset == ptrs[i - 1].offset + ptrs[i - 1].len);
        if (i > 0 && ptrs[i].fid != ptrs[i - 1].fid)
            CHECK(ptrs[i].fid == ptrs[i - 1].fid + 1 && ptrs[i].offset == VLOG_HEADER_LEN);
        CHECK(ptrs[i].offset + ptrs[i].len <= 8192);
    }
    CHECK(ptrs[N - 1].fid >= 4);
    /* A bad record anywhere in a batch: nothing is written. */
    keys[5] = slice_make("k", 1);
    CHECK_RC(vlog_append_batch(l, keys, vals, N, ptrs), STOAT_EINVAL);
    CHECK(ptrs[0].fid == 0 && ptrs[0].len == 0);
    CHECK(vlog_file_size(l, r[N - 1].p.fid) == r[N - 1].p.offset + r[N - 1].p.len);
    vlog_close(l);
    free(v);
}

static void test_vlog_rollover_at_file_size(void)
{
    uint32_t *fids;
    size_t n;
    rec r[41];
    vlog *l = open_log(env_posix(), test_tmpdir(), 4096, 0);

    for (int i = 0; i < 40; i++) {
        rec_make(&r[i], i, 500);
        append_rec(l, &r[i]);
    }
    rec_make(&r[40], 40, 10000);   /* larger than a file: a file of its own */
    append_rec(l, &r[40]);
    REQUIRE_OK(vlog_files(l, &fids, &n));
    REQUIRE(n >= 6);
    for (size_t i = 0; i < n; i++) {
        CHECK(fids[i] == i + 1);
        if (i + 1 < n)
            CHECK(vlog_file_size(l, fids[i]) <= 4096);
    }
    CHECK(fids[n - 1] == vlog_active_fid(l));
    CHECK(r[40].p.fid == fids[n - 1] && r[40].p.offset == VLOG_HEADER_LEN);
    CHECK(vlog_file_size(l, fids[n - 1]) > 4096);
    for (int i = 0; i < 41; i++)
        CHECK_RC(read_rec(l, &r[i]), 0);
    free(fids);
    vlog_close(l);
}

static void test_vlog_reopen_reads_everything_and_continues_newest(void)
{
    rec r[30];
    vlog *l = open_log(env_posix(), test_tmpdir(), 4096, 0);

    for (int i = 0; i < 20; i++) {
        rec_make(&r[i], i, 300);
        append_rec(l, &r[i]);
    }
    vlog_close(l);
    l = open_log(env_posix(), test_tmpdir(), 4096, 0);
    CHECK(vlog_active_fid(l) == r[19].p.fid);
    for (int i = 0; i < 20; i++)
        CHECK_RC(read_rec(l, &r[i]), 0);
    rec_make(&r[20], 20, 10);
    append_rec(l, &r[20]);
    CHECK(r[20].p.fid == r[19].p.fid && r[20].p.offset == r[19].p.offset + r[19].p.len);
    vlog_close(l);
    /* A full newest file: the reopened log starts a new one. */
    l = open_log(env_posix(), test_tmpdir(), r[20].p.offset + r[20].p.len, 0);
    CHECK(vlog_active_fid(l) == r[20].p.fid + 1);
    rec_make(&r[21], 21, 10);
    append_rec(l, &r[21]);
    CHECK(r[21].p.fid == r[20].p.fid + 1);
    for (int i = 0; i < 22; i++)
        CHECK_RC(read_rec(l, &r[i]), 0);
    vlog_close(l);
}

static void test_vlog_empty_dir_and_rotate(void)
{
    uint32_t *fids;
    size_t n;
    rec r[2];
    vlog *l = open_log(env_posix(), test_tmpdir(), 0, 0);

    REQUIRE_OK(vlog_files(l, &fids, &n));
    CHECK(n == 0 && fids == NULL);
    CHECK_RC(vlog_rotate(l), 0);    /* nothing to seal */
    CHECK(vlog_active_fid(l) == 0);
    CHECK(env_exists(env_posix(), fpath(1)) == 0);
    rec_make(&r[0], 0, 50);
    append_rec(l, &r[0]);
    CHECK_RC(vlog_rotate(l), 0);
    CHECK(vlog_active_fid(l) == 2);
    CHECK_RC(vlog_rotate(l), 0);    /* the new file is empty: kept */
    CHECK(vlog_active_fid(l) == 2);
    rec_make(&r[1], 1, 50);
    append_rec(l, &r[1]);
    CHECK(r[1].p.fid == 2);
    CHECK_RC(vlog_sync(l), 0);
    vlog_close(l);
    CHECK(disk_size(fpath(2)) == r[1].p.offset + r[1].p.len);
}

/* Three small records in 000001.vlog; returns the file's bytes. */
static void three_records(rec *r, buf *file)
{
    vlog *l = open_log(env_posix(), test_tmpdir(), 0, 0);

    for (int i = 0; i < 3; i++) {
        rec_make(&r[i], i, 40);
        append_rec(l, &r[i]);
    }
    vlog_close(l);
    file_get(fpath(1), file);
}

static void test_vlog_torn_tail_at_every_byte_is_truncated(void)
{
    rec r[4];
    buf file = {0};
    uint64_t start;

    three_records(r, &file);
    start = r[2].p.offset;
    for (uint64_t cut = start; cut < file.len; cut++) {
        vlog *l;

        file_put(fpath(1), file.data, (size_t)cut);
        l = open_log(env_posix(), test_tmpdir(), 0, 0);
        CHECK(vlog_file_size(l, 1) == start);
        CHECK_RC(read_rec(l, &r[0]), 0);
        CHECK_RC(read_rec(l, &r[1]), 0);
        CHECK_RC(read_rec(l, &r[2]), STOAT_ECORRUPT);
        rec_make(&r[3], 3, 25);
        append_rec(l, &r[3]);
        CHECK(r[3].p.fid == 1 && r[3].p.offset == start);
        CHECK_RC(read_rec(l, &r[3]), 0);
        vlog_close(l);
        CHECK(disk_size(fpath(1)) == start + r[3].p.len);
    }
    buf_free(&file);
}

static void test_vlog_zero_tail_and_bad_last_checksum_are_torn(void)
{
    rec r[3];
    buf file = {0}, zeros = {0};
    vlog *l;

    three_records(r, &file);
    /* Zeros after the last record (power loss after the size grew). */
    REQUIRE_OK(buf_append(&zeros, file.data, file.len));
    for (int i = 0; i < 100; i++)
        REQUIRE_OK(buf_put_byte(&zeros, 0));
    file_put(fpath(1), zeros.data, zeros.len);
    l = open_log(env_posix(), test_tmpdir(), 0, 0);
    CHECK(vlog_file_size(l, 1) == file.len);
    for (int i = 0; i < 3; i++)
        CHECK_RC(read_rec(l, &r[i]), 0);
    vlog_close(l);
    CHECK(disk_size(fpath(1)) == file.len);
    /* The last record fails its checksum and ends at end of file. */
    file.data[file.len - 1] ^= 1;
    file_put(fpath(1), file.data, file.len);
    l = open_log(env_posix(), test_tmpdir(), 0, 0);
    CHECK(vlog_file_size(l, 1) == r[2].p.offset);
    CHECK_RC(read_rec(l, &r[1]), 0);
    CHECK_RC(read_rec(l, &r[2]), STOAT_ECORRUPT);
    vlog_close(l);
    buf_free(&file);
    buf_free(&zeros);
}

static void test_vlog_read_only_leaves_torn_tail_alone(void)
{
    rec r[3];
    buf file = {0}, after = {0};
    vptr p;
    vlog *l;

    three_records(r, &file);
    file_put(fpath(1), file.data, file.len - 5);
    l = open_log(env_posix(), test_tmpdir(), 0, 1);
    CHECK(vlog_active_fid(l) == 1);
    CHECK(vlog_file_size(l, 1) == r[2].p.offset);
    CHECK_RC(read_rec(l, &r[1]), 0);
    CHECK_RC(read_rec(l, &r[2]), STOAT_ECORRUPT);
    CHECK_RC(vlog_append(l, rec_key(&r[0]), slice_make("x", 1), &p), STOAT_EREADONLY);
    CHECK_RC(vlog_rotate(l), STOAT_EREADONLY);
    CHECK_RC(vlog_remove_file(l, 1), STOAT_EREADONLY);
    CHECK_RC(vlog_sync(l), 0);
    vlog_close(l);
    file_get(fpath(1), &after);
    CHECK(after.len == file.len - 5 && memcmp(after.data, file.data, after.len) == 0);
    buf_free(&file);
    buf_free(&after);
}

static void test_vlog_flipped_byte_in_middle_record(void)
{
    rec r[5];
    uint64_t size;
    int n = 0;
    vlog *l = open_log(env_posix(), test_tmpdir(), 0, 0);

    for (int i = 0; i < 5; i++) {
        rec_make(&r[i], i, 64);
        append_rec(l, &r[i]);
    }
    CHECK_RC(read_rec(l, &r[2]), 0);
    vlog_close(l);
    size = disk_size(fpath(1));
    flip_byte(fpath(1), r[2].p.offset + VLOG_REC_HEADER_LEN + r[2].klen + 10);
    l = open_log(env_posix(), test_tmpdir(), 0, 0);
    CHECK(vlog_file_size(l, 1) == size);    /* damage in the middle is not cut off */
    for (int i = 0; i < 5; i++)
        CHECK_RC(read_rec(l, &r[i]), i == 2 ? STOAT_ECORRUPT : 0);
    CHECK(strstr(status_msg(), "000001.vlog") != NULL);
    CHECK_RC(vlog_check(l, &r[2].p, rec_key(&r[2])), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "key000002") != NULL);
    CHECK(strstr(status_msg(), "checksum") != NULL);
    CHECK_RC(vlog_rotate(l), 0);
    CHECK_RC(vlog_scan(l, 1, count_fn, &n), STOAT_ECORRUPT);
    CHECK(n == 2);
    vlog_close(l);
    CHECK(disk_size(fpath(1)) == size);
}

static void test_vlog_flipped_record_header_seals_file_as_is(void)
{
    rec r[6];
    uint64_t size;
    vlog *l = open_log(env_posix(), test_tmpdir(), 0, 0);

    for (int i = 0; i < 5; i++) {
        rec_make(&r[i], i, 64);
        append_rec(l, &r[i]);
    }
    vlog_close(l);
    size = disk_size(fpath(1));
    flip_byte(fpath(1), r[2].p.offset + 1);     /* key_len: the chain breaks */
    l = open_log(env_posix(), test_tmpdir(), 0, 0);
    CHECK(vlog_file_size(l, 1) == size);
    CHECK(vlog_active_fid(l) == 2);
    for (int i = 0; i < 5; i++)
        CHECK_RC(read_rec(l, &r[i]), i == 2 ? STOAT_ECORRUPT : 0);
    CHECK(strstr(status_msg(), "header") != NULL);
    rec_make(&r[5], 5, 10);
    append_rec(l, &r[5]);
    CHECK(r[5].p.fid == 2);
    CHECK_RC(vlog_scan(l, 1, count_fn, &(int){0}), STOAT_ECORRUPT);
    vlog_close(l);
    CHECK(disk_size(fpath(1)) == size);
}

static void test_vlog_bad_pointers_are_corruption(void)
{
    rec r[3], other;
    buf out = {0};
    vlog *l = open_log(env_posix(), test_tmpdir(), 0, 0);
    uint64_t size;

    for (int i = 0; i < 3; i++) {
        rec_make(&r[i], i, 64);
        append_rec(l, &r[i]);
    }
    size = vlog_file_size(l, 1);
    struct {
        uint64_t offset;
        uint32_t len;
        const char *msg;
    } bad[] = {
        {size, r[0].p.len, "past the end"},
        {r[2].p.offset + 1, r[2].p.len, "past the end"},
        {UINT64_MAX - 3, r[0].p.len, "past the end"},
        {0, r[0].p.len, "past the end"},
        {r[1].p.offset, 5, "length"},
        {r[1].p.offset, r[1].p.len + 1, "pointer says"},
        {r[1].p.offset, r[1].p.len - 1, "pointer says"},
        {r[1].p.offset + 1, r[1].p.len, "header"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vptr p = {1, bad[i].offset, bad[i].len};
        REQUIRE_OK(buf_append(&out, "junk", 4));
        CHECK_RC(vlog_read(l, &p, rec_key(&r[1]), &out), STOAT_ECORRUPT);
        CHECK(out.len == 0);
        CHECK(strstr(status_msg(), bad[i].msg) != NULL);
        CHECK(strstr(status_msg(), "\"key000001\"@2") != NULL);
        CHECK_RC(vlog_check(l, &p, rec_key(&r[1])), STOAT_ECORRUPT);
    }
    /* The right place, another key (another version of it, even). */
    rec_make(&other, 1, 64);
    other.klen = ikey_encode(other.key, "key000001", 9, 99);
    other.p = r[1].p;
    CHECK_RC(read_rec(l, &other), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "holds key \"key000001\"@2") != NULL);
    /* A file that does not exist. */
    other = r[1];
    other.p.fid = 7;
    CHECK_RC(read_rec(l, &other), STOAT_ENOTFOUND);
    CHECK(strstr(status_msg(), "000007.vlog") != NULL);
    CHECK_RC(vlog_check(l, &other.p, rec_key(&other)), STOAT_ENOTFOUND);
    buf_free(&out);
    vlog_close(l);
}

static void test_vlog_append_rejects_bad_records(void)
{
    char k[16];
    char v[1] = {0};
    vptr p = {9, 9, 9};
    vlog *l = open_log(env_posix(), test_tmpdir(), 0, 0);
    slice ik = slice_make(k, ikey_encode(k, "a", 1, 1));

    CHECK_RC(vlog_append(l, slice_make(k, 7), slice_make(v, 1), &p), STOAT_EINVAL);
    CHECK(p.fid == 0 && p.offset == 0 && p.len == 0);
    CHECK_RC(vlog_append(l, slice_make(k, VLOG_MAX_KEY_LEN + 1), slice_make(v, 1), &p),
             STOAT_ETOOBIG);
    /* Checked before a byte is read, so the bogus length is safe here. */
    CHECK_RC(vlog_append(l, ik, slice_make(v, STOAT_MAX_VALUE_SIZE + 1ull), &p), STOAT_ETOOBIG);
    CHECK(vlog_active_fid(l) == 0);
    vlog_close(l);
}

typedef struct scan_seen {
    const rec *want;
    int n;
    int bad;
    int stop_at;
} scan_seen;

static int scan_fn(void *arg, const vptr *p, slice ikey, slice value)
{
    scan_seen *s = arg;
    const rec *w = &s->want[s->n];
    char v[300];

    if (s->stop_at && s->n == s->stop_at)
        return 7;
    fill_value(v, w->vlen, w->seed);
    if (p->fid != w->p.fid || p->offset != w->p.offset || p->len != w->p.len ||
        ikey.len != w->klen || memcmp(ikey.data, w->key, w->klen) != 0 ||
        value.len != w->vlen || memcmp(value.data, v, w->vlen) != 0)
        s->bad++;
    s->n++;
    return 0;
}

static void test_vlog_scan_sealed_files(void)
{
    rec r[40];
    int first[10] = {0}, nfiles = 0;
    vlog *l = open_log(env_posix(), test_tmpdir(), 2048, 0);

    for (int i = 0; i < 40; i++) {
        rec_make(&r[i], i, (size_t)(i * 7 % 300));
        append_rec(l, &r[i]);
        if (i == 0 || r[i].p.fid != r[i - 1].p.fid)
            first[nfiles++] = i;
        REQUIRE(nfiles < 10);
    }
    CHECK_RC(vlog_scan(l, r[39].p.fid, scan_fn, &(scan_seen){r, 0, 0, 0}), STOAT_EINVAL);
    REQUIRE_OK(vlog_rotate(l));
    first[nfiles] = 40;
    for (int f = 0; f < nfiles; f++) {
        scan_seen s = {r + first[f], 0, 0, 0};
        CHECK_RC(vlog_scan(l, r[first[f]].p.fid, scan_fn, &s), 0);
        CHECK(s.n == first[f + 1] - first[f] && s.bad == 0);
    }
    CHECK_RC(vlog_scan(l, 1, scan_fn, &(scan_seen){r, 0, 0, 2}), 7);
    CHECK_RC(vlog_scan(l, 99, scan_fn, &(scan_seen){r, 0, 0, 0}), STOAT_ENOTFOUND);
    vlog_close(l);
}

static void test_vlog_file_headers(void)
{
    char h[VLOG_HEADER_LEN];
    rec r[2];
    vlog *l = open_log(env_posix(), test_tmpdir(), 0, 0);

    rec_make(&r[0], 0, 20);
    append_rec(l, &r[0]);
    vlog_close(l);
    /* The newest file cut inside its header: rewritten, appends go there. */
    put_fixed64(h, VLOG_MAGIC);
    put_fixed32(h + 8, VLOG_FORMAT_VERSION);
    put_fixed32(h + 12, 2);
    file_put(fpath(2), h, 5);
    l = open_log(env_posix(), test_tmpdir(), 0, 0);
    CHECK(vlog_active_fid(l) == 2 && vlog_file_size(l, 2) == VLOG_HEADER_LEN);
    rec_make(&r[1], 1, 20);
    append_rec(l, &r[1]);
    CHECK(r[1].p.fid == 2 && r[1].p.offset == VLOG_HEADER_LEN);
    CHECK_RC(read_rec(l, &r[0]), 0);
    vlog_close(l);
    /* An older file that never got its header holds no records. */
    file_put(fpath(1), "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
    l = open_log(env_posix(), test_tmpdir(), 0, 0);
    CHECK_RC(vlog_scan(l, 1, count_fn, &(int){0}), 0);
    CHECK_RC(read_rec(l, &r[0]), STOAT_ECORRUPT);
    CHECK_RC(read_rec(l, &r[1]), 0);
    vlog_close(l);
    /* A header naming another file; a newer format version. */
    put_fixed32(h + 12, 5);
    file_put(fpath(1), h, sizeof(h));
    CHECK_RC(vlog_open(env_posix(), test_tmpdir(), NULL, &l), STOAT_ECORRUPT);
    CHECK(l == NULL && strstr(status_msg(), "000001.vlog") != NULL);
    put_fixed32(h + 8, VLOG_FORMAT_VERSION + 1);
    put_fixed32(h + 12, 1);
    file_put(fpath(1), h, sizeof(h));
    CHECK_RC(vlog_open(env_posix(), test_tmpdir(), NULL, &l), STOAT_ENOTSUP);
    file_put(fpath(1), "garbage garbage garbage", 23);
    CHECK_RC(vlog_open(env_posix(), test_tmpdir(), NULL, &l), STOAT_ECORRUPT);
}

static void test_vlog_ignores_other_names(void)
{
    const char *names[] = {"1.vlog", "0000001.vlog", "000003.vlog.tmp", "abc.vlog",
                           "000000.vlog", "99999999999.vlog", "000004.sst"};
    uint32_t *fids;
    size_t n;
    vlog *l;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *p = env_join(test_tmpdir(), names[i]);
        file_put(p, "x", 1);
        free(p);
    }
    l = open_log(env_posix(), test_tmpdir(), 0, 0);
    REQUIRE_OK(vlog_files(l, &fids, &n));
    CHECK(n == 0);
    free(fids);
    vlog_close(l);
    {
        char *p = vlog_path("d", 7), *q = vlog_path("d", 1234567);
        REQUIRE(p != NULL && q != NULL);
        CHECK(strcmp(p, "d/000007.vlog") == 0 && strcmp(q, "d/1234567.vlog") == 0);
        free(p);
        free(q);
    }
}

int main(int argc, char **argv)
{
    TEST_RUN(test_vlog_round_trip_empty_small_and_large_values);
    TEST_RUN(test_vlog_batch_append_is_contiguous_and_rolls_over);
    TEST_RUN(test_vlog_rollover_at_file_size);
    TEST_RUN(test_vlog_reopen_reads_everything_and_continues_newest);
    TEST_RUN(test_vlog_empty_dir_and_rotate);
    TEST_RUN(test_vlog_torn_tail_at_every_byte_is_truncated);
    TEST_RUN(test_vlog_zero_tail_and_bad_last_checksum_are_torn);
    TEST_RUN(test_vlog_read_only_leaves_torn_tail_alone);
    TEST_RUN(test_vlog_flipped_byte_in_middle_record);
    TEST_RUN(test_vlog_flipped_record_header_seals_file_as_is);
    TEST_RUN(test_vlog_bad_pointers_are_corruption);
    TEST_RUN(test_vlog_append_rejects_bad_records);
    TEST_RUN(test_vlog_scan_sealed_files);
    TEST_RUN(test_vlog_file_headers);
    TEST_RUN(test_vlog_ignores_other_names);
    return test_summary();
}
