/*
 * sst_format.h - the byte layout shared by sst_builder.c and sst_reader.c
 * (private to them; core/FORMAT.md, "SSTable", is the prose version).
 *
 *   [data block + trailer]* [filter + trailer]? [props + trailer]
 *   [index block + trailer] [footer]
 *
 * Every stored block is followed by a 13-byte trailer: u8 compression
 * type, fixed32 uncompressed length, fixed64 checksum64 over the stored
 * bytes, the type byte and the length. A handle names a stored block by
 * offset and stored size (the trailer not counted). The footer is the
 * last SST_FOOTER_LEN bytes. Pure functions, thread-safe.
 */
#ifndef STOAT_SST_FORMAT_H
#define STOAT_SST_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/slice.h"
#include "table/sst.h"

#define SST_TRAILER_LEN 13
#define SST_HANDLE_LEN 16
/* filter, props, index handles | fixed32 version | fixed64 checksum | magic */
#define SST_FOOTER_LEN (3 * SST_HANDLE_LEN + 4 + 8 + 8)

typedef struct sst_handle {
    uint64_t offset;
    uint64_t size;      /* stored bytes, without the trailer */
} sst_handle;

typedef struct sst_footer {
    sst_handle filter;  /* size 0: the table has no filter */
    sst_handle props;
    sst_handle index;
    uint32_t version;
} sst_footer;

/* Fills the 13-byte trailer of `stored` (len bytes), which expands to
 * raw_len bytes with compression type `type`. */
void sst_trailer_encode(char *trailer, int type, uint32_t raw_len, const char *stored, size_t len);

/* Index entry value: varint offset | varint size. */
int sst_handle_put(buf *out, sst_handle h);
/* -1 when v is not exactly one encoded handle. */
int sst_handle_get(slice v, sst_handle *h);

/* Writes the SST_FOOTER_LEN bytes of f (checksum and magic included). */
void sst_footer_encode(char *dst, const sst_footer *f);

/*
 * Decodes the footer at src (SST_FOOTER_LEN bytes): STOAT_ECORRUPT for a
 * bad magic number or checksum, STOAT_ENOTSUP for another format version,
 * with a message naming path.
 */
int sst_footer_decode(const char *src, const char *path, sst_footer *f);

/* Properties block: the sst_props fields but file_size (varints, then
 * smallest and largest length-prefixed). */
int sst_props_encode(const sst_props *p, buf *out);
/* -1 when malformed, STOAT_ENOMEM. Fills p, allocating its key copies;
 * bytes after the known fields are ignored (room for later fields). */
int sst_props_decode(slice s, sst_props *p);

#endif
