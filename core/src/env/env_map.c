/*
 * env_map.c - read-only mappings of whole files for the POSIX env
 * (env_map.h). No state; thread-safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/status.h"
#include "env/env_map.h"

int env_map_file(env *e, const char *path, uint64_t len, const char **out)
{
    void *p;
    int fd, err;

    *out = NULL;
    if (e != env_posix())
        return STOAT_ENOTSUP;
    if (len == 0 || len > (uint64_t)SIZE_MAX)
        return status_err(STOAT_EINVAL, "mmap %s: bad length %llu", path, (unsigned long long)len);
    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return errno == ENOENT ? STOAT_ENOTFOUND : status_errno(errno, "open", path);
    p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, 0);
    err = errno;
    close(fd);  /* the mapping keeps the file */
    if (p == MAP_FAILED)
        return status_errno(err, "mmap", path);
    *out = p;
    return 0;
}

void env_unmap(const char *p, uint64_t len)
{
    if (p != NULL)
        (void)munmap((void *)p, (size_t)len);
}

void env_map_willneed(const char *p, uint64_t map_len, uint64_t off, uint64_t len)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), start, end;

    if (p == NULL || off >= map_len)
        return;
    if (len > map_len - off)
        len = map_len - off;
    start = off & ~(page - 1);
    end = off + len;
    (void)madvise((void *)(p + start), (size_t)(end - start), MADV_WILLNEED);
}
