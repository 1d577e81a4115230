/*
 * env_map.h - read-only memory mappings of whole files, and read-ahead
 * advice for them (the value log's sealed files, issue 15).
 *
 * A mapping is offered by the real POSIX env only: other envs (the fault
 * env of the tests) answer STOAT_ENOTSUP, and their callers read through
 * the env's positional reads instead, so fault injection still sees every
 * read that can fail. A mapping stays valid after the file is unlinked,
 * until env_unmap. The caller must make sure the mapped bytes are never
 * truncated away while mapped (a read past a file's end is SIGBUS): map
 * only files that are no longer written.
 *
 * Thread-safety: any thread; a mapping may be read by many threads at once.
 */
#ifndef STOAT_ENV_MAP_H
#define STOAT_ENV_MAP_H

#include <stdint.h>

#include "env/env.h"

/*
 * Maps the first len bytes (len > 0) of the file at path read-only into
 * *out. STOAT_ENOTSUP when e is not the POSIX env; STOAT_ENOTFOUND when
 * the file is gone; STOAT_EIO (with a message) when mapping fails. *out is
 * NULL on error.
 */
int env_map_file(env *e, const char *path, uint64_t len, const char **out);

/* Releases a mapping of len bytes made by env_map_file (NULL is fine). */
void env_unmap(const char *p, uint64_t len);

/* Asks the kernel to read [off, off + len) of a mapping of map_len bytes
 * ahead (MADV_WILLNEED on the pages it covers). Advice only: never fails. */
void env_map_willneed(const char *p, uint64_t map_len, uint64_t off, uint64_t len);

#endif
