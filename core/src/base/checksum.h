/*
 * checksum.h - the one checksum of every record on disk: XXH3, 64 bits.
 *
 * Where a format stores 32 bits, it stores the low half of checksum64().
 * Pure functions, thread-safe.
 */
#ifndef STOAT_CHECKSUM_H
#define STOAT_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

uint64_t checksum64(const void *data, size_t len);

/* Checksum of two pieces, as if they were one contiguous buffer. */
uint64_t checksum64_2(const void *a, size_t alen, const void *b, size_t blen);

static inline uint32_t checksum32(const void *data, size_t len)
{
    return (uint32_t)checksum64(data, len);
}

#endif
