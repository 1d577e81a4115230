/*
 * sst_builder.h - writes one SSTable file from sorted entries.
 *
 * Owns the file while building. Entries must arrive in strictly
 * increasing ikey_cmp order (checked: STOAT_EINVAL otherwise). Not
 * thread-safe: one builder, one thread.
 */
#ifndef STOAT_SST_BUILDER_H
#define STOAT_SST_BUILDER_H

#include "env/env.h"
#include "table/sst.h"

typedef struct sst_builder sst_builder;

/* Creates (truncates) path and starts a table. */
int sst_builder_new(env *e, const char *path, const sst_options *o, sst_builder **out);

int sst_builder_add(sst_builder *b, slice ikey, slice value);

/* Bytes written so far plus the pending block: what the file would be. */
uint64_t sst_builder_size(const sst_builder *b);
uint64_t sst_builder_entries(const sst_builder *b);

/* Writes the filter, properties, index and footer, fsyncs and closes the
 * file, fills *props, frees the builder (also on error). */
int sst_builder_finish(sst_builder *b, sst_props *props);

/* Closes and removes the unfinished file, frees the builder. NULL ok. */
void sst_builder_abandon(sst_builder *b);

#endif
