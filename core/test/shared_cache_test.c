/*
 * shared_cache_test.c - the shared block cache: round trips, a ring that
 * wraps (old blocks go, never a wrong one comes back), a file system that
 * runs out of room (nothing written past what was reserved), threads that
 * read while others overwrite, and processes SIGKILLed in the middle of
 * their puts while others read the same mapping.
 */
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "table/shared_cache.h"
#include "test.h"

/* The bytes of block (table, offset): a length and a pattern that both
 * depend on the key, so a copy of another block never passes for it. */
static size_t block_len(uint64_t table, uint64_t offset)
{
    return 200 + (size_t)((table * 131 + offset / 64 * 17) % 3000);
}

static void block_fill(char *p, uint64_t table, uint64_t offset, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (char)(table * 7 + offset / 64 * 13 + i * 31 + (i >> 8));
}

/* 1: the copy is the block's bytes; 0: a miss; -1: a wrong copy. */
static int check_get(shared_cache *c, uint64_t table, uint64_t offset)
{
    size_t len = 0, want = block_len(table, offset);
    char *got = shared_cache_get(c, table, offset, &len), *exp;
    int ok;

    if (got == NULL)
        return 0;
    exp = malloc(want);
    block_fill(exp, table, offset, want);
    ok = len == want && memcmp(got, exp, want) == 0;
    if (!ok && len == want) {
        size_t first = want, last = 0, nd = 0;
        for (size_t i = 0; i < want; i++)
            if (got[i] != exp[i]) { if (first == want) first = i; last = i; nd++; }
        fprintf(stderr, "mismatch (%llu,%llu) len %zu: bytes %zu..%zu differ (%zu)\n",
                (unsigned long long)table, (unsigned long long)offset, want, first, last, nd);
    }
    free(exp);
    free(got);
    return ok ? 1 : -1;
}

static void put_block(shared_cache *c, uint64_t table, uint64_t offset)
{
    size_t len = block_len(table, offset);
    char *p = malloc(len);

    block_fill(p, table, offset, len);
    shared_cache_put(c, table, offset, p, len);
    free(p);
}

/* The reserve callback: grants up to `limit` bytes of the file. */
typedef struct grant {
    uint64_t limit, asked_to;
} grant;

static int grant_reserve(void *arg, uint64_t off, uint64_t len)
{
    grant *g = arg;

    if (off + len > g->asked_to)
        g->asked_to = off + len;
    return off + len <= g->limit ? 0 : 28; /* ENOSPC */
}

/* A cache over `size` zeroed private bytes whose reserve callback grants
 * the first `limit` of them. */
typedef struct fixture {
    char *base;
    uint64_t size;
    grant g;
    shared_cache *c;
} fixture;

static void fixture_open(fixture *f, uint64_t size, uint64_t limit)
{
    f->size = size;
    f->g = (grant){limit, 0};
    REQUIRE((f->base = calloc(1, size)) != NULL);
    REQUIRE((f->c = shared_cache_attach(f->base, size, grant_reserve, &f->g)) != NULL);
}

static void fixture_close(fixture *f)
{
    shared_cache_detach(f->c);
    free(f->base);
}

/* One step of a reader that fills what it misses: 1 hit, 0 miss (then
 * put), -1 a wrong copy. Block (1..3, 0..399 x 64). */
static int read_or_fill(shared_cache *c, unsigned *seed)
{
    uint64_t t = 1 + (uint64_t)(rand_r(seed) % 3), off = (uint64_t)(rand_r(seed) % 400) * 64;
    int got = check_get(c, t, off);

    if (got == 0)
        put_block(c, t, off);
    return got;
}

static void test_shared_cache_round_trip(void)
{
    uint64_t size = 4u << 20;
    fixture f;
    shared_cache *c;
    shared_cache_stats st;

    CHECK(shared_cache_fixed_size(64u << 10) == 0);   /* too small for a cache */
    fixture_open(&f, size, size);
    c = f.c;
    CHECK(check_get(c, 1, 0) == 0);
    put_block(c, 1, 0);
    put_block(c, 1, 4096);
    put_block(c, 2, 0);
    CHECK(check_get(c, 1, 0) == 1);
    CHECK(check_get(c, 1, 4096) == 1);
    CHECK(check_get(c, 2, 0) == 1);
    CHECK(check_get(c, 3, 0) == 0);
    CHECK(check_get(c, 1, 8192) == 0);
    shared_cache_get_stats(c, &st);
    CHECK(st.hits == 3 && st.misses == 3 && st.puts == 3);
    CHECK(st.bytes == shared_cache_fixed_size(size) + (1u << 20)); /* one chunk reserved */
    /* A block larger than an eighth of the ring is not kept. */
    {
        size_t big = size / 4;
        char *p = calloc(1, big);

        shared_cache_put(c, 9, 0, p, big);
        size_t len;
        CHECK(shared_cache_get(c, 9, 0, &len) == NULL);
        free(p);
    }
    /* A second handle on the same bytes (another process) sees them. */
    shared_cache *c2 = shared_cache_attach(f.base, size, grant_reserve, &f.g);
    REQUIRE(c2 != NULL);
    CHECK(check_get(c2, 1, 4096) == 1);
    shared_cache_detach(c2);
    fixture_close(&f);
}

static void test_shared_cache_wraps_and_never_returns_stale(void)
{
    uint64_t size = 2u << 20, n = 4000;
    fixture f;
    shared_cache *c;
    int hits_recent = 0, hits_old = 0;

    fixture_open(&f, size, size);
    c = f.c;
    for (uint64_t i = 0; i < n; i++)
        put_block(c, 1 + i % 5, i * 64);    /* about 7 MB through a 2 MB file */
    for (uint64_t i = 0; i < n; i++) {
        int r = check_get(c, 1 + i % 5, i * 64);

        CHECK(r >= 0);
        if (r == 1 && i >= n - 100)
            hits_recent++;
        if (r == 1 && i < n / 2)
            hits_old++;
    }
    CHECK(hits_recent >= 95);   /* the newest are there (a set may drop a few) */
    CHECK(hits_old == 0);       /* the ring went round: the oldest are gone */
    CHECK(f.g.asked_to <= size);
    fixture_close(&f);
}

static void test_shared_cache_full_file_system(void)
{
    uint64_t size = 8u << 20, fixed = shared_cache_fixed_size(8u << 20);
    fixture f;
    shared_cache *c;
    shared_cache_stats st;
    int hits = 0;

    fixture_open(&f, size, fixed + (1u << 20));    /* room for 1 MiB of ring only */
    c = f.c;
    for (uint64_t i = 0; i < 3000; i++)
        put_block(c, 7, i * 64);
    for (uint64_t i = 0; i < 3000; i++) {
        int r = check_get(c, 7, i * 64);

        CHECK(r >= 0);
        hits += r == 1 && i >= 2900;
    }
    CHECK(hits >= 95);      /* it goes on in the room it has */
    for (uint64_t off = f.g.limit; off < size; off++)
        if (f.base[off] != 0) {
            CHECK(f.base[off] == 0);    /* never a byte past what was reserved */
            break;
        }
    shared_cache_get_stats(c, &st);
    CHECK(st.bytes == f.g.limit);
    fixture_close(&f);
}

static void test_shared_cache_erase_table(void)
{
    fixture f;
    shared_cache *c;

    fixture_open(&f, 4u << 20, 4u << 20);
    c = f.c;
    for (uint64_t off = 0; off < 64 * 64; off += 64) {
        put_block(c, 5, off);
        put_block(c, 6, off);
        put_block(c, 5 + (1ull << 32), off);    /* the same low 32 bits as table 5 */
    }
    shared_cache_erase_table(c, 5);
    for (uint64_t off = 0; off < 64 * 64; off += 64) {
        CHECK(check_get(c, 5, off) == 0);
        CHECK(check_get(c, 6, off) == 1);
        CHECK(check_get(c, 5 + (1ull << 32), off) == 0);   /* erased too: only a miss */
    }
    put_block(c, 5, 0);     /* a block put again is found again */
    CHECK(check_get(c, 5, 0) == 1);
    fixture_close(&f);
}

/* Tables come and go (compactions): with their blocks erased, the ring
 * comes round in the pages it has instead of growing to the file's size. */
static void test_shared_cache_ring_holds_what_is_live(void)
{
    uint64_t size = 32u << 20;
    fixture f;
    shared_cache *c;
    shared_cache_stats st;

    fixture_open(&f, size, size);
    c = f.c;
    for (uint64_t t = 1; t <= 300; t++) {
        for (uint64_t off = 0; off < 100 * 64; off += 64)
            put_block(c, t, off);   /* ~170 KB a table, 50 MB in all */
        if (t > 2)
            shared_cache_erase_table(c, t - 2);     /* two tables live */
    }
    shared_cache_get_stats(c, &st);
    CHECK(st.bytes <= shared_cache_fixed_size(size) + (2u << 20));
    for (uint64_t off = 0; off < 100 * 64; off += 64) {
        CHECK(check_get(c, 300, off) == 1);
        CHECK(check_get(c, 1, off) == 0);
    }
    /* Without erases it grows to hold what is named. */
    for (uint64_t t = 1000; t < 1060; t++)
        for (uint64_t off = 0; off < 100 * 64; off += 64)
            put_block(c, t, off);
    shared_cache_get_stats(c, &st);
    CHECK(st.bytes >= shared_cache_fixed_size(size) + (8u << 20));
    fixture_close(&f);
}

/* Threads: readers check every copy while writers overwrite the ring. */
typedef struct race {
    shared_cache *c;
    unsigned seed;
    int bad, hits;
} race;

static void *race_main(void *arg)
{
    race *r = arg;

    for (int i = 0; i < 60000; i++) {
        int got = read_or_fill(r->c, &r->seed);

        r->bad += got < 0;
        r->hits += got > 0;
    }
    return NULL;
}

static void test_shared_cache_threads_never_see_a_torn_copy(void)
{
    fixture f;
    pthread_t th[4];
    race r[4];
    int bad = 0, hits = 0;

    fixture_open(&f, 1u << 20, 1u << 20); /* ~0.7 MB of ring for ~2 MB of blocks */
    for (int i = 0; i < 4; i++) {
        r[i] = (race){f.c, (unsigned)i * 7919u + 1, 0, 0};
        REQUIRE(pthread_create(&th[i], NULL, race_main, &r[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        bad += r[i].bad;
        hits += r[i].hits;
    }
    CHECK(bad == 0);
    CHECK(hits > 1000);
    fixture_close(&f);
}

/* Processes on one MAP_SHARED mapping, killed at random while they put:
 * the others' copies stay right, and so do the parent's afterwards. */
static int grant_all(void *arg, uint64_t off, uint64_t len)
{
    (void)arg, (void)off, (void)len;
    return 0;
}

static void child_loop(char *base, uint64_t size, unsigned seed)
{
    shared_cache *c = shared_cache_attach(base, size, grant_all, NULL);

    for (;;)
        if (read_or_fill(c, &seed) < 0)
            _exit(1);   /* a wrong copy (check_get said which) */
}

static void test_shared_cache_processes_killed_mid_put(void)
{
    uint64_t size = 1u << 20;
    char *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t kids[3];
    int kills = 0, wrong = 0, hits = 0;

    REQUIRE(base != MAP_FAILED);
    for (int k = 0; k < 3; k++)
        if ((kids[k] = fork()) == 0)
            child_loop(base, size, (unsigned)k + 11);
    for (int round = 0; round < 60; round++) {
        int k = round % 3, status;

        usleep(2000 + (unsigned)(round * 397) % 5000);
        kill(kids[k], SIGKILL);
        waitpid(kids[k], &status, 0);
        wrong += WIFEXITED(status) && WEXITSTATUS(status) == 1;
        kills += WIFSIGNALED(status);
        if ((kids[k] = fork()) == 0)
            child_loop(base, size, (unsigned)round * 31u + 5);
    }
    for (int k = 0; k < 3; k++) {
        int status;

        kill(kids[k], SIGKILL);
        waitpid(kids[k], &status, 0);
        wrong += WIFEXITED(status) && WEXITSTATUS(status) == 1;
    }
    CHECK(wrong == 0);
    CHECK(kills >= 50);
    shared_cache *c = shared_cache_attach(base, size, grant_all, NULL);
    REQUIRE(c != NULL);
    for (uint64_t t = 1; t <= 3; t++)
        for (uint64_t off = 0; off < 400 * 64; off += 64) {
            int r = check_get(c, t, off);

            CHECK(r >= 0);
            hits += r == 1;
        }
    CHECK(hits > 50);   /* what the killed processes left is there, and right */
    shared_cache_detach(c);
    munmap(base, size);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_shared_cache_round_trip);
    TEST_RUN(test_shared_cache_wraps_and_never_returns_stale);
    TEST_RUN(test_shared_cache_full_file_system);
    TEST_RUN(test_shared_cache_erase_table);
    TEST_RUN(test_shared_cache_ring_holds_what_is_live);
    TEST_RUN(test_shared_cache_threads_never_see_a_torn_copy);
    TEST_RUN(test_shared_cache_processes_killed_mid_put);
    return test_summary();
}
