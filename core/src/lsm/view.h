/*
 * view.h - one immutable set of tables per level (an lsm_view), and edits
 * to it (lsm_edit). LevelDB calls these Version and VersionEdit; here
 * "version" is only the MVCC stamp of an entry (as in stoat.h and
 * FORMAT.md).
 *
 * An lsm_view lists, for each level, the tables (table_meta) it holds: L0
 * newest first (tables may overlap), L1.. sorted by smallest key and
 * non-overlapping. Views are immutable and refcounted: readers and
 * iterators pin the view they started with; applying an edit makes a new
 * view. table_meta is refcounted too, shared by the views that list it;
 * when its last reference goes, the table is no longer needed (the
 * database removes the file then, see table_meta.on_free).
 *
 * Threads: views and table_meta are immutable after creation except for
 * refcounts (atomic) and `compacting` (guarded by the database mutex).
 */
#ifndef STOAT_LSM_VIEW_H
#define STOAT_LSM_VIEW_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/slice.h"

#define MAX_LEVELS 16

/* A wasted probe of a table costs about what reading this many bytes of it
 * in a compaction does (LevelDB's estimate: one seek ~ 16 KiB of
 * compaction I/O); a table gets at least TABLE_SEEK_MIN of them. */
#define TABLE_SEEK_BYTES (16 << 10)
#define TABLE_SEEK_MIN 100

typedef struct table_meta table_meta;

struct table_meta {
    uint64_t id;
    uint64_t file_size;
    uint64_t num_entries;
    uint64_t num_deletions;
    uint64_t min_version;
    uint64_t max_version;
    /* Entries a compaction kept only because a reader's snapshot needed
     * them (older versions it would have dropped with no reader open),
     * and the oldest read version at which all of them can go: once no
     * snapshot is older, compaction_pick rewrites the table to drop them
     * and so counts their value-log garbage (issue 16). 0 and 0: none. */
    uint64_t num_stale;
    uint64_t stale_version;
    buf smallest;               /* internal keys */
    buf largest;
    atomic_int refs;
    /* Point reads that probed this table and then had to look deeper
     * (LevelDB's allowed_seeks): each such read takes one; at 0 the table
     * is due for a seek compaction (compaction_pick_seek). Starts at
     * file_size / TABLE_SEEK_BYTES, at least TABLE_SEEK_MIN. Lock-free. */
    atomic_long seeks_left;
    int compacting;             /* picked by a running compaction */
    /* Called with the table when its last reference goes (may be NULL). */
    void (*on_free)(void *arg, table_meta *t);
    void *on_free_arg;
};

/* A new table_meta with one reference; smallest/largest copied. */
table_meta *table_meta_new(uint64_t id, uint64_t file_size, slice smallest, slice largest);
void table_meta_ref(table_meta *t);
void table_meta_unref(table_meta *t);
/* Charges t one wasted probe: 1 when this one used up its budget (exactly
 * one caller sees 1), else 0. Thread-safe. */
int table_meta_charge_seek(table_meta *t);
static inline slice table_smallest_ukey(const table_meta *t)
{
    return slice_make(t->smallest.data, t->smallest.len - 8);
}
static inline slice table_largest_ukey(const table_meta *t)
{
    return slice_make(t->largest.data, t->largest.len - 8);
}

typedef struct lsm_view {
    atomic_int refs;
    int num_levels;
    table_meta **tables[MAX_LEVELS];
    size_t n[MAX_LEVELS];
} lsm_view;

lsm_view *lsm_view_new_empty(int num_levels);
void lsm_view_ref(lsm_view *v);
void lsm_view_unref(lsm_view *v);

/* One change to the set of tables, plus the counters the manifest keeps. */
typedef struct lsm_edit {
    struct edit_add { int level; table_meta *t; } *adds;   /* refs owned by the edit */
    size_t n_adds, cap_adds;
    struct edit_del { int level; uint64_t id; } *dels;
    size_t n_dels, cap_dels;
    int has_next_file_id, has_log_number, has_last_version;
    uint64_t next_file_id;      /* next id for any file (WAL, SST) */
    uint64_t log_number;        /* WALs with ids below this are flushed */
    uint64_t last_version;      /* largest version persisted in tables */
} lsm_edit;

void lsm_edit_init(lsm_edit *e);
/* Takes a new reference on t. */
int lsm_edit_add(lsm_edit *e, int level, table_meta *t);
int lsm_edit_del(lsm_edit *e, int level, uint64_t id);
void lsm_edit_free(lsm_edit *e);

/* Applies e to base (NULL = empty) into a new version with one reference.
 * STOAT_ECORRUPT if it deletes a table that is not there or breaks the
 * non-overlap rule of L1+. */
int lsm_view_apply(const lsm_view *base, int num_levels, const lsm_edit *e, lsm_view **out);

uint64_t lsm_view_level_bytes(const lsm_view *v, int level);

/* Index of the table in level >= 1 whose key range may hold ukey, or -1. */
long lsm_view_find_table(const lsm_view *v, int level, slice ukey);

/* Tables of `level` whose user-key range overlaps [lo, hi] (inclusive;
 * empty slices with NULL data mean unbounded). Malloc'd array of borrowed
 * pointers in *out (free it); count in *n. */
int lsm_view_overlapping(const lsm_view *v, int level, slice lo, slice hi, table_meta ***out,
                        size_t *n);

/* 1 if any level deeper than `level` holds a table overlapping [lo, hi]. */
int lsm_view_overlaps_below(const lsm_view *v, int level, slice lo, slice hi);

#endif
