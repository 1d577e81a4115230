/*
 * vlog_map_test.c - the value log's mapped reads and compressed records
 * (issue 15): a damaged record in a mapped file reads as corruption, every
 * time, and never as other bytes; a value borrowed from a mapping stays
 * readable while its file is removed; the active file reads through its
 * mapping as it grows; values round-trip through every codec, incompressible
 * ones stored as they are; format 1 files (written before compression) are
 * still read, and appends no longer go into them; in shared mode files
 * are mapped only as far as every process published them.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/checksum.h"
#include "base/coding.h"
#include "vlog_util.h"

/* Flips a byte in place (no truncation: the file may be mapped). */
static void poke_byte(const char *path, uint64_t off)
{
    char c;
    int fd = open(path, O_RDWR);

    REQUIRE(fd >= 0);
    REQUIRE(pread(fd, &c, 1, (off_t)off) == 1);
    c ^= 0x40;
    REQUIRE(pwrite(fd, &c, 1, (off_t)off) == 1);
    close(fd);
}

static vlog *open_codec(int codec, uint64_t file_size)
{
    vlog_options o = {0};
    vlog *l = NULL;

    o.file_size = file_size;
    o.compression = codec;
    o.zstd_level = 1;
    REQUIRE_OK(vlog_open(env_posix(), test_tmpdir(), &o, &l));
    return l;
}

/* A value that compresses: runs of a few repeated bytes. */
static void fill_compressible(char *dst, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++)
        dst[i] = (char)('a' + (seed + i / 16) % 7);
}

/* Reads r through vlog_get: 0 when intact, 1 when wrong bytes, else the
 * error. *borrowed: the value was not in v's buffer (so in the mapping). */
static int get_rec(vlog *l, const rec *r, vlog_value *v, int *borrowed)
{
    char *want = malloc(r->vlen ? r->vlen : 1);
    slice val;
    int rc;

    REQUIRE(want != NULL);
    fill_value(want, r->vlen, r->seed);
    rc = vlog_get(l, &r->p, rec_key(r), v, &val);
    if (rc == 0 && (val.len != r->vlen || (r->vlen && memcmp(val.data, want, r->vlen) != 0)))
        rc = 1;
    if (borrowed)
        *borrowed = rc == 0 && r->vlen > 0 &&
                    !(val.data >= v->buf.data && val.data < v->buf.data + v->buf.cap);
    free(want);
    return rc;
}

static void test_vlog_map_corrupt_record_is_corruption_every_time(void)
{
    rec r[6];
    vlog_value v = {0};
    vlog *l = open_log(env_posix(), test_tmpdir(), 0, 0);
    int borrowed = 0;

    for (int i = 0; i < 6; i++) {
        rec_make(&r[i], i, 300);
        append_rec(l, &r[i]);
    }
    CHECK_RC(vlog_rotate(l), 0);    /* file 1 sealed */
    /* Damage before the first read, in a value and in a key. */
    poke_byte(fpath(1), r[2].p.offset + VLOG_REC_HEADER_LEN + r[2].klen + 100);
    poke_byte(fpath(1), r[4].p.offset + VLOG_REC_HEADER_LEN + 2);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 6; i++) {
            int want = i == 2 || i == 4 ? STOAT_ECORRUPT : 0;
            CHECK_RC(get_rec(l, &r[i], &v, &borrowed), want);
            if (want == 0)
                CHECK(borrowed);
            CHECK_RC(read_rec(l, &r[i]), want);
        }
    }
    CHECK_RC(vlog_get(l, &r[2].p, rec_key(&r[2]), &v, &(slice){0}), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "checksum") != NULL && strstr(status_msg(), "000001.vlog"));
    CHECK(v.pin == NULL);   /* a failed read holds nothing */
    vlog_value_free(l, &v);
    vlog_close(l);
}

static void test_vlog_map_borrowed_value_outlives_removal(void)
{
    rec r[4];
    vlog_value v = {0};
    vlog *l = open_log(env_posix(), test_tmpdir(), 0, 0);
    slice val;
    char want[500];
    int borrowed = 0;

    for (int i = 0; i < 4; i++) {
        rec_make(&r[i], i, 500);
        append_rec(l, &r[i]);
    }
    CHECK_RC(vlog_rotate(l), 0);
    CHECK_RC(get_rec(l, &r[1], &v, &borrowed), 0);
    REQUIRE(borrowed && v.pin != NULL);
    REQUIRE_OK(vlog_get(l, &r[3].p, rec_key(&r[3]), &v, &val));
    /* GC removes the file while the value is held: it stays readable,
     * and the file stays on disk until the value is let go. */
    CHECK_RC(vlog_remove_file(l, 1), 0);
    CHECK_RC(read_rec(l, &r[0]), STOAT_ENOTFOUND);
    CHECK(access(fpath(1), F_OK) == 0);
    fill_value(want, sizeof(want), r[3].seed);
    CHECK(val.len == 500 && memcmp(val.data, want, 500) == 0);
    vlog_value_release(l, &v);
    CHECK(access(fpath(1), F_OK) != 0);
    vlog_value_free(l, &v);
    vlog_close(l);
}

static void test_vlog_map_active_file_reads_as_it_grows(void)
{
    rec r[200];
    vlog_value v = {0};
    vlog *l = open_log(env_posix(), test_tmpdir(), 1 << 20, 0);
    int borrowed = 0, n_borrowed = 0;

    for (int i = 0; i < 200; i++) {
        rec_make(&r[i], i, 100 + (size_t)i * 37 % 900);
        append_rec(l, &r[i]);
        /* Every record so far, through the mapping of the growing file. */
        for (int j = i; j >= 0 && j > i - 3; j--) {
            CHECK_RC(get_rec(l, &r[j], &v, &borrowed), 0);
            n_borrowed += borrowed;
        }
    }
    CHECK(n_borrowed > 0);
    for (int i = 0; i < 200; i++)
        CHECK_RC(get_rec(l, &r[i], &v, NULL), 0);
    vlog_value_free(l, &v);
    vlog_close(l);
    /* And with mappings off, the same. */
    {
        vlog_options o = {.no_map = 1};
        REQUIRE_OK(vlog_open(env_posix(), test_tmpdir(), &o, &l));
        for (int i = 0; i < 200; i++) {
            CHECK_RC(get_rec(l, &r[i], &v, &borrowed), 0);
            CHECK(!borrowed);
        }
        vlog_value_free(l, &v);
        vlog_close(l);
    }
}

typedef struct scan_check {
    int n, bad;
    const size_t *lens;
    const uint64_t *seeds;
    const int *comp;
} scan_check;

static int check_scan_fn(void *arg, const vptr *p, slice ikey, slice value)
{
    scan_check *c = arg;
    char *want = malloc(c->lens[c->n] + 1);

    (void)p;
    (void)ikey;
    if (c->comp[c->n])
        fill_compressible(want, c->lens[c->n], c->seeds[c->n]);
    else
        fill_value(want, c->lens[c->n], c->seeds[c->n]);
    if (value.len != c->lens[c->n] || (value.len && memcmp(value.data, want, value.len) != 0))
        c->bad++;
    c->n++;
    free(want);
    return 0;
}

static void codec_round_trip(int codec)
{
    static const size_t lens[] = {0, 10, 63, 64, 100, 1024, 4096, 16384, 300000};
    enum { N = sizeof(lens) / sizeof(lens[0]) * 2 };
    size_t vlens[N];
    uint64_t seeds[N];
    int comp[N];
    rec r[N];
    uint64_t stored_comp = 0, raw_comp = 0;
    vlog_value v = {0};
    vlog *l = open_codec(codec, 0);
    scan_check sc = {0};

    for (int i = 0; i < N; i++) {
        char *val = malloc(lens[i / 2] + 1);
        REQUIRE(val != NULL);
        rec_make(&r[i], i, lens[i / 2]);
        comp[i] = i % 2;    /* odd: compressible; even: random bytes */
        if (comp[i])
            fill_compressible(val, r[i].vlen, r[i].seed);
        else
            fill_value(val, r[i].vlen, r[i].seed);
        REQUIRE_OK(vlog_append(l, rec_key(&r[i]), slice_make(val, r[i].vlen), &r[i].p));
        vlens[i] = r[i].vlen;
        seeds[i] = r[i].seed;
        if (comp[i] && r[i].vlen >= VLOG_COMPRESS_MIN) {
            stored_comp += r[i].p.len - vlog_record_len(r[i].klen, 0);
            raw_comp += r[i].vlen;
        }
        /* Random bytes never get bigger: stored as they are. */
        if (!comp[i])
            CHECK(r[i].p.len == vlog_record_len(r[i].klen, r[i].vlen));
        if (r[i].vlen < VLOG_COMPRESS_MIN)
            CHECK(r[i].p.len == vlog_record_len(r[i].klen, r[i].vlen));
        free(val);
    }
    if (codec == STOAT_COMPRESSION_NONE)
        CHECK(stored_comp == raw_comp);
    else
        CHECK(stored_comp * 4 < raw_comp);  /* runs of 16 equal bytes shrink a lot */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < N; i++) {
            char *want = malloc(r[i].vlen + 1);
            slice val;
            buf out = {0};
            if (comp[i])
                fill_compressible(want, r[i].vlen, r[i].seed);
            else
                fill_value(want, r[i].vlen, r[i].seed);
            CHECK_RC(vlog_get(l, &r[i].p, rec_key(&r[i]), &v, &val), 0);
            CHECK(val.len == r[i].vlen && (!val.len || memcmp(val.data, want, val.len) == 0));
            CHECK_RC(vlog_read(l, &r[i].p, rec_key(&r[i]), &out), 0);
            CHECK(out.len == r[i].vlen && (!out.len || memcmp(out.data, want, out.len) == 0));
            CHECK_RC(vlog_check(l, &r[i].p, rec_key(&r[i])), 0);
            buf_free(&out);
            free(want);
        }
        CHECK_RC(vlog_rotate(l), 0);    /* second pass: a sealed file */
    }
    sc.lens = vlens;
    sc.seeds = seeds;
    sc.comp = comp;
    CHECK_RC(vlog_scan(l, 1, check_scan_fn, &sc), 0);
    CHECK(sc.n == N && sc.bad == 0);
    vlog_value_free(l, &v);
    vlog_close(l);
    /* Reopened with another codec: still read. */
    l = open_codec(codec == STOAT_COMPRESSION_LZ4 ? STOAT_COMPRESSION_ZSTD
                                                  : STOAT_COMPRESSION_LZ4, 0);
    sc.n = sc.bad = 0;
    CHECK_RC(vlog_scan(l, 1, check_scan_fn, &sc), 0);
    CHECK(sc.n == N && sc.bad == 0);
    vlog_close(l);
}

static vlog *open_shared(int attach)
{
    vlog_options o = {0};
    vlog *l = NULL;

    o.shared = 1;
    o.attach = attach;
    REQUIRE_OK(vlog_open(env_posix(), test_tmpdir(), &o, &l));
    return l;
}

/* Shared mode (several processes): a reader maps a file sealed in every
 * process (below the published one, vlog_set_published) whole, even the
 * bytes appended after it first saw the file; the published one only
 * below its published end; before that it reads with pread. */
static void test_vlog_map_shared_maps_what_is_published(void)
{
    rec r[6];
    vlog_value v = {0};
    vlog *w = open_shared(0), *rd;
    int borrowed = 1;

    for (int i = 0; i < 2; i++) {
        rec_make(&r[i], i, 400);
        append_rec(w, &r[i]);
    }
    REQUIRE_OK(vlog_sync(w));
    rd = open_shared(1);    /* sees file 1 with two records */
    for (int i = 2; i < 4; i++) {
        rec_make(&r[i], i, 400);
        append_rec(w, &r[i]);
    }
    CHECK_RC(get_rec(rd, &r[1], &v, &borrowed), 0);
    CHECK(!borrowed);       /* nothing published yet: pread */
    REQUIRE_OK(vlog_rotate(w));     /* file 2 now takes the appends */
    for (int i = 4; i < 6; i++) {
        rec_make(&r[i], i, 400);
        append_rec(w, &r[i]);
    }
    CHECK_RC(get_rec(rd, &r[3], &v, &borrowed), 0);
    CHECK(!borrowed);
    vlog_set_published(rd, 2, r[4].p.offset + r[4].p.len);
    for (int i = 0; i < 4; i++) {
        CHECK_RC(get_rec(rd, &r[i], &v, &borrowed), 0);
        CHECK(borrowed);    /* file 1 mapped whole, records 2 and 3 too */
    }
    CHECK_RC(get_rec(rd, &r[4], &v, &borrowed), 0);
    CHECK(borrowed);        /* published */
    CHECK_RC(get_rec(rd, &r[5], &v, &borrowed), 0);
    CHECK(!borrowed);       /* past the published end: pread */
    vlog_set_published(rd, 1, 0);   /* only moves forward */
    vlog_set_published(rd, 2, r[5].p.offset + r[5].p.len);
    CHECK_RC(get_rec(rd, &r[5], &v, &borrowed), 0);
    CHECK(borrowed);
    vlog_value_free(rd, &v);
    vlog_close(rd);
    vlog_close(w);
}

static void test_vlog_map_codec_none_round_trip(void)
{
    codec_round_trip(STOAT_COMPRESSION_NONE);
}

static void test_vlog_map_codec_lz4_round_trip(void)
{
    codec_round_trip(STOAT_COMPRESSION_LZ4);
}

static void test_vlog_map_codec_zstd_round_trip(void)
{
    codec_round_trip(STOAT_COMPRESSION_ZSTD);
}

static void test_vlog_map_damaged_compressed_value_is_corruption(void)
{
    char val[2000];
    rec r;
    vlog *l = open_codec(STOAT_COMPRESSION_LZ4, 0);
    vlog_value v = {0};
    slice out;

    rec_make(&r, 1, sizeof(val));
    fill_compressible(val, sizeof(val), r.seed);
    REQUIRE_OK(vlog_append(l, rec_key(&r), slice_make(val, sizeof(val)), &r.p));
    REQUIRE(r.p.len < vlog_record_len(r.klen, sizeof(val)));
    CHECK_RC(vlog_rotate(l), 0);
    poke_byte(fpath(1), r.p.offset + VLOG_REC_HEADER_LEN + r.klen + 5);
    CHECK_RC(vlog_get(l, &r.p, rec_key(&r), &v, &out), STOAT_ECORRUPT);
    CHECK_RC(vlog_get(l, &r.p, rec_key(&r), &v, &out), STOAT_ECORRUPT);
    vlog_value_free(l, &v);
    vlog_close(l);
}

/* Writes a format 1 file by hand: header version 1, records uncompressed. */
static void write_format1_file(int fid, rec *r, int n, const char *const *vals)
{
    buf b = {0};
    char h[VLOG_HEADER_LEN];

    put_fixed64(h, VLOG_MAGIC);
    put_fixed32(h + 8, 1);
    put_fixed32(h + 12, (uint32_t)fid);
    REQUIRE_OK(buf_append(&b, h, sizeof(h)));
    for (int i = 0; i < n; i++) {
        size_t vlen = strlen(vals[i]), start = b.len;
        char rh[VLOG_REC_HEADER_LEN], sum[8];
        put_fixed32(rh, (uint32_t)r[i].klen);
        put_fixed32(rh + 4, (uint32_t)vlen);
        put_fixed32(rh + 8, checksum32(rh, 8));
        REQUIRE_OK(buf_append(&b, rh, sizeof(rh)));
        REQUIRE_OK(buf_append(&b, r[i].key, r[i].klen));
        REQUIRE_OK(buf_append(&b, vals[i], vlen));
        put_fixed64(sum, checksum64(b.data + start, b.len - start));
        REQUIRE_OK(buf_append(&b, sum, sizeof(sum)));
        r[i].p = (vptr){(uint32_t)fid, start, (uint32_t)(b.len - start)};
        r[i].vlen = vlen;
    }
    file_put(fpath(fid), b.data, b.len);
    buf_free(&b);
}

static void test_vlog_map_format1_files_still_read(void)
{
    static const char *const vals[] = {
        "", "short", "a value of format one, long enough that lz4 would have tried it "
        "a value of format one, long enough that lz4 would have tried it"};
    rec r[4];
    vlog_value v = {0};
    scan_check sc = {0};
    vlog *l;
    slice out;
    char big[5000];

    for (int i = 0; i < 3; i++)
        rec_make(&r[i], i, 0);
    write_format1_file(1, r, 3, vals);
    l = open_codec(STOAT_COMPRESSION_LZ4, 0);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 3; i++) {
            CHECK_RC(vlog_get(l, &r[i].p, rec_key(&r[i]), &v, &out), 0);
            CHECK(out.len == strlen(vals[i]) && memcmp(out.data, vals[i], out.len) == 0);
        }
    /* Appends go to a new (format 2) file, not into the format 1 one. */
    rec_make(&r[3], 3, sizeof(big));
    fill_compressible(big, sizeof(big), r[3].seed);
    REQUIRE_OK(vlog_append(l, rec_key(&r[3]), slice_make(big, sizeof(big)), &r[3].p));
    CHECK(r[3].p.fid == 2 && r[3].p.len < sizeof(big));
    CHECK_RC(vlog_get(l, &r[3].p, rec_key(&r[3]), &v, &out), 0);
    CHECK(out.len == sizeof(big) && memcmp(out.data, big, sizeof(big)) == 0);
    CHECK_RC(vlog_scan(l, 1, count_fn, &sc.n), 0);
    CHECK(sc.n == 3);
    vlog_value_free(l, &v);
    vlog_close(l);
    {
        buf b = {0};
        file_get(fpath(1), &b);
        CHECK(get_fixed32(b.data + 8) == 1);
        buf_free(&b);
        file_get(fpath(2), &b);
        CHECK(get_fixed32(b.data + 8) == VLOG_FORMAT_VERSION);
        buf_free(&b);
    }
}

int main(int argc, char **argv)
{
    TEST_RUN(test_vlog_map_corrupt_record_is_corruption_every_time);
    TEST_RUN(test_vlog_map_borrowed_value_outlives_removal);
    TEST_RUN(test_vlog_map_active_file_reads_as_it_grows);
    TEST_RUN(test_vlog_map_codec_none_round_trip);
    TEST_RUN(test_vlog_map_codec_lz4_round_trip);
    TEST_RUN(test_vlog_map_codec_zstd_round_trip);
    TEST_RUN(test_vlog_map_damaged_compressed_value_is_corruption);
    TEST_RUN(test_vlog_map_format1_files_still_read);
    TEST_RUN(test_vlog_map_shared_maps_what_is_published);
    return test_summary();
}
