/*
 * snapshots.h - the list of registered snapshots (snapshots.c), in the
 * manner of LevelDB's SnapshotList.
 */
#ifndef STOAT_DB_SNAPSHOTS_H
#define STOAT_DB_SNAPSHOTS_H

#include "db/db.h"

/* Registers s (s->version set by the caller). */
void db_snapshot_add(stoat_db *db, db_snapshot *s);
void db_snapshot_add_locked(stoat_db *db, db_snapshot *s);
/* Unregisters s; wakes the GC thread when collected value-log files wait
 * for readers to go (never deletes anything itself). */
void db_snapshot_remove(stoat_db *db, db_snapshot *s);
/* The oldest registered read version, or last_version when none; in the
 * multi-process mode, of every live process (as last scanned). */
uint64_t db_oldest_snapshot_locked(stoat_db *db);
/* The oldest registered read version of this handle alone, or
 * last_version when none: what its own transactions may still read (the
 * oracle's records below it serve no conflict check). */
uint64_t db_local_oldest_snapshot_locked(stoat_db *db);
/* Multi-process mode: publishes this handle's oldest readable version in
 * its liveness slot (shared.c); a no-op otherwise. */
void db_snapshot_publish_locked(stoat_db *db);

#endif
