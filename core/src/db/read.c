/*
 * read.c - point reads (stoat_get, and the reads of transactions and GC).
 *
 * A read pins what it looks at under db->mu (the active and immutable
 * memtables and the current version, each refcounted) and reads the
 * version published in last_version; then it searches without the lock:
 * memtables newest first, L0 tables newest first, then one table per
 * deeper level. For one user key a shallower source always holds newer
 * versions than a deeper one, so the first source that has a version
 * at or below the read version has the answer.
 *
 * The public iterator (iterator.c) pins the same read view for its whole
 * life.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/read.h"
#include "db/shared.h"
#include "db/snapshots.h"
#include "db/state.h"
#include "base/ikey.h"
#include "base/status.h"

int read_view_pin(stoat_db *db, read_view *rv, uint64_t read_version, db_snapshot *snap)
{
    size_t n;
    int rc;

    /* Multi-process: first what other processes committed (shared.c). */
    if (read_version == DB_READ_LATEST && (rc = db_mp_catch_up(db)) != 0)
        return rc;
    pthread_mutex_lock(&db->mu);
    n = db->n_imm + (db->mem != NULL);
    rv->mems = n <= 8 ? rv->mems_small : malloc(n * sizeof(*rv->mems));
    if (rv->mems == NULL) {
        pthread_mutex_unlock(&db->mu);
        return status_err(STOAT_ENOMEM, "out of memory reading");
    }
    rv->n_mems = 0;
    if (db->mem)
        rv->mems[rv->n_mems++] = db->mem;
    for (size_t i = db->n_imm; i-- > 0;)
        rv->mems[rv->n_mems++] = db->imm[i];
    for (size_t i = 0; i < rv->n_mems; i++)
        memtable_ref(rv->mems[i]);
    rv->v = db->current;
    lsm_view_ref(rv->v);
    rv->read_version = read_version != DB_READ_LATEST
                           ? read_version
                           : atomic_load_explicit(&db->last_version, memory_order_acquire);
    if (snap != NULL) {
        snap->version = rv->read_version;
        db_snapshot_add_locked(db, snap);
    }
    pthread_mutex_unlock(&db->mu);
    return 0;
}

void read_view_unpin_mems(read_view *rv)
{
    for (size_t i = 0; i < rv->n_mems; i++)
        memtable_unref(rv->mems[i]);
    if (rv->mems != rv->mems_small)
        free(rv->mems);
    rv->mems = NULL;
    rv->n_mems = 0;
}

void read_view_unpin(read_view *rv)
{
    read_view_unpin_mems(rv);
    lsm_view_unref(rv->v);
}

/* Looks ukey up in one table: 0 found (into k and val), ENOTFOUND, or an
 * error. */
static int db_get_table(stoat_db *db, uint64_t id, slice ukey, uint64_t rv, buf *k, buf *val)
{
    sst_reader *r;
    int rc;

    if ((rc = table_cache_get(db->tc, id, &r)) != 0)
        /* A missing table is damage, never "not in this table": a deeper
         * level would answer with an older version. */
        return rc == STOAT_ENOTFOUND
                   ? status_err(STOAT_ECORRUPT, "%s: table %06llu.sst is missing: %s", db->dir,
                                (unsigned long long)id, status_msg())
                   : rc;
    rc = sst_reader_get(r, ukey, rv, k, val);
    sst_reader_unref(r);
    return rc;
}

/*
 * Finds the newest stored value of ukey visible at rv, into val, and its
 * version. Sources are searched newest first and the first that holds a
 * version at or below rv has the answer: a newer source never holds an
 * older version of a key than a deeper one (flushes and compactions move
 * data down in order, and value-log GC only rewrites a key's newest
 * version, checked at commit: write.c).
 */
static int db_get_stored(stoat_db *db, read_view *rv, slice ukey, buf *val, uint64_t *ver)
{
    const lsm_view *v = rv->v;
    buf k = {0};
    int rc = STOAT_ENOTFOUND, probes = 0, first_level = 0;
    table_meta *first = NULL;   /* the first table probed: charged if in vain */

    for (size_t i = 0; i < rv->n_mems && rc == STOAT_ENOTFOUND; i++) {
        slice fk, fv;
        rc = memtable_get(rv->mems[i], ukey, rv->read_version, &fk, &fv);
        if (rc == 0) {
            *ver = ikey_version(fk);
            return buf_append(val, fv.data, fv.len);
        }
    }
    for (size_t i = 0; i < v->n[0] && rc == STOAT_ENOTFOUND; i++) {
        table_meta *t = v->tables[0][i];
        if (slice_cmp(ukey, table_smallest_ukey(t)) >= 0 &&
            slice_cmp(ukey, table_largest_ukey(t)) <= 0) {
            first = probes++ == 0 ? t : first;
            rc = db_get_table(db, t->id, ukey, rv->read_version, &k, val);
        }
    }
    for (int l = 1; l < v->num_levels && rc == STOAT_ENOTFOUND; l++) {
        long i = lsm_view_find_table(v, l, ukey);
        if (i >= 0) {
            if (probes++ == 0) {
                first = v->tables[l][i];
                first_level = l;
            }
            rc = db_get_table(db, v->tables[l][i]->id, ukey, rv->read_version, &k, val);
        }
    }
    /* Seek compaction (LevelDB's): reads that keep probing a table in
     * vain move it down, so that the tree's shape stops costing them. */
    if (probes >= 2 && (rc == 0 || rc == STOAT_ENOTFOUND))
        db_charge_seek(db, first_level, first);
    if (rc == 0)
        *ver = k.len >= IKEY_SUFFIX_LEN ? ikey_version(slice_make(k.data, k.len)) : 0;
    buf_free(&k);
    return rc;
}

int db_get_at(stoat_db *db, slice ukey, uint64_t read_version, buf *stored, uint64_t *version)
{
    read_view rv;
    uint64_t ver = 0;
    int rc;

    if ((rc = read_view_pin(db, &rv, read_version, NULL)) != 0)
        return rc;
    rc = db_get_stored(db, &rv, ukey, stored, &ver);
    if (version)
        *version = ver;
    read_view_unpin(&rv);
    return rc;
}

/* Reads the separated value vs points to (its key: ukey at version)
 * through vv, and points vs->value at it. */
int db_read_vlog(stoat_db *db, slice ukey, uint64_t version, vstruct *vs, vlog_value *vv)
{
    char ik_small[128], *ik = ik_small;
    slice val;
    vptr p;
    int rc;

    if (ukey.len + IKEY_SUFFIX_LEN > sizeof(ik_small) &&
        (ik = malloc(ukey.len + IKEY_SUFFIX_LEN)) == NULL)
        return status_err(STOAT_ENOMEM, "out of memory reading a value");
    ikey_encode(ik, ukey.data, ukey.len, version);
    vptr_decode(vs->value.data, &p);
    rc = db->vlog ? vlog_get(db->vlog, &p, slice_make(ik, ukey.len + IKEY_SUFFIX_LEN), vv, &val)
                  : status_err(STOAT_ECORRUPT, "%s: value pointer without a value log", db->dir);
    if (ik != ik_small)
        free(ik);
    if (rc == 0)
        vs->value = val;
    return rc;
}

void db_vlog_value_release(stoat_db *db, vlog_value *vv, int free_buf)
{
    if (db->vlog == NULL) {
        buf_free(&vv->buf);
        return;
    }
    if (free_buf)
        vlog_value_free(db->vlog, vv);
    else
        vlog_value_release(db->vlog, vv);
}

/*
 * Issue 16, item 2: value-log GC moves only a key's newest version
 * (vlog_gc.c), so an older one (kept by num_versions_to_keep, or read by a
 * transaction begun at an older version after the collection) may point
 * into a collected file. Such a version reads as absent, exactly as if
 * compaction had dropped it: num_versions_to_keep and stoat_txn_begin_at
 * promise history only "as far as compaction kept it". Keeping it instead
 * would make GC rewrite every retained old version together with every
 * newer version of its key (a moved version must land in a source no older
 * than the versions it could shadow), multiplying GC's writes by up to
 * num_versions_to_keep for history few readers ask for. The newest version
 * is always moved, so a missing file under it stays corruption.
 */
int db_version_superseded(stoat_db *db, slice ukey, uint64_t version)
{
    buf stored = {0};
    uint64_t newest = 0;
    int rc = db_get_at(db, ukey, DB_READ_LATEST, &stored, &newest);

    buf_free(&stored);
    return rc == 0 && newest > version;
}

int db_read_value(stoat_db *db, slice ukey, uint64_t read_version, buf *stored, vlog_value *vv,
                  vstruct *vs, uint64_t *version)
{
    uint64_t ver = 0;
    int rc;

    /* A value-log file may vanish under a reader that does not hold a
     * snapshot, once GC has moved its values: looking again finds the
     * moved copy. Twice is enough; a third miss is damage. */
    for (int attempt = 0;; attempt++) {
        buf_reset(stored);
        if ((rc = db_get_at(db, ukey, read_version, stored, &ver)) != 0)
            return rc;
        if (vstruct_decode(slice_make(stored->data, stored->len), vs) != 0)
            return status_err(STOAT_ECORRUPT, "%s: malformed stored value for a key of %zu bytes",
                              db->dir, ukey.len);
        if ((vs->meta & VMETA_DELETE) || vstruct_expired(vs, db_clock_ms(0)))
            return STOAT_ENOTFOUND;
        if (!(vs->meta & VMETA_VPTR))
            break;
        rc = db_read_vlog(db, ukey, ver, vs, vv);
        if (rc == 0)
            break;
        if (rc != STOAT_ENOTFOUND)
            return rc;
        /* A reader at an older version: its version may be one GC did not
         * move (a plain get looks again instead: it reads the newest). */
        if (read_version != DB_READ_LATEST && db_version_superseded(db, ukey, ver)) {
            status_clear();
            return STOAT_ENOTFOUND;
        }
        if (attempt == 2)
            return status_err(STOAT_ECORRUPT, "%s: value of a key of %zu bytes points into a "
                              "missing value-log file", db->dir, ukey.len);
    }
    if (version)
        *version = ver;
    return 0;
}

int stoat_get(stoat_db *db, const void *key, size_t klen, void **val, size_t *vlen)
{
    buf stored = {0};
    vlog_value vv = {0};
    vstruct vs;
    int rc;

    if (val == NULL || vlen == NULL)
        return status_err(STOAT_EINVAL, "stoat_get: val and vlen must not be NULL");
    *val = NULL;
    *vlen = 0;
    if ((rc = db_check_handle(db)) != 0 || (rc = db_check_key(key, klen)) != 0)
        return rc;
    rc = db_read_value(db, slice_make(key, klen), DB_READ_LATEST, &stored, &vv, &vs, NULL);
    if (rc == 0) {
        /* Hand out a buffer that holds exactly the value: one of ours
         * when the value is in it, else a copy (of a mapped value). */
        buf *own = vv.buf.data && vs.value.data == vv.buf.data ? &vv.buf
                   : vs.value.data == NULL || (vs.value.data >= stored.data &&
                                               vs.value.data < stored.data + stored.len)
                       ? &stored
                       : NULL;
        if (own != NULL) {
            if (vs.value.len)
                memmove(own->data, vs.value.data, vs.value.len);
            *val = own->data;
            own->data = NULL;
        } else if ((*val = malloc(vs.value.len ? vs.value.len : 1)) != NULL) {
            memcpy(*val, vs.value.data, vs.value.len);
        }
        *vlen = vs.value.len;
        if (*val == NULL && (*val = malloc(1)) == NULL)
            rc = status_err(STOAT_ENOMEM, "out of memory");
    }
    buf_free(&stored);
    db_vlog_value_release(db, &vv, 1);
    return rc;
}

void stoat_free(void *p)
{
    free(p);
}
