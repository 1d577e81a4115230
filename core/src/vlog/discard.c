/*
 * discard.c - discard statistics and their file DISCARD (format:
 * core/FORMAT.md, "DISCARD").
 *
 * Owns an array of (fid, bytes) sorted by fid, holding only nonzero
 * counts, and the file that persists it:
 *
 *     fixed64 magic | fixed32 version | fixed32 count |
 *     count * (fixed32 fid | fixed64 bytes) | fixed64 checksum64
 *
 * Invariants: entries strictly ascending by fid, every bytes > 0; `gen`
 * counts changes and `saved_gen` is the gen the file on disk holds.
 *
 * Threads: `mu` guards the array and the generations. `save_mu`
 * serialises saves (encoded under mu, written outside it), so two saves
 * can never land in the wrong order.
 */
#include "vlog/discard.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/checksum.h"
#include "base/coding.h"
#include "base/status.h"
#include "crypt/crypt_env.h"
#include "env/filename.h"

#define DISCARD_HEADER_LEN 16
#define DISCARD_ENTRY_LEN 12
#define DISCARD_TRAILER_LEN 8

struct discard {
    env *env;
    char *dir;
    char *path;
    int read_only;
    pthread_mutex_t mu;
    pthread_mutex_t save_mu;
    discard_entry *e;
    size_t n, cap;
    uint64_t gen, saved_gen;
};

/* Index of fid, or where it would go (*found = 0). */
static size_t discard_find_locked(const discard *d, uint32_t fid, int *found)
{
    size_t lo = 0, hi = d->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->e[mid].fid < fid)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < d->n && d->e[lo].fid == fid;
    return lo;
}

static int discard_reserve(discard *d, size_t n)
{
    discard_entry *p;
    size_t cap;

    if (n <= d->cap)
        return 0;
    cap = d->cap ? d->cap : 16;
    while (cap < n)
        cap *= 2;
    if ((p = realloc(d->e, cap * sizeof(*p))) == NULL)
        return status_err(STOAT_ENOMEM, "discard: out of memory");
    d->e = p;
    d->cap = cap;
    return 0;
}

/* Checks and loads the bytes of a DISCARD file. */
static int discard_decode(discard *d, const char *data, size_t len)
{
    uint64_t want;
    uint32_t version, count;

    if (len < DISCARD_HEADER_LEN + DISCARD_TRAILER_LEN || get_fixed64(data) != DISCARD_MAGIC)
        return status_err(STOAT_ECORRUPT, "%s: not a DISCARD file (%zu bytes)", d->path, len);
    if ((version = get_fixed32(data + 8)) != DISCARD_FORMAT_VERSION)
        return status_err(version > DISCARD_FORMAT_VERSION ? STOAT_ENOTSUP : STOAT_ECORRUPT,
                          "%s: DISCARD format version %u, expected %u", d->path, version,
                          DISCARD_FORMAT_VERSION);
    count = get_fixed32(data + 12);
    want = DISCARD_HEADER_LEN + (uint64_t)count * DISCARD_ENTRY_LEN + DISCARD_TRAILER_LEN;
    if (len != want)
        return status_err(STOAT_ECORRUPT, "%s: %zu bytes, %u entries need %llu", d->path, len,
                          count, (unsigned long long)want);
    if (checksum64(data, len - DISCARD_TRAILER_LEN) != get_fixed64(data + len - 8))
        return status_err(STOAT_ECORRUPT, "%s: bad checksum", d->path);
    if (discard_reserve(d, count) != 0)
        return STOAT_ENOMEM;
    for (uint32_t i = 0; i < count; i++) {
        const char *p = data + DISCARD_HEADER_LEN + i * DISCARD_ENTRY_LEN;
        discard_entry en = {get_fixed32(p), get_fixed64(p + 4)};
        if (en.bytes == 0 || (i > 0 && en.fid <= d->e[i - 1].fid))
            return status_err(STOAT_ECORRUPT, "%s: bad entry %u (file %u)", d->path, i, en.fid);
        d->e[i] = en;
    }
    d->n = count;
    return 0;
}

static int discard_load(discard *d)
{
    char *data = NULL;
    size_t len = 0;
    int rc = crypt_read_all(d->env, d->path, &data, &len);

    if (rc == STOAT_ENOTFOUND) {
        status_clear();
        return 0;
    }
    if (rc == 0)
        rc = discard_decode(d, data, len);
    free(data);
    return rc;
}

int discard_open(env *e, const char *dir, int read_only, discard **out)
{
    discard *d = calloc(1, sizeof(*d));
    int rc;

    *out = NULL;
    if (d == NULL || (d->dir = strdup(dir)) == NULL ||
        (d->path = env_join(dir, FILENAME_DISCARD)) == NULL) {
        if (d != NULL)
            free(d->dir);
        free(d);
        return status_err(STOAT_ENOMEM, "discard: out of memory");
    }
    d->env = e;
    d->read_only = read_only;
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->save_mu, NULL);
    if ((rc = discard_load(d)) != 0) {
        discard_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

void discard_close(discard *d)
{
    if (d == NULL)
        return;
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->save_mu);
    free(d->e);
    free(d->path);
    free(d->dir);
    free(d);
}

int discard_add(discard *d, uint32_t fid, uint64_t bytes)
{
    size_t i;
    int found, rc = 0;

    if (bytes == 0)
        return 0;
    pthread_mutex_lock(&d->mu);
    i = discard_find_locked(d, fid, &found);
    if (found) {
        d->e[i].bytes = bytes > UINT64_MAX - d->e[i].bytes ? UINT64_MAX : d->e[i].bytes + bytes;
    } else if ((rc = discard_reserve(d, d->n + 1)) == 0) {
        memmove(d->e + i + 1, d->e + i, (d->n - i) * sizeof(*d->e));
        d->e[i].fid = fid;
        d->e[i].bytes = bytes;
        d->n++;
    }
    if (rc == 0)
        d->gen++;
    pthread_mutex_unlock(&d->mu);
    return rc;
}

uint64_t discard_get(discard *d, uint32_t fid)
{
    uint64_t bytes;
    size_t i;
    int found;

    pthread_mutex_lock(&d->mu);
    i = discard_find_locked(d, fid, &found);
    bytes = found ? d->e[i].bytes : 0;
    pthread_mutex_unlock(&d->mu);
    return bytes;
}

void discard_forget(discard *d, uint32_t fid)
{
    size_t i;
    int found;

    pthread_mutex_lock(&d->mu);
    i = discard_find_locked(d, fid, &found);
    if (found) {
        memmove(d->e + i, d->e + i + 1, (d->n - i - 1) * sizeof(*d->e));
        d->n--;
        d->gen++;
    }
    pthread_mutex_unlock(&d->mu);
}

uint64_t discard_total(discard *d)
{
    uint64_t sum = 0;

    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n; i++)
        sum = d->e[i].bytes > UINT64_MAX - sum ? UINT64_MAX : sum + d->e[i].bytes;
    pthread_mutex_unlock(&d->mu);
    return sum;
}

int discard_list(discard *d, discard_entry **out, size_t *n)
{
    int rc = 0;

    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&d->mu);
    if (d->n > 0 && (*out = malloc(d->n * sizeof(**out))) == NULL) {
        rc = status_err(STOAT_ENOMEM, "discard: out of memory");
    } else if (d->n > 0) {
        memcpy(*out, d->e, d->n * sizeof(**out));
        *n = d->n;
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

/* The file's bytes for the counts now (mu held). */
static int discard_encode_locked(const discard *d, buf *b)
{
    if (buf_reserve(b, DISCARD_HEADER_LEN + d->n * DISCARD_ENTRY_LEN + DISCARD_TRAILER_LEN) != 0)
        return status_err(STOAT_ENOMEM, "discard: out of memory");
    buf_put_fixed64(b, DISCARD_MAGIC);
    buf_put_fixed32(b, DISCARD_FORMAT_VERSION);
    buf_put_fixed32(b, (uint32_t)d->n);
    for (size_t i = 0; i < d->n; i++) {
        buf_put_fixed32(b, d->e[i].fid);
        buf_put_fixed64(b, d->e[i].bytes);
    }
    buf_put_fixed64(b, checksum64(b->data, b->len));
    return 0;
}

int discard_save(discard *d)
{
    buf b = {0};
    uint64_t gen;
    int rc = 0;

    pthread_mutex_lock(&d->save_mu);
    pthread_mutex_lock(&d->mu);
    gen = d->gen;
    if (gen != d->saved_gen) {
        if (d->read_only)
            rc = status_err(STOAT_EREADONLY, "%s: read-only, not saved", d->path);
        else
            rc = discard_encode_locked(d, &b);
    }
    pthread_mutex_unlock(&d->mu);
    if (rc == 0 && b.len > 0)
        rc = crypt_write_atomic(d->env, d->dir, d->path, b.data, b.len);
    if (rc == 0 && b.len > 0) {
        pthread_mutex_lock(&d->mu);
        d->saved_gen = gen;
        pthread_mutex_unlock(&d->mu);
    }
    pthread_mutex_unlock(&d->save_mu);
    buf_free(&b);
    return rc;
}
