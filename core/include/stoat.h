/*
 * stoat.h - the whole public API of stoat, an embedded key-value database.
 *
 * Handles are opaque. Every call returns an int: 0 is success, errors are
 * the stable negative STOAT_E* codes below. stoat_strerror() names a code;
 * stoat_errmsg() gives the detailed message of the last failing call made by
 * the calling thread.
 *
 * Threads: a stoat_db may be used from many threads at once. An iterator
 * belongs to one thread at a time. Loading the library starts no thread and
 * takes no lock; stoat_open() starts the background threads and
 * stoat_close() joins them. A handle used in a process other than the one
 * that opened it (after fork) returns STOAT_EFORKED.
 *
 * Bytes: keys and values are arbitrary bytes with explicit lengths. The
 * library copies what it keeps. Every function that hands bytes back says
 * who owns them and until when.
 *
 * Several processes. By default (stoat_options.multi_process = 1) any
 * number of processes (and any number of handles in one process) open
 * the directory read-write at once, and it is one database: a commit
 * acknowledged in one process is seen by every transaction begun
 * afterwards in any process, and conflicts are detected across processes
 * as between threads. Read-only opens (read_only = 1, whatever
 * multi_process says) attach beside them and read a snapshot of the
 * files. multi_process = 0 is the exclusive mode: one process holds the
 * directory, and every other writable open, in this process or another,
 * gets STOAT_EBUSY (so does a read-only open while it holds it); it
 * needs no shared memory and keeps no per-process replica.
 *   Shared between the processes: the files, a small region of shared
 *   memory (/dev/shm/stoat.<dev>.<ino>.shm, 64 KiB: the commit lock, the
 *   published versions and WAL position, one liveness slot per handle),
 *   the shared block cache (/dev/shm/stoat.<dev>.<ino>.cache: the
 *   decompressed table blocks any process read, up to cache_size in all,
 *   its pages taken as it fills; not for encrypted databases, nor where
 *   shm_dir is not a tmpfs), and one background owner, elected, that
 *   flushes and compacts for all (it hands over when it closes or dies).
 *   Both files go with the last handle to close; if every process died,
 *   they stay (the cache holding the memory it filled) until the next
 *   open of the directory.
 *   Per process (per handle): memtables (a process that reads replays
 *   the WAL records the others append, when it reads and in the
 *   background; one that only writes replays nothing; their arenas are
 *   reserved at twice memtable_size, of which only what is used takes
 *   memory), a block cache (alone: cache_size; with others, 256 KiB in
 *   front of the shared one, or without it a share of cache_size: the
 *   budget is all processes' together),
 *   the table cache (each table's index and filter), value-log mappings,
 *   the transactions, iterators and snapshots, the threads.
 *   A WAL stays on disk until every live process has read past it: a
 *   process stopped for long (SIGSTOP) holds the WALs written meanwhile.
 *   A process killed at any instruction, even holding the commit lock,
 *   blocks the others at most until the lock's next acquirer repairs what
 *   it left (its unacknowledged commit is cut off); a process stopped
 *   while holding it makes the others' commits fail with STOAT_EBUSY after
 *   lock_timeout_ms. A write that fails to reach the disk (a failed
 *   fsync or append; a full disk is not one) in any process makes every
 *   process refuse writes (STOAT_EIO naming it) until all have closed:
 *   the next open recovers from the files. An exclusive open
 *   (multi_process = 0) and multi-process handles exclude each other.
 *   stoat_gc, stoat_flatten and bulk loads (stoat_loader_new) run in the
 *   background owner only (in another process they return STOAT_EBUSY
 *   naming the owner's pid); automatic GC runs there too. Alone, a
 *   process is the owner: everything works as in the exclusive mode.
 *   Durability across processes: stoat_sync, and a commit with
 *   STOAT_SYNC_COMMIT, make durable every process's commits up to the
 *   caller's, values in the value log included (processes may use
 *   different sync modes).
 */
#ifndef STOAT_H
#define STOAT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Export: the library is compiled with -fvisibility=hidden and
 * -DSTOAT_BUILD, so that the functions declared in this header are its
 * only exported symbols (`nm -D --defined-only libstoat.so` lists only
 * stoat_*). A program that uses the library sees plain declarations.
 */
#ifdef STOAT_BUILD
_Pragma("GCC visibility push(default)")
#endif

#define STOAT_VERSION_MAJOR 0
#define STOAT_VERSION_MINOR 2
#define STOAT_VERSION_PATCH 0
#define STOAT_VERSION_STRING "0.2.0"

/* Error codes: stable, negative, never renumbered. */
enum {
    STOAT_OK = 0,
    STOAT_ENOTFOUND = -1,   /* key absent (not a failure for get) */
    STOAT_EINVAL = -2,      /* bad argument: empty key, NULL pointer, bad option */
    STOAT_ECORRUPT = -3,    /* a file failed a checksum or is malformed */
    STOAT_EIO = -4,         /* the OS failed a file operation */
    STOAT_ENOMEM = -5,      /* out of memory */
    STOAT_EBUSY = -6,       /* the directory is locked by another open */
    STOAT_ECLOSED = -7,     /* the database is closing or closed */
    STOAT_EFORKED = -8,     /* handle used in another process than its opener */
    STOAT_ECONFLICT = -9,   /* transaction conflict: retry it */
    STOAT_ETOOBIG = -10,    /* key, value or transaction over its limit */
    STOAT_EREADONLY = -11,  /* write to a read-only database */
    STOAT_ENOSPC = -12,     /* the disk is full */
    STOAT_ENOTSUP = -13,    /* not supported by this build or format version */
    STOAT_EEXIST = -14,     /* database exists and error_if_exists was set; a bulk
                             * load's key range already holds data */
    STOAT_EKEY = -15        /* encryption key missing, wrong, or given for a database
                             * that is not encrypted (the message says which) */
};

/* Length of an encryption key (stoat_options.encryption_key, stoat_rekey). */
#define STOAT_KEY_LEN 32

/* Limits. A key is 1..STOAT_MAX_KEY_SIZE bytes; a value 0..STOAT_MAX_VALUE_SIZE. */
#define STOAT_MAX_KEY_SIZE 65536u
#define STOAT_MAX_VALUE_SIZE (1u << 30)

/*
 * Time to live, in milliseconds, of the _set_ex calls: 0 = forever, at most
 * STOAT_MAX_TTL_MS (about 35,700 years). Expiries are unix milliseconds
 * (since 0.2; databases written by 0.1 stored seconds and read correctly).
 * An entry is never expired before its ttl has passed.
 */
#define STOAT_MAX_TTL_MS (1ull << 50)

/* Block compression, chosen per table when it is written. */
enum {
    STOAT_COMPRESSION_NONE = 0,
    STOAT_COMPRESSION_LZ4 = 1,
    STOAT_COMPRESSION_ZSTD = 2
};

/* Durability of a write once its call returns. */
enum {
    STOAT_SYNC_NONE = 0,   /* in the OS page cache: survives a process crash */
    STOAT_SYNC_COMMIT = 1  /* fsynced (group commit): survives power loss */
};

/*
 * Options. Always start from stoat_options_init(), which sets the defaults
 * given after each field, then change what you need. Sizes are bytes.
 */
typedef struct stoat_options {
    int create_if_missing;      /* 1: create the directory and database */
    int error_if_exists;        /* 0: fail with STOAT_EEXIST if it exists */
    int read_only;              /* 0: open without writing; takes a shared lock */
    int sync;                   /* STOAT_SYNC_NONE */
    uint64_t memtable_size;     /* 32 MiB: a memtable is flushed when full */
    int num_memtables;          /* 4: active + immutable memtables before writes wait */
    uint32_t block_size;        /* 4 KiB: target size of an SST data block */
    int compression;            /* STOAT_COMPRESSION_LZ4 */
    int zstd_level;             /* 1 */
    double bloom_fp_rate;       /* 0.01: bloom filter false-positive rate (0 = none) */
    uint64_t cache_size;        /* 256 MiB: block cache memory budget; in multi-process
                                 * mode the budget of all handles together: a handle
                                 * alone caches it all; with others, the shared block
                                 * cache's size (each keeps 256 KiB of its own), or without
                                 * one each caches cache_size / live handles (at least
                                 * 4 MiB); sized again as handles come and go */
    int max_open_files;         /* 1000: SST file descriptors kept open */
    int num_compactors;         /* 2: background compaction threads */
    int num_levels;             /* 7: levels L0..L6 */
    uint64_t base_level_size;   /* 256 MiB: target size of the base level */
    int level_size_multiplier;  /* 10: each level is this much bigger than the one above */
    uint64_t table_size;        /* 64 MiB: target size of a compaction output table */
    int l0_compaction_trigger;  /* 4: L0 tables that start a compaction */
    int l0_slowdown_trigger;    /* 12: L0 tables at which writes are slowed */
    int l0_stall_trigger;       /* 20: L0 tables at which writes wait for compaction */
    int detect_conflicts;       /* 1: read-write transactions check for conflicts */
    int num_versions_to_keep;   /* 1: versions of a key compaction keeps beyond readers' needs
                                 * (value-log GC keeps only the newest one's value) */
    uint64_t max_txn_bytes;     /* 0 = memtable_size / 2: a transaction's keys + values at most */
    uint64_t max_txn_entries;   /* 100000: a transaction's writes at most */
    uint32_t value_threshold;   /* 1 KiB: values this long or longer go to the value log */
    uint64_t value_log_file_size; /* 256 MiB: a value-log file rolls over at this size */
    int value_log_compression;  /* STOAT_COMPRESSION_LZ4: codec of values stored in the value
                                 * log (at zstd_level for zstd); a value is stored compressed
                                 * only when that saves at least an eighth of it. Files
                                 * written with any setting stay readable with any other */
    int auto_gc;                /* 1: value-log GC runs in the background by itself */
    double auto_gc_ratio;       /* 0.5: garbage share of a file that starts automatic GC */
    int multi_process;          /* 1: any number of processes open the directory
                                 * read-write at once (see "Several processes");
                                 * 0: the exclusive mode, one process holds it (the
                                 * others get STOAT_EBUSY). Read-only opens ignore it */
    uint32_t lock_timeout_ms;   /* 5000: multi_process: a commit waits this long for
                                 * another process's commit, then STOAT_EBUSY */
    uint32_t open_timeout_ms;   /* 0: how long open waits for the directory's lock
                                 * (an exclusive holder, another process's recovery)
                                 * before STOAT_EBUSY; 0 = the lock at once, and
                                 * (multi_process) up to 5000 ms for the recovery */
    const char *shm_dir;        /* NULL: multi_process: the directory of the shared-memory
                                 * region (NULL: /dev/shm); the first process to open
                                 * chooses for all. Too small a file system fails the
                                 * open with STOAT_ENOSPC. Read during stoat_open only */
    const uint8_t *encryption_key; /* NULL: files are written in the clear. Else
                                 * STOAT_KEY_LEN bytes, the master key: every file
                                 * that holds keys or values is encrypted and
                                 * authenticated ("Encryption at rest" below). A
                                 * database is created encrypted or not and stays so.
                                 * Copied during stoat_open; wipe your copy after */
    uint64_t encryption_key_rotation_ms; /* 0 = 10 days: a new data key is made for
                                 * new files once the newest is this old */
} stoat_options;

typedef struct stoat_db stoat_db;
typedef struct stoat_iter stoat_iter;
typedef struct stoat_txn stoat_txn;
typedef struct stoat_batch stoat_batch;
typedef struct stoat_loader stoat_loader;

/* Iterator bounds. NULL pointers mean unbounded. The bytes are copied. */
typedef struct stoat_iter_options {
    const void *prefix;         /* only keys starting with these bytes */
    size_t prefix_len;
    const void *lower;          /* only keys >= lower (inclusive) */
    size_t lower_len;
    const void *upper;          /* only keys < upper (exclusive) */
    size_t upper_len;
    int keys_only;              /* 1: stoat_iter_value is not needed */
    int all_versions;           /* 1: every version of each key, newest first */
} stoat_iter_options;

/* Transaction flags */
enum {
    STOAT_TXN_READ_ONLY = 1     /* a snapshot that never conflicts and cannot write */
};

/* The clock expiries are checked against: unix time in milliseconds. */
uint64_t stoat_clock_ms(void);

/* Names an error code ("corruption", ...). Static storage. */
const char *stoat_strerror(int rc);

/*
 * The detailed message of the last failing call made by this thread on db
 * (or of the last failed stoat_open when db is NULL). Borrowed: valid until
 * this thread's next call into stoat. "" when there is none.
 */
const char *stoat_errmsg(const stoat_db *db);

/* Library version, "major.minor.patch". Static storage. */
const char *stoat_version(void);

void stoat_options_init(stoat_options *opts);

/*
 * Opens (or creates) the database in directory dir. *out is NULL on error.
 *
 * Errors: STOAT_EINVAL (no directory, a bad option), STOAT_EBUSY (locked by
 * another open), STOAT_EEXIST (error_if_exists), STOAT_ENOTFOUND (missing,
 * create_if_missing off, or read-only), STOAT_ENOTSUP (a newer format),
 * STOAT_ECORRUPT, STOAT_EIO, STOAT_ENOMEM, STOAT_ENOSPC.
 */
int stoat_open(const char *dir, const stoat_options *opts, stoat_db **out);

/*
 * Flushes nothing extra (committed writes are already in the WAL), stops
 * the background threads, releases the lock and frees db. Iterators must
 * be closed first. Returns the sticky background error if there was one.
 * db may be NULL.
 *
 * Errors: STOAT_EBUSY (iterators or transactions still open: nothing is
 * closed), STOAT_EFORKED, the sticky error, STOAT_EIO or STOAT_ENOSPC from
 * the last sync.
 */
int stoat_close(stoat_db *db);

/*
 * stoat_put and stoat_delete.
 * Errors: STOAT_EINVAL (a NULL handle or out-parameter), STOAT_EFORKED,
 * STOAT_EINVAL (empty key), STOAT_ETOOBIG (key or value over its limit),
 * STOAT_EREADONLY, STOAT_ECLOSED, STOAT_ENOMEM, and the sticky error of an
 * earlier failed write or background job (STOAT_EIO, STOAT_ENOSPC,
 * STOAT_ECORRUPT).
 */
int stoat_put(stoat_db *db, const void *key, size_t klen, const void *val, size_t vlen);
int stoat_delete(stoat_db *db, const void *key, size_t klen);

/*
 * Reads the latest value of key into *val (malloc'd, owned by the caller,
 * free it with stoat_free) and its length into *vlen. STOAT_ENOTFOUND when
 * the key is absent; *val is NULL then and on every error.
 *
 * Errors: STOAT_EINVAL (a NULL handle or out-parameter), STOAT_EFORKED,
 * STOAT_EINVAL (empty key), STOAT_ETOOBIG (key), STOAT_ENOTFOUND,
 * STOAT_ECORRUPT, STOAT_EIO, STOAT_ENOMEM.
 */
int stoat_get(stoat_db *db, const void *key, size_t klen, void **val, size_t *vlen);

/* Frees memory stoat handed to the caller. p may be NULL. */
void stoat_free(void *p);

/*
 * Makes everything written so far durable (fsync of the WAL).
 *
 * Errors: STOAT_EINVAL (a NULL handle or out-parameter), STOAT_EFORKED,
 * STOAT_ECLOSED, STOAT_EIO, STOAT_ENOSPC, the sticky error (0 on a read-only
 * database).
 */
int stoat_sync(stoat_db *db);

/*
 * Turns the active memtable into an SST now and waits until it is written.
 *
 * Errors: STOAT_EINVAL (a NULL handle or out-parameter), STOAT_EFORKED,
 * STOAT_EREADONLY, STOAT_ECLOSED, STOAT_ENOMEM, and the sticky error of an
 * earlier failed write or background job (STOAT_EIO, STOAT_ENOSPC,
 * STOAT_ECORRUPT).
 */
int stoat_flush(stoat_db *db);

/*
 * Flushes, then compacts every level into the last one and waits: old
 * versions and tombstones no reader needs are dropped on the way.
 *
 * Errors: STOAT_EINVAL (a NULL handle or out-parameter), STOAT_EFORKED,
 * STOAT_EREADONLY, STOAT_ECLOSED, STOAT_ENOMEM, and the sticky error of an
 * earlier failed write or background job (STOAT_EIO, STOAT_ENOSPC,
 * STOAT_ECORRUPT).
 */
int stoat_flatten(stoat_db *db);

/*
 * Iterators read one consistent snapshot of the latest data, taken when
 * they are opened. opts may be NULL. A new iterator is not positioned:
 * call a seek first.
 *
 * Errors: STOAT_EINVAL (a NULL handle or out-parameter), STOAT_EFORKED,
 * STOAT_EINVAL (a bound with a length and no bytes), STOAT_ECORRUPT,
 * STOAT_EIO, STOAT_ENOMEM.
 */
int stoat_iter_open(stoat_db *db, const stoat_iter_options *opts, stoat_iter **out);
/*
 * Moves: the seeks, next and prev.
 * Errors: STOAT_EINVAL (NULL), STOAT_EFORKED, STOAT_ECORRUPT, STOAT_EIO,
 * STOAT_ENOMEM; on error the iterator is not valid and stoat_iter_status
 * returns it.
 */
int stoat_iter_seek_first(stoat_iter *it);
int stoat_iter_seek_last(stoat_iter *it);
/* Positions at the first key >= key (within the bounds). */
int stoat_iter_seek(stoat_iter *it, const void *key, size_t klen);
/* Positions at the last key <= key (within the bounds). */
int stoat_iter_seek_for_prev(stoat_iter *it, const void *key, size_t klen);
int stoat_iter_next(stoat_iter *it);
int stoat_iter_prev(stoat_iter *it);
/* 1 when positioned on an entry, 0 when exhausted or failed (see status). */
int stoat_iter_valid(const stoat_iter *it);
/* The error that stopped the iterator, 0 if none. */
int stoat_iter_status(const stoat_iter *it);
/*
 * Key and value of the current entry. Borrowed: valid until the iterator
 * next moves or is closed. A value from the value log may point straight
 * into a read-only mapping of its file (never write through it). Value may fail (a read of a damaged block), and
 * is STOAT_ENOTFOUND for an older version (all_versions, or a transaction
 * begun at an older version) whose value value-log GC has collected: GC
 * keeps only the newest version of a key.
 *
 * Errors: STOAT_EINVAL (NULL, or not positioned), STOAT_EFORKED;
 * stoat_iter_value also STOAT_ENOTFOUND (above), STOAT_ECORRUPT, STOAT_EIO,
 * STOAT_ENOMEM (reading a separated value).
 */
int stoat_iter_key(stoat_iter *it, const void **key, size_t *klen);
int stoat_iter_value(stoat_iter *it, const void **val, size_t *vlen);
void stoat_iter_close(stoat_iter *it);

/* Metadata of the current entry: its version (commit timestamp), expiry
 * (unix milliseconds, 0 = never), user-meta byte, and 1 in *deleted for a
 * tombstone (seen only with all_versions). Any pointer may be NULL.
 *
 * Errors: STOAT_EINVAL (NULL iterator, or not positioned), STOAT_EFORKED.
 */
int stoat_iter_meta(stoat_iter *it, uint64_t *version, uint64_t *expires_at, uint8_t *user_meta,
                    int *deleted);

/*
 * Transactions: optimistic MVCC with serializable snapshot isolation.
 * A transaction reads the snapshot of its begin (plus its own writes) and
 * buffers its writes; commit fails with STOAT_ECONFLICT when another
 * transaction committed, after this one began, a key this one read or a
 * key inside a range this one iterated. Read-only transactions never
 * conflict. A transaction belongs to one thread at a time.
 *
 * Every transaction ends with stoat_txn_discard, which frees it (after a
 * commit, or instead of one). Iterators opened on it must be closed first.
 *
 * stoat_txn_begin and stoat_txn_begin_at.
 * Errors: STOAT_EINVAL (a NULL handle or out-parameter), STOAT_EFORKED,
 * STOAT_EREADONLY (a read-write transaction on a read-only database),
 * STOAT_ECLOSED, STOAT_ENOMEM.
 */
int stoat_txn_begin(stoat_db *db, int flags, stoat_txn **out);

/* A read-only transaction reading at an older version (what the database
 * looked like after that commit), as far as compaction and value-log GC
 * kept it: a version since superseded whose value GC collected reads as
 * absent (STOAT_ENOTFOUND), as one compaction dropped would. */
int stoat_txn_begin_at(stoat_db *db, uint64_t read_version, stoat_txn **out);

/* The version this transaction reads at. */
uint64_t stoat_txn_read_version(const stoat_txn *txn);

/*
 * Reads key. *val is borrowed: valid until the next call on this
 * transaction (or its discard); a value from the value log may point
 * straight into a read-only mapping of its file (never write through it). STOAT_ENOTFOUND when absent, deleted or
 * expired.
 *
 * stoat_txn_get and stoat_txn_get_meta.
 * Errors: STOAT_EINVAL (NULL, empty key, a finished transaction),
 * STOAT_EFORKED, STOAT_ETOOBIG (key), STOAT_ENOTFOUND, STOAT_ECORRUPT,
 * STOAT_EIO, STOAT_ENOMEM.
 */
int stoat_txn_get(stoat_txn *txn, const void *key, size_t klen, const void **val, size_t *vlen);

/* Like stoat_txn_get, also returning the entry's metadata (NULL ok): its
 * version (0 for the transaction's own write), expiry (unix milliseconds,
 * 0 = never) and user-meta byte. */
int stoat_txn_get_meta(stoat_txn *txn, const void *key, size_t klen, const void **val,
                       size_t *vlen, uint64_t *version, uint64_t *expires_at,
                       uint8_t *user_meta);

/*
 * stoat_txn_set, stoat_txn_set_ex (also STOAT_EINVAL: ttl over STOAT_MAX_TTL_MS), stoat_txn_delete.
 * Errors: STOAT_EINVAL (NULL, empty key, a finished transaction),
 * STOAT_EFORKED, STOAT_EREADONLY (a read-only transaction), STOAT_ETOOBIG
 * (key, value, or the transaction's limits: it keeps what it had),
 * STOAT_ENOMEM.
 */
int stoat_txn_set(stoat_txn *txn, const void *key, size_t klen, const void *val, size_t vlen);

/* Set with a time to live in milliseconds (0 = forever, at most
 * STOAT_MAX_TTL_MS, else STOAT_EINVAL) and a user-meta byte. */
int stoat_txn_set_ex(stoat_txn *txn, const void *key, size_t klen, const void *val, size_t vlen,
                     uint64_t ttl_ms, uint8_t user_meta);

int stoat_txn_delete(stoat_txn *txn, const void *key, size_t klen);

/* An iterator over the transaction's snapshot merged with its own pending
 * writes (as they were when the iterator was opened).
 *
 * Errors: STOAT_EINVAL (NULL, a bad bound, a finished transaction),
 * STOAT_EFORKED, STOAT_ECORRUPT, STOAT_EIO, STOAT_ENOMEM.
 */
int stoat_txn_iter_open(stoat_txn *txn, const stoat_iter_options *opts, stoat_iter **out);

/*
 * Commits: STOAT_ECONFLICT (nothing written: run the transaction again),
 * STOAT_ETOOBIG is reported earlier, by the set that crossed the limit.
 * After commit (either result) only stoat_txn_discard may follow.
 *
 * Errors: STOAT_ECONFLICT, STOAT_EINVAL (NULL, iterators still open,
 * committed already), STOAT_EFORKED, STOAT_EREADONLY, STOAT_ECLOSED,
 * STOAT_ENOMEM, and the sticky error of an earlier failed write or
 * background job (STOAT_EIO, STOAT_ENOSPC, STOAT_ECORRUPT).
 */
int stoat_txn_commit(stoat_txn *txn);

/* Ends the transaction, dropping uncommitted writes; frees it. NULL ok. */
void stoat_txn_discard(stoat_txn *txn);

/*
 * Write batches: fast, non-transactional bulk writes. Entries are committed
 * in chunks as the batch fills (each chunk atomic, the batch as a whole
 * not); stoat_batch_commit writes the rest and waits for it.
 *
 * Errors: STOAT_EINVAL (a NULL handle or out-parameter), STOAT_EFORKED,
 * STOAT_EREADONLY, STOAT_ENOMEM.
 */
int stoat_batch_new(stoat_db *db, stoat_batch **out);
/*
 * stoat_batch_set, stoat_batch_set_ex and stoat_batch_delete.
 * Errors: STOAT_EINVAL (NULL, empty key, ttl over STOAT_MAX_TTL_MS),
 * STOAT_ETOOBIG, and when the batch fills and commits a chunk, those of
 * stoat_batch_commit.
 */
int stoat_batch_set(stoat_batch *b, const void *key, size_t klen, const void *val, size_t vlen);
int stoat_batch_set_ex(stoat_batch *b, const void *key, size_t klen, const void *val,
                       size_t vlen, uint64_t ttl_ms, uint8_t user_meta);
int stoat_batch_delete(stoat_batch *b, const void *key, size_t klen);
/*
 * Errors: STOAT_EINVAL (NULL), STOAT_EFORKED, STOAT_EREADONLY,
 * STOAT_ECLOSED, STOAT_ENOMEM, and the sticky error of an earlier failed
 * write or background job (STOAT_EIO, STOAT_ENOSPC, STOAT_ECORRUPT); the
 * batch is empty afterwards whatever the result.
 */
int stoat_batch_commit(stoat_batch *b);
void stoat_batch_free(stoat_batch *b);

/*
 * Bulk loads: entries given in strictly increasing key order are written
 * straight into new tables (no WAL, no memtable, no compaction), then
 * stoat_loader_finish installs them all at once, with one MANIFEST edit,
 * at the deepest level with room for their key range, as one commit: one
 * version for every entry, visible to every snapshot taken after finish
 * returns and to none taken before. Values of value_threshold bytes or
 * more go to the value log, as with every write. For loading an empty
 * database or an empty key range: finish refuses (STOAT_EEXIST, nothing
 * installed) when any entry, tombstones included, already lies between
 * the first and the last key loaded (in a memtable or a table); a table
 * that fills up is checked at once, so such a load fails early. Until
 * finish returns nothing is visible; after a crash the unfinished tables
 * are removed by the next open (values already appended to the value log
 * stay there as garbage). The version a bulk load commits at is reserved
 * when it begins, 2^32 ahead of the next commit (commits may go on during
 * the load): versions jump by that much at each bulk load. A loader
 * belongs to one thread at a time; several may run at once (disjoint
 * ranges) if they finish in the order they began. stoat_close refuses
 * (STOAT_EBUSY) while one is open; value-log GC picks no file meanwhile.
 * With several processes (multi_process) a bulk load runs in the
 * background owner only (elsewhere stoat_loader_new returns STOAT_EBUSY
 * naming its pid); its finish holds every process's commits back while it
 * installs, and the other processes' transactions begun before it that
 * read anything conflict at commit (their conflict checks cannot see the
 * loaded keys).
 *
 * stoat_loader_new.
 * Errors: STOAT_EINVAL (a NULL handle or out-parameter), STOAT_EFORKED,
 * STOAT_EREADONLY, STOAT_ECLOSED, STOAT_ETOOBIG (versions exhausted),
 * STOAT_EBUSY (another process runs the background work), STOAT_ENOMEM,
 * the sticky error.
 */
int stoat_loader_new(stoat_db *db, stoat_loader **out);

/*
 * Adds key = val, expiring at expires_at_ms (unix milliseconds, 0 =
 * never; an entry already expired is written and never visible), with a
 * user-meta byte. key must be greater than the previous key added. A
 * refused entry (STOAT_EINVAL, STOAT_ETOOBIG) leaves the loader as it
 * was; any other failure is sticky: every later add and finish returns
 * it, and only stoat_loader_abort is left.
 *
 * Errors: STOAT_EINVAL (NULL, empty key, a key not greater than the
 * previous one), STOAT_EFORKED, STOAT_ETOOBIG (key or value), STOAT_EEXIST
 * (a finished table's range already holds data), STOAT_EIO, STOAT_ENOSPC,
 * STOAT_ENOMEM.
 */
int stoat_loader_add(stoat_loader *ld, const void *key, size_t klen, const void *val,
                     size_t vlen, uint64_t expires_at_ms, uint8_t user_meta);

/*
 * Writes the last table, makes the tables and values durable and
 * installs them (see above); *version (may be NULL) gets the version the
 * entries were committed at (0 when none was added: nothing to install).
 * Frees ld whatever the result; on failure nothing was installed and its
 * files are removed.
 *
 * Errors: STOAT_EINVAL (NULL), STOAT_EFORKED, STOAT_EEXIST (the key range
 * holds data), STOAT_EBUSY (a bulk load begun later finished first, or
 * 2^32 commits ran during this one: its version was passed), STOAT_ECLOSED, STOAT_EIO, STOAT_ENOSPC, STOAT_ENOMEM, a sticky
 * error of the loader or of the database.
 */
int stoat_loader_finish(stoat_loader *ld, uint64_t *version);

/* Drops everything added and frees ld; its tables are removed and its
 * value-log bytes counted as garbage. NULL ok. */
void stoat_loader_abort(stoat_loader *ld);

/*
 * Value-log garbage collection: rewrites the live values of every value-log
 * file whose garbage share exceeds discard_ratio (0 < ratio < 1) into new
 * files and deletes the old ones, looping until no file that existed when
 * the call began qualifies. It flushes and compacts first, so garbage from
 * recent overwrites and deletes counts. A file an open snapshot
 * (transaction or iterator) may still read is deleted once the last such
 * snapshot ends (the background thread deletes it: the reader's close does
 * no I/O). A file with a damaged record is left as it is (its other
 * values still read): the call collects the others, then returns
 * STOAT_ECORRUPT naming it. *reclaimed (may be NULL) gets the bytes of
 * value log freed (files deleted minus values rewritten). With auto_gc on,
 * this also happens in the background (which skips damaged files quietly).
 *
 * Errors: STOAT_EINVAL (a NULL handle or out-parameter), STOAT_EFORKED,
 * STOAT_EINVAL (discard_ratio not in (0, 1)), STOAT_ECORRUPT (a damaged
 * file, left alone), STOAT_EREADONLY, STOAT_ECLOSED, STOAT_ENOMEM, and the
 * sticky error of an earlier failed write or background job (STOAT_EIO,
 * STOAT_ENOSPC, STOAT_ECORRUPT).
 */
int stoat_gc(stoat_db *db, double discard_ratio, uint64_t *reclaimed);

/*
 * Checks the database's files: every block of every table (checksums and
 * entry order), every value pointer in them (the record exists, passes its
 * checks and holds the same key), every record of every sealed value-log
 * file; the MANIFEST and the WALs are checked by stoat_open. Returns 0 when
 * all is sound, STOAT_ECORRUPT when something is damaged, another error
 * when the walk itself failed. *report (may be NULL) gets a malloc'd,
 * NUL-terminated text, one line per problem naming the file, the record
 * (offset) and the keys concerned ("" when sound); free it with
 * stoat_free. *report_len (may be NULL) gets its length. Runs beside
 * readers, writers and background work.
 *
 * Errors: STOAT_ECORRUPT (damage found, listed in *report), STOAT_EINVAL (a
 * NULL handle), STOAT_EFORKED, STOAT_EIO, STOAT_ENOMEM.
 */
int stoat_verify(stoat_db *db, char **report, size_t *report_len);

/*
 * Deletes every key starting with prefix (all keys when plen is 0).
 *
 * stoat_drop_prefix and stoat_drop_all.
 * Errors: STOAT_EINVAL (a NULL handle or out-parameter), STOAT_EFORKED,
 * STOAT_EINVAL (NULL prefix with plen > 0), STOAT_EREADONLY, STOAT_ECLOSED,
 * STOAT_ENOMEM, and the sticky error of an earlier failed write or
 * background job (STOAT_EIO, STOAT_ENOSPC, STOAT_ECORRUPT), STOAT_ECORRUPT,
 * STOAT_EIO, STOAT_ENOMEM.
 */
int stoat_drop_prefix(stoat_db *db, const void *prefix, size_t plen);
int stoat_drop_all(stoat_db *db);

/* Statistics, a snapshot taken by stoat_stats. */
#define STOAT_STATS_LEVELS 16
typedef struct stoat_stats {
    int num_levels;
    uint64_t level_tables[STOAT_STATS_LEVELS];
    uint64_t level_bytes[STOAT_STATS_LEVELS];
    uint64_t memtables;             /* active + immutable */
    uint64_t memtable_bytes;        /* arena bytes in use */
    uint64_t block_cache_bytes;
    uint64_t block_cache_capacity;
    uint64_t block_cache_hits;
    uint64_t block_cache_misses;
    uint64_t open_files;            /* SST readers open */
    uint64_t last_version;          /* newest committed version */
    uint64_t flushes;
    uint64_t compactions;
    uint64_t stall_micros;          /* time writers waited on back-pressure */
    uint64_t vlog_files;
    uint64_t vlog_bytes;
    uint64_t vlog_garbage_bytes;
    uint64_t txn_commits;
    uint64_t txn_conflicts;
    /* For estimates of the number of keys: entries (every version and
     * tombstone) in the tables, the tombstones among them, and entries in
     * the memtables. */
    uint64_t table_entries;
    uint64_t table_deletions;
    uint64_t memtable_entries;
    /* The shared block cache of the processes of a database (multi-process
     * mode; 0 without one): the bytes it holds, once for every process,
     * and this handle's hits and misses in it (after a miss in its own
     * block_cache, before the file). */
    uint64_t shared_cache_bytes;
    uint64_t shared_cache_hits;
    uint64_t shared_cache_misses;
} stoat_stats;

/*
 * Errors: STOAT_EINVAL (a NULL handle or out-parameter), STOAT_EFORKED,
 * STOAT_ENOMEM.
 */
int stoat_stats_get(stoat_db *db, stoat_stats *out);

/*
 * Encryption at rest. A database created with stoat_options.encryption_key
 * (the master key) keeps in its directory a key registry, KEYREGISTRY:
 * random data keys, each sealed by the master key. Every WAL record, table
 * block, value-log record, MANIFEST record and the DISCARD file are sealed
 * (XChaCha20-Poly1305, random 192-bit nonces) by a data key, bound to
 * their file and offset: a modified, moved or replayed record or block is
 * STOAT_ECORRUPT, never a wrong value. A small header in the clear at the
 * start of each such file names the data key that wrote it; LOCK and the
 * shared-memory region (which holds no keys or values) are not encrypted.
 * Format: core/FORMAT.md, "Encryption at rest".
 *
 * Opening an encrypted database without a key or with a wrong one, or an
 * unencrypted one with a key, fails with STOAT_EKEY before anything is
 * written. Keys are never in messages and are wiped on close.
 */

/*
 * Changes the master key of the closed database in dir from old_key to
 * new_key (STOAT_KEY_LEN bytes each): the data keys are sealed again, no
 * data file is rewritten. Atomic: after a crash either key opens it.
 *
 * Errors: STOAT_EINVAL (NULL arguments, no database), STOAT_EKEY (old_key
 * is wrong, or the database is not encrypted), STOAT_EBUSY (open by a
 * process), STOAT_ECORRUPT (a damaged registry), STOAT_EIO, STOAT_ENOSPC.
 */
int stoat_rekey(const char *dir, const uint8_t *old_key, const uint8_t *new_key);

/*
 * Makes a new data key now: files written from now on use it (files
 * already written keep theirs).
 *
 * Errors: STOAT_EINVAL (a NULL handle), STOAT_EFORKED, STOAT_ENOTSUP (the
 * database is not encrypted), STOAT_EREADONLY, STOAT_EIO, STOAT_ENOSPC.
 */
int stoat_rotate_key(stoat_db *db);

/*
 * Sealed streams: what leaves an encrypted database as a stream (a backup)
 * stays encrypted and authenticated. A stream key is derived from the
 * master key and a random 16-byte salt the stream stores in the clear
 * (BLAKE2b, label "stoat stream v1 "); each piece of the stream is sealed
 * with XChaCha20-Poly1305 under it, with associated data of the caller's
 * choosing (its place in the stream, say), so that a piece altered,
 * dropped, moved or taken from another stream fails to open. A sealed
 * piece is STOAT_STREAM_OVERHEAD bytes longer than the plain one.
 */
#define STOAT_STREAM_SALT_LEN 16
#define STOAT_STREAM_OVERHEAD 40
typedef struct stoat_stream_key stoat_stream_key;

/* The key of the stream with this salt under master (STOAT_KEY_LEN
 * bytes); with fresh set, salt is filled with new random bytes first.
 * Errors: STOAT_EINVAL (NULL arguments), STOAT_ENOMEM, STOAT_EIO (no
 * random source). */
int stoat_stream_key_new(const uint8_t *master, uint8_t *salt, int fresh,
                         stoat_stream_key **out);
/* Wipes and frees k (NULL is fine). */
void stoat_stream_key_free(stoat_stream_key *k);

/* Seals len bytes at in into out (len + STOAT_STREAM_OVERHEAD bytes, not
 * overlapping in), with ad (ad_len bytes) authenticated. */
int stoat_stream_seal(const stoat_stream_key *k, const void *ad, size_t ad_len, const void *in,
                      size_t len, void *out);

/* Opens a sealed piece (len bytes, at least STOAT_STREAM_OVERHEAD) into
 * out (len - STOAT_STREAM_OVERHEAD bytes) with the same ad: STOAT_ECORRUPT
 * when it was altered or sealed with another key, salt or ad (a wrong
 * master key looks the same). */
int stoat_stream_open(const stoat_stream_key *k, const void *ad, size_t ad_len, const void *in,
                      size_t len, void *out);

#ifdef STOAT_BUILD
_Pragma("GCC visibility pop")
#endif

#ifdef __cplusplus
}
#endif

#endif /* STOAT_H */
