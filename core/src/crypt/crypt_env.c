/*
 * crypt_env.c - the env of an encrypted database: a header in the clear on
 * every file that holds keys or values, offsets shifted past it, and the
 * seal and open of the formats' units (contract in crypt_env.h, format in
 * core/FORMAT.md, "Encryption at rest").
 *
 * Header (CRYPT_HEADER_LEN bytes):
 *
 *     magic "STOATENC" | fixed32 version | fixed32 kind | fixed64 key id
 *         | salt (16 random bytes) | fixed64 checksum64(the 40 bytes before)
 *
 * Its first 40 bytes, then fixed64 the unit's offset, are the associated
 * data of every unit of the file: a unit authenticates which file (kind,
 * salt) and which place it was written for, and the key id cannot be
 * changed without every unit failing.
 *
 * A file's header is loaded once (under the file's mutex) and never
 * changes after: readers check `ready` (acquire) and then use key and ad
 * without a lock.
 */
#include "crypt/crypt_env.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/checksum.h"
#include "base/coding.h"
#include "base/status.h"
#include "env/filename.h"

#define CRYPT_MAGIC "STOATENC"
#define CRYPT_VERSION 1
#define CRYPT_AD_HEADER 40          /* header bytes that are associated data */
#define CRYPT_AD_LEN (CRYPT_AD_HEADER + 8)

typedef struct crypt_env {
    env base_env;
    env *base;
    key_registry *kr;
} crypt_env;

struct file_seal {
    pthread_mutex_t mu;
    _Atomic int ready;              /* key and ad are set */
    const aead_key *key;
    uint8_t ad[CRYPT_AD_HEADER];
    int kind;
};

typedef struct crypt_file {
    env_file base;
    env_file *inner;
    int absent;             /* the header a crash left unwritten: reads as empty */
    struct file_seal s;
} crypt_file;

static const struct env_ops crypt_ops;

static uint64_t crypt_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int crypt_kind_of(const char *path)
{
    const char *name = strrchr(path, '/');
    char base[FILENAME_MAX_LEN];
    size_t n;
    uint64_t id;

    name = name ? name + 1 : path;
    n = strlen(name);
    if (n >= 4 && strcmp(name + n - 4, ".tmp") == 0)
        n -= 4;
    if (n >= sizeof(base))
        return 0;
    memcpy(base, name, n);
    base[n] = '\0';
    if (strcmp(base, FILENAME_MANIFEST) == 0)
        return CRYPT_KIND_MANIFEST;
    if (strcmp(base, FILENAME_DISCARD) == 0)
        return CRYPT_KIND_DISCARD;
    if (filename_parse(base, FILENAME_EXT_WAL, 0, &id))
        return CRYPT_KIND_WAL;
    if (filename_parse(base, FILENAME_EXT_TABLE, 0, &id))
        return CRYPT_KIND_TABLE;
    if (filename_parse(base, FILENAME_EXT_VLOG, 0, &id))
        return CRYPT_KIND_VLOG;
    return 0;
}

static crypt_env *crypt_env_of(env *e)
{
    return (crypt_env *)e;
}

/* ---- the header ---- */

static void crypt_header_encode(char *h, int kind, uint64_t key_id)
{
    memcpy(h, CRYPT_MAGIC, 8);
    put_fixed32(h + 8, CRYPT_VERSION);
    put_fixed32(h + 12, (uint32_t)kind);
    put_fixed64(h + 16, key_id);
    aead_random(h + 24, 16);
    put_fixed64(h + CRYPT_AD_HEADER, checksum64(h, CRYPT_AD_HEADER));
}

/* Sets the file's key and associated data from header h. */
static int crypt_header_use(crypt_file *cf, const char *h)
{
    crypt_env *ce = crypt_env_of(cf->base.env);
    const char *path = cf->base.path;
    uint32_t version;
    int rc;

    if (memcmp(h, CRYPT_MAGIC, 8) != 0)
        return status_err(STOAT_ECORRUPT, "%s: not an encrypted file (no encryption header); "
                          "the database is encrypted", path);
    if (get_fixed64(h + CRYPT_AD_HEADER) != checksum64(h, CRYPT_AD_HEADER))
        return status_err(STOAT_ECORRUPT, "%s: damaged encryption header", path);
    if ((version = get_fixed32(h + 8)) != CRYPT_VERSION)
        return status_err(STOAT_ENOTSUP, "%s: encryption format version %u, this stoat reads "
                          "version %d", path, version, CRYPT_VERSION);
    if ((int)get_fixed32(h + 12) != cf->s.kind)
        return status_err(STOAT_ECORRUPT, "%s: the encryption header is of another kind of "
                          "file (%u)", path, get_fixed32(h + 12));
    if ((rc = key_registry_get(ce->kr, get_fixed64(h + 16), &cf->s.key)) != 0)
        return status_err(rc, "%s: its header names data key %llu, which the key registry "
                          "does not hold", path, (unsigned long long)get_fixed64(h + 16));
    memcpy(cf->s.ad, h, CRYPT_AD_HEADER);
    atomic_store_explicit(&cf->s.ready, 1, memory_order_release);
    return 0;
}

/* Writes a new header to the empty file. */
static int crypt_header_write(crypt_file *cf)
{
    crypt_env *ce = crypt_env_of(cf->base.env);
    const aead_key *key;
    uint64_t id;
    char h[CRYPT_HEADER_LEN];
    int rc;

    if ((rc = key_registry_current(ce->kr, crypt_now_ms(), &key, &id)) != 0)
        return rc;
    crypt_header_encode(h, cf->s.kind, id);
    if ((rc = env_append(cf->inner, h, sizeof(h))) != 0)
        return rc;
    cf->s.key = key;
    memcpy(cf->s.ad, h, CRYPT_AD_HEADER);
    atomic_store_explicit(&cf->s.ready, 1, memory_order_release);
    return 0;
}

/* 1 when the n bytes at p are all zero. */
static int crypt_zero(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/*
 * Whether the header h of file f is one a crash left unwritten: all zeros
 * (the file's size persisted before its first bytes; what follows, if
 * anything, was never synced either, since a sync of the file would have
 * made the header durable first), or a cut-short header followed by
 * zeros to the end of the file. Any other bad header is damage.
 */
static int crypt_header_absent(env_file *inner, const char *h)
{
    char tail[4096];
    uint64_t off = CRYPT_HEADER_LEN;
    size_t n, i = CRYPT_HEADER_LEN;

    if (crypt_zero(h, CRYPT_HEADER_LEN))
        return 1;
    while (i > 0 && h[i - 1] == 0)
        i--;
    if (i > 8 ? memcmp(h, CRYPT_MAGIC, 8) != 0 : memcmp(h, CRYPT_MAGIC, i) != 0)
        return 0;
    for (;;) {
        if (env_read_at(inner, off, tail, sizeof(tail), &n) != 0)
            return 0;
        if (!crypt_zero(tail, n))
            return 0;
        if (n < sizeof(tail))
            return 1;
        off += n;
    }
}

/* Loads the header if the file has one by now: 0 with ready set, 0 with
 * ready clear when the file holds no header (yet), or an error. */
static int crypt_header_load(crypt_file *cf)
{
    char h[CRYPT_HEADER_LEN];
    size_t n;
    int rc = 0;

    if (atomic_load_explicit(&cf->s.ready, memory_order_acquire))
        return 0;
    pthread_mutex_lock(&cf->s.mu);
    if (!atomic_load_explicit(&cf->s.ready, memory_order_relaxed) &&
        (rc = env_read_at(cf->inner, 0, h, sizeof(h), &n)) == 0 && n == sizeof(h)) {
        rc = crypt_header_use(cf, h);
        if (rc == STOAT_ECORRUPT && crypt_header_absent(cf->inner, h)) {
            status_clear();
            rc = 0;
            cf->absent = 1;
        }
    }
    pthread_mutex_unlock(&cf->s.mu);
    return rc;
}

static int crypt_ready(crypt_file *cf)
{
    int rc = crypt_header_load(cf);

    if (rc == 0 && !atomic_load_explicit(&cf->s.ready, memory_order_acquire))
        rc = status_err(STOAT_ECORRUPT, "%s: no encryption header", cf->base.path);
    return rc;
}

/* ---- seal and open ---- */

static void crypt_ad(const crypt_file *cf, uint64_t off, uint8_t *ad)
{
    memcpy(ad, cf->s.ad, CRYPT_AD_HEADER);
    put_fixed64((char *)ad + CRYPT_AD_HEADER, off);
}

int crypt_seal(env_file *f, uint64_t off, const void *plain, size_t len, void *out)
{
    crypt_file *cf = (crypt_file *)f;
    uint8_t ad[CRYPT_AD_LEN];
    int rc;

    if ((rc = crypt_ready(cf)) != 0)
        return rc;
    crypt_ad(cf, off, ad);
    return aead_seal(cf->s.key, ad, sizeof(ad), plain, len, out, crypt_sealed_len(len));
}

int crypt_open(env_file *f, uint64_t off, const void *sealed, size_t sealed_len, void *out,
               const char *what)
{
    crypt_file *cf = (crypt_file *)f;
    uint8_t ad[CRYPT_AD_LEN];
    int rc;

    if ((rc = crypt_ready(cf)) != 0)
        return rc;
    if (sealed_len < CRYPT_OVERHEAD)
        return status_err(STOAT_ECORRUPT, "%s: %s at offset %llu: %zu bytes, too short to be "
                          "sealed", f->path, what, (unsigned long long)off, sealed_len);
    crypt_ad(cf, off, ad);
    rc = aead_open(cf->s.key, ad, sizeof(ad), sealed, sealed_len, out,
                   sealed_len - CRYPT_OVERHEAD, what);
    if (rc != 0)
        return status_err(rc, "%s: %s at offset %llu failed authentication (damaged or "
                          "altered)", f->path, what, (unsigned long long)off);
    return 0;
}

int crypt_open_buf(env_file *f, uint64_t off, const void *sealed, size_t sealed_len, buf *plain,
                   const char *what)
{
    int rc;

    buf_reset(plain);
    /* (A unit too short to be sealed is crypt_open's error to report.) */
    if (sealed_len >= CRYPT_OVERHEAD && buf_reserve(plain, sealed_len - CRYPT_OVERHEAD + 1) != 0)
        return status_err(STOAT_ENOMEM, "%s: no memory for a %zu-byte %s", f->path, sealed_len,
                          what);
    if ((rc = crypt_open(f, off, sealed, sealed_len, plain->data, what)) != 0)
        return rc;
    plain->len = sealed_len - CRYPT_OVERHEAD;
    return 0;
}

/* ---- whole files ---- */

struct crypt_bytes {
    const void *data;
    size_t len;
};

static int crypt_write_whole(env_file *f, void *arg)
{
    const struct crypt_bytes *b = arg;
    char *sealed;
    int rc;

    if (!crypt_sealed(f))
        return env_append(f, b->data, b->len);
    if ((sealed = malloc(crypt_sealed_len(b->len))) == NULL)
        return status_err(STOAT_ENOMEM, "%s: out of memory", f->path);
    if ((rc = crypt_seal(f, 0, b->data, b->len, sealed)) == 0)
        rc = env_append(f, sealed, crypt_sealed_len(b->len));
    free(sealed);
    return rc;
}

int crypt_write_atomic(env *e, const char *dir, const char *path, const void *data, size_t len)
{
    struct crypt_bytes b = {data, len};

    return env_write_atomic_with(e, dir, path, crypt_write_whole, &b);
}

int crypt_read_all(env *e, const char *path, char **data, size_t *len)
{
    env_file *f = NULL;
    buf plain = {0};
    int rc;

    *data = NULL;
    *len = 0;
    if ((rc = env_open(e, path, ENV_READ, &f)) != 0 || (rc = env_read_file(f, data, len)) != 0 ||
        !crypt_sealed(f))
        goto out;
    rc = crypt_open_buf(f, 0, *data, *len, &plain, "contents");
    free(*data);
    *data = NULL;
    *len = 0;
    if (rc == 0) {
        plain.data[plain.len] = '\0';     /* crypt_open_buf keeps room for it */
        *data = plain.data;
        *len = plain.len;
        plain = (buf){0};
    }
out:
    env_close(f);
    buf_free(&plain);
    return rc;
}

/* ---- file operations ---- */

static void crypt_file_free(crypt_file *cf)
{
    pthread_mutex_destroy(&cf->s.mu);
    free(cf->base.path);
    free(cf);
}

static int crypt_file_open(env *e, const char *path, int flags, env_file **out)
{
    crypt_env *ce = crypt_env_of(e);
    int kind = crypt_kind_of(path);
    crypt_file *cf;
    uint64_t size;
    int rc;

    *out = NULL;
    if (kind == 0)
        return env_open(ce->base, path, flags, out);
    if ((cf = calloc(1, sizeof(*cf))) == NULL || (cf->base.path = strdup(path)) == NULL) {
        free(cf);
        return status_err(STOAT_ENOMEM, "%s: out of memory", path);
    }
    cf->base.env = e;
    cf->base.seal = &cf->s;
    cf->s.kind = kind;
    pthread_mutex_init(&cf->s.mu, NULL);
    if ((rc = env_open(ce->base, path, flags, &cf->inner)) != 0) {
        crypt_file_free(cf);
        return rc;
    }
    rc = env_file_size(cf->inner, &size);
    /* A writer finds the file new, or holding the cut-short header of a
     * creation a crash interrupted (no unit was written yet): it writes
     * the header. Everyone else loads what is there, if anything. */
    if (rc == 0 && size >= CRYPT_HEADER_LEN)
        rc = crypt_header_load(cf);
    if (rc == 0 && (flags & ENV_WRITE) && (size < CRYPT_HEADER_LEN || cf->absent)) {
        cf->absent = 0;
        if (size > 0)
            rc = env_truncate(cf->inner, 0);
        if (rc == 0)
            rc = crypt_header_write(cf);
    }
    if (rc != 0) {
        env_close(cf->inner);
        crypt_file_free(cf);
        return rc;
    }
    *out = &cf->base;
    return 0;
}

static int crypt_read_at(env_file *f, uint64_t off, void *dst, size_t len, size_t *nread)
{
    crypt_file *cf = (crypt_file *)f;
    int rc;

    *nread = 0;
    if ((rc = crypt_header_load(cf)) != 0)
        return rc;
    if (!atomic_load_explicit(&cf->s.ready, memory_order_acquire))
        return 0;   /* no header (yet): empty */
    return env_read_at(cf->inner, off + CRYPT_HEADER_LEN, dst, len, nread);
}

static int crypt_append(env_file *f, const void *data, size_t len)
{
    return env_append(((crypt_file *)f)->inner, data, len);
}

static int crypt_sync(env_file *f)
{
    return env_sync(((crypt_file *)f)->inner);
}

static int crypt_truncate(env_file *f, uint64_t len)
{
    return env_truncate(((crypt_file *)f)->inner, len + CRYPT_HEADER_LEN);
}

static int crypt_size(env_file *f, uint64_t *out)
{
    crypt_file *cf = (crypt_file *)f;
    uint64_t size;
    int rc;

    *out = 0;
    if ((rc = env_file_size(cf->inner, &size)) != 0)
        return rc;
    if (size < CRYPT_HEADER_LEN)
        return 0;
    if ((rc = crypt_header_load(cf)) != 0)
        return rc;
    if (!cf->absent)
        *out = size - CRYPT_HEADER_LEN;
    return 0;
}

static int crypt_close(env_file *f)
{
    crypt_file *cf = (crypt_file *)f;
    int rc = env_close(cf->inner);

    crypt_file_free(cf);
    return rc;
}

/* ---- directory operations: the base env's ---- */

static int crypt_remove(env *e, const char *path)
{
    return env_remove(crypt_env_of(e)->base, path);
}

static int crypt_rename(env *e, const char *from, const char *to)
{
    return env_rename(crypt_env_of(e)->base, from, to);
}

static int crypt_sync_dir(env *e, const char *dir)
{
    return env_sync_dir(crypt_env_of(e)->base, dir);
}

static int crypt_mkdir(env *e, const char *path)
{
    return env_mkdir(crypt_env_of(e)->base, path);
}

static int crypt_exists(env *e, const char *path)
{
    return env_exists(crypt_env_of(e)->base, path);
}

static int crypt_list(env *e, const char *dir, char ***names, size_t *n)
{
    return env_list(crypt_env_of(e)->base, dir, names, n);
}

/* A lock of the base env, with the env that releases it. */
typedef struct crypt_lock_t {
    env *base;
    struct env_lock *inner;
} crypt_lock_t;

static int crypt_lock(env *e, const char *path, int exclusive, struct env_lock **out)
{
    crypt_lock_t *l = malloc(sizeof(*l));
    int rc;

    *out = NULL;
    if (l == NULL)
        return status_err(STOAT_ENOMEM, "%s: out of memory", path);
    l->base = crypt_env_of(e)->base;
    if ((rc = env_lock(l->base, path, exclusive, &l->inner)) != 0) {
        free(l);
        return rc;
    }
    *out = (struct env_lock *)(void *)l;
    return 0;
}

static void crypt_unlock(struct env_lock *lock)
{
    crypt_lock_t *l = (crypt_lock_t *)(void *)lock;

    env_unlock(l->base, l->inner);
    free(l);
}

static const struct env_ops crypt_ops = {
    .open = crypt_file_open,
    .read_at = crypt_read_at,
    .append = crypt_append,
    .sync = crypt_sync,
    .truncate = crypt_truncate,
    .size = crypt_size,
    .close = crypt_close,
    .remove = crypt_remove,
    .rename = crypt_rename,
    .sync_dir = crypt_sync_dir,
    .mkdir = crypt_mkdir,
    .exists = crypt_exists,
    .list = crypt_list,
    .lock = crypt_lock,
    .unlock = crypt_unlock,
};

env *crypt_env_base(env *e)
{
    return e->ops == &crypt_ops ? crypt_env_of(e)->base : e;
}

int crypt_env_new(env *base, key_registry *kr, env **out)
{
    crypt_env *ce = calloc(1, sizeof(*ce));

    *out = NULL;
    if (ce == NULL)
        return status_err(STOAT_ENOMEM, "encryption: out of memory");
    ce->base_env.ops = &crypt_ops;
    ce->base = base;
    ce->kr = kr;
    *out = &ce->base_env;
    return 0;
}

void crypt_env_free(env *e)
{
    free(e);
}
