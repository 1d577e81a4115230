/*
 * vlog_gc.h - value-log garbage collection (vlog_gc.c): by call (stoat_gc)
 * and by the background thread.
 */
#ifndef STOAT_DB_VLOG_GC_H
#define STOAT_DB_VLOG_GC_H

#include "db/db.h"

int db_vlog_gc_start(stoat_db *db);
void db_vlog_gc_stop(stoat_db *db);
/* Deletes collected files no snapshot can reach any more, unless a GC is
 * running (it deletes them itself); mu not held. */
void db_vlog_gc_reap(stoat_db *db);

#endif
