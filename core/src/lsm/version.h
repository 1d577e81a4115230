/*
 * version.h - one immutable set of tables per level, and edits to it.
 *
 * A version lists, for each level, the tables (table_meta) it holds: L0
 * newest first (tables may overlap), L1.. sorted by smallest key and
 * non-overlapping. Versions are immutable and refcounted: readers and
 * iterators pin the version they started with; applying an edit makes a
 * new version. table_meta is refcounted too, shared by the versions that
 * list it; when its last reference goes, the table is no longer needed
 * (the database removes the file then, see table_meta.on_free).
 *
 * Threads: versions and table_meta are immutable after creation except for
 * refcounts (atomic) and `compacting` (guarded by the database mutex).
 */
#ifndef STOAT_VERSION_H
#define STOAT_VERSION_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/slice.h"

#define MAX_LEVELS 16

typedef struct table_meta table_meta;

struct table_meta {
    uint64_t id;
    uint64_t file_size;
    uint64_t num_entries;
    uint64_t num_deletions;
    uint64_t min_version;
    uint64_t max_version;
    buf smallest;               /* internal keys */
    buf largest;
    atomic_int refs;
    int compacting;             /* picked by a running compaction */
    /* Called with the table when its last reference goes (may be NULL). */
    void (*on_free)(void *arg, table_meta *t);
    void *on_free_arg;
};

/* A new table_meta with one reference; smallest/largest copied. */
table_meta *table_meta_new(uint64_t id, uint64_t file_size, slice smallest, slice largest);
void table_meta_ref(table_meta *t);
void table_meta_unref(table_meta *t);
static inline slice table_smallest_ukey(const table_meta *t)
{
    return slice_make(t->smallest.data, t->smallest.len - 8);
}
static inline slice table_largest_ukey(const table_meta *t)
{
    return slice_make(t->largest.data, t->largest.len - 8);
}

typedef struct version {
    atomic_int refs;
    int num_levels;
    table_meta **tables[MAX_LEVELS];
    size_t n[MAX_LEVELS];
} version;

version *version_new_empty(int num_levels);
void version_ref(version *v);
void version_unref(version *v);

/* One change to the set of tables, plus the counters the manifest keeps. */
typedef struct version_edit {
    struct edit_add { int level; table_meta *t; } *adds;   /* refs owned by the edit */
    size_t n_adds, cap_adds;
    struct edit_del { int level; uint64_t id; } *dels;
    size_t n_dels, cap_dels;
    int has_next_file_id, has_log_number, has_last_version;
    uint64_t next_file_id;      /* next id for any file (WAL, SST) */
    uint64_t log_number;        /* WALs with ids below this are flushed */
    uint64_t last_version;      /* largest version persisted in tables */
} version_edit;

void version_edit_init(version_edit *e);
/* Takes a new reference on t. */
int version_edit_add(version_edit *e, int level, table_meta *t);
int version_edit_del(version_edit *e, int level, uint64_t id);
void version_edit_free(version_edit *e);

/* Applies e to base (NULL = empty) into a new version with one reference.
 * STOAT_ECORRUPT if it deletes a table that is not there or breaks the
 * non-overlap rule of L1+. */
int version_apply(const version *base, int num_levels, const version_edit *e, version **out);

uint64_t version_level_bytes(const version *v, int level);

/* Index of the table in level >= 1 whose key range may hold ukey, or -1. */
long version_find_table(const version *v, int level, slice ukey);

/* Tables of `level` whose user-key range overlaps [lo, hi] (inclusive;
 * empty slices with NULL data mean unbounded). Malloc'd array of borrowed
 * pointers in *out (free it); count in *n. */
int version_overlapping(const version *v, int level, slice lo, slice hi, table_meta ***out,
                        size_t *n);

/* 1 if any level deeper than `level` holds a table overlapping [lo, hi]. */
int version_overlaps_below(const version *v, int level, slice lo, slice hi);

#endif
