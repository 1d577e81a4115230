/*
 * sst.h - what SST builders, readers and the version set share: table
 * options and table properties. The file format is in core/FORMAT.md
 * ("SSTable"): data blocks with prefix-compressed keys and restart points,
 * each with a trailer (compression type, checksum); a bloom filter block
 * over user keys; a properties block; an index block (last key of each
 * data block -> offset, size); a fixed-size footer with magic and format
 * version.
 */
#ifndef STOAT_SST_H
#define STOAT_SST_H

#include <stdint.h>

#include "base/buf.h"
#include "base/slice.h"

#define SST_MAGIC 0x5453534154414f54ull  /* "TOATASST" little-endian */
/* 2: expiries in ms (VMETA_EXPIRY_MS); 3: data blocks may carry a hash
 * index (block_builder.h); reads 1 to 3 */
#define SST_FORMAT_VERSION 3

typedef struct sst_options {
    uint32_t block_size;    /* target uncompressed data block size */
    int compression;        /* STOAT_COMPRESSION_* */
    int zstd_level;
    double bloom_fp_rate;   /* 0 = no filter */
} sst_options;

/* Properties of a finished table, stored in it and returned by the
 * builder. smallest/largest are owned copies of internal keys. */
typedef struct sst_props {
    uint64_t file_size;
    uint64_t num_entries;
    uint64_t num_deletions;     /* tombstones */
    uint64_t min_version;
    uint64_t max_version;
    uint64_t raw_key_bytes;
    uint64_t raw_value_bytes;
    buf smallest;
    buf largest;
} sst_props;

void sst_props_free(sst_props *p);

/* "dir/NNNNNN.sst" (malloc'd). */
char *sst_path(const char *dir, uint64_t id);

#endif
