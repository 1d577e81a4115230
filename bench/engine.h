/*
 * engine.h - the adapter interface between the benchmark driver and one
 * storage engine.
 *
 * The driver (driver.c) runs every workload through this table of
 * functions only, so stoat and its peers (LevelDB, RocksDB, LMDB) execute
 * the same code path. Each engine_<name>.c defines the one `engine` table;
 * a benchmark binary links the driver with exactly one adapter.
 *
 * Objects:
 *   engine_db       one open database. Opened and closed by the main thread
 *                   while no other thread uses it.
 *   engine_session  one thread's handle on an engine_db: it holds that
 *                   thread's scratch state (a batch under construction, a
 *                   reusable read transaction, read options). A session is
 *                   used by one thread only; sessions of one db are used
 *                   concurrently.
 *   engine_iter     an iterator over one consistent snapshot, opened from
 *                   a session and used by that session's thread. Sessions
 *                   may hold several iterators, interleaved with gets and
 *                   writes.
 *
 * Writes: put/del write one entry, durable according to engine_config.sync
 * when the call returns. A batch (batch_begin, batch_put/batch_del,
 * batch_commit) writes all its entries atomically as one unit, with one
 * durability wait; a session has at most one batch open.
 *
 * Return codes: ENGINE_OK, ENGINE_NOTFOUND (get only) or ENGINE_ERR. An
 * adapter that fails calls engine_error() to record a message for the
 * calling thread; the driver prints engine_errmsg() and stops.
 *
 * Bytes: get copies the value into the caller's engine_buf (so every
 * engine really reads the bytes, LMDB's memory map included). Iterator
 * keys and values are borrowed until the iterator next moves or closes.
 */
#ifndef BENCH_ENGINE_H
#define BENCH_ENGINE_H

#include <stddef.h>

#if defined(__GNUC__)
#define ENGINE_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ENGINE_PRINTF(a, b)
#endif

enum { ENGINE_OK = 0, ENGINE_NOTFOUND = 1, ENGINE_ERR = -1 };

/* What the driver asks of an open. */
typedef struct engine_config {
    const char *dir;    /* database directory, created if missing */
    int sync;           /* 1: each write or batch is fsynced before returning */
    int threads;        /* sessions that may be open at once */
    int bloom_bits;     /* bloom filter bits per key for LSM peers; <0 keeps
                         * the engine's own default */
    int value_threshold; /* stoat only: its value_threshold option; 0 = default */
    int encrypt;        /* stoat only: encryption at rest with a fixed key */
    int multi_process;  /* stoat only: its multi_process option (other processes
                         * open the same directory), -1 = its default (on); LMDB is
                         * always multi-process */
} engine_config;

/* A growable buffer owned by the caller; get fills it. */
typedef struct engine_buf {
    char *p;
    size_t len;
    size_t cap;
} engine_buf;

typedef struct engine_db engine_db;
typedef struct engine_session engine_session;
typedef struct engine_iter engine_iter;

typedef struct engine_ops {
    const char *name;       /* "stoat", "leveldb", "rocksdb", "lmdb" */
    /* A file whose presence shows that a directory holds this engine's
     * database; the driver deletes only such directories (or empty ones). */
    const char *marker;
    /* One line naming the version and the settings used, for the header. */
    void (*describe)(const engine_config *cfg, char *buf, size_t len);

    int (*open)(const engine_config *cfg, engine_db **out);
    int (*close)(engine_db *db);            /* db may be NULL */
    int (*sync)(engine_db *db);             /* makes all writes durable */
    /* Waits until the background work an open started (flushing what it
     * recovered, compactions) is done, so that a benchmark starts on a
     * settled database; NULL when the engine has none. --processes only. */
    int (*settle)(engine_db *db);

    int (*session_open)(engine_db *db, engine_session **out);
    void (*session_close)(engine_session *s);   /* s may be NULL */

    int (*put)(engine_session *s, const void *key, size_t klen,
               const void *val, size_t vlen);
    int (*del)(engine_session *s, const void *key, size_t klen);
    /* ENGINE_OK and the value in *val, or ENGINE_NOTFOUND. */
    int (*get)(engine_session *s, const void *key, size_t klen, engine_buf *val);

    int (*batch_begin)(engine_session *s);
    int (*batch_put)(engine_session *s, const void *key, size_t klen,
                     const void *val, size_t vlen);
    int (*batch_del)(engine_session *s, const void *key, size_t klen);
    int (*batch_commit)(engine_session *s);

    /* A new iterator is not positioned: seek first. Moves return ENGINE_OK
     * even when they run off the end (then valid is 0) and ENGINE_ERR only
     * on a failure. */
    int (*iter_open)(engine_session *s, engine_iter **out);
    int (*iter_seek_first)(engine_iter *it);
    int (*iter_seek_last)(engine_iter *it);
    int (*iter_seek)(engine_iter *it, const void *key, size_t klen);
    int (*iter_next)(engine_iter *it);
    int (*iter_prev)(engine_iter *it);
    int (*iter_valid)(engine_iter *it);     /* 1 positioned, 0 not */
    /* Borrowed until the iterator moves or closes. Only when valid. */
    int (*iter_key)(engine_iter *it, const void **key, size_t *klen);
    int (*iter_value)(engine_iter *it, const void **val, size_t *vlen);
    void (*iter_close)(engine_iter *it);    /* it may be NULL */
} engine_ops;

/* The adapter linked into this binary. */
extern const engine_ops engine;

/* Records "fmt ..." as the calling thread's error and returns ENGINE_ERR. */
int engine_error(const char *fmt, ...) ENGINE_PRINTF(1, 2);

/* The calling thread's last error message; "" when none. Thread-local. */
const char *engine_errmsg(void);

/* Copies len bytes into b, growing it. ENGINE_ERR when out of memory. */
int engine_buf_set(engine_buf *b, const void *p, size_t len);

void engine_buf_free(engine_buf *b);

#endif /* BENCH_ENGINE_H */
