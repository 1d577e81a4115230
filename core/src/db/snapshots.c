/*
 * snapshots.c - the read versions registered readers (iterators,
 * transactions, GC) still need, in a circular doubly-linked list sorted by
 * version, oldest first (db->snapshots is the head). Compaction keeps
 * every version the oldest one may read; value-log GC deletes a file only
 * once every snapshot older than its collection is gone: releasing a
 * snapshot only wakes the GC thread, which deletes what may go (no I/O
 * on the releasing thread). Guarded by db->mu (the _locked functions
 * expect it held; the others take it).
 */
#include "db/snapshots.h"

void db_snapshot_add_locked(stoat_db *db, db_snapshot *s)
{
    db_snapshot *after = db->snapshots.prev;

    /* Nearly always the newest: walk back from the tail. */
    while (after != &db->snapshots && after->version > s->version)
        after = after->prev;
    s->prev = after;
    s->next = after->next;
    after->next->prev = s;
    after->next = s;
    if (s->prev == &db->snapshots)
        db_snapshot_publish_locked(db);
}

static void db_snapshot_remove_locked(db_snapshot *s)
{
    s->prev->next = s->next;
    s->next->prev = s->prev;
}

void db_snapshot_add(stoat_db *db, db_snapshot *s)
{
    pthread_mutex_lock(&db->mu);
    db_snapshot_add_locked(db, s);
    pthread_mutex_unlock(&db->mu);
}

void db_snapshot_remove(stoat_db *db, db_snapshot *s)
{
    pthread_mutex_lock(&db->mu);
    int oldest = s->prev == &db->snapshots;
    db_snapshot_remove_locked(s);
    if (oldest)
        db_snapshot_publish_locked(db);
    /* A value-log file may have waited for this reader: the GC thread
     * deletes it. Never on this thread (an nginx worker's event loop). */
    if (db->n_gc_pending > 0)
        pthread_cond_broadcast(&db->bg_cv);
    pthread_mutex_unlock(&db->mu);
}

/* The oldest version this handle may still read. */
static uint64_t db_local_oldest_locked(stoat_db *db)
{
    if (db->snapshots.next != &db->snapshots)
        return db->snapshots.next->version;
    return atomic_load(&db->last_version);
}

uint64_t db_local_oldest_snapshot_locked(stoat_db *db)
{
    return db_local_oldest_locked(db);
}

uint64_t db_oldest_snapshot_locked(stoat_db *db)
{
    uint64_t v = db_local_oldest_locked(db);

    if (db->mp != NULL) {
        /* Every process's, as the owner's keeper last scanned them (0
         * before the first scan: nothing is dropped). */
        uint64_t h = atomic_load(&db->mp->horizon);
        if (h < v)
            v = h;
    }
    return v;
}

void db_snapshot_publish_locked(stoat_db *db)
{
    if (db->mp == NULL || db->mp->slots == NULL)
        return;
    /* Never above a version a later snapshot of this handle could take:
     * its read version only grows (shared.c, "Background work"). */
    pthread_mutex_lock(&db->mp->slots_mu);
    proc_slots_publish(db->mp->slots, db_local_oldest_locked(db));
    pthread_mutex_unlock(&db->mp->slots_mu);
}
