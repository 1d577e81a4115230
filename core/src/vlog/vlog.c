/*
 * vlog.c - the value log (format: core/FORMAT.md, "Value log").
 *
 * Owns the vlog files of one directory: their table (sorted by fid), their
 * descriptors (an LRU of open sealed files), the active file's append
 * point, the record layout, the recovery of the newest file's tail and the
 * deferred unlink of removed files.
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
 *
 * Locks: `mu` guards the table, the LRU, refs, sizes, the dirty flags and
 * the directory generation counters; it is held briefly and never across
 * I/O except descriptor closes on eviction. `wmu` (the writer lock) guards
 * the active file's append side, the gather buffer, the unsynced list and
 * the sticky error, and is held across appends and syncs. Order: wmu, then
 * mu. Fields written by the writer that readers look at (size, dirty,
 * active) are written with both held.
 */
#include "env/env.h"
#include "env/file_window.h"
#include "vlog/vlog.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/checksum.h"
#include "base/coding.h"
#include "base/status.h"
#include "base/vec.h"
#include "env/filename.h"

#define VLOG_READ_CHUNK (1u << 20)      /* scan and recovery window */
#define VLOG_GATHER_LEN (1u << 20)      /* gathered records are written at this size */
#define VLOG_DIRECT_LEN (256u << 10)    /* records this large are not copied */
#define VLOG_KEY_STR (STATUS_KEY_MAX + 24)  /* room for "key"@version */
#define VLOG_NONE UINT64_MAX

/* Record verdicts of vlog_rec_classify (errors are negative). */
enum { VLOG_REC_OK, VLOG_REC_TORN, VLOG_REC_BAD, VLOG_REC_LOST };

/* vlog_header_check's verdict for a file that holds no header yet. */
#define VLOG_TORN 1

typedef struct vlog_file {
    uint32_t fid;
    int refs;                       /* table + pins + unsynced list */
    int removed;                    /* unlink when the last reference goes */
    int active;                     /* the file appends go to */
    int dirty;                      /* appended to since its last sync */
    int in_lru;
    uint64_t size;                  /* bytes of complete records (+ header) */
    env_file *f;                    /* NULL while closed */
    char *path;
    struct vlog_file *prev, *next;  /* LRU links while in_lru */
} vlog_file;

struct vlog {
    env *env;
    char *dir;
    vlog_options opts;

    pthread_mutex_t mu;
    vlog_file **files;              /* sorted by fid */
    size_t n, cap;
    vlog_file lru;                  /* sentinel; lru.next is least recent */
    int n_open;                     /* files in the LRU */
    uint64_t dir_gen;               /* creations and unlinks so far */
    uint64_t dir_synced_gen;        /* dir_gen at the last directory sync */

    pthread_mutex_t wmu;
    vlog_file *active;
    uint64_t next_fid;
    int error;                      /* sticky write error, 0 if none */
    char error_msg[STATUS_MSG_MAX];
    buf gather;                     /* records not yet written */
    vlog_file **unsynced;           /* sealed and dirty, one reference each */
    size_t n_unsynced, cap_unsynced;
};

/* ---- names, keys and messages ---- */

char *vlog_path(const char *dir, uint32_t fid)
{
    return filename_path(dir, fid, FILENAME_EXT_VLOG);
}

/* The fid a directory entry names, or 0 when it is not a vlog file
 * (only the canonical spelling counts: "1.vlog" is not 000001.vlog). */
static uint32_t vlog_parse_name(const char *name)
{
    uint64_t v;

    if (!filename_parse(name, FILENAME_EXT_VLOG, 1, &v) || v == 0 || v > UINT32_MAX)
        return 0;
    return (uint32_t)v;
}

/* A printable form of an internal key for messages: "user key"@version
 * (the key as status_key_str prints every key). */
static const char *vlog_key_str(slice ik, char *dst, size_t cap)
{
    size_t ulen = ik.len >= IKEY_SUFFIX_LEN ? ik.len - IKEY_SUFFIX_LEN : ik.len;
    size_t n;

    assert(cap >= STATUS_KEY_MAX + 24);
    status_key_str(ik.data, ulen, dst);
    n = strlen(dst);
    if (ik.len >= IKEY_SUFFIX_LEN)
        snprintf(dst + n, cap - n, "@%llu", (unsigned long long)ikey_version(ik));
    return dst;
}

/* Records a message that does not replace this thread's current one. */
static void vlog_quiet_remove(env *e, const char *path)
{
    char msg[STATUS_MSG_MAX];

    snprintf(msg, sizeof(msg), "%s", status_msg());
    (void)env_remove(e, path);
    status_set_msg(msg);
}

/* ---- the file table and the LRU ---- */

static vlog_file *vlog_file_new(vlog *l, uint32_t fid)
{
    vlog_file *vf = calloc(1, sizeof(*vf));

    if (vf == NULL || (vf->path = vlog_path(l->dir, fid)) == NULL) {
        free(vf);
        return NULL;
    }
    vf->fid = fid;
    vf->refs = 1;
    return vf;
}

/* Closes, unlinks if removed, frees. Returns the unlink's result. */
static int vlog_file_destroy(vlog *l, vlog_file *vf)
{
    int rc = 0;

    env_close(vf->f);
    if (vf->removed) {
        rc = env_remove(l->env, vf->path);
        pthread_mutex_lock(&l->mu);
        l->dir_gen++;
        pthread_mutex_unlock(&l->mu);
    }
    free(vf->path);
    free(vf);
    return rc;
}

static void vlog_evict_locked(vlog *l);

/* Drops one reference; the last one destroys the file. Never changes the
 * caller's status message. */
static void vlog_unref(vlog *l, vlog_file *vf)
{
    char msg[STATUS_MSG_MAX];
    int last;

    pthread_mutex_lock(&l->mu);
    last = --vf->refs == 0;
    if (!last && l->n_open > l->opts.max_open_files)
        vlog_evict_locked(l);   /* the LRU may have gone over while vf was pinned */
    pthread_mutex_unlock(&l->mu);
    if (!last)
        return;
    snprintf(msg, sizeof(msg), "%s", status_msg());
    (void)vlog_file_destroy(l, vf);
    status_set_msg(msg);
}

/* Index of fid in files[], or of where it would go (*found = 0). */
static size_t vlog_find_locked(vlog *l, uint32_t fid, int *found)
{
    size_t lo = 0, hi = l->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->files[mid]->fid < fid)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < l->n && l->files[lo]->fid == fid;
    return lo;
}

static vlog_file *vlog_lookup_locked(vlog *l, uint32_t fid)
{
    int found;
    size_t i = vlog_find_locked(l, fid, &found);

    return found ? l->files[i] : NULL;
}

static int vlog_insert_locked(vlog *l, vlog_file *vf)
{
    int found;
    size_t i = vlog_find_locked(l, vf->fid, &found);

    assert(!found);
    if (VEC_ROOM(l->files, l->n, l->cap, 16) != 0)
        return status_err(STOAT_ENOMEM, "vlog: out of memory");
    memmove(l->files + i + 1, l->files + i, (l->n - i) * sizeof(*l->files));
    l->files[i] = vf;
    l->n++;
    return 0;
}

static void vlog_lru_unlink_locked(vlog *l, vlog_file *vf)
{
    vf->prev->next = vf->next;
    vf->next->prev = vf->prev;
    vf->in_lru = 0;
    l->n_open--;
}

static void vlog_lru_push_locked(vlog *l, vlog_file *vf)
{
    vf->next = &l->lru;
    vf->prev = l->lru.prev;
    vf->prev->next = vf;
    l->lru.prev = vf;
    vf->in_lru = 1;
    l->n_open++;
}

/* Closes least recently used descriptors that nobody uses until the LRU
 * is within its bound (pinned or unsynced files are skipped). */
static void vlog_evict_locked(vlog *l)
{
    vlog_file *vf = l->lru.next, *next;

    while (l->n_open > l->opts.max_open_files && vf != &l->lru) {
        next = vf->next;
        if (vf->refs == 1 && !vf->dirty) {
            vlog_lru_unlink_locked(l, vf);
            env_close(vf->f);
            vf->f = NULL;
        }
        vf = next;
    }
}

/* Adds an open sealed file to the LRU as most recent. */
static void vlog_lru_add_locked(vlog *l, vlog_file *vf)
{
    vlog_lru_push_locked(l, vf);
    vlog_evict_locked(l);
}

/*
 * Pins file fid for a read or scan: *out stays valid, with an open
 * descriptor, until vlog_unref. *size is its readable size now. Opens the
 * file outside the lock when the LRU had closed it.
 */
static int vlog_pin(vlog *l, uint32_t fid, vlog_file **out, uint64_t *size, int *active)
{
    vlog_file *vf;
    env_file *f = NULL;
    int rc, need_open;

    *out = NULL;
    pthread_mutex_lock(&l->mu);
    if ((vf = vlog_lookup_locked(l, fid)) == NULL) {
        pthread_mutex_unlock(&l->mu);
        return STOAT_ENOTFOUND;
    }
    vf->refs++;
    if (vf->in_lru) {
        vlog_lru_unlink_locked(l, vf);
        vlog_lru_push_locked(l, vf);
    }
    *size = vf->size;
    *active = vf->active;
    need_open = vf->f == NULL;
    pthread_mutex_unlock(&l->mu);
    if (need_open) {
        if ((rc = env_open(l->env, vf->path, ENV_READ, &f)) != 0) {
            vlog_unref(l, vf);
            return rc;
        }
        pthread_mutex_lock(&l->mu);
        if (vf->f == NULL) {
            vf->f = f;
            f = NULL;
            if (!vf->removed)
                vlog_lru_add_locked(l, vf);
        }
        pthread_mutex_unlock(&l->mu);
        env_close(f); /* another reader opened it first */
    }
    *out = vf;
    return 0;
}

/* ---- file headers and the record walk ---- */

static void vlog_header_encode(char *h, uint32_t fid)
{
    put_fixed64(h, VLOG_MAGIC);
    put_fixed32(h + 8, VLOG_FORMAT_VERSION);
    put_fixed32(h + 12, fid);
}

/*
 * 0 when the file starts with the header of fid; VLOG_TORN when it holds
 * no header yet (shorter than one and a prefix of it, or all zeros);
 * STOAT_ENOTSUP for a newer format; else STOAT_ECORRUPT.
 */
static int vlog_header_check(file_window *w, uint32_t fid)
{
    char want[VLOG_HEADER_LEN];
    size_t n = w->size < VLOG_HEADER_LEN ? (size_t)w->size : VLOG_HEADER_LEN;
    const char *p = want;
    int rc, zero;

    vlog_header_encode(want, fid);
    if (n > 0 && (rc = file_window_get(w, 0, n, &p)) != 0)
        return rc;
    if (memcmp(p, want, n) == 0)
        return n == VLOG_HEADER_LEN ? 0 : VLOG_TORN;
    if (n == VLOG_HEADER_LEN && get_fixed64(p) == VLOG_MAGIC &&
        get_fixed32(p + 8) > VLOG_FORMAT_VERSION)
        return status_err(STOAT_ENOTSUP, "%s: value log format version %u is newer than %u",
                          w->path, get_fixed32(p + 8), VLOG_FORMAT_VERSION);
    if (n == VLOG_HEADER_LEN && get_fixed64(p) == VLOG_MAGIC &&
        get_fixed32(p + 8) == VLOG_FORMAT_VERSION)
        return status_err(STOAT_ECORRUPT, "%s: header names file %u", w->path,
                          get_fixed32(p + 12));
    if ((rc = file_window_zeros_from(w, 0, &zero)) != 0)
        return rc;
    if (zero)
        return VLOG_TORN;
    return status_err(STOAT_ECORRUPT, "%s: bad value log header at offset 0", w->path);
}

/* 1 when the 12-byte record header at h is intact and its lengths legal. */
static int vlog_rec_header_ok(const char *h)
{
    uint32_t klen = get_fixed32(h), vlen = get_fixed32(h + 4);

    return checksum32(h, 8) == get_fixed32(h + 8) && klen >= IKEY_SUFFIX_LEN &&
           klen <= VLOG_MAX_KEY_LEN && vlen <= STOAT_MAX_VALUE_SIZE;
}

/*
 * Classifies the record at off: VLOG_REC_OK (*rec, *len: the whole
 * record), VLOG_REC_BAD (intact header, failing checksum: *len known),
 * VLOG_REC_TORN (cut short by end of file, a bad last record ending at end
 * of file, or zeros to the end) or VLOG_REC_LOST (bad header, non-zero
 * bytes after it: the next record cannot be found).
 */
static int vlog_rec_classify(file_window *w, uint64_t off, const char **rec, uint64_t *len)
{
    uint64_t rest = w->size - off;
    const char *p;
    int rc, zero;

    if (rest < VLOG_REC_HEADER_LEN)
        return VLOG_REC_TORN;
    if ((rc = file_window_get(w, off, VLOG_REC_HEADER_LEN, &p)) != 0)
        return rc;
    if (!vlog_rec_header_ok(p)) {
        if ((rc = file_window_zeros_from(w, off, &zero)) != 0)
            return rc;
        return zero ? VLOG_REC_TORN : VLOG_REC_LOST;
    }
    *len = vlog_record_len(get_fixed32(p), get_fixed32(p + 4));
    if (*len > rest)
        return VLOG_REC_TORN;
    if ((rc = file_window_get(w, off, (size_t)*len, &p)) != 0)
        return rc;
    *rec = p;
    if (checksum64(p, (size_t)*len - 8) == get_fixed64(p + *len - 8))
        return VLOG_REC_OK;
    return *len == rest ? VLOG_REC_TORN : VLOG_REC_BAD;
}

/* State of a walk over a file's records. */
typedef struct vlog_walk {
    file_window w;
    uint32_t fid;
    int strict;             /* scan: damage is an error; recovery: noted */
    vlog_scan_fn fn;        /* NULL: nothing handed out */
    void *arg;
    uint64_t good_end;      /* end of the last intact record */
    int lost;               /* the record chain broke (non-strict only) */
} vlog_walk;

static int vlog_walk_run(vlog_walk *k)
{
    uint64_t off = VLOG_HEADER_LEN, len = 0, bad_off = VLOG_NONE;
    const char *rec = NULL;
    int kind;

    k->good_end = VLOG_HEADER_LEN;
    while (off < k->w.size) {
        if ((kind = vlog_rec_classify(&k->w, off, &rec, &len)) < 0)
            return kind;
        if (kind == VLOG_REC_TORN)
            break;
        if (kind == VLOG_REC_LOST) {
            if (k->strict)
                return status_err(STOAT_ECORRUPT, "%s: bad record header at offset %llu",
                                  k->w.path, (unsigned long long)off);
            k->lost = 1;
            break;
        }
        if (kind == VLOG_REC_BAD) {
            if (bad_off == VLOG_NONE)
                bad_off = off;
            off += len;
            continue;
        }
        /* A damaged record followed by an intact one is not a torn tail. */
        if (bad_off != VLOG_NONE && k->strict)
            return status_err(STOAT_ECORRUPT, "%s: bad record checksum at offset %llu",
                              k->w.path, (unsigned long long)bad_off);
        bad_off = VLOG_NONE;
        if (k->fn != NULL) {
            uint32_t klen = get_fixed32(rec), vlen = get_fixed32(rec + 4);
            vptr p = {k->fid, off, (uint32_t)len};
            slice ik = slice_make(rec + VLOG_REC_HEADER_LEN, klen);
            slice v = slice_make(rec + VLOG_REC_HEADER_LEN + klen, vlen);
            int rc = k->fn(k->arg, &p, ik, v);
            if (rc != 0)
                return rc;
        }
        off += len;
        k->good_end = off;
    }
    return 0;
}

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
    for (size_t i = 0; i + 1 < n; i++)
        if ((rc = vlog_open_older(l, fids[i])) != 0)
            goto fail;
    if (n > 0) {
        l->next_fid = (uint64_t)fids[n - 1] + 1;
        if ((rc = vlog_open_newest(l, fids[n - 1])) != 0)
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
 * record, or makes the error sticky when that fails too. Returns rc. */
static int vlog_cut_back_locked(vlog *l, int rc)
{
    char msg[STATUS_MSG_MAX];

    snprintf(msg, sizeof(msg), "%s", status_msg());
    buf_reset(&l->gather);
    if (env_truncate(l->active->f, l->active->size) != 0) {
        status_set_msg(msg);
        return vlog_set_error_locked(l, rc);
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
    if ((rc = env_append(l->active->f, l->gather.data, l->gather.len)) != 0)
        return vlog_cut_back_locked(l, rc);
    vlog_publish_locked(l, l->gather.len);
    buf_reset(&l->gather);
    return 0;
}

static void vlog_rec_header(char *h, uint32_t klen, uint32_t vlen)
{
    put_fixed32(h, klen);
    put_fixed32(h + 4, vlen);
    put_fixed32(h + 8, checksum32(h, 8));
}

/* Writes one large record in place, without copying its value. */
static int vlog_write_direct_locked(vlog *l, slice ik, slice v)
{
    char trailer[8];
    size_t hk;
    int rc;

    if (buf_reserve(&l->gather, VLOG_REC_HEADER_LEN + ik.len) != 0)
        return status_err(STOAT_ENOMEM, "vlog: out of memory");
    vlog_rec_header(l->gather.data, (uint32_t)ik.len, (uint32_t)v.len);
    memcpy(l->gather.data + VLOG_REC_HEADER_LEN, ik.data, ik.len);
    hk = VLOG_REC_HEADER_LEN + ik.len;
    put_fixed64(trailer, checksum64_2(l->gather.data, hk, v.data, v.len));
    if ((rc = env_append(l->active->f, l->gather.data, hk)) != 0 ||
        (rc = env_append(l->active->f, v.data, v.len)) != 0 ||
        (rc = env_append(l->active->f, trailer, sizeof(trailer))) != 0)
        return vlog_cut_back_locked(l, rc);
    vlog_publish_locked(l, vlog_record_len(ik.len, v.len));
    return 0;
}

/* Appends one record to the gather buffer (room reserved by the caller). */
static void vlog_gather_rec(buf *g, slice ik, slice v)
{
    char *rec = g->data + g->len;
    size_t n = VLOG_REC_HEADER_LEN + ik.len + v.len;

    vlog_rec_header(rec, (uint32_t)ik.len, (uint32_t)v.len);
    memcpy(rec + VLOG_REC_HEADER_LEN, ik.data, ik.len);
    if (v.len)
        memcpy(rec + VLOG_REC_HEADER_LEN + ik.len, v.data, v.len);
    put_fixed64(rec + n, checksum64(rec, n));
    g->len += n + 8;
}

static int vlog_validate(slice ik, slice v)
{
    if (ik.len < IKEY_SUFFIX_LEN)
        return status_err(STOAT_EINVAL, "vlog: internal key of %zu bytes", ik.len);
    if (ik.len > VLOG_MAX_KEY_LEN)
        return status_err(STOAT_ETOOBIG, "vlog: key of %zu bytes", ik.len);
    if (v.len > STOAT_MAX_VALUE_SIZE)
        return status_err(STOAT_ETOOBIG, "vlog: value of %zu bytes exceeds %u", v.len,
                          STOAT_MAX_VALUE_SIZE);
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

/* Appends one record, rolling over first when it would not fit. */
static int vlog_append_one_locked(vlog *l, slice ik, slice v, vptr *p)
{
    uint64_t len = vlog_record_len(ik.len, v.len), end;
    int rc;

    if (l->active != NULL) {
        end = l->active->size + l->gather.len;
        if (end > VLOG_HEADER_LEN && end + len > l->opts.file_size &&
            ((rc = vlog_flush_locked(l)) != 0 || (rc = vlog_seal_locked(l)) != 0))
            return rc;
    }
    if (l->active == NULL && (rc = vlog_create_locked(l)) != 0)
        return rc;
    p->fid = l->active->fid;
    p->offset = l->active->size + l->gather.len;
    p->len = (uint32_t)len;
    if (len >= VLOG_DIRECT_LEN) {
        if ((rc = vlog_flush_locked(l)) != 0)
            return rc;
        return vlog_write_direct_locked(l, ik, v);
    }
    if (buf_reserve(&l->gather, (size_t)len) != 0)
        return status_err(STOAT_ENOMEM, "vlog: out of memory");
    vlog_gather_rec(&l->gather, ik, v);
    return l->gather.len >= VLOG_GATHER_LEN ? vlog_flush_locked(l) : 0;
}

int vlog_append_batch(vlog *l, const slice *ikeys, const slice *values, size_t n, vptr *ptrs)
{
    int rc;

    pthread_mutex_lock(&l->wmu);
    if ((rc = vlog_writable_locked(l)) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if ((rc = vlog_validate(ikeys[i], values[i])) != 0)
            goto fail;
    for (size_t i = 0; i < n; i++)
        if ((rc = vlog_append_one_locked(l, ikeys[i], values[i], &ptrs[i])) != 0)
            goto fail;
    if ((rc = vlog_flush_locked(l)) != 0)
        goto fail;
    pthread_mutex_unlock(&l->wmu);
    return 0;
fail:
    buf_reset(&l->gather);  /* gathered records were never written */
    pthread_mutex_unlock(&l->wmu);
    if (n > 0)
        memset(ptrs, 0, n * sizeof(*ptrs));
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

/* ---- sync ---- */

static int vlog_sync_files_locked(vlog *l, uint64_t *gen)
{
    int rc, need_dir;

    for (size_t i = 0; i < l->n_unsynced; i++)
        if ((rc = env_sync(l->unsynced[i]->f)) != 0)
            return rc;
    if (l->active != NULL && l->active->dirty && (rc = env_sync(l->active->f)) != 0)
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

/* ---- reads ---- */

/* Checks the record rec (len bytes, read from ptr) against ikey. */
static int vlog_rec_verify(const char *path, const vptr *p, const char *rec, slice ikey)
{
    char ks[VLOG_KEY_STR];
    uint32_t klen = get_fixed32(rec), vlen = get_fixed32(rec + 4);
    unsigned long long off = (unsigned long long)p->offset;

    if (!vlog_rec_header_ok(rec))
        return status_err(STOAT_ECORRUPT, "%s: bad record header at offset %llu (key %s)", path,
                          off, vlog_key_str(ikey, ks, sizeof(ks)));
    if (vlog_record_len(klen, vlen) != p->len)
        return status_err(STOAT_ECORRUPT,
                          "%s: record at offset %llu is %llu bytes, pointer says %u (key %s)",
                          path, off, (unsigned long long)vlog_record_len(klen, vlen), p->len,
                          vlog_key_str(ikey, ks, sizeof(ks)));
    if (checksum64(rec, p->len - 8) != get_fixed64(rec + p->len - 8))
        return status_err(STOAT_ECORRUPT, "%s: bad record checksum at offset %llu (key %s)",
                          path, off, vlog_key_str(ikey, ks, sizeof(ks)));
    if (klen != ikey.len || memcmp(rec + VLOG_REC_HEADER_LEN, ikey.data, klen) != 0) {
        char other[VLOG_KEY_STR];
        return status_err(STOAT_ECORRUPT, "%s: record at offset %llu holds key %s, not %s",
                          path, off,
                          vlog_key_str(slice_make(rec + VLOG_REC_HEADER_LEN, klen), other,
                                       sizeof(other)),
                          vlog_key_str(ikey, ks, sizeof(ks)));
    }
    return 0;
}

/* Reads and verifies the record at p into rec (reset first). */
static int vlog_fetch(vlog *l, const vptr *p, slice ikey, buf *rec)
{
    char ks[VLOG_KEY_STR];
    vlog_file *vf = NULL;
    uint64_t size;
    int rc, active;

    buf_reset(rec);
    if (p->len < VLOG_REC_OVERHEAD + IKEY_SUFFIX_LEN)
        return status_err(STOAT_ECORRUPT, "%s/%06u.vlog: bad value pointer length %u (key %s)",
                          l->dir, p->fid, p->len, vlog_key_str(ikey, ks, sizeof(ks)));
    if ((rc = vlog_pin(l, p->fid, &vf, &size, &active)) != 0) {
        if (rc == STOAT_ENOTFOUND)
            rc = status_err(rc, "%s/%06u.vlog: value log file missing (removed?) for key %s",
                            l->dir, p->fid, vlog_key_str(ikey, ks, sizeof(ks)));
        return rc;
    }
#ifdef STOAT_TESTING
    if (l->opts.read_hook != NULL)
        l->opts.read_hook(l->opts.read_hook_arg, p->fid);
#endif
    if (p->offset < VLOG_HEADER_LEN || p->offset > size || p->len > size - p->offset) {
        rc = status_err(STOAT_ECORRUPT,
                        "%s: value pointer (offset %llu, %u bytes) past the end of the file "
                        "(%llu bytes) for key %s",
                        vf->path, (unsigned long long)p->offset, p->len,
                        (unsigned long long)size, vlog_key_str(ikey, ks, sizeof(ks)));
    } else if (buf_reserve(rec, p->len) != 0) {
        rc = status_err(STOAT_ENOMEM, "%s: no memory for a %u-byte record", vf->path, p->len);
    } else if ((rc = env_read_exact(vf->f, p->offset, rec->data, p->len)) == 0) {
        rec->len = p->len;
        rc = vlog_rec_verify(vf->path, p, rec->data, ikey);
    }
    vlog_unref(l, vf);
    return rc;
}

int vlog_read(vlog *l, const vptr *ptr, slice ikey, buf *out)
{
    int rc = vlog_fetch(l, ptr, ikey, out);
    size_t vlen;

    if (rc != 0) {
        buf_reset(out);
        return rc;
    }
    vlen = get_fixed32(out->data + 4);
    memmove(out->data, out->data + VLOG_REC_HEADER_LEN + ikey.len, vlen);
    out->len = vlen;
    return 0;
}

int vlog_check(vlog *l, const vptr *ptr, slice ikey)
{
    buf rec = {0};
    int rc = vlog_fetch(l, ptr, ikey, &rec);

    buf_free(&rec);
    return rc;
}

int vlog_scan(vlog *l, uint32_t fid, vlog_scan_fn fn, void *arg)
{
    vlog_walk k = {0};
    vlog_file *vf;
    int rc, active;

    if ((rc = vlog_pin(l, fid, &vf, &k.w.size, &active)) != 0) {
        if (rc == STOAT_ENOTFOUND)
            rc = status_err(rc, "%s/%06u.vlog: no such value log file", l->dir, fid);
        return rc;
    }
    if (active) {
        vlog_unref(l, vf);
        return status_err(STOAT_EINVAL, "%s: scan of the active value log file", vf->path);
    }
    file_window_init(&k.w, vf->f, vf->path, k.w.size, VLOG_READ_CHUNK);
    k.fid = fid;
    k.strict = 1;
    k.fn = fn;
    k.arg = arg;
    if ((rc = vlog_header_check(&k.w, fid)) == 0)
        rc = vlog_walk_run(&k);
    else if (rc == VLOG_TORN)
        rc = 0;     /* a file that never got its header holds no records */
    file_window_free(&k.w);
    vlog_unref(l, vf);
    return rc;
}

/* ---- the file list ---- */

int vlog_files(vlog *l, uint32_t **fids, size_t *n)
{
    int rc = 0;

    *fids = NULL;
    *n = 0;
    pthread_mutex_lock(&l->mu);
    if (l->n > 0 && (*fids = malloc(l->n * sizeof(**fids))) == NULL) {
        rc = status_err(STOAT_ENOMEM, "vlog: out of memory");
    } else {
        for (size_t i = 0; i < l->n; i++)
            (*fids)[i] = l->files[i]->fid;
        *n = l->n;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

uint64_t vlog_file_size(vlog *l, uint32_t fid)
{
    vlog_file *vf;
    uint64_t size;

    pthread_mutex_lock(&l->mu);
    vf = vlog_lookup_locked(l, fid);
    size = vf != NULL ? vf->size : 0;
    pthread_mutex_unlock(&l->mu);
    return size;
}

uint32_t vlog_active_fid(vlog *l)
{
    uint32_t fid = 0;

    pthread_mutex_lock(&l->mu);
    if (l->n > 0 && (l->opts.read_only || l->files[l->n - 1]->active))
        fid = l->files[l->n - 1]->fid;
    pthread_mutex_unlock(&l->mu);
    return fid;
}

/* Takes vf off the unsynced list (wmu and mu held): a file about to be
 * removed need not be synced. Returns the references dropped. */
static int vlog_unsynced_drop_locked(vlog *l, vlog_file *vf)
{
    for (size_t i = 0; i < l->n_unsynced; i++) {
        if (l->unsynced[i] == vf) {
            l->unsynced[i] = l->unsynced[--l->n_unsynced];
            return 1;
        }
    }
    return 0;
}

int vlog_remove_file(vlog *l, uint32_t fid)
{
    vlog_file *vf = NULL;
    size_t i;
    int rc = 0, found, last = 0;

    if (l->opts.read_only)
        return status_err(STOAT_EREADONLY, "%s: value log is read-only", l->dir);
    pthread_mutex_lock(&l->wmu);
    pthread_mutex_lock(&l->mu);
    i = vlog_find_locked(l, fid, &found);
    if (!found)
        rc = status_err(STOAT_ENOTFOUND, "%s/%06u.vlog: no such value log file", l->dir, fid);
    else if (i == l->n - 1)
        rc = status_err(STOAT_EINVAL, "%s/%06u.vlog: the newest value log file stays", l->dir,
                        fid);
    if (rc == 0) {
        vf = l->files[i];
        memmove(l->files + i, l->files + i + 1, (l->n - i - 1) * sizeof(*l->files));
        l->n--;
        vf->removed = 1;
        vf->dirty = 0;
        if (vf->in_lru)
            vlog_lru_unlink_locked(l, vf);
        vf->refs -= 1 + vlog_unsynced_drop_locked(l, vf);
        last = vf->refs == 0;
    }
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_unlock(&l->wmu);
    return last ? vlog_file_destroy(l, vf) : rc;
}

int vlog_open_count(vlog *l)
{
    int n;

    pthread_mutex_lock(&l->mu);
    n = l->n_open;
    pthread_mutex_unlock(&l->mu);
    return n;
}
