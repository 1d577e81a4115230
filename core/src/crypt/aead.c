/*
 * aead.c - XChaCha20-Poly1305 over libsodium (see aead.h).
 *
 * Why XChaCha20-Poly1305 and not AES-256-GCM. Every sealed block or record
 * gets a fresh random nonce, because a writer cannot keep a durable
 * counter per key cheaply (processes share a directory, crashes lose
 * unsynced state, value-log GC and compaction rewrite old data). With
 * GCM's 96-bit nonce, random nonces are safe only for about 2^32 seals
 * under one key (NIST SP 800-38D): a database writing 4 KiB blocks
 * reaches that after some 16 TiB, and a repeated nonce under GCM leaks
 * the authentication key. XChaCha20's 192-bit nonce makes a random
 * collision negligible (about 2^-96 after 2^48 seals), so no counter and
 * no key-use limit have to be tracked. ChaCha20 is also fast and
 * constant-time in software, while AES-GCM is only both with AES-NI and
 * carry-less multiply instructions (libsodium refuses its AES-GCM on CPUs
 * without them): stoat runs the same code, at a predictable speed, on
 * every CPU it builds for. The cost is 40 bytes per sealed unit (nonce
 * and tag), which is why the planned file formats seal per block or per
 * record, not per key.
 *
 * libsodium verifies the tag before it decrypts; we also zero the output
 * on failure so that no partial plaintext is ever left for a caller that
 * ignores the return code.
 *
 * Thread-safe: no state but libsodium's, initialised once.
 */
#include "crypt/aead.h"

#include <sodium.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "base/status.h"

struct aead_key {
    uint8_t bytes[AEAD_KEY_LEN];
};

#ifdef STOAT_TESTING
void (*aead_key_free_hook)(const uint8_t *bytes, size_t len);
#endif

_Static_assert(AEAD_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key length");
_Static_assert(AEAD_NONCE_LEN == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce length");
_Static_assert(AEAD_SALT_LEN == crypto_generichash_blake2b_SALTBYTES, "salt length");
_Static_assert(AEAD_LABEL_LEN == crypto_generichash_blake2b_PERSONALBYTES, "label length");
_Static_assert(AEAD_TAG_LEN == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag length");

int aead_init(void)
{
    if (sodium_init() < 0)
        return status_err(STOAT_EIO, "libsodium could not be initialised");
    return 0;
}

static int aead_key_alloc(aead_key **out)
{
    int rc;

    *out = NULL;
    if ((rc = aead_init()) != 0)
        return rc;
    if ((*out = malloc(sizeof(**out))) == NULL)
        return status_err(STOAT_ENOMEM, "encryption key: out of memory");
    return 0;
}

int aead_key_new(const uint8_t *bytes, aead_key **out)
{
    int rc;

    if ((rc = aead_key_alloc(out)) != 0)
        return rc;
    memcpy((*out)->bytes, bytes, AEAD_KEY_LEN);
    return 0;
}

int aead_key_random(aead_key **out)
{
    int rc;

    if ((rc = aead_key_alloc(out)) != 0)
        return rc;
    crypto_aead_xchacha20poly1305_ietf_keygen((*out)->bytes);
    return 0;
}

void aead_key_free(aead_key *k)
{
    if (k == NULL)
        return;
    sodium_memzero(k->bytes, sizeof(k->bytes));
#ifdef STOAT_TESTING
    if (aead_key_free_hook)
        aead_key_free_hook(k->bytes, sizeof(k->bytes));
#endif
    free(k);
}

const uint8_t *aead_key_bytes(const aead_key *k)
{
    return k->bytes;
}

void aead_random(void *buf, size_t len)
{
    randombytes_buf(buf, len);
}

void aead_wipe(void *p, size_t len)
{
    sodium_memzero(p, len);
}

/*
 * Nonces. A nonce is 16 random bytes drawn once per thread (and again in
 * a child after fork, whose copy of the thread would otherwise repeat the
 * parent's) followed by a 64-bit counter of that thread's seals: never
 * repeated under one key (a prefix collision is 2^-128 per pair of
 * threads), and no system call per seal (drawing 24 random bytes each
 * time costs a getrandom call: half a microsecond).
 */
static _Atomic uint64_t aead_fork_gen = 1;
static pthread_once_t aead_atfork_once = PTHREAD_ONCE_INIT;

static void aead_fork_child(void)
{
    atomic_fetch_add(&aead_fork_gen, 1);
}

static void aead_atfork_register(void)
{
    pthread_atfork(NULL, NULL, aead_fork_child);
}

static void aead_nonce(unsigned char *nonce)
{
    static _Thread_local struct {
        uint64_t gen;
        uint64_t counter;
        unsigned char prefix[AEAD_NONCE_LEN - 8];
    } t;
    uint64_t gen = atomic_load_explicit(&aead_fork_gen, memory_order_relaxed);

    if (t.gen != gen) {
        pthread_once(&aead_atfork_once, aead_atfork_register);
        randombytes_buf(t.prefix, sizeof(t.prefix));
        t.counter = 0;
        t.gen = atomic_load(&aead_fork_gen);
    }
    memcpy(nonce, t.prefix, sizeof(t.prefix));
    t.counter++;
    for (int i = 0; i < 8; i++)
        nonce[sizeof(t.prefix) + (size_t)i] = (unsigned char)(t.counter >> (8 * i));
}

int aead_seal(const aead_key *k, const void *ad, size_t ad_len, const void *plain, size_t len,
              void *out, size_t out_cap)
{
    unsigned char *nonce = out, *c = nonce + AEAD_NONCE_LEN;
    unsigned long long clen;

    if (len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX || out_cap < AEAD_OVERHEAD ||
        out_cap - AEAD_OVERHEAD < len)
        return status_err(STOAT_EINVAL, "seal: %zu bytes do not fit in %zu", len, out_cap);
    aead_nonce(nonce);
    crypto_aead_xchacha20poly1305_ietf_encrypt(c, &clen, plain, len, ad, ad_len, NULL, nonce,
                                               k->bytes);
    return 0;
}

int aead_open(const aead_key *k, const void *ad, size_t ad_len, const void *sealed,
              size_t sealed_len, void *out, size_t out_cap, const char *what)
{
    const unsigned char *nonce = sealed, *c = nonce + AEAD_NONCE_LEN;
    unsigned long long mlen;
    size_t len;

    if (sealed_len < AEAD_OVERHEAD)
        return status_err(STOAT_ECORRUPT, "%s: sealed unit of %zu bytes is shorter than its "
                          "nonce and tag", what, sealed_len);
    len = sealed_len - AEAD_OVERHEAD;
    if (out_cap < len)
        return status_err(STOAT_EINVAL, "%s: %zu plaintext bytes do not fit in %zu", what, len,
                          out_cap);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, c,
                                                   sealed_len - AEAD_NONCE_LEN, ad, ad_len,
                                                   nonce, k->bytes) != 0) {
        sodium_memzero(out, len);
        return status_err(STOAT_ECORRUPT, "%s: authentication failed (the data was damaged or "
                          "altered, or another key sealed it)", what);
    }
    return 0;
}

void aead_derive(const uint8_t *key, const uint8_t *salt, const char *label, uint8_t *out)
{
    crypto_generichash_blake2b_salt_personal(out, AEAD_KEY_LEN, NULL, 0, key, AEAD_KEY_LEN,
                                             salt, (const unsigned char *)label);
}

void aead_mac(const uint8_t *key, const void *data, size_t len, uint8_t *out)
{
    crypto_generichash_blake2b(out, AEAD_MAC_LEN, data, len, key, AEAD_KEY_LEN);
}

int aead_equal(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0;
}
