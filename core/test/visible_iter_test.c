/*
 * visible_iter_test.c - the user-facing iterator against a model.
 *
 * A random history (puts, deletes, TTLs at many versions of few user keys,
 * spread over several merged children, some versions present in two
 * children with different contents: the lower child index is the newer
 * source and must win) is read at a random version, within random bounds,
 * and every move of the iterator is checked against the list a simple
 * model computes. Some values are value pointers, which a forward walk
 * looks one entry ahead of (visible_iter_ahead): what it sees ahead is
 * checked too, and in half the rounds the children lend entries that
 * every move overwrites, as table blocks do.
 */
#include "mvcc/visible_iter.h"
#include "base/merge_iter.h"
#include "base/status.h"
#include "test.h"
#include "vec_iter.h"

#define MAX_CHILDREN 4
#define MAX_ENTRIES 512

/* ---- the model --------------------------------------------------------- */

typedef struct hent {
    char ik[16];
    size_t iklen;
    char enc[32];
    size_t enclen;
    int child;
} hent;

typedef struct hcase {
    hent h[MAX_ENTRIES];
    size_t nh;
    vec_entry e[MAX_CHILDREN][MAX_ENTRIES];
    size_t n[MAX_CHILDREN];
    int nchildren;
    visible_iter_options o;
    char bounds[3][4];
    const hent *ref[MAX_ENTRIES];   /* what the iterator must yield, in order */
    size_t nref;
} hcase;

static slice hkey(const hent *h)
{
    return slice_make(h->ik, h->iklen);
}

static size_t rand_ukey(uint64_t *rs, char *dst)
{
    static const char alpha[] = {'a', 'b', (char)0xfe, (char)0xff};
    size_t len = 1 + test_rand(rs) % 3;

    for (size_t i = 0; i < len; i++)
        dst[i] = alpha[test_rand(rs) % 4];
    return len;
}

static void hcase_add(hcase *hc, slice ukey, uint64_t version, const vstruct *vs, int child)
{
    hent *h = &hc->h[hc->nh++];

    h->iklen = ikey_encode(h->ik, ukey.data, ukey.len, version);
    h->enclen = vstruct_encode(h->enc, vs);
    h->child = child;
    hc->e[child][hc->n[child]].key = hkey(h);
    hc->e[child][hc->n[child]].value = slice_make(h->enc, h->enclen);
    hc->n[child]++;
}

/* One random version of ukey: a put, a tombstone or a put with a TTL. */
static void hcase_add_random(hcase *hc, slice ukey, uint64_t version, int child, uint64_t *rs)
{
    char val[24];
    vstruct vs = {0};
    uint64_t r = test_rand(rs) % 10;

    vs.meta = r < 3 ? VMETA_DELETE : r == 4 || r == 6 || r == 9 ? VMETA_VPTR : 0;
    vs.expires_at = r >= 8 ? 1 + test_rand(rs) % 10 : 0;
    vs.value = slice_make(val, vs.meta & VMETA_DELETE ? 0 : (size_t)snprintf(val, sizeof(val),
                                  "v%llu.%d", (unsigned long long)version, child));
    if (vs.meta & VMETA_VPTR) {
        memset(val + vs.value.len, '.', VPTR_LEN - vs.value.len);
        vs.value.len = VPTR_LEN;    /* a pointer's length; these bytes name the version */
    }
    hcase_add(hc, ukey, version, &vs, child);
}

static void hcase_history(hcase *hc, uint64_t *rs)
{
    size_t nkeys = 5 + test_rand(rs) % 80;

    hc->nh = 0;
    hc->nchildren = 1 + (int)(test_rand(rs) % MAX_CHILDREN);
    memset(hc->n, 0, sizeof(hc->n));
    for (size_t k = 0; k < nkeys && hc->nh + 16 < MAX_ENTRIES; k++) {
        char u[4];
        slice uk = slice_make(u, rand_ukey(rs, u));
        uint64_t v = 0;
        int dup = 0;
        for (size_t i = 0; i < hc->nh; i++)
            dup |= slice_cmp(ikey_user(hkey(&hc->h[i])), uk) == 0;
        if (dup)
            continue;
        for (uint64_t nv = 1 + test_rand(rs) % 5; nv > 0; nv--) {
            int child = (int)(test_rand(rs) % (uint64_t)hc->nchildren);
            v += 1 + test_rand(rs) % 4;
            hcase_add_random(hc, uk, v, child, rs);
            if (hc->nchildren > 1 && test_rand(rs) % 8 == 0)
                hcase_add_random(hc, uk, v, (child + 1) % hc->nchildren, rs);
        }
    }
    for (int c = 0; c < hc->nchildren; c++)
        vec_entries_sort(hc->e[c], hc->n[c]);
}

static void hcase_bounds(hcase *hc, uint64_t *rs)
{
    visible_iter_options *o = &hc->o;

    memset(o, 0, sizeof(*o));
    o->read_version = test_rand(rs) % 4 ? 1 + test_rand(rs) % 20 : UINT64_MAX - 1;
    o->now = test_rand(rs) % 2 ? test_rand(rs) % 12 : 0;
    o->all_versions = test_rand(rs) % 4 == 0;
    if (test_rand(rs) % 3 == 0) {
        rand_ukey(rs, hc->bounds[0]);
        o->prefix = slice_make(hc->bounds[0], 1 + (test_rand(rs) % 4 == 0));
    }
    if (test_rand(rs) % 4 == 0)
        o->lower = slice_make(hc->bounds[1], rand_ukey(rs, hc->bounds[1]));
    if (test_rand(rs) % 4 == 0)
        o->upper = slice_make(hc->bounds[2], rand_ukey(rs, hc->bounds[2]));
}

static int in_bounds(const visible_iter_options *o, slice uk)
{
    if (!slice_starts_with(uk, o->prefix))
        return 0;
    if (o->lower.data && slice_cmp(uk, o->lower) < 0)
        return 0;
    return !(o->upper.data && slice_cmp(uk, o->upper) >= 0);
}

static int hent_cmp(const void *a, const void *b)
{
    const hent *x = *(const hent *const *)a, *y = *(const hent *const *)b;
    int c = ikey_cmp(hkey(x), hkey(y));

    return c ? c : x->child - y->child;
}

static int model_hidden(const visible_iter_options *o, const hent *h)
{
    vstruct vs = {0};

    vstruct_decode(slice_make(h->enc, h->enclen), &vs);
    if (vs.meta & VMETA_DELETE)
        return 1;
    return vs.expires_at != 0 && o->now != 0 && vs.expires_at <= o->now;
}

/* The model: newest source per (key, version); then either every visible
 * version, or per user key its newest visible one unless that is hidden. */
static void hcase_model(hcase *hc)
{
    const hent *all[MAX_ENTRIES], *decided = NULL;
    const visible_iter_options *o = &hc->o;
    size_t n = 0;

    for (size_t i = 0; i < hc->nh; i++)
        all[n++] = &hc->h[i];
    qsort(all, n, sizeof(all[0]), hent_cmp);
    hc->nref = 0;
    for (size_t i = 0; i < n; i++) {
        slice uk = ikey_user(hkey(all[i]));
        if (i > 0 && ikey_cmp(hkey(all[i - 1]), hkey(all[i])) == 0)
            continue;   /* an older source's copy */
        if (ikey_version(hkey(all[i])) > o->read_version || !in_bounds(o, uk))
            continue;
        if (!o->all_versions) {
            if (decided && slice_cmp(ikey_user(hkey(decided)), uk) == 0)
                continue;
            decided = all[i];
            if (model_hidden(o, all[i]))
                continue;
        }
        hc->ref[hc->nref++] = all[i];
    }
}

/* ---- checking ---------------------------------------------------------- */

static iter *hcase_iter(hcase *hc, int copies)
{
    iter *kids[MAX_CHILDREN];

    for (int c = 0; c < hc->nchildren; c++) {
        kids[c] = vec_iter_new(hc->e[c], hc->n[c]);
        if (copies)
            vec_iter_lend_copies(kids[c]);
    }
    return merge_iter_new(kids, (size_t)hc->nchildren);
}

static int vs_is(const vstruct *vs, const hent *h)
{
    vstruct want = {0};

    vstruct_decode(slice_make(h->enc, h->enclen), &want);
    return vs->meta == want.meta && vs->expires_at == want.expires_at &&
           slice_cmp(vs->value, want.value) == 0;
}

static long seen_ahead;     /* positions with an entry seen ahead */

/* The iterator is at ref[pos] (or off the end), and what it saw ahead, if
 * anything, is ref[pos + 1]. */
static int at_ref(const visible_iter *it, const hcase *hc, long pos)
{
    const vstruct *ahead;
    slice ik;

    if (pos < 0 || (size_t)pos >= hc->nref)
        return !visible_iter_valid(it) && visible_iter_status(it) == 0;
    if (!visible_iter_valid(it))
        return 0;
    ik = hkey(hc->ref[pos]);
    if ((ahead = visible_iter_ahead(it)) != NULL &&
        ((size_t)pos + 1 >= hc->nref || !vs_is(ahead, hc->ref[pos + 1])))
        return 0;
    seen_ahead += ahead != NULL;
    return slice_cmp(visible_iter_key(it), ikey_user(ik)) == 0 &&
           visible_iter_version(it) == ikey_version(ik) &&
           vs_is(visible_iter_vstruct(it), hc->ref[pos]);
}

static long ref_seek(const hcase *hc, slice uk)
{
    size_t i = 0;

    while (i < hc->nref && slice_cmp(ikey_user(hkey(hc->ref[i])), uk) < 0)
        i++;
    return (long)i;
}

static long ref_seek_for_prev(const hcase *hc, slice uk)
{
    long i = (long)hc->nref - 1;

    while (i >= 0 && slice_cmp(ikey_user(hkey(hc->ref[i])), uk) > 0)
        i--;
    return i;
}

static long random_move(visible_iter *it, const hcase *hc, long pos, uint64_t *rs)
{
    char u[4];
    slice uk;
    int valid = pos >= 0 && (size_t)pos < hc->nref;

    switch (test_rand(rs) % 10) {
    case 0:
        visible_iter_seek_first(it);
        return 0;
    case 1:
        visible_iter_seek_last(it);
        return (long)hc->nref - 1;
    case 2:
        uk = slice_make(u, rand_ukey(rs, u));
        visible_iter_seek(it, uk);
        return ref_seek(hc, uk);
    case 3:
        uk = slice_make(u, rand_ukey(rs, u));
        visible_iter_seek_for_prev(it, uk);
        return ref_seek_for_prev(hc, uk);
    case 4: case 5: case 6:
        if (!valid)
            return pos;
        visible_iter_next(it);
        return pos + 1;
    default:
        if (!valid)
            return pos;
        visible_iter_prev(it);
        return pos - 1;
    }
}

/* Full scans both ways, then a random walk; returns the moves made. */
static long hcase_check(hcase *hc, uint64_t *rs, int round)
{
    visible_iter *it;
    long pos, moves = 0;

    REQUIRE_OK(visible_iter_new(hcase_iter(hc, round % 2), &hc->o, &it));
    visible_iter_seek_first(it);
    for (pos = 0; pos < (long)hc->nref && at_ref(it, hc, pos); pos++, moves++)
        visible_iter_next(it);
    if (!at_ref(it, hc, pos))
        test_fail(__FILE__, __LINE__, "round %d: forward scan off at %ld of %zu", round, pos,
                  hc->nref);
    visible_iter_seek_last(it);
    for (pos = (long)hc->nref - 1; pos >= 0 && at_ref(it, hc, pos); pos--, moves++)
        visible_iter_prev(it);
    if (!at_ref(it, hc, pos))
        test_fail(__FILE__, __LINE__, "round %d: backward scan off at %ld", round, pos);
    for (int s = 0; s < 400; s++, moves++) {
        pos = random_move(it, hc, pos, rs);
        if (!at_ref(it, hc, pos)) {
            test_fail(__FILE__, __LINE__, "round %d step %d: off reference pos %ld of %zu",
                      round, s, pos, hc->nref);
            break;
        }
    }
    visible_iter_free(it);
    return moves;
}

static void test_visible_iter_matches_model(void)
{
    static hcase hc;
    uint64_t rs = 1234;
    long moves = 0;

    for (int round = 0; round < 300 && !test_failed_now; round++) {
        hcase_history(&hc, &rs);
        hcase_bounds(&hc, &rs);
        hcase_model(&hc);
        moves += hcase_check(&hc, &rs, round);
    }
    CHECK(moves >= 100000);
    CHECK(seen_ahead >= moves / 50);   /* about 1 in 20: the look-ahead is exercised */
}

/* ---- hand-written cases ------------------------------------------------ */

static void put(hcase *hc, const char *uk, uint64_t version, const char *val, uint64_t exp,
                int child)
{
    vstruct vs = {0};

    vs.expires_at = exp;
    if (val)
        vs.value = slice_make(val, strlen(val));
    else
        vs.meta = VMETA_DELETE;
    hcase_add(hc, slice_make(uk, strlen(uk)), version, &vs, child);
}

static visible_iter *open_case(hcase *hc, int nchildren, const visible_iter_options *o)
{
    visible_iter *it;

    hc->nchildren = nchildren;
    for (int c = 0; c < nchildren; c++)
        vec_entries_sort(hc->e[c], hc->n[c]);
    REQUIRE_OK(visible_iter_new(hcase_iter(hc, 1), o, &it));
    return it;
}

static int key_is(const visible_iter *it, const char *uk, const char *val)
{
    const vstruct *vs;

    if (!visible_iter_valid(it))
        return 0;
    vs = visible_iter_vstruct(it);
    return slice_cmp(visible_iter_key(it), slice_make(uk, strlen(uk))) == 0 &&
           (val == NULL || slice_cmp(vs->value, slice_make(val, strlen(val))) == 0);
}

static void test_visible_iter_versions_tombstones_ttl(void)
{
    static hcase hc;
    visible_iter_options o = {0};
    visible_iter *it;

    put(&hc, "a", 1, "a1", 0, 0);
    put(&hc, "a", 5, "a5", 0, 1);
    put(&hc, "b", 2, "b2", 0, 0);
    put(&hc, "b", 3, NULL, 0, 1);           /* deleted at 3 */
    put(&hc, "c", 2, "c2", 0, 0);
    put(&hc, "c", 4, "c4", 100, 0);         /* expires at 100 */
    o.read_version = 4;
    o.now = 100;
    it = open_case(&hc, 2, &o);
    visible_iter_seek_first(it);
    CHECK(key_is(it, "a", "a1"));           /* a5 is above read_version */
    visible_iter_next(it);
    CHECK(!visible_iter_valid(it));              /* b deleted, c's newest expired */
    visible_iter_seek_last(it);
    CHECK(key_is(it, "a", "a1"));
    visible_iter_free(it);

    o.now = 99;
    it = open_case(&hc, 2, &o);
    visible_iter_seek_last(it);
    CHECK(key_is(it, "c", "c4") && visible_iter_version(it) == 4);
    visible_iter_prev(it);
    CHECK(key_is(it, "a", "a1"));
    visible_iter_free(it);

    o.read_version = 2;
    o.all_versions = 1;
    it = open_case(&hc, 2, &o);
    visible_iter_seek_first(it);
    CHECK(key_is(it, "a", "a1"));
    visible_iter_next(it);
    CHECK(key_is(it, "b", "b2"));
    visible_iter_next(it);
    CHECK(key_is(it, "c", "c2"));
    visible_iter_free(it);

    o.read_version = 3;                     /* the tombstone shows */
    it = open_case(&hc, 2, &o);
    visible_iter_seek(it, slice_make("b", 1));
    CHECK(key_is(it, "b", NULL) && (visible_iter_vstruct(it)->meta & VMETA_DELETE));
    visible_iter_next(it);
    CHECK(key_is(it, "b", "b2"));
    visible_iter_prev(it);
    CHECK(key_is(it, "b", NULL) && visible_iter_version(it) == 3);
    visible_iter_free(it);
}

static void test_visible_iter_prefix_of_ff_bytes(void)
{
    static hcase hc;
    static const char *keys[] = {"\xfe", "\xff", "\xff\x01", "\xff\xff", "\xff\xff\x00", "\xff\xff\xff"};
    visible_iter_options o = {0};
    visible_iter *it;

    for (int i = 0; i < 6; i++)
        put(&hc, keys[i], 1, keys[i], 0, 0);
    o.read_version = 1;
    o.prefix = slice_make("\xff\xff", 2);
    it = open_case(&hc, 1, &o);
    visible_iter_seek_last(it);
    CHECK(key_is(it, "\xff\xff\xff", NULL));
    visible_iter_seek_first(it);
    CHECK(key_is(it, "\xff\xff", NULL));
    visible_iter_seek_for_prev(it, slice_make("\xff\x02", 2));
    CHECK(!visible_iter_valid(it));
    visible_iter_seek(it, slice_make("\xff\xff\x00\x00", 4));
    CHECK(key_is(it, "\xff\xff\xff", NULL));
    visible_iter_free(it);

    o.prefix = slice_make("\xfe", 1);       /* successor is "\xff" */
    it = open_case(&hc, 1, &o);
    visible_iter_seek_last(it);
    CHECK(key_is(it, "\xfe", NULL));
    visible_iter_prev(it);
    CHECK(!visible_iter_valid(it) && visible_iter_status(it) == 0);
    visible_iter_free(it);
}

/* Leaving the bounds stops the scan, and seeks clamp into them: a damaged
 * entry outside them is never read. */
static void test_visible_iter_stops_at_bounds(void)
{
    static hcase hc;
    visible_iter_options o = {0};
    char uk[2] = {0};
    visible_iter *it;
    iter *kid;

    for (int i = 0; i < 26; i++) {
        uk[0] = (char)('a' + i);
        put(&hc, uk, 1, "v", 0, 0);
    }
    o.read_version = 1;
    o.lower = slice_make("d", 1);
    o.upper = slice_make("g", 1);
    for (int pass = 0; pass < 2; pass++) {
        REQUIRE((kid = vec_iter_new(hc.e[0], hc.n[0])) != NULL);
        vec_iter_fail_at(kid, pass == 0 ? 8 : 1, STOAT_EIO);     /* "i", then "b" */
        REQUIRE_OK(visible_iter_new(kid, &o, &it));
        visible_iter_seek_first(it);
        CHECK(key_is(it, "d", NULL));
        for (int i = 0; i < 2; i++)
            visible_iter_next(it);
        CHECK(key_is(it, "f", NULL));
        visible_iter_next(it);
        CHECK(!visible_iter_valid(it) && visible_iter_status(it) == 0);
        visible_iter_seek_for_prev(it, slice_make("zz", 2));
        CHECK(key_is(it, "f", NULL));
        visible_iter_seek(it, slice_make("a", 1));
        CHECK(key_is(it, "d", NULL));
        visible_iter_prev(it);
        CHECK(!visible_iter_valid(it) && visible_iter_status(it) == 0);
        visible_iter_seek(it, slice_make("zz", 2));
        CHECK(!visible_iter_valid(it) && visible_iter_status(it) == 0);
        visible_iter_seek_for_prev(it, slice_make("a", 1));
        CHECK(!visible_iter_valid(it) && visible_iter_status(it) == 0);
        visible_iter_free(it);
    }
}

static void test_visible_iter_reports_errors(void)
{
    static hcase hc;
    visible_iter_options o = {0};
    visible_iter *it;
    iter *kid;

    put(&hc, "a", 1, "v", 0, 0);
    put(&hc, "b", 1, "v", 0, 0);
    put(&hc, "c", 1, "v", 0, 0);
    hc.e[0][1].value = slice_make("x", 1);      /* too short for a vstruct */
    o.read_version = 1;
    it = open_case(&hc, 1, &o);
    visible_iter_seek_first(it);
    CHECK(key_is(it, "a", NULL));
    visible_iter_next(it);
    CHECK(!visible_iter_valid(it));
    CHECK(visible_iter_status(it) == STOAT_ECORRUPT);
    CHECK(strstr(stoat_errmsg(NULL), "malformed") != NULL);
    visible_iter_seek_first(it);                     /* errors are sticky */
    CHECK(!visible_iter_valid(it) && visible_iter_status(it) == STOAT_ECORRUPT);
    visible_iter_free(it);

    hc.e[0][1].value = slice_make(hc.h[1].enc, hc.h[1].enclen);
    REQUIRE((kid = vec_iter_new(hc.e[0], hc.n[0])) != NULL);
    vec_iter_fail_at(kid, 0, STOAT_EIO);
    REQUIRE_OK(visible_iter_new(kid, &o, &it));
    visible_iter_seek_last(it);
    CHECK(key_is(it, "c", NULL));
    visible_iter_prev(it);                           /* reaches "a", which fails */
    CHECK(!visible_iter_valid(it) && visible_iter_status(it) == STOAT_EIO);
    visible_iter_free(it);

    hc.e[0][2].key = slice_make("c", 1);        /* shorter than a version */
    REQUIRE((kid = vec_iter_new(hc.e[0], hc.n[0])) != NULL);
    REQUIRE_OK(visible_iter_new(kid, &o, &it));
    visible_iter_seek_last(it);                      /* unbounded: no comparison */
    CHECK(!visible_iter_valid(it) && visible_iter_status(it) == STOAT_ECORRUPT);
    visible_iter_free(it);
}

/* Seek keys and bounds longer than the iterator's inline scratch. */
static void test_visible_iter_long_keys(void)
{
    static char ik[4][320], enc[4][8];
    static char uk[4][300];
    static const size_t len[4] = {40, 70, 150, 290};
    vec_entry e[4];
    visible_iter_options o = {0};
    visible_iter *it;
    iter *kid;
    vstruct vs = {0};

    vs.value = slice_make("v", 1);
    for (int i = 0; i < 4; i++) { /* "kkk...k" of growing length: sorted */
        memset(uk[i], 'k', len[i]);
        e[i].key = slice_make(ik[i], ikey_encode(ik[i], uk[i], len[i], 1));
        e[i].value = slice_make(enc[i], vstruct_encode(enc[i], &vs));
    }
    o.read_version = 1;
    o.upper = slice_make(uk[3], 200); /* between keys 2 and 3 */
    REQUIRE((kid = vec_iter_new(e, 4)) != NULL);
    REQUIRE_OK(visible_iter_new(kid, &o, &it));
    for (int i = 0; i < 3; i++) {
        visible_iter_seek(it, slice_make(uk[i], len[i]));
        CHECK(visible_iter_valid(it) && visible_iter_key(it).len == len[i]);
        visible_iter_seek_for_prev(it, slice_make(uk[i], len[i] + 1));
        CHECK(visible_iter_valid(it) && visible_iter_key(it).len == len[i]);
    }
    visible_iter_seek(it, slice_make(uk[3], 100));
    CHECK(visible_iter_valid(it) && visible_iter_key(it).len == 150);
    visible_iter_seek_last(it);
    CHECK(visible_iter_valid(it) && visible_iter_key(it).len == 150);
    visible_iter_free(it);
}

static void test_visible_iter_empty_range(void)
{
    static hcase hc;
    visible_iter_options o = {0};
    visible_iter *it;

    put(&hc, "m", 1, "v", 0, 0);
    o.read_version = 1;
    o.lower = slice_make("n", 1);
    o.upper = slice_make("c", 1);               /* lower > upper: nothing */
    it = open_case(&hc, 1, &o);
    visible_iter_seek_first(it);
    CHECK(!visible_iter_valid(it));
    visible_iter_seek_last(it);
    CHECK(!visible_iter_valid(it));
    visible_iter_seek_for_prev(it, slice_make("m", 1));
    CHECK(!visible_iter_valid(it) && visible_iter_status(it) == 0);
    visible_iter_free(it);
}

/* A value pointer's 16 bytes, naming uk@version ("ptr a@1........."). */
static void put_ptr(hcase *hc, const char *uk, uint64_t version, uint64_t exp)
{
    static char vals[16][VPTR_LEN + 1];
    static int next;
    char *v = vals[next++ % 16];
    vstruct vs = {0};

    memset(v, '.', VPTR_LEN);
    memcpy(v, "ptr ", 4);
    memcpy(v + 4, uk, strlen(uk));
    v[4 + strlen(uk)] = (char)('0' + version);
    vs.meta = VMETA_VPTR;
    vs.expires_at = exp;
    vs.value = slice_make(v, VPTR_LEN);
    hcase_add(hc, slice_make(uk, strlen(uk)), version, &vs, 0);
}

static int ptr_is(const vstruct *vs, const char *uk, uint64_t version)
{
    char want[VPTR_LEN];

    memset(want, '.', VPTR_LEN);
    memcpy(want, "ptr ", 4);
    memcpy(want + 4, uk, strlen(uk));
    want[4 + strlen(uk)] = (char)('0' + version);
    return vs != NULL && (vs->meta & VMETA_VPTR) && vs->value.len == VPTR_LEN &&
           memcmp(vs->value.data, want, VPTR_LEN) == 0;
}

/* A next onto a value pointer finds the following entry at once: deletes,
 * expired entries and newer versions between them are passed over, the
 * entry yielded keeps its own value, a prev from there goes back right,
 * and the end (here a prefix's) is found ahead without ending early. */
static void test_visible_iter_looks_ahead(void)
{
    static hcase hc;
    visible_iter_options o = {0};
    visible_iter *it;

    put_ptr(&hc, "ka", 1, 0);
    put(&hc, "kb", 2, NULL, 0, 0);      /* deletes kb@1 */
    put_ptr(&hc, "kb", 1, 0);
    put_ptr(&hc, "kc", 1, 5);           /* expired at 5 */
    put_ptr(&hc, "kd", 3, 0);           /* invisible at 2 */
    put_ptr(&hc, "kd", 2, 0);
    put(&hc, "ke", 1, "inline", 0, 0);
    put_ptr(&hc, "kf", 1, 0);
    put_ptr(&hc, "l", 1, 0);            /* past the prefix */
    o.read_version = 2;
    o.now = 100;
    o.prefix = slice_make("k", 1);
    it = open_case(&hc, 1, &o);
    visible_iter_seek_first(it);
    CHECK(key_is(it, "ka", NULL) && ptr_is(visible_iter_vstruct(it), "ka", 1));
    CHECK(visible_iter_ahead(it) == NULL);          /* seeks do not look ahead */
    visible_iter_next(it);
    CHECK(key_is(it, "kd", NULL) && ptr_is(visible_iter_vstruct(it), "kd", 2));
    CHECK(visible_iter_version(it) == 2);
    CHECK(visible_iter_ahead(it) != NULL && key_is(it, "kd", NULL));
    CHECK(slice_cmp(visible_iter_ahead(it)->value, slice_make("inline", 6)) == 0);
    visible_iter_prev(it);
    CHECK(key_is(it, "ka", NULL) && ptr_is(visible_iter_vstruct(it), "ka", 1));
    visible_iter_next(it);
    CHECK(key_is(it, "kd", NULL) && ptr_is(visible_iter_vstruct(it), "kd", 2));
    visible_iter_next(it);
    CHECK(key_is(it, "ke", "inline") && visible_iter_ahead(it) == NULL);
    visible_iter_next(it);
    CHECK(key_is(it, "kf", NULL) && ptr_is(visible_iter_vstruct(it), "kf", 1));
    CHECK(visible_iter_ahead(it) == NULL);          /* "l" is past the prefix */
    visible_iter_prev(it);
    CHECK(key_is(it, "ke", "inline"));
    visible_iter_next(it);
    CHECK(key_is(it, "kf", NULL));
    visible_iter_next(it);
    CHECK(!visible_iter_valid(it) && visible_iter_status(it) == 0);
    visible_iter_free(it);
}

/* An error met ahead (a failing source, a malformed entry) leaves the
 * entry yielded intact and is told by the next move, message and all. */
static void test_visible_iter_error_ahead(void)
{
    static hcase hc;
    visible_iter_options o = {0};
    visible_iter *it;
    iter *kid;

    put_ptr(&hc, "a", 1, 0);
    put_ptr(&hc, "b", 1, 0);
    put_ptr(&hc, "c", 1, 0);
    o.read_version = 1;
    REQUIRE((kid = vec_iter_new(hc.e[0], 3)) != NULL);
    vec_iter_lend_copies(kid);
    vec_iter_fail_at(kid, 2, STOAT_EIO);
    REQUIRE_OK(visible_iter_new(kid, &o, &it));
    visible_iter_seek_first(it);
    visible_iter_next(it);
    CHECK(key_is(it, "b", NULL) && ptr_is(visible_iter_vstruct(it), "b", 1));
    CHECK(visible_iter_status(it) == 0 && visible_iter_ahead(it) == NULL);
    visible_iter_next(it);
    CHECK(!visible_iter_valid(it) && visible_iter_status(it) == STOAT_EIO);
    visible_iter_free(it);

    hc.e[0][2].value = slice_make("x", 1);          /* too short for a vstruct */
    it = open_case(&hc, 1, &o);
    visible_iter_seek_first(it);
    visible_iter_next(it);
    CHECK(key_is(it, "b", NULL) && ptr_is(visible_iter_vstruct(it), "b", 1));
    status_clear();                                 /* the caller's other calls */
    visible_iter_next(it);
    CHECK(!visible_iter_valid(it) && visible_iter_status(it) == STOAT_ECORRUPT);
    CHECK(strstr(stoat_errmsg(NULL), "malformed") != NULL);
    visible_iter_seek_first(it);                     /* sticky, as every error */
    CHECK(!visible_iter_valid(it));
    visible_iter_free(it);

    it = open_case(&hc, 1, &o);                      /* a prev tells it too */
    visible_iter_seek_first(it);
    visible_iter_next(it);
    CHECK(key_is(it, "b", NULL));
    visible_iter_prev(it);
    CHECK(!visible_iter_valid(it) && visible_iter_status(it) == STOAT_ECORRUPT);
    visible_iter_free(it);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_visible_iter_looks_ahead);
    TEST_RUN(test_visible_iter_error_ahead);
    TEST_RUN(test_visible_iter_versions_tombstones_ttl);
    TEST_RUN(test_visible_iter_prefix_of_ff_bytes);
    TEST_RUN(test_visible_iter_stops_at_bounds);
    TEST_RUN(test_visible_iter_reports_errors);
    TEST_RUN(test_visible_iter_empty_range);
    TEST_RUN(test_visible_iter_long_keys);
    TEST_RUN(test_visible_iter_matches_model);
    return test_summary();
}
