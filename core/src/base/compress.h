/*
 * compress.h - block compression: none, lz4 or zstd.
 *
 * The only file that includes the zstd and lz4 headers is compress.c.
 * Codes are the STOAT_COMPRESSION_* values of stoat.h; they are also what
 * SST blocks store on disk. Thread-safe (no shared state).
 */
#ifndef STOAT_COMPRESS_H
#define STOAT_COMPRESS_H

#include <stddef.h>

#include "base/buf.h"

/* Appends the compressed form of src to out. Returns 0, STOAT_EINVAL for an
 * unknown type or STOAT_ENOMEM. When compression does not shrink the data
 * the caller may prefer to store it raw; this function does not decide. */
int compress_block(int type, int zstd_level, const void *src, size_t len, buf *out);

/* lz4 with an acceleration factor (1 = compress_block's lz4; larger is
 * faster and compresses less): appends the block to out. */
int compress_lz4_fast(const void *src, size_t len, int acceleration, buf *out);

/* Decompresses src into dst, which must hold exactly raw_len bytes.
 * STOAT_ECORRUPT when the data is damaged or does not expand to raw_len. */
int decompress_block(int type, const void *src, size_t len, void *dst, size_t raw_len);

/* 0 when len compressed bytes of this type cannot expand to raw_len (a
 * caller checks before allocating raw_len bytes): lz4 expands at most 255
 * times, and a zstd frame (compress_block always writes one that states
 * its size) must state raw_len. 1 when it may. Found by fuzz_sst_table: a
 * damaged length made a reader allocate gigabytes first. */
int decompress_size_ok(int type, const void *src, size_t len, size_t raw_len);

#endif
