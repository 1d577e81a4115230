/*
 * wal_test.c - WAL framing and replay: round trips, torn tails at every
 * byte, corruption in the middle (damaged lengths above all), zero tails,
 * bad headers and malformed payloads.
 */
#include "env/env.h"
#include "base/checksum.h"
#include "base/coding.h"
#include "base/ikey.h"
#include "base/status.h"
#include "log/wal.h"
#include "test.h"

/* What replay handed over: every entry as lenpref(ikey) lenpref(value). */
typedef struct seen {
    buf all;
    int n;
    int stop_at;    /* nonzero: the callback returns 99 on this entry */
} seen;

static int seen_fn(void *arg, slice ikey, slice value)
{
    seen *s = arg;

    s->n++;
    if (s->stop_at && s->n == s->stop_at)
        return 99;
    buf_put_lenpref(&s->all, ikey.data, ikey.len);
    buf_put_lenpref(&s->all, value.data, value.len);
    return 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
    env_file *f;

    REQUIRE_OK(env_open(env_posix(), path, ENV_WRITE | ENV_TRUNC, &f));
    REQUIRE_OK(env_append(f, data, len));
    REQUIRE_OK(env_close(f));
}

static int replay_bytes(const void *data, size_t len, seen *s, uint64_t *good_len)
{
    char *path = env_join(test_tmpdir(), "000001.wal");
    env_file *f;
    int rc;

    REQUIRE(path != NULL);
    write_file(path, data, len);
    REQUIRE_OK(env_open(env_posix(), path, ENV_READ, &f));
    rc = wal_replay(f, path, seen_fn, s, good_len);
    env_close(f);
    free(path);
    return rc;
}

static void put_header(buf *b)
{
    buf_put_fixed64(b, WAL_MAGIC);
    buf_put_fixed32(b, WAL_FORMAT_VERSION);
    buf_put_fixed32(b, 0);
}

/* A WAL with `nrec` records; record r holds r+1 entries. Record start
 * offsets go to starts[] (nrec + 1 of them, the last being the end), and
 * the expected replay output to want. */
static void build_wal(buf *wal, int nrec, uint64_t *starts, buf *want)
{
    buf payload = {0};
    char key[32], val[32];

    put_header(wal);
    for (int r = 0; r < nrec; r++) {
        buf_reset(&payload);
        for (int e = 0; e <= r; e++) {
            vstruct v = {0, (uint8_t)e, (uint64_t)r * 1000, slice_make("value", 5)};
            slice k = slice_make(key, ikey_encode(key, "key", 3, (uint64_t)(r * 10 + e)));
            slice vs = slice_make(val, vstruct_encode(val, &v));
            REQUIRE_OK(wal_encode_entry(&payload, k, vs));
            buf_put_lenpref(want, k.data, k.len);
            buf_put_lenpref(want, vs.data, vs.len);
        }
        starts[r] = wal->len;
        REQUIRE_OK(wal_encode_record(wal, payload.data, payload.len));
    }
    starts[nrec] = wal->len;
    buf_free(&payload);
}

static int same(const buf *a, const buf *b, size_t blen)
{
    return a->len == blen && (blen == 0 || memcmp(a->data, b->data, blen) == 0);
}

static void test_wal_round_trip(void)
{
    buf wal = {0}, want = {0};
    seen s = {0};
    uint64_t starts[6], good;

    build_wal(&wal, 5, starts, &want);
    CHECK_RC(replay_bytes(wal.data, wal.len, &s, &good), 0);
    CHECK(good == wal.len);
    CHECK(s.n == 1 + 2 + 3 + 4 + 5);
    CHECK(same(&s.all, &want, want.len));
    buf_free(&wal);
    buf_free(&want);
    buf_free(&s.all);
}

static void test_wal_large_record_round_trip(void)
{
    size_t vlen = 700 << 10;    /* larger than the replay's read chunk */
    char *big = calloc(1, vlen), key[16];
    buf wal = {0}, payload = {0};
    seen s = {0};
    uint64_t good;

    REQUIRE(big != NULL);
    for (size_t i = 0; i < vlen; i++)
        big[i] = (char)(i * 7 + 1);
    big[0] = 0;     /* meta */
    big[2] = 0;     /* expires_at = 0 */
    put_header(&wal);
    for (int r = 0; r < 3; r++) {
        buf_reset(&payload);
        REQUIRE_OK(wal_encode_entry(&payload, slice_make(key, ikey_encode(key, "big", 3, 1)),
                                    slice_make(big, vlen)));
        REQUIRE_OK(wal_encode_record(&wal, payload.data, payload.len));
    }
    CHECK_RC(replay_bytes(wal.data, wal.len, &s, &good), 0);
    CHECK(good == wal.len && s.n == 3);
    free(big);
    buf_free(&wal);
    buf_free(&payload);
    buf_free(&s.all);
}

static void test_wal_torn_tail_at_every_byte_truncates_to_previous_record(void)
{
    buf wal = {0}, want = {0};
    uint64_t starts[4], good;
    size_t want_len;

    build_wal(&wal, 3, starts, &want);
    /* Expected output: the entries of the first two records (1 + 2). */
    {
        seen s = {0};
        REQUIRE_OK(replay_bytes(wal.data, starts[2], &s, &good));
        want_len = s.all.len;
        buf_free(&s.all);
    }
    for (uint64_t cut = starts[2]; cut < starts[3]; cut++) {
        seen s = {0};
        CHECK_RC(replay_bytes(wal.data, (size_t)cut, &s, &good), 0);
        CHECK(good == starts[2]);
        CHECK(s.n == 3 && same(&s.all, &want, want_len));
        buf_free(&s.all);
    }
    buf_free(&wal);
    buf_free(&want);
}

static void test_wal_bad_last_record_at_eof_is_torn(void)
{
    buf wal = {0}, want = {0};
    uint64_t starts[4], good;
    seen s = {0};

    build_wal(&wal, 3, starts, &want);
    wal.data[wal.len - 2] ^= 0x10;
    CHECK_RC(replay_bytes(wal.data, wal.len, &s, &good), 0);
    CHECK(good == starts[2] && s.n == 3);
    buf_free(&wal);
    buf_free(&want);
    buf_free(&s.all);
}

/*
 * A power loss may persist a file's size before its data: the last record
 * is torn (its end reads as zeros) and zeros follow it up to the size.
 * That is a torn tail too (powerloss_test found it refused); a non-zero
 * byte after the record makes it damage again.
 */
static void test_wal_bad_last_record_followed_by_zeros_is_torn(void)
{
    buf wal = {0}, want = {0};
    uint64_t starts[4], good;
    char z[700] = {0};

    build_wal(&wal, 3, starts, &want);
    memset(wal.data + wal.len - 3, 0, 3);   /* the record's last bytes never made it */
    buf_append(&wal, z, sizeof(z));
    for (int stray = 0; stray < 2; stray++) {
        seen s = {0};

        wal.data[wal.len - 1] = (char)stray;
        CHECK_RC(replay_bytes(wal.data, wal.len, &s, &good), stray ? STOAT_ECORRUPT : 0);
        CHECK(good == starts[2] && s.n == 3);
        buf_free(&s.all);
    }
    buf_free(&wal);
    buf_free(&want);
}

/*
 * A torn write may keep a record header's first bytes (its first sector)
 * while the size ran ahead in zeros: torn, whatever the size (the state
 * powerloss_test found: 1 byte of the header, then 211 zeros). A non-zero
 * byte past the header's place makes it damage.
 */
static void test_wal_cut_header_followed_by_zeros_is_torn(void)
{
    buf wal = {0}, want = {0};
    uint64_t starts[4], good;

    build_wal(&wal, 3, starts, &want);
    for (size_t kept = 1; kept < WAL_RECORD_HEADER_LEN; kept++) {
        for (size_t zeros = WAL_RECORD_HEADER_LEN - kept; zeros < 300; zeros += 53) {
            buf copy = {0};
            seen s = {0};

            buf_append(&copy, wal.data, starts[2] + kept);
            for (size_t i = 0; i < zeros; i++)
                buf_append(&copy, "", 1);
            CHECK_RC(replay_bytes(copy.data, copy.len, &s, &good), 0);
            CHECK(good == starts[2] && s.n == 3);
            copy.data[copy.len - 1] = 1;
            CHECK_RC(replay_bytes(copy.data, copy.len, &s, &good),
                     copy.len - starts[2] > WAL_RECORD_HEADER_LEN ? STOAT_ECORRUPT : 0);
            buf_free(&copy);
            buf_free(&s.all);
        }
    }
    buf_free(&wal);
    buf_free(&want);
}

static void test_wal_flipped_byte_in_earlier_record_is_corrupt(void)
{
    buf wal = {0}, want = {0};
    uint64_t starts[4], good;
    char expect[128];

    build_wal(&wal, 3, starts, &want);
    for (uint64_t at = starts[1]; at < starts[2]; at++) {
        seen s = {0};
        wal.data[at] ^= 0x01;
        CHECK_RC(replay_bytes(wal.data, wal.len, &s, &good), STOAT_ECORRUPT);
        snprintf(expect, sizeof(expect), "bad checksum at offset %llu",
                 (unsigned long long)starts[1]);
        CHECK(strstr(status_msg(), expect) != NULL);
        CHECK(strstr(status_msg(), "000001.wal") != NULL);
        CHECK(good == starts[1] && s.n == 1);
        wal.data[at] ^= 0x01;
        buf_free(&s.all);
    }
    buf_free(&wal);
    buf_free(&want);
}

/*
 * A damaged length is caught by the record header's own check, wherever
 * it points: in the middle of the file it is corruption, never a torn
 * tail that would drop the records after it; so it is in the last record,
 * since a crash does not damage a header it wrote whole.
 */
static void test_wal_damaged_length_is_corrupt_not_torn(void)
{
    buf wal = {0}, want = {0};
    uint64_t starts[4], good;
    char expect[128];

    build_wal(&wal, 3, starts, &want);
    for (int r = 1; r < 3; r++) {
        for (int i = 0; i < 4; i++) {
            seen s = {0};
            uint64_t at = starts[r] + (uint64_t)i;

            wal.data[at] ^= (char)0xff;     /* i > 0: the length is past EOF */
            CHECK_RC(replay_bytes(wal.data, wal.len, &s, &good), STOAT_ECORRUPT);
            snprintf(expect, sizeof(expect), "bad checksum at offset %llu (record header)",
                     (unsigned long long)starts[r]);
            CHECK(strstr(status_msg(), expect) != NULL);
            CHECK(good == starts[r] && s.n == r * (r + 1) / 2);
            wal.data[at] ^= (char)0xff;
            buf_free(&s.all);
        }
    }
    buf_free(&wal);
    buf_free(&want);
}

/* An intact header is believed: past end of file it is a torn tail, over
 * the record limit it is corruption. */
static void test_wal_intact_header_length(void)
{
    buf wal = {0}, want = {0};
    uint64_t starts[3], good;
    char h[WAL_RECORD_HEADER_LEN];
    seen s = {0};

    build_wal(&wal, 2, starts, &want);
    wal_record_header_encode(h, "", 0);
    put_fixed32(h, 100);
    put_fixed32(h + 8, checksum32(h, 8));
    REQUIRE(wal_record_header_ok(h));
    buf_append(&wal, h, sizeof(h));
    buf_append(&wal, "hello", 5);
    CHECK_RC(replay_bytes(wal.data, wal.len, &s, &good), 0);
    CHECK(good == starts[2] && s.n == 3);
    put_fixed32(h, WAL_MAX_RECORD + 1);
    put_fixed32(h + 8, checksum32(h, 8));
    memcpy(wal.data + starts[2], h, sizeof(h));
    CHECK_RC(replay_bytes(wal.data, wal.len, &s, &good), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "too large") != NULL);
    CHECK(good == starts[2]);
    buf_free(&wal);
    buf_free(&want);
    buf_free(&s.all);
}

static void test_wal_zero_tail_is_torn(void)
{
    buf wal = {0}, want = {0};
    uint64_t starts[3], good;

    build_wal(&wal, 2, starts, &want);
    for (size_t zeros = 1; zeros < 300; zeros += 37) {
        seen s = {0};
        char *z = calloc(1, zeros);
        buf copy = {0};
        REQUIRE(z != NULL);
        buf_append(&copy, wal.data, wal.len);
        buf_append(&copy, z, zeros);
        CHECK_RC(replay_bytes(copy.data, copy.len, &s, &good), 0);
        CHECK(good == starts[2] && s.n == 3 && same(&s.all, &want, want.len));
        /* ...but one stray byte at the very end makes it damage. */
        copy.data[copy.len - 1] = 1;
        CHECK_RC(replay_bytes(copy.data, copy.len, &s, &good),
                 zeros < WAL_RECORD_HEADER_LEN ? 0 : STOAT_ECORRUPT);
        free(z);
        buf_free(&copy);
        buf_free(&s.all);
    }
    buf_free(&wal);
    buf_free(&want);
}

static void test_wal_torn_or_zero_header_is_empty(void)
{
    buf wal = {0};
    char zeros[64] = {0};
    uint64_t good = 99;
    seen s = {0};

    put_header(&wal);
    for (size_t cut = 0; cut < WAL_HEADER_LEN; cut++) {
        CHECK_RC(replay_bytes(wal.data, cut, &s, &good), 0);
        CHECK(good == 0);
    }
    CHECK_RC(replay_bytes(wal.data, WAL_HEADER_LEN, &s, &good), 0);
    CHECK(good == WAL_HEADER_LEN);
    CHECK_RC(replay_bytes(zeros, 5, &s, &good), 0);
    CHECK(good == 0);
    CHECK_RC(replay_bytes(zeros, sizeof(zeros), &s, &good), 0);
    CHECK(good == 0 && s.n == 0);
    buf_free(&wal);
}

static void test_wal_bad_header_is_corrupt(void)
{
    buf wal = {0};
    uint64_t good;
    seen s = {0};

    CHECK_RC(replay_bytes("garbage", 7, &s, &good), STOAT_ECORRUPT);
    put_header(&wal);
    wal.data[1] ^= 0x20;
    CHECK_RC(replay_bytes(wal.data, wal.len, &s, &good), STOAT_ECORRUPT);
    CHECK(strstr(status_msg(), "bad WAL header") != NULL);
    wal.data[1] ^= 0x20;
    wal.data[12] = 1;   /* reserved field */
    CHECK_RC(replay_bytes(wal.data, wal.len, &s, &good), STOAT_ECORRUPT);
    wal.data[12] = 0;
    wal.data[8] = WAL_FORMAT_VERSION + 1;
    CHECK_RC(replay_bytes(wal.data, wal.len, &s, &good), STOAT_ENOTSUP);
    CHECK(good == 0 && s.n == 0);
    buf_free(&wal);
}

/* A record with a good checksum whose payload does not parse: corrupt,
 * and none of its entries reach the callback. */
static void test_wal_malformed_payload_is_corrupt_and_not_applied(void)
{
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"\x03" "abc" "\x03" "\x00\x00\x00", 8},        /* ikey shorter than 8 */
        {"\x08" "12345678" "\x09" "\x00\x00", 12},      /* value overruns */
        {"\x08" "12345678" "\x02" "\x00\x00", 12},      /* vstruct too short */
        {"\x08" "12345678" "\x03" "\x00\x00\x80", 13},  /* expires varint overruns */
        {"\x88\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11}, /* overlong varint */
        {"\x08" "12345678" "\x05" "\x02\x00\x00" "ab", 15}, /* vptr of 2 bytes */
    };
    char key[16], val[8];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        buf wal = {0}, payload = {0};
        vstruct v = {0, 0, 0, slice_make("x", 1)};
        uint64_t good;
        seen s = {0};

        put_header(&wal);
        REQUIRE_OK(wal_encode_entry(&payload, slice_make(key, ikey_encode(key, "k", 1, 1)),
                                    slice_make(val, vstruct_encode(val, &v))));
        buf_append(&payload, bad[i].bytes, bad[i].len);
        REQUIRE_OK(wal_encode_record(&wal, payload.data, payload.len));
        CHECK_RC(replay_bytes(wal.data, wal.len, &s, &good), STOAT_ECORRUPT);
        CHECK(strstr(status_msg(), "malformed entry") != NULL);
        CHECK(s.n == 0 && good == WAL_HEADER_LEN);
        buf_free(&wal);
        buf_free(&payload);
    }
}

static void test_wal_callback_error_stops_replay(void)
{
    buf wal = {0}, want = {0};
    uint64_t starts[4], good;
    seen s = {0};

    build_wal(&wal, 3, starts, &want);
    s.stop_at = 2;  /* first entry of the second record */
    CHECK_RC(replay_bytes(wal.data, wal.len, &s, &good), 99);
    CHECK(s.n == 2 && good == starts[1]);
    buf_free(&wal);
    buf_free(&want);
    buf_free(&s.all);
}

static void test_wal_encode_rejects_bad_input(void)
{
    buf b = {0};

    CHECK_RC(wal_encode_entry(&b, slice_make("short", 5), slice_make("v", 1)), STOAT_EINVAL);
    CHECK(b.len == 0);
    CHECK_RC(wal_encode_record(&b, "", (size_t)WAL_MAX_RECORD + 1), STOAT_ETOOBIG);
    CHECK(b.len == 0);
    REQUIRE_OK(wal_encode_record(&b, "", 0));
    CHECK(b.len == WAL_RECORD_HEADER_LEN);
    CHECK(get_fixed32(b.data) == 0 && get_fixed32(b.data + 4) == checksum32("", 0));
    CHECK(wal_record_header_ok(b.data));
    for (size_t i = 0; i < WAL_RECORD_HEADER_LEN; i++) {
        b.data[i] ^= 0x01;
        CHECK(!wal_record_header_ok(b.data));
        b.data[i] ^= 0x01;
    }
    buf_free(&b);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_wal_round_trip);
    TEST_RUN(test_wal_large_record_round_trip);
    TEST_RUN(test_wal_torn_tail_at_every_byte_truncates_to_previous_record);
    TEST_RUN(test_wal_bad_last_record_at_eof_is_torn);
    TEST_RUN(test_wal_bad_last_record_followed_by_zeros_is_torn);
    TEST_RUN(test_wal_cut_header_followed_by_zeros_is_torn);
    TEST_RUN(test_wal_flipped_byte_in_earlier_record_is_corrupt);
    TEST_RUN(test_wal_damaged_length_is_corrupt_not_torn);
    TEST_RUN(test_wal_intact_header_length);
    TEST_RUN(test_wal_zero_tail_is_torn);
    TEST_RUN(test_wal_torn_or_zero_header_is_empty);
    TEST_RUN(test_wal_bad_header_is_corrupt);
    TEST_RUN(test_wal_malformed_payload_is_corrupt_and_not_applied);
    TEST_RUN(test_wal_callback_error_stops_replay);
    TEST_RUN(test_wal_encode_rejects_bad_input);
    return test_summary();
}
