/*
 * sst_test.c - SST builder and reader: round trips with every compression
 * type, point gets at every version, iteration both ways, seeks, large
 * keys and values, properties, filters, concurrent readers. Damaged files
 * are sst_damage_test.c; helpers in sst_util.h.
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

static void round_trip(int compression, int with_cache, size_t n)
{
    table_data t;
    sst_options o = opts_with(compression);
    sst_props props;
    block_cache *bc = NULL;
    sst_reader *r;
    char *path = path_in_tmp("000001.sst");

    td_make(&t, n);
    build(path, &o, &t, &props);
    check_props(&props, &t, path);
    if (with_cache)
        REQUIRE_OK(block_cache_new(8 << 20, &bc));
    REQUIRE_OK(sst_reader_open(env_posix(), path, 1, bc, &r));
    check_props(sst_reader_props(r), &t, path);
    CHECK(sst_reader_id(r) == 1);
    check_gets(r, &t);
    check_iteration(r, &t);
    check_seeks(r, &t);
    sst_reader_unref(r);
    block_cache_free(bc);
    sst_props_free(&props);
    td_free(&t);
    free(path);
}

static void test_sst_round_trip_uncompressed(void)
{
    round_trip(STOAT_COMPRESSION_NONE, 1, 100000);
}

static void test_sst_round_trip_lz4(void)
{
    round_trip(STOAT_COMPRESSION_LZ4, 1, 100000);
}

static void test_sst_round_trip_zstd(void)
{
    round_trip(STOAT_COMPRESSION_ZSTD, 1, 100000);
}

static void test_sst_round_trip_without_block_cache(void)
{
    round_trip(STOAT_COMPRESSION_LZ4, 0, 20000); /* every read from disk */
}

static int ukey_cmp_qsort(const void *a, const void *b)
{
    const slice *x = a, *y = b;
    return slice_cmp(*x, *y);
}

/* The first entry of t at or after target (t->n when none). */
static size_t td_lower_bound(const table_data *t, slice target)
{
    size_t lo = 0, hi = t->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ikey_cmp(tk(t, mid), target) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Looks up target's user key at its version and seeks target; both
 * must agree with t. Returns the number of wrong answers. */
static size_t probe_table(sst_reader *r, iter *it, const table_data *t, slice target, buf *k,
                          buf *v)
{
    size_t j = td_lower_bound(t, target), bad = 0;
    int hit = j < t->n && slice_cmp(ikey_user(tk(t, j)), ikey_user(target)) == 0;
    int rc = sst_reader_get(r, ikey_user(target), ikey_version(target), k, v);

    if (hit)
        bad += rc != 0 || slice_cmp(slice_make(k->data, k->len), tk(t, j)) != 0 ||
               slice_cmp(slice_make(v->data, v->len), tv(t, j)) != 0;
    else
        bad += rc != STOAT_ENOTFOUND;
    iter_seek(it, target);
    bad += j < t->n ? !iter_at(it, t, j) : iter_valid(it) || iter_status(it) != 0;
    return bad;
}

/*
 * The index is searched by 8-byte tags taken after the prefix all its
 * keys share, then by full keys on ties: user keys that share a long
 * prefix and differ only far beyond it (every tag ties), keys ending in
 * zero bytes (which tie with their shorter prefix), keys that prefix
 * others, and probes that leave the shared prefix on either side.
 */
static void test_sst_index_search_with_shared_prefixes_and_tag_ties(void)
{
    static const char *probes[] = {"", "t", "tenant/", "tenant/0041/zzzz", "tenant/0042",
                                   "tenant/0042/", "tenant/0042/\xff", "tenant/0043/",
                                   "tenant/0042/AAAAAAAAAAAAAAA", "tenant/0042/x\x01"};
    sst_options o = opts_with(STOAT_COMPRESSION_NONE);
    char raw[600][40], probe[64];
    slice uk[600];
    table_data t;
    sst_props props;
    sst_reader *r;
    iter *it;
    buf k = {0}, v = {0};
    size_t n = 0, bad = 0;
    char *path = path_in_tmp("000015.sst");

    for (int i = 0; i < 400; i++) /* tags all "AAAAAAAA" */
        uk[n] = slice_make(raw[n], (size_t)snprintf(raw[n], 40, "tenant/0042/AAAAAAAAAAAA%06d",
                                                    i * 7919 % 1000)), n++;
    for (int i = 0; i < 12; i++) { /* "x", "x\0", "x\0\0", ... */
        memcpy(raw[n], "tenant/0042/x\0\0\0\0\0\0\0\0\0\0\0", 13 + (size_t)i);
        uk[n] = slice_make(raw[n], 13 + (size_t)i), n++;
    }
    for (int i = 0; i < 150; i++) /* prefixes of each other */
        uk[n] = slice_make(raw[n], (size_t)snprintf(raw[n], 40, "tenant/0042/p%d", i)), n++;
    qsort(uk, n, sizeof(*uk), ukey_cmp_qsort);
    memset(&t, 0, sizeof(t));
    for (size_t i = 0; i < n; i++)
        for (uint64_t ver = 20; ver >= 10; ver -= 10)
            td_add(&t, uk[i], ver, 0, slice_make("v", 1));
    o.block_size = 256; /* a few entries a block: a large index */
    build(path, &o, &t, &props);
    REQUIRE_OK(sst_reader_open(env_posix(), path, 15, NULL, &r));
    REQUIRE((it = sst_reader_iter(r)) != NULL);
    for (size_t i = 0; i < t.n; i++) {
        slice u = ikey_user(tk(&t, i));
        bad += probe_table(r, it, &t, tk(&t, i), &k, &v);
        bad += probe_table(r, it, &t, slice_make(probe, ikey_encode(probe, u.data, u.len, 15)),
                           &k, &v);
        bad += probe_table(r, it, &t, slice_make(probe, ikey_encode(probe, u.data, u.len, 5)),
                           &k, &v);
        /* a user key just above u: u ++ "\0" */
        memcpy(probe, u.data, u.len);
        probe[u.len] = 0;
        bad += probe_table(r, it, &t, slice_make(probe, ikey_encode(probe, probe, u.len + 1, 99)),
                           &k, &v);
    }
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
        for (uint64_t ver = 0; ver <= 30; ver += 15)
            bad += probe_table(r, it, &t,
                               slice_make(probe, ikey_encode(probe, probes[i], strlen(probes[i]),
                                                             ver)),
                               &k, &v);
    CHECK(bad == 0);
    iter_free(it);
    sst_reader_unref(r);
    buf_free(&k);
    buf_free(&v);
    sst_props_free(&props);
    td_free(&t);
    free(path);
}

static void test_sst_compression_shrinks_the_file(void)
{
    table_data t;
    sst_props p[3];
    char *path = path_in_tmp("000002.sst");

    td_make(&t, 20000);
    for (int c = 0; c < 3; c++) {
        sst_options o = opts_with(c);
        build(path, &o, &t, &p[c]);
    }
    CHECK(p[STOAT_COMPRESSION_LZ4].file_size < p[STOAT_COMPRESSION_NONE].file_size * 3 / 4);
    CHECK(p[STOAT_COMPRESSION_ZSTD].file_size < p[STOAT_COMPRESSION_NONE].file_size * 3 / 4);
    for (int c = 0; c < 3; c++)
        sst_props_free(&p[c]);
    td_free(&t);
    free(path);
}

static void test_sst_large_value_and_key(void)
{
    size_t big_v = 5u << 20, big_k = STOAT_MAX_KEY_SIZE;
    char *vb = malloc(big_v), *kb = malloc(big_k);
    table_data t;
    sst_options o = opts_with(STOAT_COMPRESSION_LZ4);
    sst_props props;
    block_cache *bc;
    sst_reader *r;
    buf k = {0}, v = {0};
    char uk[32];
    char *path = path_in_tmp("000003.sst");

    REQUIRE(vb != NULL && kb != NULL);
    for (size_t i = 0; i < big_v; i++)
        vb[i] = (char)(i * 7 + i / 4096);
    memset(kb, 'q', big_k);
    memset(&t, 0, sizeof(t));
    for (uint64_t i = 0; i < 100; i++)
        td_add(&t, ukey_of(uk, i), 5, 0, slice_make("small", 5));
    td_add(&t, ukey_of(uk, 100), 5, 0, slice_make(vb, big_v));
    for (uint64_t i = 101; i < 200; i++)
        td_add(&t, ukey_of(uk, i), 5, 0, slice_make("small", 5));
    td_add(&t, slice_make(kb, big_k), 5, 0, slice_make("big key", 7));
    build(path, &o, &t, &props);
    REQUIRE_OK(block_cache_new(64 << 20, &bc));
    REQUIRE_OK(sst_reader_open(env_posix(), path, 3, bc, &r));
    REQUIRE_OK(sst_reader_get(r, ukey_of(uk, 100), 5, &k, &v));
    CHECK(v.len == tv(&t, 100).len && memcmp(v.data, tv(&t, 100).data, v.len) == 0);
    REQUIRE_OK(sst_reader_get(r, slice_make(kb, big_k), 9, &k, &v));
    CHECK(k.len == big_k + 8 && slice_cmp(slice_make(v.data, v.len), tv(&t, 200)) == 0);
    REQUIRE_OK(sst_reader_get(r, ukey_of(uk, 99), 5, &k, &v));
    REQUIRE_OK(sst_reader_get(r, ukey_of(uk, 101), 5, &k, &v));
    check_iteration(r, &t);
    sst_reader_unref(r);
    block_cache_free(bc);
    buf_free(&k);
    buf_free(&v);
    sst_props_free(&props);
    td_free(&t);
    free(vb);
    free(kb);
    free(path);
}

static void test_sst_empty_table(void)
{
    sst_options o = opts_with(STOAT_COMPRESSION_ZSTD);
    sst_builder *b;
    sst_props props;
    sst_reader *r;
    iter *it;
    buf k = {0}, v = {0};
    char *path = path_in_tmp("000004.sst");

    REQUIRE_OK(sst_builder_new(env_posix(), path, &o, &b));
    CHECK(sst_builder_entries(b) == 0);
    REQUIRE_OK(sst_builder_finish(b, &props));
    CHECK(props.num_entries == 0 && props.smallest.len == 0 && props.file_size > 0);
    REQUIRE_OK(sst_reader_open(env_posix(), path, 4, NULL, &r));
    CHECK_RC(sst_reader_get(r, slice_make("x", 1), 1, &k, &v), STOAT_ENOTFOUND);
    it = sst_reader_iter(r);
    REQUIRE(it != NULL);
    iter_seek_first(it);
    CHECK(!iter_valid(it));
    iter_seek_last(it);
    CHECK(!iter_valid(it) && iter_status(it) == 0);
    iter_free(it);
    sst_reader_unref(r);
    sst_props_free(&props);
    free(path);
}

static void test_sst_without_filter(void)
{
    table_data t;
    sst_options o = opts_with(STOAT_COMPRESSION_NONE), of = o;
    sst_props p1, p2;
    sst_reader *r;
    char uk[32];
    char *path = path_in_tmp("000005.sst");

    td_make(&t, 3000);
    o.bloom_fp_rate = 0;
    build(path, &of, &t, &p1);
    build(path, &o, &t, &p2);
    CHECK(p2.file_size < p1.file_size); /* no filter block */
    REQUIRE_OK(sst_reader_open(env_posix(), path, 5, NULL, &r));
    CHECK(sst_reader_may_contain(r, ukey_of(uk, 2)) == 1);
    check_gets(r, &t);
    sst_reader_unref(r);
    sst_props_free(&p1);
    sst_props_free(&p2);
    td_free(&t);
    free(path);
}

static void test_sst_filter_rules_out_absent_keys(void)
{
    table_data t;
    sst_options o = opts_with(STOAT_COMPRESSION_NONE);
    sst_props p;
    sst_reader *r;
    char uk[32];
    int maybe = 0;
    char *path = path_in_tmp("000006.sst");

    td_make(&t, 10000);
    build(path, &o, &t, &p);
    REQUIRE_OK(sst_reader_open(env_posix(), path, 6, NULL, &r));
    for (size_t i = 0; i < t.n; i++)
        CHECK(sst_reader_may_contain(r, ikey_user(tk(&t, i))));
    for (uint64_t i = 2; i < 30000; i += 3)
        maybe += sst_reader_may_contain(r, ukey_of(uk, i));
    CHECK(maybe < 200); /* 10000 probes at 1% */
    sst_reader_unref(r);
    sst_props_free(&p);
    td_free(&t);
    free(path);
}

static void test_sst_builder_rejects_bad_input(void)
{
    sst_options o = opts_with(STOAT_COMPRESSION_NONE);
    sst_builder *b;
    char k1[16], k2[16];
    char *path = path_in_tmp("000007.sst");
    size_t l1 = ikey_encode(k1, "b", 1, 5), l2 = ikey_encode(k2, "a", 1, 5);

    o.compression = 7;
    CHECK_RC(sst_builder_new(env_posix(), path, &o, &b), STOAT_EINVAL);
    o.compression = STOAT_COMPRESSION_NONE;
    REQUIRE_OK(sst_builder_new(env_posix(), path, &o, &b));
    REQUIRE_OK(sst_builder_add(b, slice_make(k1, l1), slice_make("\0\0\0", 3)));
    CHECK_RC(sst_builder_add(b, slice_make(k2, l2), slice_make("\0\0\0", 3)), STOAT_EINVAL);
    CHECK_RC(sst_builder_add(b, slice_make(k1, l1), slice_make("\0\0\0", 3)), STOAT_EINVAL);
    CHECK_RC(sst_builder_add(b, slice_make("short", 5), slice_make("", 0)), STOAT_EINVAL);
    CHECK(sst_builder_entries(b) == 1);
    CHECK(env_exists(env_posix(), path) == 1);
    sst_builder_abandon(b);
    CHECK(env_exists(env_posix(), path) == 0);
    sst_builder_abandon(NULL);
    free(path);
}

static void test_sst_builder_size_tracks_the_file(void)
{
    table_data t;
    sst_options o = opts_with(STOAT_COMPRESSION_NONE);
    sst_builder *b;
    sst_props props;
    uint64_t last = 0;
    char *path = path_in_tmp("000008.sst");

    td_make(&t, 20000);
    REQUIRE_OK(sst_builder_new(env_posix(), path, &o, &b));
    for (size_t i = 0; i < t.n; i++) {
        REQUIRE_OK(sst_builder_add(b, tk(&t, i), tv(&t, i)));
        CHECK(sst_builder_size(b) >= last);
        last = sst_builder_size(b);
    }
    CHECK(sst_builder_entries(b) == t.n);
    REQUIRE_OK(sst_builder_finish(b, &props));
    CHECK(last <= props.file_size && props.file_size < last + last / 10);
    CHECK(props.raw_key_bytes > 0 && props.raw_value_bytes > 0);
    sst_props_free(&props);
    td_free(&t);
    free(path);
}

static void test_sst_iterator_keeps_reader_alive(void)
{
    table_data t;
    sst_options o = opts_with(STOAT_COMPRESSION_LZ4);
    sst_props props;
    sst_reader *r;
    iter *it;
    size_t i;
    char *path = path_in_tmp("000009.sst");

    td_make(&t, 5000);
    build(path, &o, &t, &props);
    REQUIRE_OK(sst_reader_open(env_posix(), path, 9, NULL, &r));
    it = sst_reader_iter(r);
    REQUIRE(it != NULL);
    sst_reader_unref(r); /* the iterator's reference keeps it open */
    for (i = 0, iter_seek_first(it); iter_valid(it) && iter_at(it, &t, i); iter_next(it))
        i++;
    CHECK(i == t.n);
    iter_free(it);
    sst_props_free(&props);
    td_free(&t);
    free(path);
}

/* ---- damage ---- */

typedef struct reader_arg {
    sst_reader *r;
    const table_data *t;
    uint64_t seed;
    size_t bad;
} reader_arg;

static void *reader_thread(void *p)
{
    reader_arg *a = p;
    buf k = {0}, v = {0};

    for (int n = 0; n < 5000; n++) {
        size_t i = (size_t)(test_rand(&a->seed) % a->t->n);
        slice ik = tk(a->t, i);
        if (sst_reader_get(a->r, ikey_user(ik), ikey_version(ik), &k, &v) != 0 ||
            slice_cmp(slice_make(v.data, v.len), tv(a->t, i)) != 0)
            a->bad++;
    }
    buf_free(&k);
    buf_free(&v);
    return NULL;
}

static void test_sst_concurrent_gets_share_reader_and_cache(void)
{
    table_data t;
    sst_options o = opts_with(STOAT_COMPRESSION_LZ4);
    sst_props props;
    block_cache *bc;
    sst_reader *r;
    pthread_t th[4];
    reader_arg args[4];
    char *path = path_in_tmp("000014.sst");

    td_make(&t, 30000);
    build(path, &o, &t, &props);
    REQUIRE_OK(block_cache_new(256 << 10, &bc)); /* small: evictions happen */
    REQUIRE_OK(sst_reader_open(env_posix(), path, 14, bc, &r));
    for (int i = 0; i < 4; i++) {
        args[i] = (reader_arg){r, &t, (uint64_t)i + 1, 0};
        REQUIRE(pthread_create(&th[i], NULL, reader_thread, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].bad == 0);
    }
    sst_reader_unref(r);
    block_cache_free(bc);
    sst_props_free(&props);
    td_free(&t);
    free(path);
}

/* A compaction's iterator (fill_cache 0) reads every entry but leaves the
 * block cache as it found it; a plain iterator fills it. */
static void test_sst_iterator_without_cache_fill(void)
{
    table_data t;
    sst_options o = opts_with(STOAT_COMPRESSION_LZ4);
    sst_props props;
    block_cache *bc;
    block_cache_stats st;
    sst_reader *r;
    iter *it;
    size_t i = 0;
    char *path = path_in_tmp("000004.sst");

    td_make(&t, 20000);
    build(path, &o, &t, &props);
    REQUIRE_OK(block_cache_new(64 << 20, &bc));
    REQUIRE_OK(sst_reader_open(env_posix(), path, 4, bc, &r));
    REQUIRE((it = sst_reader_iter_opt(r, 0)) != NULL);
    for (iter_seek_first(it); iter_valid(it); iter_next(it), i++)
        if (!iter_at(it, &t, i))
            break;
    CHECK(i == t.n);
    CHECK(iter_status(it) == 0);
    iter_free(it);
    block_cache_get_stats(bc, &st);
    CHECK(st.entries == 0 && st.usage == 0);
    REQUIRE((it = sst_reader_iter(r)) != NULL);
    for (iter_seek_first(it); iter_valid(it); iter_next(it))
        ;
    iter_free(it);
    block_cache_get_stats(bc, &st);
    CHECK(st.entries > 1);
    sst_reader_unref(r);
    block_cache_free(bc);
    sst_props_free(&props);
    td_free(&t);
    free(path);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_sst_round_trip_uncompressed);
    TEST_RUN(test_sst_round_trip_lz4);
    TEST_RUN(test_sst_round_trip_zstd);
    TEST_RUN(test_sst_round_trip_without_block_cache);
    TEST_RUN(test_sst_index_search_with_shared_prefixes_and_tag_ties);
    TEST_RUN(test_sst_compression_shrinks_the_file);
    TEST_RUN(test_sst_large_value_and_key);
    TEST_RUN(test_sst_empty_table);
    TEST_RUN(test_sst_without_filter);
    TEST_RUN(test_sst_filter_rules_out_absent_keys);
    TEST_RUN(test_sst_builder_rejects_bad_input);
    TEST_RUN(test_sst_builder_size_tracks_the_file);
    TEST_RUN(test_sst_iterator_keeps_reader_alive);
    TEST_RUN(test_sst_concurrent_gets_share_reader_and_cache);
    TEST_RUN(test_sst_iterator_without_cache_fill);
    return test_summary();
}
