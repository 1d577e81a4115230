/*
 * env_posix.c - the real env: POSIX file calls, nothing in between.
 *
 * Owns: file descriptors (always O_CLOEXEC, so a fork+exec leaks none),
 * the retry loops around partial reads and writes and EINTR, and the
 * advisory database lock. Files opened ENV_WRITE use O_APPEND, so appends
 * always land at the end even after a truncate; reads use pread and never
 * move a file offset, which is why one file can be read from many threads.
 *
 * Errors: every failure records "<operation> <path>: <strerror>" through
 * status_errno (ENOSPC -> STOAT_ENOSPC, ENOMEM -> STOAT_ENOMEM, else
 * STOAT_EIO); a missing path (ENOENT) is STOAT_ENOTFOUND instead, and a
 * failed fsync is always STOAT_EIO (posix_sync_err).
 *
 * Threading: env_posix() is a static const-initialised singleton: no
 * constructor, no lock, no allocation, so loading the library before a
 * fork is safe. Distinct files may be used from any thread; appends,
 * syncs and truncates of one file are serialised by the caller (env.h).
 */
#include "env/env.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/status.h"
#include "base/vec.h"

typedef struct posix_file {
    env_file base;  /* first: an env_file * is a posix_file * */
    int fd;
} posix_file;

/* env_lock is opaque in env.h; this env's locks are posix_flocks, kept
 * in a list so that a forked child can let go of them (below). */
typedef struct posix_flock {
    int fd;
    struct posix_flock *prev, *next;
} posix_flock;

/* The largest single read or write request: keeps ssize_t results exact. */
#define POSIX_IO_MAX ((size_t)1 << 30)

static int posix_err(int err, const char *what, const char *path)
{
    if (err == ENOENT)
        return status_err(STOAT_ENOTFOUND, "%s %s: %s", what, path, strerror(err));
    return status_errno(err, what, path);
}

static int posix_open(env *e, const char *path, int flags, env_file **out)
{
    posix_file *f = NULL;
    int oflags = O_CLOEXEC, fd;

    *out = NULL;
    if ((flags & ~(ENV_WRITE | ENV_TRUNC)) != 0 || flags == ENV_TRUNC)
        return status_err(STOAT_EINVAL, "open %s: bad flags %d", path, flags);
    if (flags & ENV_WRITE)
        oflags |= O_RDWR | O_CREAT | O_APPEND | ((flags & ENV_TRUNC) ? O_TRUNC : 0);
    else
        oflags |= O_RDONLY;
    do
        fd = open(path, oflags, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return posix_err(errno, "open", path);
    if ((f = calloc(1, sizeof(*f))) == NULL || (f->base.path = strdup(path)) == NULL) {
        free(f);
        close(fd);
        return status_err(STOAT_ENOMEM, "open %s: out of memory", path);
    }
    f->base.env = e;
    f->fd = fd;
    *out = &f->base;
    return 0;
}

static int posix_read_at(env_file *ef, uint64_t off, void *buf, size_t len, size_t *nread)
{
    posix_file *f = (posix_file *)ef;
    size_t done = 0;

    *nread = 0;
    if (off > (uint64_t)INT64_MAX - len)
        return status_err(STOAT_EINVAL, "read %s: offset %llu out of range",
                          ef->path, (unsigned long long)off);
    while (done < len) {
        size_t want = len - done < POSIX_IO_MAX ? len - done : POSIX_IO_MAX;
        ssize_t r = pread(f->fd, (char *)buf + done, want, (off_t)(off + done));

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return status_errno(errno, "read", ef->path);
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *nread = done;
    return 0;
}

static int posix_append(env_file *ef, const void *data, size_t len)
{
    posix_file *f = (posix_file *)ef;
    size_t done = 0;

    while (done < len) {
        size_t want = len - done < POSIX_IO_MAX ? len - done : POSIX_IO_MAX;
        ssize_t r = write(f->fd, (const char *)data + done, want);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return status_errno(errno, "append", ef->path);
        done += (size_t)r;
    }
    return 0;
}

/*
 * A failed fsync is STOAT_EIO whatever errno says: even ENOSPC (delayed
 * allocation, thin provisioning) means written pages may be gone, which
 * no retry can mend, while STOAT_ENOSPC promises that the failed call
 * left nothing behind (write paths cut partial writes back off).
 */
static int posix_sync_err(int err, const char *what, const char *path)
{
    return status_err(STOAT_EIO, "%s %s: %s", what, path, strerror(err));
}

/* Not retried on failure: after a failed fsync the kernel may have dropped
 * the dirty pages, so the caller must treat the file as lost. */
static int posix_sync(env_file *ef)
{
    posix_file *f = (posix_file *)ef;

    if (fdatasync(f->fd) != 0)
        return posix_sync_err(errno, "sync", ef->path);
    return 0;
}

static int posix_truncate(env_file *ef, uint64_t len)
{
    posix_file *f = (posix_file *)ef;
    int r;

    if (len > (uint64_t)INT64_MAX)
        return status_err(STOAT_EINVAL, "truncate %s: length %llu out of range",
                          ef->path, (unsigned long long)len);
    do
        r = ftruncate(f->fd, (off_t)len);
    while (r != 0 && errno == EINTR);
    if (r != 0)
        return status_errno(errno, "truncate", ef->path);
    return 0;
}

static int posix_size(env_file *ef, uint64_t *out)
{
    posix_file *f = (posix_file *)ef;
    struct stat st;

    *out = 0;
    if (fstat(f->fd, &st) != 0)
        return status_errno(errno, "stat", ef->path);
    *out = (uint64_t)st.st_size;
    return 0;
}

/* Frees f whatever close(2) says; EINTR is not retried because on Linux
 * the descriptor is already gone then. */
static int posix_close(env_file *ef)
{
    posix_file *f = (posix_file *)ef;
    int rc = 0;

    if (close(f->fd) != 0 && errno != EINTR)
        rc = status_errno(errno, "close", ef->path);
    free(ef->path);
    free(f);
    return rc;
}

static int posix_remove(env *e, const char *path)
{
    (void)e;
    if (unlink(path) != 0)
        return posix_err(errno, "remove", path);
    return 0;
}

static int posix_rename(env *e, const char *from, const char *to)
{
    int err, rc;

    (void)e;
    if (rename(from, to) == 0)
        return 0;
    err = errno;
    rc = posix_err(err, "rename", from);
    /* both names belong in the message */
    return status_err(rc, "rename %s to %s: %s", from, to, strerror(err));
}

static int posix_sync_dir(env *e, const char *dir)
{
    int fd, rc = 0;

    (void)e;
    do
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return posix_err(errno, "open directory", dir);
    if (fsync(fd) != 0)
        rc = posix_sync_err(errno, "sync directory", dir);
    close(fd);
    return rc;
}

static int posix_mkdir(env *e, const char *path)
{
    struct stat st;

    (void)e;
    if (mkdir(path, 0755) == 0)
        return 0;
    if (errno != EEXIST)
        return posix_err(errno, "mkdir", path);
    if (stat(path, &st) != 0)
        return posix_err(errno, "mkdir", path);
    if (!S_ISDIR(st.st_mode))
        return status_errno(ENOTDIR, "mkdir", path);
    return 0;
}

/* 1 if path exists, 0 if it does not (ENOENT or ENOTDIR), a negative
 * code when stat itself fails for another reason (EACCES, EIO, ...). */
static int posix_exists(env *e, const char *path)
{
    struct stat st;

    (void)e;
    if (stat(path, &st) == 0)
        return 1;
    if (errno == ENOENT || errno == ENOTDIR)
        return 0;
    return status_errno(errno, "stat", path);
}

static int posix_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends a copy of name to the growing array. */
static int posix_list_add(char ***names, size_t *n, size_t *cap, const char *name)
{
    if (VEC_ROOM(*names, *n, *cap, 16) != 0)
        return STOAT_ENOMEM;
    if (((*names)[*n] = strdup(name)) == NULL)
        return STOAT_ENOMEM;
    (*n)++;
    return 0;
}

/* Names come back sorted (strcmp order), so callers see a stable order. */
static int posix_list(env *e, const char *dir, char ***names, size_t *n)
{
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    DIR *d;
    int rc = 0;

    (void)e;
    *names = NULL;
    *n = 0;
    if ((d = opendir(dir)) == NULL)
        return posix_err(errno, "list", dir);
    for (;;) {
        errno = 0;
        if ((de = readdir(d)) == NULL)
            break;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (posix_list_add(&v, &cnt, &cap, de->d_name) != 0) {
            rc = status_err(STOAT_ENOMEM, "list %s: out of memory", dir);
            goto fail;
        }
    }
    if (errno != 0) {
        rc = status_errno(errno, "list", dir);
        goto fail;
    }
    closedir(d);
    if (cnt > 1)
        qsort(v, cnt, sizeof(*v), posix_cmp_names);
    *names = v;
    *n = cnt;
    return 0;
fail:
    closedir(d);
    env_list_free(v, cnt);
    return rc;
}

/* Opens (creating if needed) the lock file. A read-only directory still
 * allows a shared lock on an existing file, through a read-only fd. */
static int posix_lock_open(const char *path, int exclusive)
{
    int fd;

    do
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0 && !exclusive && (errno == EACCES || errno == EROFS)) {
        do
            fd = open(path, O_RDONLY | O_CLOEXEC);
        while (fd < 0 && errno == EINTR);
    }
    return fd;
}

/*
 * A forked child shares its parent's open file descriptions, flock locks
 * included: if it kept the descriptors, the lock would outlive the
 * parent's close. So the child closes its copies at once (an atfork
 * handler registered by the first lock, never at load time); the parent's
 * lock is untouched, and the child's inherited handles refuse all use
 * (STOAT_EFORKED) and never unlock.
 */
static pthread_mutex_t flock_list_mu = PTHREAD_MUTEX_INITIALIZER;
static posix_flock flock_list = {-1, &flock_list, &flock_list};
static pthread_once_t flock_atfork_once = PTHREAD_ONCE_INIT;

static void flock_prepare(void)
{
    pthread_mutex_lock(&flock_list_mu);
}

static void flock_parent(void)
{
    pthread_mutex_unlock(&flock_list_mu);
}

static void flock_child(void)
{
    for (posix_flock *l = flock_list.next; l != &flock_list; l = l->next) {
        close(l->fd);
        l->fd = -1;
    }
    pthread_mutex_unlock(&flock_list_mu);
}

static void flock_atfork_register(void)
{
    pthread_atfork(flock_prepare, flock_parent, flock_child);
}

/*
 * flock locks belong to the open file description, so a second
 * posix_lock of the same path in this process conflicts with the first,
 * just as another process would: two handles on one database must not
 * both think they own it.
 */
static int posix_lock(env *e, const char *path, int exclusive, struct env_lock **out)
{
    posix_flock *l;
    int fd, r;

    (void)e;
    *out = NULL;
    pthread_once(&flock_atfork_once, flock_atfork_register);
    if ((fd = posix_lock_open(path, exclusive)) < 0)
        return posix_err(errno, "open lock file", path);
    do
        r = flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB);
    while (r != 0 && errno == EINTR);
    if (r != 0) {
        int err = errno;

        close(fd);
        if (err == EWOULDBLOCK)
            return status_err(STOAT_EBUSY,
                              "database is locked by another process or handle: %s", path);
        return status_errno(err, "lock", path);
    }
    if ((l = malloc(sizeof(*l))) == NULL) {
        close(fd);
        return status_err(STOAT_ENOMEM, "lock %s: out of memory", path);
    }
    l->fd = fd;
    pthread_mutex_lock(&flock_list_mu);
    l->prev = &flock_list;
    l->next = flock_list.next;
    flock_list.next->prev = l;
    flock_list.next = l;
    pthread_mutex_unlock(&flock_list_mu);
    *out = (struct env_lock *)l;
    return 0;
}

/* Closing the descriptor releases the flock; the lock file stays. */
static void posix_unlock(struct env_lock *el)
{
    posix_flock *l = (posix_flock *)el;

    pthread_mutex_lock(&flock_list_mu);
    l->prev->next = l->next;
    l->next->prev = l->prev;
    pthread_mutex_unlock(&flock_list_mu);
    if (l->fd >= 0)
        close(l->fd);
    free(l);
}

static const struct env_ops posix_ops = {
    .open = posix_open,
    .read_at = posix_read_at,
    .append = posix_append,
    .sync = posix_sync,
    .truncate = posix_truncate,
    .size = posix_size,
    .close = posix_close,
    .remove = posix_remove,
    .rename = posix_rename,
    .sync_dir = posix_sync_dir,
    .mkdir = posix_mkdir,
    .exists = posix_exists,
    .list = posix_list,
    .lock = posix_lock,
    .unlock = posix_unlock,
};

static env posix_env = { .ops = &posix_ops };

env *env_posix(void)
{
    return &posix_env;
}
