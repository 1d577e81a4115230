/*
 * compaction_pick.c - which compaction runs next: level targets, scores,
 * and the choice of input tables (compaction.h, first half).
 *
 * Level targets are dynamic (RocksDB's "dynamic level bytes", as Badger
 * does it): the last level's target is its size, at least base_level_size;
 * each level above gets 1/multiplier of the one below, floored at
 * base_level_size. The base level, where L0 goes, is the deepest level
 * whose unfloored target fits in base_level_size, clamped to >= 1 and to
 * at most the shallowest non-empty level of L1+: L0 never compacts below
 * a non-empty level (Badger #2143), so every level above the base level
 * is empty.
 *
 * Picking, most urgent first:
 *   1. levels scoring >= 1, highest score first (L0 wins ties); L0's score
 *      is its table count / l0_compaction_trigger, Li's is its bytes not
 *      already compacting / target. The last level is never scored (its
 *      target is its size). L0 takes all of L0 plus the overlapping
 *      base-level tables, and only while no L0 table is compacting: two
 *      concurrent L0 compactions could write overlapping ranges into the
 *      base level. Li takes the table whose overlap with Li+1 is smallest
 *      relative to its size (ties: oldest data), plus that overlap.
 *   2. otherwise, tables of L1+ with many tombstones, so that deletes free
 *      space: such a table moves down a level, or, in the deepest
 *      non-empty level, is compacted into itself (when every version in it
 *      is at or below discard_version, so the rewrite drops them).
 *   3. otherwise, tables of L1+ holding entries kept only for a reader
 *      that has gone since (num_stale, stale_version <= discard_version),
 *      so that their value-log garbage gets counted: moved down a level,
 *      or compacted into itself in the deepest non-empty level. The same
 *      in a manual compaction once all data is in one level.
 * Space amplification: the non-empty level right above the deepest one
 * has its target capped at PICK_SPACE_AMP_PERCENT of the deepest level's
 * bytes (step 1 then moves it down), so that a floored target does not let
 * overwritten versions sit above the data they replace at up to 2x.
 *
 * Two picks repair the shape reads pay for; the database asks for them
 * when no level needs work (flush_compact.c): compaction_pick_seek for a
 * table point reads kept probing in vain (LevelDB's seek compaction), and
 * compaction_pick_idle once commits have stopped (L0 into the base level,
 * then the levels above the deepest down, while they hold at least
 * PICK_IDLE_MIN_PERCENT of it).
 *
 * A candidate touching a table that is already compacting is skipped; a
 * concurrently running compaction's output range then never meets ours
 * (each level's inputs are a contiguous run of its tables).
 *
 * Threads: the caller holds the database mutex (it guards `compacting`);
 * a compaction holds a reference on each input until compaction_release.
 */
#include "base/ikey.h"
#include "lsm/compaction.h"

#include <stdlib.h>

#include "base/status.h"

/* A table qualifies for a tombstone compaction with at least this many
 * entries, this share of them tombstones. */
#define PICK_TOMBSTONE_MIN_ENTRIES 1000
#define PICK_TOMBSTONE_RATIO 0.3

/* Space amplification while writing: the level right above the deepest one
 * may hold at most this share (percent) of the deepest level's bytes, so
 * that overwritten versions above are merged away once they are a large
 * part of the data (its floored target would let a level of up to
 * base_level_size sit above a last level of about the same size). */
#define PICK_SPACE_AMP_PERCENT 25

/* Idle compaction: worth it once the levels above the deepest hold at
 * least this share (percent) of the deepest level's bytes. Below that the
 * rewrite of the deepest level would cost more than the reads save. */
#define PICK_IDLE_MIN_PERCENT 10

typedef struct key_range {
    slice lo, hi;   /* user keys, borrowed from the tables */
} key_range;

static int pick_num_levels(const lsm_view *v, const level_options *o)
{
    if (o->num_levels > 0 && o->num_levels < v->num_levels)
        return o->num_levels;
    return v->num_levels;
}

static void range_extend(key_range *r, table_meta *const *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        slice lo = table_smallest_ukey(t[i]), hi = table_largest_ukey(t[i]);

        if (r->lo.data == NULL || slice_cmp(lo, r->lo) < 0)
            r->lo = lo;
        if (r->hi.data == NULL || slice_cmp(hi, r->hi) > 0)
            r->hi = hi;
    }
}

static int any_compacting(table_meta *const *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t[i]->compacting)
            return 1;
    return 0;
}

/* A compaction of in0 (at level) with in1 (at out_level): takes a
 * reference on every input and marks it compacting. NULL on ENOMEM. */
static compaction *compaction_new(const lsm_view *v, const level_options *o, int level,
                                  int out_level, table_meta *const *in0, size_t n0,
                                  table_meta *const *in1, size_t n1, double score)
{
    table_meta *const *in[2] = {in0, in1};
    size_t n[2] = {n0, n1};
    key_range r = {{NULL, 0}, {NULL, 0}};
    compaction *c;

    if ((c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    for (int w = 0; w < 2; w++) {
        if (n[w] != 0 && (c->inputs[w] = malloc(n[w] * sizeof(*c->inputs[w]))) == NULL) {
            free(c->inputs[0]);
            free(c);
            return NULL;
        }
    }
    for (int w = 0; w < 2; w++) {
        for (size_t i = 0; i < n[w]; i++) {
            c->inputs[w][i] = in[w][i];
            table_meta_ref(in[w][i]);
            in[w][i]->compacting = 1;
        }
        c->n_inputs[w] = n[w];
        range_extend(&r, in[w], n[w]);
    }
    c->level = level;
    c->out_level = out_level;
    c->drop_tombstones = !lsm_view_overlaps_below(v, out_level, r.lo, r.hi);
    c->table_size = o->table_size;
    c->score = score;
    return c;
}

void compaction_release(compaction *c)
{
    if (c == NULL)
        return;
    for (int w = 0; w < 2; w++) {
        for (size_t i = 0; i < c->n_inputs[w]; i++) {
            c->inputs[w][i]->compacting = 0;
            table_meta_unref(c->inputs[w][i]);
        }
        free(c->inputs[w]);
    }
    free(c);
}

/* ---- targets and scores ---- */

void compaction_level_targets(const lsm_view *v, const level_options *o, uint64_t *targets,
                              int *base_level)
{
    int n = pick_num_levels(v, o), base = 0;
    uint64_t floor = o->base_level_size ? o->base_level_size : 1;
    uint64_t mult = o->level_size_multiplier > 1 ? (uint64_t)o->level_size_multiplier : 1;
    uint64_t raw;

    for (int l = 0; l < n; l++)
        targets[l] = 0;
    *base_level = 0;
    if (n < 2)
        return;
    raw = lsm_view_level_bytes(v, n - 1);
    for (int l = n - 1; l >= 1; l--) {
        targets[l] = raw > floor ? raw : floor;
        if (base == 0 && raw <= floor)
            base = l;
        raw /= mult;
    }
    if (base == 0)
        base = 1;       /* multiplier 1 and an oversized last level */
    for (int l = 1; l < base; l++) {
        if (v->n[l] != 0) {
            base = l;
            break;
        }
    }
    *base_level = base;
}

static double level_score(const lsm_view *v, const level_options *o, const uint64_t *targets,
                          int level)
{
    uint64_t sum = 0;

    if (level == 0) {
        size_t k = 0;
        int trigger = o->l0_compaction_trigger > 0 ? o->l0_compaction_trigger : 1;

        for (size_t i = 0; i < v->n[0]; i++)
            k += !v->tables[0][i]->compacting;
        return (double)k / trigger;
    }
    for (size_t i = 0; i < v->n[level]; i++)
        if (!v->tables[level][i]->compacting)
            sum += v->tables[level][i]->file_size;
    return targets[level] ? (double)sum / (double)targets[level] : 0.0;
}

/* ---- choosing inputs ---- */

/* in (tables of `level`, none compacting) plus the tables of out_level
 * overlapping them; NULL if one of those is compacting. */
static compaction *pick_with_overlap(lsm_view *v, const level_options *o, int level,
                                     int out_level, table_meta *const *in, size_t n_in,
                                     double score)
{
    key_range r = {{NULL, 0}, {NULL, 0}};
    table_meta **below = NULL;
    size_t n_below = 0;
    compaction *c = NULL;

    range_extend(&r, in, n_in);
    if (lsm_view_overlapping(v, out_level, r.lo, r.hi, &below, &n_below) != 0)
        return NULL;
    if (!any_compacting(below, n_below))
        c = compaction_new(v, o, level, out_level, in, n_in, below, n_below, score);
    free(below);
    return c;
}

static compaction *pick_l0(lsm_view *v, const level_options *o, int base, double score)
{
    if (v->n[0] == 0 || any_compacting(v->tables[0], v->n[0]))
        return NULL;
    return pick_with_overlap(v, o, 0, base, v->tables[0], v->n[0], score);
}

/*
 * The tables of sorted level `down` from *first on that overlap t (the
 * caller has skipped those wholly before t): their end index and bytes.
 * 0 if one of them is compacting.
 */
static int overlap_span(table_meta *const *down, size_t first, size_t nd, const table_meta *t,
                        size_t *end, uint64_t *bytes)
{
    size_t k = first;

    *bytes = 0;
    for (; k < nd && slice_cmp(table_smallest_ukey(down[k]), table_largest_ukey(t)) <= 0; k++) {
        if (down[k]->compacting)
            return 0;
        *bytes += down[k]->file_size;
    }
    *end = k;
    return 1;
}

/* Li -> out_level (Li+1, or a deeper level when those between are empty):
 * the free table of Li with the least overlap below per byte. */
static compaction *pick_level(lsm_view *v, const level_options *o, int level, int out_level,
                              double score)
{
    table_meta *const *up = v->tables[level], *const *down = v->tables[out_level];
    size_t nu = v->n[level], nd = v->n[out_level], j = 0;
    size_t best = nu, best_first = 0, best_end = 0;
    double best_ratio = 0;

    for (size_t i = 0; i < nu; i++) {
        size_t end = 0;
        uint64_t bytes;
        double ratio;

        /* Both levels are sorted and disjoint: the overlap only moves right. */
        while (j < nd && slice_cmp(table_largest_ukey(down[j]), table_smallest_ukey(up[i])) < 0)
            j++;
        if (up[i]->compacting || !overlap_span(down, j, nd, up[i], &end, &bytes))
            continue;
        ratio = (double)bytes / (double)(up[i]->file_size ? up[i]->file_size : 1);
        if (best == nu || ratio < best_ratio ||
            (ratio == best_ratio && up[i]->max_version < up[best]->max_version)) {
            best = i;
            best_first = j;
            best_end = end;
            best_ratio = ratio;
        }
    }
    if (best == nu)
        return NULL;
    return compaction_new(v, o, level, out_level, &up[best], 1, down + best_first,
                          best_end - best_first, score);
}

static int tombstone_heavy(const table_meta *t)
{
    return t->num_entries >= PICK_TOMBSTONE_MIN_ENTRIES &&
           (double)t->num_deletions >= PICK_TOMBSTONE_RATIO * (double)t->num_entries;
}

/* Tombstone-heavy tables: the one with the largest share of tombstones
 * whose compaction can start now. */
static compaction *pick_tombstones(lsm_view *v, const level_options *o, int n)
{
    int deepest = 0, best_level = 0;
    table_meta *best = NULL;
    double best_ratio = 0;

    for (int l = n - 1; l >= 1 && deepest == 0; l--)
        if (v->n[l] != 0)
            deepest = l;
    for (int l = 1; l <= deepest; l++) {
        for (size_t i = 0; i < v->n[l]; i++) {
            table_meta *t = v->tables[l][i];
            double ratio = (double)t->num_deletions / (double)(t->num_entries ? t->num_entries : 1);

            if (t->compacting || !tombstone_heavy(t) || (best != NULL && ratio <= best_ratio))
                continue;
            if (l == deepest && (o->discard_version == 0 || t->max_version > o->discard_version))
                continue;
            best = t;
            best_level = l;
            best_ratio = ratio;
        }
    }
    if (best == NULL)
        return NULL;
    if (best_level == deepest)
        return compaction_new(v, o, deepest, deepest, &best, 1, NULL, 0, best_ratio);
    /* If the best one is blocked, wait for that compaction to end rather
     * than search on: tombstones are not urgent. */
    return pick_with_overlap(v, o, best_level, best_level + 1, &best, 1, best_ratio);
}

/* Does t hold entries kept only for readers that are all gone now? */
static int stale_due(const table_meta *t, const level_options *o)
{
    return t->num_stale > 0 && o->discard_version != 0 && t->stale_version <= o->discard_version;
}

/* The deepest non-empty level of L1+, or 0. */
static int deepest_level(const lsm_view *v, int n)
{
    for (int l = n - 1; l >= 1; l--)
        if (v->n[l] != 0)
            return l;
    return 0;
}

/* A table holding entries that no reader needs any more, which the first
 * compaction will drop (compaction.c, "kept only for a reader"): the one
 * with the most of them whose compaction can start now. */
static compaction *pick_stale(lsm_view *v, const level_options *o, int n)
{
    int deepest = deepest_level(v, n), best_level = 0;
    table_meta *best = NULL;

    for (int l = 1; l <= deepest; l++) {
        for (size_t i = 0; i < v->n[l]; i++) {
            table_meta *t = v->tables[l][i];

            if (t->compacting || !stale_due(t, o) || (best && t->num_stale <= best->num_stale))
                continue;
            best = t;
            best_level = l;
        }
    }
    if (best == NULL)
        return NULL;
    if (best_level == deepest)
        return compaction_new(v, o, deepest, deepest, &best, 1, NULL, 0, 0.0);
    return pick_with_overlap(v, o, best_level, best_level + 1, &best, 1, 0.0);
}

/* Caps the target of the non-empty level right above the deepest one at
 * PICK_SPACE_AMP_PERCENT of the deepest level (at least one table). */
static void cap_space_amp(const lsm_view *v, const level_options *o, int n, uint64_t *targets)
{
    int deepest = deepest_level(v, n);
    uint64_t cap;

    if (deepest < 2)
        return;
    cap = lsm_view_level_bytes(v, deepest) / 100 * PICK_SPACE_AMP_PERCENT;
    if (cap < o->table_size)
        cap = o->table_size;
    for (int l = deepest - 1; l >= 1; l--) {
        if (v->n[l] == 0)
            continue;
        if (targets[l] > cap)
            targets[l] = cap;
        return;
    }
}

compaction *compaction_pick(lsm_view *v, const level_options *o)
{
    compaction *c;

    uint64_t targets[MAX_LEVELS];
    double score[MAX_LEVELS];
    int order[MAX_LEVELS], n = pick_num_levels(v, o), base, k = 0;

    if (n < 2)
        return NULL;
    compaction_level_targets(v, o, targets, &base);
    cap_space_amp(v, o, n, targets);
    for (int l = 0; l < n - 1; l++) {
        score[l] = level_score(v, o, targets, l);
        if (score[l] < 1.0)
            continue;
        /* Insertion sort, highest first; equal scores keep level order. */
        int i = k++;
        for (; i > 0 && score[order[i - 1]] < score[l]; i--)
            order[i] = order[i - 1];
        order[i] = l;
    }
    for (int i = 0; i < k; i++) {
        int l = order[i];
        c = l == 0 ? pick_l0(v, o, base, score[l]) : pick_level(v, o, l, l + 1, score[l]);

        if (c != NULL)
            return c;
    }
    if ((c = pick_tombstones(v, o, n)) != NULL)
        return c;
    return pick_stale(v, o, n);
}

/* The shallowest non-empty level below `level`, or -1. */
static int next_nonempty(const lsm_view *v, int n, int level)
{
    for (int l = level + 1; l < n; l++)
        if (v->n[l] != 0)
            return l;
    return -1;
}

compaction *compaction_pick_idle(lsm_view *v, const level_options *o)
{
    uint64_t targets[MAX_LEVELS], above = 0, last;
    int n = pick_num_levels(v, o), deepest = deepest_level(v, n), base;

    if (n < 2 || (deepest == 0 && v->n[0] == 0))
        return NULL;
    compaction_level_targets(v, o, targets, &base);
    if (deepest == 0)           /* only L0 holds data */
        return pick_l0(v, o, base, 0.0);
    for (int l = 0; l < deepest; l++)
        above += lsm_view_level_bytes(v, l);
    last = lsm_view_level_bytes(v, deepest);
    if (above == 0 || above < last / 100 * PICK_IDLE_MIN_PERCENT)
        return NULL;
    if (v->n[0] != 0)
        return pick_l0(v, o, base, 0.0);
    for (int l = 1; l < deepest; l++)
        if (v->n[l] != 0)
            return pick_level(v, o, l, next_nonempty(v, n, l), 0.0);
    return NULL;
}

compaction *compaction_pick_seek(lsm_view *v, const level_options *o, int level, uint64_t id)
{
    int n = pick_num_levels(v, o), out, base;
    uint64_t targets[MAX_LEVELS];

    if (level < 0 || level >= n)
        return NULL;
    for (size_t i = 0; i < v->n[level]; i++) {
        table_meta *t = v->tables[level][i];

        if (t->id != id || t->compacting)
            continue;
        if (level == 0) {
            compaction_level_targets(v, o, targets, &base);
            return pick_l0(v, o, base, 0.0);
        }
        if ((out = next_nonempty(v, n, level)) < 0)
            return NULL;        /* the deepest level: nowhere to go */
        return pick_with_overlap(v, o, level, out, &t, 1, 0.0);
    }
    return NULL;                /* gone or moved since */
}

compaction *compaction_pick_manual(lsm_view *v, const level_options *o)
{
    int n = pick_num_levels(v, o), src = -1, dst = -1;

    for (int l = 0; l < n && dst < 0; l++) {
        if (v->n[l] == 0)
            continue;
        if (src < 0)
            src = l;
        else
            dst = l;
    }
    if (src < 0 || n < 2)
        return NULL;            /* empty */
    if (dst < 0 && src > 0)     /* all data in one level >= 1: done, but */
        return pick_stale(v, o, n); /* for what readers kept (issue 16) */
    if (dst < 0)
        dst = n - 1;            /* only L0 holds data */
    if (any_compacting(v->tables[src], v->n[src]))
        return NULL;
    return pick_with_overlap(v, o, src, dst, v->tables[src], v->n[src], 0.0);
}
