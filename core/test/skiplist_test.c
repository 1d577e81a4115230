/*
 * skiplist_test.c - order, navigation, replacement, arena exhaustion and
 * concurrent lock-free readers of the arena skiplist, checked against a
 * sorted array model; inline and out-of-line values; sequential runs that
 * take the splice instead of a search.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "base/ikey.h"
#include "mem/skiplist.h"
#include "test.h"

/* One model entry: an internal key and its latest value. */
typedef struct ent {
    char key[24];
    size_t klen;
    char val[64];
    size_t vlen;
    int seq;    /* insertion order, to keep the latest of duplicates */
} ent;

static slice ent_key(const ent *e) { return slice_make(e->key, e->klen); }
static slice ent_val(const ent *e) { return slice_make(e->val, e->vlen); }

static int ent_cmp(const void *a, const void *b)
{
    const ent *x = a, *y = b;
    int c = ikey_cmp(ent_key(x), ent_key(y));

    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Sorts and keeps only the latest insert of each internal key; returns the count. */
static size_t model_sort(ent *es, size_t n)
{
    size_t out = 0;

    qsort(es, n, sizeof(*es), ent_cmp);
    for (size_t i = 0; i < n; i++) {
        if (out > 0 && ikey_cmp(ent_key(&es[out - 1]), ent_key(&es[i])) == 0)
            es[out - 1] = es[i];
        else
            es[out++] = es[i];
    }
    return out;
}

/* Random user keys over a tiny alphabet, so prefixes ("a" vs "aa") and
 * many versions of one user key are common. */
static void random_value(uint64_t *rs, ent *e, size_t min_len, size_t max_len)
{
    e->vlen = min_len + test_rand(rs) % (max_len - min_len + 1);
    for (size_t i = 0; i < e->vlen; i++)
        e->val[i] = (char)test_rand(rs);
}

static void random_ent(uint64_t *rs, ent *e, int seq)
{
    char ukey[12];
    size_t ulen = test_rand(rs) % 5;
    uint64_t version = test_rand(rs) % 64;

    for (size_t i = 0; i < ulen; i++)
        ukey[i] = (char)('a' + test_rand(rs) % 3);
    e->klen = ikey_encode(e->key, ukey, ulen, version);
    random_value(rs, e, 1, 8);
    e->seq = seq;
}

static int node_is(const skiplist *sl, uint32_t node, const ent *e)
{
    return node != 0 && slice_cmp(skiplist_key(sl, node), ent_key(e)) == 0 &&
           slice_cmp(skiplist_value(sl, node), ent_val(e)) == 0;
}

/* Index of the first model entry >= target (n if none). */
static size_t model_lower(const ent *es, size_t n, slice target)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ikey_cmp(ent_key(&es[mid]), target) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void check_scan(const skiplist *sl, const ent *es, size_t n)
{
    uint32_t node = skiplist_first(sl);
    size_t i;

    CHECK(skiplist_count(sl) == n);
    for (i = 0; i < n && node != 0; i++, node = skiplist_next(sl, node)) {
        skiplist_prefetch(sl, node);   /* a hint: must read only what is there */
        REQUIRE(node_is(sl, node, &es[i]));
    }
    CHECK(i == n && node == 0);
    node = skiplist_last(sl);
    for (i = n; i > 0 && node != 0; i--, node = skiplist_prev(sl, node))
        REQUIRE(node_is(sl, node, &es[i - 1]));
    CHECK(i == 0 && node == 0);
}

static void check_seeks(const skiplist *sl, const ent *es, size_t n, uint64_t *rs)
{
    for (int t = 0; t < 2000; t++) {
        ent target;
        size_t lo;
        uint32_t node;

        random_ent(rs, &target, 0);
        lo = model_lower(es, n, ent_key(&target));
        node = skiplist_seek(sl, ent_key(&target));
        CHECK(lo == n ? node == 0 : node_is(sl, node, &es[lo]));
        node = skiplist_seek_for_prev(sl, ent_key(&target));
        if (lo < n && ikey_cmp(ent_key(&es[lo]), ent_key(&target)) == 0)
            CHECK(node_is(sl, node, &es[lo]));
        else
            CHECK(lo == 0 ? node == 0 : node_is(sl, node, &es[lo - 1]));
        /* find: newest version <= target's version of the same user key */
        node = skiplist_find(sl, ikey_user(ent_key(&target)), ikey_version(ent_key(&target)));
        if (lo < n && slice_cmp(ikey_user(ent_key(&es[lo])), ikey_user(ent_key(&target))) == 0)
            CHECK(node_is(sl, node, &es[lo]));
        else
            CHECK(node == 0);
    }
}

static void test_skiplist_matches_sorted_model(void)
{
    enum { N = 6000 };
    ent *es = calloc(N, sizeof(*es));
    uint64_t rs = 42;
    arena *a = NULL;
    skiplist sl;
    size_t n;
    int added, replaced = 0;

    REQUIRE(es != NULL);
    REQUIRE_OK(arena_new(4 << 20, &a));
    REQUIRE_OK(skiplist_init(&sl, a, 7));
    CHECK(skiplist_first(&sl) == 0 && skiplist_last(&sl) == 0);
    for (int i = 0; i < N; i++) {
        random_ent(&rs, &es[i], i);
        REQUIRE_OK(skiplist_insert(&sl, ent_key(&es[i]), ent_val(&es[i]), 0, &added));
        replaced += !added;
    }
    n = model_sort(es, N);
    CHECK(replaced == (int)(N - n) && replaced > 0);
    check_scan(&sl, es, n);
    check_seeks(&sl, es, n, &rs);
    arena_free(a);
    free(es);
}

static void test_skiplist_orders_prefix_keys_by_user_key_first(void)
{
    char k1[16], k2[16];
    arena *a = NULL;
    skiplist sl;
    uint32_t node;

    REQUIRE_OK(arena_new(4096, &a));
    REQUIRE_OK(skiplist_init(&sl, a, 1));
    /* "aa"@9 sorts after "a"@1 although memcmp of the ikeys says otherwise. */
    REQUIRE_OK(skiplist_insert(&sl, slice_make(k1, ikey_encode(k1, "aa", 2, 9)),
                               slice_make("x", 1), 0, NULL));
    REQUIRE_OK(skiplist_insert(&sl, slice_make(k2, ikey_encode(k2, "a", 1, 1)),
                               slice_make("y", 1), 0, NULL));
    node = skiplist_first(&sl);
    REQUIRE(node != 0);
    CHECK(skiplist_key(&sl, node).len == 9);
    CHECK(skiplist_find(&sl, slice_make("a", 1), 0) == 0);
    CHECK(skiplist_find(&sl, slice_make("a", 1), 1) == node);
    CHECK(skiplist_find(&sl, slice_make("a", 1), UINT64_MAX) == node);
    CHECK(skiplist_find(&sl, slice_make("aa", 2), 8) == 0);
    CHECK(skiplist_find(&sl, slice_make("", 0), 8) == 0);
    CHECK_RC(skiplist_insert(&sl, slice_make("short", 5), slice_make("", 0), 0, NULL), STOAT_EINVAL);
    arena_free(a);
}

/* A stamp travels with its node (after the key, unaligned), a replaced
 * value keeps it, and unstamped nodes read 0. */
static void test_skiplist_stamps_stay_with_their_node(void)
{
    char k[32];
    arena *a = NULL;
    skiplist sl;
    uint32_t node;

    REQUIRE_OK(arena_new(1 << 16, &a));
    REQUIRE_OK(skiplist_init(&sl, a, 1));
    for (int i = 0; i < 40; i++) {
        char u[8];
        int n = snprintf(u, sizeof(u), "k%03d", i);
        /* keys of odd lengths put the stamp at every alignment */
        REQUIRE_OK(skiplist_insert(&sl, slice_make(k, ikey_encode(k, u, (size_t)(n - i % 3), 5)),
                                   slice_make("v", 1), i % 2 ? 0x0102030405060708ull + i : 0,
                                   NULL));
    }
    for (node = skiplist_first(&sl); node != 0; node = skiplist_next(&sl, node)) {
        slice key = skiplist_key(&sl, node);
        int i = atoi(key.data + 1);
        if (key.len - 8 == 4 && i % 3 == 0)
            CHECK(skiplist_stamp(&sl, node) == (i % 2 ? 0x0102030405060708ull + i : 0));
        CHECK(ikey_version(key) == 5);
    }
    node = skiplist_find(&sl, slice_make("k001", 3), 5);
    REQUIRE(node != 0);
    REQUIRE_OK(skiplist_insert(&sl, skiplist_key(&sl, node), slice_make("w", 1), 0, NULL));
    CHECK(skiplist_stamp(&sl, node) == 0x0102030405060709ull);
    CHECK(skiplist_value(&sl, node).data[0] == 'w');
    arena_free(a);
}

/* Fills a small arena with values of min_len..max_len bytes until an
 * insert fails, then checks that the failure changed nothing. */
static void fill_until_full(size_t min_len, size_t max_len)
{
    enum { N = 4000 };
    ent *es = calloc(N, sizeof(*es));
    char big[600] = {0};
    uint64_t rs = 9, used;
    arena *a = NULL;
    skiplist sl;
    size_t n = 0;
    int rc = 0;

    REQUIRE(es != NULL);
    REQUIRE_OK(arena_new(16 << 10, &a));
    REQUIRE_OK(skiplist_init(&sl, a, 3));
    for (int i = 0; i < N; i++) {
        random_ent(&rs, &es[n], i);
        random_value(&rs, &es[n], min_len, max_len);
        used = arena_used(a);
        rc = skiplist_insert(&sl, ent_key(&es[n]), ent_val(&es[n]), 0, NULL);
        if (rc != 0)
            break;
        n++;
    }
    CHECK_RC(rc, STOAT_ENOMEM);
    CHECK(arena_used(a) == used);
    /* Replacing a value that does not fit fails too, and changes nothing. */
    REQUIRE(n > 0);
    CHECK_RC(skiplist_insert(&sl, ent_key(&es[0]), slice_make(big, sizeof(big)), 0, NULL),
             STOAT_ENOMEM);
    CHECK(arena_used(a) == used);
    n = model_sort(es, n);
    check_scan(&sl, es, n);
    check_seeks(&sl, es, n, &rs);
    arena_free(a);
    free(es);
}

static void test_skiplist_full_arena_leaves_list_intact(void)
{
    fill_until_full(1, 8);      /* values inline in their nodes */
    fill_until_full(30, 64);    /* values at the top of the arena */
    fill_until_full(0, 64);
}

/* Ascending runs of keys (the splice's case) broken by random keys,
 * re-inserts of existing keys and runs of versions of one user key, with
 * values inline and out of line, against the model. */
static void test_skiplist_sequential_runs_match_sorted_model(void)
{
    enum { N = 20000 };
    ent *es = calloc(N, sizeof(*es));
    uint64_t rs = 77;
    arena *a = NULL;
    skiplist sl;
    size_t n;
    int i = 0;

    REQUIRE(es != NULL);
    REQUIRE_OK(arena_new(8 << 20, &a));
    REQUIRE_OK(skiplist_init(&sl, a, 5));
    while (i < N) {
        uint64_t start = test_rand(&rs) % 100000, run = 1 + test_rand(&rs) % 300;
        int kind = (int)(test_rand(&rs) % 4);

        for (uint64_t j = 0; j < run && i < N; j++, i++) {
            char ukey[16];
            ent *e = &es[i];

            if (kind == 3 && i > 0) {       /* an earlier key again, new value */
                *e = es[test_rand(&rs) % (uint64_t)i];
            } else if (kind == 2) {         /* versions of one key, newest first */
                snprintf(ukey, sizeof(ukey), "v%06llu", (unsigned long long)start);
                e->klen = ikey_encode(e->key, ukey, 7, 1000000 - j);
            } else {                        /* ascending keys, some of other lengths */
                snprintf(ukey, sizeof(ukey), "k%06llu%s", (unsigned long long)(start + j),
                         kind == 1 && j % 7 == 0 ? "x" : "");
                e->klen = ikey_encode(e->key, ukey, strlen(ukey), 1 + j % 3);
            }
            random_value(&rs, e, 0, 64);
            e->seq = i;
            REQUIRE_OK(skiplist_insert(&sl, ent_key(e), ent_val(e), 0, NULL));
        }
    }
    n = model_sort(es, N);
    check_scan(&sl, es, n);
    for (size_t j = 0; j < n; j += 97)
        CHECK(node_is(&sl, skiplist_seek(&sl, ent_key(&es[j])), &es[j]));
    arena_free(a);
    free(es);
}

static void test_skiplist_tiny_arena_has_no_room_for_head(void)
{
    arena *a = NULL;
    skiplist sl;

    REQUIRE_OK(arena_new(64, &a));
    CHECK_RC(skiplist_init(&sl, a, 1), STOAT_ENOMEM);
    arena_free(a);
}

/* --- one writer, concurrent readers --- */

enum { CONC_N = 200000 };

typedef struct conc {
    skiplist sl;
    _Atomic int published;  /* entries 0..published-1 are in the list */
    _Atomic int done;
    _Atomic int errors;
    uint64_t seed;
} conc;

/* Entry i: user key "k<scrambled i>", version i % 3 + 1; value = 8 bytes
 * derived from the key, so a reader can tell an intact entry. */
static size_t conc_key(char *dst, int i)
{
    char ukey[16];
    uint32_t s = (uint32_t)i * 2654435761u;

    snprintf(ukey, sizeof(ukey), "k%08x", (unsigned)s);
    return ikey_encode(dst, ukey, 9, (uint64_t)(i % 3) + 1);
}

static void conc_value(char *dst, slice key)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < key.len; i++)
        h = (h ^ (unsigned char)key.data[i]) * 1099511628211ull;
    put_fixed64(dst, h);
}

static int conc_intact(const skiplist *sl, uint32_t node)
{
    char want[8];
    slice v = skiplist_value(sl, node);

    conc_value(want, skiplist_key(sl, node));
    return v.len == 8 && memcmp(v.data, want, 8) == 0;
}

static void *conc_writer(void *arg)
{
    conc *c = arg;
    char key[32], val[8];

    for (int i = 0; i < CONC_N; i++) {
        slice k = slice_make(key, conc_key(key, i));
        conc_value(val, k);
        if (skiplist_insert(&c->sl, k, slice_make(val, 8), 0, NULL) != 0)
            atomic_fetch_add(&c->errors, 1);
        atomic_store_explicit(&c->published, i + 1, memory_order_release);
    }
    atomic_store(&c->done, 1);
    return NULL;
}

/* Scans a stretch from a random seek forward (or backward), checking order
 * and integrity, and that a published entry is found. */
static void conc_probe(conc *c, uint64_t *rs)
{
    char key[32];
    int pub = atomic_load_explicit(&c->published, memory_order_acquire);
    int i = pub ? (int)(test_rand(rs) % (uint64_t)pub) : 0;
    slice k = slice_make(key, conc_key(key, i));
    uint32_t node = skiplist_seek(&c->sl, k), next;
    int fwd = (int)(test_rand(rs) & 1);

    if (pub && (node == 0 || ikey_cmp(skiplist_key(&c->sl, node), k) != 0))
        atomic_fetch_add(&c->errors, 1);
    for (int steps = 0; node != 0 && steps < 200; steps++, node = next) {
        next = fwd ? skiplist_next(&c->sl, node) : skiplist_prev(&c->sl, node);
        if (!conc_intact(&c->sl, node))
            atomic_fetch_add(&c->errors, 1);
        if (next != 0) {
            int cmp = ikey_cmp(skiplist_key(&c->sl, node), skiplist_key(&c->sl, next));
            if (fwd ? cmp >= 0 : cmp <= 0)
                atomic_fetch_add(&c->errors, 1);
        }
    }
}

static void *conc_reader(void *arg)
{
    conc *c = arg;
    uint64_t rs = (uint64_t)(uintptr_t)arg ^ c->seed;
    long probes = 0;

    while (!atomic_load(&c->done) || probes < 100) {
        conc_probe(c, &rs);
        probes++;
    }
    return NULL;
}

static void test_skiplist_concurrent_readers_see_intact_order(void)
{
    conc *c = calloc(1, sizeof(*c));
    pthread_t w, r[2];
    arena *a = NULL;
    uint32_t node;
    size_t n = 0;

    REQUIRE(c != NULL);
    REQUIRE_OK(arena_new(32 << 20, &a));
    REQUIRE_OK(skiplist_init(&c->sl, a, 11));
    c->seed = 0x1234;
    for (int i = 0; i < 2; i++)
        REQUIRE(pthread_create(&r[i], NULL, conc_reader, c) == 0);
    REQUIRE(pthread_create(&w, NULL, conc_writer, c) == 0);
    pthread_join(w, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(r[i], NULL);
    CHECK(atomic_load(&c->errors) == 0);
    for (node = skiplist_first(&c->sl); node != 0; node = skiplist_next(&c->sl, node))
        n++;
    CHECK(n == CONC_N && skiplist_count(&c->sl) == CONC_N);
    arena_free(a);
    free(c);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_skiplist_matches_sorted_model);
    TEST_RUN(test_skiplist_orders_prefix_keys_by_user_key_first);
    TEST_RUN(test_skiplist_stamps_stay_with_their_node);
    TEST_RUN(test_skiplist_full_arena_leaves_list_intact);
    TEST_RUN(test_skiplist_sequential_runs_match_sorted_model);
    TEST_RUN(test_skiplist_tiny_arena_has_no_room_for_head);
    TEST_RUN(test_skiplist_concurrent_readers_see_intact_order);
    return test_summary();
}
