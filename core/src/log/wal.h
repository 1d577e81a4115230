/*
 * wal.h - write-ahead-log records (format in core/FORMAT.md, "WAL").
 *
 * A WAL file is a header followed by records. One record is one group
 * commit: a payload of entries, each an internal key and an encoded
 * vstruct, behind a 12-byte record header that checks itself:
 *
 *     fixed32 payload_len | fixed32 checksum32(payload)
 *         | fixed32 checksum32(the 8 bytes before) | payload
 *     payload = entry*;  entry = varint ikey_len | ikey | varint vlen | value
 *
 * The header's own check lets replay tell a damaged length (corruption)
 * from a record really cut short by end of file (a torn tail). The
 * MANIFEST frames its records the same way (wal_record_header_*).
 *
 * In an encrypted database (crypt/crypt_env.h) each payload is sealed,
 * bound to its file and the offset of its record; the header frames and
 * checks the sealed bytes, so a torn tail is told from damage as before,
 * and a record that passes its checksum but not its tag is corruption.
 *
 * wal_encode_* build payloads into a buf; wal_replay() reads a file back.
 * Pure functions plus file reads; thread-safe.
 */
#ifndef STOAT_WAL_H
#define STOAT_WAL_H

#include <stdint.h>

#include "base/buf.h"
#include "env/env.h"
#include "base/slice.h"

#define WAL_MAGIC 0x4c415754414f5453ull  /* "STOATWAL" little-endian */
#define WAL_FORMAT_VERSION 2    /* 2: expiries in ms (VMETA_EXPIRY_MS); reads 1 */
#define WAL_HEADER_LEN 16                 /* fixed64 magic | fixed32 version | fixed32 0 */
#define WAL_RECORD_HEADER_LEN 12
#define WAL_MAX_RECORD (1u << 31)

/* Appends one entry to a payload under construction. */
int wal_encode_entry(buf *payload, slice ikey, slice value);

/* Appends the framed record (header + payload) to out. */
int wal_encode_record(buf *out, const void *payload, size_t len);

/*
 * As wal_encode_record, for the record that will sit at offset off of f:
 * when f is encrypted (crypt/crypt_env.h) the payload is sealed first, and
 * the header frames the sealed bytes (CRYPT_OVERHEAD more); else it is
 * wal_encode_record. Replay opens what this seals.
 */
int wal_encode_record_at(buf *out, env_file *f, uint64_t off, const void *payload, size_t len);

/* Writes the record header of payload [payload, payload + len) to h
 * (WAL_RECORD_HEADER_LEN bytes). */
void wal_record_header_encode(char *h, const void *payload, uint32_t len);

/* 1 when the record header at h (WAL_RECORD_HEADER_LEN bytes) is intact:
 * its last 4 bytes check its first 8. Only then may its length be trusted. */
int wal_record_header_ok(const char *h);

/* Called for every entry of every good record, in order. Nonzero stops the
 * replay and is returned. */
typedef int (*wal_entry_fn)(void *arg, slice ikey, slice value);

/*
 * Replays file f: checks the header, then every record. *good_len gets the
 * offset just past the last good record. A torn tail (less than a record
 * header left, an intact header whose payload runs past end of file, a
 * record whose payload checksum fails and that ends exactly at end of
 * file or is followed by zeros only, or a tail of zero bytes) ends the
 * replay with 0; the caller truncates to *good_len. Any other bad record,
 * a damaged record header above all, is STOAT_ECORRUPT.
 */
int wal_replay(env_file *f, const char *path, wal_entry_fn fn, void *arg, uint64_t *good_len);

/*
 * As wal_replay, over the records from offset `from` (a record boundary;
 * 0 or WAL_HEADER_LEN check the header first) up to offset `to`. With
 * to = UINT64_MAX it reads to end of file, a torn tail ending it as in
 * wal_replay; otherwise `to` is a length another process published as
 * holding whole records only (the multi-process mode, db/shared.c): bytes
 * past it are ignored, and a torn record or a file shorter than `to` is
 * STOAT_ECORRUPT. *good_len gets the offset past the last record read.
 */
int wal_replay_range(env_file *f, const char *path, uint64_t from, uint64_t to, wal_entry_fn fn,
                     void *arg, uint64_t *good_len);

/*
 * wal_replay, with `until` asked about every entry of a record before any
 * of them goes to fn: when it returns WAL_STOP for one, the replay ends
 * with 0 at that record's start, as at a torn tail (*good_len is its
 * offset: the caller cuts the record and everything after it off). Other
 * nonzero results stop the replay and are returned.
 */
#define WAL_STOP 1
int wal_replay_until(env_file *f, const char *path, wal_entry_fn until, wal_entry_fn fn,
                     void *arg, uint64_t *good_len);

#endif
