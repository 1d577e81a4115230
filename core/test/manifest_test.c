/*
 * manifest_test.c - MANIFEST create/append/reopen round trips, rewrites,
 * torn tails, corruption (damaged record headers above all), and failed
 * writes under env_fault.
 */
#include "base/ikey.h"
#include "lsm/manifest.h"
#include "base/checksum.h"
#include "base/coding.h"
#include "base/status.h"
#include "log/wal.h"
#include "support/env_fault.h"
#include "test.h"

#define NL 4
#define HDR WAL_RECORD_HEADER_LEN   /* a MANIFEST record header */

static table_meta *mk(uint64_t id, const char *lo, const char *hi, size_t pad)
{
    char a[2048], b[2048];
    size_t la = strlen(lo), lb = strlen(hi);
    table_meta *t;

    /* pad makes big keys (to reach the rewrite threshold quickly). */
    memset(a, 'k', sizeof(a));
    memset(b, 'k', sizeof(b));
    memcpy(a, lo, la);
    memcpy(b, hi, lb);
    ikey_encode(a, a, la + pad, id * 10);
    ikey_encode(b, b, lb + pad, id);
    t = table_meta_new(id, 100 * id, slice_make(a, la + pad + 8), slice_make(b, lb + pad + 8));
    if (t != NULL) {
        t->num_entries = id + 1;
        t->num_deletions = id / 2;
        t->min_version = id;
        t->max_version = id * 10;
    }
    return t;
}

static char *path_of(const char *name)
{
    static char p[4096];

    snprintf(p, sizeof(p), "%s/%s", test_tmpdir(), name);
    return p;
}

static uint64_t file_size(const char *name)
{
    char *data = NULL;
    size_t len = 0;

    if (env_read_all(env_posix(), path_of(name), &data, &len) != 0)
        return UINT64_MAX;
    free(data);
    return len;
}

static int append_raw(const void *p, size_t n)
{
    env_file *f = NULL;
    int rc = env_open(env_posix(), path_of("MANIFEST"), ENV_WRITE, &f);

    if (rc == 0)
        rc = env_append(f, p, n);
    env_close(f);
    return rc;
}

/* XORs the byte at off with x. */
static void flip(uint64_t off, int x)
{
    char *data = NULL;
    size_t len = 0;

    REQUIRE_OK(env_read_all(env_posix(), path_of("MANIFEST"), &data, &len));
    REQUIRE(off < len);
    data[off] ^= (char)x;
    REQUIRE_OK(env_write_atomic(env_posix(), test_tmpdir(), path_of("MANIFEST"), data, len));
    free(data);
}

/* Logs e and applies it to *v, as the database does. */
static int log_apply(manifest *m, lsm_view **v, lsm_edit *e)
{
    lsm_view *nv = NULL;
    int rc = manifest_append(m, *v, e);

    if (rc == 0 && (rc = lsm_view_apply(*v, NL, e, &nv)) == 0) {
        lsm_view_unref(*v);
        *v = nv;
    }
    lsm_edit_free(e);
    return rc;
}

static int add_one(manifest *m, lsm_view **v, int level, table_meta *t)
{
    lsm_edit e;
    int rc;

    lsm_edit_init(&e);
    rc = t == NULL ? STOAT_ENOMEM : lsm_edit_add(&e, level, t);
    table_meta_unref(t);
    if (rc != 0) {
        lsm_edit_free(&e);
        return rc;
    }
    return log_apply(m, v, &e);
}

static int same_table(const table_meta *a, const table_meta *b)
{
    return a->id == b->id && a->file_size == b->file_size &&
           a->num_entries == b->num_entries && a->num_deletions == b->num_deletions &&
           a->min_version == b->min_version && a->max_version == b->max_version &&
           a->num_stale == b->num_stale && a->stale_version == b->stale_version &&
           a->smallest.len == b->smallest.len && a->largest.len == b->largest.len &&
           memcmp(a->smallest.data, b->smallest.data, a->smallest.len) == 0 &&
           memcmp(a->largest.data, b->largest.data, a->largest.len) == 0;
}

static int same_version(const lsm_view *a, const lsm_view *b)
{
    if (a->num_levels != b->num_levels)
        return 0;
    for (int l = 0; l < a->num_levels; l++) {
        if (a->n[l] != b->n[l])
            return 0;
        for (size_t i = 0; i < a->n[l]; i++)
            if (!same_table(a->tables[l][i], b->tables[l][i]))
                return 0;
    }
    return 1;
}

/* A MANIFEST with two single-table edits; *v mirrors it. */
static manifest *two_edits(lsm_view **v)
{
    manifest_state st = {5, 1, 7};
    manifest *m = NULL;

    *v = lsm_view_new_empty(NL);
    if (*v == NULL || manifest_create(env_posix(), test_tmpdir(), NL, &st, &m) != 0 ||
        add_one(m, v, 0, mk(10, "a", "m", 0)) != 0 || add_one(m, v, 1, mk(11, "c", "d", 0)) != 0) {
        manifest_close(m);
        return NULL;
    }
    return m;
}

static void test_manifest_round_trip(void)
{
    manifest_state st = {5, 1, 7}, st2;
    manifest *m = NULL, *m2 = NULL;
    lsm_view *v = lsm_view_new_empty(NL), *v2 = NULL;
    lsm_edit e;

    REQUIRE(v != NULL);
    REQUIRE_OK(manifest_create(env_posix(), test_tmpdir(), NL, &st, &m));
    REQUIRE_OK(add_one(m, &v, 0, mk(10, "a", "m", 0)));
    REQUIRE_OK(add_one(m, &v, 2, mk(11, "c", "d", 0)));
    lsm_edit_init(&e);
    e.has_next_file_id = e.has_log_number = e.has_last_version = 1;
    e.next_file_id = 20;
    e.log_number = 9;
    e.last_version = 3;     /* lower than before: the maximum stays */
    REQUIRE_OK(lsm_edit_del(&e, 0, 10));
    REQUIRE(v->tables[2][0]->id == 11);
    REQUIRE_OK(lsm_edit_del(&e, 2, 11));
    REQUIRE_OK(lsm_edit_add(&e, 3, v->tables[2][0]));
    table_meta *t = mk(12, "x", "z", 0);
    REQUIRE(t != NULL);
    REQUIRE_OK(lsm_edit_add(&e, 1, t));
    table_meta_unref(t);
    REQUIRE_OK(log_apply(m, &v, &e));
    CHECK(manifest_size(m) == file_size("MANIFEST"));
    manifest_close(m);

    REQUIRE_OK(manifest_open(env_posix(), test_tmpdir(), NL, 0, &v2, &st2, &m2));
    CHECK(st2.next_file_id == 20 && st2.log_number == 9 && st2.last_version == 7);
    CHECK(v2->n[0] == 0 && v2->n[1] == 1 && v2->n[2] == 0 && v2->n[3] == 1);
    CHECK(same_version(v, v2));
    CHECK(v2->tables[1][0]->on_free == NULL);
    /* Appends go on after a reopen. */
    REQUIRE_OK(add_one(m2, &v2, 0, mk(13, "b", "b", 0)));
    manifest_close(m2);
    lsm_view_unref(v2);
    v2 = NULL;
    REQUIRE_OK(manifest_open(env_posix(), test_tmpdir(), NL, 1, &v2, &st2, &m2));
    CHECK(v2->n[0] == 1 && v2->tables[0][0]->id == 13);
    manifest_close(m2);
    lsm_view_unref(v2);
    lsm_view_unref(v);
}

static void test_manifest_missing_is_not_found(void)
{
    lsm_view *v = NULL;
    manifest_state st;
    manifest *m = NULL;

    CHECK_RC(manifest_open(env_posix(), test_tmpdir(), NL, 0, &v, &st, &m), STOAT_ENOTFOUND);
    CHECK(v == NULL && m == NULL);
}

static void test_manifest_rewrite_keeps_state(void)
{
    manifest_state st = {1, 0, 0}, st2;
    manifest *m = NULL;
    lsm_view *v = lsm_view_new_empty(NL), *v2 = NULL;
    uint64_t appended = 0, prev = 0;
    int rewrites = 0;

    REQUIRE(v != NULL);
    REQUIRE_OK(manifest_create(env_posix(), test_tmpdir(), NL, &st, &m));
    prev = manifest_size(m);
    /* Each edit replaces L1's one big-keyed table: the snapshot stays
     * small while the log grows ~1 KiB an edit. */
    for (uint64_t id = 2; id < 200 && rewrites < 2; id++) {
        lsm_edit e;
        table_meta *t = mk(id, "a", "b", 500);

        lsm_edit_init(&e);
        REQUIRE(t != NULL);
        if (v->n[1])
            REQUIRE_OK(lsm_edit_del(&e, 1, v->tables[1][0]->id));
        REQUIRE_OK(lsm_edit_add(&e, 1, t));
        table_meta_unref(t);
        e.has_next_file_id = 1;
        e.next_file_id = id + 1;
        REQUIRE_OK(log_apply(m, &v, &e));
        REQUIRE(add_one(m, &v, 0, mk(1000 + id, "c", "d", 0)) == 0);
        appended = manifest_size(m);
        rewrites += appended < prev;
        prev = appended;
    }
    CHECK(rewrites == 2);
    CHECK(manifest_size(m) == file_size("MANIFEST"));
    CHECK(manifest_size(m) < 64 * 1024);
    CHECK(file_size("MANIFEST.tmp") == UINT64_MAX);
    manifest_close(m);
    REQUIRE_OK(manifest_open(env_posix(), test_tmpdir(), NL, 0, &v2, &st2, &m));
    CHECK(same_version(v, v2));
    CHECK(st2.next_file_id == v->tables[1][0]->id + 1);
    manifest_close(m);
    lsm_view_unref(v2);
    lsm_view_unref(v);
}

/* Reopens after damage at the tail; checks 2 edits survive and the file
 * is cut back to good_len (or left alone when read_only). */
static void reopen_expect_tail_cut(uint64_t good_len, int read_only)
{
    static uint64_t id = 50;
    uint64_t before = file_size("MANIFEST");
    manifest_state st;
    manifest *m = NULL;
    lsm_view *v = NULL;

    REQUIRE_OK(manifest_open(env_posix(), test_tmpdir(), NL, read_only, &v, &st, &m));
    CHECK(v->n[0] >= 1 && v->n[1] == 1 && v->tables[0][v->n[0] - 1]->id == 10);
    CHECK(manifest_size(m) == good_len);
    CHECK(file_size("MANIFEST") == (read_only ? before : good_len));
    if (read_only)
        CHECK_RC(add_one(m, &v, 2, mk(id, "a", "b", 0)), STOAT_EREADONLY);
    else
        CHECK_RC(add_one(m, &v, 0, mk(id, "a", "b", 0)), 0);
    id++;
    manifest_close(m);
    lsm_view_unref(v);
}

static void test_manifest_torn_tail_is_truncated(void)
{
    lsm_view *v = NULL;
    manifest *m = two_edits(&v);
    uint64_t good;
    char rec[64] = {0};

    REQUIRE(m != NULL);
    good = manifest_size(m);
    manifest_close(m);
    lsm_view_unref(v);

    /* A record cut short: its intact header claims 40 bytes, 10 are there. */
    wal_record_header_encode(rec, rec + HDR, 40);
    REQUIRE_OK(append_raw(rec, HDR + 10));
    reopen_expect_tail_cut(good, 1);
    reopen_expect_tail_cut(good, 0);
}

static void test_manifest_torn_tail_variants(void)
{
    lsm_view *v = NULL;
    manifest *m = two_edits(&v);
    uint64_t good;
    char rec[64] = {0};

    REQUIRE(m != NULL);
    good = manifest_size(m);
    manifest_close(m);
    lsm_view_unref(v);

    REQUIRE_OK(append_raw("\x05\x00\x00", 3));      /* short header */
    reopen_expect_tail_cut(good, 0);
    good = file_size("MANIFEST");

    REQUIRE_OK(append_raw(rec, sizeof(rec)));       /* zero tail */
    reopen_expect_tail_cut(good, 0);
    good = file_size("MANIFEST");

    /* A whole last record whose payload checksum fails. */
    memcpy(rec + HDR, "\x01\x02\x03\x04", 4);
    wal_record_header_encode(rec, rec + HDR, 4);
    rec[HDR + 2] ^= 0x10;
    REQUIRE_OK(append_raw(rec, HDR + 4));
    reopen_expect_tail_cut(good, 0);
}

static void test_manifest_bad_checksum_in_middle_is_corrupt(void)
{
    lsm_view *v = NULL, *v2 = NULL;
    manifest *m = two_edits(&v);
    manifest_state st;
    uint64_t first_edit;
    char *data = NULL, want[64];
    size_t len = 0;

    REQUIRE(m != NULL);
    manifest_close(m);
    lsm_view_unref(v);
    /* The snapshot record of create starts at 16; the first edit follows. */
    REQUIRE_OK(env_read_all(env_posix(), path_of("MANIFEST"), &data, &len));
    first_edit = 16 + HDR + get_fixed32(data + 16);
    free(data);
    flip(first_edit + HDR + 3, 0x40);
    CHECK_RC(manifest_open(env_posix(), test_tmpdir(), NL, 0, &v2, &st, &m), STOAT_ECORRUPT);
    CHECK(v2 == NULL && m == NULL);
    snprintf(want, sizeof(want), "bad checksum at offset %llu", (unsigned long long)first_edit);
    CHECK(strstr(status_msg(), want) != NULL);
    CHECK(strstr(status_msg(), "MANIFEST") != NULL);
}

/*
 * A damaged record header is corruption, in the middle of the file or at
 * its end: a length made to point past end of file must not pass for a
 * torn tail, which would cut off the records after it. The file is left
 * as it was.
 */
static void test_manifest_damaged_record_header_is_corrupt(void)
{
    lsm_view *v = NULL, *v2 = NULL;
    manifest *m = two_edits(&v);
    manifest_state st;
    uint64_t rec[3], size;
    char *data = NULL, want[80];
    size_t len = 0;

    REQUIRE(m != NULL);
    manifest_close(m);
    lsm_view_unref(v);
    REQUIRE_OK(env_read_all(env_posix(), path_of("MANIFEST"), &data, &len));
    rec[0] = 16;
    for (int i = 1; i < 3; i++)
        rec[i] = rec[i - 1] + HDR + get_fixed32(data + rec[i - 1]);
    REQUIRE(rec[2] + HDR + get_fixed32(data + rec[2]) == len);
    free(data);
    size = file_size("MANIFEST");
    for (int r = 1; r < 3; r++) {
        for (uint64_t at = rec[r]; at < rec[r] + HDR; at++) {
            flip(at, 0xff);     /* bytes 1-3: the length now reaches past EOF */
            CHECK_RC(manifest_open(env_posix(), test_tmpdir(), NL, 0, &v2, &st, &m),
                     STOAT_ECORRUPT);
            CHECK(v2 == NULL && m == NULL);
            snprintf(want, sizeof(want), "bad checksum at offset %llu (record header)",
                     (unsigned long long)rec[r]);
            CHECK(strstr(status_msg(), want) != NULL);
            CHECK(file_size("MANIFEST") == size);
            flip(at, 0xff);
        }
    }
    REQUIRE_OK(manifest_open(env_posix(), test_tmpdir(), NL, 1, &v2, &st, &m));
    CHECK(v2->n[0] == 1 && v2->n[1] == 1);
    manifest_close(m);
    lsm_view_unref(v2);
}

static void test_manifest_bad_header(void)
{
    lsm_view *v = NULL;
    manifest *m = two_edits(&v);
    manifest_state st;

    REQUIRE(m != NULL);
    manifest_close(m);
    lsm_view_unref(v);
    v = NULL;
    m = NULL;
    flip(8, 0x02);                                  /* format version 3 */
    CHECK_RC(manifest_open(env_posix(), test_tmpdir(), NL, 0, &v, &st, &m), STOAT_ENOTSUP);
    flip(8, 0x02);
    flip(0, 0x01);                                  /* magic */
    CHECK_RC(manifest_open(env_posix(), test_tmpdir(), NL, 0, &v, &st, &m), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "magic") != NULL);
    CHECK(v == NULL && m == NULL);
}

static void test_manifest_unknown_tag_is_corrupt(void)
{
    lsm_view *v = NULL;
    manifest *m = two_edits(&v);
    manifest_state st;
    char rec[HDR + 2];

    REQUIRE(m != NULL);
    manifest_close(m);
    lsm_view_unref(v);
    v = NULL;
    m = NULL;
    /* Well framed, checksum right, tag 99. */
    rec[HDR] = 99;
    rec[HDR + 1] = 1;
    wal_record_header_encode(rec, rec + HDR, 2);
    REQUIRE_OK(append_raw(rec, sizeof(rec)));
    CHECK_RC(manifest_open(env_posix(), test_tmpdir(), NL, 0, &v, &st, &m), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "unknown tag 99") != NULL);
}

static void test_manifest_refuses_bad_edit(void)
{
    lsm_view *v = NULL;
    manifest *m = two_edits(&v);
    lsm_edit e;
    uint64_t size;

    REQUIRE(m != NULL);
    size = manifest_size(m);
    lsm_edit_init(&e);
    REQUIRE_OK(lsm_edit_del(&e, 2, 10));        /* table 10 is in L0 */
    CHECK_RC(manifest_append(m, v, &e), STOAT_ECORRUPT);
    lsm_edit_free(&e);
    CHECK(manifest_size(m) == size && file_size("MANIFEST") == size);
    /* Overlapping L1 tables are refused too. */
    CHECK_RC(add_one(m, &v, 1, mk(12, "b", "c", 0)), STOAT_ECORRUPT);
    CHECK_RC(add_one(m, &v, 1, mk(13, "e", "f", 0)), 0);
    manifest_close(m);
    lsm_view_unref(v);
}

static void test_manifest_failed_sync_is_sticky(void)
{
    env *fe = env_fault_new(env_posix());
    manifest_state st = {1, 0, 0}, st2;
    manifest *m = NULL;
    lsm_view *v = lsm_view_new_empty(NL), *v2 = NULL;

    REQUIRE(fe != NULL && v != NULL);
    REQUIRE_OK(manifest_create(fe, test_tmpdir(), NL, &st, &m));
    REQUIRE_OK(add_one(m, &v, 0, mk(10, "a", "b", 0)));
    env_fault_fail_sync(fe, 1);
    CHECK(add_one(m, &v, 0, mk(11, "a", "b", 0)) != 0);
    env_fault_fail_sync(fe, 0);
    CHECK(add_one(m, &v, 0, mk(12, "a", "b", 0)) != 0);     /* sticky */
    manifest_close(m);
    /* Power loss: only synced bytes remain. */
    env_fault_crash(fe);
    REQUIRE_OK(env_fault_drop_unsynced(fe));
    REQUIRE_OK(manifest_open(fe, test_tmpdir(), NL, 0, &v2, &st2, &m));
    CHECK(v2->n[0] == 1 && v2->tables[0][0]->id == 10);
    manifest_close(m);
    lsm_view_unref(v2);
    lsm_view_unref(v);
    env_fault_free(fe);
}

static void test_manifest_crash_during_rewrite_keeps_edits(void)
{
    env *fe = env_fault_new(env_posix());
    manifest_state st = {1, 0, 0}, st2;
    manifest *m = NULL;
    lsm_view *v = lsm_view_new_empty(NL), *v2 = NULL;
    uint64_t prev;
    long syncs;

    REQUIRE(fe != NULL && v != NULL);
    REQUIRE_OK(manifest_create(fe, test_tmpdir(), NL, &st, &m));
    /* Grow the log to just under the threshold with L0 churn. */
    for (uint64_t id = 2; manifest_size(m) < 60 * 1024; id++) {
        lsm_edit e;

        lsm_edit_init(&e);
        if (v->n[0])
            REQUIRE_OK(lsm_edit_del(&e, 0, v->tables[0][0]->id));
        table_meta *t = mk(id, "a", "b", 1000);
        REQUIRE(t != NULL);
        REQUIRE_OK(lsm_edit_add(&e, 0, t));
        table_meta_unref(t);
        REQUIRE_OK(log_apply(m, &v, &e));
    }
    /* The next append triggers a rewrite: its own sync is #1, the tmp
     * file's is #2 and fails. The edit is durable all the same. */
    prev = manifest_size(m);
    syncs = env_fault_syncs(fe);
    env_fault_fail_sync(fe, 2);
    REQUIRE_OK(add_one(m, &v, 3, mk(900, "q", "r", 2000)));
    CHECK(env_fault_syncs(fe) == syncs + 2);
    CHECK(manifest_size(m) > prev);                 /* not rewritten */
    env_fault_crash(fe);
    manifest_close(m);
    REQUIRE_OK(env_fault_drop_unsynced(fe));
    REQUIRE_OK(manifest_open(fe, test_tmpdir(), NL, 0, &v2, &st2, &m));
    CHECK(same_version(v, v2));
    manifest_close(m);
    lsm_view_unref(v2);
    lsm_view_unref(v);
    env_fault_free(fe);
}

/* A table with entries kept only for a reader (tag 6) keeps its counts
 * through an append, a reopen and a rewrite (issue 16). */
static void test_manifest_stale_counts_survive_reopen(void)
{
    manifest_state st = {5, 1, 7};
    lsm_view *v = lsm_view_new_empty(NL), *v2 = NULL;
    manifest *m = NULL;
    table_meta *t = mk(3, "a", "b", 0);

    REQUIRE(v != NULL && t != NULL);
    t->num_stale = 17;
    t->stale_version = 29;
    REQUIRE_OK(manifest_create(env_posix(), test_tmpdir(), NL, &st, &m));
    REQUIRE_OK(add_one(m, &v, 2, t));
    REQUIRE_OK(add_one(m, &v, 1, mk(4, "c", "d", 0)));
    manifest_close(m);
    REQUIRE_OK(manifest_open(env_posix(), test_tmpdir(), NL, 0, &v2, &st, &m));
    CHECK(same_version(v, v2));
    REQUIRE(v2->n[2] == 1);
    CHECK(v2->tables[2][0]->num_stale == 17 && v2->tables[2][0]->stale_version == 29);
    CHECK(v2->tables[1][0]->num_stale == 0 && v2->tables[1][0]->stale_version == 0);
    manifest_close(m);
    lsm_view_unref(v2);
    lsm_view_unref(v);
}

/* A format 1 file opens; a writable open rewrites it as format 2 before
 * it could append a tag 6 to it, a read-only one leaves it alone. */
static void test_manifest_format_1_is_upgraded(void)
{
    lsm_view *v = NULL, *v2 = NULL;
    manifest *m = two_edits(&v);
    manifest_state st;
    char *data = NULL;
    size_t len = 0;

    REQUIRE(m != NULL);
    manifest_close(m);
    m = NULL;
    flip(8, 0x03);                                  /* format version 2 -> 1 */
    REQUIRE_OK(manifest_open(env_posix(), test_tmpdir(), NL, 1, &v2, &st, &m));
    CHECK(same_version(v, v2));
    manifest_close(m);
    lsm_view_unref(v2);
    REQUIRE_OK(env_read_all(env_posix(), path_of("MANIFEST"), &data, &len));
    CHECK(len > 12 && get_fixed32(data + 8) == 1);
    free(data);
    REQUIRE_OK(manifest_open(env_posix(), test_tmpdir(), NL, 0, &v2, &st, &m));
    CHECK(same_version(v, v2));
    REQUIRE_OK(env_read_all(env_posix(), path_of("MANIFEST"), &data, &len));
    CHECK(len > 12 && get_fixed32(data + 8) == MANIFEST_FORMAT_VERSION);
    CHECK(len == manifest_size(m));
    free(data);
    manifest_close(m);
    lsm_view_unref(v2);
    REQUIRE_OK(manifest_open(env_posix(), test_tmpdir(), NL, 0, &v2, &st, &m));
    CHECK(same_version(v, v2));
    manifest_close(m);
    lsm_view_unref(v2);
    lsm_view_unref(v);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_manifest_round_trip);
    TEST_RUN(test_manifest_missing_is_not_found);
    TEST_RUN(test_manifest_rewrite_keeps_state);
    TEST_RUN(test_manifest_torn_tail_is_truncated);
    TEST_RUN(test_manifest_torn_tail_variants);
    TEST_RUN(test_manifest_bad_checksum_in_middle_is_corrupt);
    TEST_RUN(test_manifest_damaged_record_header_is_corrupt);
    TEST_RUN(test_manifest_bad_header);
    TEST_RUN(test_manifest_unknown_tag_is_corrupt);
    TEST_RUN(test_manifest_refuses_bad_edit);
    TEST_RUN(test_manifest_failed_sync_is_sticky);
    TEST_RUN(test_manifest_crash_during_rewrite_keeps_edits);
    TEST_RUN(test_manifest_stale_counts_survive_reopen);
    TEST_RUN(test_manifest_format_1_is_upgraded);
    return test_summary();
}
