/*
 * env_fault.h - a fault-injecting env for tests (core/test/support, linked
 * into test binaries only, never into the library).
 */
#ifndef STOAT_ENV_FAULT_H
#define STOAT_ENV_FAULT_H

#include "env/env.h"

/*
 * Fault-injecting env for tests. It wraps `base` and remembers, per path,
 * how many bytes were synced; directory entries count as durable only
 * after env_sync_dir of their directory.
 */
env *env_fault_new(env *base);
void env_fault_free(env *e);

/* The n-th append (1 = the next one) fails with err (EIO, ENOSPC, ...)
 * and so does every later append; n <= 0 disables. */
void env_fault_fail_append(env *e, long n, int err);
/* The n-th sync (file or directory) fails with EIO, and every later one. */
void env_fault_fail_sync(env *e, long n);
/* Counts of appends and syncs seen so far. */
long env_fault_appends(env *e);
long env_fault_syncs(env *e);
/* Syncs the calling thread has made through any fault env (whatever other
 * threads do meanwhile). */
long env_fault_thread_syncs(void);

/*
 * Power loss: from now on every operation fails with STOAT_EIO (the
 * process is "dead"); call env_fault_drop_unsynced after closing handles.
 */
void env_fault_crash(env *e);

/*
 * Reverts the disk to what was durable: every file written through this env
 * is truncated to its last synced length; files created since their
 * directory was last synced are removed, and renames not followed by a
 * sync of the directory are undone. Then clears the crash state and the
 * failure settings, so the env can be used to reopen.
 */
int env_fault_drop_unsynced(env *e);

/*
 * Power loss with reordering (env_fault_state.c, where the rules are):
 * writes into the existing empty directory `out` the files of `dir` as a
 * power loss at this instant could leave them, chosen by seed and flags.
 * dir and the env's model are not changed. desc (desc_len bytes) gets a
 * short account of the choices: per file with unsynced data
 * "name:synced+kept/size", names lost or renames undone.
 */
enum {
    ENV_FAULT_PREFIX = 1,   /* a prefix of each file's unsynced appends survives */
    ENV_FAULT_TORN = 2,     /* ... maybe ending inside an append, at a sector */
    ENV_FAULT_ZEROS = 4,    /* the size may run past the data, in zeros */
    ENV_FAULT_NAMES = 8,    /* a prefix of the unsynced creations and renames survives */
    ENV_FAULT_HOLES = 16    /* unsynced 4 KiB pages survive in any order instead */
};
int env_fault_crash_copy(env *e, const char *dir, const char *out, uint64_t seed, int flags,
                         char *desc, size_t desc_len);

#endif
