/*
 * oracle.c - read sets, range sets and the list of recent commits.
 *
 * Each recorded commit keeps its written keys twice: as sorted
 * fingerprints (matched against read sets by a merge walk) and as the keys
 * themselves (tested against iterated ranges). The list is ordered by
 * version, so pruning drops from the front.
 */
#include "mvcc/oracle.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/checksum.h"
#include "base/vec.h"
#include "stoat.h"

struct oracle_commit {
    uint64_t version;
    uint64_t *fps;              /* sorted */
    slice *keys;                /* into `bytes` */
    size_t n;
    char *bytes;
    oracle_commit *next;
};

uint64_t oracle_fingerprint(slice key)
{
    return checksum64(key.data, key.len);
}

int txn_reads_add_key(txn_reads *r, slice key)
{
    if (VEC_ROOM(r->fps, r->n_fps, r->cap_fps, 16) != 0)
        return STOAT_ENOMEM;
    r->fps[r->n_fps++] = oracle_fingerprint(key);
    return 0;
}

int txn_reads_add_range(txn_reads *r, slice lo, slice hi)
{
    struct txn_range *t;
    int rc;

    if (VEC_ROOM(r->ranges, r->n_ranges, r->cap_ranges, 4) != 0)
        return STOAT_ENOMEM;
    t = &r->ranges[r->n_ranges];
    *t = (struct txn_range){.lo_inf = lo.data == NULL, .hi_inf = hi.data == NULL};
    if ((rc = buf_append(&t->lo, lo.data, lo.len)) != 0 ||
        (rc = buf_append(&t->hi, hi.data, hi.len)) != 0) {
        buf_free(&t->lo);
        buf_free(&t->hi);
        return rc;
    }
    r->n_ranges++;
    return 0;
}

void txn_reads_free(txn_reads *r)
{
    free(r->fps);
    for (size_t i = 0; i < r->n_ranges; i++) {
        buf_free(&r->ranges[i].lo);
        buf_free(&r->ranges[i].hi);
    }
    free(r->ranges);
    *r = (txn_reads){0};
}

static int cmp_fp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int fps_intersect(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    size_t i = 0, j = 0;

    while (i < na && j < nb) {
        if (a[i] == b[j])
            return 1;
        if (a[i] < b[j])
            i++;
        else
            j++;
    }
    return 0;
}

static int range_holds(const struct txn_range *t, slice key)
{
    if (!t->lo_inf && slice_cmp(key, slice_make(t->lo.data, t->lo.len)) < 0)
        return 0;
    if (!t->hi_inf && slice_cmp(key, slice_make(t->hi.data, t->hi.len)) > 0)
        return 0;
    return 1;
}

int oracle_conflicts(const oracle *o, uint64_t read_version, txn_reads *r)
{
    if (r->n_fps == 0 && r->n_ranges == 0)
        return 0;
    if (r->n_fps > 1)
        qsort(r->fps, r->n_fps, sizeof(*r->fps), cmp_fp);
    for (const oracle_commit *c = o->head; c != NULL; c = c->next) {
        if (c->version <= read_version)
            continue;
        if (fps_intersect(r->fps, r->n_fps, c->fps, c->n))
            return 1;
        for (size_t i = 0; i < r->n_ranges; i++)
            for (size_t k = 0; k < c->n; k++)
                if (range_holds(&r->ranges[i], c->keys[k]))
                    return 1;
    }
    return 0;
}

/* The first of n elements of `stride` bytes, sorted by the fingerprint
 * each begins with, whose fingerprint is not below fp; n if none. */
static size_t fp_lower_bound(const void *base, size_t n, size_t stride, uint64_t fp)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t at;

        memcpy(&at, (const char *)base + mid * stride, sizeof(at));
        if (at < fp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int fps_contain(const uint64_t *fps, size_t n, uint64_t fp)
{
    size_t i = fp_lower_bound(fps, n, sizeof(*fps), fp);

    return i < n && fps[i] == fp;
}

int oracle_written_after(const oracle *o, uint64_t version, slice key)
{
    uint64_t fp = oracle_fingerprint(key);

    for (const oracle_commit *c = o->head; c != NULL; c = c->next) {
        if (c->version <= version || !fps_contain(c->fps, c->n, fp))
            continue;
        for (size_t i = 0; i < c->n; i++)
            if (slice_cmp(c->keys[i], key) == 0)
                return 1;
    }
    return 0;
}

/* A written key and its fingerprint (oracle_written_after_each); the
 * fingerprint first, as fp_lower_bound reads it. */
typedef struct fp_key {
    uint64_t fp;
    slice key;
} fp_key;

_Static_assert(offsetof(fp_key, fp) == 0, "fp_lower_bound reads the fingerprint first");

static int cmp_fp_key(const void *a, const void *b)
{
    uint64_t x = ((const fp_key *)a)->fp, y = ((const fp_key *)b)->fp;
    return x < y ? -1 : x > y;
}

/* Is key (fingerprint fp) among w[0..n), sorted by fingerprint? */
static int fp_keys_contain(const fp_key *w, size_t n, uint64_t fp, slice key)
{
    for (size_t i = fp_lower_bound(w, n, sizeof(*w), fp); i < n && w[i].fp == fp; i++)
        if (slice_cmp(w[i].key, key) == 0)
            return 1;
    return 0;
}

int oracle_written_after_each(const oracle *o, uint64_t version, const slice *keys, size_t n,
                              uint8_t *written)
{
    fp_key *w = NULL;
    size_t n_w = 0, cap = 0;

    for (const oracle_commit *c = o->head; c != NULL; c = c->next) {
        if (c->version <= version)
            continue;
        for (size_t k = 0; k < c->n; k++) {
            if (VEC_ROOM(w, n_w, cap, 256) != 0) {
                free(w);
                return STOAT_ENOMEM;
            }
            w[n_w++] = (fp_key){oracle_fingerprint(c->keys[k]), c->keys[k]};
        }
    }
    if (n_w > 1)
        qsort(w, n_w, sizeof(*w), cmp_fp_key);
    for (size_t i = 0; i < n; i++)
        written[i] = (uint8_t)fp_keys_contain(w, n_w, oracle_fingerprint(keys[i]), keys[i]);
    free(w);
    return 0;
}

int oracle_record(oracle *o, uint64_t version, const slice *keys, size_t n)
{
    oracle_commit *c = calloc(1, sizeof(*c));
    size_t total = 0, off = 0;

    if (c == NULL)
        return STOAT_ENOMEM;
    for (size_t i = 0; i < n; i++)
        total += keys[i].len;
    c->version = version;
    c->n = n;
    c->fps = malloc((n ? n : 1) * sizeof(*c->fps));
    c->keys = malloc((n ? n : 1) * sizeof(*c->keys));
    c->bytes = malloc(total ? total : 1);
    if (c->fps == NULL || c->keys == NULL || c->bytes == NULL) {
        free(c->fps);
        free(c->keys);
        free(c->bytes);
        free(c);
        return STOAT_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (keys[i].len)
            memcpy(c->bytes + off, keys[i].data, keys[i].len);
        c->keys[i] = slice_make(c->bytes + off, keys[i].len);
        c->fps[i] = oracle_fingerprint(keys[i]);
        off += keys[i].len;
    }
    if (n > 1)
        qsort(c->fps, n, sizeof(*c->fps), cmp_fp);
    if (o->tail)
        o->tail->next = c;
    else
        o->head = c;
    o->tail = c;
    o->n++;
    return 0;
}

static void commit_free(oracle_commit *c)
{
    free(c->fps);
    free(c->keys);
    free(c->bytes);
    free(c);
}

void oracle_prune(oracle *o, uint64_t oldest_read_version)
{
    while (o->head != NULL && o->head->version <= oldest_read_version) {
        oracle_commit *c = o->head;
        o->head = c->next;
        commit_free(c);
        o->n--;
    }
    if (o->head == NULL)
        o->tail = NULL;
}

void oracle_free(oracle *o)
{
    oracle_prune(o, UINT64_MAX);
}
