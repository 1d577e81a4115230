/*
 * ingest_build.h - the tables of a bulk load (ingest_build.c): chunks of
 * encoded entries built into SSTables by worker threads, in key order;
 * and the check that a key range holds no data.
 */
#ifndef STOAT_DB_INGEST_BUILD_H
#define STOAT_DB_INGEST_BUILD_H

#include "db/db.h"

#ifndef INGEST_WORKERS
#define INGEST_WORKERS 2
#endif
#define INGEST_CHUNKS (INGEST_WORKERS + 1)
/* Bytes of entries a chunk (a table) holds at most, table_size if less. */
#ifndef INGEST_CHUNK_MAX
#define INGEST_CHUNK_MAX (16u << 20)
#endif

/* The entries of one table (fixed32 klen | fixed32 vlen | ikey | value,
 * back to back), built by a worker. */
typedef struct ingest_chunk {
    buf data;
    int state;                      /* CHUNK_*, under the builder's mu */
    uint64_t id;                    /* table id */
    table_meta *t;                  /* the built table */
    int rc;                         /* its failure, with its message */
    char msg[STATUS_MSG_MAX];
} ingest_chunk;

typedef struct ingest_builder {
    stoat_db *db;
    uint64_t version;               /* every entry's */
    uint64_t chunk_size;
    ingest_chunk chunks[INGEST_CHUNKS];
    uint64_t fill_seq;              /* chunks handed to the workers so far */
    uint64_t build_seq;             /* ... taken by a worker (mu) */
    uint64_t collect_seq;           /* ... collected */
    pthread_t workers[INGEST_WORKERS];
    int n_workers;
    int stop;                       /* mu */
    pthread_mutex_t mu;             /* chunk states, build_seq, stop */
    pthread_cond_t cv;
    table_meta **tables;            /* built tables, in key order (references) */
    size_t n_tables, cap_tables;
} ingest_builder;

void ingest_builder_init(ingest_builder *ib, stoat_db *db, uint64_t version);
/* Adds user key ukey (greater than the one before) with stored value vs
 * at the builder's version. A full chunk goes to the workers; errors of
 * a chunk built earlier (STOAT_EEXIST from the range check, I/O) come
 * back from a later put or from finish, with their message. */
int ingest_builder_put(ingest_builder *ib, slice ukey, const vstruct *vs);
/* Builds the last chunk and waits for every table: 0 when all of them
 * are in ib->tables. */
int ingest_builder_finish(ingest_builder *ib);
/* Stops the workers (a chunk being built is finished, queued ones are
 * dropped) and frees the chunks; every table built stays in ib->tables
 * for the caller, who unrefs them and frees the array. */
void ingest_builder_stop(ingest_builder *ib);

/* 0 when the memtables and tables hold no entry (any version, tombstones
 * too) with a user key in [lo, hi]; else STOAT_EEXIST naming where, or
 * an error of the reads. Any thread. */
int ingest_check_range(stoat_db *db, slice lo, slice hi);

#endif
