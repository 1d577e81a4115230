/*
 * filename.h - the names of a database directory's files, built and
 * parsed in one place (in the manner of LevelDB's filename.h). Numbered
 * files are NNNNNN.ext: the id in decimal, zero-padded to at least six
 * digits (core/FORMAT.md): tables (.sst), WALs (.wal), value-log files
 * (.vlog). The other files have fixed names. Pure functions, thread-safe.
 */
#ifndef STOAT_FILENAME_H
#define STOAT_FILENAME_H

#include <stddef.h>
#include <stdint.h>

#define FILENAME_LOCK "LOCK"
#define FILENAME_MANIFEST "MANIFEST"
#define FILENAME_MANIFEST_TMP "MANIFEST.tmp"
#define FILENAME_DISCARD "DISCARD"
#define FILENAME_KEYREGISTRY "KEYREGISTRY"
#define FILENAME_KEYREGISTRY_LOCK "KEYREGISTRY.lock"

#define FILENAME_EXT_TABLE "sst"
#define FILENAME_EXT_WAL "wal"
#define FILENAME_EXT_VLOG "vlog"

/* Room for any numbered name and its NUL. */
#define FILENAME_MAX_LEN 32

/* "NNNNNN.ext" into name (FILENAME_MAX_LEN bytes). */
void filename_format(char *name, uint64_t id, const char *ext);
/* "dir/NNNNNN.ext", malloc'd; NULL on ENOMEM. */
char *filename_path(const char *dir, uint64_t id, const char *ext);
/*
 * 1 with *id when name is "digits.ext", else 0. With canonical set only
 * the spelling filename_format gives counts ("1.vlog" is not 000001.vlog);
 * without, any run of digits (as open scans tables and WALs).
 */
int filename_parse(const char *name, const char *ext, int canonical, uint64_t *id);

#endif
