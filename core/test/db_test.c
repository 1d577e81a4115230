/*
 * db_test.c - the database through its public API: reads and writes,
 * argument checks and limits, reopening, iterators over the memtables and
 * every level, what compaction drops and what it must keep, and use from
 * several threads.
 *
 * Each test opens its own database in a fresh directory with small sizes
 * (db_util.h) so that a few thousand writes reach flushes and compactions.
 * The fault env, damaged files and other processes have their own files:
 * db_recovery_test.c, db_corruption_test.c, db_process_test.c.
 */
#include <pthread.h>
#include <sys/mman.h>

#include "db_util.h"
#include "test.h"

/* Keys "k0000".."k2199": in sort order, key i is index i. */
#define NKEYS 2200

/* A key's expected state: ABSENT or the tag of its value. */
#define ABSENT UINT64_MAX

static size_t tag_len(uint64_t tag)
{
    return 10 + tag % 90;
}

static void key_of(int i, char out[16])
{
    snprintf(out, 16, "k%04u", (unsigned)i % 10000u);
}

static stoat_db *open_small(const char *dir)
{
    stoat_options o;
    stoat_db *db;

    dbu_small_options(&o);
    REQUIRE_OK(stoat_open(dir, &o, &db));
    return db;
}

static void put_tag(stoat_db *db, const void *key, size_t klen, uint64_t tag)
{
    char val[128];

    dbu_value(tag, val, tag_len(tag));
    REQUIRE_OK(stoat_put(db, key, klen, val, tag_len(tag)));
}

/* Writes key i with tag, or deletes it when tag is ABSENT, and records it. */
static void set_key(stoat_db *db, uint64_t *model, int i, uint64_t tag)
{
    char k[16];

    key_of(i, k);
    if (tag == ABSENT)
        REQUIRE_OK(stoat_delete(db, k, 5));
    else
        put_tag(db, k, 5, tag);
    model[i] = tag;
}

/* Checks stoat_get of key i against the model; returns 1 if it matched. */
static int get_matches(stoat_db *db, const uint64_t *model, int i)
{
    char k[16];
    void *val = NULL;
    size_t vlen = 0;
    int rc, ok;

    key_of(i, k);
    rc = stoat_get(db, k, 5, &val, &vlen);
    if (model[i] == ABSENT)
        ok = rc == STOAT_ENOTFOUND && val == NULL;
    else
        ok = rc == 0 && dbu_value_is(model[i], tag_len(model[i]), val, vlen);
    if (!ok)
        test_fail(__FILE__, __LINE__, "get %s: rc %d, want %s", k, rc,
                  model[i] == ABSENT ? "absent" : "a value");
    stoat_free(val);
    return ok;
}

static void check_all_gets(stoat_db *db, const uint64_t *model)
{
    int bad = 0;

    for (int i = 0; i < NKEYS && bad < 5; i++)
        bad += !get_matches(db, model, i);
    CHECK(bad == 0);
}

/* Next present index after i in direction dir within [lo, hi), or -1. */
static int model_step(const uint64_t *model, int i, int dir, int lo, int hi)
{
    for (i += dir; i >= lo && i < hi; i += dir)
        if (model[i] != ABSENT)
            return i;
    return -1;
}

/*
 * Checks that the iterator, positioned by the caller, yields exactly the
 * present keys of the model from `want` on in direction dir within
 * [lo, hi), for at most `steps` entries (0: to the end).
 */
static void check_walk(stoat_iter *it, const uint64_t *model, int want, int dir, int lo, int hi,
                       int steps)
{
    for (int n = 0; steps == 0 || n < steps; n++) {
        const void *k, *v;
        size_t klen, vlen;
        char wk[16];

        if (want < 0) {
            CHECK(!stoat_iter_valid(it));
            CHECK_RC(stoat_iter_status(it), 0);
            return;
        }
        key_of(want, wk);
        REQUIRE(stoat_iter_valid(it));
        REQUIRE_OK(stoat_iter_key(it, &k, &klen));
        REQUIRE_OK(stoat_iter_value(it, &v, &vlen));
        if (klen != 5 || memcmp(k, wk, 5) != 0) {
            test_fail(__FILE__, __LINE__, "iterator at %.*s, want %s", (int)klen,
                      (const char *)k, wk);
            return;
        }
        CHECK(dbu_value_is(model[want], tag_len(model[want]), v, vlen));
        if (dir > 0)
            stoat_iter_next(it);
        else
            stoat_iter_prev(it);
        want = model_step(model, want, dir, lo, hi);
    }
}

static void test_db_put_get_delete(void)
{
    stoat_db *db = open_small(test_tmpdir());
    void *val = (void *)1;
    size_t vlen = 7;

    CHECK_RC(stoat_get(db, "a", 1, &val, &vlen), STOAT_ENOTFOUND);
    CHECK(val == NULL);
    REQUIRE_OK(stoat_put(db, "a", 1, "one", 3));
    REQUIRE_OK(stoat_get(db, "a", 1, &val, &vlen));
    CHECK(vlen == 3 && memcmp(val, "one", 3) == 0);
    stoat_free(val);
    REQUIRE_OK(stoat_put(db, "a", 1, "uno", 3));
    REQUIRE_OK(stoat_put(db, "a\0b", 3, "", 0));
    REQUIRE_OK(stoat_get(db, "a", 1, &val, &vlen));
    CHECK(vlen == 3 && memcmp(val, "uno", 3) == 0);
    stoat_free(val);
    REQUIRE_OK(stoat_get(db, "a\0b", 3, &val, &vlen));
    CHECK(vlen == 0);
    stoat_free(val);
    REQUIRE_OK(stoat_delete(db, "a", 1));
    REQUIRE_OK(stoat_delete(db, "never", 5));
    CHECK_RC(stoat_get(db, "a", 1, &val, &vlen), STOAT_ENOTFOUND);
    CHECK_RC(stoat_get(db, "a\0", 2, &val, &vlen), STOAT_ENOTFOUND);
    REQUIRE_OK(stoat_get(db, "a\0b", 3, &val, &vlen));
    stoat_free(val);
    stoat_free(NULL);
    REQUIRE_OK(stoat_close(db));
    CHECK(stoat_close(NULL) == 0);
}

static void test_db_rejects_bad_arguments(void)
{
    stoat_db *db = open_small(test_tmpdir());
    void *val = NULL;
    size_t vlen;
    stoat_iter *it;

    CHECK_RC(stoat_put(NULL, "a", 1, "v", 1), STOAT_EINVAL);
    CHECK_RC(stoat_put(db, "", 0, "v", 1), STOAT_EINVAL);
    CHECK_RC(stoat_put(db, NULL, 1, "v", 1), STOAT_EINVAL);
    CHECK_RC(stoat_put(db, "a", 1, NULL, 1), STOAT_EINVAL);
    CHECK_RC(stoat_delete(db, "", 0), STOAT_EINVAL);
    CHECK_RC(stoat_delete(NULL, "a", 1), STOAT_EINVAL);
    CHECK_RC(stoat_get(db, "", 0, &val, &vlen), STOAT_EINVAL);
    CHECK_RC(stoat_get(db, "a", 1, NULL, &vlen), STOAT_EINVAL);
    CHECK_RC(stoat_get(db, "a", 1, &val, NULL), STOAT_EINVAL);
    CHECK_RC(stoat_get(NULL, "a", 1, &val, &vlen), STOAT_EINVAL);
    CHECK(strlen(stoat_errmsg(db)) > 0);
    CHECK_RC(stoat_sync(NULL), STOAT_EINVAL);
    CHECK_RC(stoat_flush(NULL), STOAT_EINVAL);
    CHECK_RC(stoat_iter_open(NULL, NULL, &it), STOAT_EINVAL);
    REQUIRE_OK(stoat_close(db));
}

/* Keys up to STOAT_MAX_KEY_SIZE work; one byte more is ETOOBIG. */
static void test_db_key_size_limit(void)
{
    stoat_db *db = open_small(test_tmpdir());
    size_t max = STOAT_MAX_KEY_SIZE;
    char *key = malloc(max + 1);
    void *val = NULL;
    size_t vlen;

    REQUIRE(key != NULL);
    dbu_value(42, key, max + 1);
    CHECK_RC(stoat_put(db, key, max + 1, "v", 1), STOAT_ETOOBIG);
    CHECK(strlen(stoat_errmsg(db)) > 0);
    CHECK_RC(stoat_delete(db, key, max + 1), STOAT_ETOOBIG);
    CHECK_RC(stoat_get(db, key, max + 1, &val, &vlen), STOAT_ETOOBIG);
    REQUIRE_OK(stoat_put(db, key, max, "big key", 7));
    REQUIRE_OK(stoat_flush(db));
    REQUIRE_OK(stoat_close(db));
    db = open_small(test_tmpdir());
    REQUIRE_OK(stoat_get(db, key, max, &val, &vlen));
    CHECK(vlen == 7 && memcmp(val, "big key", 7) == 0);
    stoat_free(val);
    CHECK_RC(stoat_get(db, key, max - 1, &val, &vlen), STOAT_ENOTFOUND);
    REQUIRE_OK(stoat_close(db));
    free(key);
}

/*
 * A value one byte over the limit is ETOOBIG before a byte is read. The
 * buffer is reserved address space (MAP_NORESERVE): it costs no memory.
 */
static void test_db_value_size_limit(void)
{
    stoat_db *db = open_small(test_tmpdir());
    size_t len = (size_t)STOAT_MAX_VALUE_SIZE + 1;
    void *big = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    REQUIRE(big != MAP_FAILED);
    CHECK_RC(stoat_put(db, "k", 1, big, len), STOAT_ETOOBIG);
    CHECK_RC(stoat_put(db, "k", 1, big, SIZE_MAX), STOAT_ETOOBIG);
    CHECK(strlen(stoat_errmsg(db)) > 0);
    munmap(big, len);
    REQUIRE_OK(stoat_put(db, "k", 1, "ok", 2));
    REQUIRE_OK(stoat_close(db));
}

/* Values far bigger than a memtable, a block or a table still round-trip. */
static void test_db_large_values(void)
{
    static const size_t lens[] = {0, 1, 4095, 70000, 300000, 2 << 20};
    const size_t n = sizeof(lens) / sizeof(lens[0]);
    stoat_db *db = open_small(test_tmpdir());
    char *buf = malloc(2 << 20);

    REQUIRE(buf != NULL);
    for (size_t i = 0; i < n; i++) {
        char k[16];

        key_of((int)i, k);
        dbu_value(i, buf, lens[i]);
        REQUIRE_OK(stoat_put(db, k, 5, buf, lens[i]));
    }
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < n; i++) {
            void *v;
            size_t vlen;
            char k[16];

            key_of((int)i, k);
            REQUIRE_OK(stoat_get(db, k, 5, &v, &vlen));
            CHECK(dbu_value_is(i, lens[i], v, vlen));
            stoat_free(v);
        }
        if (round == 0)
            REQUIRE_OK(stoat_flatten(db));
        if (round == 1) {
            REQUIRE_OK(stoat_close(db));
            db = open_small(test_tmpdir());
        }
    }
    REQUIRE_OK(stoat_close(db));
    free(buf);
}

static void test_db_open_options(void)
{
    char dir[DBU_PATH_MAX];
    stoat_options o;
    stoat_db *db = (stoat_db *)(uintptr_t)1; /* must come back NULL */

    dbu_path(dir, test_tmpdir(), "db");
    stoat_options_init(&o);
    CHECK(o.create_if_missing == 1 && o.read_only == 0 && o.sync == STOAT_SYNC_NONE);
    o.create_if_missing = 0;
    CHECK(stoat_open(dir, &o, &db) < 0);
    CHECK(db == NULL);
    CHECK(strlen(stoat_errmsg(NULL)) > 0);
    CHECK(!dbu_exists(dir));
    CHECK_RC(stoat_open(NULL, &o, &db), STOAT_EINVAL);
    o.create_if_missing = 1;
    o.num_levels = 0;
    CHECK_RC(stoat_open(dir, &o, &db), STOAT_EINVAL);
    o.num_levels = 1000;
    CHECK_RC(stoat_open(dir, &o, &db), STOAT_EINVAL);
    stoat_options_init(&o);
    o.compression = 99;
    CHECK_RC(stoat_open(dir, &o, &db), STOAT_EINVAL);
    stoat_options_init(&o);
    o.memtable_size = 0;
    CHECK_RC(stoat_open(dir, &o, &db), STOAT_EINVAL);
    CHECK(db == NULL);

    stoat_options_init(&o);
    REQUIRE_OK(stoat_open(dir, &o, &db));
    REQUIRE_OK(stoat_put(db, "k", 1, "v", 1));
    REQUIRE_OK(stoat_close(db));
    o.error_if_exists = 1;
    CHECK_RC(stoat_open(dir, &o, &db), STOAT_EEXIST);
    CHECK(db == NULL);
    o.error_if_exists = 0;
    o.create_if_missing = 0;
    REQUIRE_OK(stoat_open(dir, &o, &db));
    REQUIRE_OK(stoat_close(db));
}

static void test_db_names_and_version(void)
{
    CHECK(strcmp(stoat_version(), STOAT_VERSION_STRING) == 0);
    CHECK(strcmp(stoat_strerror(STOAT_EBUSY), stoat_strerror(STOAT_ECORRUPT)) != 0);
    CHECK(strlen(stoat_strerror(STOAT_EFORKED)) > 0);
    CHECK(strlen(stoat_strerror(STOAT_ETOOBIG)) > 0);
}

/* Data in the WAL, in L0 and in deeper levels all survive close/reopen. */
static void test_db_reopen_keeps_data(void)
{
    static uint64_t model[NKEYS];
    stoat_db *db = open_small(test_tmpdir());

    for (int i = 0; i < NKEYS; i++)
        set_key(db, model, i, (uint64_t)i);
    REQUIRE_OK(stoat_flatten(db));
    for (int i = 0; i < NKEYS; i += 3)
        set_key(db, model, i, i % 2 ? ABSENT : 100000u + (uint64_t)i);
    REQUIRE_OK(stoat_flush(db));
    for (int i = 0; i < NKEYS; i += 7)
        set_key(db, model, i, i % 2 ? 200000u + (uint64_t)i : ABSENT);
    check_all_gets(db, model);
    for (int round = 0; round < 2; round++) {
        REQUIRE_OK(stoat_close(db));
        db = open_small(test_tmpdir());
        check_all_gets(db, model);
    }
    REQUIRE_OK(stoat_close(db));
}

/*
 * A layered database: a flattened base, an overwriting and deleting L0
 * layer, and a memtable layer on top of that.
 */
static stoat_db *build_layers(uint64_t *model)
{
    stoat_db *db = open_small(test_tmpdir());

    for (int i = 0; i < NKEYS; i++)
        model[i] = ABSENT;
    for (int i = 0; i < 2000; i++)
        set_key(db, model, i, (uint64_t)i);
    REQUIRE_OK(stoat_flatten(db));
    for (int i = 0; i < 2000; i += 3)
        set_key(db, model, i, 10000u + (uint64_t)i);
    for (int i = 0; i < 2000; i += 5)
        set_key(db, model, i, ABSENT);
    REQUIRE_OK(stoat_flush(db));
    for (int i = 0; i < NKEYS; i += 7)
        set_key(db, model, i, 20000u + (uint64_t)i);
    for (int i = 0; i < NKEYS; i += 11)
        set_key(db, model, i, ABSENT);
    return db;
}

static void test_db_iterator_full_scans(void)
{
    static uint64_t model[NKEYS];
    stoat_db *db = build_layers(model);
    stoat_iter *it;

    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    CHECK(!stoat_iter_valid(it));
    stoat_iter_seek_first(it);
    check_walk(it, model, model_step(model, -1, 1, 0, NKEYS), 1, 0, NKEYS, 0);
    stoat_iter_seek_last(it);
    check_walk(it, model, model_step(model, NKEYS, -1, 0, NKEYS), -1, 0, NKEYS, 0);
    stoat_iter_close(it);
    REQUIRE_OK(stoat_close(db));
}

static void test_db_iterator_seeks_and_direction_changes(void)
{
    static uint64_t model[NKEYS];
    stoat_db *db = build_layers(model);
    uint64_t rng = 7;
    stoat_iter *it;
    int a0, a2;

    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    for (int n = 0; n < 300; n++) {
        /* t = -1 stands for "a", before every key; "k0123x" sorts just
         * after k0123 and before k0124. */
        int t = (int)(test_rand(&rng) % (NKEYS + 10)) - 1;
        char k[16];

        if (t < 0)
            strcpy(k, "a");
        else
            snprintf(k, sizeof(k), "k%04dx", t);
        if (n % 2 == 0) {
            stoat_iter_seek(it, k, strlen(k));
            check_walk(it, model, model_step(model, t, 1, 0, NKEYS), 1, 0, NKEYS, 5);
        } else {
            int from = t >= NKEYS ? NKEYS : t + 1;

            stoat_iter_seek_for_prev(it, k, strlen(k));
            check_walk(it, model, model_step(model, from, -1, 0, NKEYS), -1, 0, NKEYS, 5);
        }
    }
    /* Zig-zag around an exact seek: a0 is the first present key >= k1000,
     * a1, a2 the ones after it. */
    stoat_iter_seek(it, "k1000", 5);
    a0 = model_step(model, 999, 1, 0, NKEYS);
    a2 = model_step(model, model_step(model, a0, 1, 0, NKEYS), 1, 0, NKEYS);
    check_walk(it, model, a0, 1, 0, NKEYS, 3);      /* ends on a3 */
    stoat_iter_prev(it);
    check_walk(it, model, a2, -1, 0, NKEYS, 4);     /* a2 .. a-1, ends on a-2 */
    stoat_iter_next(it);
    stoat_iter_next(it);
    check_walk(it, model, a0, 1, 0, NKEYS, 0);
    stoat_iter_close(it);
    REQUIRE_OK(stoat_close(db));
}

static void test_db_iterator_prefix_and_bounds(void)
{
    static uint64_t model[NKEYS];
    stoat_db *db = build_layers(model);
    stoat_iter_options io = {0};
    stoat_iter *it;

    io.prefix = "k01";
    io.prefix_len = 3;
    REQUIRE_OK(stoat_iter_open(db, &io, &it));
    stoat_iter_seek_first(it);
    check_walk(it, model, model_step(model, 99, 1, 100, 200), 1, 100, 200, 0);
    stoat_iter_seek_last(it);
    check_walk(it, model, model_step(model, 200, -1, 100, 200), -1, 100, 200, 0);
    stoat_iter_seek(it, "k0", 2);
    check_walk(it, model, model_step(model, 99, 1, 100, 200), 1, 100, 200, 0);
    stoat_iter_seek_for_prev(it, "k2", 2);
    check_walk(it, model, model_step(model, 200, -1, 100, 200), -1, 100, 200, 0);
    stoat_iter_seek(it, "k02", 3);
    CHECK(!stoat_iter_valid(it));
    stoat_iter_close(it);

    memset(&io, 0, sizeof(io));
    io.lower = "k0150";
    io.lower_len = 5;
    io.upper = "k1234";
    io.upper_len = 5;
    REQUIRE_OK(stoat_iter_open(db, &io, &it));
    stoat_iter_seek_first(it);
    check_walk(it, model, model_step(model, 149, 1, 150, 1234), 1, 150, 1234, 0);
    stoat_iter_seek_last(it);
    check_walk(it, model, model_step(model, 1234, -1, 150, 1234), -1, 150, 1234, 0);
    stoat_iter_seek(it, "k0000", 5);
    check_walk(it, model, model_step(model, 149, 1, 150, 1234), 1, 150, 1234, 3);
    stoat_iter_seek_for_prev(it, "k9999", 5);
    check_walk(it, model, model_step(model, 1234, -1, 150, 1234), -1, 150, 1234, 3);
    stoat_iter_close(it);

    io.prefix = "k12";
    io.prefix_len = 3;
    REQUIRE_OK(stoat_iter_open(db, &io, &it));
    stoat_iter_seek_first(it);
    check_walk(it, model, model_step(model, 1199, 1, 1200, 1234), 1, 1200, 1234, 0);
    stoat_iter_seek_last(it);
    check_walk(it, model, model_step(model, 1234, -1, 1200, 1234), -1, 1200, 1234, 0);
    stoat_iter_close(it);
    REQUIRE_OK(stoat_close(db));
}

/* An iterator reads the snapshot it was opened on, through compactions. */
static void test_db_iterator_snapshot_survives_compaction(void)
{
    static uint64_t model[NKEYS], later[NKEYS];
    stoat_db *db = build_layers(model);
    stoat_iter *it;

    memcpy(later, model, sizeof(model));
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    for (int i = 0; i < NKEYS; i++)
        set_key(db, later, i, i % 2 ? ABSENT : 50000u + (uint64_t)i);
    REQUIRE_OK(stoat_flatten(db));
    stoat_iter_seek_first(it);
    check_walk(it, model, model_step(model, -1, 1, 0, NKEYS), 1, 0, NKEYS, 0);
    stoat_iter_seek_last(it);
    check_walk(it, model, model_step(model, NKEYS, -1, 0, NKEYS), -1, 0, NKEYS, 0);
    stoat_iter_close(it);
    check_all_gets(db, later);
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    stoat_iter_seek_first(it);
    check_walk(it, later, model_step(later, -1, 1, 0, NKEYS), 1, 0, NKEYS, 0);
    stoat_iter_close(it);
    REQUIRE_OK(stoat_close(db));
}

/* Flatten leaves every table in the last level and nothing above it. */
static void test_db_flatten_fills_only_the_last_level(void)
{
    static uint64_t model[NKEYS];
    stoat_db *db = build_layers(model);
    stoat_stats st;

    REQUIRE_OK(stoat_flatten(db));
    REQUIRE_OK(stoat_stats_get(db, &st));
    REQUIRE(st.num_levels == 7);
    for (int l = 0; l < st.num_levels - 1; l++)
        CHECK(st.level_tables[l] == 0 && st.level_bytes[l] == 0);
    CHECK(st.level_tables[st.num_levels - 1] > 0);
    CHECK(st.flushes > 0 && st.compactions > 0);
    check_all_gets(db, model);
    REQUIRE_OK(stoat_close(db));
}

/* Overwriting one key many times leaves one version after flatten. */
static void test_db_flatten_drops_old_versions(void)
{
    stoat_db *db = open_small(test_tmpdir());
    char val[1024];
    void *v;
    size_t vlen;

    for (uint64_t i = 0; i < 2000; i++) {
        dbu_value(i, val, sizeof(val));
        REQUIRE_OK(stoat_put(db, "hot", 3, val, sizeof(val)));
    }
    REQUIRE_OK(stoat_flatten(db));
    CHECK(dbu_dir_bytes(test_tmpdir(), ".sst") < 32 << 10);
    REQUIRE_OK(stoat_get(db, "hot", 3, &v, &vlen));
    CHECK(dbu_value_is(1999, sizeof(val), v, vlen));
    stoat_free(v);
    REQUIRE_OK(stoat_close(db));
}

/* Deleting everything and flattening leaves (almost) no table bytes. */
static void test_db_flatten_drops_tombstones(void)
{
    static uint64_t model[NKEYS];
    stoat_db *db = open_small(test_tmpdir());
    stoat_iter *it;

    for (int i = 0; i < NKEYS; i++)
        set_key(db, model, i, (uint64_t)i);
    REQUIRE_OK(stoat_flatten(db));
    CHECK(dbu_dir_bytes(test_tmpdir(), ".sst") > NKEYS * 10);
    for (int i = 0; i < NKEYS; i++)
        set_key(db, model, i, ABSENT);
    REQUIRE_OK(stoat_flatten(db));
    CHECK(dbu_dir_bytes(test_tmpdir(), ".sst") < 4096);
    REQUIRE_OK(stoat_iter_open(db, NULL, &it));
    stoat_iter_seek_first(it);
    CHECK(!stoat_iter_valid(it));
    CHECK_RC(stoat_iter_status(it), 0);
    stoat_iter_close(it);
    REQUIRE_OK(stoat_close(db));
    db = open_small(test_tmpdir());
    check_all_gets(db, model);
    REQUIRE_OK(stoat_close(db));
}

/*
 * Tombstones above a flattened base travel down through background
 * compactions (not flatten): the deleted keys must stay deleted at every
 * step, after reopening, and after the final flatten.
 */
static void test_db_deleted_key_never_comes_back(void)
{
    static uint64_t model[NKEYS];
    stoat_db *db = open_small(test_tmpdir());
    char filler[300];

    for (int i = 0; i < NKEYS; i++)
        set_key(db, model, i, (uint64_t)i);
    REQUIRE_OK(stoat_flatten(db));
    for (int i = 0; i < NKEYS; i += 2)
        set_key(db, model, i, ABSENT);
    REQUIRE_OK(stoat_flush(db));
    for (int round = 0; round < 4; round++) {
        /* Unrelated keys ("z...") fill L0 and push compactions down. */
        for (int j = 0; j < 1500; j++) {
            char k[32];

            snprintf(k, sizeof(k), "z%d-%04d", round, j);
            dbu_value((uint64_t)j, filler, sizeof(filler));
            REQUIRE_OK(stoat_put(db, k, strlen(k), filler, sizeof(filler)));
        }
        check_all_gets(db, model);
        REQUIRE_OK(stoat_close(db));
        db = open_small(test_tmpdir());
        check_all_gets(db, model);
    }
    REQUIRE_OK(stoat_flatten(db));
    check_all_gets(db, model);
    REQUIRE_OK(stoat_close(db));
}

#define NWRITERS 4
#define PER_WRITER 3000

struct writer_arg {
    stoat_db *db;
    int id;
    int errors;
};

static void *writer_main(void *p)
{
    struct writer_arg *a = p;
    char k[32], val[128];

    for (int i = 0; i < PER_WRITER; i++) {
        uint64_t tag = (uint64_t)a->id * 100000u + (uint64_t)i;

        snprintf(k, sizeof(k), "w%d-%05d", a->id, i);
        dbu_value(tag, val, tag_len(tag));
        a->errors += stoat_put(a->db, k, strlen(k), val, tag_len(tag)) != 0;
        if (i % 3 == 0 && i > 0) {
            snprintf(k, sizeof(k), "w%d-%05d", a->id, i - 1);
            a->errors += stoat_delete(a->db, k, strlen(k)) != 0;
        }
    }
    return NULL;
}

/* Reads while the writers write: a key read is either absent or right. */
static void *reader_main(void *p)
{
    struct writer_arg *a = p;
    uint64_t rng = (uint64_t)a->id + 1;
    char k[32];

    for (int n = 0; n < 4 * PER_WRITER; n++) {
        int w = (int)(test_rand(&rng) % NWRITERS), i = (int)(test_rand(&rng) % PER_WRITER);
        uint64_t tag = (uint64_t)w * 100000u + (uint64_t)i;
        void *v = NULL;
        size_t vlen;
        int rc;

        snprintf(k, sizeof(k), "w%d-%05d", w, i);
        rc = stoat_get(a->db, k, strlen(k), &v, &vlen);
        if (rc == 0 && !dbu_value_is(tag, tag_len(tag), v, vlen))
            a->errors++;
        if (rc != 0 && rc != STOAT_ENOTFOUND)
            a->errors++;
        stoat_free(v);
    }
    return NULL;
}

static void check_writer_keys(stoat_db *db)
{
    int bad = 0;

    for (int w = 0; w < NWRITERS; w++) {
        for (int i = 0; i < PER_WRITER && bad < 5; i++) {
            uint64_t tag = (uint64_t)w * 100000u + (uint64_t)i;
            int deleted = (i + 1) % 3 == 0 && i + 1 < PER_WRITER;
            void *v = NULL;
            size_t vlen;
            char k[32];
            int rc;

            snprintf(k, sizeof(k), "w%d-%05d", w, i);
            rc = stoat_get(db, k, strlen(k), &v, &vlen);
            if (deleted ? rc != STOAT_ENOTFOUND
                        : rc != 0 || !dbu_value_is(tag, tag_len(tag), v, vlen)) {
                test_fail(__FILE__, __LINE__, "%s: rc %d", k, rc);
                bad++;
            }
            stoat_free(v);
        }
    }
}

static void test_db_many_threads(void)
{
    stoat_db *db = open_small(test_tmpdir());
    struct writer_arg args[NWRITERS + 2];
    pthread_t th[NWRITERS + 2];

    for (int i = 0; i < NWRITERS + 2; i++) {
        args[i] = (struct writer_arg){db, i, 0};
        REQUIRE(pthread_create(&th[i], NULL, i < NWRITERS ? writer_main : reader_main,
                               &args[i]) == 0);
    }
    for (int i = 0; i < NWRITERS + 2; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].errors == 0);
    }
    check_writer_keys(db);
    REQUIRE_OK(stoat_close(db));
    db = open_small(test_tmpdir());
    check_writer_keys(db);
    REQUIRE_OK(stoat_close(db));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_db_put_get_delete);
    TEST_RUN(test_db_rejects_bad_arguments);
    TEST_RUN(test_db_key_size_limit);
    TEST_RUN(test_db_value_size_limit);
    TEST_RUN(test_db_large_values);
    TEST_RUN(test_db_open_options);
    TEST_RUN(test_db_names_and_version);
    TEST_RUN(test_db_reopen_keeps_data);
    TEST_RUN(test_db_iterator_full_scans);
    TEST_RUN(test_db_iterator_seeks_and_direction_changes);
    TEST_RUN(test_db_iterator_prefix_and_bounds);
    TEST_RUN(test_db_iterator_snapshot_survives_compaction);
    TEST_RUN(test_db_flatten_fills_only_the_last_level);
    TEST_RUN(test_db_flatten_drops_old_versions);
    TEST_RUN(test_db_flatten_drops_tombstones);
    TEST_RUN(test_db_deleted_key_never_comes_back);
    TEST_RUN(test_db_many_threads);
    return test_summary();
}
