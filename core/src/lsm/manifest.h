/*
 * manifest.h - the durable record of which tables make up the database.
 *
 * The MANIFEST file is a header and a sequence of checksummed records, each
 * one lsm_edit (format in core/FORMAT.md, "MANIFEST"). Appending an
 * edit fsyncs it. When the file has grown to several times the size of a
 * snapshot of the current version, it is rewritten: a snapshot to
 * MANIFEST.tmp, fsync, rename over MANIFEST, fsync of the directory.
 * Opening replays every record; a torn tail is truncated, any other damage
 * is STOAT_ECORRUPT.
 *
 * Threads: the database serialises manifest_append calls.
 */
#ifndef STOAT_MANIFEST_H
#define STOAT_MANIFEST_H

#include "env/env.h"
#include "lsm/view.h"

#define MANIFEST_MAGIC 0x464e4d54414f5453ull  /* "STOATMNF" little-endian */
/* 2 added tag 6 (a table with entries kept only for a reader). Format 1
 * files are read, and rewritten as format 2 by a writable open. */
#define MANIFEST_FORMAT_VERSION 2
#define MANIFEST_FORMAT_VERSION_MIN 1

typedef struct manifest manifest;

typedef struct manifest_state {
    uint64_t next_file_id;
    uint64_t log_number;
    uint64_t last_version;
} manifest_state;

/* Creates a new MANIFEST in dir holding an empty version and *st. */
int manifest_create(env *e, const char *dir, int num_levels, const manifest_state *st,
                    manifest **out);

/*
 * Replays dir/MANIFEST into *v (one reference, owned by the caller) and
 * *st. Tables get on_free unset. read_only: nothing is written (a torn
 * tail is ignored, not truncated), and *out is a manifest that refuses
 * appends. STOAT_ENOTFOUND if there is no MANIFEST.
 */
int manifest_open(env *e, const char *dir, int num_levels, int read_only, lsm_view **v,
                  manifest_state *st, manifest **out);

/*
 * Durably records e, which the caller then applies to `current` with
 * lsm_view_apply. `current` is the version before e (used for a rewrite:
 * the snapshot written is current + e).
 */
int manifest_append(manifest *m, const lsm_view *current, const lsm_edit *e);

uint64_t manifest_size(const manifest *m);
void manifest_close(manifest *m);

#endif
