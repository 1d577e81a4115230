/*
 * level_iter.h - one iterator over a sorted, non-overlapping run of tables
 * (a level L1+, or the inputs of a compaction from one such level).
 *
 * Opens each table through the table cache only when the iteration reaches
 * it, and releases it when it moves on. The tables array and its metas are
 * borrowed: the caller keeps the version that lists them alive. One thread
 * at a time.
 */
#ifndef STOAT_LEVEL_ITER_H
#define STOAT_LEVEL_ITER_H

#include <stddef.h>

#include "base/iter.h"
#include "table/table_cache.h"
#include "lsm/view.h"

iter *level_iter_new(table_meta *const *tables, size_t n, table_cache *tc);
/* The same; fill_cache 0 keeps the blocks it reads out of the block cache
 * (sst_reader_iter_opt). */
iter *level_iter_new_opt(table_meta *const *tables, size_t n, table_cache *tc, int fill_cache);

#endif
