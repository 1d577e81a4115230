/*
 * compaction.h - choosing and running compactions.
 *
 * Picking (compaction_pick) reads a version and the level options and
 * returns the most urgent compaction, marking its input tables
 * `compacting` (the caller holds the database mutex). Levels:
 *   - L0 tables overlap and come from flushes; L0 compacts into the base
 *     level, never below a non-empty level between them;
 *   - dynamic level sizes: the last level's target is its size (at least
 *     base_level_size), each level above is 1/multiplier of the one below,
 *     floored at base_level_size; the base level is the deepest level
 *     whose unfloored target is at most base_level_size, but never deeper
 *     than the shallowest non-empty level of L1+.
 *   - the level right above the deepest one may hold at most a quarter of
 *     its bytes (space amplification), whatever its floored target;
 *   - a level's score is size / target (L0: tables / l0_compaction_trigger);
 *     tables whose tombstones make up a large share are picked even when
 *     their level is within target, so deletes free space.
 *
 * Running (compaction_run) merges the inputs, drops versions no reader
 * needs (for each user key: every version above oldest_read_version is
 * kept, plus the newest one at or below it; that one too is dropped if it
 * is a tombstone or expired and no deeper level overlaps), and writes
 * output tables of at most table_size, never splitting one user key's
 * versions across two tables. Outputs and deletions go into an edit that
 * the caller logs to the manifest and applies. No locks are held while
 * running.
 */
#ifndef STOAT_COMPACTION_H
#define STOAT_COMPACTION_H

#include <stdint.h>

#include "env/env.h"
#include "table/sst.h"
#include "table/table_cache.h"
#include "lsm/view.h"

typedef struct level_options {
    int num_levels;
    uint64_t base_level_size;
    int level_size_multiplier;
    uint64_t table_size;
    int l0_compaction_trigger;
    /* The oldest version any snapshot reads at (compaction_ctx's
     * oldest_read_version), refreshed by the caller before each pick;
     * 0 = unknown. A last-level table is compacted into itself for its
     * tombstones only when its max_version is at or below this, so that
     * the rewrite really drops them (else it would be picked again and
     * again); likewise a table with entries kept only for a reader
     * (table_meta.num_stale) once its stale_version is at or below it. */
    uint64_t discard_version;
} level_options;

typedef struct compaction {
    int level;                  /* input level */
    int out_level;              /* output level: level + 1, or base level for L0, or a
                                 * deeper level when those between are empty (manual);
                                 * == level for a last-level table compacted into itself
                                 * for its tombstones (inputs[1] then empty) */
    table_meta **inputs[2];     /* [0] from level, [1] from out_level; refs held */
    size_t n_inputs[2];
    int drop_tombstones;        /* no data below out_level overlaps the range */
    uint64_t table_size;        /* target size of output tables */
    double score;
} compaction;

/* Target bytes of every level given the version (dynamic sizes); L0's is 0.
 * *base_level gets the level L0 compacts into. */
void compaction_level_targets(const lsm_view *v, const level_options *o, uint64_t *targets,
                              int *base_level);

/* The most urgent compaction, or NULL if none is needed or all candidate
 * inputs are already compacting. Marks inputs compacting. */
compaction *compaction_pick(lsm_view *v, const level_options *o);

/* A compaction of every level into the last (flatten/compact-all), one
 * level at a time: the next step, or NULL when all data is in one level
 * and no table of it holds entries kept for readers gone since (those are
 * compacted into themselves, one table a step).
 * Also NULL when the next step's inputs are already compacting: the
 * caller pauses automatic compactions and waits for running ones first. */
compaction *compaction_pick_manual(lsm_view *v, const level_options *o);

/* When writes have stopped (the caller decides): the next step towards
 * one level, or NULL when the levels above the deepest non-empty one hold
 * less than a tenth of its bytes (or nothing), or the step's inputs are
 * compacting. L0 goes into the base level first, then the shallowest
 * non-empty level of L1+ moves down one table at a time. */
compaction *compaction_pick_idle(lsm_view *v, const level_options *o);

/* A seek compaction: table `id` of `level` used up its seeks_left. L0:
 * all of L0 into the base level; Li: that table into the next non-empty
 * level. NULL if the table is gone, compacting, or in the deepest level. */
compaction *compaction_pick_seek(lsm_view *v, const level_options *o, int level, uint64_t id);

/* Clears the inputs' compacting marks and frees c. */
void compaction_release(compaction *c);

typedef struct compaction_ctx {
    env *env;
    const char *dir;
    table_cache *tc;
    sst_options sst;
    uint64_t oldest_read_version;   /* the oldest snapshot any reader holds */
    uint64_t now;                   /* unix seconds for TTL; 0 = none expire */
    int versions_to_keep;           /* at or below oldest_read_version (>= 1) */
    /* Called for every entry the compaction drops (value-log discard
     * statistics); may be NULL. */
    void (*on_drop)(void *arg, slice ikey, slice value);
    /* Allocates a file id for an output table (thread-safe). */
    uint64_t (*new_file_id)(void *arg);
    void *arg;
    /* Statistics out */
    uint64_t bytes_read, bytes_written, entries_dropped;
} compaction_ctx;

/* Runs c: fills edit with the output tables (added at out_level) and the
 * deletion of every input. On failure removes the outputs it wrote. */
int compaction_run(const compaction *c, compaction_ctx *ctx, lsm_edit *edit);

#endif
