/* Writes a database with stoat 0.1 (expiries in whole unix seconds):
 * one SST (flushed) and one WAL, each with a key that never expires, a key
 * expiring in the far future and a key that has already expired. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include "stoat.h"

static void check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "%s: %s (%s)\n", what, stoat_strerror(rc), stoat_errmsg(NULL));
        exit(1);
    }
}

static void put(stoat_db *db, const char *k, const char *v, uint64_t ttl)
{
    stoat_txn *t;
    check(stoat_txn_begin(db, 0, &t), "begin");
    check(stoat_txn_set_ex(t, k, strlen(k), v, strlen(v), ttl, 7), "set");
    check(stoat_txn_commit(t), "commit");
    stoat_txn_discard(t);
}

int main(int argc, char **argv)
{
    stoat_options o;
    stoat_db *db;
    stoat_options_init(&o);
    o.auto_gc = 0;
    check(stoat_open(argv[1], &o, &db), "open");
    put(db, "sst:never", "a", 0);
    put(db, "sst:far", "b", 1ull << 40);
    put(db, "sst:gone", "c", 1);
    check(stoat_flush(db), "flush");
    put(db, "wal:never", "d", 0);
    put(db, "wal:far", "e", 1ull << 40);
    put(db, "wal:gone", "f", 1);
    sleep(2);
    check(stoat_close(db), "close");
    return 0;
}
