/*
 * state.c - the rules every part of the engine applies to the handle: the
 * checks each public call makes (fork generation, key), the sticky
 * background error and the no-space state (a full disk: retried, not
 * sticky), file ids, and the queue of immutable memtables
 * waiting for the flusher.
 *
 * A handle remembers the fork generation it was opened in: after fork()
 * the child's generation differs and every call returns STOAT_EFORKED
 * (the child has no background threads, and the lock belongs to the
 * parent). The fork hook is registered by the first open, never at load
 * time. Functions named _locked expect db->mu held.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "db/state.h"
#include "base/status.h"
#include "base/vec.h"

static _Atomic unsigned long fork_generation;
static pthread_once_t fork_hook_once = PTHREAD_ONCE_INIT;

static void fork_child(void)
{
    atomic_fetch_add(&fork_generation, 1);
}

static void fork_hook_register(void)
{
    pthread_atfork(NULL, NULL, fork_child);
}

uint64_t db_clock_ms(int round_up)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + ((uint64_t)ts.tv_nsec + (round_up ? 999999 : 0)) / 1000000;
}

uint64_t stoat_clock_ms(void)
{
    return db_clock_ms(0);
}

unsigned long db_fork_generation(void)
{
    pthread_once(&fork_hook_once, fork_hook_register);
    return atomic_load(&fork_generation);
}

int db_check_handle(stoat_db *db)
{
    if (db == NULL)
        return status_err(STOAT_EINVAL, "database handle is NULL");
    if (db->fork_gen != atomic_load_explicit(&fork_generation, memory_order_relaxed))
        return status_err(STOAT_EFORKED,
                          "database handle used in a forked process: open it again there");
    return 0;
}

int db_check_key(const void *key, size_t klen)
{
    if (klen == 0)
        return status_err(STOAT_EINVAL, "empty key");
    if (key == NULL)
        return status_err(STOAT_EINVAL, "key is NULL");
    if (klen > STOAT_MAX_KEY_SIZE)
        return status_err(STOAT_ETOOBIG, "key of %zu bytes is over the maximum of %u", klen,
                          STOAT_MAX_KEY_SIZE);
    return 0;
}

void db_set_bg_error_locked(stoat_db *db, int rc)
{
    if (db->bg_error == 0 && rc != 0) {
        db->bg_error = rc;
        snprintf(db->bg_msg, sizeof(db->bg_msg), "%s", status_msg());
    }
    pthread_cond_broadcast(&db->done_cv);
}

uint64_t db_new_file_id(void *arg)
{
    stoat_db *db = arg;
    uint64_t id;

    if (db->mp != NULL)     /* every process draws from one counter */
        return atomic_fetch_add(&db->mp->hdr->next_file_id, 1);
    pthread_mutex_lock(&db->mu);
    id = db->next_file_id++;
    pthread_mutex_unlock(&db->mu);
    return id;
}

int db_push_imm_locked(stoat_db *db, memtable *m)
{
    if (VEC_ROOM(db->imm, db->n_imm, db->cap_imm, 8) != 0)
        return status_err(STOAT_ENOMEM, "out of memory queueing a memtable");
    db->imm[db->n_imm++] = m;
    return 0;
}

int db_check_writable(stoat_db *db)
{
    if (db->read_only)
        return status_err(STOAT_EREADONLY, "database %s is open read-only", db->dir);
    return 0;
}

int db_check_running_locked(stoat_db *db)
{
    if (db->bg_error)
        return status_err(db->bg_error, "%s", db->bg_msg);
    if (db->closing)
        return status_err(STOAT_ECLOSED, "database is closing");
    return 0;
}

int db_wait_flushed_locked(stoat_db *db, uint64_t mem_id)
{
    db_bg_wait w = {0};
    int rc;

    while (db->n_imm > 0 && memtable_id(db->imm[0]) <= mem_id) {
        if ((rc = db_check_running_locked(db)) != 0 || (rc = db_wait_bg_locked(db, &w)) != 0)
            return rc;
    }
    return 0;
}

/* ---- a full disk: retried, not sticky ---- */

int db_bg_failed_locked(stoat_db *db, int rc)
{
    if (rc != STOAT_ENOSPC) {
        db_set_bg_error_locked(db, rc);
        return 0;
    }
    db->nospace = 1;
    db->nospace_fails++;
    snprintf(db->nospace_msg, sizeof(db->nospace_msg), "%s", status_msg());
    pthread_cond_broadcast(&db->done_cv);
    return 1;
}

void db_bg_succeeded_locked(stoat_db *db)
{
    db->nospace = 0;
}

/* Up to a second, or until a writer (or any background event) wakes the
 * jobs: retrying sooner would only fill the disk's last bytes again. */
void db_nospace_backoff_locked(stoat_db *db)
{
    struct timespec ts;

    if (db->closing)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&db->bg_cv, &db->mu, &ts);
}

int db_wait_bg_locked(stoat_db *db, db_bg_wait *w)
{
    if (db->nospace) {
        if (w->kicked && db->nospace_fails != w->fails_at_kick)
            return status_err(STOAT_ENOSPC, "%s", db->nospace_msg);
        if (!w->kicked) {
            w->kicked = 1;
            w->fails_at_kick = db->nospace_fails;
            pthread_cond_broadcast(&db->bg_cv);
        }
    }
    pthread_cond_wait(&db->done_cv, &db->mu);
    return 0;
}

void db_charge_seek(stoat_db *db, int level, table_meta *t)
{
    /* No compactor (read-only): nobody would act on it. n_compactors is
     * set before the handle is handed out. */
    if (db->n_compactors == 0 || !table_meta_charge_seek(t))
        return;
    pthread_mutex_lock(&db->mu);
    if (!db->seek_due) {
        db->seek_due = 1;
        db->seek_id = t->id;
        db->seek_level = level;
        pthread_cond_broadcast(&db->bg_cv);
    }
    pthread_mutex_unlock(&db->mu);
}
