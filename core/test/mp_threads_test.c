/*
 * mp_threads_test.c - two multi-process handles on one directory in one
 * process, driven by threads only (no fork, so that ThreadSanitizer can
 * run it: `make tsan`). Each handle has writer threads committing
 * transactions and reader threads; through small memtables the handles
 * rotate the shared WAL, one of them flushes and compacts, and both
 * catch up and reload. Checks: every commit acknowledged through one
 * handle is read through the other right after (read-your-writes across
 * handles), no reader sees part of a transaction, and a reopen has all.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_util.h"
#include "test.h"

#define N_WRITERS 2     /* per handle */

typedef struct thr_arg {
    stoat_db *mine, *other;
    int id, n;
    _Atomic int *failures;
} thr_arg;

static void *writer_main(void *p)
{
    thr_arg *a = p;
    char key[32], val[120];

    for (int i = 0; i < a->n; i++) {
        stoat_txn *t;
        int rc = stoat_txn_begin(a->mine, 0, &t);
        for (int j = 0; rc == 0 && j < 2; j++) {
            snprintf(key, sizeof(key), "t%d:%06d:%d", a->id, i, j);
            dbu_value((uint64_t)a->id << 32 | (uint64_t)i, val, sizeof(val));
            rc = stoat_txn_set(t, key, strlen(key), val, sizeof(val));
        }
        if (rc == 0)
            rc = stoat_txn_commit(t);
        stoat_txn_discard(t);
        if (rc != 0) {
            fprintf(stderr, "  writer %d: commit %d: %s\n", a->id, i, stoat_errmsg(NULL));
            atomic_fetch_add(a->failures, 1);
            return NULL;
        }
        /* Acknowledged: the other handle must see both keys now. */
        for (int j = 0; j < 2; j++) {
            void *got;
            size_t glen;
            snprintf(key, sizeof(key), "t%d:%06d:%d", a->id, i, j);
            rc = stoat_get(a->other, key, strlen(key), &got, &glen);
            if (rc != 0 || !dbu_value_is((uint64_t)a->id << 32 | (uint64_t)i, sizeof(val), got,
                                         glen)) {
                fprintf(stderr, "  writer %d: %s not read through the other handle (%d)\n",
                        a->id, key, rc);
                atomic_fetch_add(a->failures, 1);
            }
            if (rc == 0)
                stoat_free(got);
        }
    }
    return NULL;
}

/* Scans everything at a snapshot: both keys of each transaction or none. */
static void *reader_main(void *p)
{
    thr_arg *a = p;

    for (int round = 0; round < a->n; round++) {
        stoat_iter_options io = {.prefix = "t", .prefix_len = 1, .keys_only = 1};
        stoat_iter *it;
        char prev[32] = "";
        int in_group = 0;

        if (stoat_iter_open(a->mine, &io, &it) != 0) {
            atomic_fetch_add(a->failures, 1);
            return NULL;
        }
        for (stoat_iter_seek_first(it); stoat_iter_valid(it); stoat_iter_next(it)) {
            const void *k;
            size_t klen;
            stoat_iter_key(it, &k, &klen);
            /* "t<id>:<seq>:<j>": a group is everything before the last ':' */
            if (klen < 3 || klen > sizeof(prev))
                continue;
            if (in_group == 1 && memcmp(prev, k, klen - 1) == 0) {
                in_group = 0;
                continue;
            }
            if (in_group == 1) {
                fprintf(stderr, "  reader: %.*s without its pair\n", (int)klen - 2, prev);
                atomic_fetch_add(a->failures, 1);
            }
            memcpy(prev, k, klen);
            in_group = 1;
        }
        if (in_group == 1) {
            fprintf(stderr, "  reader: the last transaction is torn\n");
            atomic_fetch_add(a->failures, 1);
        }
        if (stoat_iter_status(it) != 0)
            atomic_fetch_add(a->failures, 1);
        stoat_iter_close(it);
    }
    return NULL;
}

static void test_mp_threads_two_handles(void)
{
    const char *dir = test_tmpdir();
    int n = getenv("STOAT_MP_THREADS_TXNS") ? atoi(getenv("STOAT_MP_THREADS_TXNS")) : 1500;
    _Atomic int failures = 0;
    stoat_options o;
    stoat_db *h[2];
    pthread_t thr[2 * N_WRITERS + 2];
    thr_arg args[2 * N_WRITERS + 2];
    int n_thr = 0;

    dbu_small_options(&o);
    o.multi_process = 1;
    REQUIRE_OK(stoat_open(dir, &o, &h[0]));
    REQUIRE_OK(stoat_open(dir, &o, &h[1]));
    for (int i = 0; i < 2 * N_WRITERS; i++) {
        args[n_thr] = (thr_arg){h[i % 2], h[1 - i % 2], i, n, &failures};
        REQUIRE(pthread_create(&thr[n_thr], NULL, writer_main, &args[n_thr]) == 0);
        n_thr++;
    }
    for (int i = 0; i < 2; i++) {
        args[n_thr] = (thr_arg){h[i], h[1 - i], 100 + i, 30, &failures};
        REQUIRE(pthread_create(&thr[n_thr], NULL, reader_main, &args[n_thr]) == 0);
        n_thr++;
    }
    for (int i = 0; i < n_thr; i++)
        pthread_join(thr[i], NULL);
    CHECK(atomic_load(&failures) == 0);
    REQUIRE_OK(stoat_close(h[0]));
    REQUIRE_OK(stoat_close(h[1]));
    /* A reopen has every transaction. */
    REQUIRE_OK(stoat_open(dir, &o, &h[0]));
    int missing = 0;
    for (int id = 0; id < 2 * N_WRITERS; id++) {
        for (int i = 0; i < n; i++) {
            char key[32];
            void *got;
            size_t glen;
            snprintf(key, sizeof(key), "t%d:%06d:1", id, i);
            if (stoat_get(h[0], key, strlen(key), &got, &glen) == 0)
                stoat_free(got);
            else
                missing++;
        }
    }
    CHECK(missing == 0);
    REQUIRE_OK(stoat_close(h[0]));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_mp_threads_two_handles);
    return test_summary();
}
