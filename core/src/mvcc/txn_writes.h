/*
 * txn_writes.h - a transaction's buffered writes.
 *
 * A map from user key to the last write the transaction made to it (a
 * value with its meta, user-meta and expiry, or a tombstone), kept until
 * commit. It owns copies of every key and value. Iterating takes a sorted
 * snapshot: later writes to the transaction do not show in an iterator
 * already open. One thread at a time (the transaction's).
 */
#ifndef STOAT_TXN_WRITES_H
#define STOAT_TXN_WRITES_H

#include <stddef.h>
#include <stdint.h>

#include "base/iter.h"
#include "base/slice.h"

typedef struct txn_write {
    uint8_t meta;               /* 0 or VMETA_DELETE */
    uint8_t user_meta;
    uint64_t expires_at;
    slice key;                  /* into the entry's own allocation */
    slice value;
} txn_write;

typedef struct txn_writes {
    txn_write **entries;    /* in first-write order */
    size_t n, cap;
    uint32_t *slots;            /* open addressing: entry index + 1, 0 = empty */
    size_t n_slots;
    uint64_t bytes;             /* keys + values */
} txn_writes;

/* Records a write, replacing an earlier write to the same key. */
int txn_writes_put(txn_writes *p, uint8_t meta, uint8_t user_meta, uint64_t expires_at, slice key,
                slice value);

/* The transaction's last write to key, or NULL. Borrowed until the next
 * txn_writes_put of that key or txn_writes_free. */
const txn_write *txn_writes_get(const txn_writes *p, slice key);

/*
 * A sorted snapshot of the writes as an internal iterator, each entry's
 * internal key carrying `version` (the transaction's read version: equal
 * to the snapshot's newest visible version, and merged ahead of it by
 * giving this iterator the lowest child index). NULL on ENOMEM.
 */
iter *txn_writes_iter_new(const txn_writes *p, uint64_t version);

void txn_writes_free(txn_writes *p);

#endif
