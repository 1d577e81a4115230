/*
 * iterator.h - the public iterator (iterator.c): a stoat_iter over the
 * database, or over a transaction's writes merged ahead of it.
 */
#ifndef STOAT_DB_ITERATOR_H
#define STOAT_DB_ITERATOR_H

#include <stdio.h>

#include "db/db.h"

/* Where an iterator reports when it closes (its transaction): tracked
 * says whether lo/hi are the key range it covered (data NULL =
 * unbounded). A callback, so that the iterator knows nothing of
 * transactions. */
typedef struct db_iterator_sink {
    void (*closed)(void *arg, stoat_iter *it, int tracked, slice lo, slice hi);
    void *arg;
} db_iterator_sink;

/* Opens an iterator at read_version (or DB_READ_LATEST) merging `pending`
 * (owned, may be NULL) ahead of the database. With a sink (may be NULL),
 * the iterator calls it when it closes, with the key range it covered
 * when track_range is set. */
int db_iterator_open(stoat_db *db, const db_iterator_sink *sink, int track_range,
                     uint64_t read_version, iter *pending, const stoat_iter_options *o,
                     stoat_iter **out);
/* Its sink is gone: the iterator stops reporting. */
void db_iterator_detach(stoat_iter *it);
/* 0, or STOAT_EINVAL when a bound has a length but no bytes. */
int db_check_iter_options(const stoat_iter_options *o);
/* Test support: prints the iterator's read version, each source's
 * position and the tables of its version. */
void db_iterator_describe(stoat_iter *it, FILE *f);

#ifdef STOAT_TESTING
/* Tests: iterators prefetch values after two reads, however fast the
 * reads are (normally only reads that wait for the disk start it). */
extern int db_iter_prefetch_always;
#endif

#endif
