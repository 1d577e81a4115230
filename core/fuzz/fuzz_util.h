/*
 * fuzz_util.h - what the libFuzzer targets in core/fuzz/ share.
 *
 * Each target (fuzz_<parser>.c) defines LLVMFuzzerTestOneInput and feeds
 * the bytes to one parser of bytes from disk; `make fuzz` builds them with
 * clang under ASan + UBSan and runs each for $FUZZ_SECONDS. A target must
 * never crash, leak or trip a sanitizer, whatever the input; where the
 * parser has a semantic promise (a filter agrees with itself, a table's
 * entries come back sorted, the database agrees with a model), the target
 * checks it with FUZZ_ASSERT, which aborts so that libFuzzer keeps the
 * input.
 *
 * Checksums stop random bytes at the first check, so file-level targets
 * take a mode from the first input byte: raw bytes as they are, or the
 * same bytes with every checksum made right (fuzz_fix_*), so that the
 * parser behind the checksum is reached too.
 *
 * Files go to one directory per process, under /dev/shm when it exists
 * (fuzz_dir), removed at exit. Single-threaded, like libFuzzer's loop.
 */
#ifndef STOAT_FUZZ_UTIL_H
#define STOAT_FUZZ_UTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_ASSERT(cond)                                                          \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: FUZZ_ASSERT(%s) failed\n", __FILE__, __LINE__, #cond); \
            abort();                                                               \
        }                                                                          \
    } while (0)

static char fuzz_dir_path[256];

static void fuzz_rm_contents(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[512];

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (unlink(p) != 0) {
            fuzz_rm_contents(p);
            rmdir(p);
        }
    }
    closedir(d);
}

static void fuzz_dir_remove(void)
{
    if (fuzz_dir_path[0]) {
        fuzz_rm_contents(fuzz_dir_path);
        rmdir(fuzz_dir_path);
    }
}

/* This process's scratch directory, emptied on every call. */
static inline const char *fuzz_dir(void)
{
    if (fuzz_dir_path[0] == 0) {
        struct stat st;
        /* run.sh names a directory it removes afterwards: libFuzzer's time
         * limit may end a target without running atexit handlers. */
        const char *base = getenv("STOAT_FUZZ_SCRATCH");

        if (base == NULL || *base == 0)
            base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";

        snprintf(fuzz_dir_path, sizeof(fuzz_dir_path), "%s/stoat-fuzz-XXXXXX", base);
        if (mkdtemp(fuzz_dir_path) == NULL)
            abort();
        atexit(fuzz_dir_remove);
    } else {
        fuzz_rm_contents(fuzz_dir_path);
    }
    return fuzz_dir_path;
}

/* Writes data to dir/name (the path goes to out, 512 bytes). */
static inline void fuzz_write_file(char out[512], const char *dir, const char *name,
                                   const void *data, size_t len)
{
    int fd;

    snprintf(out, 512, "%s/%s", dir, name);
    if ((fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
        abort();
    if (len > 0 && write(fd, data, len) != (ssize_t)len)
        abort();
    close(fd);
}

#endif
