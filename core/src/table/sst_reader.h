/*
 * sst_reader.h - reads one SSTable file.
 *
 * Opening reads and checks the footer, index, filter and properties
 * (checksums verified; any damage is STOAT_ECORRUPT naming the file).
 * Data blocks are read on demand through the block cache, their checksum
 * verified before use. A reader is refcounted and immutable after open:
 * any number of threads may get and iterate at once.
 */
#ifndef STOAT_SST_READER_H
#define STOAT_SST_READER_H

#include "table/block_cache.h"
#include "base/buf.h"
#include "env/env.h"
#include "base/iter.h"
#include "table/sst.h"

typedef struct sst_reader sst_reader;

/* Opens the table at path, which the caller names table `id` (the block
 * cache key). cache may be NULL (no caching). */
int sst_reader_open(env *e, const char *path, uint64_t id, block_cache *cache, sst_reader **out);

/* 0 when the bloom filter says ukey is certainly absent. */
int sst_reader_may_contain(const sst_reader *r, slice ukey);

/*
 * Newest entry of user key ukey with version <= version, copied into
 * ikey_out and value_out (reset first). STOAT_ENOTFOUND when none.
 * Consults the filter first.
 */
int sst_reader_get(sst_reader *r, slice ukey, uint64_t version, buf *ikey_out, buf *value_out);

/* An iterator over the table (sst_iter.c); holds a reference to r until
 * freed. NULL on ENOMEM. After an error it stays invalid with that status
 * (sticky). */
iter *sst_reader_iter(sst_reader *r);
/* The same; with fill_cache 0 the blocks it reads that are not cached
 * stay out of the block cache (a compaction's single pass). */
iter *sst_reader_iter_opt(sst_reader *r, int fill_cache);

const sst_props *sst_reader_props(const sst_reader *r);
uint64_t sst_reader_id(const sst_reader *r);

void sst_reader_ref(sst_reader *r);
/* Closes the file at the last reference. */
void sst_reader_unref(sst_reader *r);

#endif
