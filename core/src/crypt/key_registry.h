/*
 * key_registry.h - the data keys of an encrypted database, wrapped by its
 * master key, in the file KEYREGISTRY of the database directory (format:
 * core/FORMAT.md, "Key registry, format version 1").
 *
 * The idea is Badger's key registry, authenticated: every data key is
 * sealed (crypt/aead.h) under a subkey of the 32-byte master key with its
 * id and creation time as associated data, and the whole file carries a
 * keyed MAC, so a modified, dropped or reordered entry is corruption. A
 * check value in the header, a keyed hash of the master key, tells a
 * wrong master key (STOAT_EINVAL) from a damaged file (STOAT_ECORRUPT)
 * at once, without revealing anything about the key.
 *
 * Data keys have ids 1, 2, ... in creation order; the newest is the one
 * to write with, and it is replaced by a new one when older than the
 * rotation period or on demand. Old keys stay (files written with them
 * keep their id). Rekeying rewraps every data key under a new master key
 * without touching any data; every write of the file is atomic
 * (env_write_atomic), so a crash leaves the old file or the new one.
 *
 * Several processes may hold one registry open (multi-process mode):
 * every write of the file (creation, rotation) happens under the lock
 * KEYREGISTRY.lock after reading the file again, and a file naming a key
 * newer than those held makes key_registry_get read the file again.
 *
 * Thread-safety: every function may be called from any thread; a mutex
 * guards the keys. Keys returned are borrowed until key_registry_close.
 * A failed write makes every later write (rotation, rekey) fail with the
 * same error until the registry is reopened, since the file may then hold
 * the old or the new contents. Keys are wiped on close; no message ever
 * holds key bytes.
 */
#ifndef STOAT_KEY_REGISTRY_H
#define STOAT_KEY_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "crypt/aead.h"
#include "env/env.h"

#define KEY_REGISTRY_MASTER_LEN AEAD_KEY_LEN
/* 10 days, Badger's default. */
#define KEY_REGISTRY_ROTATION_DEFAULT_MS (10ULL * 24 * 3600 * 1000)

typedef struct key_registry key_registry;

/*
 * Creates dir/KEYREGISTRY with one data key (id 1, created at now_ms),
 * wrapped by master (KEY_REGISTRY_MASTER_LEN bytes; the caller keeps and
 * wipes its copy). rotation_ms 0 means the default; UINT64_MAX never
 * rotates by age. STOAT_EEXIST when the file exists.
 */
int key_registry_create(env *e, const char *dir, const uint8_t *master, uint64_t rotation_ms,
                        uint64_t now_ms, key_registry **out);

/*
 * Opens dir/KEYREGISTRY with master. Errors: STOAT_ENOTFOUND (no file),
 * STOAT_EINVAL (wrong master key), STOAT_ECORRUPT (damaged or altered;
 * the message says what), STOAT_ENOTSUP (a format version this stoat
 * does not know). Modifies nothing.
 */
int key_registry_open(env *e, const char *dir, const uint8_t *master, uint64_t rotation_ms,
                      key_registry **out);

/*
 * key_registry_open; with create, under the lock of the file
 * (KEYREGISTRY.lock, waiting up to 5 s), and key_registry_create when
 * there is no file: processes opening one new database at once agree on
 * one registry.
 */
int key_registry_open_or_create(env *e, const char *dir, const uint8_t *master,
                                uint64_t rotation_ms, uint64_t now_ms, int create,
                                key_registry **out);

/* Wipes every key and frees (NULL is fine). */
void key_registry_close(key_registry *kr);

/*
 * The data key to write with, and its id: the newest, after adding a new
 * one (written to the file first) when the newest was created
 * rotation_ms or more before now_ms. An error of that write is returned
 * (and no key).
 */
int key_registry_current(key_registry *kr, uint64_t now_ms, const aead_key **key, uint64_t *id);

/* Adds a new data key created at now_ms, now, whatever the age of the
 * newest; *id gets its id. */
int key_registry_rotate(key_registry *kr, uint64_t now_ms, uint64_t *id);

/* The data key with this id; STOAT_ECORRUPT when there is none (a file
 * names a key the registry does not hold). */
int key_registry_get(key_registry *kr, uint64_t id, const aead_key **key);

/*
 * Rewraps every data key under new_master and replaces the file
 * atomically (fresh salt, check value and nonces). On success only
 * new_master opens the registry; on failure the file holds the old or the
 * new master's contents (which one is known only by opening it again).
 */
int key_registry_rekey(key_registry *kr, const uint8_t *new_master);

/* Number of data keys, and the newest's id and creation time. */
size_t key_registry_count(key_registry *kr);
void key_registry_newest(key_registry *kr, uint64_t *id, uint64_t *created_ms);

#endif
