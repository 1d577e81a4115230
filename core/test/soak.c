/*
 * soak.c - the soak (issue 16, item 7; `make soak`, and a short run in
 * `make test`): one database under a steady mixed load for a set time,
 * with memory, open files and disk use sampled as it goes.
 *
 * The load, from one thread against a fixed key space (so that the live
 * data stops growing once every key was written): puts of small values
 * and of values large enough for the value log, some with a time to live
 * (transactions and batches), deletes, point reads and range scans
 * checked against an in-memory model, and now and then a stoat_gc (which
 * flushes and flattens first); the background compactions and automatic
 * value-log GC run as they like. Reads are checked at once: a value must
 * be the one the model holds, an absent key must be absent or deleted or
 * expired. A key whose expiry falls within the read's clock window may be
 * either.
 *
 * Every sample prints a row: elapsed seconds, operations, RSS (KiB), open
 * descriptors (/proc/self/fd), disk use of the directory (KiB, allocated
 * blocks), the live bytes of the model and the value-log garbage
 * (stats). At the end the database is closed, reopened and compared with
 * the model key by key, by point reads and by one full scan.
 *
 * Flatness: the first third of the run is warm-up (the caches, the
 * memtables and the LSM's levels fill). The peak of each curve over the
 * last third must stay within 10 % of its peak over the middle third;
 * descriptors get 2 more (a WAL or value-log file being replaced holds
 * one briefly). Runs shorter than 120 s (the one in `make test`) print
 * the curve and check the content, but give no verdict on growth: their
 * thirds are too short to be past warm-up.
 *
 * STOAT_SOAK_SECONDS sets the duration (default 20), STOAT_SOAK_KEYS the
 * key space (20000), STOAT_SEED the random sequence.
 */
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>

#include "db_util.h"
#include "test.h"

#define SOAK_VALUE_MAX 6000
#define SOAK_SAMPLES_MAX 4096

typedef struct soak_key {
    uint64_t tag;               /* 0: absent (never written or deleted) */
    uint32_t len;
    uint64_t exp_lo, exp_hi;    /* expiry lies in [exp_lo, exp_hi]; 0: none */
} soak_key;

typedef struct soak_sample {
    double t;
    uint64_t ops, rss_kib, fds, disk_kib, live_kib, garbage_kib;
} soak_sample;

typedef struct soak {
    const char *dir;
    stoat_db *db;
    stoat_options opts;
    soak_key *keys;
    int n_keys;
    uint64_t rng, next_tag, ops, reads_checked, scans, expired_seen, gcs;
    char *val, *want;
    soak_sample samples[SOAK_SAMPLES_MAX];
    int n_samples;
} soak;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(soak *s, uint64_t n)
{
    return test_rand(&s->rng) % n;
}

static size_t key_of(int i, char out[16])
{
    return (size_t)snprintf(out, 16, "s%07d", i);
}

/* A value: its tag (8 bytes), then bytes derived from the tag. */
static void value_make(uint64_t tag, size_t len, char *out)
{
    memcpy(out, &tag, 8);
    dbu_value(tag, out + 8, len - 8);
}

static size_t value_len_pick(soak *s)
{
    /* One in four goes to the value log (threshold 1 KiB). */
    return rnd(s, 4) == 0 ? 1100 + rnd(s, SOAK_VALUE_MAX - 1100) : 16 + rnd(s, 400);
}

/* ---- the checks ---- */

/* What the model allows for key k read between clock times t0 and t1:
 * 1 present, 0 absent, -1 either (an expiry inside the window). */
static int model_expect(const soak_key *k, uint64_t t0, uint64_t t1)
{
    if (k->tag == 0)
        return 0;
    if (k->exp_lo == 0 || t1 < k->exp_lo)
        return 1;
    if (t0 >= k->exp_hi)
        return 0;
    return -1;
}

static int value_matches(soak *s, const soak_key *k, const void *v, size_t n)
{
    if (n != k->len)
        return 0;
    value_make(k->tag, k->len, s->want);
    return memcmp(v, s->want, n) == 0;
}

static void check_read(soak *s, int i, int rc, const void *v, size_t n, uint64_t t0, uint64_t t1)
{
    const soak_key *k = &s->keys[i];
    int want = model_expect(k, t0, t1);

    s->reads_checked++;
    if (rc != 0 && rc != STOAT_ENOTFOUND) {
        test_fail(__FILE__, __LINE__, "key %d: read failed: %s: %s", i, stoat_strerror(rc),
                  stoat_errmsg(s->db));
        return;
    }
    if (rc == STOAT_ENOTFOUND) {
        if (want == 1)
            test_fail(__FILE__, __LINE__, "key %d (tag %llu): absent, the model has it", i,
                      (unsigned long long)k->tag);
        if (want == -1 || (want == 0 && k->exp_lo))
            s->expired_seen++;
        return;
    }
    if (want == 0)
        test_fail(__FILE__, __LINE__, "key %d: present (%zu bytes), the model has %s", i, n,
                  k->tag ? "it expired" : "it absent");
    else if (!value_matches(s, k, v, n))
        test_fail(__FILE__, __LINE__, "key %d: wrong value (%zu bytes, want tag %llu, %u bytes)",
                  i, n, (unsigned long long)k->tag, k->len);
}

static void op_get(soak *s)
{
    int i = (int)rnd(s, (uint64_t)s->n_keys);
    char key[16];
    size_t klen = key_of(i, key), n = 0;
    void *v = NULL;
    uint64_t t0 = stoat_clock_ms();
    int rc = stoat_get(s->db, key, klen, &v, &n);

    check_read(s, i, rc, v, n, t0, stoat_clock_ms());
    stoat_free(v);
}

/* Scans [lo, lo + span): every key returned matches the model, and
 * every key the model surely has is returned. */
static void op_scan(soak *s, int lo, int span)
{
    char lk[16], hk[16];
    stoat_iter_options io = {0};
    stoat_iter *it = NULL;
    uint64_t t0 = stoat_clock_ms(), t1;
    int next = lo, hi = lo + span > s->n_keys ? s->n_keys : lo + span;

    io.lower = lk;
    io.lower_len = key_of(lo, lk);
    io.upper = hk;
    io.upper_len = key_of(hi, hk);
    s->scans++;
    if (stoat_iter_open(s->db, &io, &it) != 0) {
        test_fail(__FILE__, __LINE__, "scan: %s", stoat_errmsg(s->db));
        return;
    }
    /* The clock window covers the whole scan: an entry is judged at
     * some moment inside it. */
    for (stoat_iter_seek_first(it); stoat_iter_valid(it) && !test_failed_now; stoat_iter_next(it)) {
        const void *k, *v;
        size_t kl, vl;
        int i;

        REQUIRE_OK(stoat_iter_key(it, &k, &kl));
        REQUIRE(kl == 8 && sscanf((const char *)k + 1, "%7d", &i) == 1 && i >= next && i < hi);
        t1 = stoat_clock_ms();
        for (; next < i; next++)
            if (model_expect(&s->keys[next], t0, t1) == 1)
                test_fail(__FILE__, __LINE__, "scan from %d: key %d missing", lo, next);
        REQUIRE_OK(stoat_iter_value(it, &v, &vl));
        check_read(s, i, 0, v, vl, t0, t1);
        next = i + 1;
    }
    CHECK_RC(stoat_iter_status(it), 0);
    stoat_iter_close(it);
    t1 = stoat_clock_ms();
    for (; next < hi; next++)
        if (model_expect(&s->keys[next], t0, t1) == 1)
            test_fail(__FILE__, __LINE__, "scan from %d: key %d missing at the end", lo, next);
}

/* ---- the writes ---- */

static void model_set(soak *s, int i, uint64_t tag, size_t len, uint64_t ttl, uint64_t t0,
                      uint64_t t1)
{
    soak_key *k = &s->keys[i];

    k->tag = tag;
    k->len = (uint32_t)len;
    k->exp_lo = ttl ? t0 + ttl : 0;
    k->exp_hi = ttl ? t1 + 1 + ttl : 0;
}

static void op_put(soak *s)
{
    int i = (int)rnd(s, (uint64_t)s->n_keys);
    char key[16];
    size_t klen = key_of(i, key), len = value_len_pick(s);
    uint64_t tag = ++s->next_tag, t0 = stoat_clock_ms();

    value_make(tag, len, s->val);
    REQUIRE_OK(stoat_put(s->db, key, klen, s->val, len));
    model_set(s, i, tag, len, 0, t0, stoat_clock_ms());
}

static void op_delete(soak *s)
{
    int i = (int)rnd(s, (uint64_t)s->n_keys);
    char key[16];
    size_t klen = key_of(i, key);

    REQUIRE_OK(stoat_delete(s->db, key, klen));
    s->keys[i].tag = 0;
}

/* A transaction of a few sets, some with a ttl of 0.2 to 5 s. */
static void op_txn(soak *s)
{
    struct { int i; uint64_t tag, ttl; size_t len; } w[4];
    int n = 1 + (int)rnd(s, 4);
    stoat_txn *t = NULL;
    uint64_t t0 = stoat_clock_ms(), t1;
    int rc;

    REQUIRE_OK(stoat_txn_begin(s->db, 0, &t));
    for (int j = 0; j < n; j++) {
        char key[16];
        size_t klen;

        w[j].i = (int)rnd(s, (uint64_t)s->n_keys);
        w[j].tag = ++s->next_tag;
        w[j].len = value_len_pick(s);
        w[j].ttl = rnd(s, 3) == 0 ? 200 + rnd(s, 4800) : 0;
        klen = key_of(w[j].i, key);
        value_make(w[j].tag, w[j].len, s->val);
        REQUIRE_OK(stoat_txn_set_ex(t, key, klen, s->val, w[j].len, w[j].ttl, 0));
    }
    rc = stoat_txn_commit(t);
    t1 = stoat_clock_ms();
    stoat_txn_discard(t);
    REQUIRE_OK(rc);
    for (int j = 0; j < n; j++)    /* in order: a key set twice keeps the last */
        model_set(s, w[j].i, w[j].tag, w[j].len, w[j].ttl, t0, t1);
}

/* A batch of 20 consecutive keys, a quarter of them deletes. */
static void op_batch(soak *s)
{
    int lo = (int)rnd(s, (uint64_t)s->n_keys - 20);
    uint64_t tags[20];
    size_t lens[20];
    stoat_batch *b = NULL;
    uint64_t t0 = stoat_clock_ms(), t1;

    REQUIRE_OK(stoat_batch_new(s->db, &b));
    for (int j = 0; j < 20; j++) {
        char key[16];
        size_t klen = key_of(lo + j, key);

        tags[j] = rnd(s, 4) == 0 ? 0 : ++s->next_tag;
        lens[j] = value_len_pick(s);
        if (tags[j] == 0) {
            REQUIRE_OK(stoat_batch_delete(b, key, klen));
        } else {
            value_make(tags[j], lens[j], s->val);
            REQUIRE_OK(stoat_batch_set_ex(b, key, klen, s->val, lens[j], 0, 0));
        }
    }
    REQUIRE_OK(stoat_batch_commit(b));
    t1 = stoat_clock_ms();
    stoat_batch_free(b);
    for (int j = 0; j < 20; j++) {
        if (tags[j] == 0)
            s->keys[lo + j].tag = 0;
        else
            model_set(s, lo + j, tags[j], lens[j], 0, t0, t1);
    }
}

static void op_one(soak *s)
{
    uint64_t r = rnd(s, 1000);

    if (r < 300)
        op_put(s);
    else if (r < 380)
        op_delete(s);
    else if (r < 480)
        op_txn(s);
    else if (r < 500)
        op_batch(s);
    else if (r < 510)
        op_scan(s, (int)rnd(s, (uint64_t)s->n_keys), 200);
    else
        op_get(s);
    s->ops++;
}

/* ---- sampling ---- */

static uint64_t rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;

    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
}

static uint64_t count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    uint64_t n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;   /* opendir's own */
}

static uint64_t disk_kib(const char *dir)
{
    char path[DBU_PATH_MAX];
    DIR *d = opendir(dir);
    struct dirent *e;
    struct stat st;
    uint64_t bytes = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0)
            bytes += (uint64_t)st.st_blocks * 512;
    }
    closedir(d);
    return bytes / 1024;
}

static uint64_t live_kib(const soak *s)
{
    uint64_t now = stoat_clock_ms(), bytes = 0;

    for (int i = 0; i < s->n_keys; i++)
        if (model_expect(&s->keys[i], now, now) != 0)
            bytes += 8 + s->keys[i].len;
    return bytes / 1024;
}

static void sample(soak *s, double t)
{
    soak_sample *p;
    stoat_stats st;

    if (s->n_samples == SOAK_SAMPLES_MAX)
        return;
    p = &s->samples[s->n_samples++];
    p->t = t;
    p->ops = s->ops;
    p->rss_kib = rss_kib();
    p->fds = count_fds();
    p->disk_kib = disk_kib(s->dir);
    p->live_kib = live_kib(s);
    p->garbage_kib = stoat_stats_get(s->db, &st) == 0 ? st.vlog_garbage_bytes / 1024 : 0;
    printf("%8.0f %10llu %9llu %5llu %10llu %10llu %10llu\n", p->t, (unsigned long long)p->ops,
           (unsigned long long)p->rss_kib, (unsigned long long)p->fds,
           (unsigned long long)p->disk_kib, (unsigned long long)p->live_kib,
           (unsigned long long)p->garbage_kib);
    fflush(stdout);
}

/* The peak of one curve (field at offset off) over samples [from, to). */
static uint64_t peak(const soak *s, size_t off, int from, int to)
{
    uint64_t m = 0;

    for (int i = from; i < to; i++) {
        uint64_t v = *(const uint64_t *)((const char *)&s->samples[i] + off);
        if (v > m)
            m = v;
    }
    return m;
}

static void check_flat(const soak *s, double seconds)
{
    static const struct { const char *name; size_t off; uint64_t slack; } curves[] = {
        {"rss KiB", offsetof(soak_sample, rss_kib), 0},
        {"fds", offsetof(soak_sample, fds), 2},
        {"disk KiB", offsetof(soak_sample, disk_kib), 0},
    };
    int third = 0;

    for (int i = 0; i < s->n_samples; i++)
        if (s->samples[i].t < seconds / 3)
            third = i + 1;
    for (size_t c = 0; c < sizeof(curves) / sizeof(curves[0]); c++) {
        uint64_t mid = peak(s, curves[c].off, third, 2 * third);
        uint64_t last = peak(s, curves[c].off, 2 * third, s->n_samples);
        double growth = mid ? ((double)last - (double)mid) / (double)mid : 0;

        printf("%-8s peak after warm-up %llu, in the last third %llu (%+.1f %%)\n",
               curves[c].name, (unsigned long long)mid, (unsigned long long)last,
               100 * growth);
        if (seconds >= 120 && last > mid + mid / 10 + curves[c].slack)
            test_fail(__FILE__, __LINE__, "%s grew by %.1f %% after warm-up", curves[c].name,
                      100 * growth);
    }
    if (seconds < 120)
        printf("(a run under 120 s gives no verdict on growth)\n");
}

/* ---- the final check ---- */

static void check_all(soak *s)
{
    for (int i = 0; i < s->n_keys && !test_failed_now; i++) {
        char key[16];
        size_t klen = key_of(i, key), n = 0;
        void *v = NULL;
        uint64_t t0 = stoat_clock_ms();
        int rc = stoat_get(s->db, key, klen, &v, &n);

        check_read(s, i, rc, v, n, t0, stoat_clock_ms());
        stoat_free(v);
    }
    op_scan(s, 0, s->n_keys);
}

static void soak_options(stoat_options *o)
{
    stoat_options_init(o);
    o->create_if_missing = 1;
    o->memtable_size = 2 << 20;
    o->cache_size = 8 << 20;
    o->base_level_size = 8 << 20;
    o->table_size = 2 << 20;
    o->value_threshold = 1024;
    o->value_log_file_size = 4 << 20;
    o->auto_gc = 1;
    o->auto_gc_ratio = 0.5;
    o->max_open_files = 100;
}

static void test_soak_flat_and_correct(void)
{
    const char *e = getenv("STOAT_SOAK_SECONDS"), *k = getenv("STOAT_SOAK_KEYS");
    const char *seed = getenv("STOAT_SEED");
    double seconds = e && *e ? atof(e) : 20, start, every, next_sample, next_gc;
    soak *s = calloc(1, sizeof(*s));
    uint64_t reclaimed, gc_total = 0;

    REQUIRE(s != NULL);
    s->dir = test_tmpdir();
    s->n_keys = k && *k ? atoi(k) : 20000;
    REQUIRE(s->n_keys > 100);
    s->rng = seed && *seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
    printf("soak: %.0f s, %d keys, seed %llu (STOAT_SEED)\n", seconds, s->n_keys,
           (unsigned long long)s->rng);
    s->keys = calloc((size_t)s->n_keys, sizeof(*s->keys));
    s->val = malloc(SOAK_VALUE_MAX);
    s->want = malloc(SOAK_VALUE_MAX);
    REQUIRE(s->keys && s->val && s->want);
    soak_options(&s->opts);
    REQUIRE_OK(stoat_open(s->dir, &s->opts, &s->db));

    every = seconds / 40 < 5 ? (seconds < 100 ? seconds / 20 : 5) : seconds / 40;
    printf("%8s %10s %9s %5s %10s %10s %10s\n", "seconds", "ops", "rss_KiB", "fds", "disk_KiB",
           "live_KiB", "garb_KiB");
    start = now_s();
    next_sample = 0;
    next_gc = seconds / 10;
    while (!test_failed_now) {
        double t = now_s() - start;

        if (t >= next_sample) {
            sample(s, t);
            next_sample += every;
        }
        if (t >= seconds)
            break;
        if (t >= next_gc) {
            REQUIRE_OK(stoat_gc(s->db, 0.5, &reclaimed));
            gc_total += reclaimed;
            s->gcs++;
            next_gc += seconds / 10 < 60 ? seconds / 10 : 60;
        }
        for (int i = 0; i < 256 && !test_failed_now; i++)
            op_one(s);
    }
    printf("soak: %llu ops, %llu reads checked, %llu scans, %llu expired or deleted reads, "
           "%llu gc calls (%llu KiB reclaimed)\n",
           (unsigned long long)s->ops, (unsigned long long)s->reads_checked,
           (unsigned long long)s->scans, (unsigned long long)s->expired_seen,
           (unsigned long long)s->gcs, (unsigned long long)(gc_total / 1024));
    check_flat(s, seconds);
    REQUIRE_OK(stoat_close(s->db));
    REQUIRE_OK(stoat_open(s->dir, &s->opts, &s->db));
    check_all(s);
    printf("soak: the reopened database matches the model (%d keys)\n", s->n_keys);
    REQUIRE_OK(stoat_close(s->db));
    free(s->keys);
    free(s->val);
    free(s->want);
    free(s);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_soak_flat_and_correct);
    return test_summary();
}
