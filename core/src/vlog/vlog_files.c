/*
 * vlog_files.c - the value log's file table (sorted by fid), the LRU of
 * open descriptors of sealed files, pins and removal. Guarded by the log's
 * `mu` (the _locked functions expect it held); the invariants are in
 * vlog.c's opening comment.
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
#include "env/env_map.h"
#include "env/filename.h"
#include "vlog/vlog_int.h"

/* ---- the file table and the LRU ---- */

vlog_file *vlog_file_new(vlog *l, uint32_t fid)
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

/* Drops vf's mapping (no pin may be left that borrows from it: eviction
 * and destruction take only files nobody else references). */
void vlog_unmap_locked(vlog_file *vf)
{
    if (vf->map != NULL)
        env_unmap(vf->map - vf->map_skip, vf->map_len + vf->map_skip);
    free((void *)vf->checked);
    vf->map = NULL;
    vf->map_len = 0;
    vf->checked = NULL;
}

/* Closes, unlinks if removed, frees. Returns the unlink's result. */
int vlog_file_destroy(vlog *l, vlog_file *vf)
{
    int rc = 0;

    vlog_unmap_locked(vf);
    env_close(vf->f);
    env_close(vf->wf);
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


/* Drops one reference; the last one destroys the file. Never changes the
 * caller's status message. */
void vlog_unref(vlog *l, vlog_file *vf)
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

int vlog_insert_locked(vlog *l, vlog_file *vf)
{
    int found;
    size_t i = vlog_find_locked(l, vf->fid, &found);

    if (found)
        return STOAT_EEXIST;    /* shared mode: another thread discovered it first */
    if (VEC_ROOM(l->files, l->n, l->cap, 16) != 0)
        return status_err(STOAT_ENOMEM, "vlog: out of memory");
    memmove(l->files + i + 1, l->files + i, (l->n - i) * sizeof(*l->files));
    l->files[i] = vf;
    l->n++;
    return 0;
}

void vlog_lru_unlink_locked(vlog *l, vlog_file *vf)
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
void vlog_evict_locked(vlog *l)
{
    vlog_file *vf = l->lru.next, *next;

    while (l->n_open > l->opts.max_open_files && vf != &l->lru) {
        next = vf->next;
        if (vf->refs == 1 && !vf->dirty) {
            vlog_lru_unlink_locked(l, vf);
            vlog_unmap_locked(vf);
            env_close(vf->f);
            vf->f = NULL;
        }
        vf = next;
    }
}

/* Adds an open sealed file to the LRU as most recent. */
void vlog_lru_add_locked(vlog *l, vlog_file *vf)
{
    vlog_lru_push_locked(l, vf);
    vlog_evict_locked(l);
}

/*
 * Maps the file vf (pinned by the caller, size readable bytes) unless it
 * is mapped already or cannot be; the first mapping made wins. The active
 * file is mapped to file_size bytes (past its end for now): its records
 * below the published size never change (appends only add after it, and a
 * failed append cuts back only what was never published), and reads never
 * look past that size, so the pages past the end are never touched.
 */
static void vlog_map(vlog *l, vlog_file *vf, uint64_t size, int active)
{
    uint64_t len = active && l->opts.file_size > size ? l->opts.file_size : size;
    uint64_t words = (len / VLOG_CHECK_GRAIN + 64) / 64;
    /* An encrypted file is mapped whole; the formats' offsets start past
     * its header (crypt_env.h). */
    uint64_t skip = crypt_sealed(vf->f) ? CRYPT_HEADER_LEN : 0;
    _Atomic uint64_t *checked;
    const char *map = NULL;
    char msg[STATUS_MSG_MAX];
    int rc;

    snprintf(msg, sizeof(msg), "%s", status_msg());
    rc = env_map_file(crypt_env_base(l->env), vf->path, len + skip, &map);
    status_set_msg(msg);    /* a refused mapping is no error: reads use pread */
    /* calloc of a large bitmap takes fresh zero pages: untouched parts of
     * it cost no memory. */
    checked = rc == 0 ? calloc((size_t)words, sizeof(*checked)) : NULL;
    pthread_mutex_lock(&l->mu);
    if (checked != NULL && vf->map == NULL) {
        vf->map = map + skip;
        vf->map_len = len;
        vf->map_skip = skip;
        vf->checked = checked;
        map = NULL;
        checked = NULL;
    } else if (rc != 0 && rc != STOAT_ENOTFOUND) {
        vf->map_failed = 1;
    }
    pthread_mutex_unlock(&l->mu);
    env_unmap(map, len + skip);
    free((void *)checked);
}

/*
 * Pins file fid for a read or scan: *out stays valid, with an open
 * descriptor, until vlog_unref. *size is its readable size now. Opens the
 * file outside the lock when the LRU had closed it. With map (not NULL), a
 * file of an unshared log is mapped too when it can be: *map is its
 * mapping (of at least *size bytes, or NULL), valid while the pin lasts.
 */
int vlog_pin_mapped(vlog *l, uint32_t fid, vlog_file **out, uint64_t *size, int *active,
                    const char **map)
{
    vlog_file *vf;
    env_file *f = NULL;
    uint64_t map_size = 0;
    int rc, need_open, need_map, need_final = 0, state = 0;

    *out = NULL;
    if (map != NULL)
        *map = NULL;
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
    if (!l->opts.shared) {
        map_size = vf->size;
        need_map = vf->size > VLOG_HEADER_LEN;
    } else if (map == NULL) {
        need_map = 0;
    } else {
        /* 1: sealed in every process (final size); 2: the published one,
         * readable below its published end; 0: read by pread. */
        state = fid < l->pub_fid && !vf->active ? 1 : fid == l->pub_fid ? 2 : 0;
        need_final = state == 1 && !vf->final_size;
        if (state == 2)
            *size = l->pub_end;
        map_size = *size;
        need_map = state != 0;
    }
    need_map = need_map && map != NULL && vf->map == NULL && !vf->map_failed && !l->opts.no_map;
    if (map != NULL && (!l->opts.shared || (state != 0 && !need_final)))
        *map = vf->map != NULL && vf->map_len >= *size ? vf->map : NULL;
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
    if (need_final && map != NULL) {
        /* Sealed everywhere: what the file holds now is all it will ever
         * hold (this process may have seen it shorter, while others
         * appended). The pinned descriptor stays open. */
        uint64_t now;
        if (env_file_size(vf->f, &now) == 0) {
            pthread_mutex_lock(&l->mu);
            if (now > vf->size)
                vf->size = now;
            vf->final_size = 1;
            *size = map_size = vf->size;
            *map = vf->map != NULL && vf->map_len >= *size ? vf->map : NULL;
            pthread_mutex_unlock(&l->mu);
        } else {
            need_map = 0;
        }
    }
    if (need_map && map_size > VLOG_HEADER_LEN) {
        vlog_map(l, vf, map_size, !l->opts.shared ? *active : state == 2);
        pthread_mutex_lock(&l->mu);
        *map = vf->map != NULL && vf->map_len >= *size ? vf->map : NULL;
        pthread_mutex_unlock(&l->mu);
    }
    *out = vf;
    return 0;
}

void vlog_set_published(vlog *l, uint32_t fid, uint64_t end)
{
    pthread_mutex_lock(&l->mu);
    if (fid > l->pub_fid || (fid == l->pub_fid && end > l->pub_end)) {
        l->pub_fid = fid;
        l->pub_end = end;
    }
    pthread_mutex_unlock(&l->mu);
}

int vlog_pin(vlog *l, uint32_t fid, vlog_file **out, uint64_t *size, int *active)
{
    return vlog_pin_mapped(l, fid, out, size, active, NULL);
}

void vlog_prefetch(vlog *l, const vptr *ptr, int cold)
{
    const char *map = NULL;
    uint64_t len = 0, skip = 0;
    vlog_file *vf;

    pthread_mutex_lock(&l->mu);
    vf = vlog_lookup_locked(l, ptr->fid);
    if (vf != NULL && vf->map != NULL && ptr->offset < vf->size &&
        ptr->len <= vf->size - ptr->offset) {
        map = vf->map;
        len = vf->map_len;
        skip = vf->map_skip;
        if (cold)
            vf->refs++;     /* the mapping stays while madvise runs unlocked */
    }
    pthread_mutex_unlock(&l->mu);
    if (map == NULL)
        return;
    __builtin_prefetch(map + ptr->offset);
    __builtin_prefetch(map + ptr->offset + 64);
    if (cold) {
        env_map_willneed(map - skip, len + skip, ptr->offset + skip, ptr->len);
        vlog_unref(l, vf);
    }
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
