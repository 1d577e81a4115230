/*
 * dbdir.c - create, measure and delete the database directory (see
 * dbdir.h). Walks use openat/fstatat relative to directory descriptors and
 * never follow symbolic links.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbdir.h"

int dbdir_create(const char *dir)
{
    char path[4096];
    size_t len = strlen(dir);

    if (len == 0 || len >= sizeof path) {
        fprintf(stderr, "bad database directory '%s'\n", dir);
        return -1;
    }
    memcpy(path, dir, len + 1);
    for (char *p = path + 1; ; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;

        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "mkdir %s: %s\n", path, strerror(errno));
            return -1;
        }
        *p = c;
        if (c == '\0')
            break;
    }
    return 0;
}

/* Sums st_blocks under the open directory fd (which it closes). */
static uint64_t dbdir_usage_fd(int fd)
{
    DIR *d = fdopendir(fd);
    struct dirent *e;
    uint64_t total = 0;

    if (d == NULL) {
        close(fd);
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat st;

        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;   /* deleted meanwhile by a compaction */
        total += (uint64_t)st.st_blocks * 512;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);

            if (sub >= 0)
                total += dbdir_usage_fd(sub);
        }
    }
    closedir(d);
    return total;
}

uint64_t dbdir_usage(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);

    return fd < 0 ? 0 : dbdir_usage_fd(fd);
}

/* Removes everything under the open directory fd (which it closes). */
static int dbdir_empty_fd(int fd, const char *path)
{
    DIR *d = fdopendir(fd);
    struct dirent *e;
    int rc = 0;

    if (d == NULL) {
        close(fd);
        return -1;
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        struct stat st;

        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);

            rc = sub < 0 ? -1 : dbdir_empty_fd(sub, path);
            if (rc == 0 && unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) != 0)
                rc = -1;
        } else if (unlinkat(dirfd(d), e->d_name, 0) != 0) {
            rc = -1;
        }
        if (rc != 0)
            fprintf(stderr, "cannot delete %s/.../%s: %s\n", path, e->d_name,
                    strerror(errno));
    }
    closedir(d);
    return rc;
}

/* 1 when dir has no entries but . and .. */
static int dbdir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int empty = 1;

    if (d == NULL)
        return 0;
    while (empty && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            empty = 0;
    closedir(d);
    return empty;
}

int dbdir_destroy(const char *dir, const char *marker)
{
    char path[4096];
    struct stat st;
    int fd;

    snprintf(path, sizeof path, "%s/%s", dir, marker);
    if (lstat(dir, &st) != 0 && errno == ENOENT)
        return 0;
    if (!dbdir_is_empty(dir) && access(path, F_OK) != 0) {
        fprintf(stderr, "refusing to delete %s: it is not empty and holds no %s, "
                        "so it is not a database of this engine\n", dir, marker);
        return -1;
    }
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) < 0 ||
        dbdir_empty_fd(fd, dir) != 0 || rmdir(dir) != 0) {
        fprintf(stderr, "cannot delete %s: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}
