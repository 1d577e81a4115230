/*
 * vlog.c - the value log (format: core/FORMAT.md, "Value log").
 *
 * Owns the vlog files of one directory: their table (sorted by fid), their
 * descriptors (an LRU of open sealed files), the active file's append
 * point, the record layout, the recovery of the newest file's tail and the
 * deferred unlink of removed files. Split along the lock seam: this file
 * opens, appends (wmu) and syncs; vlog_read.c reads; vlog_files.c keeps
 * the table, the LRU and pins (mu); vlog_record.c is the record layout
 * (no state); what they share is in vlog_int.h.
 *
 * Invariants:
 *  - files[] is sorted by fid; once a file exists in a writable log, the
 *    last one is the active file (or, right after a failed rollover, the
 *    newest sealed one), and the last file is never removed, so fids are
 *    never reused across restarts.
 *  - A vlog_file is referenced by the table while listed, by every read or
 *    scan that pins it, and by the unsynced list while it is sealed but not
 *    yet synced. Its descriptor is closed only when the last reference goes
 *    or by LRU eviction, which takes only unpinned, synced files; so a
 *    pinned file's descriptor stays valid without the lock. A removed file
 *    is unlinked by whoever drops its last reference.
 *  - size covers only complete records: it grows after whole records are
 *    written (a gathered run of small ones, or one large one), so a reader
 *    never sees half a record. Bytes past size in the active file belong to
 *    the writer (cut off on failure).
 *  - Mappings (issue 15; in shared mode the files up to the published
 *    one, read only below what is published or final, see vlog.h): a file
 *    is mapped on the first read that pins it (the active one to file_size
 *    bytes, past its end),
 *    and unmapped only with its descriptor, by eviction (unpinned files
 *    only) or when its last reference goes. Bytes below size never change
 *    (the only truncations are recovery's, before any read, and a failed
 *    append's, of unpublished bytes), so a pinned file's mapping below the
 *    size seen when it was pinned is always readable. A vlog_value keeps
 *    its file pinned while it lends out a value from the mapping.
 *  - checked bits: set only after a record's checksum succeeded at that
 *    offset; a set bit lets later reads skip only the checksum (header,
 *    length and key are checked on every read).
 *
 * Locks: `mu` guards the table, the LRU, refs, sizes, the dirty flags and
 * the directory generation counters; it is held briefly and never across
 * I/O except descriptor closes on eviction. `wmu` (the writer lock) guards
 * the active file's append side, the gather buffer, the unsynced list and
 * the sticky error, and is held across appends and syncs. Order: wmu, then
 * mu. Fields written by the writer that readers look at (size, dirty,
 * active) are written with both held.
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/checksum.h"
#include "base/coding.h"
#include "base/status.h"
#include "base/vec.h"
#include "crypt/crypt_env.h"
#include "vlog/vlog_int.h"

/* ---- open and close ---- */

static int vlog_fid_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The fids of dir's vlog files, ascending. */
static int vlog_list(vlog *l, uint32_t **fids, size_t *n)
{
    char **names = NULL;
    size_t count = 0;
    int rc;

    *fids = NULL;
    *n = 0;
    if ((rc = env_list(l->env, l->dir, &names, &count)) != 0)
        return rc;
    if (count > 0 && (*fids = malloc(count * sizeof(**fids))) == NULL) {
        env_list_free(names, count);
        return status_err(STOAT_ENOMEM, "vlog: out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        uint32_t fid = vlog_parse_name(names[i]);
        if (fid != 0)
            (*fids)[(*n)++] = fid;
    }
    env_list_free(names, count);
    if (*n > 0)
        qsort(*fids, *n, sizeof(**fids), vlog_fid_cmp);
    return 0;
}

/* Opens a file found at open and checks its header; *w keeps it. */
static int vlog_file_load(vlog *l, vlog_file *vf, int flags, file_window *w, int *torn)
{
    int rc;

    if ((rc = env_open(l->env, vf->path, flags, &vf->f)) != 0)
        return rc;
    file_window_init(w, vf->f, vf->path, 0, VLOG_READ_CHUNK);
    if ((rc = env_file_size(vf->f, &w->size)) != 0)
        return rc;
    vf->size = w->size;
    rc = vlog_header_check(w, vf->fid);
    *torn = rc == VLOG_TORN;
    return rc < 0 ? rc : 0;
}

/* Adds a sealed file (already open) to the table and the LRU. */
static int vlog_add_sealed(vlog *l, vlog_file *vf)
{
    int rc;

    pthread_mutex_lock(&l->mu);
    if ((rc = vlog_insert_locked(l, vf)) == 0)
        vlog_lru_add_locked(l, vf);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

static int vlog_open_older(vlog *l, uint32_t fid)
{
    file_window w = {0};
    vlog_file *vf = vlog_file_new(l, fid);
    int rc, torn;

    if (vf == NULL)
        return status_err(STOAT_ENOMEM, "vlog: out of memory");
    if ((rc = vlog_file_load(l, vf, ENV_READ, &w, &torn)) == 0)
        rc = vlog_add_sealed(l, vf);
    file_window_free(&w);
    if (rc != 0)
        vlog_file_destroy(l, vf);
    return rc;
}

/*
 * Recovers the newest file: finds the end of its last intact record and
 * (writable) cuts the rest off. *seal = 1 when appends must not continue
 * in it (full, or its record chain is broken and it is left as it is).
 */
static int vlog_recover_tail(vlog *l, vlog_file *vf, file_window *w, int torn, int *seal)
{
    char h[VLOG_HEADER_LEN];
    const char *hv;
    vlog_walk k = {0};
    int rc;

    *seal = 0;
    if (torn) {
        if (l->opts.read_only)
            return 0;
        vlog_header_encode(h, vf->fid);
        if ((rc = env_truncate(vf->f, 0)) != 0 || (rc = env_append(vf->f, h, sizeof(h))) != 0 ||
            (rc = env_sync(vf->f)) != 0)
            return rc;
        vf->size = VLOG_HEADER_LEN;
        return 0;
    }
    k.w = *w;
    k.fid = vf->fid;
    rc = vlog_walk_run(&k);
    *w = k.w;   /* hands the window's buffer back to be freed */
    if (rc != 0)
        return rc;
    if (k.lost) {
        *seal = 1;
        return 0;
    }
    if (k.good_end < vf->size && !l->opts.read_only &&
        ((rc = env_truncate(vf->f, k.good_end)) != 0 || (rc = env_sync(vf->f)) != 0))
        return rc;
    vf->size = k.good_end;
    *seal = vf->size >= l->opts.file_size;
    /* A file of an older format takes no records of this one (format 1
     * knows no compressed values): appends go to a new file. */
    if ((rc = file_window_get(w, 8, 4, &hv)) != 0)
        return rc;
    if (get_fixed32(hv) < VLOG_FORMAT_VERSION)
        *seal = 1;
    return 0;
}

static int vlog_create_locked(vlog *l);

static int vlog_open_newest(vlog *l, uint32_t fid)
{
    file_window w = {0};
    vlog_file *vf = vlog_file_new(l, fid);
    int rc, torn, seal = 0;

    if (vf == NULL)
        return status_err(STOAT_ENOMEM, "vlog: out of memory");
    rc = vlog_file_load(l, vf, l->opts.read_only ? ENV_READ : ENV_WRITE, &w, &torn);
    if (rc == 0)
        rc = vlog_recover_tail(l, vf, &w, torn, &seal);
    file_window_free(&w);
    if (rc != 0)
        goto fail;
    if (l->opts.read_only || seal) {
        if ((rc = vlog_add_sealed(l, vf)) != 0)
            goto fail;
        return l->opts.read_only ? 0 : vlog_create_locked(l);
    }
    pthread_mutex_lock(&l->mu);
    rc = vlog_insert_locked(l, vf);
    pthread_mutex_unlock(&l->mu);
    if (rc != 0)
        goto fail;
    vf->active = 1;
    l->active = vf;
    return 0;
fail:
    vlog_file_destroy(l, vf);
    return rc;
}

static vlog *vlog_alloc(env *e, const char *dir, const vlog_options *o)
{
    vlog *l = calloc(1, sizeof(*l));

    if (l == NULL || (l->dir = strdup(dir)) == NULL) {
        free(l);
        return NULL;
    }
    l->env = e;
    if (o != NULL)
        l->opts = *o;
    if (l->opts.file_size == 0)
        l->opts.file_size = VLOG_DEFAULT_FILE_SIZE;
    if (l->opts.max_open_files <= 0)
        l->opts.max_open_files = VLOG_DEFAULT_MAX_OPEN;
    l->lru.next = l->lru.prev = &l->lru;
    l->next_fid = 1;
    /* The newest file's name may not be durable yet: sync the directory
     * on the first vlog_sync. */
    l->dir_gen = 1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->wmu, NULL);
    return l;
}

int vlog_open(env *e, const char *dir, const vlog_options *o, vlog **out)
{
    uint32_t *fids = NULL;
    size_t n = 0;
    vlog *l;
    int rc;

    *out = NULL;
    if ((l = vlog_alloc(e, dir, o)) == NULL)
        return status_err(STOAT_ENOMEM, "vlog: out of memory");
    if ((rc = vlog_list(l, &fids, &n)) != 0)
        goto fail;
    /* Attaching (shared mode, another process recovered): every file is
     * sealed here until vlog_adopt makes one active. */
    for (size_t i = 0; i + (l->opts.attach ? 0 : 1) < n; i++)
        if ((rc = vlog_open_older(l, fids[i])) != 0)
            goto fail;
    if (n > 0) {
        l->next_fid = (uint64_t)fids[n - 1] + 1;
        if (!l->opts.attach && (rc = vlog_open_newest(l, fids[n - 1])) != 0)
            goto fail;
    }
    free(fids);
    *out = l;
    return 0;
fail:
    free(fids);
    vlog_close(l);
    return rc;
}

void vlog_close(vlog *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n_unsynced; i++)
        vlog_unref(l, l->unsynced[i]);
    for (size_t i = 0; i < l->n; i++) {
        assert(l->files[i]->refs == 1);
        vlog_file_destroy(l, l->files[i]);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->wmu);
    free(l->files);
    free(l->unsynced);
    buf_free(&l->gather);
    buf_free(&l->seal_scratch);
    free(l->dir);
    free(l);
}

/* ---- appends ---- */

/* Starts a new active file (wmu held, or at open; no active file). */
static int vlog_create_locked(vlog *l)
{
    char h[VLOG_HEADER_LEN];
    vlog_file *vf;
    int rc;

    if (l->next_fid > UINT32_MAX)
        return status_err(STOAT_ETOOBIG, "%s: value log file ids exhausted", l->dir);
    if ((vf = vlog_file_new(l, (uint32_t)l->next_fid)) == NULL)
        return status_err(STOAT_ENOMEM, "vlog: out of memory");
    vlog_header_encode(h, vf->fid);
    if ((rc = env_open(l->env, vf->path, ENV_WRITE | ENV_TRUNC, &vf->f)) != 0)
        goto fail;
    if ((rc = env_append(vf->f, h, sizeof(h))) != 0)
        goto fail;
    vf->size = VLOG_HEADER_LEN;
    vf->dirty = 1;
    vf->active = 1;
    pthread_mutex_lock(&l->mu);
    rc = vlog_insert_locked(l, vf);
    l->dir_gen++;
    pthread_mutex_unlock(&l->mu);
    if (rc != 0)
        goto fail;
    l->active = vf;
    l->next_fid++;
    return 0;
fail:
    if (vf->f != NULL)
        vlog_quiet_remove(l->env, vf->path);
    vlog_file_destroy(l, vf);
    return rc;
}

/* Seals the active file (wmu held, nothing gathered). */
static int vlog_seal_locked(vlog *l)
{
    vlog_file *vf = l->active;

    if (vf->dirty && VEC_ROOM(l->unsynced, l->n_unsynced, l->cap_unsynced, 4) != 0)
        return status_err(STOAT_ENOMEM, "vlog: out of memory");
    pthread_mutex_lock(&l->mu);
    if (vf->dirty) {
        vf->refs++;
        l->unsynced[l->n_unsynced++] = vf;
    }
    vf->active = 0;
    vlog_lru_add_locked(l, vf);
    pthread_mutex_unlock(&l->mu);
    l->active = NULL;
    return 0;
}

/* Sets the sticky error from this thread's current message. */
static int vlog_set_error_locked(vlog *l, int rc)
{
    l->error = rc;
    snprintf(l->error_msg, sizeof(l->error_msg), "%s", status_msg());
    return rc;
}

/* After a failed write: cuts the active file back to its last complete
 * record and returns rc, or makes STOAT_EIO sticky when that fails too. */
static int vlog_cut_back_locked(vlog *l, int rc)
{
    char msg[STATUS_MSG_MAX];

    snprintf(msg, sizeof(msg), "%s", status_msg());
    buf_reset(&l->gather);
    if (env_truncate(vlog_wfd(l->active), l->active->size) != 0) {
        /* A damaged file now, whatever the write's error was. */
        status_err(STOAT_EIO, "%s (cutting the partial record back off failed)", msg);
        return vlog_set_error_locked(l, STOAT_EIO);
    }
    status_set_msg(msg);
    return rc;
}

/* Makes n more bytes of the active file readable. */
static void vlog_publish_locked(vlog *l, uint64_t n)
{
    pthread_mutex_lock(&l->mu);
    l->active->size += n;
    l->active->dirty = 1;
    pthread_mutex_unlock(&l->mu);
}

/* Writes the gathered records (wmu held). */
static int vlog_flush_locked(vlog *l)
{
    int rc;

    if (l->gather.len == 0)
        return 0;
    if ((rc = env_append(vlog_wfd(l->active), l->gather.data, l->gather.len)) != 0)
        return vlog_cut_back_locked(l, rc);
    vlog_publish_locked(l, l->gather.len);
    buf_reset(&l->gather);
    return 0;
}


/* Writes one large record in place, without copying its value. */
static int vlog_write_direct_locked(vlog *l, slice ik, slice v, int encoded)
{
    char trailer[8];
    size_t hk;
    int rc;

    if (buf_reserve(&l->gather, VLOG_REC_HEADER_LEN + ik.len) != 0)
        return status_err(STOAT_ENOMEM, "vlog: out of memory");
    vlog_rec_header(l->gather.data, (uint32_t)ik.len,
                    (uint32_t)v.len | (encoded ? VLOG_VLEN_ENCODED : 0));
    memcpy(l->gather.data + VLOG_REC_HEADER_LEN, ik.data, ik.len);
    hk = VLOG_REC_HEADER_LEN + ik.len;
    put_fixed64(trailer, checksum64_2(l->gather.data, hk, v.data, v.len));
    if ((rc = env_append(vlog_wfd(l->active), l->gather.data, hk)) != 0 ||
        (rc = env_append(vlog_wfd(l->active), v.data, v.len)) != 0 ||
        (rc = env_append(vlog_wfd(l->active), trailer, sizeof(trailer))) != 0)
        return vlog_cut_back_locked(l, rc);
    vlog_publish_locked(l, vlog_record_len(ik.len, v.len));
    return 0;
}



static int vlog_writable_locked(vlog *l)
{
    if (l->opts.read_only)
        return status_err(STOAT_EREADONLY, "%s: value log is read-only", l->dir);
    if (l->error)
        return status_err(l->error, "%s (an earlier value log write failed)", l->error_msg);
    return 0;
}

/* Appends one record (v: the stored value, compressed when encoded),
 * rolling over first when it would not fit. */
static int vlog_append_one_locked(vlog *l, slice ik, slice v, int encoded, vptr *p)
{
    uint64_t len = vlog_record_len(ik.len, v.len), end;
    int rc, sealed;

    if (l->active != NULL) {
        if (crypt_sealed(vlog_wfd(l->active)))
            len += CRYPT_OVERHEAD;
        end = l->active->size + l->gather.len;
        if (end > VLOG_HEADER_LEN && end + len > l->opts.file_size &&
            ((rc = vlog_flush_locked(l)) != 0 || (rc = vlog_seal_locked(l)) != 0))
            return rc;
    }
    if (l->active == NULL && (rc = vlog_create_locked(l)) != 0)
        return rc;
    sealed = crypt_sealed(vlog_wfd(l->active));
    len = vlog_record_len(ik.len, v.len) + (sealed ? CRYPT_OVERHEAD : 0);
    p->fid = l->active->fid;
    p->offset = l->active->size + l->gather.len;
    p->len = (uint32_t)len;
    if (sealed) {
        /* Sealed records are always gathered: sealing copies anyway. */
        if (buf_reserve(&l->gather, (size_t)len) != 0)
            return status_err(STOAT_ENOMEM, "vlog: out of memory");
        vlog_gather_sealed(&l->gather, vlog_wfd(l->active), p->offset, ik, v, encoded,
                           &l->seal_scratch, &rc);
        if (rc != 0)
            return rc;
        return l->gather.len >= VLOG_GATHER_LEN ? vlog_flush_locked(l) : 0;
    }
    if (len >= VLOG_DIRECT_LEN) {
        if ((rc = vlog_flush_locked(l)) != 0)
            return rc;
        return vlog_write_direct_locked(l, ik, v, encoded);
    }
    if (buf_reserve(&l->gather, (size_t)len) != 0)
        return status_err(STOAT_ENOMEM, "vlog: out of memory");
    vlog_gather_rec(&l->gather, ik, v, encoded);
    return l->gather.len >= VLOG_GATHER_LEN ? vlog_flush_locked(l) : 0;
}

/*
 * The stored forms of values[0..n-1]: compressed ones in enc (offsets and
 * lengths in where[], encoded[i] = 1), the others as they are. Runs before
 * the writer lock is taken, so compression does not hold up other writers'
 * appends more than needed.
 */
static int vlog_encode_batch(vlog *l, const slice *values, size_t n, buf *enc, slice *stored,
                             char *encoded)
{
    int rc, e;

    for (size_t i = 0; i < n; i++) {
        size_t at = enc->len;
        if ((rc = vlog_encode_value(l->opts.compression, l->opts.zstd_level, values[i], enc,
                                    &e)) != 0)
            return rc;
        encoded[i] = (char)e;
        /* Offsets for now: enc may still move. */
        stored[i] = e ? slice_make(NULL, enc->len - at) : values[i];
        if (e)
            stored[i].data = (const char *)(uintptr_t)at;
    }
    for (size_t i = 0; i < n; i++)
        if (encoded[i])
            stored[i].data = enc->data + (uintptr_t)stored[i].data;
    return 0;
}

int vlog_append_batch(vlog *l, const slice *ikeys, const slice *values, size_t n, vptr *ptrs)
{
    slice stored_small[16], *stored = stored_small;
    char encoded_small[16], *encoded = encoded_small;
    buf enc = {0};
    int rc, locked = 0;

    for (size_t i = 0; i < n; i++)
        if ((rc = vlog_validate(ikeys[i], values[i])) != 0)
            goto fail;
    if (n > 16 && ((stored = malloc(n * sizeof(*stored))) == NULL ||
                   (encoded = malloc(n)) == NULL)) {
        rc = status_err(STOAT_ENOMEM, "vlog: out of memory");
        goto fail;
    }
    if (!l->opts.read_only && (rc = vlog_encode_batch(l, values, n, &enc, stored, encoded)) != 0)
        goto fail;
    pthread_mutex_lock(&l->wmu);
    locked = 1;
    if ((rc = vlog_writable_locked(l)) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if ((rc = vlog_append_one_locked(l, ikeys[i], stored[i], encoded[i], &ptrs[i])) != 0)
            goto fail;
    if ((rc = vlog_flush_locked(l)) != 0)
        goto fail;
    pthread_mutex_unlock(&l->wmu);
    rc = 0;
    goto out;
fail:
    if (locked) {
        buf_reset(&l->gather);  /* gathered records were never written */
        pthread_mutex_unlock(&l->wmu);
    }
    if (n > 0)
        memset(ptrs, 0, n * sizeof(*ptrs));
out:
    if (stored != stored_small)
        free(stored);
    if (encoded != encoded_small)
        free(encoded);
    buf_free(&enc);
    return rc;
}

int vlog_append(vlog *l, slice ikey, slice value, vptr *ptr)
{
    return vlog_append_batch(l, &ikey, &value, 1, ptr);
}

int vlog_rotate(vlog *l)
{
    int rc;

    pthread_mutex_lock(&l->wmu);
    if ((rc = vlog_writable_locked(l)) == 0 && l->active != NULL &&
        l->active->size > VLOG_HEADER_LEN && (rc = vlog_seal_locked(l)) == 0)
        rc = vlog_create_locked(l);
    pthread_mutex_unlock(&l->wmu);
    return rc;
}

/* A file another process may have made: opened and listed (sealed) if
 * it exists and is not listed yet (shared mode). */
int vlog_discover(vlog *l, uint32_t fid)
{
    vlog_file *vf = NULL;
    uint64_t size;
    int rc, active;

    if (vlog_pin(l, fid, &vf, &size, &active) == 0) {
        vlog_unref(l, vf);
        return 0;
    }
    rc = vlog_open_older(l, fid);
    if (rc == STOAT_EEXIST)
        rc = 0;     /* a concurrent discovery listed it first */
    return rc;
}

int vlog_adopt(vlog *l, uint32_t fid, uint64_t end)
{
    vlog_file *vf = NULL;
    uint64_t size;
    int rc, active;

    pthread_mutex_lock(&l->wmu);
    if ((rc = vlog_writable_locked(l)) != 0)
        goto out;
    if ((uint64_t)fid + 1 > l->next_fid)
        l->next_fid = (uint64_t)fid + 1;
    if (l->active != NULL && l->active->fid == fid) {
        pthread_mutex_lock(&l->mu);
        l->active->size = end;      /* other processes appended up to here */
        pthread_mutex_unlock(&l->mu);
        goto out;
    }
    if (l->active != NULL && (rc = vlog_seal_locked(l)) != 0)
        goto out;
    if (fid == 0)
        goto out;
    if ((rc = vlog_discover(l, fid)) != 0 || (rc = vlog_pin(l, fid, &vf, &size, &active)) != 0)
        goto out;
    if (vf->wf == NULL)
        rc = env_open(l->env, vf->path, ENV_WRITE, &vf->wf);
    if (rc == 0) {
        pthread_mutex_lock(&l->mu);
        if (vf->in_lru)
            vlog_lru_unlink_locked(l, vf);     /* the active file is never evicted */
        vf->active = 1;
        vf->size = end;
        pthread_mutex_unlock(&l->mu);
        l->active = vf;
    }
    vlog_unref(l, vf);
out:
    pthread_mutex_unlock(&l->wmu);
    return rc;
}

/* ---- sync ---- */

static int vlog_sync_files_locked(vlog *l, uint64_t *gen)
{
    int rc, need_dir;

    for (size_t i = 0; i < l->n_unsynced; i++)
        if ((rc = env_sync(vlog_wfd(l->unsynced[i]))) != 0)
            return rc;
    if (l->active != NULL && l->active->dirty && (rc = env_sync(vlog_wfd(l->active))) != 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    *gen = l->dir_gen;
    need_dir = l->dir_gen != l->dir_synced_gen;
    pthread_mutex_unlock(&l->mu);
    return need_dir ? env_sync_dir(l->env, l->dir) : 0;
}

int vlog_sync(vlog *l)
{
    uint64_t gen;
    size_t n;
    int rc;

    pthread_mutex_lock(&l->wmu);
    if (l->opts.read_only) {
        pthread_mutex_unlock(&l->wmu);
        return 0;
    }
    if ((rc = vlog_writable_locked(l)) != 0 || (rc = vlog_sync_files_locked(l, &gen)) != 0) {
        if (rc != 0 && !l->error)
            vlog_set_error_locked(l, rc);
        pthread_mutex_unlock(&l->wmu);
        return rc;
    }
    pthread_mutex_lock(&l->mu);
    if (l->active != NULL)
        l->active->dirty = 0;
    for (size_t i = 0; i < l->n_unsynced; i++)
        l->unsynced[i]->dirty = 0;
    l->dir_synced_gen = gen;
    vlog_evict_locked(l);   /* synced files may be closed now */
    pthread_mutex_unlock(&l->mu);
    n = l->n_unsynced;
    l->n_unsynced = 0;
    for (size_t i = 0; i < n; i++)
        vlog_unref(l, l->unsynced[i]);
    pthread_mutex_unlock(&l->wmu);
    return 0;
}

int vlog_sync_shared(vlog *l, uint32_t from, uint32_t to)
{
    uint32_t *fids = NULL;
    size_t n = 0;
    int rc;

    if (!l->opts.shared || l->opts.read_only || to == 0)
        return 0;
    if ((rc = vlog_list(l, &fids, &n)) != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        vlog_file *vf = NULL;
        uint64_t size;
        int active;

        if (fids[i] < from || fids[i] > to)
            continue;
        if ((rc = vlog_discover(l, fids[i])) == 0 &&
            (rc = vlog_pin(l, fids[i], &vf, &size, &active)) == 0) {
            rc = env_sync(vf->f);
            vlog_unref(l, vf);
        }
        if (rc == STOAT_ENOTFOUND)
            rc = 0;     /* collected by GC and removed since the listing */
    }
    free(fids);
    return rc;
}
