/*
 * db_group_commit_test.c - group commit under sync = commit with many
 * threads (write.c: the front writer waits a little for followers before
 * a durable group): every commit lands exactly once, with its own
 * version, durable across a reopen, and groups do batch.
 *
 * Reads the durable-group counter through db.h (under db->mu).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "db/db.h"
#include "db_util.h"
#include "test.h"

enum { THREADS = 8, PER_THREAD = 150, VLEN = 64 };

typedef struct worker {
    stoat_db *db;
    int id;
    int failures;
} worker;

static void key_of(int t, int i, char *key, size_t len)
{
    snprintf(key, len, "t%02d-%06d", t, i);
}

static void *worker_main(void *arg)
{
    worker *w = arg;

    for (int i = 0; i < PER_THREAD; i++) {
        char key[32], val[VLEN];

        key_of(w->id, i, key, sizeof(key));
        dbu_value((uint64_t)w->id * 100000 + (uint64_t)i, val, sizeof(val));
        w->failures += stoat_put(w->db, key, strlen(key), val, sizeof(val)) != 0;
    }
    return NULL;
}

/* Every thread's every key, with the value it wrote. */
static int all_keys_there(stoat_db *db)
{
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < PER_THREAD; i++) {
            char key[32];
            void *val = NULL;
            size_t vlen = 0;
            int ok;

            key_of(t, i, key, sizeof(key));
            if (stoat_get(db, key, strlen(key), &val, &vlen) != 0)
                return 0;
            ok = dbu_value_is((uint64_t)t * 100000 + (uint64_t)i, VLEN, val, vlen);
            stoat_free(val);
            if (!ok)
                return 0;
        }
    }
    return 1;
}

static void test_db_group_commit_many_threads_sync_commit(void)
{
    const char *dir = test_tmpdir();
    pthread_t th[THREADS];
    worker w[THREADS];
    stoat_options o;
    stoat_stats st;
    stoat_db *db;
    uint64_t groups;
    int failures = 0;

    stoat_options_init(&o);
    o.create_if_missing = 1;
    o.sync = STOAT_SYNC_COMMIT;
    REQUIRE_OK(stoat_open(dir, &o, &db));
    for (int t = 0; t < THREADS; t++) {
        w[t] = (worker){.db = db, .id = t};
        REQUIRE(pthread_create(&th[t], NULL, worker_main, &w[t]) == 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        failures += w[t].failures;
    }
    CHECK(failures == 0);
    REQUIRE_OK(stoat_stats_get(db, &st));
    pthread_mutex_lock(&db->mu);
    groups = db->stat_sync_groups;
    pthread_mutex_unlock(&db->mu);
    printf("  %d durable commits in %llu groups (%.1f per fsync)\n", THREADS * PER_THREAD,
           (unsigned long long)groups, (double)(THREADS * PER_THREAD) / (double)groups);
    /* One version per commit, none lost or given twice. */
    CHECK(st.last_version == (uint64_t)THREADS * PER_THREAD);
    CHECK(groups >= 1 && groups < (uint64_t)THREADS * PER_THREAD);
    CHECK(all_keys_there(db));
    REQUIRE_OK(stoat_close(db));
    /* Durable: all there after a reopen (WAL replay). */
    REQUIRE_OK(stoat_open(dir, &o, &db));
    CHECK(all_keys_there(db));
    REQUIRE_OK(stoat_close(db));
}

/* One writer alone never waits for followers: its groups are its commits. */
static void test_db_group_commit_one_thread_one_group_each(void)
{
    const char *dir = test_tmpdir();
    stoat_options o;
    stoat_db *db;
    worker w;
    uint64_t groups;

    stoat_options_init(&o);
    o.create_if_missing = 1;
    o.sync = STOAT_SYNC_COMMIT;
    REQUIRE_OK(stoat_open(dir, &o, &db));
    w = (worker){.db = db, .id = 0};
    worker_main(&w);
    CHECK(w.failures == 0);
    pthread_mutex_lock(&db->mu);
    groups = db->stat_sync_groups;
    pthread_mutex_unlock(&db->mu);
    CHECK(groups == PER_THREAD);
    REQUIRE_OK(stoat_close(db));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_db_group_commit_many_threads_sync_commit);
    TEST_RUN(test_db_group_commit_one_thread_one_group_each);
    return test_summary();
}
