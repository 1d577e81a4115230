/*
 * fuzz_db_model.c - the differential target: a sequence of operations
 * decoded from the input runs against a database and an in-memory model
 * (16 keys, each absent or holding a value), and every read must agree:
 * gets, full scans forward and backward, and reads through a snapshot
 * (a read-only transaction) taken earlier, which must keep seeing what
 * the model held when it began, whatever flush, compaction, value-log GC
 * (with readers open: issue 16) and reopen did meanwhile.
 *
 * Each operation is one byte (op = byte % 12, key = byte / 12 % 16) and
 * for puts a length byte. Values are long enough to go to the value log
 * when the length byte says so. The database is small (64 KiB memtables,
 * 1 MiB value-log files, which GC seals when they hold garbage) so that
 * flushes, compactions and GC happen.
 */
#include "stoat.h"
#include "fuzz_util.h"

#define NKEYS 16
#define MAXV 600

typedef struct model {
    int has[NKEYS];
    size_t len[NKEYS];
    uint32_t tag[NKEYS];
} model;

static void value_of(uint32_t tag, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        out[i] = (char)('a' + (tag * 31 + i * 7) % 26);
}

static void key_of(int k, char out[8])
{
    snprintf(out, 8, "key%02d", k);
}

static stoat_db *open_db(const char *dir)
{
    stoat_options o;
    stoat_db *db = NULL;

    stoat_options_init(&o);
    o.create_if_missing = 1;
    o.memtable_size = 64 << 10;
    o.value_threshold = 64;
    o.value_log_file_size = 1 << 20;     /* the smallest allowed */
    o.auto_gc = 0;
    o.num_compactors = 1;
    o.cache_size = 1 << 20;
    o.base_level_size = 128 << 10;
    o.table_size = 64 << 10;
    o.l0_compaction_trigger = 2;
    if (stoat_open(dir, &o, &db) != 0)
        fprintf(stderr, "open %s: %s\n", dir, stoat_errmsg(NULL));
    FUZZ_ASSERT(db != NULL);
    return db;
}

static void check_get(stoat_db *db, stoat_txn *txn, const model *m, int k)
{
    char key[8], want[MAXV];
    const void *cval = NULL;
    void *val = NULL;
    size_t vlen = 0;
    int rc;

    key_of(k, key);
    if (txn) {
        rc = stoat_txn_get(txn, key, strlen(key), &cval, &vlen);
    } else {
        rc = stoat_get(db, key, strlen(key), &val, &vlen);
        cval = val;
    }
    if (!m->has[k]) {
        if (rc != STOAT_ENOTFOUND)
            fprintf(stderr, "%s: rc %d (%s)\n", key, rc, stoat_errmsg(NULL));
        FUZZ_ASSERT(rc == STOAT_ENOTFOUND);
    } else {
        if (rc != 0)
            fprintf(stderr, "%s: rc %d (%s)\n", key, rc, stoat_errmsg(NULL));
        FUZZ_ASSERT(rc == 0);
        value_of(m->tag[k], m->len[k], want);
        FUZZ_ASSERT(vlen == m->len[k] && memcmp(cval, want, vlen) == 0);
    }
    stoat_free(val);
}

/* A full scan, forward or backward, must list exactly the model. */
static void check_scan(stoat_db *db, stoat_txn *txn, const model *m, int forward)
{
    stoat_iter *it = NULL;
    int k = forward ? 0 : NKEYS - 1, rc;

    rc = txn ? stoat_txn_iter_open(txn, NULL, &it) : stoat_iter_open(db, NULL, &it);
    FUZZ_ASSERT(rc == 0);
    rc = forward ? stoat_iter_seek_first(it) : stoat_iter_seek_last(it);
    for (; stoat_iter_valid(it); rc = forward ? stoat_iter_next(it) : stoat_iter_prev(it)) {
        const void *key, *val;
        size_t klen, vlen;
        char want_key[8], want[MAXV];

        while (k >= 0 && k < NKEYS && !m->has[k])
            k += forward ? 1 : -1;
        FUZZ_ASSERT(k >= 0 && k < NKEYS);
        key_of(k, want_key);
        FUZZ_ASSERT(stoat_iter_key(it, &key, &klen) == 0);
        FUZZ_ASSERT(klen == strlen(want_key) && memcmp(key, want_key, klen) == 0);
        FUZZ_ASSERT(stoat_iter_value(it, &val, &vlen) == 0);
        value_of(m->tag[k], m->len[k], want);
        FUZZ_ASSERT(vlen == m->len[k] && memcmp(val, want, vlen) == 0);
        k += forward ? 1 : -1;
    }
    FUZZ_ASSERT(rc == 0 && stoat_iter_status(it) == 0);
    while (k >= 0 && k < NKEYS && !m->has[k])
        k += forward ? 1 : -1;
    FUZZ_ASSERT(k < 0 || k >= NKEYS);
    stoat_iter_close(it);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_dir();
    stoat_db *db = open_db(dir);
    stoat_txn *snap = NULL;
    model m, at_snap;
    char key[8], val[MAXV];
    uint32_t tag = 0;
    uint64_t reclaimed;

    memset(&m, 0, sizeof(m));
    memset(&at_snap, 0, sizeof(at_snap));
    for (size_t i = 0; i < size && i < 400; i++) {
        int op = data[i] % 12, k = data[i] / 12 % NKEYS;

        key_of(k, key);
        switch (op) {
        case 0: case 1: case 2: case 3: {
            size_t len = i + 1 < size ? (size_t)data[++i] * 2 % MAXV : 10;
            value_of(++tag, len, val);
            FUZZ_ASSERT(stoat_put(db, key, strlen(key), val, len) == 0);
            m.has[k] = 1;
            m.len[k] = len;
            m.tag[k] = tag;
            break;
        }
        case 4:
            FUZZ_ASSERT(stoat_delete(db, key, strlen(key)) == 0);
            m.has[k] = 0;
            break;
        case 5:
            check_get(db, NULL, &m, k);
            if (snap)
                check_get(db, snap, &at_snap, k);
            break;
        case 6:
            check_scan(db, NULL, &m, k & 1);
            if (snap)
                check_scan(db, snap, &at_snap, k & 1);
            break;
        case 7:             /* take or drop the snapshot */
            if (snap) {
                stoat_txn_discard(snap);
                snap = NULL;
            } else {
                FUZZ_ASSERT(stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &snap) == 0);
                at_snap = m;
            }
            break;
        case 8:
            FUZZ_ASSERT(stoat_flush(db) == 0);
            break;
        case 9:
            FUZZ_ASSERT(stoat_flatten(db) == 0);
            break;
        case 10:
            FUZZ_ASSERT(stoat_gc(db, k < 8 ? 0.1 : 0.5, &reclaimed) == 0);
            break;
        case 11:            /* reopen (the snapshot ends first) */
            if (snap)
                stoat_txn_discard(snap);
            snap = NULL;
            FUZZ_ASSERT(stoat_close(db) == 0);
            db = open_db(dir);
            break;
        }
    }
    for (int k = 0; k < NKEYS; k++)
        check_get(db, NULL, &m, k);
    if (snap)
        stoat_txn_discard(snap);
    FUZZ_ASSERT(stoat_close(db) == 0);
    return 0;
}
