/*
 * quickstart.c - open a database, write, read, delete, scan, close.
 *
 *     make quickstart            (or: build/examples/quickstart [DIR])
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stoat.h"

static int check(int rc, const char *what)
{
    if (rc != 0 && rc != STOAT_ENOTFOUND) {
        fprintf(stderr, "%s: %s: %s\n", what, stoat_strerror(rc), stoat_errmsg(NULL));
        exit(1);
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp/stoat-quickstart";
    stoat_options opts;
    stoat_db *db;
    stoat_iter *it;
    stoat_iter_options range = {.prefix = "user:", .prefix_len = 5};
    void *val;
    size_t vlen;
    char key[32], value[64];

    stoat_options_init(&opts);
    check(stoat_open(dir, &opts, &db), "open");
    printf("stoat %s opened %s\n", stoat_version(), dir);

    for (int i = 1; i <= 5; i++) {
        snprintf(key, sizeof(key), "user:%03d", i);
        snprintf(value, sizeof(value), "{\"name\": \"user %d\"}", i);
        check(stoat_put(db, key, strlen(key), value, strlen(value)), "put");
    }
    check(stoat_put(db, "other", 5, "x", 1), "put");
    check(stoat_delete(db, "user:003", 8), "delete");

    check(stoat_get(db, "user:002", 8, &val, &vlen), "get");
    printf("get user:002 -> %.*s\n", (int)vlen, (const char *)val);
    stoat_free(val);
    if (check(stoat_get(db, "user:003", 8, &val, &vlen), "get") == STOAT_ENOTFOUND)
        printf("get user:003 -> not found (deleted)\n");

    printf("scan prefix \"user:\" backwards:\n");
    check(stoat_iter_open(db, &range, &it), "iter_open");
    for (stoat_iter_seek_last(it); stoat_iter_valid(it); stoat_iter_prev(it)) {
        const void *k, *v;
        size_t klen;
        check(stoat_iter_key(it, &k, &klen), "iter_key");
        check(stoat_iter_value(it, &v, &vlen), "iter_value");
        printf("  %.*s = %.*s\n", (int)klen, (const char *)k, (int)vlen, (const char *)v);
    }
    check(stoat_iter_status(it), "iter");
    stoat_iter_close(it);

    check(stoat_close(db), "close");
    printf("closed\n");
    return 0;
}
