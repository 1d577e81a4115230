/*
 * db_util.h - helpers shared by the database-level tests.
 *
 * Owns: options for a small database that flushes and compacts often,
 * deterministic values derived from a 64-bit tag, and raw file surgery
 * (read, write, flip a byte, truncate, list, copy a directory). The
 * surgery uses plain POSIX calls on purpose: it plays the part of a damaged
 * disk, not of the engine, so it must not go through the env under test.
 *
 * Header-only (static inline) because every test binary links just its own
 * .c, test.o and libstoat.a. Failures of the helpers themselves stop the
 * current test with REQUIRE. Single-threaded, like the harness.
 */
#ifndef STOAT_DB_UTIL_H
#define STOAT_DB_UTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

#define DBU_PATH_MAX 4096
#define DBU_MAX_FILES 256

/* Options that make a few thousand small writes flush and compact. */
static inline void dbu_small_options(stoat_options *o)
{
    stoat_options_init(o);
    o->create_if_missing = 1;
    o->memtable_size = 64 << 10;
    o->block_size = 1024;
    o->cache_size = 1 << 20;
    o->base_level_size = 256 << 10;
    o->table_size = 64 << 10;
    o->l0_compaction_trigger = 2;
}

/* Fills out[0..len) with bytes that depend only on tag and position. */
static inline void dbu_value(uint64_t tag, char *out, size_t len)
{
    uint64_t s = tag * 0x9e3779b97f4a7c15ull + 1;

    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0)
            test_rand(&s);
        out[i] = (char)(s >> (8 * (i % 8)));
    }
}

/* 1 if (val, vlen) is exactly what dbu_value(tag, ., len) makes. */
static inline int dbu_value_is(uint64_t tag, size_t len, const void *val, size_t vlen)
{
    char small[512];
    char *want = len <= sizeof(small) ? small : malloc(len);
    int same;

    REQUIRE(want != NULL);
    dbu_value(tag, want, len);
    same = vlen == len && (len == 0 || memcmp(val, want, len) == 0);
    if (want != small)
        free(want);
    return same;
}

/* "dir/name" into out (DBU_PATH_MAX bytes). */
static inline char *dbu_path(char *out, const char *dir, const char *name)
{
    REQUIRE(snprintf(out, DBU_PATH_MAX, "%s/%s", dir, name) < DBU_PATH_MAX);
    return out;
}

/* A fresh directory "<test tmpdir>/name" (for tests needing several). */
static inline const char *dbu_subdir(char *out, const char *name)
{
    dbu_path(out, test_tmpdir(), name);
    REQUIRE(mkdir(out, 0755) == 0);
    return out;
}

static inline uint64_t dbu_file_size(const char *path)
{
    struct stat st;

    REQUIRE(stat(path, &st) == 0);
    return (uint64_t)st.st_size;
}

static inline int dbu_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* The whole file in a malloc'd buffer. */
static inline char *dbu_read_file(const char *path, size_t *len)
{
    size_t size = (size_t)dbu_file_size(path);
    char *data = malloc(size ? size : 1);
    int fd = open(path, O_RDONLY);

    REQUIRE(data != NULL && fd >= 0);
    REQUIRE(pread(fd, data, size, 0) == (ssize_t)size);
    close(fd);
    *len = size;
    return data;
}

/* Replaces path's contents with data. */
static inline void dbu_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    REQUIRE(fd >= 0);
    REQUIRE(len == 0 || write(fd, data, len) == (ssize_t)len);
    close(fd);
}

/* Inverts every bit of the byte at off. */
static inline void dbu_flip(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    unsigned char c;

    REQUIRE(fd >= 0);
    REQUIRE(pread(fd, &c, 1, (off_t)off) == 1);
    c ^= 0xff;
    REQUIRE(pwrite(fd, &c, 1, (off_t)off) == 1);
    close(fd);
}

static inline void dbu_truncate(const char *path, uint64_t len)
{
    REQUIRE(truncate(path, (off_t)len) == 0);
}

/* Appends len bytes of data to path. */
static inline void dbu_append(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND);

    REQUIRE(fd >= 0);
    REQUIRE(write(fd, data, len) == (ssize_t)len);
    close(fd);
}

static inline int dbu_name_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/*
 * Names (sorted) of the files in dir ending in suffix ("" for all) into
 * names[DBU_MAX_FILES][64]; returns how many.
 */
static inline int dbu_list(const char *dir, const char *suffix, char (*names)[64])
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t slen = strlen(suffix);
    int n = 0;

    REQUIRE(d != NULL);
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);

        if (de->d_name[0] == '.' || len < slen || len >= 64)
            continue;
        if (strcmp(de->d_name + len - slen, suffix) != 0)
            continue;
        REQUIRE(n < DBU_MAX_FILES);
        memcpy(names[n++], de->d_name, len + 1);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(names[0]), dbu_name_cmp);
    return n;
}

/* Total size of the files in dir ending in suffix. */
static inline uint64_t dbu_dir_bytes(const char *dir, const char *suffix)
{
    static char names[DBU_MAX_FILES][64];
    char p[DBU_PATH_MAX];
    uint64_t total = 0;
    int n = dbu_list(dir, suffix, names);

    for (int i = 0; i < n; i++)
        total += dbu_file_size(dbu_path(p, dir, names[i]));
    return total;
}

/* Makes dst (created if missing) hold exactly the files of the flat dir src. */
static inline void dbu_copy_dir(const char *src, const char *dst)
{
    static char names[DBU_MAX_FILES][64];
    char p[DBU_PATH_MAX];
    int n;

    if (!dbu_exists(dst))
        REQUIRE(mkdir(dst, 0755) == 0);
    n = dbu_list(dst, "", names);
    for (int i = 0; i < n; i++)
        REQUIRE(unlink(dbu_path(p, dst, names[i])) == 0);
    n = dbu_list(src, "", names);
    for (int i = 0; i < n; i++) {
        size_t len;
        char *data = dbu_read_file(dbu_path(p, src, names[i]), &len);

        dbu_write_file(dbu_path(p, dst, names[i]), data, len);
        free(data);
    }
}

/* Number of threads of this process (/proc/self/task entries). */
static inline int dbu_thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    int n = 0;

    REQUIRE(d != NULL);
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* The thread count once it has settled on `want` (a thread pthread_join
 * returned for can stay listed in /proc a moment longer), or the last
 * count seen within about a second. */
static inline int dbu_thread_count_settled(int want)
{
    int n = dbu_thread_count();

    for (int i = 0; i < 100 && n != want; i++) {
        usleep(10000);
        n = dbu_thread_count();
    }
    return n;
}

#endif
