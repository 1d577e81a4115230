/*
 * dbdir.h - the database directory as files on disk: creating it,
 * measuring what it occupies, and deleting it safely between benchmarks.
 *
 * Called by the main thread only, while no engine has the directory open
 * (dbdir_usage excepted, which tolerates files changing under it).
 */
#ifndef BENCH_DBDIR_H
#define BENCH_DBDIR_H

#include <stdint.h>

/* mkdir -p; 0 or -1 with the reason on stderr. */
int dbdir_create(const char *dir);

/*
 * Bytes allocated on disk by the files under dir (st_blocks, so a sparse
 * file counts what it really occupies, as du does). 0 when dir is absent.
 */
uint64_t dbdir_usage(const char *dir);

/*
 * Deletes dir and everything under it, but only when it is empty, absent,
 * or holds the file `marker` (so a mistyped --db never wipes a directory
 * that is not a benchmark database). 0, or -1 with the reason on stderr.
 */
int dbdir_destroy(const char *dir, const char *marker);

#endif /* BENCH_DBDIR_H */
