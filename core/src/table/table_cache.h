/*
 * table_cache.h - open SST readers, bounded by max_open_files.
 *
 * Keeps at most `capacity` readers open in LRU order; a reader still
 * referenced by a caller stays open past eviction until released (so the
 * bound is exceeded only by tables in active use). Thread-safe.
 */
#ifndef STOAT_TABLE_CACHE_H
#define STOAT_TABLE_CACHE_H

#include "table/block_cache.h"
#include "env/env.h"
#include "table/sst_reader.h"

typedef struct table_cache table_cache;

int table_cache_new(env *e, const char *dir, int capacity, block_cache *bc, table_cache **out);
void table_cache_free(table_cache *tc);

/* A referenced reader for table id (opened from dir/NNNNNN.sst if not
 * cached); the caller calls sst_reader_unref when done. */
int table_cache_get(table_cache *tc, uint64_t id, sst_reader **out);

/* Forgets table id (its file is being removed); drops its cached blocks. */
void table_cache_evict(table_cache *tc, uint64_t id);

/* Readers currently held open by the cache (<= capacity). Readers evicted
 * while a caller still uses them stay open until released and are not
 * counted here. */
int table_cache_open_count(table_cache *tc);

/*
 * Pins table id in the cache (opening it if needed): it is never evicted
 * for capacity until unpinned as many times, so its file stays readable
 * after another process deletes it (multi-process mode: a view loaded
 * from the MANIFEST pins its tables, db/shared.c). table_cache_evict of
 * a pinned table drops it at its last unpin instead. Errors: those of
 * opening the table (STOAT_ENOTFOUND when the file is gone).
 */
int table_cache_pin(table_cache *tc, uint64_t id);
void table_cache_unpin(table_cache *tc, uint64_t id);

#endif
