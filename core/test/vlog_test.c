/*
 * vlog_test.c - the value log: round trips (empty and multi-MiB values,
 * batches), rollover, reopen, torn tails at every byte, corruption in the
 * middle, bad pointers, scans, removal while a read is in flight, the
 * bound on open files, failed appends and syncs, concurrent readers, and
 * power loss at random points under the fault env.
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

/* One record a test wrote: internal key, how to rebuild its value, where. */
typedef struct rec {
    char key[40];
    size_t klen;
    size_t vlen;
    uint64_t seed;
    vptr p;
} rec;

static void fill_value(char *dst, size_t len, uint64_t seed)
{
    uint64_t s = seed | 1;

    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0)
            s = s * 6364136223846793005ull + 1442695040888963407ull;
        dst[i] = (char)(s >> (8 * (i % 8)));
    }
}

static void rec_make(rec *r, int i, size_t vlen)
{
    char ukey[24];
    int n = snprintf(ukey, sizeof(ukey), "key%06d", i);

    memset(r, 0, sizeof(*r));
    r->klen = ikey_encode(r->key, ukey, (size_t)n, (uint64_t)i + 1);
    r->vlen = vlen;
    r->seed = (uint64_t)i * 7919 + 17;
}

static slice rec_key(const rec *r)
{
    return slice_make(r->key, r->klen);
}

static void append_rec(vlog *l, rec *r)
{
    char *v = malloc(r->vlen ? r->vlen : 1);

    REQUIRE(v != NULL);
    fill_value(v, r->vlen, r->seed);
    CHECK_RC(vlog_append(l, rec_key(r), slice_make(v, r->vlen), &r->p), 0);
    free(v);
}

/* 0 when the record reads back intact, 1 when it reads wrong bytes, else
 * the error. */
static int read_rec(vlog *l, const rec *r)
{
    buf out = {0};
    char *want = malloc(r->vlen ? r->vlen : 1);
    int rc;

    if (want == NULL)   /* no REQUIRE: reader threads call this */
        return STOAT_ENOMEM;
    fill_value(want, r->vlen, r->seed);
    rc = vlog_read(l, &r->p, rec_key(r), &out);
    if (rc == 0 && (out.len != r->vlen || (r->vlen && memcmp(out.data, want, r->vlen) != 0)))
        rc = 1;
    if (rc != 0 && out.len != 0)
        rc = 2;     /* a failed read must leave nothing behind */
    buf_free(&out);
    free(want);
    return rc;
}

static const char *fpath(int fid)
{
    static char path[4096];

    snprintf(path, sizeof(path), "%s/%06d.vlog", test_tmpdir(), fid);
    return path;
}

static void file_get(const char *path, buf *out)
{
    char *data;
    size_t len;

    REQUIRE_OK(env_read_all(env_posix(), path, &data, &len));
    buf_reset(out);
    REQUIRE_OK(buf_append(out, data, len));
    free(data);
}

static void file_put(const char *path, const void *data, size_t len)
{
    env_file *f;

    REQUIRE_OK(env_open(env_posix(), path, ENV_WRITE | ENV_TRUNC, &f));
    if (len > 0)
        REQUIRE_OK(env_append(f, data, len));
    REQUIRE_OK(env_close(f));
}

static void flip_byte(const char *path, uint64_t off)
{
    buf b = {0};

    file_get(path, &b);
    REQUIRE(off < b.len);
    b.data[off] ^= 0x40;
    file_put(path, b.data, b.len);
    buf_free(&b);
}

static uint64_t disk_size(const char *path)
{
    buf b = {0};
    uint64_t n;

    file_get(path, &b);
    n = b.len;
    buf_free(&b);
    return n;
}

static vlog *open_log(env *e, const char *dir, uint64_t file_size, int read_only)
{
    vlog_options o = {0};
    vlog *l = NULL;

    o.file_size = file_size;
    o.read_only = read_only;
    REQUIRE_OK(vlog_open(e, dir, &o, &l));
    return l;
}

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

static int count_fn(void *arg, const vptr *p, slice ikey, slice value)
{
    (void)p;
    (void)ikey;
    (void)value;
    ++*(int *)arg;
    return 0;
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

/* The read hook blocks a read of `fid` until released. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t fid;
    int entered, released;
} gate;

static void gate_hook(void *arg, uint32_t fid)
{
    gate *g = arg;

    if (fid != g->fid)
        return;
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->released)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

/* Wait until the gated read is inside vlog_read, with its file pinned. */
static void gate_wait_entered(gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_release(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->released = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

typedef struct reader_arg {
    vlog *l;
    const rec *r;
    int rc;
} reader_arg;

static void *reader_main(void *arg)
{
    reader_arg *a = arg;

    a->rc = read_rec(a->l, a->r);
    return NULL;
}

static void test_vlog_remove_file_while_a_read_holds_it(void)
{
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0, 0};
    vlog_options o = {0};
    rec r[6];
    reader_arg ra;
    pthread_t t;
    uint32_t *fids;
    size_t n;
    vlog *l;

    o.file_size = 300;
    o.read_hook = gate_hook;
    o.read_hook_arg = &g;
    REQUIRE_OK(vlog_open(env_posix(), test_tmpdir(), &o, &l));
    for (int i = 0; i < 6; i++) {
        rec_make(&r[i], i, 100);
        append_rec(l, &r[i]);
    }
    REQUIRE(r[0].p.fid == 1 && r[5].p.fid > 2);
    ra = (reader_arg){l, &r[0], -99};
    REQUIRE(pthread_create(&t, NULL, reader_main, &ra) == 0);
    gate_wait_entered(&g);
    CHECK_RC(vlog_remove_file(l, 1), 0);
    CHECK(env_exists(env_posix(), fpath(1)) == 1);    /* still being read */
    CHECK_RC(read_rec(l, &r[1]), STOAT_ENOTFOUND);
    CHECK(vlog_file_size(l, 1) == 0);
    CHECK_RC(vlog_remove_file(l, 1), STOAT_ENOTFOUND);
    gate_release(&g);
    pthread_join(t, NULL);
    CHECK_RC(ra.rc, 0);
    CHECK(env_exists(env_posix(), fpath(1)) == 0);    /* the last user unlinked it */
    /* Removing a file nobody reads unlinks it at once; the newest stays. */
    CHECK_RC(vlog_remove_file(l, 2), 0);
    CHECK(env_exists(env_posix(), fpath(2)) == 0);
    CHECK_RC(vlog_remove_file(l, vlog_active_fid(l)), STOAT_EINVAL);
    CHECK_RC(vlog_sync(l), 0);
    REQUIRE_OK(vlog_files(l, &fids, &n));
    CHECK(n > 0 && fids[0] == 3);
    free(fids);
    vlog_close(l);
    /* After a restart: the remaining files, appends continue in the newest. */
    l = open_log(env_posix(), test_tmpdir(), 300, 0);
    CHECK_RC(read_rec(l, &r[5]), 0);
    CHECK(vlog_active_fid(l) == r[5].p.fid);
    vlog_close(l);
}

static void test_vlog_eviction_spares_files_in_use(void)
{
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0, 0};
    vlog_options o = {0};
    reader_arg ra;
    pthread_t t;
    rec r[8];
    vlog *l;

    o.max_open_files = 1;
    o.read_hook = gate_hook;
    o.read_hook_arg = &g;
    REQUIRE_OK(vlog_open(env_posix(), test_tmpdir(), &o, &l));
    for (int i = 0; i < 8; i++) {
        rec_make(&r[i], i, 1000);
        append_rec(l, &r[i]);
        REQUIRE_OK(vlog_rotate(l));
    }
    REQUIRE_OK(vlog_sync(l));   /* sealed files become evictable */
    ra = (reader_arg){l, &r[0], -99};
    REQUIRE(pthread_create(&t, NULL, reader_main, &ra) == 0);
    gate_wait_entered(&g);
    /* Other files go through the one-file LRU while file 1 is pinned. */
    for (int i = 1; i < 8; i++)
        CHECK_RC(read_rec(l, &r[i]), 0);
    CHECK(vlog_open_count(l) <= 2);
    gate_release(&g);
    pthread_join(t, NULL);
    CHECK_RC(ra.rc, 0);
    CHECK(vlog_open_count(l) <= 2);
    for (int i = 0; i < 8; i++)
        CHECK_RC(read_rec(l, &r[i]), 0);
    CHECK(vlog_open_count(l) == 1);
    vlog_close(l);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static void test_vlog_open_files_are_bounded(void)
{
    vlog_options o = {0};
    rec r[12];
    int base;
    vlog *l = open_log(env_posix(), test_tmpdir(), 0, 0);

    for (int i = 0; i < 12; i++) {
        rec_make(&r[i], i, 30);
        append_rec(l, &r[i]);
        REQUIRE_OK(vlog_rotate(l));
    }
    vlog_close(l);
    base = count_fds();
    o.max_open_files = 3;
    REQUIRE_OK(vlog_open(env_posix(), test_tmpdir(), &o, &l));
    CHECK(vlog_open_count(l) <= 3);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 12; i++) {
            CHECK_RC(read_rec(l, &r[i]), 0);
            CHECK(vlog_open_count(l) <= 3);
            if (base >= 0)
                CHECK(count_fds() <= base + 4);     /* 3 sealed + the active file */
        }
    }
    vlog_close(l);
    if (base >= 0)
        CHECK(count_fds() == base);
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

static void test_vlog_failed_append_is_cut_off(void)
{
    env *fe = env_fault_new(env_posix());
    size_t big = 400 << 10;
    rec r[5];
    vlog *l = open_log(fe, test_tmpdir(), 0, 0);
    int n = 0;

    for (int i = 0; i < 2; i++) {
        rec_make(&r[i], i, 50);
        append_rec(l, &r[i]);
    }
    env_fault_fail_append(fe, 1, 28 /* ENOSPC */);
    rec_make(&r[2], 2, 50);
    {
        vptr p;
        char v[50] = {0};
        CHECK_RC(vlog_append(l, rec_key(&r[2]), slice_make(v, 50), &p), STOAT_ENOSPC);
    }
    /* A large record written in pieces, failing after its first piece. */
    env_fault_fail_append(fe, 2, 28);
    {
        vptr p;
        char *v = calloc(1, big);
        REQUIRE(v != NULL);
        CHECK_RC(vlog_append(l, rec_key(&r[2]), slice_make(v, big), &p), STOAT_ENOSPC);
        free(v);
    }
    env_fault_fail_append(fe, 0, 0);
    append_rec(l, &r[2]);
    CHECK(r[2].p.offset == r[1].p.offset + r[1].p.len);
    rec_make(&r[3], 3, big);
    append_rec(l, &r[3]);
    REQUIRE_OK(vlog_rotate(l));
    CHECK_RC(vlog_scan(l, 1, count_fn, &n), 0);
    CHECK(n == 4);
    for (int i = 0; i < 4; i++)
        CHECK_RC(read_rec(l, &r[i]), 0);
    vlog_close(l);
    env_fault_free(fe);
}

static void test_vlog_failed_sync_is_sticky(void)
{
    env *fe = env_fault_new(env_posix());
    rec r[2];
    vlog *l = open_log(fe, test_tmpdir(), 0, 0);

    rec_make(&r[0], 0, 50);
    append_rec(l, &r[0]);
    env_fault_fail_sync(fe, 1);
    CHECK_RC(vlog_sync(l), STOAT_EIO);
    env_fault_fail_sync(fe, 0);
    CHECK_RC(vlog_sync(l), STOAT_EIO);
    {
        vptr p;
        rec_make(&r[1], 1, 50);
        CHECK_RC(vlog_append(l, rec_key(&r[1]), slice_make("v", 1), &p), STOAT_EIO);
        CHECK(strstr(status_msg(), "earlier") != NULL);
    }
    CHECK_RC(vlog_rotate(l), STOAT_EIO);
    CHECK_RC(read_rec(l, &r[0]), 0);    /* reads still work */
    vlog_close(l);
    env_fault_free(fe);
}

/* Power loss at a random point of a random run of appends and syncs. */
static void crash_once(uint64_t *rng, const char *dir)
{
    enum { MAX = 200 };
    env *fe = env_fault_new(env_posix());
    rec *r = calloc(MAX, sizeof(*r));
    int n = 0, synced = 0, ops = 1 + (int)(test_rand(rng) % 80), mode = (int)(test_rand(rng) % 3);
    int crash_at = (int)(test_rand(rng) % (uint64_t)ops);
    vlog *l;

    REQUIRE(r != NULL);
    l = open_log(fe, dir, 1024, 0);
    if (mode == 1)
        env_fault_fail_append(fe, 1 + (long)(test_rand(rng) % 40), 28);
    if (mode == 2)
        env_fault_fail_sync(fe, 1 + (long)(test_rand(rng) % 8));
    for (int op = 0; op < ops && n < MAX; op++) {
        if (op == crash_at)
            env_fault_crash(fe);
        if (test_rand(rng) % 5 == 0) {
            if (vlog_sync(l) == 0)
                synced = n;
        } else {
            vptr p;
            char v[700];
            rec_make(&r[n], n, (size_t)(test_rand(rng) % 700));
            fill_value(v, r[n].vlen, r[n].seed);
            if (vlog_append(l, rec_key(&r[n]), slice_make(v, r[n].vlen), &p) == 0)
                r[n++].p = p;
        }
    }
    vlog_close(l);
    REQUIRE_OK(env_fault_drop_unsynced(fe));
    l = open_log(fe, dir, 1024, 0);
    for (int i = 0; i < synced; i++)
        CHECK_RC(read_rec(l, &r[i]), 0);
    rec_make(&r[0], 1000, 123);
    append_rec(l, &r[0]);
    CHECK_RC(read_rec(l, &r[0]), 0);
    REQUIRE_OK(vlog_rotate(l));
    for (uint32_t fid = 1; fid < vlog_active_fid(l); fid++)
        if (vlog_file_size(l, fid) > 0)
            CHECK_RC(vlog_scan(l, fid, count_fn, &(int){0}), 0);
    vlog_close(l);
    env_fault_free(fe);
    free(r);
}

static void test_vlog_power_loss_keeps_synced_records(void)
{
    uint64_t rng = 0x5eed;

    for (int i = 0; i < 100; i++) {
        char name[32];
        char *dir;

        snprintf(name, sizeof(name), "run%03d", i);
        REQUIRE((dir = env_join(test_tmpdir(), name)) != NULL);
        REQUIRE_OK(env_mkdir(env_posix(), dir));
        crash_once(&rng, dir);
        free(dir);
        if (test_failed_now)
            break;
    }
}

typedef struct shared {
    pthread_mutex_t mu;
    rec *r;
    int n, done, wrong;
    vlog *l;
} shared;

static void *concurrent_reader(void *arg)
{
    shared *s = arg;
    uint64_t rng = (uint64_t)(uintptr_t)arg ^ 0x1234;

    for (;;) {
        int n, done;
        rec r;
        pthread_mutex_lock(&s->mu);
        n = s->n;
        done = s->done;
        if (n > 0)
            r = s->r[test_rand(&rng) % (uint64_t)n];
        pthread_mutex_unlock(&s->mu);
        if (n > 0 && read_rec(s->l, &r) != 0) {
            pthread_mutex_lock(&s->mu);
            s->wrong++;
            pthread_mutex_unlock(&s->mu);
        }
        if (done)
            return NULL;
    }
}

static void test_vlog_concurrent_reads_during_appends(void)
{
    enum { N = 3000 };
    shared s = {PTHREAD_MUTEX_INITIALIZER, calloc(N, sizeof(rec)), 0, 0, 0, NULL};
    pthread_t t[3];
    vlog_options o = {0};

    REQUIRE(s.r != NULL);
    o.file_size = 32 << 10;
    o.max_open_files = 2;
    REQUIRE_OK(vlog_open(env_posix(), test_tmpdir(), &o, &s.l));
    for (int i = 0; i < 3; i++)
        REQUIRE(pthread_create(&t[i], NULL, concurrent_reader, &s) == 0);
    for (int i = 0; i < N; i++) {
        rec x;
        rec_make(&x, i, (size_t)(i * 37 % 2000));
        append_rec(s.l, &x);
        pthread_mutex_lock(&s.mu);
        s.r[s.n++] = x;
        pthread_mutex_unlock(&s.mu);
    }
    pthread_mutex_lock(&s.mu);
    s.done = 1;
    pthread_mutex_unlock(&s.mu);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    CHECK(s.wrong == 0);
    CHECK(vlog_active_fid(s.l) > 10);
    vlog_close(s.l);
    free(s.r);
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
    TEST_RUN(test_vlog_remove_file_while_a_read_holds_it);
    TEST_RUN(test_vlog_eviction_spares_files_in_use);
    TEST_RUN(test_vlog_open_files_are_bounded);
    TEST_RUN(test_vlog_file_headers);
    TEST_RUN(test_vlog_ignores_other_names);
    TEST_RUN(test_vlog_failed_append_is_cut_off);
    TEST_RUN(test_vlog_failed_sync_is_sticky);
    TEST_RUN(test_vlog_power_loss_keeps_synced_records);
    TEST_RUN(test_vlog_concurrent_reads_during_appends);
    return test_summary();
}
