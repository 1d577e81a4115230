/*
 * key_registry.c - the file KEYREGISTRY and the data keys it wraps (see
 * key_registry.h; the byte layout is in core/FORMAT.md):
 *
 *     header:  magic "STOATKEY" | fixed32 version | fixed32 flags |
 *              salt[16] | check[32] | fixed32 count | fixed32 reserved
 *     entries: count * (fixed64 id | fixed64 created_ms | sealed key[72])
 *     trailer: mac[32] | fixed64 checksum64
 *
 * The master key is used only to derive three subkeys with the file's
 * salt (aead_derive): the check value itself, the wrap key that seals
 * each data key (associated data: the entry's id and created_ms), and the
 * MAC key of the whole file. The master key is not kept: the registry
 * holds the wrap and MAC subkeys, enough to add keys, and rekey derives
 * fresh ones from a fresh salt.
 *
 * Open checks in an order that names the fault: magic (not a key
 * registry), checksum (damaged: the last 8 bytes of every version), version,
 * length, check value (wrong master key), MAC (altered), entries (ids
 * ascending, each tag).
 *
 * Invariants: entries sorted by strictly ascending id; the in-memory
 * entries are what the file holds unless write_rc is set.
 * Threads: mu guards everything but the constant fields (env, paths,
 * rotation_ms); keys are allocated one by one so that pointers handed out
 * stay valid while the array grows.
 */
#include "crypt/key_registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/checksum.h"
#include "base/coding.h"
#include "base/status.h"
#include "env/filename.h"

#define KR_MAGIC "STOATKEY"
#define KR_MAGIC_LEN 8
#define KR_VERSION 1
#define KR_HEADER_LEN 72
#define KR_ENTRY_AD_LEN 16
#define KR_SEALED_KEY_LEN (AEAD_KEY_LEN + AEAD_OVERHEAD)
#define KR_ENTRY_LEN (KR_ENTRY_AD_LEN + KR_SEALED_KEY_LEN)
#define KR_TRAILER_LEN (AEAD_MAC_LEN + 8)
#define KR_CHECK_LEN 32
#define KR_LOCK_WAIT_MS 5000

static const char kr_label_check[AEAD_LABEL_LEN] = "stoat kr1 check ";
static const char kr_label_wrap[AEAD_LABEL_LEN] = "stoat kr1 wrap  ";
static const char kr_label_mac[AEAD_LABEL_LEN] = "stoat kr1 mac   ";

typedef struct {
    uint64_t id;
    uint64_t created_ms;
    aead_key *key;
} kr_entry;

/* What the master key and the salt give: replaced as a whole by rekey. */
typedef struct {
    uint8_t salt[AEAD_SALT_LEN];
    uint8_t check[KR_CHECK_LEN];
    aead_key *wrap;
    aead_key *mac;
} kr_wrapping;

struct key_registry {
    env *env;
    char *dir;
    char *path;
    uint64_t rotation_ms;
    pthread_mutex_t mu;
    kr_wrapping w;
    kr_entry *entries;
    size_t n, cap;
    int write_rc;   /* sticky: a write failed, the file's contents are unknown */
};

static void kr_wrapping_free(kr_wrapping *w)
{
    aead_key_free(w->wrap);
    aead_key_free(w->mac);
    w->wrap = w->mac = NULL;
}

/* Derives the check value and the subkeys of master under salt. */
static int kr_wrapping_derive(const uint8_t *master, const uint8_t *salt, kr_wrapping *w)
{
    uint8_t sub[AEAD_KEY_LEN];
    int rc;

    memset(w, 0, sizeof(*w));
    memcpy(w->salt, salt, AEAD_SALT_LEN);
    aead_derive(master, salt, kr_label_check, w->check);
    aead_derive(master, salt, kr_label_wrap, sub);
    rc = aead_key_new(sub, &w->wrap);
    if (rc == 0) {
        aead_derive(master, salt, kr_label_mac, sub);
        rc = aead_key_new(sub, &w->mac);
    }
    aead_wipe(sub, sizeof(sub));
    if (rc != 0)
        kr_wrapping_free(w);
    return rc;
}

/* A fresh salt, then kr_wrapping_derive. */
static int kr_wrapping_new(const uint8_t *master, kr_wrapping *w)
{
    uint8_t salt[AEAD_SALT_LEN];
    int rc;

    if ((rc = aead_init()) != 0)
        return rc;
    aead_random(salt, sizeof(salt));
    return kr_wrapping_derive(master, salt, w);
}

static void kr_entry_ad(const kr_entry *en, char *ad)
{
    put_fixed64(ad, en->id);
    put_fixed64(ad + 8, en->created_ms);
}

/*
 * The file's bytes for entries[0..n) wrapped by w: malloc'd into *out.
 * Holds no key in the clear (data keys are sealed, subkeys only keyed
 * the check and the MAC).
 */
static int kr_encode(const kr_wrapping *w, const kr_entry *entries, size_t n, char **out,
                     size_t *len)
{
    size_t body = KR_HEADER_LEN + n * KR_ENTRY_LEN, total = body + KR_TRAILER_LEN;
    char *p, *q;
    size_t i;
    int rc;

    *out = NULL;
    if (n > UINT32_MAX || (p = calloc(1, total)) == NULL)
        return status_err(STOAT_ENOMEM, "key registry: out of memory for %zu keys", n);
    memcpy(p, KR_MAGIC, KR_MAGIC_LEN);
    put_fixed32(p + 8, KR_VERSION);
    put_fixed32(p + 12, 0);
    memcpy(p + 16, w->salt, AEAD_SALT_LEN);
    memcpy(p + 32, w->check, KR_CHECK_LEN);
    put_fixed32(p + 64, (uint32_t)n);
    put_fixed32(p + 68, 0);
    for (i = 0, q = p + KR_HEADER_LEN; i < n; i++, q += KR_ENTRY_LEN) {
        kr_entry_ad(&entries[i], q);
        rc = aead_seal(w->wrap, q, KR_ENTRY_AD_LEN, aead_key_bytes(entries[i].key), AEAD_KEY_LEN,
                       q + KR_ENTRY_AD_LEN, KR_SEALED_KEY_LEN);
        if (rc != 0) {
            free(p);
            return rc;
        }
    }
    aead_mac(aead_key_bytes(w->mac), p, body, (uint8_t *)p + body);
    put_fixed64(p + body + AEAD_MAC_LEN, checksum64(p, body + AEAD_MAC_LEN));
    *out = p;
    *len = total;
    return 0;
}

/* Writes entries[0..n) wrapped by w as the whole file, atomically. */
static int kr_write(key_registry *kr, const kr_wrapping *w, const kr_entry *entries, size_t n)
{
    char *data;
    size_t len = 0;
    int rc;

    if ((rc = kr_encode(w, entries, n, &data, &len)) != 0)
        return rc;
    rc = env_write_atomic(kr->env, kr->dir, kr->path, data, len);
    free(data);
    return rc;
}

/* Checks the header of the file (len bytes at p) up to the check value;
 * *n gets the entry count. Names the first fault found. */
static int kr_check_header(const key_registry *kr, const char *p, size_t len, size_t *n)
{
    uint32_t version, count;

    if (len < KR_MAGIC_LEN || memcmp(p, KR_MAGIC, KR_MAGIC_LEN) != 0)
        return status_err(STOAT_ECORRUPT, "%s: not a key registry (bad magic)", kr->path);
    if (len < KR_MAGIC_LEN + 8 || get_fixed64(p + len - 8) != checksum64(p, len - 8))
        return status_err(STOAT_ECORRUPT, "%s: checksum mismatch (the file is damaged or "
                          "truncated, %zu bytes)", kr->path, len);
    if (len < 16 || (version = get_fixed32(p + 8)) != KR_VERSION) {
        if (len < 16)
            return status_err(STOAT_ECORRUPT, "%s: truncated header (%zu bytes)", kr->path, len);
        return status_err(STOAT_ENOTSUP, "%s: key registry format version %u, this stoat "
                          "reads version %d", kr->path, version, KR_VERSION);
    }
    if (len < KR_HEADER_LEN + KR_TRAILER_LEN)
        return status_err(STOAT_ECORRUPT, "%s: truncated (%zu bytes)", kr->path, len);
    count = get_fixed32(p + 64);
    if ((len - KR_HEADER_LEN - KR_TRAILER_LEN) / KR_ENTRY_LEN != count ||
        (len - KR_HEADER_LEN - KR_TRAILER_LEN) % KR_ENTRY_LEN != 0)
        return status_err(STOAT_ECORRUPT, "%s: %zu bytes do not hold %u keys", kr->path, len,
                          count);
    if (get_fixed32(p + 12) != 0 || get_fixed32(p + 68) != 0)
        return status_err(STOAT_ECORRUPT, "%s: unknown flags or reserved bits set", kr->path);
    if (count == 0)
        return status_err(STOAT_ECORRUPT, "%s: holds no data key", kr->path);
    *n = count;
    return 0;
}

static int kr_add_entry(key_registry *kr, uint64_t id, uint64_t created_ms, aead_key *key)
{
    if (kr->n == kr->cap) {
        size_t cap = kr->cap ? 2 * kr->cap : 8;
        kr_entry *e = realloc(kr->entries, cap * sizeof(*e));

        if (e == NULL)
            return status_err(STOAT_ENOMEM, "key registry: out of memory");
        kr->entries = e;
        kr->cap = cap;
    }
    kr->entries[kr->n].id = id;
    kr->entries[kr->n].created_ms = created_ms;
    kr->entries[kr->n].key = key;
    kr->n++;
    return 0;
}

/* Unwraps entries [kr->n, n) of the file into kr (its wrapping already
 * checked; the entries before are those kr holds). */
static int kr_decode_entries(key_registry *kr, const char *p, size_t n)
{
    uint8_t plain[AEAD_KEY_LEN];
    char what[64];
    aead_key *key;
    size_t i;
    int rc;

    for (i = kr->n; i < n; i++) {
        const char *q = p + KR_HEADER_LEN + i * KR_ENTRY_LEN;
        uint64_t id = get_fixed64(q), created = get_fixed64(q + 8);

        if (id == 0 || (i > 0 && id <= kr->entries[i - 1].id))
            return status_err(STOAT_ECORRUPT, "%s: key %zu has id %llu, not above the one "
                              "before", kr->path, i, (unsigned long long)id);
        snprintf(what, sizeof(what), "data key %llu", (unsigned long long)id);
        rc = aead_open(kr->w.wrap, q, KR_ENTRY_AD_LEN, q + KR_ENTRY_AD_LEN, KR_SEALED_KEY_LEN,
                       plain, sizeof(plain), what);
        if (rc != 0)
            return status_err(rc, "%s: %s failed authentication: the master key is right but "
                              "the file was altered", kr->path, what);
        rc = aead_key_new(plain, &key);
        aead_wipe(plain, sizeof(plain));
        if (rc != 0)
            return rc;
        if ((rc = kr_add_entry(kr, id, created, key)) != 0) {
            aead_key_free(key);
            return rc;
        }
    }
    return 0;
}

/* Parses the whole file (len bytes at p) with master into kr. */
static int kr_decode(key_registry *kr, const uint8_t *master, const char *p, size_t len)
{
    uint8_t mac[AEAD_MAC_LEN];
    size_t n = 0, body;
    int rc;

    if ((rc = kr_check_header(kr, p, len, &n)) != 0)
        return rc;
    if ((rc = kr_wrapping_derive(master, (const uint8_t *)p + 16, &kr->w)) != 0)
        return rc;
    if (!aead_equal(kr->w.check, p + 32, KR_CHECK_LEN))
        return status_err(STOAT_EINVAL, "%s: wrong master key (the key check value does not "
                          "match; the file itself is intact)", kr->path);
    body = len - KR_TRAILER_LEN;
    aead_mac(aead_key_bytes(kr->w.mac), p, body, mac);
    if (!aead_equal(mac, p + body, AEAD_MAC_LEN))
        return status_err(STOAT_ECORRUPT, "%s: authentication failed: the master key is right "
                          "but the file was altered", kr->path);
    return kr_decode_entries(kr, p, n);
}

static int kr_alloc(env *e, const char *dir, uint64_t rotation_ms, key_registry **out)
{
    key_registry *kr;

    *out = NULL;
    if ((kr = calloc(1, sizeof(*kr))) == NULL)
        return status_err(STOAT_ENOMEM, "key registry: out of memory");
    kr->env = e;
    kr->rotation_ms = rotation_ms ? rotation_ms : KEY_REGISTRY_ROTATION_DEFAULT_MS;
    pthread_mutex_init(&kr->mu, NULL);
    if ((kr->dir = strdup(dir)) == NULL ||
        (kr->path = env_join(dir, FILENAME_KEYREGISTRY)) == NULL) {
        key_registry_close(kr);
        return status_err(STOAT_ENOMEM, "key registry: out of memory");
    }
    *out = kr;
    return 0;
}

/* Takes dir/KEYREGISTRY.lock, the lock of every write of the file by any
 * process, waiting up to wait_ms: STOAT_EBUSY after that. */
static int kr_lock(env *e, const char *dir, uint32_t wait_ms, struct env_lock **l)
{
    char *path = env_join(dir, FILENAME_KEYREGISTRY_LOCK);
    int rc;

    if (path == NULL)
        return status_err(STOAT_ENOMEM, "key registry: out of memory");
    for (uint32_t waited = 0;; waited += 5) {
        rc = env_lock(e, path, 1, l);
        if (rc != STOAT_EBUSY || waited >= wait_ms)
            break;
        usleep(5000);
    }
    free(path);
    return rc;
}

int key_registry_create(env *e, const char *dir, const uint8_t *master, uint64_t rotation_ms,
                        uint64_t now_ms, key_registry **out)
{
    key_registry *kr;
    aead_key *key = NULL;
    int rc;

    if ((rc = kr_alloc(e, dir, rotation_ms, &kr)) != 0)
        return rc;
    if (env_exists(e, kr->path)) {
        rc = status_err(STOAT_EEXIST, "%s: a key registry exists already", kr->path);
        goto fail;
    }
    if ((rc = kr_wrapping_new(master, &kr->w)) != 0 || (rc = aead_key_random(&key)) != 0)
        goto fail;
    if ((rc = kr_add_entry(kr, 1, now_ms, key)) != 0)
        goto fail;
    key = NULL;
    if ((rc = kr_write(kr, &kr->w, kr->entries, kr->n)) != 0)
        goto fail;
    *out = kr;
    return 0;
fail:
    aead_key_free(key);
    key_registry_close(kr);
    return rc;
}

int key_registry_open(env *e, const char *dir, const uint8_t *master, uint64_t rotation_ms,
                      key_registry **out)
{
    key_registry *kr;
    char *data = NULL;
    size_t len = 0;
    int rc;

    if ((rc = kr_alloc(e, dir, rotation_ms, &kr)) != 0)
        return rc;
    if ((rc = env_read_all(e, kr->path, &data, &len)) != 0)
        goto fail;
    if ((rc = kr_decode(kr, master, data, len)) != 0)
        goto fail;
    free(data);
    *out = kr;
    return 0;
fail:
    free(data);
    key_registry_close(kr);
    return rc;
}

int key_registry_open_or_create(env *e, const char *dir, const uint8_t *master,
                                uint64_t rotation_ms, uint64_t now_ms, int create,
                                key_registry **out)
{
    struct env_lock *l = NULL;
    int rc;

    /* Most opens find the file: no lock is needed to read it (it is only
     * ever replaced whole). */
    rc = key_registry_open(e, dir, master, rotation_ms, out);
    if (rc != STOAT_ENOTFOUND || !create)
        return rc;
    status_clear();
    if ((rc = kr_lock(e, dir, KR_LOCK_WAIT_MS, &l)) != 0)
        return rc;
    rc = key_registry_open(e, dir, master, rotation_ms, out);
    if (rc == STOAT_ENOTFOUND) {
        status_clear();
        rc = key_registry_create(e, dir, master, rotation_ms, now_ms, out);
    }
    env_unlock(e, l);
    return rc;
}

void key_registry_close(key_registry *kr)
{
    size_t i;

    if (kr == NULL)
        return;
    for (i = 0; i < kr->n; i++)
        aead_key_free(kr->entries[i].key);
    free(kr->entries);
    kr_wrapping_free(&kr->w);
    pthread_mutex_destroy(&kr->mu);
    free(kr->dir);
    free(kr->path);
    free(kr);
}

/*
 * Reads the file again and adds the data keys another process (or handle)
 * added since (mu held). The file must still be wrapped as kr knows it: a
 * rekey while open is refused (stoat_rekey needs the database closed).
 */
static int kr_refresh_locked(key_registry *kr)
{
    uint8_t mac[AEAD_MAC_LEN];
    char *data = NULL;
    size_t len = 0, n = 0, body;
    int rc;

    if ((rc = env_read_all(kr->env, kr->path, &data, &len)) != 0)
        return rc;
    if ((rc = kr_check_header(kr, data, len, &n)) != 0)
        goto out;
    body = len - KR_TRAILER_LEN;
    aead_mac(aead_key_bytes(kr->w.mac), data, body, mac);
    if (memcmp(data + 16, kr->w.salt, AEAD_SALT_LEN) != 0 ||
        !aead_equal(mac, data + body, AEAD_MAC_LEN)) {
        rc = status_err(STOAT_ECORRUPT, "%s: the key registry changed under an open database "
                        "(rekeyed, replaced or altered)", kr->path);
        goto out;
    }
    if (n < kr->n) {
        rc = status_err(STOAT_ECORRUPT, "%s: holds %zu data keys, fewer than the %zu read "
                        "before", kr->path, n, kr->n);
        goto out;
    }
    rc = kr_decode_entries(kr, data, n);
out:
    free(data);
    return rc;
}

/* Adds a data key created at now_ms, written to the file first (mu held,
 * and the file's lock: the file is read again first, so a key another
 * process added is never overwritten). */
static int kr_rotate_locked(key_registry *kr, uint64_t now_ms, uint64_t *id)
{
    aead_key *key = NULL;
    uint64_t next;
    int rc;

    if (kr->write_rc == 0 && (rc = kr_refresh_locked(kr)) != 0)
        return rc;
    next = kr->entries[kr->n - 1].id + 1;
    if (kr->write_rc != 0)
        return status_err(kr->write_rc, "%s: an earlier write of the key registry failed; "
                          "reopen it", kr->path);
    if ((rc = aead_key_random(&key)) != 0)
        return rc;
    /* Added in memory first for the encoder, removed again on failure. */
    if ((rc = kr_add_entry(kr, next, now_ms, key)) != 0) {
        aead_key_free(key);
        return rc;
    }
    if ((rc = kr_write(kr, &kr->w, kr->entries, kr->n)) != 0) {
        kr->n--;
        aead_key_free(key);
        kr->write_rc = rc;
        return rc;
    }
    *id = next;
    return 0;
}

int key_registry_current(key_registry *kr, uint64_t now_ms, const aead_key **key, uint64_t *id)
{
    kr_entry *last;
    uint64_t new_id;
    int rc = 0;

    *key = NULL;
    *id = 0;
    pthread_mutex_lock(&kr->mu);
    last = &kr->entries[kr->n - 1];
    if (now_ms > last->created_ms && now_ms - last->created_ms >= kr->rotation_ms) {
        struct env_lock *l = NULL;
        /* Another process rotating now: its key is read next time. */
        if ((rc = kr_lock(kr->env, kr->dir, 0, &l)) == STOAT_EBUSY) {
            status_clear();
            rc = 0;
        } else if (rc == 0) {
            last = &kr->entries[kr->n - 1];
            if (now_ms > last->created_ms && now_ms - last->created_ms >= kr->rotation_ms)
                rc = kr_rotate_locked(kr, now_ms, &new_id);
            env_unlock(kr->env, l);
        }
    }
    if (rc == 0) {
        last = &kr->entries[kr->n - 1];
        *key = last->key;
        *id = last->id;
    }
    pthread_mutex_unlock(&kr->mu);
    return rc;
}

int key_registry_rotate(key_registry *kr, uint64_t now_ms, uint64_t *id)
{
    int rc;

    struct env_lock *l = NULL;

    *id = 0;
    pthread_mutex_lock(&kr->mu);
    if ((rc = kr_lock(kr->env, kr->dir, KR_LOCK_WAIT_MS, &l)) == 0) {
        rc = kr_rotate_locked(kr, now_ms, id);
        env_unlock(kr->env, l);
    }
    pthread_mutex_unlock(&kr->mu);
    return rc;
}

int key_registry_get(key_registry *kr, uint64_t id, const aead_key **key)
{
    size_t lo = 0, hi;

    *key = NULL;
    pthread_mutex_lock(&kr->mu);
    /* A key newer than the newest held: another process added it. */
    if (id > kr->entries[kr->n - 1].id && kr->write_rc == 0 && kr_refresh_locked(kr) != 0)
        status_clear();
    hi = kr->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (kr->entries[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < kr->n && kr->entries[lo].id == id)
        *key = kr->entries[lo].key;
    pthread_mutex_unlock(&kr->mu);
    if (*key == NULL)
        return status_err(STOAT_ECORRUPT, "%s holds no data key %llu", kr->path,
                          (unsigned long long)id);
    return 0;
}

int key_registry_rekey(key_registry *kr, const uint8_t *new_master)
{
    kr_wrapping w;
    int rc;

    pthread_mutex_lock(&kr->mu);
    if (kr->write_rc != 0) {
        rc = status_err(kr->write_rc, "%s: an earlier write of the key registry failed; "
                        "reopen it", kr->path);
        goto out;
    }
    if ((rc = kr_wrapping_new(new_master, &w)) != 0)
        goto out;
    if ((rc = kr_write(kr, &w, kr->entries, kr->n)) != 0) {
        kr_wrapping_free(&w);
        kr->write_rc = rc;
        goto out;
    }
    kr_wrapping_free(&kr->w);
    kr->w = w;
out:
    pthread_mutex_unlock(&kr->mu);
    return rc;
}

size_t key_registry_count(key_registry *kr)
{
    size_t n;

    pthread_mutex_lock(&kr->mu);
    n = kr->n;
    pthread_mutex_unlock(&kr->mu);
    return n;
}

void key_registry_newest(key_registry *kr, uint64_t *id, uint64_t *created_ms)
{
    pthread_mutex_lock(&kr->mu);
    *id = kr->entries[kr->n - 1].id;
    *created_ms = kr->entries[kr->n - 1].created_ms;
    pthread_mutex_unlock(&kr->mu);
}
