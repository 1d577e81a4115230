/*
 * test.c - the harness behind test.h.
 */
#include "test.h"

#include <ftw.h>
#include <stdarg.h>
#include <unistd.h>

int test_failed_now;
jmp_buf test_jmp;
const char *test_current;

static int n_passed, n_failed;
static char tmpdir[4096];

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    test_failed_now = 1;
    fprintf(stderr, "  %s:%d: %s: ", file, line, test_current);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

const char *test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");

    if (tmpdir[0])
        return tmpdir;
    snprintf(tmpdir, sizeof(tmpdir), "%s/stoat-test-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    return tmpdir;
}

void test_begin(const char *name)
{
    test_current = name;
    test_failed_now = 0;
    tmpdir[0] = '\0';
}

void test_end(void)
{
    if (tmpdir[0] && getenv("STOAT_KEEP_TMP") == NULL)
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
    if (test_failed_now) {
        n_failed++;
        printf("FAIL %s\n", test_current);
    } else {
        n_passed++;
        printf("PASS %s\n", test_current);
    }
    fflush(stdout);
}

int test_selected(int argc, char **argv, const char *name)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

int test_summary(void)
{
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}

uint64_t test_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}
