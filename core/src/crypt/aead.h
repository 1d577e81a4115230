/*
 * aead.h - authenticated encryption of a buffer with associated data:
 * XChaCha20-Poly1305 (IETF) from libsodium, with a 192-bit nonce per seal
 * that never repeats (16 random bytes per thread, then a counter: aead.c),
 * and the keyed BLAKE2b that derives subkeys and authenticates whole
 * files. The only file of the engine that includes libsodium's header is
 * aead.c; everything above it sees opaque keys and sealed bytes.
 *
 * A sealed buffer is  nonce (24 bytes) || ciphertext (len bytes) ||
 * tag (16 bytes): AEAD_OVERHEAD bytes longer than the plaintext. Opening
 * checks the tag over the ciphertext and the associated data before any
 * plaintext is released: a flipped bit anywhere, a wrong key or other
 * associated data is STOAT_ECORRUPT and the output is zeroed.
 *
 * Keys (aead_key) hold their 32 bytes in the heap and are wiped with
 * sodium_memzero when freed. No function here ever puts key bytes in a
 * status message.
 *
 * Thread-safety: a key may be used by any number of threads at once;
 * aead_key_free must not race with its users. The first aead_key_new or
 * aead_key_random initialises libsodium (sodium_init is idempotent and
 * thread-safe); loading the library does nothing.
 */
#ifndef STOAT_AEAD_H
#define STOAT_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define AEAD_KEY_LEN 32
#define AEAD_NONCE_LEN 24
#define AEAD_TAG_LEN 16
#define AEAD_OVERHEAD (AEAD_NONCE_LEN + AEAD_TAG_LEN)

typedef struct aead_key aead_key;

/* Initialises libsodium; STOAT_EIO if it cannot be (no entropy source). */
int aead_init(void);

/* A key holding a copy of bytes (AEAD_KEY_LEN of them). The caller keeps
 * and wipes its own copy. */
int aead_key_new(const uint8_t *bytes, aead_key **out);
/* A key of AEAD_KEY_LEN bytes from the system's random generator. */
int aead_key_random(aead_key **out);
/* Wipes the key bytes, then frees (NULL is fine). */
void aead_key_free(aead_key *k);
/* The key's bytes, borrowed until aead_key_free: only for wrapping a key
 * under another (crypt/key_registry.c); never print them. */
const uint8_t *aead_key_bytes(const aead_key *k);

/* Fills buf with len random bytes (libsodium's generator; initialise
 * first through aead_init or a key). */
void aead_random(void *buf, size_t len);

/* Wipes len bytes at p in a way the compiler may not drop. */
void aead_wipe(void *p, size_t len);

static inline size_t aead_sealed_len(size_t plain_len)
{
    return plain_len + AEAD_OVERHEAD;
}

/*
 * Seals plain (len bytes) with ad (ad_len bytes, may be 0) into out, which
 * needs out_cap >= aead_sealed_len(len) bytes and must not overlap plain.
 * Writes exactly aead_sealed_len(len) bytes. STOAT_EINVAL when out is
 * too small.
 */
int aead_seal(const aead_key *k, const void *ad, size_t ad_len, const void *plain, size_t len,
              void *out, size_t out_cap);

/*
 * Opens sealed (sealed_len bytes) with ad into out (out_cap >=
 * sealed_len - AEAD_OVERHEAD; must not overlap sealed), writing exactly
 * sealed_len - AEAD_OVERHEAD bytes. A tag that does not verify, or a
 * sealed buffer shorter than AEAD_OVERHEAD, is STOAT_ECORRUPT with a
 * message naming `what` (a file and offset, say); out is then zeroed.
 */
int aead_open(const aead_key *k, const void *ad, size_t ad_len, const void *sealed,
              size_t sealed_len, void *out, size_t out_cap, const char *what);

#define AEAD_MAC_LEN 32
#define AEAD_SALT_LEN 16
#define AEAD_LABEL_LEN 16

/*
 * Derives a 32-byte subkey from key (AEAD_KEY_LEN bytes), a salt
 * (AEAD_SALT_LEN) and a label (AEAD_LABEL_LEN bytes, the purpose):
 * BLAKE2b-256 keyed by key, with salt and label as its salt and
 * personalisation, over no input. A pseudo-random function of key:
 * the output reveals nothing about key.
 */
void aead_derive(const uint8_t *key, const uint8_t *salt, const char *label, uint8_t *out);

/* out (AEAD_MAC_LEN bytes) = BLAKE2b-256 of data keyed by key (AEAD_KEY_LEN). */
void aead_mac(const uint8_t *key, const void *data, size_t len, uint8_t *out);

/* 1 when the n bytes at a and b are equal, compared in constant time. */
int aead_equal(const void *a, const void *b, size_t n);

#ifdef STOAT_TESTING
/* Test builds: called by aead_key_free after the wipe and before the
 * free, with the key's bytes, so a test can check that they are zero. */
extern void (*aead_key_free_hook)(const uint8_t *bytes, size_t len);
#endif

#endif
