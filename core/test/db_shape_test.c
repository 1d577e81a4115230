/*
 * db_shape_test.c - the tree's shape after writes stop and under reads
 * (issue 15): space amplification bounded while overwriting, an idle
 * compaction once commits stop, a seek compaction of a table that point
 * reads keep probing in vain.
 *
 * The tests read the level sizes from stoat_stats and set the idle delay
 * and read the compaction counters through db.h (under db->mu), so that
 * one mechanism can be watched with the others held still.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"
#include "db_util.h"
#include "test.h"

#define VLEN 100

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void set_idle_after(stoat_db *db, uint64_t ms)
{
    pthread_mutex_lock(&db->mu);
    db->idle_after_ms = ms;
    db->idle_since_ms = 0;      /* restart the count from the next check */
    db->idle_version = 0;
    pthread_mutex_unlock(&db->mu);
}

static void counters(stoat_db *db, uint64_t *seek, uint64_t *idle, uint64_t *all)
{
    pthread_mutex_lock(&db->mu);
    *seek = db->stat_seek_compactions;
    *idle = db->stat_idle_compactions;
    *all = db->stat_compactions;
    pthread_mutex_unlock(&db->mu);
}

static void put_key(stoat_db *db, uint64_t k, uint64_t tag)
{
    char key[24], val[VLEN];

    snprintf(key, sizeof(key), "k%015llu", (unsigned long long)k);
    dbu_value(tag, val, sizeof(val));
    REQUIRE_OK(stoat_put(db, key, strlen(key), val, sizeof(val)));
}

/* 1 if every key in [0, n) reads back as tag[k] made it. */
static int keys_read_back(stoat_db *db, const uint64_t *tag, uint64_t n)
{
    for (uint64_t k = 0; k < n; k++) {
        char key[24];
        void *val = NULL;
        size_t vlen = 0;
        int ok;

        snprintf(key, sizeof(key), "k%015llu", (unsigned long long)k);
        if (stoat_get(db, key, strlen(key), &val, &vlen) != 0)
            return 0;
        ok = dbu_value_is(tag[k], VLEN, val, vlen);
        stoat_free(val);
        if (!ok)
            return 0;
    }
    return 1;
}

/* The deepest non-empty level's bytes and the bytes of all levels above
 * it (L0 included). */
static void shape(stoat_db *db, uint64_t *above, uint64_t *last, uint64_t *l0_tables)
{
    stoat_stats st;
    int deepest = 0;

    REQUIRE_OK(stoat_stats_get(db, &st));
    for (int l = st.num_levels - 1; l >= 0 && deepest == 0; l--)
        if (st.level_tables[l] != 0)
            deepest = l;
    *above = 0;
    for (int l = 0; l < deepest; l++)
        *above += st.level_bytes[l];
    *last = st.level_bytes[deepest];
    *l0_tables = st.level_tables[0];
}

/* Waits until no compaction has started for quiet_ms (at most 20 s). */
static void wait_settled(stoat_db *db, long quiet_ms)
{
    uint64_t s, i, all, prev = UINT64_MAX;
    long since = now_ms(), t0 = now_ms();

    while (now_ms() - t0 < 20000) {
        counters(db, &s, &i, &all);
        pthread_mutex_lock(&db->mu);
        int busy = db->running_compactions > 0 || db->n_imm > 0;
        pthread_mutex_unlock(&db->mu);
        if (all != prev || busy) {
            prev = all;
            since = now_ms();
        } else if (now_ms() - since >= quiet_ms) {
            return;
        }
        usleep(20000);
    }
}

/* Small tables and memtables, and a base level as large as the data, so
 * that without a bound a level of about the last one's size could sit
 * above it. */
static void shape_options(stoat_options *o)
{
    dbu_small_options(o);
    o->base_level_size = 2 << 20;
    o->l0_compaction_trigger = 2;
}

enum { KEYS = 30000, PASSES = 3 };

/* KEYS keys, then PASSES overwrites of all of them in random order. */
static void overwrite_load(stoat_db *db, uint64_t *tag)
{
    uint64_t rng = 15;

    for (uint64_t k = 0; k < KEYS; k++)
        put_key(db, k, tag[k] = k + 1);
    for (uint64_t i = 0; i < (uint64_t)KEYS * PASSES; i++) {
        uint64_t k = test_rand(&rng) % KEYS;
        put_key(db, k, tag[k] = 1000000 + i);
    }
}

static void test_db_shape_space_amp_bounded_while_overwriting(void)
{
    const char *dir = test_tmpdir();
    uint64_t *tag = calloc(KEYS, sizeof(*tag)), above, last, l0;
    stoat_options o;
    stoat_db *db;

    REQUIRE(tag != NULL);
    shape_options(&o);
    REQUIRE_OK(stoat_open(dir, &o, &db));
    set_idle_after(db, 1000000);    /* the bound alone, without idle repair */
    overwrite_load(db, tag);
    wait_settled(db, 1000);
    shape(db, &above, &last, &l0);
    printf("  %llu bytes above %llu in the deepest level (%.2f), %llu L0 tables\n",
           (unsigned long long)above, (unsigned long long)last,
           last ? (double)above / (double)last : 0.0, (unsigned long long)l0);
    REQUIRE(last > o.base_level_size);  /* else no level sits above the last */
    /* The level above the last holds at most a quarter of it (plus a
     * table's rounding), L0 at most l0_compaction_trigger - 1 tables. */
    CHECK(above <= last / 4 + (uint64_t)o.table_size * o.l0_compaction_trigger + o.table_size);
    CHECK(keys_read_back(db, tag, KEYS));
    REQUIRE_OK(stoat_close(db));
    free(tag);
}

static void test_db_shape_idle_compaction_when_writes_stop(void)
{
    const char *dir = test_tmpdir();
    uint64_t *tag = calloc(KEYS, sizeof(*tag)), above, last, l0, s, idle, all;
    long t0;
    stoat_options o;
    stoat_db *db;

    REQUIRE(tag != NULL);
    shape_options(&o);
    REQUIRE_OK(stoat_open(dir, &o, &db));
    set_idle_after(db, 1000000);
    overwrite_load(db, tag);
    /* Overwrite on until the levels above hold more than a tenth of the
     * deepest (the load usually leaves about a quarter). */
    for (int more = 0; more < 20; more++) {
        uint64_t rng = 99 + (uint64_t)more;

        REQUIRE_OK(stoat_flush(db));   /* leave an L0 table behind */
        wait_settled(db, 1000);
        shape(db, &above, &last, &l0);
        if (above > last / 10)
            break;
        for (uint64_t i = 0; i < KEYS / 4; i++) {
            uint64_t k = test_rand(&rng) % KEYS;
            put_key(db, k, tag[k] = 5000000 + (uint64_t)more * KEYS + i);
        }
    }
    counters(db, &s, &idle, &all);
    printf("  writes stopped: %llu bytes above %llu (%llu L0 tables)\n",
           (unsigned long long)above, (unsigned long long)last, (unsigned long long)l0);
    REQUIRE(idle == 0);
    REQUIRE(above > last / 10);   /* the shape needs repair */
    set_idle_after(db, 200);
    t0 = now_ms();
    while (now_ms() - t0 < 15000) {
        shape(db, &above, &last, &l0);
        if (l0 == 0 && above <= last / 10)
            break;
        usleep(50000);
    }
    wait_settled(db, 500);
    shape(db, &above, &last, &l0);
    counters(db, &s, &idle, &all);
    printf("  after %.1f s idle: %llu bytes above %llu, %llu idle compactions\n",
           (double)(now_ms() - t0) / 1000, (unsigned long long)above, (unsigned long long)last,
           (unsigned long long)idle);
    CHECK(idle > 0);
    CHECK(l0 == 0);
    CHECK(above <= last / 10);
    CHECK(keys_read_back(db, tag, KEYS));
    /* Settled: once the shape is repaired it stays put while idle. */
    counters(db, &s, &idle, &all);
    usleep(600000);
    {
        uint64_t idle2, all2;
        counters(db, &s, &idle2, &all2);
        printf("  then %llu more idle, %llu more compactions\n",
               (unsigned long long)(idle2 - idle), (unsigned long long)(all2 - all));
        CHECK(idle2 == idle);   /* others (stale entries, tombstones) may run */
    }
    REQUIRE_OK(stoat_close(db));
    free(tag);
}

static void test_db_shape_seek_compaction_moves_a_probed_table(void)
{
    enum { N = 5000 };
    const char *dir = test_tmpdir();
    uint64_t *tag = calloc(N, sizeof(*tag)), s, idle, all;
    stoat_options o;
    stoat_stats st;
    stoat_db *db;
    long t0;

    REQUIRE(tag != NULL);
    dbu_small_options(&o);
    o.l0_compaction_trigger = 4;    /* one L0 table stays put by itself */
    REQUIRE_OK(stoat_open(dir, &o, &db));
    set_idle_after(db, 1000000);
    for (uint64_t k = 0; k < N; k++)
        put_key(db, k, tag[k] = k + 1);
    REQUIRE_OK(stoat_flatten(db));
    /* One L0 table spanning the whole key range: every 50th key. */
    for (uint64_t k = 0; k < N; k += 50)
        put_key(db, k, tag[k] = 100000 + k);
    REQUIRE_OK(stoat_flush(db));
    wait_settled(db, 1000);
    REQUIRE_OK(stoat_stats_get(db, &st));
    REQUIRE(st.level_tables[0] == 1);
    counters(db, &s, &idle, &all);
    REQUIRE(s == 0);
    /* Reads of keys the L0 table lacks probe it, then go deeper. */
    t0 = now_ms();
    for (int round = 0; st.level_tables[0] != 0 && now_ms() - t0 < 10000; round++) {
        for (uint64_t k = 1; k < N; k += 50) {
            void *val = NULL;
            size_t vlen;
            char key[24];

            snprintf(key, sizeof(key), "k%015llu", (unsigned long long)k);
            REQUIRE_OK(stoat_get(db, key, strlen(key), &val, &vlen));
            stoat_free(val);
        }
        usleep(10000);
        REQUIRE_OK(stoat_stats_get(db, &st));
    }
    counters(db, &s, &idle, &all);
    printf("  L0 tables %llu after the reads; %llu seek compaction(s)\n",
           (unsigned long long)st.level_tables[0], (unsigned long long)s);
    CHECK(s >= 1);
    CHECK(st.level_tables[0] == 0);
    CHECK(idle == 0);
    CHECK(keys_read_back(db, tag, N));
    REQUIRE_OK(stoat_close(db));
    free(tag);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_db_shape_space_amp_bounded_while_overwriting);
    TEST_RUN(test_db_shape_idle_compaction_when_writes_stop);
    TEST_RUN(test_db_shape_seek_compaction_moves_a_probed_table);
    return test_summary();
}
