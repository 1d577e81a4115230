/*
 * merge_iter.h - merges sorted internal iterators into one sorted stream.
 *
 * Children are given newest source first. Entries with equal internal
 * keys are all yielded, the child with the lower index first. Moves in
 * both directions (switching direction repositions every child). The
 * first child error stops the merge (valid 0, status set).
 * One thread at a time.
 */
#ifndef STOAT_MERGE_ITER_H
#define STOAT_MERGE_ITER_H

#include <stddef.h>

#include "base/iter.h"

/* Takes ownership of the n children (and of the array's contents, not the
 * array). NULL on ENOMEM, after freeing the children. */
iter *merge_iter_new(iter **children, size_t n);

#endif
