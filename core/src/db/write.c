/*
 * write.c - the write path: writer queue, group commit, memtable room.
 *
 * Every write (a put, a delete, a batch, a transaction's commit) enters the
 * writer queue under db->mu. The writer at the front gathers the writers
 * queued behind it into a group, makes room in the active memtable
 * (waiting for flushes and slowing or stalling on a crowded L0), gives
 * each writer of the group its version, and then, without the mutex,
 * appends the whole group to the WAL as one record (one fsync for all
 * when any of them asked for durability) and inserts it into the
 * memtable. It then publishes the group's last version to readers, wakes
 * the group's writers and hands the front to the next in line. Before a
 * durable group the front writer may wait a little for followers
 * (db_wait_followers_locked), so that fast fsyncs still batch.
 *
 * The group's record (its large values to the value log, its entries
 * encoded, logged, synced and applied to the memtable) is built in
 * write_record.c; write_int.h has what the two share.
 *
 * A failed WAL fsync (or an append that could not be cut back) may have
 * left a torn record behind: the database then enters the sticky error
 * state and refuses further writes (DESIGN: never retry a failed fsync and
 * carry on). Reads go on. A full disk is not sticky: the group that met
 * it fails with STOAT_ENOSPC and later writes try again (state.c, "a full
 * disk").
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "db/write_int.h"
#include "db/shared.h"
#include "db/snapshots.h"
#include "db/state.h"
#include "base/killpoint.h"
#include "base/perturb.h"
#include "base/ikey.h"
#include "base/status.h"

/* A group grows to at most this many payload bytes (unless its first
 * writer alone is bigger). */
#define GROUP_MAX_BYTES (1u << 20)
#define SLOWDOWN_MICROS 1000
/* The longest a front writer waits for followers before a durable group. */
#define GROUP_WAIT_MAX_MICROS 500
/* A memtable entry's skiplist node as expected: its header, a tower of the
 * mean height (2) and alignment (multi-process: when the shared WAL is as
 * full as a single process's memtable would be). */
#define MP_ENTRY_EXPECTED_OVERHEAD 40

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

/* fsync of the value log, then of m's WAL: a durable WAL record never
 * points at a value-log record that is not. */
static int db_sync_memtable_logs(stoat_db *db, memtable *m)
{
    int rc;

    if (db->vlog != NULL && (rc = vlog_sync(db->vlog)) != 0)
        return rc;
    return memtable_sync(m);
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
    PERTURB("memtable_rotate");
    /* A WAL stops growing here: sync it once, so that stoat_sync (which
     * syncs the active WAL) covers everything written before. */
    rc = db_sync_memtable_logs(db, db->mem);
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

/* Back-pressure on a crowded L0 (below the stall): lets compaction catch
 * up a little, once per write. 1 when it slept (the caller looks again). */
static int db_slow_down_locked(stoat_db *db, size_t l0, int *delayed)
{
    if (*delayed || l0 < (size_t)db->opts.l0_slowdown_trigger ||
        l0 >= (size_t)db->opts.l0_stall_trigger)
        return 0;
    pthread_mutex_unlock(&db->mu);
    usleep(SLOWDOWN_MICROS);
    pthread_mutex_lock(&db->mu);
    db->stat_slowdowns++;
    *delayed = 1;
    return 1;
}

/* Waits until the active memtable can take `bytes` in `n` entries. */
static int db_make_room_locked(stoat_db *db, uint64_t bytes, uint64_t n, int force_rotate)
{
    db_bg_wait bg_wait = {0};
    int delayed = 0, rc;

    for (;;) {
        size_t l0 = db->current->n[0];

        if ((rc = db_check_running_locked(db)) != 0)
            return rc;
        if (db_slow_down_locked(db, l0, &delayed))
            continue;
        if (!force_rotate && memtable_room(db->mem, bytes, n))
            return 0;
        if (force_rotate && memtable_count(db->mem) == 0)
            return 0;
        if (db->n_imm + 1 >= (size_t)db->opts.num_memtables ||
            l0 >= (size_t)db->opts.l0_stall_trigger) {
            uint64_t t0 = now_micros();
            rc = db_wait_bg_locked(db, &bg_wait);  /* STOAT_ENOSPC: the disk is full */
            db->stat_stall_micros += now_micros() - t0;
            if (rc != 0)
                return rc;
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
    if (w->rotate || w->exclusive)
        return w;
    for (w = w->next; w != NULL && !w->rotate && !w->exclusive; w = w->next) {
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

/* Records w's keys as committed at version, for later conflict checks. */
static int db_record_commit_locked(stoat_db *db, const db_writer *w, uint64_t version)
{
    slice keys_small[16], *keys = keys_small;
    int rc;

    if (w->n_ops > 16 && (keys = malloc(w->n_ops * sizeof(*keys))) == NULL)
        return status_err(STOAT_ENOMEM, "out of memory recording a commit");
    for (size_t i = 0; i < w->n_ops; i++)
        keys[i] = w->ops[i].key;
    rc = oracle_record(&db->oracle, version, keys, w->n_ops);
    if (keys != keys_small)
        free(keys);
    return rc ? status_err(rc, "out of memory recording a commit") : 0;
}

/*
 * Gives w its version, unless it is a transaction that conflicts. Every
 * commit is recorded, so that later commits can be checked against it: a
 * transaction may begin after this version is given out but before it is
 * published, and then reads below it. oracle_prune drops the record once
 * no snapshot can be older.
 */
static void db_assign_version_locked(stoat_db *db, db_writer *w)
{
    if (w->n_ops == 0)
        return;
    if (w->gc) {
        /*
         * A move of values, not a change: no conflicts, and only the
         * version that tells later snapshots from earlier ones. A key
         * written since GC judged it gets no rewrite: its old value would
         * land in a newer source than the newer version, which readers
         * stopping at the first source would then miss (and a tombstone
         * dropped later would let it resurface).
         */
        slice *keys = malloc(w->n_ops * sizeof(*keys));

        for (size_t i = 0; keys != NULL && i < w->n_ops; i++)
            keys[i] = w->ops[i].key;
        if (keys == NULL ||
            oracle_written_after_each(&db->oracle, w->read_version, keys, w->n_ops, w->skip) != 0)
            for (size_t i = 0; i < w->n_ops; i++)   /* no memory: key by key */
                w->skip[i] = (uint8_t)oracle_written_after(&db->oracle, w->read_version,
                                                           w->ops[i].key);
        free(keys);
        w->version = db->next_version++;
        return;
    }
    /* Below conflict_floor this process missed commits (shared.c): a
     * transaction that read anything cannot be checked; blind writes can. */
    if (w->reads && (oracle_conflicts(&db->oracle, w->read_version, w->reads) ||
                     (db->mp != NULL && w->read_version < db->mp->conflict_floor &&
                      (w->reads->n_fps > 0 || w->reads->n_ranges > 0)))) {
        w->rc = STOAT_ECONFLICT;
        db->stat_conflicts++;
        return;
    }
    if ((w->rc = db_record_commit_locked(db, w, db->next_version)) != 0)
        return;
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

/* Multi-process mode: back-pressure waits for the owner (shared.c) to
 * flush and compact: its backlog as it publishes it, or as this process
 * sees it, whichever is larger. */
static int db_wait_stall_mp_locked(stoat_db *db)
{
    int delayed = 0, rc;

    for (;;) {
        uint64_t backlog = atomic_load(&db->mp->hdr->backlog);
        size_t l0 = db->current->n[0], n_imm = db->n_imm;

        if ((backlog & UINT32_MAX) > l0)
            l0 = (size_t)(backlog & UINT32_MAX);
        if ((backlog >> 32) > n_imm)
            n_imm = (size_t)(backlog >> 32);
        if ((rc = db_check_running_locked(db)) != 0)
            return rc;
        if (db_slow_down_locked(db, l0, &delayed))
            continue;
        if (n_imm + 1 < (size_t)db->opts.num_memtables && l0 < (size_t)db->opts.l0_stall_trigger)
            return 0;
        struct timespec ts;
        uint64_t t0 = now_micros();
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000L;    /* the owner's progress wakes nobody here */
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&db->done_cv, &db->mu, &ts);
        db->stat_stall_micros += now_micros() - t0;
    }
}

/* The arena bytes the group's entries take at most in a memtable: a
 * value that goes to the value log takes a pointer's room there (the
 * shared WAL's room is counted across commits by this, not by the
 * values' sizes). */
static uint64_t db_group_arena_bytes(const stoat_db *db, const db_writer *first,
                                     const db_writer *last)
{
    uint64_t n = 0;

    for (const db_writer *w = first;; w = w->next) {
        for (size_t i = 0; i < w->n_ops; i++) {
            const db_write_op *op = &w->ops[i];
            n += op_separated(db, op)
                     ? op->key.len + IKEY_SUFFIX_LEN + 2 + VARINT64_MAX_LEN + VPTR_LEN
                     : op_bytes(op);
        }
        if (w == last)
            break;
    }
    return n;
}

/*
 * The multi-process front writer: the same steps as below, under the
 * commit lock of every process (shared.c): catch up, make room in the
 * shared WAL, take versions above the published one, append, apply,
 * publish. A failure to get the lock fails the group only; a failure
 * once appending began is sticky, as below.
 */
static int db_lead_group_mp_locked(stoat_db *db, db_writer *self, db_writer *last,
                                   uint64_t bytes, uint64_t n, int sync)
{
    uint64_t need, est, top = 0, t0 = 0;
    int rotated = 0, sticky = 0, note = 0, rc;

    (void)bytes;
    est = db_group_arena_bytes(db, db->writers_head, last);
    need = est + n * (MEMTABLE_ENTRY_OVERHEAD + 8);
    est += n * MP_ENTRY_EXPECTED_OVERHEAD;
    /* Only a transaction that read, or a GC rewrite, is checked against
     * the commits of the others: the oracle learns them for those only. */
    for (db_writer *w = db->writers_head;; w = w->next) {
        note |= w->gc || (w->reads != NULL && (w->reads->n_fps > 0 || w->reads->n_ranges > 0));
        if (w == last)
            break;
    }
    if ((rc = db_wait_stall_mp_locked(db)) == 0) {
        pthread_mutex_unlock(&db->mu);
        if ((rc = db_mp_commit_begin(db, note)) == 0) {
            if (sync)
                t0 = now_micros();
            rc = db_mp_room(db, need, est, self->rotate, &rotated);
            if (rc == 0 && !self->rotate) {
                pthread_mutex_lock(&db->mu);
                db->next_version = db_mp_next_version(db);
                /* Only this handle's transactions check against its
                 * oracle: the other processes' snapshots (the horizon,
                 * scanned now and then) need none of its records. */
                oracle_prune(&db->oracle, db_local_oldest_snapshot_locked(db));
                for (db_writer *w = db->writers_head;; w = w->next) {
                    db_assign_version_locked(db, w);
                    if (w->version)
                        top = w->version;
                    if (w == last)
                        break;
                }
                pthread_mutex_unlock(&db->mu);
                PERTURB("write_group");
                size_t n_sep;
                int apply;
                memtable *m = db_mp_intent(db, top, &apply);
                if ((rc = db_mp_vlog_adopt(db)) == 0 &&
                    (rc = db_separate_values(db, db->writers_head, last, &n_sep)) == 0)
                    rc = db_encode_group(db, db->writers_head, last);
                if (rc == 0) {
                    /* A full disk is not sticky: the next holder's repair
                     * cuts off what this group left (its intent stays). */
                    KILL_POINT("commit_intent");
                    rc = db_commit_group(db, m, sync, apply, db->writers_head, last);
                    sticky = rc != 0 && rc != STOAT_ENOSPC;
                }
                KILL_POINT("commit_appended");
                if (rc == 0)
                    db_mp_publish(db, need, est, top);
                KILL_POINT("commit_published");
            }
            db_mp_commit_end(db, rc == 0);
        }
        if (sticky)
            db_mp_fatal(db);
        pthread_mutex_lock(&db->mu);
        if (sticky)
            db_set_bg_error_locked(db, rc);
        if (rc == 0 && sync && !self->rotate) {     /* as in db_lead_group_locked */
            db->sync_micros = now_micros() - t0;
            db->sync_crowd = db->writers_inside;
            db->stat_sync_groups++;
        }
    }
    /* As below: with nothing to rotate (the head WAL empty, a rotation
     * just done by a commit), the flush of the newest immutable memtable
     * is what stoat_flush and flatten wait for. */
    (void)rotated;
    if (rc == 0 && self->rotate)
        self->rotated_mem = db->n_imm ? memtable_id(db->imm[db->n_imm - 1]) : 0;
    db_finish_group_locked(db, self, last, rc);
    return rc;
}

/*
 * An exclusive writer (a group of its own): runs its function with no
 * write in flight, then publishes its reserved version. Every version
 * handed out before is published by now (groups finish before the front
 * moves on), so last_version may jump to it.
 */
static int db_lead_exclusive_locked(stoat_db *db, db_writer *self)
{
    uint64_t v = self->exclusive_version;
    int rc;

    if (v != 0 && db->next_version > v) {
        rc = status_err(STOAT_EBUSY, "the version reserved for this write (%llu) was passed by "
                        "other commits", (unsigned long long)v);
    } else if (db->mp != NULL) {
        /* Under the commit lock: no process commits meanwhile. */
        pthread_mutex_unlock(&db->mu);
        if ((rc = db_mp_exclusive_begin(db, v)) == 0) {
            rc = self->exclusive(db, self->exclusive_arg);
            db_mp_exclusive_end(db, v, rc == 0);
        }
        pthread_mutex_lock(&db->mu);
        if (rc == 0 && v != 0) {
            db->next_version = v + 1;
            self->version = v;
        }
    } else {
        pthread_mutex_unlock(&db->mu);
        rc = self->exclusive(db, self->exclusive_arg);
        pthread_mutex_lock(&db->mu);
        if (rc == 0 && v != 0) {
            db->next_version = v + 1;
            atomic_store_explicit(&db->last_version, v, memory_order_release);
            self->version = v;
        }
    }
    db_finish_group_locked(db, self, self, rc);
    return rc;
}

/*
 * Group commit's wait for followers (after RocksDB's adaptive yield): a
 * durable group costs one fsync however many writers it holds, but when
 * fsync is fast the writers just woken from the last group are still on
 * their way back when the next front writer builds its group, which then
 * holds one or two. So before a durable group the front writer waits until
 * the queue holds as many writers as were inside when the last durable
 * group had synced, for at most half that commit's time (at most
 * GROUP_WAIT_MAX_MICROS). A writer alone never waits. In multi-process
 * mode it waits before it takes the commit lock: only this process's
 * writers gather, and nobody else waits on it meanwhile.
 */
static void db_wait_followers_locked(stoat_db *db)
{
    uint64_t budget = db->sync_micros / 2, t0;

    if (db->sync_crowd <= 1 || budget == 0)
        return;
    if (budget > GROUP_WAIT_MAX_MICROS)
        budget = GROUP_WAIT_MAX_MICROS;
    t0 = now_micros();
    for (;;) {
        struct timespec ts;
        uint64_t waited = now_micros() - t0, left;
        int queued = 0;

        for (db_writer *w = db->writers_head; w != NULL; w = w->next)
            queued++;
        if (queued >= db->sync_crowd || db->closing || waited >= budget)
            return;
        left = budget - waited;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(left * 1000);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&db->arrive_cv, &db->mu, &ts);
    }
}

static int db_lead_group_locked(stoat_db *db, db_writer *self)
{
    uint64_t bytes, n, top = 0;
    int sync, rc;
    db_writer *last;

    if (self->exclusive)
        return db_lead_exclusive_locked(db, self);
    if (!self->rotate && (self->sync || db->opts.sync == STOAT_SYNC_COMMIT))
        db_wait_followers_locked(db);
    last = db_build_group_locked(db, &bytes, &n, &sync);

    sync |= db->opts.sync == STOAT_SYNC_COMMIT && n > 0;
    if (db->mp != NULL)
        return db_lead_group_mp_locked(db, self, last, bytes, n, sync);
    rc = db_make_room_locked(db, bytes, n, self->rotate);
    if (rc == 0 && self->rotate) {
        self->rotated_mem = db->n_imm ? memtable_id(db->imm[db->n_imm - 1]) : 0;
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
        size_t n_sep;
        uint64_t t0 = now_micros();
        pthread_mutex_unlock(&db->mu);
        PERTURB("write_group");
        rc = db_separate_values(db, db->writers_head, last, &n_sep);
        if (rc == 0)
            rc = db_encode_group(db, db->writers_head, last);
        if (rc == 0 &&
            (rc = db_commit_group(db, db->mem, sync, 1, db->writers_head, last)) != 0) {
            pthread_mutex_lock(&db->mu);
            if (rc == STOAT_ENOSPC)
                db_count_unlogged_values(db, n_sep);
            else
                db_set_bg_error_locked(db, rc);
        } else {
            pthread_mutex_lock(&db->mu);
        }
        if (rc == 0 && sync) {  /* what the next durable group waits by */
            db->sync_micros = now_micros() - t0;
            db->sync_crowd = db->writers_inside;
            db->stat_sync_groups++;
        }
        if (rc == 0 && top != 0)
            atomic_store_explicit(&db->last_version, top, memory_order_release);
    }
    db_finish_group_locked(db, self, last, rc);
    return rc;
}

static int db_write_queued(stoat_db *db, db_writer *wp);

/* A writer through the queue: ops (may be none), then a sync of the logs
 * and/or a rotation of the memtable, waited for. The named modes below. */
static int db_write_mode(stoat_db *db, const db_write_op *ops, size_t n, int sync, int rotate)
{
    db_writer w = {.ops = ops, .n_ops = n, .sync = sync, .rotate = rotate};
    return db_write_queued(db, &w);
}

int db_write(stoat_db *db, const db_write_op *ops, size_t n)
{
    return db_write_mode(db, ops, n, 0, 0);
}

int db_barrier(stoat_db *db)
{
    return db_write_mode(db, NULL, 0, 0, 0);
}

int db_sync_logs(stoat_db *db)
{
    return db_write_mode(db, NULL, 0, 1, 0);
}

int db_rotate_and_wait(stoat_db *db)
{
    return db_write_mode(db, NULL, 0, 0, 1);
}

int db_write_exclusive(stoat_db *db, uint64_t version, int (*fn)(stoat_db *db, void *arg),
                       void *arg)
{
    db_writer w = {.exclusive = fn, .exclusive_arg = arg, .exclusive_version = version};
    return db_write_queued(db, &w);
}

uint64_t db_version_reserve(stoat_db *db, uint64_t ahead)
{
    uint64_t v;

    uint64_t next;

    pthread_mutex_lock(&db->mu);
    next = db->next_version;
    pthread_mutex_unlock(&db->mu);
    if (db->mp != NULL && db_mp_next_version(db) > next)
        next = db_mp_next_version(db);  /* every process's commits */
    v = next + ahead;
    /* Keep far from the top: UINT64_MAX is the seek sentinel (ikey.h). */
    return v < next || v >= (UINT64_MAX >> 1) ? 0 : v;
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

int db_write_gc(stoat_db *db, const db_write_op *ops, size_t n, uint64_t read_version,
                uint8_t *skip, uint64_t *done_version)
{
    db_writer w = {.ops = ops, .n_ops = n, .gc = 1, .read_version = read_version, .skip = skip};
    int rc = db_write_queued(db, &w);

    *done_version = w.version;
    return rc;
}

static int db_write_queued(stoat_db *db, db_writer *wp)
{
    db_writer w = *wp;
    int rotate = w.rotate;
    int rc;

    if ((rc = db_check_writable(db)) != 0)
        return rc;
    pthread_cond_init(&w.cv, NULL);
    pthread_mutex_lock(&db->mu);
    if ((rc = db_check_running_locked(db)) == 0) {
        if (db->writers_tail)
            db->writers_tail->next = &w;
        else
            db->writers_head = &w;
        db->writers_tail = &w;
        db->writers_inside++;
        if (db->writers_head != &w)
            pthread_cond_signal(&db->arrive_cv);    /* a front writer may wait for us */
        while (!w.done && db->writers_head != &w)
            pthread_cond_wait(&w.cv, &db->mu);
        if (!w.done)
            db_lead_group_locked(db, &w);
        rc = w.rc;   /* the group's result, or this writer's own conflict */
        if (rc != 0 && w.done && db->bg_error)
            status_set_msg(db->bg_msg);
        db->writers_inside--;
    }
    if (rc == 0 && rotate && w.rotated_mem != 0)
        rc = db_wait_flushed_locked(db, w.rotated_mem);
    pthread_mutex_unlock(&db->mu);
    pthread_cond_destroy(&w.cv);
    wp->version = w.version;
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
    return db_write(db, op, 1);
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
    if (db->mp != NULL) {
        pthread_mutex_lock(&db->mu);
        rc = db_check_running_locked(db);
        pthread_mutex_unlock(&db->mu);
        return rc != 0 ? rc : db_mp_sync(db);
    }
    return db_sync_logs(db);
}

int stoat_flush(stoat_db *db)
{
    int rc;

    if ((rc = db_check_handle(db)) != 0)
        return rc;
    return db_rotate_and_wait(db);
}
