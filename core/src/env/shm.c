/*
 * shm.c - the shared-memory region of a database (shm.h): naming,
 * creation with reserved space, the dead-man switch, the header checks,
 * and the fork hook of every lock descriptor of the multi-process mode.
 *
 * Owns: the region's mapping and the handle's descriptor of SHMLOCK
 * (holding byte 0 shared while attached). The region's descriptor is
 * closed once mapped. Every descriptor is O_CLOEXEC.
 *
 * Invariant: a region file with ready == 1 was entirely initialised by
 * an opener that held byte 0 exclusive; whoever holds byte 0 shared may
 * use it. A region nobody holds byte 0 of is stale and is rebuilt under a
 * new inode (unlink, then create O_EXCL), so a leftover mapping of a dead
 * process's region can never alias the new one.
 *
 * Threading: the fork registry is under fd_mu; a handle is immutable
 * after open.
 */
#include "env/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "base/status.h"
#include "env/proc_lock.h"
#include "env/proc_slots.h"

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

#if defined(__GLIBC__)
#define SHM_LIBC_TAG 'G'
#else
#define SHM_LIBC_TAG 'O'
#endif
/* Processes that disagree on the mutex's ABI must not share one. */
#define SHM_LOCK_ABI (((uint32_t)SHM_LIBC_TAG << 24) | (uint32_t)sizeof(pthread_mutex_t))

/* The header, layout version 2 (core/FORMAT.md): 256 bytes at offset 0. */
typedef struct shm_header {
    uint64_t magic;            /* SHM_MAGIC */
    uint32_t layout_version;   /* SHM_LAYOUT_VERSION */
    uint32_t lock_abi;         /* SHM_LOCK_ABI */
    uint64_t size;             /* the region's size in bytes */
    uint32_t creator_uid;
    uint32_t creator_pid;
    uint64_t dir_dev;          /* the database directory's st_dev, st_ino */
    uint64_t dir_ino;
    uint64_t created_ns;       /* CLOCK_REALTIME at creation */
    _Atomic uint32_t ready;    /* 1 once the creator finished (last store) */
    uint32_t reserved0;
} shm_header;

_Static_assert(sizeof(shm_header) <= SHM_OFF_COMMIT_LOCK, "layout v2: header is 256 bytes");
_Static_assert(offsetof(shm_header, size) == 16 && offsetof(shm_header, dir_dev) == 32 &&
               offsetof(shm_header, ready) == 56, "layout v2: header offsets (FORMAT.md)");
_Static_assert(offsetof(proc_lock, intent) == sizeof(pthread_mutex_t) &&
               offsetof(proc_slot, pid) == 8 && offsetof(proc_slot, claims) == 12 &&
               offsetof(proc_slot, wal) == 16,
               "layout v2: lock and slot offsets (FORMAT.md)");
_Static_assert(sizeof(proc_slot) == SHM_SLOT_SIZE, "layout v2: slots are 64 bytes");
_Static_assert(SHM_OFF_FREE <= SHM_MIN_SIZE, "layout v2 fits the minimum size");

struct shm_region {
    void *base;
    uint64_t size;
    int lock_fd;               /* SHMLOCK, byte 0 held shared; -1 in a forked child */
    int created;
    unsigned long fork_gen;
    char *lock_path;           /* SHMLOCK in the database directory */
    char *path;                /* the region file */
    void *cache_base;          /* the companion file, or NULL */
    uint64_t cache_size;
    int cache_fd;              /* kept open to reserve its pages; -1 */
};

/* ---- fork: every lock descriptor is closed in a child ---- */

static pthread_mutex_t fd_mu = PTHREAD_MUTEX_INITIALIZER;
static int **fd_list;
static size_t fd_n, fd_cap;
static _Atomic unsigned long fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void shm_fork_prepare(void)
{
    pthread_mutex_lock(&fd_mu);
}

static void shm_fork_parent(void)
{
    pthread_mutex_unlock(&fd_mu);
}

static void shm_fork_child(void)
{
    for (size_t i = 0; i < fd_n; i++) {
        close(*fd_list[i]);
        *fd_list[i] = -1;
    }
    fd_n = 0;
    atomic_fetch_add(&fork_gen, 1);
    pthread_mutex_unlock(&fd_mu);
}

static void shm_fork_register(void)
{
    pthread_atfork(shm_fork_prepare, shm_fork_parent, shm_fork_child);
}

unsigned long shm_fork_generation(void)
{
    pthread_once(&fork_once, shm_fork_register);
    return atomic_load(&fork_gen);
}

int shm_fd_open(const char *path, int flags, unsigned mode, int *fdp)
{
    int err = 0;

    pthread_once(&fork_once, shm_fork_register);
    pthread_mutex_lock(&fd_mu);
    if (fd_n == fd_cap) {
        size_t cap = fd_cap ? 2 * fd_cap : 16;
        int **l = realloc(fd_list, cap * sizeof(*l));

        if (l == NULL) {
            pthread_mutex_unlock(&fd_mu);
            *fdp = -1;
            return ENOMEM;
        }
        fd_list = l;
        fd_cap = cap;
    }
    if ((*fdp = open(path, flags | O_CLOEXEC, (mode_t)mode)) < 0)
        err = errno;
    else
        fd_list[fd_n++] = fdp;
    pthread_mutex_unlock(&fd_mu);
    return err;
}

void shm_fd_close(int *fdp)
{
    pthread_mutex_lock(&fd_mu);
    for (size_t i = 0; i < fd_n; i++) {
        if (fd_list[i] == fdp) {
            fd_list[i] = fd_list[--fd_n];
            break;
        }
    }
    if (fd_n == 0) {
        free(fd_list);
        fd_list = NULL;
        fd_cap = 0;
    }
    if (*fdp >= 0)
        close(*fdp);
    *fdp = -1;
    pthread_mutex_unlock(&fd_mu);
}

/* ---- OFD byte locks ---- */

/* F_OFD_SETLK of one byte: 0, EAGAIN when another description holds a
 * conflicting lock, or another errno. */
static int ofd_byte(int fd, short type, off_t byte)
{
    struct flock fl;

    memset(&fl, 0, sizeof(fl));
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = byte;
    fl.l_len = 1;
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    return errno == EACCES ? EAGAIN : errno;
}

/* ---- errors ---- */

static int shm_err_owner(int err, const char *what, const char *path)
{
    struct stat st;

    if ((err == EACCES || err == EPERM) && stat(path, &st) == 0 && st.st_uid != geteuid())
        return status_err(STOAT_EIO,
                          "%s %s: owned by uid %u, this process runs as uid %u: "
                          "run as the database owner", what, path, (unsigned)st.st_uid,
                          (unsigned)geteuid());
    return status_errno(err, what, path);
}

/* ---- create or attach ---- */

#define SHM_RETRY 1 /* internal: drop the switch and start over */

static int shm_map(int fd, uint64_t size, void **base, const char *path)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

    if (p == MAP_FAILED)
        return status_errno(errno, "mmap", path);
    *base = p;
    return 0;
}

/* SHMLOCK holds the region's path (text, no NUL), written by the creator
 * under byte 0 exclusive: later openers follow it, so every process uses
 * the creator's region whatever its own shm_dir. */
static int shm_lock_file_set_path(shm_region *r)
{
    size_t len = strlen(r->path);

    if (ftruncate(r->lock_fd, 0) != 0 ||
        pwrite(r->lock_fd, r->path, len, 0) != (ssize_t)len)
        return status_errno(errno, "write", r->lock_path);
    return 0;
}

/* The path SHMLOCK names into r->path: 0, SHM_RETRY (none yet), or an
 * error. */
static int shm_lock_file_get_path(shm_region *r)
{
    char buf[PATH_MAX];
    ssize_t n = pread(r->lock_fd, buf, sizeof(buf) - 1, 0);
    char *p;

    if (n < 0)
        return status_errno(errno, "read", r->lock_path);
    if (n == 0)
        return SHM_RETRY;
    buf[n] = '\0';
    if (strcmp(buf, r->path) == 0)
        return 0;
    if ((p = strdup(buf)) == NULL)
        return status_err(STOAT_ENOMEM, "shared memory: out of memory");
    free(r->path);
    r->path = p;
    return 0;
}

/* ---- the companion file (the shared block cache) ---- */

/* Its path: the region's, ".shm" replaced by ".cache". */
static char *shm_cache_path(const char *region_path)
{
    size_t n = strlen(region_path);
    char *p = malloc(n + 8);

    if (p == NULL)
        return NULL;
    memcpy(p, region_path, n + 1);
    if (n > 4 && strcmp(p + n - 4, ".shm") == 0)
        p[n - 4] = '\0';
    strcat(p, ".cache");
    return p;
}

static void shm_cache_unlink(const char *region_path)
{
    char *p = shm_cache_path(region_path);

    if (p)
        unlink(p);
    free(p);
}

static int shm_cache_map(shm_region *r, int fd, uint64_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

    if (p == MAP_FAILED) {
        close(fd);
        return -1;
    }
    r->cache_base = p;
    r->cache_size = size;
    r->cache_fd = fd;
    return 0;
}

/* The creator's companion file; none (not an error) where it cannot be
 * had: not a tmpfs, or no room for its fixed part. */
static void shm_cache_create(shm_region *r, const shm_opts *o)
{
    char *path;
    struct statfs sf;
    int fd;

    if (o->cache_size == 0 || o->cache_fixed == 0 || (path = shm_cache_path(r->path)) == NULL)
        return;
    unlink(path);
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        goto out;
    if (fstatfs(fd, &sf) != 0 || sf.f_type != TMPFS_MAGIC ||
        ftruncate(fd, (off_t)o->cache_size) != 0 ||
        posix_fallocate(fd, 0, (off_t)o->cache_fixed) != 0) {
        close(fd);
        unlink(path);
    } else if (shm_cache_map(r, fd, o->cache_size) != 0) {
        unlink(path);
    }
out:
    free(path);
}

/* An attaching handle maps the creator's companion file, if it made one. */
static void shm_cache_attach(shm_region *r)
{
    char *path = shm_cache_path(r->path);
    struct stat st;
    int fd;

    if (path == NULL)
        return;
    if ((fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
        if (fstat(fd, &st) != 0 || st.st_size <= 0)
            close(fd);
        else
            shm_cache_map(r, fd, (uint64_t)st.st_size);
    }
    free(path);
}

/* With byte 0 held exclusive: a fresh region file, initialised. */
static int shm_create(shm_region *r, const shm_opts *o, const struct stat *dst)
{
    shm_header *h;
    struct timespec now;
    int fd, err, rc;

    {
        /* A stale region elsewhere (another shm_dir) goes too. */
        char old[PATH_MAX];
        ssize_t n = pread(r->lock_fd, old, sizeof(old) - 1, 0);

        if (n > 0) {
            old[n] = '\0';
            if (strcmp(old, r->path) != 0) {
                unlink(old);
                shm_cache_unlink(old);
            }
        }
    }
    if (unlink(r->path) != 0 && errno != ENOENT)
        return shm_err_owner(errno, "remove stale shared memory", r->path);
    if ((fd = open(r->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
        return shm_err_owner(errno, "create shared memory", r->path);
    if ((err = posix_fallocate(fd, 0, (off_t)r->size)) != 0) {
        close(fd);
        unlink(r->path);
        if (err == ENOSPC)
            return status_err(STOAT_ENOSPC,
                              "shared memory %s: no space for %llu bytes in %s "
                              "(make it larger, or choose another shm_dir)",
                              r->path, (unsigned long long)r->size,
                              o->shm_dir ? o->shm_dir : SHM_DEFAULT_DIR);
        return status_errno(err, "reserve shared memory", r->path);
    }
    rc = shm_map(fd, r->size, &r->base, r->path);
    close(fd);
    if (rc != 0)
        goto fail;
    h = r->base;
    clock_gettime(CLOCK_REALTIME, &now);
    h->magic = SHM_MAGIC;
    h->layout_version = o->layout_version ? o->layout_version : SHM_LAYOUT_VERSION;
    h->lock_abi = SHM_LOCK_ABI;
    h->size = r->size;
    h->creator_uid = (uint32_t)geteuid();
    h->creator_pid = (uint32_t)getpid();
    h->dir_dev = (uint64_t)dst->st_dev;
    h->dir_ino = (uint64_t)dst->st_ino;
    h->created_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
    if ((rc = proc_lock_init((proc_lock *)((char *)r->base + SHM_OFF_COMMIT_LOCK))) != 0)
        goto fail;
    proc_slots_init((char *)r->base + SHM_OFF_SLOTS);
    shm_cache_create(r, o);
    if (o->init && (rc = o->init(r->base, r->size, o->init_arg)) != 0)
        goto fail;
    if ((rc = shm_lock_file_set_path(r)) != 0)
        goto fail;
    atomic_store(&h->ready, 1);
    r->created = 1;
    return 0;
fail:
    if (r->base) {
        munmap(r->base, r->size);
        r->base = NULL;
    }
    if (r->cache_base) {
        munmap(r->cache_base, r->cache_size);
        close(r->cache_fd);
        r->cache_base = NULL;
        r->cache_fd = -1;
        shm_cache_unlink(r->path);
    }
    unlink(r->path);
    return rc;
}

/* With byte 0 held shared: maps and checks the live region, or asks for
 * a retry when it is missing or unfinished (its initialiser died). */
static int shm_attach(shm_region *r, const shm_opts *o)
{
    uint32_t want_version = o->layout_version ? o->layout_version : SHM_LAYOUT_VERSION;
    shm_header *h;
    struct stat st;
    void *p = NULL;
    int fd, rc;

    if ((rc = shm_lock_file_get_path(r)) != 0)
        return rc;
    if ((fd = open(r->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        if (errno == ENOENT)
            return SHM_RETRY;
        return shm_err_owner(errno, "open shared memory", r->path);
    }
    if (fstat(fd, &st) != 0) {
        rc = status_errno(errno, "stat", r->path);
        close(fd);
        return rc;
    }
    if ((uint64_t)st.st_size < SHM_OFF_COMMIT_LOCK) {
        close(fd);
        return SHM_RETRY;
    }
    rc = shm_map(fd, (uint64_t)st.st_size, &p, r->path);
    close(fd);
    if (rc != 0)
        return rc;
    h = p;
    if (atomic_load(&h->ready) != 1)
        rc = SHM_RETRY;
    else if (h->magic != SHM_MAGIC)
        rc = status_err(STOAT_ECORRUPT, "shared memory %s: bad magic", r->path);
    else if (h->layout_version != want_version)
        rc = status_err(STOAT_ENOTSUP,
                        "shared memory %s: layout version %u is in use by live processes, "
                        "this build uses %u: stop them (or wait for them to close) first",
                        r->path, (unsigned)h->layout_version, (unsigned)want_version);
    else if (h->lock_abi != SHM_LOCK_ABI)
        rc = status_err(STOAT_ENOTSUP,
                        "shared memory %s: lock ABI %08x is in use by live processes, "
                        "this build uses %08x (another C library)",
                        r->path, (unsigned)h->lock_abi, (unsigned)SHM_LOCK_ABI);
    else if (h->size != (uint64_t)st.st_size)
        rc = status_err(STOAT_ECORRUPT, "shared memory %s: header says %llu bytes, file has %llu",
                        r->path, (unsigned long long)h->size, (unsigned long long)st.st_size);
    else if (h->size != r->size)
        rc = status_err(STOAT_EINVAL,
                        "shared memory %s: live processes use %llu bytes, this open asks %llu: "
                        "every process must use the same size",
                        r->path, (unsigned long long)h->size, (unsigned long long)r->size);
    else
        rc = 0;
    if (rc != 0) {
        munmap(p, (size_t)st.st_size);
        return rc;
    }
    r->base = p;
    r->created = 0;
    shm_cache_attach(r);
    return 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};

    nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The dead-man switch: create under byte 0 exclusive, or attach under
 * byte 0 shared, starting over while a region is found unfinished. */
static int shm_join(shm_region *r, const shm_opts *o, const struct stat *dst)
{
    uint64_t deadline = now_ms() + (o->wait_ms ? o->wait_ms : 5000);
    int err, rc;

    for (;;) {
        if ((err = ofd_byte(r->lock_fd, F_WRLCK, SHM_LOCK_BYTE_DMS)) == 0) {
            if ((rc = shm_create(r, o, dst)) != 0) {
                ofd_byte(r->lock_fd, F_UNLCK, SHM_LOCK_BYTE_DMS);
                return rc;
            }
            /* Downgrade in place: the OFD never lets go of byte 0. */
            if ((err = ofd_byte(r->lock_fd, F_RDLCK, SHM_LOCK_BYTE_DMS)) != 0)
                return status_errno(err, "downgrade lock", r->path);
            return 0;
        }
        if (err != EAGAIN)
            return status_errno(err, "lock", SHM_LOCK_FILE);
        err = ofd_byte(r->lock_fd, F_RDLCK, SHM_LOCK_BYTE_DMS);
        if (err == 0) {
            if ((rc = shm_attach(r, o)) != SHM_RETRY) {
                if (rc != 0)
                    ofd_byte(r->lock_fd, F_UNLCK, SHM_LOCK_BYTE_DMS);
                return rc;
            }
            ofd_byte(r->lock_fd, F_UNLCK, SHM_LOCK_BYTE_DMS);
        } else if (err != EAGAIN) {
            return status_errno(err, "lock", SHM_LOCK_FILE);
        }
        if (now_ms() >= deadline)
            return status_err(STOAT_EBUSY,
                              "shared memory %s: being initialised by another process, or "
                              "missing while others are attached (waited %u ms)",
                              r->path, (unsigned)(o->wait_ms ? o->wait_ms : 5000));
        sleep_ms(1 + (unsigned)(getpid() % 3));
    }
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);

    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int shm_open_region(const char *dir, const shm_opts *opts, shm_region **out)
{
    shm_opts o = {0};
    shm_region *r = NULL;
    struct stat dst;
    char name[64];
    int rc, err;

    *out = NULL;
    if (opts)
        o = *opts;
    if (o.size == 0)
        o.size = SHM_DEFAULT_SIZE;
    if (dir == NULL || o.size < SHM_MIN_SIZE || o.size % 4096 != 0)
        return status_err(STOAT_EINVAL, "shared memory: size %llu is not a multiple of 4096 "
                          "of at least %u", (unsigned long long)o.size, SHM_MIN_SIZE);
    if (stat(dir, &dst) != 0)
        return status_errno(errno, "stat", dir);
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return status_err(STOAT_ENOMEM, "shared memory: out of memory");
    r->lock_fd = -1;
    r->cache_fd = -1;
    r->size = o.size;
    r->fork_gen = shm_fork_generation();
    snprintf(name, sizeof(name), "stoat.%llx.%llx.shm", (unsigned long long)dst.st_dev,
             (unsigned long long)dst.st_ino);
    r->path = path_join(o.shm_dir ? o.shm_dir : SHM_DEFAULT_DIR, name);
    r->lock_path = path_join(dir, SHM_LOCK_FILE);
    if (r->path == NULL || r->lock_path == NULL) {
        rc = status_err(STOAT_ENOMEM, "shared memory: out of memory");
        goto fail;
    }
    err = shm_fd_open(r->lock_path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600, &r->lock_fd);
    if (err != 0) {
        rc = shm_err_owner(err, "open lock file", r->lock_path);
        goto fail;
    }
    if ((rc = shm_join(r, &o, &dst)) != 0)
        goto fail;
    *out = r;
    return 0;
fail:
    shm_close(r);
    return rc;
}

void shm_close(shm_region *r)
{
    int forked;

    if (r == NULL)
        return;
    forked = r->fork_gen != shm_fork_generation();
    if (r->base)
        munmap(r->base, r->size);
    if (r->cache_base)
        munmap(r->cache_base, r->cache_size);
    if (r->cache_fd >= 0)
        close(r->cache_fd);
    if (!forked && r->lock_fd >= 0) {
        /* The last handle anywhere gets byte 0 exclusive: the region
         * goes, as SQLite's last connection truncates -shm. */
        if (r->base && ofd_byte(r->lock_fd, F_WRLCK, SHM_LOCK_BYTE_DMS) == 0) {
            unlink(r->path);
            shm_cache_unlink(r->path);
        }
        shm_fd_close(&r->lock_fd);
    }
    free(r->lock_path);
    free(r->path);
    free(r);
}

int shm_check(const shm_region *r)
{
    if (r->fork_gen != shm_fork_generation())
        return status_err(STOAT_EFORKED,
                          "shared memory handle used in a forked process: open it again there");
    return 0;
}

void *shm_base(const shm_region *r)
{
    return r->base;
}

uint64_t shm_size(const shm_region *r)
{
    return r->size;
}

int shm_created(const shm_region *r)
{
    return r->created;
}

const char *shm_path(const shm_region *r)
{
    return r->path;
}

const char *shm_lock_path(const shm_region *r)
{
    return r->lock_path;
}

void *shm_cache_base(const shm_region *r)
{
    return r->cache_base;
}

uint64_t shm_cache_size(const shm_region *r)
{
    return r->cache_size;
}

int shm_cache_reserve(void *region, uint64_t off, uint64_t len)
{
    shm_region *r = region;

    if (r->cache_fd < 0 || off + len > r->cache_size)
        return EINVAL;
    return posix_fallocate(r->cache_fd, (off_t)off, (off_t)len);
}
