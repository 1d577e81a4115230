/*
 * db_write.c - the write path: writer queue, group commit, memtable room.
 *
 * Every write (a put, a delete, later a transaction's batch) enters the
 * writer queue under db->mu. The writer at the front gathers the writers
 * queued behind it into a group, makes room in the active memtable
 * (waiting for flushes and slowing or stalling on a crowded L0), gives
 * each writer of the group its version, and then, without the mutex,
 * appends the whole group to the WAL as one record (one fsync for all
 * when any of them asked for durability) and inserts it into the
 * memtable. It then publishes the group's last version to readers, wakes
 * the group's writers and hands the front to the next in line.
 *
 * A failed WAL append or fsync may have left a torn record behind: the
 * database then enters the sticky error state and refuses further writes
 * (DESIGN: never retry a failed fsync and carry on). Reads go on.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db_impl.h"
#include "ikey.h"
#include "status.h"
#include "wal.h"

/* A group grows to at most this many payload bytes (unless its first
 * writer alone is bigger). */
#define GROUP_MAX_BYTES (1u << 20)
#define SLOWDOWN_MICROS 1000

static uint64_t op_bytes(const db_write_op *op)
{
    return op->key.len + IKEY_SUFFIX_LEN + 2 + VARINT64_MAX_LEN + op->value.len;
}

static uint64_t writer_bytes(const db_writer *w)
{
    uint64_t n = 0;
    for (size_t i = 0; i < w->n_ops; i++)
        n += op_bytes(&w->ops[i]);
    return n;
}

static uint64_t now_micros(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Makes the active memtable immutable and starts a new one of at least
 * arena bytes. Called by the front writer with mu held; drops it while
 * creating the file. */
static int db_rotate_locked(stoat_db *db, uint64_t arena)
{
    uint64_t id = db->next_file_id++;
    memtable *m = NULL, *old;
    int rc;

    pthread_mutex_unlock(&db->mu);
    /* A WAL stops growing here: sync it once, so that stoat_sync (which
     * syncs the active WAL) covers everything written before. */
    rc = memtable_sync(db->mem);
    if (rc != 0) {
        pthread_mutex_lock(&db->mu);
        db_set_bg_error_locked(db, rc);
        return rc;
    }
    rc = memtable_new(db->env, db->dir, id, arena, &m);
    if (rc == 0)
        rc = env_sync_dir(db->env, db->dir);   /* the new WAL must survive power loss */
    pthread_mutex_lock(&db->mu);
    if (rc != 0) {
        if (m) {
            memtable_mark_obsolete(m);
            memtable_unref(m);
        }
        return rc;
    }
    old = db->mem;
    if (memtable_count(old) == 0) {
        memtable_mark_obsolete(old);
        memtable_unref(old);
    } else if ((rc = db_push_imm_locked(db, old)) != 0) {
        memtable_mark_obsolete(m);
        memtable_unref(m);
        return rc;
    }
    db->mem = m;
    pthread_cond_broadcast(&db->bg_cv);
    return 0;
}

/* Waits until the active memtable can take `bytes` in `n` entries. */
static int db_make_room_locked(stoat_db *db, uint64_t bytes, uint64_t n, int force_rotate)
{
    int delayed = 0;

    for (;;) {
        size_t l0 = db->current->n[0];

        if (db->bg_error)
            return status_err(db->bg_error, "%s", db->bg_msg);
        if (db->closing)
            return status_err(STOAT_ECLOSED, "database is closing");
        if (!delayed && l0 >= (size_t)db->opts.l0_slowdown_trigger &&
            l0 < (size_t)db->opts.l0_stall_trigger) {
            /* Back-pressure: let compaction catch up a little per write. */
            pthread_mutex_unlock(&db->mu);
            usleep(SLOWDOWN_MICROS);
            pthread_mutex_lock(&db->mu);
            db->stat_slowdowns++;
            delayed = 1;
            continue;
        }
        if (!force_rotate && memtable_room(db->mem, bytes, n))
            return 0;
        if (force_rotate && memtable_count(db->mem) == 0)
            return 0;
        if (db->n_imm + 1 >= (size_t)db->opts.num_memtables ||
            l0 >= (size_t)db->opts.l0_stall_trigger) {
            uint64_t t0 = now_micros();
            pthread_cond_wait(&db->done_cv, &db->mu);
            db->stat_stall_micros += now_micros() - t0;
            continue;
        }
        uint64_t arena = db->opts.memtable_size;
        uint64_t need = bytes + n * MEMTABLE_ENTRY_OVERHEAD + (64u << 10);
        return db_rotate_locked(db, need > arena ? need : arena);
    }
}

/* Collects the queue's writers from the head into one group; returns the
 * last writer of the group and its byte and entry totals. */
static db_writer *db_build_group_locked(stoat_db *db, uint64_t *bytes, uint64_t *n, int *sync)
{
    db_writer *w = db->writers_head, *last = w;

    *bytes = writer_bytes(w);
    *n = w->n_ops;
    *sync = w->sync;
    if (w->rotate)
        return w;
    for (w = w->next; w != NULL && !w->rotate; w = w->next) {
        uint64_t b = writer_bytes(w);
        if (*bytes + b > GROUP_MAX_BYTES)
            break;
        *bytes += b;
        *n += w->n_ops;
        *sync |= w->sync;
        last = w;
    }
    return last;
}

/* Encodes the group's entries, each writer's under its own version. */
static int db_encode_group(stoat_db *db, db_writer *first, db_writer *last)
{
    buf key = {0}, val = {0};
    int rc = 0;

    buf_reset(&db->wal_payload);
    for (db_writer *w = first;; w = w->next) {
        for (size_t i = 0; i < w->n_ops && rc == 0 && w->version != 0; i++) {
            const db_write_op *op = &w->ops[i];
            vstruct vs = {op->meta, op->user_meta, op->expires_at, op->value};

            buf_reset(&key);
            buf_reset(&val);
            if ((rc = buf_reserve(&key, op->key.len + IKEY_SUFFIX_LEN)) != 0 ||
                (rc = buf_reserve(&val, vstruct_encoded_len(&vs))) != 0)
                break;
            key.len = ikey_encode(key.data, op->key.data, op->key.len, w->version);
            val.len = vstruct_encode(val.data, &vs);
            rc = wal_encode_entry(&db->wal_payload, slice_make(key.data, key.len),
                                  slice_make(val.data, val.len));
        }
        if (rc != 0 || w == last)
            break;
    }
    buf_free(&key);
    buf_free(&val);
    return rc;
}

/* Inserts the logged payload (which this process just encoded) into the
 * memtable. */
static int db_apply_payload(memtable *m, const buf *payload)
{
    const char *p = payload->data, *limit = payload->data + payload->len;

    while (p < limit) {
        uint64_t klen = 0, vlen = 0;
        slice k, v;
        int rc;

        if ((p = get_varint64(p, limit, &klen)) == NULL || klen > (uint64_t)(limit - p))
            break;
        k = slice_make(p, klen);
        if ((p = get_varint64(p + klen, limit, &vlen)) == NULL || vlen > (uint64_t)(limit - p))
            break;
        v = slice_make(p, vlen);
        p += vlen;
        if ((rc = memtable_add(m, k, v)) != 0)
            return rc;
    }
    if (p != limit)
        return status_err(STOAT_ECORRUPT, "write path: malformed batch payload");
    return 0;
}

/* The front writer's work outside the mutex: log, sync, apply. Any
 * failure here may leave the WAL and memtable disagreeing: sticky. */
static int db_commit_group(stoat_db *db, int sync)
{
    memtable *m = db->mem;  /* only the front writer swaps it */
    int rc;

    if (db->wal_payload.len == 0)
        return sync ? memtable_sync(m) : 0;
    if ((rc = memtable_log(m, db->wal_payload.data, db->wal_payload.len)) != 0)
        return rc;
    if (sync && (rc = memtable_sync(m)) != 0)
        return rc;
    return db_apply_payload(m, &db->wal_payload);
}

/*
 * Gives w its version, unless it is a transaction that conflicts. While
 * any snapshot is open (a transaction may be reading), commits are
 * recorded so that later commits can be checked against them.
 */
static void db_assign_version_locked(stoat_db *db, db_writer *w)
{
    if (w->n_ops == 0)
        return;
    if (w->reads && oracle_conflicts(&db->oracle, w->read_version, w->reads)) {
        w->rc = STOAT_ECONFLICT;
        db->stat_conflicts++;
        return;
    }
    if (db->snapshots.next != &db->snapshots) {
        slice keys_small[16], *keys = keys_small;
        int rc;
        if (w->n_ops > 16 && (keys = malloc(w->n_ops * sizeof(*keys))) == NULL) {
            w->rc = status_err(STOAT_ENOMEM, "out of memory recording a commit");
            return;
        }
        for (size_t i = 0; i < w->n_ops; i++)
            keys[i] = w->ops[i].key;
        rc = oracle_record(&db->oracle, db->next_version, keys, w->n_ops);
        if (keys != keys_small)
            free(keys);
        if (rc != 0) {
            w->rc = status_err(rc, "out of memory recording a commit");
            return;
        }
    }
    w->version = db->next_version++;
    if (w->reads)
        db->stat_commits++;
}

/* Marks the group done, hands the queue to the next writer. */
static void db_finish_group_locked(stoat_db *db, db_writer *self, db_writer *last, int rc)
{
    for (;;) {
        db_writer *w = db->writers_head;
        db->writers_head = w->next;
        if (w->rc == 0)     /* a conflict found earlier stays */
            w->rc = rc;
        w->done = 1;
        if (w != self)
            pthread_cond_signal(&w->cv);
        if (w == last)
            break;
    }
    if (db->writers_head == NULL)
        db->writers_tail = NULL;
    else
        pthread_cond_signal(&db->writers_head->cv);
    pthread_cond_broadcast(&db->done_cv);
}

static int db_lead_group_locked(stoat_db *db, db_writer *self)
{
    uint64_t bytes, n, top = 0;
    int sync, rc;
    db_writer *last = db_build_group_locked(db, &bytes, &n, &sync);

    sync |= db->opts.sync == STOAT_SYNC_COMMIT && n > 0;
    rc = db_make_room_locked(db, bytes, n, self->rotate);
    if (rc == 0 && self->rotate) {
        self->version = db->n_imm ? memtable_id(db->imm[db->n_imm - 1]) : 0;
        db_finish_group_locked(db, self, last, 0);
        return 0;
    }
    if (rc == 0) {
        oracle_prune(&db->oracle, db_oldest_snapshot_locked(db));
        for (db_writer *w = db->writers_head;; w = w->next) {
            db_assign_version_locked(db, w);
            if (w->version)
                top = w->version;
            if (w == last)
                break;
        }
        pthread_mutex_unlock(&db->mu);
        rc = db_encode_group(db, db->writers_head, last);
        if (rc == 0 && (rc = db_commit_group(db, sync)) != 0) {
            pthread_mutex_lock(&db->mu);
            db_set_bg_error_locked(db, rc);
        } else {
            pthread_mutex_lock(&db->mu);
        }
        if (rc == 0 && top != 0)
            atomic_store_explicit(&db->last_version, top, memory_order_release);
    }
    db_finish_group_locked(db, self, last, rc);
    return rc;
}

static int db_write_queued(stoat_db *db, db_writer *wp);

int db_write(stoat_db *db, const db_write_op *ops, size_t n, int sync, int rotate)
{
    db_writer w = {.ops = ops, .n_ops = n, .sync = sync, .rotate = rotate};
    return db_write_queued(db, &w);
}

int db_write_txn(stoat_db *db, const db_write_op *ops, size_t n, txn_reads *reads,
                 uint64_t read_version)
{
    db_writer w = {.ops = ops, .n_ops = n, .reads = reads, .read_version = read_version};
    int rc = db_write_queued(db, &w);

    if (rc == STOAT_ECONFLICT)
        return status_err(rc, "transaction conflict: a key it read, or a key in a range it "
                              "iterated, was committed by another transaction since it began");
    return rc;
}

static int db_write_queued(stoat_db *db, db_writer *wp)
{
    db_writer w = *wp;
    int rotate = w.rotate;
    int rc;

    if (db->read_only)
        return status_err(STOAT_EREADONLY, "database %s is open read-only", db->dir);
    pthread_cond_init(&w.cv, NULL);
    pthread_mutex_lock(&db->mu);
    if (db->closing) {
        rc = status_err(STOAT_ECLOSED, "database is closing");
    } else if (db->bg_error) {
        rc = status_err(db->bg_error, "%s", db->bg_msg);
    } else {
        if (db->writers_tail)
            db->writers_tail->next = &w;
        else
            db->writers_head = &w;
        db->writers_tail = &w;
        while (!w.done && db->writers_head != &w)
            pthread_cond_wait(&w.cv, &db->mu);
        if (!w.done)
            db_lead_group_locked(db, &w);
        rc = w.rc;   /* the group's result, or this writer's own conflict */
        if (rc != 0 && w.done && db->bg_error)
            status_set_msg(db->bg_msg);
    }
    if (rc == 0 && rotate && w.version != 0)
        rc = db_wait_flushed_locked(db, w.version);
    pthread_mutex_unlock(&db->mu);
    pthread_cond_destroy(&w.cv);
    return rc;
}

int db_check_write_op(const db_write_op *op)
{
    int rc;

    if ((rc = db_check_key(op->key.data, op->key.len)) != 0)
        return rc;
    if (op->value.len > STOAT_MAX_VALUE_SIZE)
        return status_err(STOAT_ETOOBIG, "value of %zu bytes is over the maximum of %u",
                          op->value.len, STOAT_MAX_VALUE_SIZE);
    if (op->value.len > 0 && op->value.data == NULL)
        return status_err(STOAT_EINVAL, "value is NULL");
    return 0;
}

static int db_put_op(stoat_db *db, const db_write_op *op)
{
    int rc;

    if ((rc = db_check_handle(db)) != 0 || (rc = db_check_write_op(op)) != 0)
        return rc;
    return db_write(db, op, 1, 0, 0);
}

int stoat_put(stoat_db *db, const void *key, size_t klen, const void *val, size_t vlen)
{
    db_write_op op = {.key = slice_make(key, klen), .value = slice_make(val, vlen)};
    return db_put_op(db, &op);
}

int stoat_delete(stoat_db *db, const void *key, size_t klen)
{
    db_write_op op = {.meta = VMETA_DELETE, .key = slice_make(key, klen)};
    return db_put_op(db, &op);
}

int stoat_sync(stoat_db *db)
{
    int rc;

    if ((rc = db_check_handle(db)) != 0)
        return rc;
    if (db->read_only)
        return 0;
    return db_write(db, NULL, 0, 1, 0);
}

int stoat_flush(stoat_db *db)
{
    int rc;

    if ((rc = db_check_handle(db)) != 0)
        return rc;
    return db_write(db, NULL, 0, 0, 1);
}
