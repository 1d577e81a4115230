/*
 * vlog_gc_test.c - value-log GC really shrinks the disk: the space
 * test.
 *
 * Writes 200,000 values of 4 KiB, overwrites all of them twice, deletes
 * half (every odd key, so that every value-log file holds as much garbage
 * as live data), then makes one stoat_gc call, which must loop by itself:
 * afterwards the *.vlog files in the directory (sizes summed on disk) take
 * at most 1.3 x the live value bytes, every live key reads back its latest
 * value and every deleted key is absent, also after a reopen. It prints
 * the space amplification before and after GC and GC's throughput (value
 * log collected per second, and live values moved per second).
 *
 * The test writes about 2.4 GB, in write batches with auto_gc off (it
 * measures stoat_gc alone). STOAT_GC_TEST_SCALE (default 1.0; 0.1 in
 * sanitizer builds) scales the number of keys, and the value-log file size
 * with it so that GC keeps the same granularity.
 */
#include <time.h>

#include "db_util.h"
#include "test.h"

#define GC_KEYS 200000
#define GC_VALUE_LEN 4096
#define GC_ROUNDS 3
#define GC_FILE_SIZE (64ull << 20)
/* A file with more than this share of garbage is collected: any file left
 * behind is then at most 1 / (1 - 0.2) = 1.25 x its live bytes. */
#define GC_RATIO 0.2
#define GC_MAX_AMPLIFICATION 1.3

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GC_DEFAULT_SCALE 0.1
#else
#define GC_DEFAULT_SCALE 1.0
#endif

static double gc_scale(void)
{
    const char *s = getenv("STOAT_GC_TEST_SCALE");
    double scale = s && *s ? atof(s) : GC_DEFAULT_SCALE;

    return scale > 0 && scale <= 1 ? scale : GC_DEFAULT_SCALE;
}

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void key_of(uint32_t i, char out[16])
{
    snprintf(out, 16, "gc%08u", i);
}

/* Round r's value of key i: its key index and round, then filler that
 * depends on both, so that a stale or misplaced value never passes. */
static void value_of(uint32_t i, uint32_t round, char *out)
{
    memcpy(out, &i, 4);
    memcpy(out + 4, &round, 4);
    dbu_value((uint64_t)i << 8 | round, out + 8, GC_VALUE_LEN - 8);
}

/* Writes round `round` of keys [0, n): values, or tombstones for the odd
 * keys when del is set. */
static void write_round(stoat_db *db, uint32_t n, uint32_t round, int del)
{
    stoat_batch *b;
    char k[16], *v = malloc(GC_VALUE_LEN);

    REQUIRE(v != NULL);
    REQUIRE_OK(stoat_batch_new(db, &b));
    for (uint32_t i = del ? 1 : 0; i < n; i += del ? 2 : 1) {
        key_of(i, k);
        if (del) {
            REQUIRE_OK(stoat_batch_delete(b, k, strlen(k)));
        } else {
            value_of(i, round, v);
            REQUIRE_OK(stoat_batch_set(b, k, strlen(k), v, GC_VALUE_LEN));
        }
    }
    REQUIRE_OK(stoat_batch_commit(b));
    stoat_batch_free(b);
    free(v);
}

/* Every even key holds its last round's value, every odd key is gone. */
static void check_all(stoat_db *db, uint32_t n)
{
    char k[16], *want = malloc(GC_VALUE_LEN);
    uint32_t wrong = 0, missing = 0, resurrected = 0;

    REQUIRE(want != NULL);
    for (uint32_t i = 0; i < n; i++) {
        void *v = NULL;
        size_t vlen = 0;
        int rc;

        key_of(i, k);
        rc = stoat_get(db, k, strlen(k), &v, &vlen);
        if (i % 2 == 1) {
            resurrected += rc != STOAT_ENOTFOUND;
        } else if (rc != 0) {
            if (missing++ == 0)
                test_fail(__FILE__, __LINE__, "get %s: %s: %s", k, stoat_strerror(rc),
                          stoat_errmsg(db));
        } else {
            value_of(i, GC_ROUNDS - 1, want);
            wrong += vlen != GC_VALUE_LEN || memcmp(v, want, GC_VALUE_LEN) != 0;
        }
        stoat_free(v);
    }
    free(want);
    if (wrong || missing || resurrected)
        test_fail(__FILE__, __LINE__, "%u wrong values, %u live keys missing, %u deleted keys "
                  "present", wrong, missing, resurrected);
}

/* Sizes of the value-log files now, by name, to tell later which went. */
typedef struct vlog_listing {
    char names[DBU_MAX_FILES][64];
    uint64_t sizes[DBU_MAX_FILES];
    int n;
} vlog_listing;

static void list_vlogs(const char *dir, vlog_listing *l)
{
    char p[DBU_PATH_MAX];

    l->n = dbu_list(dir, ".vlog", l->names);
    for (int i = 0; i < l->n; i++)
        l->sizes[i] = dbu_file_size(dbu_path(p, dir, l->names[i]));
}

/* Bytes of the files in `before` that are no longer in the directory. */
static uint64_t bytes_removed(const char *dir, const vlog_listing *before)
{
    char p[DBU_PATH_MAX];
    uint64_t n = 0;

    for (int i = 0; i < before->n; i++)
        if (!dbu_exists(dbu_path(p, dir, before->names[i])))
            n += before->sizes[i];
    return n;
}

static void test_vlog_gc_space(void)
{
    double scale = gc_scale(), t0, t_gc;
    uint32_t n = (uint32_t)(GC_KEYS * scale) & ~1u;
    uint64_t live = (uint64_t)(n / 2) * GC_VALUE_LEN, before, after, reclaimed, collected;
    const char *dir = test_tmpdir();
    vlog_listing *files = calloc(1, sizeof(*files));
    stoat_options o;
    stoat_db *db;

    REQUIRE(files != NULL && n >= 1000);
    stoat_options_init(&o);
    o.value_threshold = 1024;
    o.value_log_file_size = (uint64_t)(GC_FILE_SIZE * scale);
    if (o.value_log_file_size < (1u << 20))
        o.value_log_file_size = 1u << 20;
    o.auto_gc = 0;
    REQUIRE_OK(stoat_open(dir, &o, &db));
    t0 = now_seconds();
    for (uint32_t r = 0; r < GC_ROUNDS; r++)
        write_round(db, n, r, 0);
    write_round(db, n, GC_ROUNDS, 1);
    printf("  wrote %u x %d B values %d times, deleted half: %.1f s\n", n, GC_VALUE_LEN,
           GC_ROUNDS, now_seconds() - t0);

    /* Let compaction count the garbage first, so that the timing below is
     * GC's own (stoat_gc would flatten by itself otherwise). */
    t0 = now_seconds();
    REQUIRE_OK(stoat_flatten(db));
    printf("  flatten: %.1f s\n", now_seconds() - t0);
    before = dbu_dir_bytes(dir, ".vlog");
    list_vlogs(dir, files);

    t0 = now_seconds();
    REQUIRE_OK(stoat_gc(db, GC_RATIO, &reclaimed));
    t_gc = now_seconds() - t0;
    after = dbu_dir_bytes(dir, ".vlog");
    collected = bytes_removed(dir, files);
    printf("  live values %.1f MB; value log before GC %.1f MB (%.2f x), after %.1f MB "
           "(%.2f x)\n", live / 1e6, before / 1e6, (double)before / (double)live,
           after / 1e6, (double)after / (double)live);
    printf("  GC: %.2f s, %.1f MB reclaimed; value log collected %.1f MB (%.0f MB/s), "
           "live values moved %.1f MB (%.0f MB/s)\n", t_gc, reclaimed / 1e6, collected / 1e6,
           collected / 1e6 / t_gc, (collected - reclaimed) / 1e6,
           (collected - reclaimed) / 1e6 / t_gc);
    CHECK(reclaimed > 0 && reclaimed <= collected);
    /* Reclaimed counts moved values, not their records' framing. */
    CHECK(before >= after && reclaimed >= before - after);
    CHECK(reclaimed - (before - after) <= (uint64_t)(n / 2) * 64 + 64 * 1024);
    CHECK((double)after <= GC_MAX_AMPLIFICATION * (double)live);
    check_all(db, n);

    REQUIRE_OK(stoat_close(db));
    REQUIRE_OK(stoat_open(dir, &o, &db));
    check_all(db, n);
    CHECK(dbu_dir_bytes(dir, ".vlog") <= after);
    REQUIRE_OK(stoat_close(db));
    free(files);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_vlog_gc_space);
    return test_summary();
}
