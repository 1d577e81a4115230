/*
 * txn_api_test.c - the rest of the transaction API through the public
 * API: the transaction size limits, TTL expiry before and after
 * compaction, reading at old versions with num_versions_to_keep,
 * all-versions iteration and entry metadata, write batches split into
 * chunks, drop_prefix / drop_all, statistics, and misuse (commit twice,
 * discard with an open iterator). Isolation is txn_test.c; helpers in
 * txn_util.h.
 *
 * Each test opens its own database in a fresh directory. The TTL test
 * sleeps up to a second; everything else runs without waiting.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "db_util.h"
#include "test.h"
#include "txn_util.h"

static void test_txn_too_big_entries(void)
{
    stoat_options o;
    stoat_db *db;
    stoat_txn *t;
    char k[16], buf[32];

    stoat_options_init(&o);
    o.max_txn_entries = 10;
    db = open_named("db", &o);
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        txn_set_s(t, k, "v");
    }
    CHECK_RC(stoat_txn_set(t, "k10", 3, "v", 1), STOAT_ETOOBIG);
    CHECK(strstr(stoat_errmsg(db), "too big") != NULL);
    CHECK(strstr(stoat_errmsg(db), "max_txn_entries") != NULL);
    CHECK_RC(stoat_txn_delete(t, "k11", 3), STOAT_ETOOBIG);
    CHECK_STR(db_get_s(db, "k0", buf, sizeof(buf)), ABSENT);   /* nothing written */
    /* Rewriting a key it holds does not grow it. */
    txn_set_s(t, "k0", "again");
    REQUIRE_OK(stoat_txn_delete(t, "k1", 2));
    CHECK_STR(txn_get_s(t, "k10", buf, sizeof(buf)), ABSENT);
    stoat_txn_discard(t);
    CHECK_STR(db_get_s(db, "k0", buf, sizeof(buf)), ABSENT);
    CHECK(count_entries(db, NULL) == 0);
    REQUIRE_OK(stoat_close(db));
}

static void test_txn_too_big_bytes(void)
{
    static char big[300 << 10];
    stoat_options o;
    stoat_db *db;
    stoat_txn *t;
    char buf[32];

    memset(big, 'b', sizeof(big));
    stoat_options_init(&o);
    o.max_txn_bytes = 1000;
    db = open_named("db", &o);
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    REQUIRE_OK(stoat_txn_set(t, "big", 3, big, 990));           /* 993 bytes */
    CHECK_RC(stoat_txn_set(t, "x", 1, "0123456789", 10), STOAT_ETOOBIG);
    CHECK(strstr(stoat_errmsg(db), "max_txn_bytes") != NULL);
    REQUIRE_OK(stoat_txn_set(t, "big", 3, big, 500));           /* shrinks it */
    REQUIRE_OK(stoat_txn_set(t, "x", 1, "0123456789", 10));
    REQUIRE_OK(stoat_txn_commit(t));
    stoat_txn_discard(t);
    CHECK_STR(db_get_s(db, "x", buf, sizeof(buf)), "0123456789");
    REQUIRE_OK(stoat_close(db));
    /* The default: half of the memtable (512 KiB of keys and values here). */
    stoat_options_init(&o);
    o.memtable_size = 1 << 20;
    db = open_named("db2", &o);
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    REQUIRE_OK(stoat_txn_set(t, "a", 1, big, 300 << 10));
    REQUIRE_OK(stoat_txn_set(t, "c", 1, big, 150 << 10));
    CHECK_RC(stoat_txn_set(t, "b", 1, big, 70 << 10), STOAT_ETOOBIG);
    REQUIRE_OK(stoat_txn_set(t, "b", 1, big, 50 << 10));
    stoat_txn_discard(t);
    CHECK(count_entries(db, NULL) == 0);
    REQUIRE_OK(stoat_close(db));
}

/* ---- TTL ---------------------------------------------------------------- */

/* The keys an all-versions scan lists, as "key@deleted " words. */
static const char *all_versions_keys(stoat_db *db, char *out, size_t cap)
{
    stoat_iter_options o = {.all_versions = 1};
    stoat_iter *it;
    size_t len = 0;

    out[0] = '\0';
    REQUIRE_OK(stoat_iter_open(db, &o, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    while (stoat_iter_valid(it)) {
        const void *k;
        size_t klen;
        int del = -1;

        REQUIRE_OK(stoat_iter_key(it, &k, &klen));
        REQUIRE_OK(stoat_iter_meta(it, NULL, NULL, NULL, &del));
        len += (size_t)snprintf(out + len, cap - len, "%.*s%s ", (int)klen, (const char *)k,
                                del ? "@del" : "");
        REQUIRE(len < cap);
        REQUIRE_OK(stoat_iter_next(it));
    }
    stoat_iter_close(it);
    return out;
}

/* Writes the TTL test's keys; returns the expiry of the short-lived ones. */
static uint64_t ttl_write(stoat_db *db)
{
    uint64_t t0 = (uint64_t)time(NULL), exp = 0;
    stoat_batch *b;
    stoat_txn *t;
    const void *v;
    size_t vlen;
    uint8_t um = 0;

    put_s(db, "shadowed", "old");
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    REQUIRE_OK(stoat_txn_set_ex(t, "t:sst", 5, "1", 1, 1000, 0));
    REQUIRE_OK(stoat_txn_set_ex(t, "shadowed", 8, "new", 3, 1000, 0));
    REQUIRE_OK(stoat_txn_set_ex(t, "forever", 7, "1", 1, 0, 0));
    REQUIRE_OK(stoat_txn_commit(t));
    stoat_txn_discard(t);
    REQUIRE_OK(stoat_flush(db));
    REQUIRE_OK(stoat_batch_new(db, &b));
    REQUIRE_OK(stoat_batch_set_ex(b, "t:mem", 5, "1", 1, 1000, 0));
    REQUIRE_OK(stoat_batch_set_ex(b, "t:hour", 6, "1", 1, 3600000, 9));
    REQUIRE_OK(stoat_batch_commit(b));
    stoat_batch_free(b);
    REQUIRE_OK(stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &t));
    REQUIRE_OK(stoat_txn_get_meta(t, "t:hour", 6, &v, &vlen, NULL, &exp, &um));
    CHECK(um == 9 && exp >= t0 * 1000 + 3600000 && exp <= stoat_clock_ms() + 3600001);
    REQUIRE_OK(stoat_txn_get_meta(t, "forever", 7, &v, &vlen, NULL, &exp, NULL));
    CHECK(exp == 0);
    stoat_txn_discard(t);
    return t0 + 1;
}

static void test_txn_ttl(void)
{
    stoat_db *db = open_default();
    stoat_iter *it;
    stoat_txn *t;
    const void *v;
    size_t vlen;
    char buf[512];
    uint64_t exp;

    exp = ttl_write(db);
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    walk(it, 1, buf, sizeof(buf));
    if ((uint64_t)time(NULL) < exp)    /* not yet expired (unless the clock ticked) */
        CHECK_STR(buf, "forever=1 shadowed=new t:hour=1 t:mem=1 t:sst=1 ");
    stoat_iter_close(it);
    /* A pending write with a TTL expires inside its transaction too. */
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    REQUIRE_OK(stoat_txn_set_ex(t, "t:pending", 9, "1", 1, 1000, 0));
    REQUIRE_OK(stoat_txn_get_meta(t, "t:pending", 9, &v, &vlen, NULL, &exp, NULL));
    while (stoat_clock_ms() < exp)      /* the latest expiry of all */
        usleep(50 * 1000);
    CHECK_STR(txn_get_s(t, "t:pending", buf, sizeof(buf)), ABSENT);
    CHECK_STR(txn_get_s(t, "t:sst", buf, sizeof(buf)), ABSENT);
    CHECK_STR(txn_get_s(t, "shadowed", buf, sizeof(buf)), ABSENT);
    stoat_txn_discard(t);
    CHECK_STR(db_get_s(db, "t:mem", buf, sizeof(buf)), ABSENT);
    CHECK_STR(db_get_s(db, "shadowed", buf, sizeof(buf)), ABSENT);   /* "old" stays hidden */
    CHECK_STR(db_get_s(db, "t:hour", buf, sizeof(buf)), "1");
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    CHECK_STR(walk(it, 1, buf, sizeof(buf)), "forever=1 t:hour=1 ");
    REQUIRE_OK(stoat_iter_seek_last(it));
    CHECK_STR(walk(it, -1, buf, sizeof(buf)), "t:hour=1 forever=1 ");
    stoat_iter_close(it);
    /* Stored until a compaction drops them; an idle compaction (no commit
     * for a second) may have dropped some already, never the live ones. */
    all_versions_keys(db, buf, sizeof(buf));
    CHECK(strncmp(buf, "forever ", 8) == 0 && strstr(buf, " t:hour ") != NULL);
    REQUIRE_OK(stoat_flatten(db));
    CHECK_STR(all_versions_keys(db, buf, sizeof(buf)), "forever t:hour ");
    REQUIRE_OK(stoat_close(db));
}

/* ---- versions ----------------------------------------------------------- */

/* What a snapshot at version rv reads for key, into out. */
static const char *get_at(stoat_db *db, uint64_t rv, const char *key, char *out, size_t cap)
{
    stoat_txn *t;
    const char *s;

    REQUIRE_OK(stoat_txn_begin_at(db, rv, &t));
    CHECK(stoat_txn_read_version(t) == rv);
    s = txn_get_s(t, key, out, cap);
    stoat_txn_discard(t);
    return s;
}

/* The versions of key an all-versions scan lists, as "value@version ". */
static const char *versions_of(stoat_db *db, const char *key, int dir, char *out, size_t cap)
{
    stoat_iter_options o = {.prefix = key, .prefix_len = strlen(key), .all_versions = 1};
    stoat_iter *it;
    size_t len = 0;

    out[0] = '\0';
    REQUIRE_OK(stoat_iter_open(db, &o, &it));
    REQUIRE_OK(dir > 0 ? stoat_iter_seek_first(it) : stoat_iter_seek_last(it));
    while (stoat_iter_valid(it)) {
        const void *v;
        size_t vlen;
        uint64_t ver = 0;
        int del = 0;

        REQUIRE_OK(stoat_iter_value(it, &v, &vlen));
        REQUIRE_OK(stoat_iter_meta(it, &ver, NULL, NULL, &del));
        len += (size_t)snprintf(out + len, cap - len, "%.*s@%llu ", del ? 3 : (int)vlen,
                                del ? "DEL" : (const char *)v, (unsigned long long)ver);
        REQUIRE(len < cap);
        REQUIRE_OK(dir > 0 ? stoat_iter_next(it) : stoat_iter_prev(it));
    }
    CHECK_RC(stoat_iter_status(it), 0);
    stoat_iter_close(it);
    return out;
}

static void test_txn_read_at_old_version(void)
{
    stoat_options o;
    stoat_db *db;
    stoat_txn *old;
    uint64_t ver[8];
    char buf[256], want[256];

    stoat_options_init(&o);
    o.num_versions_to_keep = 3;
    db = open_named("db", &o);
    put_s(db, "first", "1");    /* so that the version before v1 exists */
    for (int i = 1; i <= 6; i++) {
        snprintf(buf, sizeof(buf), "v%d", i);
        put_s(db, "v", buf);
        ver[i] = last_version(db);
    }
    for (int i = 1; i <= 6; i++) {
        snprintf(want, sizeof(want), "v%d", i);
        CHECK_STR(get_at(db, ver[i], "v", buf, sizeof(buf)), want);
    }
    CHECK_STR(get_at(db, ver[1] - 1, "v", buf, sizeof(buf)), ABSENT);
    CHECK_RC(stoat_txn_begin_at(db, last_version(db) + 1, &old), STOAT_EINVAL);
    CHECK_RC(stoat_txn_begin_at(db, 0, &old), STOAT_EINVAL);
    /* An open snapshot at v1 keeps everything it and later readers need. */
    REQUIRE_OK(stoat_txn_begin_at(db, ver[1], &old));
    REQUIRE_OK(stoat_flatten(db));
    CHECK_STR(txn_get_s(old, "v", buf, sizeof(buf)), "v1");
    CHECK_STR(get_at(db, ver[2], "v", buf, sizeof(buf)), "v2");
    stoat_txn_discard(old);
    /* Without it, the newest three versions stay and the rest go. */
    put_s(db, "v", "v7");
    ver[7] = last_version(db);
    REQUIRE_OK(stoat_flatten(db));
    CHECK_STR(get_at(db, ver[7], "v", buf, sizeof(buf)), "v7");
    CHECK_STR(get_at(db, ver[6], "v", buf, sizeof(buf)), "v6");
    CHECK_STR(get_at(db, ver[5], "v", buf, sizeof(buf)), "v5");
    CHECK_STR(get_at(db, ver[4], "v", buf, sizeof(buf)), ABSENT);
    CHECK_STR(get_at(db, ver[2], "v", buf, sizeof(buf)), ABSENT);
    snprintf(want, sizeof(want), "v7@%llu v6@%llu v5@%llu ", (unsigned long long)ver[7],
             (unsigned long long)ver[6], (unsigned long long)ver[5]);
    CHECK_STR(versions_of(db, "v", 1, buf, sizeof(buf)), want);
    REQUIRE_OK(stoat_close(db));
}

static void test_txn_iter_all_versions(void)
{
    stoat_db *db = open_default();
    uint64_t v1, v2, v3, v4;
    char buf[256], want[256];
    stoat_iter_options o = {.all_versions = 1};
    stoat_iter *it;
    stoat_txn *t;

    put_s(db, "a", "1");
    v1 = last_version(db);
    put_s(db, "a", "2");
    v2 = last_version(db);
    REQUIRE_OK(stoat_flush(db));
    REQUIRE_OK(stoat_delete(db, "a", 1));
    v3 = last_version(db);
    put_s(db, "a", "4");
    v4 = last_version(db);
    put_s(db, "b", "1");
    snprintf(want, sizeof(want), "4@%llu DEL@%llu 2@%llu 1@%llu ", (unsigned long long)v4,
             (unsigned long long)v3, (unsigned long long)v2, (unsigned long long)v1);
    CHECK_STR(versions_of(db, "a", 1, buf, sizeof(buf)), want);
    snprintf(want, sizeof(want), "1@%llu 2@%llu DEL@%llu 4@%llu ", (unsigned long long)v1,
             (unsigned long long)v2, (unsigned long long)v3, (unsigned long long)v4);
    CHECK_STR(versions_of(db, "a", -1, buf, sizeof(buf)), want);
    /* Within a snapshot at v2 only what existed then. */
    REQUIRE_OK(stoat_txn_begin_at(db, v2, &t));
    REQUIRE_OK(stoat_txn_iter_open(t, &o, &it));
    REQUIRE_OK(stoat_iter_seek_first(it));
    CHECK_STR(walk(it, 1, buf, sizeof(buf)), "a=2 a=1 ");
    stoat_iter_close(it);
    stoat_txn_discard(t);
    REQUIRE_OK(stoat_close(db));
}

static void test_txn_iter_meta(void)
{
    stoat_db *db = open_default();
    stoat_iter *it;
    stoat_txn *t;
    uint64_t ver = 0, exp = 0, v_a;
    uint8_t um = 0;
    int del = -1;

    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    REQUIRE_OK(stoat_txn_set_ex(t, "a", 1, "x", 1, 3600000, 42));
    REQUIRE_OK(stoat_txn_commit(t));
    stoat_txn_discard(t);
    v_a = last_version(db);
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    CHECK_RC(stoat_iter_meta(it, &ver, NULL, NULL, NULL), STOAT_EINVAL);   /* unpositioned */
    REQUIRE_OK(stoat_iter_seek_first(it));
    REQUIRE_OK(stoat_iter_meta(it, &ver, &exp, &um, &del));
    CHECK(ver == v_a && um == 42 && del == 0);
    CHECK(exp >= stoat_clock_ms() + 3599000 && exp <= stoat_clock_ms() + 3600001);
    REQUIRE_OK(stoat_iter_meta(it, NULL, NULL, NULL, NULL));
    stoat_iter_close(it);
    /* A transaction's own write: its user-meta and expiry. */
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    REQUIRE_OK(stoat_txn_set_ex(t, "b", 1, "y", 1, 0, 5));
    REQUIRE_OK(stoat_txn_iter_open(t, NULL, &it));
    REQUIRE_OK(stoat_iter_seek(it, "b", 1));
    REQUIRE(stoat_iter_valid(it));
    REQUIRE_OK(stoat_iter_meta(it, NULL, &exp, &um, &del));
    CHECK(exp == 0 && um == 5 && del == 0);
    stoat_iter_close(it);
    stoat_txn_discard(t);
    REQUIRE_OK(stoat_close(db));
}

/* ---- batches, drops, statistics ----------------------------------------- */

static void test_txn_batch_chunks(void)
{
    stoat_options o;
    stoat_db *db;
    stoat_batch *b;
    stoat_iter_options p = prefix_opts("k");
    uint64_t before;
    char k[16], buf[32];

    stoat_options_init(&o);
    o.max_txn_entries = 100;
    db = open_named("db", &o);
    put_s(db, "gone", "1");
    before = last_version(db);
    REQUIRE_OK(stoat_batch_new(db, &b));
    for (int i = 0; i < 1049; i++) {
        snprintf(k, sizeof(k), "k%04d", i);
        REQUIRE_OK(stoat_batch_set(b, k, 5, k, 5));
    }
    REQUIRE_OK(stoat_batch_delete(b, "gone", 4));
    CHECK(count_entries(db, &p) >= 1000);  /* full chunks went already */
    REQUIRE_OK(stoat_batch_commit(b));
    stoat_batch_free(b);
    CHECK(count_entries(db, &p) == 1049);
    CHECK(count_entries(db, NULL) == 1049);
    CHECK_STR(db_get_s(db, "k0777", buf, sizeof(buf)), "k0777");
    CHECK(last_version(db) - before >= 11);     /* at least ceil(1050 / 100) commits */
    CHECK_RC(stoat_batch_commit(NULL), STOAT_EINVAL);
    REQUIRE_OK(stoat_close(db));
}

static void test_txn_drop_prefix_and_all(void)
{
    stoat_db *db = open_default();
    stoat_iter_options a = prefix_opts("a:"), b = prefix_opts("b:");
    stoat_stats st;
    char k[16], buf[32];
    uint64_t tables = 0;

    for (int i = 0; i < 600; i++) {
        snprintf(k, sizeof(k), "%c:%03d", i % 2 ? 'b' : 'a', i / 2);
        put_s(db, k, "v");
        if (i == 300)
            REQUIRE_OK(stoat_flush(db));
    }
    REQUIRE_OK(stoat_drop_prefix(db, "a:", 2));
    CHECK(count_entries(db, &a) == 0);
    CHECK(count_entries(db, &b) == 300);
    CHECK_STR(db_get_s(db, "a:005", buf, sizeof(buf)), ABSENT);
    CHECK_STR(db_get_s(db, "b:005", buf, sizeof(buf)), "v");
    CHECK_RC(stoat_drop_prefix(db, NULL, 2), STOAT_EINVAL);
    REQUIRE_OK(stoat_drop_all(db));
    CHECK(count_entries(db, NULL) == 0);
    /* With no reader left, compaction frees all of it. */
    REQUIRE_OK(stoat_flatten(db));
    st = stats_of(db);
    for (int l = 0; l < st.num_levels; l++)
        tables += st.level_tables[l];
    CHECK(tables == 0);
    put_s(db, "a:001", "back");
    CHECK_STR(db_get_s(db, "a:001", buf, sizeof(buf)), "back");
    REQUIRE_OK(stoat_close(db));
}

static void test_txn_stats(void)
{
    stoat_options o;
    stoat_db *db;
    stoat_stats st;
    stoat_txn *t, *u;
    char k[16];
    int last;

    dbu_small_options(&o);
    db = open_named("db", &o);
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof(k), "k%05d", i);
        put_s(db, k, "0123456789012345678901234567890123456789");
    }
    put_s(db, "c1", "0");
    put_s(db, "c2", "0");
    for (int i = 0; i < 5; i++) {
        REQUIRE_OK(stoat_txn_begin(db, 0, &t));
        txn_set_num(t, "c1", txn_get_num(t, "c1") + 1);
        REQUIRE_OK(stoat_txn_commit(t));
        stoat_txn_discard(t);
    }
    for (int i = 0; i < 2; i++) {
        REQUIRE_OK(stoat_txn_begin(db, 0, &t));
        REQUIRE_OK(stoat_txn_begin(db, 0, &u));
        txn_set_num(t, "c2", txn_get_num(t, "c2") + 1);
        txn_set_num(u, "c2", txn_get_num(u, "c2") + 1);
        REQUIRE_OK(stoat_txn_commit(u));
        CHECK_RC(stoat_txn_commit(t), STOAT_ECONFLICT);
        stoat_txn_discard(t);
        stoat_txn_discard(u);
    }
    REQUIRE_OK(stoat_flatten(db));
    st = stats_of(db);
    last = st.num_levels - 1;
    CHECK(st.num_levels == o.num_levels);
    for (int l = 0; l < last; l++)
        CHECK(st.level_tables[l] == 0 && st.level_bytes[l] == 0);
    CHECK(st.level_tables[last] >= 1 && st.level_bytes[last] > 0);
    CHECK(st.memtables >= 1);
    CHECK(st.last_version >= 3009);     /* one version per commit */
    CHECK(st.flushes >= 2 && st.compactions >= 1);
    CHECK(st.block_cache_capacity == o.cache_size);
    CHECK(st.block_cache_bytes <= st.block_cache_capacity);
    CHECK(st.open_files <= (uint64_t)o.max_open_files);
    CHECK(st.txn_commits == 7 && st.txn_conflicts == 2);
    CHECK(count_entries(db, NULL) == 3002);
    st = stats_of(db);
    CHECK(st.block_cache_hits + st.block_cache_misses > 0);
    REQUIRE_OK(stoat_close(db));
}

/* ---- misuse ------------------------------------------------------------- */

static void test_txn_commit_after_commit(void)
{
    stoat_db *db = open_default();
    stoat_txn *t;
    stoat_iter *it = (stoat_iter *)(uintptr_t)1;
    const void *v;
    size_t vlen;
    char buf[32];

    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    txn_set_s(t, "a", "1");
    REQUIRE_OK(stoat_txn_commit(t));
    CHECK_RC(stoat_txn_commit(t), STOAT_EINVAL);
    CHECK_RC(stoat_txn_set(t, "b", 1, "1", 1), STOAT_EINVAL);
    CHECK_RC(stoat_txn_get(t, "a", 1, &v, &vlen), STOAT_EINVAL);
    CHECK_RC(stoat_txn_iter_open(t, NULL, &it), STOAT_EINVAL);
    CHECK(it == NULL);
    stoat_txn_discard(t);
    CHECK_STR(db_get_s(db, "a", buf, sizeof(buf)), "1");
    CHECK_STR(db_get_s(db, "b", buf, sizeof(buf)), ABSENT);
    /* After a conflict, too. */
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    txn_get_s(t, "a", buf, sizeof(buf));
    txn_set_s(t, "b", "1");
    put_s(db, "a", "2");
    CHECK_RC(stoat_txn_commit(t), STOAT_ECONFLICT);
    CHECK_RC(stoat_txn_commit(t), STOAT_EINVAL);
    stoat_txn_discard(t);
    CHECK_STR(db_get_s(db, "b", buf, sizeof(buf)), ABSENT);
    stoat_txn_discard(NULL);
    CHECK_RC(stoat_txn_commit(NULL), STOAT_EINVAL);
    REQUIRE_OK(stoat_close(db));
}

static void test_txn_discard_with_open_iterator(void)
{
    stoat_db *db = open_default();
    stoat_txn *t;
    stoat_iter *it, *it2;
    char buf[64];

    put_s(db, "a", "1");
    REQUIRE_OK(stoat_txn_begin(db, 0, &t));
    txn_set_s(t, "b", "2");
    REQUIRE_OK(stoat_txn_iter_open(t, NULL, &it));
    REQUIRE_OK(stoat_txn_iter_open(t, NULL, &it2));
    REQUIRE_OK(stoat_iter_seek_first(it));
    CHECK_RC(stoat_txn_commit(t), STOAT_EINVAL);    /* iterators still open */
    stoat_iter_close(it2);
    stoat_txn_discard(t);
    /* The iterator outlives its transaction: it may still be read and closed. */
    CHECK(stoat_iter_valid(it));
    CHECK_STR(walk(it, 1, buf, sizeof(buf)), "a=1 b=2 ");
    stoat_iter_close(it);
    CHECK_STR(db_get_s(db, "b", buf, sizeof(buf)), ABSENT);
    REQUIRE_OK(stoat_close(db));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_txn_too_big_entries);
    TEST_RUN(test_txn_too_big_bytes);
    TEST_RUN(test_txn_ttl);
    TEST_RUN(test_txn_read_at_old_version);
    TEST_RUN(test_txn_iter_all_versions);
    TEST_RUN(test_txn_iter_meta);
    TEST_RUN(test_txn_batch_chunks);
    TEST_RUN(test_txn_drop_prefix_and_all);
    TEST_RUN(test_txn_stats);
    TEST_RUN(test_txn_commit_after_commit);
    TEST_RUN(test_txn_discard_with_open_iterator);
    return test_summary();
}
