/*
 * env.h - the one door to the operating system's files.
 *
 * Every file operation of the engine goes through an env, so that tests can
 * swap in the fault env (core/test/support/env_fault.h: fault injection
 * and simulated power loss). An env is a table of operations; env_posix()
 * is the real one, a static singleton that needs no initialisation
 * (loading the library takes no lock, starts no thread).
 *
 * Files are opened for positional reads, appends, or both. Appends go to
 * the end of the file and either write everything or fail. Short reads
 * happen only at end of file. Every failure returns a STOAT_E* code and
 * records a message naming the path (status.h).
 *
 * Thread-safety: an env and distinct files may be used from any thread.
 * One file may be read from several threads at once (pread); appends,
 * syncs and truncates to one file must be serialised by the caller.
 */
#ifndef STOAT_ENV_H
#define STOAT_ENV_H

#include <stddef.h>
#include <stdint.h>

typedef struct env env;
typedef struct env_file env_file;
/* Locks are spelt `struct env_lock`: the name env_lock is the function. */
struct env_lock;

/* env_open flags */
enum {
    ENV_READ = 0,      /* existing file, reads only */
    ENV_WRITE = 1,     /* read + append; created if missing, kept if present */
    ENV_TRUNC = 2      /* with ENV_WRITE: truncated to 0 bytes on open */
};

struct env_ops {
    int (*open)(env *e, const char *path, int flags, env_file **out);
    int (*read_at)(env_file *f, uint64_t off, void *buf, size_t len, size_t *nread);
    int (*append)(env_file *f, const void *data, size_t len);
    int (*sync)(env_file *f);
    int (*truncate)(env_file *f, uint64_t len);
    int (*size)(env_file *f, uint64_t *out);
    int (*close)(env_file *f);
    int (*remove)(env *e, const char *path);
    int (*rename)(env *e, const char *from, const char *to);
    int (*sync_dir)(env *e, const char *dir);
    int (*mkdir)(env *e, const char *path);
    int (*exists)(env *e, const char *path);
    int (*list)(env *e, const char *dir, char ***names, size_t *n);
    int (*lock)(env *e, const char *path, int exclusive, struct env_lock **out);
    void (*unlock)(struct env_lock *l);
};

struct env {
    const struct env_ops *ops;
};

/* Sealing state of an encrypted file (crypt/crypt_env.h); opaque here. */
struct file_seal;

/* Every env_file starts with this header; envs extend it. */
struct env_file {
    env *env;
    char *path;     /* owned copy of the path it was opened with */
    struct file_seal *seal; /* NULL: the file is in the clear; else its records or
                             * blocks are sealed by the format code (crypt_env.h) */
};

/* The real POSIX env. Static storage; never freed. */
env *env_posix(void);

/* Opens path; *out is NULL on error (STOAT_ENOTFOUND if ENV_READ and missing). */
static inline int env_open(env *e, const char *path, int flags, env_file **out)
{
    return e->ops->open(e, path, flags, out);
}

/* Reads up to len bytes at off; *nread < len only at end of file. */
static inline int env_read_at(env_file *f, uint64_t off, void *dst, size_t len, size_t *nread)
{
    return f->env->ops->read_at(f, off, dst, len, nread);
}

/* Reads exactly len bytes at off; a short read is STOAT_ECORRUPT ("truncated"). */
int env_read_exact(env_file *f, uint64_t off, void *buf, size_t len);

static inline int env_append(env_file *f, const void *data, size_t len)
{
    return f->env->ops->append(f, data, len);
}

/* fdatasync: everything appended so far survives power loss. */
static inline int env_sync(env_file *f)
{
    return f->env->ops->sync(f);
}

static inline int env_truncate(env_file *f, uint64_t len)
{
    return f->env->ops->truncate(f, len);
}

static inline int env_file_size(env_file *f, uint64_t *out)
{
    return f->env->ops->size(f, out);
}

/* Closes and frees f (NULL is fine). Does not sync. */
static inline int env_close(env_file *f)
{
    return f ? f->env->ops->close(f) : 0;
}

static inline int env_remove(env *e, const char *path)
{
    return e->ops->remove(e, path);
}

/* Atomically replaces `to` with `from`; durable after env_sync_dir. */
static inline int env_rename(env *e, const char *from, const char *to)
{
    return e->ops->rename(e, from, to);
}

/* Makes creations, removals and renames in dir durable. */
static inline int env_sync_dir(env *e, const char *dir)
{
    return e->ops->sync_dir(e, dir);
}

/* Creates dir; 0 if it already exists as a directory. */
static inline int env_mkdir(env *e, const char *path)
{
    return e->ops->mkdir(e, path);
}

/* 1 if path exists, 0 if not. */
static inline int env_exists(env *e, const char *path)
{
    return e->ops->exists(e, path);
}

/* Names of the entries of dir, without "." and "..": a malloc'd array of
 * malloc'd strings, freed with env_list_free. */
static inline int env_list(env *e, const char *dir, char ***names, size_t *n)
{
    return e->ops->list(e, dir, names, n);
}

void env_list_free(char **names, size_t n);

/*
 * Takes an advisory lock on path (created if missing), shared or exclusive,
 * without waiting: STOAT_EBUSY when another open file description, in this
 * or another process, holds a conflicting lock.
 */
static inline int env_lock(env *e, const char *path, int exclusive, struct env_lock **out)
{
    return e->ops->lock(e, path, exclusive, out);
}

static inline void env_unlock(env *e, struct env_lock *l)
{
    if (l)
        e->ops->unlock(l);
}

/* Reads a whole file into a malloc'd buffer (with a NUL after its len
 * bytes). */
int env_read_all(env *e, const char *path, char **data, size_t *len);

/* As env_read_all, from the open file f. */
int env_read_file(env_file *f, char **data, size_t *len);

/* Writes data to path atomically: path.tmp, fsync, rename, fsync of dir. */
int env_write_atomic(env *e, const char *dir, const char *path, const void *data, size_t len);

/* As env_write_atomic, with write(f, arg) making path.tmp's contents. */
int env_write_atomic_with(env *e, const char *dir, const char *path,
                          int (*write)(env_file *f, void *arg), void *arg);

/* "dir/name" in a malloc'd string, NULL on ENOMEM. */
char *env_join(const char *dir, const char *name);

#endif
