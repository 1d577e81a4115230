/*
 * discard.h - discard statistics: per value-log file, the bytes of records
 * that became garbage (format: core/FORMAT.md, "DISCARD").
 *
 * Compaction adds to a file's count when it drops an entry whose value
 * lives in that file (overwritten, deleted, expired); value-log GC reads
 * the counts to pick the file with the most garbage for its size, and
 * forgets a file's count when the file is removed. discard_save persists
 * the counts in dir/DISCARD by an atomic rewrite, so they survive restart.
 *
 * The counts are advisory: they decide which file GC looks at first, never
 * what it keeps (GC checks every record's liveness against the LSM). Losing
 * them loses no data, only the garbage counted so far. So a database that
 * meets a damaged DISCARD (STOAT_ECORRUPT from discard_open) may remove
 * the file and open again to start from zero.
 *
 * Threads: every function may be called from any thread (one mutex; saves
 * are serialised so that the file never goes back to older counts).
 * discard_close must be the last call.
 */
#ifndef STOAT_DISCARD_H
#define STOAT_DISCARD_H

#include <stddef.h>
#include <stdint.h>

#include "env/env.h"

#define DISCARD_MAGIC 0x43534454414f5453ull  /* "STOATDSC" little-endian */
#define DISCARD_FORMAT_VERSION 1

typedef struct discard discard;

typedef struct discard_entry {
    uint32_t fid;
    uint64_t bytes;
} discard_entry;

/*
 * Loads dir/DISCARD (no file: every count is 0). STOAT_ECORRUPT naming the
 * file for a damaged one, STOAT_ENOTSUP for a newer format version. With
 * read_only, discard_save never writes. *out is NULL on error.
 */
int discard_open(env *e, const char *dir, int read_only, discard **out);

/* Frees d without saving. NULL is fine. */
void discard_close(discard *d);

/* Adds bytes to file fid's garbage count (saturating). 0 or STOAT_ENOMEM
 * (the count is then not kept; callers may ignore it: counts are
 * advisory). */
int discard_add(discard *d, uint32_t fid, uint64_t bytes);

/* File fid's garbage count, 0 when none. */
uint64_t discard_get(discard *d, uint32_t fid);

/* Drops file fid's count (its file was removed). */
void discard_forget(discard *d, uint32_t fid);

/* The sum of every count (statistics). */
uint64_t discard_total(discard *d);

/* Every nonzero count, by ascending fid, in a malloc'd array the caller
 * frees (NULL when *n is 0). */
int discard_list(discard *d, discard_entry **out, size_t *n);

/*
 * Writes the counts to dir/DISCARD atomically (env_write_atomic) when they
 * changed since the last save; does nothing otherwise. STOAT_EREADONLY for
 * a read-only handle with changes. On failure the counts stay changed, so
 * the next save tries again.
 */
int discard_save(discard *d);

#endif
