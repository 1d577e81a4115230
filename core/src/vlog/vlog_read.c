/*
 * vlog_read.c - reading the value log: a pointer checked against its
 * file, the record fetched (out of the file's mapping when there is one,
 * else with pread), opened when the file is encrypted, checked (a mapped
 * record's checksum on its first read only), its value decompressed or
 * lent out of the mapping (vlog_value); and the scan of one file's
 * records. Readers pin the file (vlog_files.c) and hold no lock across
 * I/O; the invariants are in vlog.c's opening comment.
 */
#include <stdlib.h>
#include <string.h>

#include "base/coding.h"
#include "base/status.h"
#include "crypt/crypt_env.h"
#include "vlog/vlog_int.h"

/* STOAT_ECORRUPT for a pointer too short to address any record. */
static int vlog_ptr_check(vlog *l, const vptr *p, slice ikey)
{
    char ks[VLOG_KEY_STR];

    if (p->len >= VLOG_REC_OVERHEAD + IKEY_SUFFIX_LEN)
        return 0;
    return status_err(STOAT_ECORRUPT, "%s/%06u.vlog: bad value pointer length %u (key %s)",
                      l->dir, p->fid, p->len, vlog_key_str(ikey, ks, sizeof(ks)));
}

/* Pins the file p points into (discovering it in shared mode); with map,
 * maps it when it can (*map NULL otherwise). */
static int vlog_pin_for(vlog *l, const vptr *p, slice ikey, vlog_file **vf, uint64_t *size,
                        const char **map)
{
    char ks[VLOG_KEY_STR];
    int rc, active;

    rc = vlog_pin_mapped(l, p->fid, vf, size, &active, map);
    if (rc == STOAT_ENOTFOUND && l->opts.shared && (rc = vlog_discover(l, p->fid)) == 0)
        rc = vlog_pin_mapped(l, p->fid, vf, size, &active, map);
    if (rc == STOAT_ENOTFOUND)
        rc = status_err(rc, "%s/%06u.vlog: value log file missing (removed?) for key %s",
                        l->dir, p->fid, vlog_key_str(ikey, ks, sizeof(ks)));
    if (rc != 0)
        return rc;
#ifdef STOAT_TESTING
    if (l->opts.read_hook != NULL)
        l->opts.read_hook(l->opts.read_hook_arg, p->fid);
#endif
    return 0;
}

/* STOAT_ECORRUPT when p reaches outside the file's size bytes. */
static int vlog_bounds_check(const vlog_file *vf, const vptr *p, slice ikey, uint64_t size)
{
    char ks[VLOG_KEY_STR];

    if (p->offset >= VLOG_HEADER_LEN && p->offset <= size && p->len <= size - p->offset)
        return 0;
    return status_err(STOAT_ECORRUPT,
                      "%s: value pointer (offset %llu, %u bytes) past the end of the file "
                      "(%llu bytes) for key %s",
                      vf->path, (unsigned long long)p->offset, p->len, (unsigned long long)size,
                      vlog_key_str(ikey, ks, sizeof(ks)));
}

/* The sealed record at p of vf (its p->len bytes at sealed) opened, its
 * header, length and key checked: rec (replaced) holds it as it is in
 * the clear. */
static int vlog_unseal_into(vlog_file *vf, const vptr *p, slice ikey, const char *sealed,
                            buf *rec)
{
    buf plain = {0};
    vptr q;
    int rc;

    if ((rc = vlog_rec_unseal(vf->f, vf->path, p, sealed, &plain, &q)) == 0 &&
        (rc = vlog_rec_check_header(vf->path, &q, plain.data, ikey)) == 0) {
        buf_free(rec);
        *rec = plain;
        return 0;
    }
    buf_free(&plain);
    return rc;
}

/* Reads and verifies the record at p, pinned in vf (size bytes), into rec
 * (reset first) with pread. */
static int vlog_fetch_pinned(vlog *l, vlog_file *vf, uint64_t size, const vptr *p, slice ikey,
                             buf *rec)
{
    int rc;

    buf_reset(rec);
    /* Shared mode: other processes append to files this one knows the
     * size of only up to when it last looked. */
    if (l->opts.shared && (p->offset > size || p->len > size - p->offset))
        (void)env_file_size(vf->f, &size);
    if ((rc = vlog_bounds_check(vf, p, ikey, size)) != 0)
        return rc;
    if (buf_reserve(rec, p->len) != 0)
        return status_err(STOAT_ENOMEM, "%s: no memory for a %u-byte record", vf->path, p->len);
    if ((rc = env_read_exact(vf->f, p->offset, rec->data, p->len)) != 0)
        return rc;
    rec->len = p->len;
    if (crypt_sealed(vf->f))
        return vlog_unseal_into(vf, p, ikey, rec->data, rec);
    return vlog_rec_verify(vf->path, p, rec->data, ikey);
}

/* The record at p as it is in the clear into rec: opened out of the
 * mapping of an encrypted file (map; nothing is borrowed then), else
 * read with pread. */
static int vlog_fetch_clear(vlog *l, vlog_file *vf, uint64_t size, const vptr *p, slice ikey,
                            const char *map, buf *rec)
{
    int rc;

    if (map == NULL)
        return vlog_fetch_pinned(l, vf, size, p, ikey, rec);
    if ((rc = vlog_bounds_check(vf, p, ikey, size)) != 0)
        return rc;
    return vlog_unseal_into(vf, p, ikey, map + p->offset, rec);
}

/* Reads and verifies the record at p into rec (reset first). */
static int vlog_fetch(vlog *l, const vptr *p, slice ikey, buf *rec)
{
    vlog_file *vf = NULL;
    uint64_t size;
    int rc;

    buf_reset(rec);
    if ((rc = vlog_ptr_check(l, p, ikey)) != 0 ||
        (rc = vlog_pin_for(l, p, ikey, &vf, &size, NULL)) != 0)
        return rc;
    rc = vlog_fetch_pinned(l, vf, size, p, ikey, rec);
    vlog_unref(l, vf);
    return rc;
}

/*
 * The record at p in the mapped file vf (size bytes readable, all within
 * the mapping): its header, length and key are
 * checked on every read, its checksum on the first read only (the
 * checked bit of its offset remembers a success; a failure is reported
 * again on every read).
 */
static int vlog_mapped_record(vlog_file *vf, uint64_t size, const vptr *p, slice ikey,
                              const char **rec)
{
    uint64_t bit = p->offset / VLOG_CHECK_GRAIN, mask = 1ull << (bit % 64);
    _Atomic uint64_t *word;
    int rc;

    if ((rc = vlog_bounds_check(vf, p, ikey, size)) != 0)
        return rc;
    *rec = vf->map + p->offset;
    word = &vf->checked[bit / 64];
    if (atomic_load_explicit(word, memory_order_acquire) & mask)
        return vlog_rec_check_header(vf->path, p, *rec, ikey);
    if ((rc = vlog_rec_verify(vf->path, p, *rec, ikey)) != 0)
        return rc;
    atomic_fetch_or_explicit(word, mask, memory_order_release);
    return 0;
}

void vlog_value_release(vlog *l, vlog_value *v)
{
    if (v->pin != NULL) {
        vlog_unref(l, v->pin);
        v->pin = NULL;
    }
}

void vlog_value_free(vlog *l, vlog_value *v)
{
    vlog_value_release(l, v);
    buf_free(&v->buf);
}

int vlog_get(vlog *l, const vptr *ptr, slice ikey, vlog_value *v, slice *value)
{
    vlog_file *vf = NULL;
    const char *map = NULL, *rec;
    uint64_t size = 0;
    int rc;

    *value = slice_make(NULL, 0);
    if ((rc = vlog_ptr_check(l, ptr, ikey)) != 0) {
        vlog_value_release(l, v);
        return rc;
    }
    if (v->pin != NULL && v->pin->fid == ptr->fid && ptr->offset <= v->size &&
        ptr->len <= v->size - ptr->offset) {
        /* A scan's next value in the same file, within what was readable
         * when it was pinned: the pin it holds serves (a file's mapping
         * lasts as long as any pin on it). */
        vf = v->pin;
        map = vf->map;
        size = v->size;
        v->pin = NULL;
    } else {
        vlog_value_release(l, v);
        if ((rc = vlog_pin_for(l, ptr, ikey, &vf, &size, &map)) != 0)
            return rc;
    }
    /* Shared mode: past what this process knows is published, the
     * mapping may end before the record (pread looks again). */
    if (map != NULL && l->opts.shared && (ptr->offset > size || ptr->len > size - ptr->offset))
        map = NULL;
    if (map != NULL && !crypt_sealed(vf->f)) {
        if ((rc = vlog_mapped_record(vf, size, ptr, ikey, &rec)) == 0)
            rc = vlog_rec_value(vf->path, ptr->offset, rec, &v->buf, value);
    } else if ((rc = vlog_fetch_clear(l, vf, size, ptr, ikey, map, &v->buf)) == 0) {
        /* The value moves to the front of the buffer, or decompresses
         * into a new one. */
        rec = v->buf.data;
        if (get_fixed32(rec + 4) & VLOG_VLEN_ENCODED) {
            buf raw = {0};
            if ((rc = vlog_rec_value(vf->path, ptr->offset, rec, &raw, value)) == 0) {
                buf_free(&v->buf);
                v->buf = raw;
            } else {
                buf_free(&raw);
            }
        } else {
            size_t vlen = get_fixed32(rec + 4);
            memmove(v->buf.data, rec + VLOG_REC_HEADER_LEN + ikey.len, vlen);
            v->buf.len = vlen;
            *value = slice_make(v->buf.data, vlen);
        }
    }
    /* Only a value borrowed from the mapping keeps the file pinned, or any
     * value of a mapped file when asked to. */
    if (rc == 0 && map != NULL &&
        (v->keep_pin || (value->data >= map && value->data < map + vf->map_len))) {
        v->pin = vf;
        v->size = size;
    } else
        vlog_unref(l, vf);
    if (rc != 0)
        *value = slice_make(NULL, 0);
    return rc;
}

/* Records up to this size are asked for whole; of longer ones, the
 * first lines (the hardware prefetcher follows a sequential read). */
#define VLOG_PREFETCH_MAX 1024

void vlog_value_prefetch(vlog *l, const vlog_value *v, const vptr *ptr)
{
    const vlog_file *vf = v->pin;
    const char *rec;
    uint64_t bit, len;

    if (vf == NULL || vf->fid != ptr->fid || vf->map == NULL || ptr->offset > v->size ||
        ptr->len > v->size - ptr->offset) {
        vlog_prefetch(l, ptr, 0);
        return;
    }
    /* The pin keeps the mapping and the checked bits; a prefetch never
     * faults, and past the readable size nothing is asked for. */
    rec = vf->map + ptr->offset;
    bit = ptr->offset / VLOG_CHECK_GRAIN;
    __builtin_prefetch((const void *)&vf->checked[bit / 64]);
    len = ptr->len < VLOG_PREFETCH_MAX ? ptr->len : VLOG_PREFETCH_MAX;
    for (uint64_t o = 0; o < len; o += 64)
        __builtin_prefetch(rec + o);
    __builtin_prefetch(rec + len - 1);
}

int vlog_read(vlog *l, const vptr *ptr, slice ikey, buf *out)
{
    vlog_value v = {0};
    slice val;
    int rc = vlog_get(l, ptr, ikey, &v, &val);

    buf_reset(out);
    if (rc == 0 && val.data != v.buf.data) {
        /* out holds memory even for an empty value, as before mappings. */
        if (buf_reserve(out, val.len ? val.len : 1) != 0 || buf_append(out, val.data, val.len) != 0)
            rc = status_err(STOAT_ENOMEM, "%s: no memory for a %zu-byte value", l->dir, val.len);
    } else if (rc == 0) {
        buf_free(out);
        *out = v.buf;
        v.buf = (buf){0};
    }
    vlog_value_free(l, &v);
    return rc;
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
    if (l->opts.shared) {
        /* Other processes appended to it while it was their active file:
         * the walk covers what the file holds now (sealed everywhere when
         * GC scans it). */
        uint64_t now;
        if ((rc = env_file_size(vf->f, &now)) != 0) {
            vlog_unref(l, vf);
            return rc;
        }
        pthread_mutex_lock(&l->mu);
        if (now > vf->size)
            vf->size = now;
        pthread_mutex_unlock(&l->mu);
        k.w.size = now;
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
    buf_free(&k.raw);
    buf_free(&k.plain);
    vlog_unref(l, vf);
    return rc;
}
