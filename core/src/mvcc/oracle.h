/*
 * oracle.h - conflict detection for serializable snapshot isolation.
 *
 * A read-write transaction records what it read (a read set: 64-bit
 * fingerprints of the keys it got) and what ranges it iterated (a range
 * set: the key intervals its iterators covered). The oracle keeps, for
 * every transaction committed while some reader may still care, its commit
 * version and the keys it wrote. At commit, a transaction conflicts when a
 * transaction committed after its read version wrote a key it read (so
 * write skew is caught) or a key inside a range it iterated (so phantoms
 * are caught, which Badger misses). Fingerprint collisions cause false
 * conflicts only, never missed ones; ranges are checked on real keys.
 *
 * Threads: txn_reads belongs to its transaction's thread. The oracle is
 * guarded by the caller (db->mu): commits check and record in the same
 * critical section that hands out their version.
 */
#ifndef STOAT_ORACLE_H
#define STOAT_ORACLE_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/slice.h"

/* What one transaction read. */
typedef struct txn_reads {
    uint64_t *fps;              /* fingerprints, unsorted until oracle_check */
    size_t n_fps, cap_fps;
    struct txn_range {
        buf lo, hi;             /* inclusive bounds */
        int lo_inf, hi_inf;     /* unbounded below / above */
    } *ranges;
    size_t n_ranges, cap_ranges;
} txn_reads;

uint64_t oracle_fingerprint(slice key);

int txn_reads_add_key(txn_reads *r, slice key);
/* Records that [lo, hi] was read; a NULL bound (data NULL) is infinite. */
int txn_reads_add_range(txn_reads *r, slice lo, slice hi);
void txn_reads_free(txn_reads *r);

typedef struct oracle_commit oracle_commit;

typedef struct oracle {
    oracle_commit *head, *tail; /* committed transactions, oldest first */
    size_t n;
} oracle;

/* 1 if a transaction reading at read_version with reads r conflicts. */
int oracle_conflicts(const oracle *o, uint64_t read_version, txn_reads *r);

/* 1 if a commit recorded above version wrote key (exact: fingerprints
 * narrow the search, keys decide). */
int oracle_written_after(const oracle *o, uint64_t version, slice key);

/* oracle_written_after for each of keys[0..n): written[i] gets its
 * answer. One pass over the commits instead of one per key (a value-log
 * GC moves thousands of keys while as many commits come in): 0, or
 * STOAT_ENOMEM with written unset. */
int oracle_written_after_each(const oracle *o, uint64_t version, const slice *keys, size_t n,
                              uint8_t *written);

/* Records a commit at version with the written keys (copied). */
int oracle_record(oracle *o, uint64_t version, const slice *keys, size_t n);

/* Forgets commits no active reader can conflict with (version <= oldest). */
void oracle_prune(oracle *o, uint64_t oldest_read_version);

void oracle_free(oracle *o);

#endif
