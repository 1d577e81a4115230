/*
 * bloom.h - the bloom filter of an SST, over user keys.
 *
 * The builder collects one 64-bit hash (checksum64) per distinct user key
 * and, at the end, sizes the bit array for the number of keys: bits per
 * key and probe count follow from the target false-positive rate. Probes
 * use double hashing from that one hash. The filter's bytes are: the bit
 * array, then one byte holding the probe count (core/FORMAT.md, "Bloom
 * filter block").
 *
 * bloom_builder: one thread. bloom_may_contain: pure, thread-safe.
 */
#ifndef STOAT_BLOOM_H
#define STOAT_BLOOM_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/slice.h"

#define BLOOM_MAX_PROBES 30

typedef struct bloom_builder {
    uint64_t *hashes;
    size_t n, cap;
    int bits_per_key;
    int probes;
} bloom_builder;

/* bits per key for a false-positive rate in (0, 1): the smallest whole
 * number b with 0.6185^b <= fp_rate (the optimum of a bloom filter),
 * clamped to [1, 64]. */
int bloom_bits_per_key(double fp_rate);

void bloom_builder_init(bloom_builder *b, double fp_rate);
void bloom_builder_free(bloom_builder *b);

/* Adds a user key; a key equal to the previous one is counted once. */
int bloom_builder_add(bloom_builder *b, slice ukey);

/* Appends the filter for every key added to out; the builder is then
 * empty again. */
int bloom_builder_finish(bloom_builder *b, buf *out);

/* 0 if the filter is malformed (too short, or probe count out of range). */
int bloom_filter_valid(slice filter);

/* 0 when ukey was certainly not added; 1 when it may have been. A
 * malformed filter answers 1. */
int bloom_may_contain(slice filter, slice ukey);

/*
 * A filter checked and decoded once for many probes (a reader keeps one
 * per table): the same answers as bloom_may_contain. Borrows the
 * filter's bytes.
 */
typedef struct bloom_filter {
    const unsigned char *bits;
    uint64_t nbits;
    int probes;
} bloom_filter;

/* -1 (and f zeroed) if the filter is malformed, as bloom_filter_valid. */
int bloom_filter_init(bloom_filter *f, slice filter);
int bloom_filter_may_contain(const bloom_filter *f, slice ukey);
/* The same for a user key whose checksum64 is h (a get hashes its key
 * once, for the filter and the data block's hash index). */
int bloom_filter_may_contain_hash(const bloom_filter *f, uint64_t h);

#endif
