/*
 * encryption_test.c - encryption at rest through the public API: no
 * plaintext in any file on any path, the open errors (no key, wrong key, a
 * key on a plain database) that modify nothing, rotation and rekey across
 * reopens, several processes' handles on one encrypted database, and
 * tampering with every kind of file: a unit changed with its checksum
 * made good again (so only the authentication tag can catch it), moved,
 * replayed or taken from another file reads as corruption, never as a
 * wrong value.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/checksum.h"
#include "base/coding.h"
#include "crypt/aead.h"
#include "crypt/key_registry.h"
#include "db_util.h"
#include "env/env.h"
#include "stoat.h"
#include "test.h"

#define HDR 48          /* the crypt env's header (FORMAT.md) */
#define SEAL 40         /* nonce + tag */
#define N_KEYS 400

static const uint8_t key_a[STOAT_KEY_LEN] = "0123456789abcdef0123456789abcdef";
static const uint8_t key_b[STOAT_KEY_LEN] = "fedcba9876543210fedcba9876543210";

/* Small tables, a low value threshold: every path is taken by a few
 * hundred writes. */
static void enc_options(stoat_options *o, const uint8_t *key)
{
    dbu_small_options(o);
    o->value_threshold = 64;
    o->compression = STOAT_COMPRESSION_NONE;
    o->value_log_compression = STOAT_COMPRESSION_NONE;
    o->encryption_key = key;
}

static void key_of(int i, char *k)
{
    snprintf(k, 32, "MARKERKEY%05d", i);
}

/* Value i: "MARKERVAL" then filler; long ones go to the value log. */
static size_t value_of(int i, int round, char *v)
{
    size_t len = i % 2 ? 300 : 24;

    memset(v, 'a' + round % 26, len);
    memcpy(v, "MARKERVAL", 9);
    v[9] = (char)('0' + round % 10);
    return len;
}

static void put_all(stoat_db *db, int round)
{
    char k[32], v[512];

    for (int i = 0; i < N_KEYS; i++) {
        size_t vlen = value_of(i, round, v);
        key_of(i, k);
        REQUIRE_OK(stoat_put(db, k, strlen(k), v, vlen));
    }
}

/* Every key reads back as round wrote it, or (tolerate_errors) fails
 * with STOAT_ECORRUPT: never another value. Returns the failures. */
static int check_all(stoat_db *db, int round, int tolerate_errors)
{
    char k[32], v[512];
    int failed = 0;

    for (int i = 0; i < N_KEYS; i++) {
        size_t vlen = value_of(i, round, v), got_len;
        void *got;
        int rc;

        key_of(i, k);
        rc = stoat_get(db, k, strlen(k), &got, &got_len);
        if (rc == 0) {
            CHECK(got_len == vlen && memcmp(got, v, vlen) == 0);
            stoat_free(got);
        } else {
            CHECK(tolerate_errors && rc == STOAT_ECORRUPT);
            failed++;
        }
    }
    return failed;
}

/* Occurrences of "MARKER" in every file of dir. */
static int markers_in(const char *dir)
{
    static char names[DBU_MAX_FILES][64];
    char p[DBU_PATH_MAX];
    int n = dbu_list(dir, "", names), found = 0;

    for (int i = 0; i < n; i++) {
        size_t len;
        char *data = dbu_read_file(dbu_path(p, dir, names[i]), &len);
        const char *at = data;

        while (len > 0 && (at = memmem(at, len - (size_t)(at - data), "MARKER", 6)) != NULL) {
            found++;
            at += 6;
        }
        free(data);
    }
    return found;
}

/* The bytes of every file of dir, names included, in one buffer. */
static char *dir_image(const char *dir, size_t *total)
{
    static char names[DBU_MAX_FILES][64];
    char p[DBU_PATH_MAX];
    int n = dbu_list(dir, "", names);
    char *img = NULL;

    *total = 0;
    for (int i = 0; i < n; i++) {
        size_t len, name_len = strlen(names[i]);
        char *data = dbu_read_file(dbu_path(p, dir, names[i]), &len);

        REQUIRE((img = realloc(img, *total + name_len + len + 1)) != NULL);
        memcpy(img + *total, names[i], name_len);
        memcpy(img + *total + name_len, data, len);
        *total += name_len + len;
        free(data);
    }
    return img;
}

static stoat_db *open_db(const char *dir, const uint8_t *key)
{
    stoat_options o;
    stoat_db *db = NULL;

    enc_options(&o, key);
    REQUIRE_OK(stoat_open(dir, &o, &db));
    return db;
}

/* Writes, overwrites (garbage for GC), flushes: tables, value-log files,
 * a WAL with records, a MANIFEST with edits, a DISCARD file. */
static void build_db(const char *dir, const uint8_t *key)
{
    stoat_db *db = open_db(dir, key);

    put_all(db, 0);
    REQUIRE_OK(stoat_flatten(db));
    put_all(db, 1);
    REQUIRE_OK(stoat_flatten(db));
    (void)stoat_gc(db, 0.1, NULL);
    put_all(db, 2);     /* these stay in the WAL */
    REQUIRE_OK(stoat_close(db));
}

static void test_encryption_no_plaintext_on_any_path(void)
{
    char dir[DBU_PATH_MAX], plain[DBU_PATH_MAX];
    uint64_t reclaimed = 0;
    stoat_db *db;

    dbu_subdir(dir, "enc");
    db = open_db(dir, key_a);
    put_all(db, 0);
    CHECK(markers_in(dir) == 0);        /* WAL and value log before any flush */
    REQUIRE_OK(stoat_flatten(db));
    put_all(db, 1);
    REQUIRE_OK(stoat_flatten(db));
    CHECK(markers_in(dir) == 0);        /* tables after compaction */
    REQUIRE_OK(stoat_gc(db, 0.1, &reclaimed));
    CHECK(reclaimed > 0);
    CHECK(markers_in(dir) == 0);        /* values GC rewrote, DISCARD */
    CHECK(check_all(db, 1, 0) == 0);
    REQUIRE_OK(stoat_close(db));
    CHECK(markers_in(dir) == 0);
    db = open_db(dir, key_a);
    CHECK(check_all(db, 1, 0) == 0);
    REQUIRE_OK(stoat_close(db));
    /* The control: the same writes without a key leave markers about. */
    build_db(dbu_subdir(plain, "plain"), NULL);
    CHECK(markers_in(plain) > 0);
}

static void test_encryption_open_errors_modify_nothing(void)
{
    char dir[DBU_PATH_MAX], plain[DBU_PATH_MAX];
    stoat_options o;
    stoat_db *db = NULL;
    size_t n1, n2;
    char *before, *after;

    build_db(dbu_subdir(dir, "enc"), key_a);
    before = dir_image(dir, &n1);
    enc_options(&o, NULL);
    CHECK_RC(stoat_open(dir, &o, &db), STOAT_EKEY);
    CHECK(strstr(stoat_errmsg(NULL), "no encryption_key") != NULL);
    o.read_only = 1;
    CHECK_RC(stoat_open(dir, &o, &db), STOAT_EKEY);
    o.read_only = 0;
    o.encryption_key = key_b;
    CHECK_RC(stoat_open(dir, &o, &db), STOAT_EKEY);
    CHECK(strstr(stoat_errmsg(NULL), "wrong encryption key") != NULL);
    CHECK(memmem(stoat_errmsg(NULL), strlen(stoat_errmsg(NULL)), key_b, 8) == NULL);
    after = dir_image(dir, &n2);
    CHECK(n1 == n2 && memcmp(before, after, n1) == 0);
    free(before);
    free(after);

    build_db(dbu_subdir(plain, "plain"), NULL);
    before = dir_image(plain, &n1);
    o.encryption_key = key_a;
    CHECK_RC(stoat_open(plain, &o, &db), STOAT_EKEY);
    CHECK(strstr(stoat_errmsg(NULL), "not encrypted") != NULL);
    after = dir_image(plain, &n2);
    CHECK(n1 == n2 && memcmp(before, after, n1) == 0);
    free(before);
    free(after);
    CHECK(db == NULL);
}

static void test_encryption_rotation_and_rekey_across_reopens(void)
{
    char dir[DBU_PATH_MAX];
    stoat_options o;
    stoat_db *db;
    key_registry *kr;

    dbu_subdir(dir, "enc");
    enc_options(&o, key_a);
    o.encryption_key_rotation_ms = 1;   /* a new data key for (almost) every file */
    REQUIRE_OK(stoat_open(dir, &o, &db));
    put_all(db, 0);
    REQUIRE_OK(stoat_flatten(db));
    REQUIRE_OK(stoat_rotate_key(db));
    put_all(db, 1);
    REQUIRE_OK(stoat_close(db));
    REQUIRE_OK(key_registry_open(env_posix(), dir, key_a, 0, &kr));
    CHECK(key_registry_count(kr) >= 3);
    key_registry_close(kr);
    db = open_db(dir, key_a);
    CHECK(check_all(db, 1, 0) == 0);
    /* Rekey needs the database closed, and the right old key. */
    CHECK_RC(stoat_rekey(dir, key_a, key_b), STOAT_EBUSY);
    REQUIRE_OK(stoat_close(db));
    CHECK_RC(stoat_rekey(dir, key_b, key_a), STOAT_EKEY);
    REQUIRE_OK(stoat_rekey(dir, key_a, key_b));
    enc_options(&o, key_a);
    CHECK_RC(stoat_open(dir, &o, &db), STOAT_EKEY);
    db = open_db(dir, key_b);
    CHECK(check_all(db, 1, 0) == 0);
    REQUIRE_OK(stoat_close(db));
}

static void test_encryption_rekey_and_rotate_refuse_plain_databases(void)
{
    char dir[DBU_PATH_MAX];
    stoat_db *db;

    build_db(dbu_subdir(dir, "plain"), NULL);
    CHECK_RC(stoat_rekey(dir, key_a, key_b), STOAT_EKEY);
    db = open_db(dir, NULL);
    CHECK_RC(stoat_rotate_key(db), STOAT_ENOTSUP);
    REQUIRE_OK(stoat_close(db));
    CHECK_RC(stoat_rekey(dbu_subdir(dir, "none"), key_a, key_b), STOAT_EINVAL);
}

/* Two handles in multi-process mode: one rotates the data key and writes
 * tables with it; the other reads them (its registry learns the key). */
static void test_encryption_two_handles_share_rotated_keys(void)
{
    char dir[DBU_PATH_MAX];
    stoat_options o;
    stoat_db *a, *b;

    dbu_subdir(dir, "mp");
    enc_options(&o, key_a);
    o.multi_process = 1;
    REQUIRE_OK(stoat_open(dir, &o, &a));
    REQUIRE_OK(stoat_open(dir, &o, &b));
    put_all(a, 0);
    CHECK(check_all(b, 0, 0) == 0);
    REQUIRE_OK(stoat_rotate_key(b));
    put_all(b, 1);
    REQUIRE_OK(stoat_flatten(a));
    CHECK(check_all(a, 1, 0) == 0);
    CHECK(check_all(b, 1, 0) == 0);
    REQUIRE_OK(stoat_close(b));
    REQUIRE_OK(stoat_close(a));
    CHECK(markers_in(dir) == 0);
    a = open_db(dir, key_a);
    CHECK(check_all(a, 1, 0) == 0);
    REQUIRE_OK(stoat_close(a));
}

static int wipes, wipes_nonzero;

static void count_wipe(const uint8_t *bytes, size_t len)
{
    wipes++;
    for (size_t i = 0; i < len; i++)
        if (bytes[i] != 0) {
            wipes_nonzero++;
            break;
        }
}

/* Every key the handle held (data keys, the registry's wrap and MAC
 * keys) is wiped when it closes; no message of a failed open holds the
 * key's bytes. */
static void test_encryption_keys_wiped_on_close(void)
{
    char dir[DBU_PATH_MAX];
    stoat_db *db;

    dbu_subdir(dir, "enc");
    db = open_db(dir, key_a);
    put_all(db, 0);
    REQUIRE_OK(stoat_rotate_key(db));
    put_all(db, 1);
    aead_key_free_hook = count_wipe;
    wipes = wipes_nonzero = 0;
    REQUIRE_OK(stoat_close(db));
    aead_key_free_hook = NULL;
    CHECK(wipes == 2 + 2 && wipes_nonzero == 0);
}

/* ---- tampering ---- */

/* The physical offset of the first value-log record of a file (after the
 * crypt header and the 16-byte value-log header). */
#define VLOG_FIRST (HDR + 16)

/* The length of the sealed value-log record at off of data. */
static size_t vlog_rec_len(const char *data, size_t off)
{
    return 12 + get_fixed32(data + off) + (get_fixed32(data + off + 4) & 0x7fffffffu) + SEAL + 8;
}

/* Makes the checksum of the value-log record at off good again. */
static void vlog_rec_fix(char *data, size_t off)
{
    size_t len = vlog_rec_len(data, off);

    put_fixed64(data + off + len - 8, checksum64(data + off, len - 8));
}

/* The first (largest-numbered: holds the newest values) .vlog name. */
static void newest(const char *dir, const char *suffix, char *name)
{
    static char names[DBU_MAX_FILES][64];
    int n = dbu_list(dir, suffix, names);

    REQUIRE(n > 0);
    strcpy(name, names[n - 1]);
}

static int reopen_and_count_failures(const char *dir, int round)
{
    stoat_options o;
    stoat_db *db;
    int failed, rc;

    enc_options(&o, key_a);
    rc = stoat_open(dir, &o, &db);
    if (rc != 0) {
        CHECK_RC(rc, STOAT_ECORRUPT);   /* refusing to open is fine; opening wrong is not */
        return -1;
    }
    failed = check_all(db, round, 1);
    REQUIRE_OK(stoat_close(db));
    return failed;
}

static void test_encryption_tampered_value_log_records(void)
{
    char dir[DBU_PATH_MAX], work[DBU_PATH_MAX], other[DBU_PATH_MAX];
    char name[64], p[DBU_PATH_MAX], q[DBU_PATH_MAX];
    size_t len, len2, off2;
    char *data, *data2;
    stoat_db *db;

    /* Only round 0's values, in one value-log file, flushed. */
    dbu_subdir(dir, "enc");
    db = open_db(dir, key_a);
    put_all(db, 0);
    REQUIRE_OK(stoat_flatten(db));
    REQUIRE_OK(stoat_close(db));
    newest(dir, ".vlog", name);

    /* A flipped byte in the sealed part, checksum made good. */
    dbu_copy_dir(dir, dbu_subdir(work, "flip"));
    data = dbu_read_file(dbu_path(p, work, name), &len);
    data[VLOG_FIRST + 12 + 5] ^= 0x20;
    vlog_rec_fix(data, VLOG_FIRST);
    dbu_write_file(p, data, len);
    free(data);
    CHECK(reopen_and_count_failures(work, 0) == 1);

    /* Two records of one length swapped: each one's place is wrong. */
    dbu_copy_dir(dir, dbu_subdir(work, "swap"));
    data = dbu_read_file(dbu_path(p, work, name), &len);
    {
        size_t a = VLOG_FIRST, la = vlog_rec_len(data, a), b = a + la, lb;
        char tmp[1024];
        /* Values alternate 24 and 300 bytes (inline and separated): the
         * records here are all 300-byte values; take two neighbours. */
        lb = vlog_rec_len(data, b);
        REQUIRE(la == lb && la <= sizeof(tmp));
        memcpy(tmp, data + a, la);
        memcpy(data + a, data + b, la);
        memcpy(data + b, tmp, la);
    }
    dbu_write_file(p, data, len);
    free(data);
    CHECK(reopen_and_count_failures(work, 0) == 2);

    /* A record taken from another file (another database made with a
     * copy of the registry: same data key, another file salt), at the
     * same place, holding the same key and value. */
    dbu_subdir(other, "other");
    data = dbu_read_file(dbu_path(p, dir, "KEYREGISTRY"), &len);
    dbu_write_file(dbu_path(q, other, "KEYREGISTRY"), data, len);
    free(data);
    db = open_db(other, key_a);
    put_all(db, 0);
    REQUIRE_OK(stoat_flatten(db));
    REQUIRE_OK(stoat_close(db));
    dbu_copy_dir(dir, dbu_subdir(work, "replay"));
    {
        char oname[64];
        newest(other, ".vlog", oname);
        data2 = dbu_read_file(dbu_path(q, other, oname), &len2);
    }
    data = dbu_read_file(dbu_path(p, work, name), &len);
    off2 = VLOG_FIRST;
    REQUIRE(vlog_rec_len(data2, off2) == vlog_rec_len(data, VLOG_FIRST));
    memcpy(data + VLOG_FIRST, data2 + off2, vlog_rec_len(data, VLOG_FIRST));
    dbu_write_file(p, data, len);
    free(data);
    free(data2);
    CHECK(reopen_and_count_failures(work, 0) == 1);
}

/* The size of the first stored block of a table (its sealed bytes): the
 * one length s at which the trailer's checksum matches. */
static size_t sst_first_block(const char *data, size_t len)
{
    for (size_t s = SEAL; HDR + s + 13 <= len; s++)
        if (checksum64(data + HDR, s + 5) == get_fixed64(data + HDR + s + 5))
            return s;
    test_fail(__FILE__, __LINE__, "no block found");
    return 0;
}

static void test_encryption_tampered_table_block(void)
{
    char dir[DBU_PATH_MAX], name[64], p[DBU_PATH_MAX];
    size_t len, s;
    char *data;
    int failed;

    dbu_subdir(dir, "enc");
    {
        stoat_db *db = open_db(dir, key_a);
        put_all(db, 0);
        REQUIRE_OK(stoat_flatten(db));
        REQUIRE_OK(stoat_close(db));
    }
    newest(dir, ".sst", name);
    data = dbu_read_file(dbu_path(p, dir, name), &len);
    s = sst_first_block(data, len);
    data[HDR + 30] ^= 0x01;
    put_fixed64(data + HDR + s + 5, checksum64(data + HDR, s + 5));
    dbu_write_file(p, data, len);
    free(data);
    failed = reopen_and_count_failures(dir, 0);
    CHECK(failed > 0 && failed < N_KEYS);
    {
        stoat_db *db = open_db(dir, key_a);
        char *report = NULL;
        size_t report_len = 0;
        CHECK_RC(stoat_verify(db, &report, &report_len), STOAT_ECORRUPT);
        CHECK(report != NULL && strstr(report, name) != NULL);
        stoat_free(report);
        REQUIRE_OK(stoat_close(db));
    }
}

/* The WAL record at off (physical): payload made good after a change. */
static void wal_rec_fix(char *data, size_t off)
{
    uint32_t plen = get_fixed32(data + off);

    put_fixed32(data + off + 4, (uint32_t)checksum64(data + off + 12, plen));
    put_fixed32(data + off + 8, (uint32_t)checksum64(data + off, 8));
}

static void test_encryption_tampered_wal_and_manifest_records(void)
{
    char dir[DBU_PATH_MAX], work[DBU_PATH_MAX], name[64], p[DBU_PATH_MAX];
    size_t len, first = HDR + 16, rec;
    char *data, *grown;
    stoat_db *db;

    dbu_subdir(dir, "enc");
    db = open_db(dir, key_a);
    put_all(db, 0);     /* in the WAL only */
    REQUIRE_OK(stoat_close(db));
    newest(dir, ".wal", name);

    /* A flipped byte in the sealed payload, checksums made good. */
    dbu_copy_dir(dir, dbu_subdir(work, "flip"));
    data = dbu_read_file(dbu_path(p, work, name), &len);
    REQUIRE(len > first + 12 + SEAL);
    data[first + 12 + 30] ^= 0x04;
    wal_rec_fix(data, first);
    dbu_write_file(p, data, len);
    free(data);
    CHECK(reopen_and_count_failures(work, 0) == -1);

    /* The first record replayed at the end (a place it was not sealed
     * for): whole, checksums good, tag bad. */
    dbu_copy_dir(dir, dbu_subdir(work, "replay"));
    data = dbu_read_file(dbu_path(p, work, name), &len);
    rec = 12 + get_fixed32(data + first);
    REQUIRE((grown = malloc(len + rec)) != NULL);
    memcpy(grown, data, len);
    memcpy(grown + len, data + first, rec);
    dbu_write_file(p, grown, len + rec);
    free(grown);
    free(data);
    CHECK(reopen_and_count_failures(work, 0) == -1);

    /* The MANIFEST's snapshot record, flipped and made good. */
    dbu_copy_dir(dir, dbu_subdir(work, "manifest"));
    data = dbu_read_file(dbu_path(p, work, "MANIFEST"), &len);
    data[first + 12 + 26] ^= 0x10;
    wal_rec_fix(data, first);
    dbu_write_file(p, data, len);
    free(data);
    CHECK(reopen_and_count_failures(work, 0) == -1);

    /* A header naming another data key: every unit fails. */
    dbu_copy_dir(dir, dbu_subdir(work, "keyid"));
    data = dbu_read_file(dbu_path(p, work, name), &len);
    put_fixed64(data + 16, 2);
    put_fixed64(data + 40, checksum64(data, 40));
    dbu_write_file(p, data, len);
    free(data);
    CHECK(reopen_and_count_failures(work, 0) == -1);

    /* Untouched, it opens and reads. */
    CHECK(reopen_and_count_failures(dir, 0) == 0);
}

/* DISCARD is advisory: a tampered one is dropped at open, reads are right. */
static void test_encryption_tampered_discard_is_dropped(void)
{
    char dir[DBU_PATH_MAX], p[DBU_PATH_MAX];
    size_t len;
    char *data;

    build_db(dbu_subdir(dir, "enc"), key_a);
    REQUIRE(dbu_exists(dbu_path(p, dir, "DISCARD")));
    data = dbu_read_file(p, &len);
    data[len - 20] ^= 0x01;
    dbu_write_file(p, data, len);
    free(data);
    CHECK(reopen_and_count_failures(dir, 2) == 0);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_encryption_no_plaintext_on_any_path);
    TEST_RUN(test_encryption_open_errors_modify_nothing);
    TEST_RUN(test_encryption_rotation_and_rekey_across_reopens);
    TEST_RUN(test_encryption_rekey_and_rotate_refuse_plain_databases);
    TEST_RUN(test_encryption_two_handles_share_rotated_keys);
    TEST_RUN(test_encryption_keys_wiped_on_close);
    TEST_RUN(test_encryption_tampered_value_log_records);
    TEST_RUN(test_encryption_tampered_table_block);
    TEST_RUN(test_encryption_tampered_wal_and_manifest_records);
    TEST_RUN(test_encryption_tampered_discard_is_dropped);
    return test_summary();
}
