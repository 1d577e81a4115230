/*
 * bloom.c - bloom filter building and probing.
 *
 * One XXH3 hash h per key; probe i tests bit (h + i * delta) mod nbits,
 * where delta is h rotated by 31 bits and forced odd (Kirsch and
 * Mitzenmacher's double hashing, in 64-bit arithmetic so large filters
 * use all their bits). The builder keeps only the hashes (8 bytes a key),
 * skipping a hash equal to the previous one so the versions of one user
 * key, which arrive together, cost one entry. No locks, no shared state.
 */
#include "table/bloom.h"

#include <stdlib.h>
#include <string.h>

#include "base/checksum.h"
#include "base/vec.h"
#include "stoat.h"

#define BLOOM_MIN_BITS 64

int bloom_bits_per_key(double fp_rate)
{
    double p = 1.0;
    int bits = 0;

    if (!(fp_rate > 0.0) || fp_rate >= 1.0)
        return 1;
    /* A filter with b bits a key and ~0.69 b probes errs with 0.6185^b. */
    while (bits < 64 && p > fp_rate) {
        p *= 0.6185;
        bits++;
    }
    return bits < 1 ? 1 : bits;
}

void bloom_builder_init(bloom_builder *b, double fp_rate)
{
    memset(b, 0, sizeof(*b));
    b->bits_per_key = bloom_bits_per_key(fp_rate);
    /* k = b ln 2, rounded */
    b->probes = (int)(b->bits_per_key * 0.69314718 + 0.5);
    if (b->probes < 1)
        b->probes = 1;
    if (b->probes > BLOOM_MAX_PROBES)
        b->probes = BLOOM_MAX_PROBES;
}

void bloom_builder_free(bloom_builder *b)
{
    free(b->hashes);
    b->hashes = NULL;
    b->n = b->cap = 0;
}

int bloom_builder_add(bloom_builder *b, slice ukey)
{
    uint64_t h = checksum64(ukey.data, ukey.len);

    if (b->n > 0 && b->hashes[b->n - 1] == h)
        return 0;
    if (VEC_ROOM(b->hashes, b->n, b->cap, 1024) != 0)
        return STOAT_ENOMEM;
    b->hashes[b->n++] = h;
    return 0;
}

static inline uint64_t bloom_delta(uint64_t h)
{
    return ((h >> 31) | (h << 33)) | 1;
}

int bloom_builder_finish(bloom_builder *b, buf *out)
{
    uint64_t nbits = (uint64_t)b->n * (uint64_t)b->bits_per_key;
    size_t nbytes;
    unsigned char *bits;
    int rc;

    if (nbits < BLOOM_MIN_BITS)
        nbits = BLOOM_MIN_BITS;
    nbytes = (size_t)((nbits + 7) / 8);
    nbits = (uint64_t)nbytes * 8;
    if ((rc = buf_reserve(out, nbytes + 1)) != 0)
        return rc;
    bits = (unsigned char *)out->data + out->len;
    memset(bits, 0, nbytes);
    for (size_t i = 0; i < b->n; i++) {
        uint64_t h = b->hashes[i], delta = bloom_delta(h);
        for (int j = 0; j < b->probes; j++) {
            uint64_t pos = h % nbits;
            bits[pos / 8] |= (unsigned char)(1u << (pos % 8));
            h += delta;
        }
    }
    bits[nbytes] = (unsigned char)b->probes;
    out->len += nbytes + 1;
    b->n = 0;
    return 0;
}

int bloom_filter_valid(slice filter)
{
    int probes;

    if (filter.len < 2)
        return 0;
    probes = (unsigned char)filter.data[filter.len - 1];
    return probes >= 1 && probes <= BLOOM_MAX_PROBES;
}

int bloom_filter_init(bloom_filter *f, slice filter)
{
    memset(f, 0, sizeof(*f));
    if (!bloom_filter_valid(filter))
        return -1;
    f->bits = (const unsigned char *)filter.data;
    f->nbits = (uint64_t)(filter.len - 1) * 8;
    f->probes = f->bits[filter.len - 1];
    return 0;
}

/* The probes of one key are independent loads; the divisions are cheap
 * next to them (a walk that avoids them measured slower: its steps form
 * one dependency chain with an unpredictable branch). */
int bloom_filter_may_contain(const bloom_filter *f, slice ukey)
{
    return bloom_filter_may_contain_hash(f, checksum64(ukey.data, ukey.len));
}

int bloom_filter_may_contain_hash(const bloom_filter *f, uint64_t h)
{
    uint64_t delta;

    if (f->bits == NULL)
        return 1;
    delta = bloom_delta(h);
    for (int j = 0; j < f->probes; j++) {
        uint64_t pos = h % f->nbits;
        if (!(f->bits[pos / 8] & (1u << (pos % 8))))
            return 0;
        h += delta;
    }
    return 1;
}

int bloom_may_contain(slice filter, slice ukey)
{
    bloom_filter f;

    if (bloom_filter_init(&f, filter) != 0)
        return 1;
    return bloom_filter_may_contain(&f, ukey);
}
