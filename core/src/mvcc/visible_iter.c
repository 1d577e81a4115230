/*
 * visible_iter.c - what a reader at one version sees, over a merged internal
 * iterator (the approach of LevelDB's DBIter).
 *
 * Entries are grouped: normally a group is one user key (all its versions),
 * with all_versions a group is one internal key (the same user key and
 * version can come from two sources, e.g. a memtable and the table it was
 * flushed to; the newer source's copy wins). Versions above read_version
 * are invisible. Of each group the first visible entry in internal order
 * (newest version, newest source) is the one yielded, unless it is hidden:
 * a tombstone or expired entry hides its whole user key (never with
 * all_versions, which yields them so the caller sees the deletes).
 *
 * Bounds: prefix, lower and upper reduce to one half-open range of user
 * keys [start, end): start = max(lower, prefix), end = min(upper, the
 * prefix's successor). Seeks clamp their target into it; a scan stops at
 * the first user key past the range edge it is heading to.
 *
 * Direction invariant. FWD: the internal iterator is positioned at the
 * entry yielded (zero copy: key and vstruct borrow from it), or, after a
 * look-ahead (a next onto a value pointer), the entry yielded was copied
 * into cur_copy/cur_vptr and the internal iterator is positioned at the
 * next entry to yield (or past the walk's end); a prev seeks back to the
 * entry yielded first. BWD: the entry
 * yielded was copied into saved_key/saved_val and the internal iterator is
 * positioned before every entry of its group (or is exhausted), because
 * finding a group's newest visible entry backward means scanning the group
 * from oldest to newest and stepping past it. Switching direction: next
 * re-enters the current group from before and skips it; prev steps back
 * once, since what precedes the current entry in its group is invisible.
 *
 * Errors (a bad internal key or vstruct is STOAT_ECORRUPT, the internal
 * iterator's status, ENOMEM) are sticky: the iterator stays invalid and
 * status() keeps the first code. One thread at a time.
 */
#include "mvcc/visible_iter.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/status.h"

enum { DB_ITER_FWD, DB_ITER_BWD };

struct visible_iter {
    iter *in;
    buf start, end;             /* user-key range [start, end) */
    int has_start, has_end;
    uint64_t read_version;
    uint64_t now;
    int all_versions;
    int dir;
    int valid;
    int status;
    slice cur_key;              /* internal key of the entry yielded */
    vstruct cur;
    buf saved_key;              /* BWD: the entry yielded; FWD: group to skip */
    buf saved_val;
    buf target;                 /* scratch for seek keys too long for target_small */
    char target_small[64];      /* scratch for the others: most seeks allocate nothing */
    /* Look-ahead (FWD, after a next onto a value pointer): the current
     * entry lives in saved_key / cur_vptr, and the internal iterator has
     * moved on to the next entry to yield (AHEAD_ENTRY: ahead_key/ahead
     * borrow from it) or found the walk's end (AHEAD_END, with the error
     * it met in ahead_rc and ahead_msg, told at the next next()). */
    int look_ahead;             /* visible_iter_set_look_ahead */
    int ahead;
    int ahead_rc;
    slice ahead_key;
    vstruct ahead_vs;
    char *ahead_msg;
    buf cur_copy;
    char cur_vptr[VPTR_LEN];
};

enum { AHEAD_NONE, AHEAD_ENTRY, AHEAD_END };

/* ---- bounds ------------------------------------------------------------ */

static int visible_iter_below(const visible_iter *it, slice ukey)
{
    return it->has_start && slice_cmp(ukey, slice_make(it->start.data, it->start.len)) < 0;
}

static int visible_iter_above(const visible_iter *it, slice ukey)
{
    return it->has_end && slice_cmp(ukey, slice_make(it->end.data, it->end.len)) >= 0;
}

/* The smallest key above every key starting with p, into out; 0 when there
 * is none (p empty or all 0xff bytes: the prefix range is unbounded). */
static int visible_iter_successor(slice p, buf *out)
{
    size_t n = p.len;

    while (n > 0 && (unsigned char)p.data[n - 1] == 0xff)
        n--;
    if (n == 0)
        return 0;
    buf_reset(out);
    if (buf_append(out, p.data, n) != 0)
        return STOAT_ENOMEM;
    out->data[n - 1] = (char)((unsigned char)out->data[n - 1] + 1);
    return 1;
}

/* Sets b to the tighter of its current value (if set) and s. */
static int visible_iter_tighten(buf *b, int *has, slice s, int want_larger)
{
    if (*has) {
        int c = slice_cmp(s, slice_make(b->data, b->len));
        if (want_larger ? c <= 0 : c >= 0)
            return 0;
    }
    buf_reset(b);
    *has = 1;
    return buf_append(b, s.data, s.len);
}

static int visible_iter_set_bounds(visible_iter *it, const visible_iter_options *o)
{
    buf succ = {0};
    int rc = 0, r;

    if (o->lower.data && (rc = visible_iter_tighten(&it->start, &it->has_start, o->lower, 1)) != 0)
        goto out;
    if (o->upper.data && (rc = visible_iter_tighten(&it->end, &it->has_end, o->upper, 0)) != 0)
        goto out;
    if (o->prefix.len == 0)
        goto out;
    if ((rc = visible_iter_tighten(&it->start, &it->has_start, o->prefix, 1)) != 0)
        goto out;
    if ((r = visible_iter_successor(o->prefix, &succ)) < 0) {
        rc = r;
        goto out;
    }
    if (r == 1)
        rc = visible_iter_tighten(&it->end, &it->has_end, slice_make(succ.data, succ.len), 0);
out:
    buf_free(&succ);
    return rc;
}

/* ---- entries ----------------------------------------------------------- */

static void visible_iter_fail(visible_iter *it, int rc)
{
    if (it->status == 0)
        it->status = rc;
    it->valid = 0;
}

/* Reads the internal iterator's key, checking it can hold a suffix. */
static int visible_iter_ikey(visible_iter *it, slice *ik)
{
    *ik = iter_key(it->in);
    if (ik->len < IKEY_SUFFIX_LEN)
        return status_err(STOAT_ECORRUPT, "visible_iter: internal key of %zu bytes", ik->len);
    return 0;
}

static int visible_iter_decode(slice ik, slice enc, vstruct *vs)
{
    if (vstruct_decode(enc, vs) != 0)
        return status_err(STOAT_ECORRUPT,
                          "visible_iter: malformed stored value (%zu bytes) of a key of %zu bytes "
                          "at version %llu",
                          enc.len, ik.len - IKEY_SUFFIX_LEN,
                          (unsigned long long)ikey_version(ik));
    return 0;
}

static int visible_iter_hidden(const visible_iter *it, const vstruct *vs)
{
    if (it->all_versions)
        return 0;
    if (vs->meta & VMETA_DELETE)
        return 1;
    return vstruct_expired(vs, it->now);
}

/* Compares ik's group with the group of the internal key grp. */
static int visible_iter_group_cmp(const visible_iter *it, slice ik, slice grp)
{
    if (it->all_versions)
        return ikey_cmp(ik, grp);
    return slice_cmp(ikey_user(ik), ikey_user(grp));
}

static slice visible_iter_saved(const visible_iter *it)
{
    return slice_make(it->saved_key.data, it->saved_key.len);
}

/* b = a copy of s. Called once or twice an entry: the buffer is nearly
 * always big enough already, so that case costs one memcpy. */
static inline int visible_iter_copy(buf *b, slice s)
{
    b->len = 0;
    if (s.len > b->cap && buf_reserve(b, s.len) != 0)
        return STOAT_ENOMEM;
    if (s.len > 0)
        memcpy(b->data, s.data, s.len);
    b->len = s.len;
    return 0;
}

static int visible_iter_save_key(visible_iter *it, slice ik)
{
    if (visible_iter_copy(&it->saved_key, ik) != 0)
        return status_err(STOAT_ENOMEM, "visible_iter: out of memory saving a key");
    return 0;
}

/* When the internal iterator stops: its error, or 0 for a plain end. */
static void visible_iter_stop(visible_iter *it)
{
    int rc = iter_status(it->in);

    it->valid = 0;
    if (rc != 0)
        visible_iter_fail(it, rc);
}

/* ---- forward ----------------------------------------------------------- */

/*
 * From the internal position onward, the first entry to yield, into *out_ik
 * and *out_vs (borrowed from the internal iterator): 1 when found, 0 at the
 * end of the walk, < 0 an error (the internal iterator's included). With
 * skip.data set, entries of skip's group are passed over first (the group
 * just yielded); hidden groups are saved in saved_key and passed over.
 */
static int visible_iter_scan_next(visible_iter *it, slice skip, slice *out_ik, vstruct *out_vs)
{
    slice ik;
    vstruct vs = {0};
    int rc;

    for (; iter_valid(it->in); iter_next(it->in)) {
        if ((rc = visible_iter_ikey(it, &ik)) != 0)
            return rc;
        if (visible_iter_above(it, ikey_user(ik)))
            break;
        if (ikey_version(ik) > it->read_version || visible_iter_below(it, ikey_user(ik)))
            continue;
        if (skip.data != NULL && visible_iter_group_cmp(it, ik, skip) <= 0)
            continue;
        if ((rc = visible_iter_decode(ik, iter_value(it->in), &vs)) != 0)
            return rc;
        if (visible_iter_hidden(it, &vs)) {
            if ((rc = visible_iter_save_key(it, ik)) != 0)
                return rc;
            skip = visible_iter_saved(it);
            continue;
        }
        *out_ik = ik;
        *out_vs = vs;
        return 1;
    }
    return iter_status(it->in);
}

/* Positions the iterator on the first entry to yield from the internal
 * position onward (see visible_iter_scan_next). */
static void visible_iter_find_next(visible_iter *it, slice skip)
{
    int r = visible_iter_scan_next(it, skip, &it->cur_key, &it->cur);

    if (r < 0)
        visible_iter_fail(it, r);
    else
        it->valid = r;
}

/*
 * After a next landed on an entry whose value is a value pointer: the
 * entry is copied (its key and pointer: a few dozen bytes) and the walk
 * goes on to the next entry to yield now, so that the caller can ask for
 * that entry's value (visible_iter_ahead) while it reads this one; the
 * next next() only takes it. The walk does no more work than without:
 * each entry is still found once (one more at the end of a scan that
 * stops early). An error met ahead is told by the next move (a next
 * would have met it then anyway). Without memory for the copy, no
 * look-ahead.
 */
static void visible_iter_look_ahead(visible_iter *it)
{
    int r;

    if (!it->look_ahead || !(it->cur.meta & VMETA_VPTR) || it->cur.value.len != VPTR_LEN ||
        visible_iter_copy(&it->cur_copy, it->cur_key) != 0)
        return;
    memcpy(it->cur_vptr, it->cur.value.data, VPTR_LEN);
    it->cur.value = slice_make(it->cur_vptr, VPTR_LEN);
    it->cur_key = slice_make(it->cur_copy.data, it->cur_copy.len);
    iter_next(it->in);
    r = visible_iter_scan_next(it, it->cur_key, &it->ahead_key, &it->ahead_vs);
    if (r == 1) {
        it->ahead = AHEAD_ENTRY;
        return;
    }
    it->ahead = AHEAD_END;
    it->ahead_rc = r;
    if (r < 0) {
        free(it->ahead_msg);
        it->ahead_msg = strdup(status_msg());
    }
}

/* An error met ahead becomes the iterator's (sticky) error, with its
 * message: 1 when there was one. */
static int visible_iter_ahead_failed(visible_iter *it)
{
    if (it->ahead != AHEAD_END || it->ahead_rc == 0)
        return 0;
    it->ahead = AHEAD_NONE;
    visible_iter_fail(it, it->ahead_rc);
    status_set_msg(it->ahead_msg != NULL ? it->ahead_msg : "");
    return 1;
}

/* The next() of an iterator that looked ahead: the entry found then, or
 * the end (and the error) met then. */
static void visible_iter_take_ahead(visible_iter *it)
{
    int state = it->ahead;

    if (visible_iter_ahead_failed(it))
        return;
    it->ahead = AHEAD_NONE;
    if (state == AHEAD_ENTRY) {
        it->cur_key = it->ahead_key;
        it->cur = it->ahead_vs;
    } else {
        it->valid = 0;
    }
}

/* Undoes a look-ahead before a prev: the internal iterator back on the
 * current entry (the first entry of its internal key: what precedes it is
 * invisible), as the forward invariant wants it. An error met ahead is
 * told now, as by a next (table iterators keep their errors: the seek
 * back would meet it anyway); 1 then. */
static int visible_iter_undo_ahead(visible_iter *it)
{
    if (it->ahead == AHEAD_NONE)
        return 0;
    if (visible_iter_ahead_failed(it))
        return 1;
    it->ahead = AHEAD_NONE;
    iter_seek(it->in, it->cur_key);
    return 0;
}

/* ---- backward ---------------------------------------------------------- */

static int visible_iter_save(visible_iter *it, slice ik, slice enc)
{
    int rc;

    if ((rc = visible_iter_save_key(it, ik)) != 0)
        return rc;
    if (visible_iter_copy(&it->saved_val, enc) != 0)
        return status_err(STOAT_ENOMEM, "visible_iter: out of memory saving a value");
    return 0;
}

/* Points the current entry at the saved copy (decoded before it was saved). */
static void visible_iter_use_saved(visible_iter *it)
{
    it->cur_key = slice_make(it->saved_key.data, it->saved_key.len);
    (void)vstruct_decode(slice_make(it->saved_val.data, it->saved_val.len), &it->cur);
    it->valid = 1;
}

/*
 * From the internal position backward, finds the group to yield: walks a
 * group from its oldest entry to its newest, remembering the newest visible
 * one, and stops at the first visible entry of an earlier group once that
 * one is not hidden (the internal iterator is then just before the group).
 */
static void visible_iter_find_prev(visible_iter *it)
{
    int have = 0, rc;
    slice ik, enc;
    vstruct vs = {0};

    for (; iter_valid(it->in); iter_prev(it->in)) {
        if ((rc = visible_iter_ikey(it, &ik)) != 0)
            goto fail;
        if (visible_iter_below(it, ikey_user(ik)))
            break;
        if (ikey_version(ik) > it->read_version || visible_iter_above(it, ikey_user(ik)))
            continue;
        if (have && visible_iter_group_cmp(it, ik, visible_iter_saved(it)) < 0)
            break;
        enc = iter_value(it->in);
        if ((rc = visible_iter_decode(ik, enc, &vs)) != 0)
            goto fail;
        have = !visible_iter_hidden(it, &vs);
        if (have && (rc = visible_iter_save(it, ik, enc)) != 0)
            goto fail;
    }
    if (!iter_valid(it->in) && iter_status(it->in) != 0) {
        visible_iter_stop(it);
        return;
    }
    if (have)
        visible_iter_use_saved(it);
    else
        it->valid = 0;
    return;
fail:
    visible_iter_fail(it, rc);
}

/* ---- positioning ------------------------------------------------------- */

/* The internal key ukey+version, in target_small or target (borrowed
 * until the next call). */
static int visible_iter_target(visible_iter *it, slice ukey, uint64_t version, slice *out)
{
    char *dst = it->target_small;

    if (ukey.len + IKEY_SUFFIX_LEN > sizeof(it->target_small)) {
        buf_reset(&it->target);
        if (buf_reserve(&it->target, ukey.len + IKEY_SUFFIX_LEN) != 0)
            return status_err(STOAT_ENOMEM, "visible_iter: out of memory for a seek key");
        dst = it->target.data;
    }
    *out = slice_make(dst, ikey_encode(dst, ukey.data, ukey.len, version));
    return 0;
}

/* Common start of every seek: 0 when the iterator may move. */
static int visible_iter_begin(visible_iter *it)
{
    it->valid = 0;
    it->ahead = AHEAD_NONE;
    return it->status == 0;
}

void visible_iter_seek(visible_iter *it, slice ukey)
{
    slice t;
    int rc;

    if (!visible_iter_begin(it))
        return;
    if (visible_iter_below(it, ukey))
        ukey = slice_make(it->start.data, it->start.len);
    if (visible_iter_above(it, ukey))
        return;
    if ((rc = visible_iter_target(it, ukey, IKEY_VERSION_MAX, &t)) != 0) {
        visible_iter_fail(it, rc);
        return;
    }
    it->dir = DB_ITER_FWD;
    iter_seek(it->in, t);
    visible_iter_find_next(it, slice_make(NULL, 0));
}

void visible_iter_seek_first(visible_iter *it)
{
    if (it->has_start) {
        visible_iter_seek(it, slice_make(it->start.data, it->start.len));
        return;
    }
    if (!visible_iter_begin(it))
        return;
    it->dir = DB_ITER_FWD;
    iter_seek_first(it->in);
    visible_iter_find_next(it, slice_make(NULL, 0));
}

/* Lands before `end` (the entry (end, VERSION_MAX) itself is skipped as
 * out of range by find_prev). */
void visible_iter_seek_last(visible_iter *it)
{
    slice t;
    int rc;

    if (!visible_iter_begin(it))
        return;
    it->dir = DB_ITER_BWD;
    if (!it->has_end) {
        iter_seek_last(it->in);
    } else {
        rc = visible_iter_target(it, slice_make(it->end.data, it->end.len), IKEY_VERSION_MAX, &t);
        if (rc != 0) {
            visible_iter_fail(it, rc);
            return;
        }
        iter_seek_for_prev(it->in, t);
    }
    visible_iter_find_prev(it);
}

/* Version 0 sorts after every other version of ukey, so the internal
 * seek lands on ukey's oldest entry or before. */
void visible_iter_seek_for_prev(visible_iter *it, slice ukey)
{
    slice t;
    int rc;

    if (visible_iter_above(it, ukey)) {
        visible_iter_seek_last(it);
        return;
    }
    if (!visible_iter_begin(it) || visible_iter_below(it, ukey))
        return;
    if ((rc = visible_iter_target(it, ukey, 0, &t)) != 0) {
        visible_iter_fail(it, rc);
        return;
    }
    it->dir = DB_ITER_BWD;
    iter_seek_for_prev(it->in, t);
    visible_iter_find_prev(it);
}

/* ---- stepping ---------------------------------------------------------- */

/*
 * Backward, the internal iterator is before the saved group: step into it
 * (or, if the walk ran off the start, seek to the saved entry: any entry
 * of its group before it is invisible), then skip the group.
 */
void visible_iter_next(visible_iter *it)
{
    int rc;

    if (!visible_iter_valid(it))
        return;
    if (it->ahead != AHEAD_NONE) {
        visible_iter_take_ahead(it);
    } else {
        if (it->dir == DB_ITER_FWD) {
            if ((rc = visible_iter_save_key(it, it->cur_key)) != 0) {
                visible_iter_fail(it, rc);
                return;
            }
            iter_next(it->in);
        } else if (iter_valid(it->in)) {
            iter_next(it->in);
        } else {
            iter_seek(it->in, visible_iter_saved(it));
        }
        it->dir = DB_ITER_FWD;
        visible_iter_find_next(it, visible_iter_saved(it));
    }
    if (visible_iter_valid(it))
        visible_iter_look_ahead(it);
}

/*
 * Forward, the internal iterator is on the current entry, the first
 * visible one of its group: whatever precedes it in the group is invisible
 * (a newer version), so one step back is enough for the backward walk,
 * which never reaches the current group again.
 */
void visible_iter_prev(visible_iter *it)
{
    if (!visible_iter_valid(it))
        return;
    if (it->dir == DB_ITER_FWD) {
        if (visible_iter_undo_ahead(it))
            return;
        it->dir = DB_ITER_BWD;
        iter_prev(it->in);
    }
    visible_iter_find_prev(it);
}

/* ---- accessors and lifetime -------------------------------------------- */

int visible_iter_valid(const visible_iter *it)
{
    return it->valid && it->status == 0;
}

int visible_iter_status(const visible_iter *it)
{
    return it->status;
}

slice visible_iter_key(const visible_iter *it)
{
    assert(visible_iter_valid(it));
    return ikey_user(it->cur_key);
}

uint64_t visible_iter_version(const visible_iter *it)
{
    assert(visible_iter_valid(it));
    return ikey_version(it->cur_key);
}

const vstruct *visible_iter_vstruct(const visible_iter *it)
{
    assert(visible_iter_valid(it));
    return &it->cur;
}

void visible_iter_set_look_ahead(visible_iter *it, int on)
{
    it->look_ahead = on;
}

const vstruct *visible_iter_ahead(const visible_iter *it)
{
    return visible_iter_valid(it) && it->ahead == AHEAD_ENTRY ? &it->ahead_vs : NULL;
}

int visible_iter_new(iter *internal, const visible_iter_options *o, visible_iter **out)
{
    visible_iter *it;
    int rc;

    *out = NULL;
    if ((it = calloc(1, sizeof(*it))) == NULL) {
        iter_free(internal);
        return status_err(STOAT_ENOMEM, "visible_iter: out of memory");
    }
    it->in = internal;
    it->read_version = o->read_version;
    it->now = o->now;
    it->all_versions = o->all_versions;
    it->dir = DB_ITER_FWD;
    it->look_ahead = 1;
    if ((rc = visible_iter_set_bounds(it, o)) != 0) {
        rc = status_err(rc, "visible_iter: out of memory copying bounds");
        goto fail;
    }
    *out = it;
    return 0;
fail:
    visible_iter_free(it);
    return rc;
}

void visible_iter_free(visible_iter *it)
{
    if (it == NULL)
        return;
    iter_free(it->in);
    buf_free(&it->start);
    buf_free(&it->end);
    buf_free(&it->saved_key);
    buf_free(&it->saved_val);
    buf_free(&it->target);
    buf_free(&it->cur_copy);
    free(it->ahead_msg);
    free(it);
}
