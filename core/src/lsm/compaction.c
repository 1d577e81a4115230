/*
 * compaction.c - running one compaction: merge the inputs, drop what no
 * reader needs, write the output tables.
 *
 * The inputs are pinned by the compaction (table_meta refs) and read
 * through the table cache; nothing here takes a database lock. Output
 * tables get fresh file ids and their final names at once: should the
 * process die before the manifest records them, the next open removes
 * them as unknown files. The edit filled in here is logged and applied by
 * the caller (db/flush_compact.c).
 *
 * What is kept, for each user key, newest version first:
 *   - every version above oldest_read_version (some reader may see it);
 *   - the newest versions_to_keep versions at or below it (the newest of
 *     them is what the oldest reader sees), unless that newest one is a
 *     tombstone or has expired and no deeper level holds the key range
 *     (drop_tombstones): then nothing older can resurface, and it goes
 *     with everything older;
 *   - nothing older than those.
 * The same internal key from two inputs (possible only through a crash
 * between writing a table and deleting its source) is written once.
 *
 * Kept only for a reader: an entry kept that the same rules with no
 * reader open (oldest_read_version infinite) would drop is counted in its
 * output table's num_stale, with stale_version the newest version of its
 * user key (once no snapshot is older than that, every version of the key
 * is at or below the oldest read version and the rules drop it). The
 * picker rewrites such a table when that time has come, so the entry's
 * value-log garbage is counted then (issue 16: before, a table in the last
 * level was never compacted again and its garbage stayed for ever). The
 * counts live in the table's manifest entry, so a restart keeps them.
 */
#include "lsm/compaction.h"

#include <stdlib.h>

#include "base/ikey.h"
#include "base/killpoint.h"
#include "lsm/level_iter.h"
#include "base/merge_iter.h"
#include "table/sst_builder.h"
#include "base/status.h"

/* Iterators over all inputs, newest source first. */
static int compaction_input_iter(const compaction *c, table_cache *tc, iter **out)
{
    size_t n = 0, cap = c->n_inputs[0] + 1;
    iter **children = calloc(cap, sizeof(*children));
    int rc = STOAT_ENOMEM;

    *out = NULL;
    if (children == NULL)
        return rc;
    if (c->level == 0) {
        for (size_t i = 0; i < c->n_inputs[0]; i++) {
            sst_reader *r;
            if ((rc = table_cache_get(tc, c->inputs[0][i]->id, &r)) != 0)
                goto fail;
            children[n] = sst_reader_iter_opt(r, 0);    /* one pass: no cache fill */
            sst_reader_unref(r);
            rc = STOAT_ENOMEM;
            if (children[n] == NULL)
                goto fail;
            n++;
        }
    } else if (c->n_inputs[0] > 0) {
        if ((children[n] = level_iter_new_opt(c->inputs[0], c->n_inputs[0], tc, 0)) == NULL)
            goto fail;
        n++;
    }
    if (c->n_inputs[1] > 0) {
        if ((children[n] = level_iter_new_opt(c->inputs[1], c->n_inputs[1], tc, 0)) == NULL)
            goto fail;
        n++;
    }
    *out = merge_iter_new(children, n);
    free(children);
    return *out ? 0 : STOAT_ENOMEM;
fail:
    for (size_t i = 0; i < n; i++)
        iter_free(children[i]);
    free(children);
    return rc == STOAT_ENOMEM ? status_err(rc, "compaction: out of memory opening inputs") : rc;
}

/* The state of one run: the table being written and the outputs so far. */
typedef struct run_state {
    const compaction *c;
    compaction_ctx *ctx;
    lsm_edit *edit;
    sst_builder *b;
    uint64_t b_id;
    uint64_t *outputs;          /* ids of finished outputs, removed on failure */
    size_t n_outputs, cap_outputs;
    uint64_t num_stale;         /* of the table being written: kept only for a reader */
    uint64_t stale_version;
} run_state;

static int output_finish(run_state *s)
{
    sst_props props = {0};
    table_meta *t;
    uint64_t *grown;
    int rc;

    if (s->b == NULL)
        return 0;
    rc = sst_builder_finish(s->b, &props);
    s->b = NULL;
    if (rc != 0)
        goto fail;
    KILL_POINT("compaction_output");
    if (s->n_outputs == s->cap_outputs) {
        size_t cap = s->cap_outputs ? 2 * s->cap_outputs : 8;
        if ((grown = realloc(s->outputs, cap * sizeof(*grown))) == NULL) {
            rc = STOAT_ENOMEM;
            goto fail;
        }
        s->outputs = grown;
        s->cap_outputs = cap;
    }
    s->outputs[s->n_outputs++] = s->b_id;
    t = table_meta_new(s->b_id, props.file_size, slice_make(props.smallest.data, props.smallest.len),
                       slice_make(props.largest.data, props.largest.len));
    if (t == NULL) {
        rc = STOAT_ENOMEM;
        goto fail;
    }
    t->num_entries = props.num_entries;
    t->num_deletions = props.num_deletions;
    t->min_version = props.min_version;
    t->max_version = props.max_version;
    t->num_stale = s->num_stale;
    t->stale_version = s->stale_version;
    s->num_stale = s->stale_version = 0;
    rc = lsm_edit_add(s->edit, s->c->out_level, t);
    table_meta_unref(t);
    s->ctx->bytes_written += props.file_size;
fail:
    sst_props_free(&props);
    return rc;
}

static int output_add(run_state *s, slice ikey, slice value)
{
    char *path;
    int rc;

    if (s->b == NULL) {
        s->b_id = s->ctx->new_file_id(s->ctx->arg);
        if ((path = sst_path(s->ctx->dir, s->b_id)) == NULL)
            return STOAT_ENOMEM;
        rc = sst_builder_new(s->ctx->env, path, &s->ctx->sst, &s->b);
        free(path);
        if (rc != 0)
            return rc;
    }
    return sst_builder_add(s->b, ikey, value);
}

/* What the merge knows about the user key it is in. */
typedef struct key_state {
    int kept_old;       /* versions at or below oldest_read_version kept */
    int drop_rest;      /* a dead newest version went: everything older goes */
} key_state;

static int entry_is_dead(const compaction_ctx *ctx, slice value)
{
    vstruct vs;

    if (vstruct_decode(value, &vs) != 0)
        return 0;           /* keep what we cannot judge; readers report it */
    if (vs.meta & VMETA_DELETE)
        return 1;
    return vstruct_expired(&vs, ctx->now);
}

/* Decides, for one entry (newest first within its user key), whether a
 * reader reading at `oldest` or later can still need it. */
static int entry_needed(const compaction *c, const compaction_ctx *ctx, uint64_t oldest,
                        slice ikey, slice value, key_state *ks)
{
    int keep = ctx->versions_to_keep > 0 ? ctx->versions_to_keep : 1;

    if (ikey_version(ikey) > oldest)
        return 1;
    if (ks->drop_rest || ks->kept_old >= keep)
        return 0;
    if (ks->kept_old == 0 && c->drop_tombstones && entry_is_dead(ctx, value)) {
        /* The oldest reader sees no value here and nothing deeper can
         * resurface: the tombstone and all it shadows can go. */
        ks->drop_rest = 1;
        return 0;
    }
    ks->kept_old++;
    return 1;
}

static void compaction_drop(compaction_ctx *ctx, slice ikey, slice value)
{
    ctx->entries_dropped++;
    if (ctx->on_drop)
        ctx->on_drop(ctx->arg, ikey, value);
}

static int compaction_merge(run_state *s, iter *in)
{
    buf last = {0};         /* the previous internal key seen */
    key_state ks = {0};
    key_state ks_alone = {0};   /* the same decisions with no reader open */
    uint64_t key_newest = 0;    /* the newest version of the user key */
    int have_last = 0, rc = 0;

    for (iter_seek_first(in); iter_valid(in); iter_next(in)) {
        slice k = iter_key(in), v = iter_value(in);
        int new_user_key;

        if (k.len < IKEY_SUFFIX_LEN) {
            rc = status_err(STOAT_ECORRUPT, "compaction: internal key of %zu bytes", k.len);
            break;
        }
        s->ctx->bytes_read += k.len + v.len;
        new_user_key =
            !have_last || slice_cmp(ikey_user(k), ikey_user(slice_make(last.data, last.len))) != 0;
        if (!new_user_key && ikey_cmp(k, slice_make(last.data, last.len)) == 0) {
            compaction_drop(s->ctx, k, v);
            continue;       /* the same entry from an older input */
        }
        if (new_user_key) {
            ks = ks_alone = (key_state){0};
            key_newest = ikey_version(k);
            /* Cut tables only between user keys, so that one key's
             * versions never straddle two tables of a level. */
            if (s->b && sst_builder_size(s->b) >= s->c->table_size && (rc = output_finish(s)) != 0)
                break;
        }
        buf_reset(&last);
        if ((rc = buf_append(&last, k.data, k.len)) != 0)
            break;
        have_last = 1;
        int alone = entry_needed(s->c, s->ctx, UINT64_MAX, k, v, &ks_alone);
        if (!entry_needed(s->c, s->ctx, s->ctx->oldest_read_version, k, v, &ks)) {
            compaction_drop(s->ctx, k, v);
            continue;
        }
        if ((rc = output_add(s, k, v)) != 0)
            break;
        if (!alone) {
            s->num_stale++;
            if (key_newest > s->stale_version)
                s->stale_version = key_newest;
        }
    }
    if (rc == 0)
        rc = iter_status(in);
    buf_free(&last);
    return rc;
}

int compaction_run(const compaction *c, compaction_ctx *ctx, lsm_edit *edit)
{
    run_state s = {.c = c, .ctx = ctx, .edit = edit};
    iter *in;
    int rc;

    if ((rc = compaction_input_iter(c, ctx->tc, &in)) != 0)
        return rc;
    rc = compaction_merge(&s, in);
    iter_free(in);
    if (rc == 0)
        rc = output_finish(&s);
    if (rc != 0)
        goto fail;
    for (int which = 0; which < 2; which++) {
        int level = which == 0 ? c->level : c->out_level;
        for (size_t i = 0; i < c->n_inputs[which]; i++)
            if ((rc = lsm_edit_del(edit, level, c->inputs[which][i]->id)) != 0)
                goto fail;
    }
    free(s.outputs);
    return 0;
fail:
    sst_builder_abandon(s.b);
    for (size_t i = 0; i < s.n_outputs; i++) {
        char *path = sst_path(ctx->dir, s.outputs[i]);
        if (path)
            env_remove(ctx->env, path);
        free(path);
    }
    free(s.outputs);
    return rc;
}
