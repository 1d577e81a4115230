/*
 * crypt_env.h - the env of an encrypted database (format: core/FORMAT.md,
 * "Encryption at rest").
 *
 * crypt_env_new wraps another env (the POSIX one, or a test's fault env).
 * Files whose names say they hold keys or values (*.wal, *.sst, *.vlog,
 * MANIFEST, DISCARD, and their .tmp forms) get a 48-byte header in the
 * clear at offset 0, written when the file is created: the kind of file,
 * the id of the data key (crypt/key_registry.h) that writes it and a
 * random salt. The header is invisible to the formats above: offsets and
 * sizes through this env are those of the bytes after it, so a format
 * lays out an encrypted file as it does a plain one.
 *
 * The env does not encrypt bytes itself: each format seals its own units
 * (a WAL or MANIFEST record's payload, a table block, a value-log record,
 * the DISCARD body) with crypt_seal and opens them with crypt_open, so that
 * reads stay random-access and appends never rewrite what is on disk. A
 * file is sealed when env_file.seal is set (crypt_sealed). A unit is bound
 * to its file's header and to its offset (the associated data), so a unit
 * modified, moved to another offset, swapped with another or copied from
 * another file fails its tag: STOAT_ECORRUPT, never wrong data.
 *
 * Every other file (LOCK, KEYREGISTRY, KEYREGISTRY.lock) passes through
 * unchanged.
 *
 * A file opened for reading before its creator wrote the header (another
 * process's new WAL) reads as empty until the header is there; it is
 * loaded at the first read or seal that needs it.
 *
 * Thread-safety: as any env. crypt_seal and crypt_open may run on one file
 * from any number of threads.
 */
#ifndef STOAT_CRYPT_ENV_H
#define STOAT_CRYPT_ENV_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "crypt/aead.h"
#include "crypt/key_registry.h"
#include "env/env.h"

#define CRYPT_HEADER_LEN 48
/* Bytes a sealed unit adds to its plaintext: nonce and tag. */
#define CRYPT_OVERHEAD AEAD_OVERHEAD

/* File kinds, as stored in the header. */
enum {
    CRYPT_KIND_WAL = 1,
    CRYPT_KIND_TABLE = 2,
    CRYPT_KIND_VLOG = 3,
    CRYPT_KIND_MANIFEST = 4,
    CRYPT_KIND_DISCARD = 5
};

/*
 * An env over base whose files of the kinds above are encrypted with the
 * data keys of kr (borrowed: both must outlive the env). New files use
 * kr's current data key (which rotates by age).
 */
int crypt_env_new(env *base, key_registry *kr, env **out);
void crypt_env_free(env *e);

/* The env e wraps when it is a crypt env, else e: the one to map files
 * with (env_map.h), whose offsets are physical (the header included). */
env *crypt_env_base(env *e);

/* The kind of file a name (the last component of a path) is, 0 for one
 * that is not encrypted. */
int crypt_kind_of(const char *path);

/* 1 when f's units are sealed. */
static inline int crypt_sealed(const env_file *f)
{
    return f != NULL && f->seal != NULL;
}

static inline size_t crypt_sealed_len(size_t plain_len)
{
    return plain_len + CRYPT_OVERHEAD;
}

/*
 * Seals plain (len bytes) as the unit that will sit at offset off of f
 * into out (crypt_sealed_len(len) bytes, not overlapping plain).
 */
int crypt_seal(env_file *f, uint64_t off, const void *plain, size_t len, void *out);

/*
 * Opens the unit of sealed_len bytes that sits at offset off of f into
 * out (sealed_len - CRYPT_OVERHEAD bytes, not overlapping sealed). A unit that fails its tag,
 * or one shorter than CRYPT_OVERHEAD, is STOAT_ECORRUPT naming `what`
 * (say "block", "record") and the file and offset.
 */
int crypt_open(env_file *f, uint64_t off, const void *sealed, size_t sealed_len, void *out,
               const char *what);

/* crypt_open into plain (reset first; plain->len is the plaintext's
 * length, and room for one more byte is kept after it). */
int crypt_open_buf(env_file *f, uint64_t off, const void *sealed, size_t sealed_len, buf *plain,
                   const char *what);

/*
 * Whole small files (DISCARD): env_write_atomic and env_read_all, with the
 * contents one unit at offset 0 when the file is encrypted.
 */
int crypt_write_atomic(env *e, const char *dir, const char *path, const void *data, size_t len);
int crypt_read_all(env *e, const char *path, char **data, size_t *len);

#endif
