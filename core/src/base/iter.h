/*
 * iter.h - the internal iterator interface, over internal keys.
 *
 * Memtables, SST blocks, SSTs, levels and the merging iterator all offer
 * this table of operations. Positions are internal keys (ikey.h) in
 * ikey_cmp order. key() and value() are borrowed: valid until the iterator
 * moves or is freed. value() is the encoded vstruct. After an error,
 * valid() is 0 and status() returns the code (the message was recorded
 * where it happened). An iterator is used by one thread at a time.
 */
#ifndef STOAT_ITER_H
#define STOAT_ITER_H

#include "base/slice.h"

typedef struct iter iter;

struct iter_ops {
    int (*valid)(const iter *it);
    void (*seek_first)(iter *it);
    void (*seek_last)(iter *it);
    void (*seek)(iter *it, slice target);           /* first entry >= target */
    void (*seek_for_prev)(iter *it, slice target);  /* last entry <= target */
    void (*next)(iter *it);
    void (*prev)(iter *it);
    slice (*key)(const iter *it);
    slice (*value)(const iter *it);
    int (*status)(const iter *it);
    void (*free)(iter *it);
};

struct iter {
    const struct iter_ops *ops;
};

static inline int iter_valid(const iter *it) { return it->ops->valid(it); }
static inline void iter_seek_first(iter *it) { it->ops->seek_first(it); }
static inline void iter_seek_last(iter *it) { it->ops->seek_last(it); }
static inline void iter_seek(iter *it, slice t) { it->ops->seek(it, t); }
static inline void iter_seek_for_prev(iter *it, slice t) { it->ops->seek_for_prev(it, t); }
static inline void iter_next(iter *it) { it->ops->next(it); }
static inline void iter_prev(iter *it) { it->ops->prev(it); }
static inline slice iter_key(const iter *it) { return it->ops->key(it); }
static inline slice iter_value(const iter *it) { return it->ops->value(it); }
static inline int iter_status(const iter *it) { return it->ops->status(it); }
static inline void iter_free(iter *it)
{
    if (it)
        it->ops->free(it);
}

#endif
