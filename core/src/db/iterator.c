/*
 * iterator.c - the public iterator: a stoat_iter over the database, or
 * over a transaction's writes merged ahead of it (the source that wins
 * ties), filtered by mvcc/visible_iter.h.
 *
 * An iterator pins a read view (read.h) for its whole life and registers
 * its read version as a snapshot, so that compaction keeps what it may
 * read. For a transaction with conflict detection it records the hull of
 * keys it covered and hands it to its sink (the transaction) when it
 * closes. One thread at a time uses an iterator.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/iterator.h"
#include "db/read.h"
#include "db/snapshots.h"
#include "db/state.h"
#include "base/ikey.h"
#include "base/merge_iter.h"
#include "base/perturb.h"
#include "base/status.h"
#include "lsm/level_iter.h"
#include "mvcc/visible_iter.h"

/*
 * The hull of keys an iterator has covered, for a transaction's range set:
 * a seek covers its target, every position its key, and running off an
 * end covers everything up to that bound. lo/hi are inclusive.
 */
typedef struct iter_hull {
    buf lo, hi;
    int have, lo_inf, hi_inf;
} iter_hull;

struct stoat_iter {
    stoat_db *db;
    db_iterator_sink sink;          /* told at close (its transaction); closed NULL: none */
    int track_range;            /* record the covered range for the sink */
    visible_iter *it;
    lsm_view *v;
    db_snapshot snap;
    iter_hull hull;
    buf lower_end, upper_end;   /* the bounds as hull ends */
    vlog_value vbuf;            /* the current separated value, once read; pins the
                                 * mapped value-log file of the last value read until
                                 * a value from another file, or the close (keep_pin) */
    slice vval;                 /* ... the value itself */
    int vbuf_valid;             /* vval is the current entry's value */
    /* Value prefetch (issue 15): once value reads wait for the disk
     * (several recent ones slower than ITER_COLD_NS) and a forward walk
     * has read ITER_PREFETCH_START separated values, a scout iterator
     * walks ahead of it and asks the kernel for the records of the values
     * coming next, up to half as many as were read since the last seek (at
     * most ITER_PREFETCH_MAX). Values in memory never pay for a scout: it
     * doubles the walk's work (measured: seek + 50 nexts at 1 KiB 40%
     * slower with it, readseq 10%). */
    visible_iter *scout;
    lsm_view *scout_v;          /* the scout's level iterators borrow its tables */
    int scout_ahead;            /* entries the scout is ahead; < 0: re-seek it */
    int walked;                 /* separated values read since the last seek */
    int slow;                   /* decaying count of slow timed value reads (x8) */
    unsigned vreads;            /* separated values read: one in ITER_TIME_EVERY is timed */
    int lower_inf, upper_inf;
    iter **srcs;                /* borrowed: the merge's children, for describing */
    uint64_t *src_ids;          /* memtable or table id per source; level in src_level */
    int *src_level;             /* -1 memtable, -2 pending, else level */
    size_t n_srcs;
};

static void hull_extend(iter_hull *h, slice k, int inf_lo, int inf_hi)
{
    if (inf_lo) {
        h->lo_inf = 1;
    } else if (!h->lo_inf && (!h->have || slice_cmp(k, slice_make(h->lo.data, h->lo.len)) < 0)) {
        buf_reset(&h->lo);
        buf_append(&h->lo, k.data, k.len);
    }
    if (inf_hi) {
        h->hi_inf = 1;
    } else if (!h->hi_inf && (!h->have || slice_cmp(k, slice_make(h->hi.data, h->hi.len)) > 0)) {
        buf_reset(&h->hi);
        buf_append(&h->hi, k.data, k.len);
    }
    h->have = 1;
}

/* After a move: the key reached, or the end run into. */
static void hull_after_move(stoat_iter *si, int forward)
{
    if (!si->track_range)
        return;
    if (visible_iter_valid(si->it))
        hull_extend(&si->hull, visible_iter_key(si->it), 0, 0);
    else if (forward)
        hull_extend(&si->hull, slice_make(si->upper_end.data, si->upper_end.len), 0, si->upper_inf);
    else
        hull_extend(&si->hull, slice_make(si->lower_end.data, si->lower_end.len), si->lower_inf, 0);
}

/* The bounds as inclusive hull ends: lower or prefix below; above, upper
 * or the prefix's successor (inclusive: a little wider, never narrower). */
static int iter_bound_ends(stoat_iter *si, const stoat_iter_options *o)
{
    int rc = 0;

    si->lower_inf = si->upper_inf = 1;
    if (o->lower_len || o->lower) {
        si->lower_inf = 0;
        rc = buf_append(&si->lower_end, o->lower, o->lower_len);
    } else if (o->prefix_len) {
        si->lower_inf = 0;
        rc = buf_append(&si->lower_end, o->prefix, o->prefix_len);
    }
    if (rc == 0 && o->upper) {
        si->upper_inf = 0;
        rc = buf_append(&si->upper_end, o->upper, o->upper_len);
    } else if (rc == 0 && o->prefix_len) {
        size_t n = o->prefix_len;
        const unsigned char *p = o->prefix;
        while (n > 0 && p[n - 1] == 0xff)
            n--;
        if (n > 0) {
            si->upper_inf = 0;
            if ((rc = buf_append(&si->upper_end, p, n)) == 0)
                si->upper_end.data[n - 1]++;
        }
    }
    return rc;
}

/* The internal iterators of a read view: memtables, L0 tables, levels. */
static int db_children(stoat_db *db, read_view *rv, iter *pending, iter ***out, size_t *n_out)
{
    const lsm_view *v = rv->v;
    size_t cap = 1 + rv->n_mems + v->n[0] + (size_t)v->num_levels, n = 0;
    iter **children = calloc(cap, sizeof(*children));
    int rc = 0;

    if (children == NULL) {
        iter_free(pending);
        return status_err(STOAT_ENOMEM, "out of memory opening an iterator");
    }
    if (pending != NULL)
        children[n++] = pending;    /* first: a transaction's writes win ties */
    for (size_t i = 0; i < rv->n_mems && rc == 0; i++)
        if ((children[n++] = memtable_iter_at(rv->mems[i], rv->read_version)) == NULL)
            rc = STOAT_ENOMEM;
    for (size_t i = 0; i < v->n[0] && rc == 0; i++) {
        sst_reader *r;
        if ((rc = table_cache_get(db->tc, v->tables[0][i]->id, &r)) != 0)
            break;
        if ((children[n++] = sst_reader_iter(r)) == NULL)
            rc = STOAT_ENOMEM;
        sst_reader_unref(r);
    }
    for (int l = 1; l < v->num_levels && rc == 0; l++)
        if (v->n[l] > 0 && (children[n++] = level_iter_new(v->tables[l], v->n[l], db->tc)) == NULL)
            rc = STOAT_ENOMEM;
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            iter_free(children[i]);
        free(children);
        return rc == STOAT_ENOMEM ? status_err(rc, "out of memory opening an iterator") : rc;
    }
    *out = children;
    *n_out = n;
    return 0;
}

/* Remembers which source each child of the merge reads, for
 * db_iterator_describe (best effort: without memory, nothing is noted). */
static void iterator_note_sources(stoat_iter *si, const read_view *rv, int has_pending,
                                 iter **children, size_t n)
{
    const lsm_view *v = rv->v;
    size_t k = 0;

    si->srcs = malloc(n * sizeof(*si->srcs));
    si->src_ids = malloc(n * sizeof(*si->src_ids));
    si->src_level = malloc(n * sizeof(*si->src_level));
    if (si->srcs == NULL || si->src_ids == NULL || si->src_level == NULL)
        return;
    if (has_pending) {
        si->src_ids[k] = 0;
        si->src_level[k++] = -2;
    }
    for (size_t i = 0; i < rv->n_mems; i++) {
        si->src_ids[k] = memtable_id(rv->mems[i]);
        si->src_level[k++] = -1;
    }
    for (size_t i = 0; i < v->n[0]; i++) {
        si->src_ids[k] = v->tables[0][i]->id;
        si->src_level[k++] = 0;
    }
    for (int l = 1; l < v->num_levels; l++) {
        if (v->n[l] > 0) {
            si->src_ids[k] = v->n[l];
            si->src_level[k++] = l;
        }
    }
    for (size_t i = 0; i < n; i++)
        si->srcs[i] = children[i];
    si->n_srcs = k == n ? n : 0;
}

static void describe_bytes(FILE *f, slice s)
{
    for (size_t i = 0; i < s.len; i++)
        fprintf(f, "%02x", (unsigned char)s.data[i]);
}

static void describe_ikey(FILE *f, slice ik)
{
    if (ik.len < IKEY_SUFFIX_LEN) {
        fprintf(f, "<short %zu>", ik.len);
        return;
    }
    describe_bytes(f, ikey_user(ik));
    fprintf(f, "@%llu", (unsigned long long)ikey_version(ik));
}

void db_iterator_describe(stoat_iter *si, FILE *f)
{
    const lsm_view *v = si->v;

    fprintf(f, "iterator: read version %llu, %zu sources\n",
            (unsigned long long)si->snap.version, si->n_srcs);
    for (size_t i = 0; i < si->n_srcs; i++) {
        iter *c = si->srcs[i];
        if (si->src_level[i] == -1)
            fprintf(f, "  src %zu memtable %llu: ", i, (unsigned long long)si->src_ids[i]);
        else if (si->src_level[i] == 0)
            fprintf(f, "  src %zu L0 table %llu: ", i, (unsigned long long)si->src_ids[i]);
        else if (si->src_level[i] > 0)
            fprintf(f, "  src %zu L%d (%llu tables): ", i, si->src_level[i],
                    (unsigned long long)si->src_ids[i]);
        else
            fprintf(f, "  src %zu pending: ", i);
        if (iter_valid(c))
            describe_ikey(f, iter_key(c));
        else
            fprintf(f, "invalid, status %d", iter_status(c));
        fprintf(f, "\n");
    }
    for (int l = 0; l < v->num_levels; l++) {
        for (size_t i = 0; i < v->n[l]; i++) {
            const table_meta *t = v->tables[l][i];
            fprintf(f, "  L%d table %llu [", l, (unsigned long long)t->id);
            describe_ikey(f, slice_make(t->smallest.data, t->smallest.len));
            fprintf(f, " .. ");
            describe_ikey(f, slice_make(t->largest.data, t->largest.len));
            fprintf(f, "] versions %llu..%llu\n", (unsigned long long)t->min_version,
                    (unsigned long long)t->max_version);
        }
    }
}

static void iter_scout_free(stoat_iter *si)
{
    if (si->scout != NULL)
        visible_iter_free(si->scout);
    if (si->scout_v != NULL)
        lsm_view_unref(si->scout_v);
    si->scout = NULL;
    si->scout_v = NULL;
}

static void stoat_iter_release(stoat_iter *si)
{
    stoat_db *db = si->db;
    iter_hull *h = &si->hull;

    if (si->sink.closed)
        si->sink.closed(si->sink.arg, si, si->track_range && h->have,
                        h->lo_inf ? slice_make(NULL, 0) : slice_make(h->lo.data, h->lo.len),
                        h->hi_inf ? slice_make(NULL, 0) : slice_make(h->hi.data, h->hi.len));
    if (si->it)
        visible_iter_free(si->it);
    iter_scout_free(si);
    db_snapshot_remove(db, &si->snap);
    pthread_mutex_lock(&db->mu);
    db->open_iters--;
    pthread_mutex_unlock(&db->mu);
    if (si->v)
        lsm_view_unref(si->v);
    buf_free(&h->lo);
    buf_free(&h->hi);
    buf_free(&si->lower_end);
    buf_free(&si->upper_end);
    db_vlog_value_release(db, &si->vbuf, 1);
    free(si->srcs);
    free(si->src_ids);
    free(si->src_level);
    free(si);
}

void db_iterator_detach(stoat_iter *si)
{
    si->sink.closed = NULL;
    si->track_range = 0;
}

int db_iterator_open(stoat_db *db, const db_iterator_sink *sink, int track_range,
                     uint64_t read_version, iter *pending, const stoat_iter_options *o,
                     stoat_iter **out)
{
    visible_iter_options dio = {0};
    stoat_iter *si;
    read_view rv;
    iter **children = NULL, *merged;
    size_t n = 0;
    int rc;

    if ((si = calloc(1, sizeof(*si))) == NULL) {
        iter_free(pending);
        return status_err(STOAT_ENOMEM, "out of memory opening an iterator");
    }
    si->db = db;
    si->vbuf.keep_pin = 1;      /* the walk's next value is likely in the same file */
    /* The snapshot is registered with the pin, under one lock: a value-log
     * file the view needs could otherwise be reaped in between (the scan
     * race test met it: "value points into a missing value-log file"). */
    if ((rc = read_view_pin(db, &rv, read_version, &si->snap)) != 0) {
        iter_free(pending);
        free(si);
        return rc;
    }
    PERTURB("iter_open");
    pthread_mutex_lock(&db->mu);
    db->open_iters++;
    pthread_mutex_unlock(&db->mu);
    si->v = rv.v;   /* the level iterators borrow its table lists */
    rc = db_children(db, &rv, pending, &children, &n);
    if (rc == 0)
        iterator_note_sources(si, &rv, pending != NULL, children, n);
    read_view_unpin_mems(&rv);  /* the memtable iterators hold their own */
    if (rc == 0 && (rc = iter_bound_ends(si, o)) != 0)
        rc = status_err(rc, "out of memory opening an iterator");
    if (rc != 0)
        goto fail;
    merged = merge_iter_new(children, n);
    free(children);
    children = NULL;
    if (merged == NULL) {
        rc = status_err(STOAT_ENOMEM, "out of memory opening an iterator");
        goto fail;
    }
    dio.prefix = slice_make(o->prefix, o->prefix_len);
    dio.lower = slice_make(o->lower, o->lower_len);
    dio.upper = slice_make(o->upper, o->upper_len);
    dio.read_version = rv.read_version;
    dio.now = db_clock_ms(0);
    dio.all_versions = o->all_versions;
    if ((rc = visible_iter_new(merged, &dio, &si->it)) != 0)
        goto fail;
    if (sink != NULL)
        si->sink = *sink;
    si->track_range = track_range;
    *out = si;
    return 0;
fail:
    for (size_t i = 0; i < n && children; i++)
        iter_free(children[i]);
    free(children);
    stoat_iter_release(si);
    return rc;
}

int stoat_iter_open(stoat_db *db, const stoat_iter_options *o, stoat_iter **out)
{
    stoat_iter_options none = {0};
    int rc;

    if (out == NULL)
        return status_err(STOAT_EINVAL, "stoat_iter_open: out is NULL");
    *out = NULL;
    if ((rc = db_check_handle(db)) != 0)
        return rc;
    if (o == NULL)
        o = &none;
    if ((rc = db_check_iter_options(o)) != 0)
        return rc;
    return db_iterator_open(db, NULL, 0, DB_READ_LATEST, NULL, o, out);
}

int db_check_iter_options(const stoat_iter_options *o)
{
    if ((o->prefix_len && !o->prefix) || (o->lower_len && !o->lower) || (o->upper_len && !o->upper))
        return status_err(STOAT_EINVAL, "iterator options: a bound has a length but no bytes");
    return 0;
}

static int iter_check(stoat_iter *si)
{
    if (si == NULL)
        return status_err(STOAT_EINVAL, "iterator is NULL");
    return db_check_handle(si->db);
}

#define ITER_PREFETCH_START 8
#define ITER_PREFETCH_MAX 32
#define ITER_COLD_NS 50000      /* a value read this slow went to the disk */
#define ITER_COLD_SLOW 20       /* slow: about 3 of the last 8 timed reads (one preemption
                                 * is not) */
#define ITER_TIME_EVERY 4       /* two clock reads cost 3 % of a warm 1 KiB readseq; a walk
                                 * that goes to the disk is told after a dozen reads anyway */

#ifdef STOAT_TESTING
int db_iter_prefetch_always;
#endif

/* Keeps the prefetch state right across a move: a next takes one step of
 * the scout's lead, any other move starts the count again. */
static void iter_prefetch_moved(stoat_iter *si, int is_next)
{
    if (is_next) {
        si->scout_ahead--;
        return;
    }
    si->walked = 0;
    si->scout_ahead = -1;
}

/* A second iterator over the same snapshot (memtables and tables as they
 * are now: it only gives hints), without bounds. */
static int iter_scout_open(stoat_iter *si)
{
    visible_iter_options dio = {0};
    read_view rv;
    iter **children = NULL, *merged;
    size_t n = 0;
    int rc;

    if ((rc = read_view_pin(si->db, &rv, si->snap.version, NULL)) != 0)
        return rc;
    rc = db_children(si->db, &rv, NULL, &children, &n);
    read_view_unpin_mems(&rv);
    if (rc != 0) {
        lsm_view_unref(rv.v);
        return rc;
    }
    merged = merge_iter_new(children, n);
    if (merged == NULL) {
        for (size_t i = 0; i < n; i++)
            iter_free(children[i]);
        free(children);
        lsm_view_unref(rv.v);
        return STOAT_ENOMEM;
    }
    free(children);
    dio.read_version = rv.read_version;
    if ((rc = visible_iter_new(merged, &dio, &si->scout)) != 0) {
        lsm_view_unref(rv.v);
        return rc;
    }
    visible_iter_set_look_ahead(si->scout, 0);
    si->scout_v = rv.v;
    return 0;
}

/* After a separated value was read at the current position of a forward
 * walk: moves the scout on and asks for the values it passes. */
static void iter_prefetch(stoat_iter *si)
{
    int depth, always = 0;

#ifdef STOAT_TESTING
    always = db_iter_prefetch_always;
#endif
    if (++si->walked < (always ? 2 : ITER_PREFETCH_START) || si->db->vlog == NULL ||
        (si->slow < ITER_COLD_SLOW && !always))
        return;
    if (si->scout == NULL && iter_scout_open(si) != 0) {
        status_clear();     /* hints only: the walk goes on without */
        si->walked = INT_MIN;
        return;
    }
    if (si->scout_ahead < 0) {
        visible_iter_seek(si->scout, visible_iter_key(si->it));
        si->scout_ahead = 0;
    }
    depth = si->walked / 2 < ITER_PREFETCH_MAX ? si->walked / 2 : ITER_PREFETCH_MAX;
    while (si->scout_ahead < depth && visible_iter_valid(si->scout)) {
        const vstruct *vs;
        visible_iter_next(si->scout);
        si->scout_ahead++;
        if (!visible_iter_valid(si->scout))
            break;
        vs = visible_iter_vstruct(si->scout);
        if ((vs->meta & VMETA_VPTR) && vs->value.len >= VPTR_LEN) {
            vptr p;
            vptr_decode(vs->value.data, &p);
            vlog_prefetch(si->db->vlog, &p, 1);
        }
    }
}

/* After a next: the value the following next will yield, when the walk
 * has found it already (a look-ahead, visible_iter_ahead) and it is in
 * the value log, is asked for now, so that its cache misses overlap the
 * reading of the current value. The walk looks ahead only from an entry
 * whose value was read (ITER_MOVE): a keys-only walk pays nothing. */
static void iter_prefetch_ahead(stoat_iter *si)
{
    const vstruct *vs = visible_iter_ahead(si->it);
    vptr p;

    if (vs == NULL || !(vs->meta & VMETA_VPTR) || si->db->vlog == NULL)
        return;
    vptr_decode(vs->value.data, &p);
    vlog_value_prefetch(si->db->vlog, &si->vbuf, &p);
}

/* Runs a move, then records what it covered. `start` is where a seek
 * begins covering (forward from a seek target, or back from it). */
#define ITER_MOVE(si, call, forward, start, is_next)                     \
    do {                                                                 \
        int rc_;                                                         \
        if ((rc_ = iter_check(si)) != 0)                                 \
            return rc_;                                                  \
        if (is_next)                                                     \
            visible_iter_set_look_ahead((si)->it, (si)->vbuf_valid);     \
        (si)->vbuf_valid = 0;                                            \
        iter_prefetch_moved(si, is_next);                                \
        call;                                                            \
        if (is_next)                                                     \
            iter_prefetch_ahead(si);                                     \
        if ((si)->track_range && (start) != NULL)                        \
            hull_extend(&(si)->hull, *(const slice *)(start), 0, 0);     \
        hull_after_move(si, forward);                                    \
        return visible_iter_status((si)->it);                                 \
    } while (0)

int stoat_iter_seek_first(stoat_iter *si)
{
    if (si && si->track_range)
        hull_extend(&si->hull, slice_make(si->lower_end.data, si->lower_end.len), si->lower_inf, 0);
    ITER_MOVE(si, visible_iter_seek_first(si->it), 1, (const slice *)NULL, 0);
}

int stoat_iter_seek_last(stoat_iter *si)
{
    if (si && si->track_range)
        hull_extend(&si->hull, slice_make(si->upper_end.data, si->upper_end.len), 0, si->upper_inf);
    ITER_MOVE(si, visible_iter_seek_last(si->it), 0, (const slice *)NULL, 0);
}

int stoat_iter_next(stoat_iter *si) { ITER_MOVE(si, visible_iter_next(si->it), 1, (const slice *)NULL, 1); }
int stoat_iter_prev(stoat_iter *si) { ITER_MOVE(si, visible_iter_prev(si->it), 0, (const slice *)NULL, 0); }

int stoat_iter_seek(stoat_iter *si, const void *key, size_t klen)
{
    slice target = slice_make(key, klen);

    if (key == NULL && klen > 0)
        return status_err(STOAT_EINVAL, "stoat_iter_seek: key is NULL");
    ITER_MOVE(si, visible_iter_seek(si->it, target), 1, &target, 0);
}

int stoat_iter_seek_for_prev(stoat_iter *si, const void *key, size_t klen)
{
    slice target = slice_make(key, klen);

    if (key == NULL && klen > 0)
        return status_err(STOAT_EINVAL, "stoat_iter_seek_for_prev: key is NULL");
    ITER_MOVE(si, visible_iter_seek_for_prev(si->it, target), 0, &target, 0);
}

int stoat_iter_valid(const stoat_iter *si)
{
    return si != NULL && si->it != NULL && visible_iter_valid(si->it);
}

int stoat_iter_status(const stoat_iter *si)
{
    if (si == NULL)
        return STOAT_EINVAL;
    return visible_iter_status(si->it);
}

int stoat_iter_key(stoat_iter *si, const void **key, size_t *klen)
{
    slice k;
    int rc;

    if ((rc = iter_check(si)) != 0)
        return rc;
    if (key == NULL || klen == NULL)
        return status_err(STOAT_EINVAL, "stoat_iter_key: NULL out-parameter");
    if (!visible_iter_valid(si->it))
        return status_err(STOAT_EINVAL, "stoat_iter_key: iterator is not positioned");
    k = visible_iter_key(si->it);
    *key = k.data;
    *klen = k.len;
    return 0;
}

int stoat_iter_value(stoat_iter *si, const void **val, size_t *vlen)
{
    const vstruct *vs;
    vstruct sep;
    int rc;

    if ((rc = iter_check(si)) != 0)
        return rc;
    if (val == NULL || vlen == NULL)
        return status_err(STOAT_EINVAL, "stoat_iter_value: NULL out-parameter");
    if (!visible_iter_valid(si->it))
        return status_err(STOAT_EINVAL, "stoat_iter_value: iterator is not positioned");
    vs = visible_iter_vstruct(si->it);
    if (vs->meta & VMETA_VPTR) {
        /* Read lazily, once per position: a keys-only walk never pays. */
        if (!si->vbuf_valid) {
            struct timespec t0, t1;
            int timed = si->vreads++ % ITER_TIME_EVERY == 0;
            sep = *vs;
            if (timed)
                clock_gettime(CLOCK_MONOTONIC, &t0);
            rc = db_read_vlog(si->db, visible_iter_key(si->it), visible_iter_version(si->it), &sep,
                              &si->vbuf);
            if (timed) {
                clock_gettime(CLOCK_MONOTONIC, &t1);
                si->slow -= si->slow / 8;
                if ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) >=
                    ITER_COLD_NS)
                    si->slow += 8;
            }
            /* Its snapshot keeps every file its newest versions need;
             * an older version's may have been collected (absent). */
            if (rc == STOAT_ENOTFOUND &&
                db_version_superseded(si->db, visible_iter_key(si->it),
                                      visible_iter_version(si->it)))
                return status_err(STOAT_ENOTFOUND, "%s: the value of this older version was "
                                  "collected by value-log GC", si->db->dir);
            if (rc == STOAT_ENOTFOUND)
                rc = status_err(STOAT_ECORRUPT, "%s: value points into a missing value-log "
                                "file", si->db->dir);
            if (rc != 0)
                return rc;
            si->vval = sep.value;
            si->vbuf_valid = 1;
            iter_prefetch(si);
        }
        *val = si->vval.data ? si->vval.data : "";
        *vlen = si->vval.len;
        return 0;
    }
    *val = vs->value.data;
    *vlen = vs->value.len;
    return 0;
}

int stoat_iter_meta(stoat_iter *si, uint64_t *version, uint64_t *expires_at, uint8_t *user_meta,
                    int *deleted)
{
    const vstruct *vs;
    int rc;

    if ((rc = iter_check(si)) != 0)
        return rc;
    if (!visible_iter_valid(si->it))
        return status_err(STOAT_EINVAL, "stoat_iter_meta: iterator is not positioned");
    vs = visible_iter_vstruct(si->it);
    if (version)
        *version = visible_iter_version(si->it);
    if (expires_at)
        *expires_at = vs->expires_at;
    if (user_meta)
        *user_meta = vs->user_meta;
    if (deleted)
        *deleted = (vs->meta & VMETA_DELETE) != 0;
    return 0;
}

void stoat_iter_close(stoat_iter *si)
{
    if (si == NULL || db_check_handle(si->db) != 0)
        return;
    stoat_iter_release(si);
}
