/*
 * flush_compact.h - the background threads (flush_compact.c): memtable
 * flush and compaction.
 */
#ifndef STOAT_DB_FLUSH_COMPACT_H
#define STOAT_DB_FLUSH_COMPACT_H

#include "db/db.h"

int db_flush_compact_start(stoat_db *db);
void db_flush_compact_stop(stoat_db *db);
/* Logs edit to the MANIFEST and installs the version it makes. */
int db_install_edit(stoat_db *db, lsm_edit *edit);
/* Flushes every memtable, then compacts everything into the last level. */
int db_flatten(stoat_db *db);

#endif
