/*
 * skiplist.h - a skiplist of internal keys in an arena, with lock-free reads.
 *
 * Nodes, keys and values all live in the arena and link to each other by
 * uint32 arena offsets; a node handle is its offset, 0 meaning "none".
 * Nodes with their keys fill the arena from the bottom, values from the
 * top, so that searches walk densely packed nodes.
 * Entries are ordered by ikey_cmp (ikey.h) and are never removed: the list
 * dies with its arena. Every internal key appears at most once; inserting
 * an existing one replaces its value in one atomic store.
 *
 * Threads: one writer at a time (the caller serialises skiplist_insert),
 * which is also the only allocator of the arena; any number of readers
 * run concurrently with it and without locks. A node is fully written
 * before it is linked, level 0 first, with release stores; readers follow
 * links with acquire loads, so a reader sees either the old list or the
 * new node complete with its key and value.
 *
 * Keys and values returned by skiplist_key/skiplist_value are borrowed
 * from the arena and stay valid as long as the arena lives (a replaced
 * value's old bytes stay in the arena too).
 *
 * Stamps. A node may carry a stamp: the version from which readers may
 * see it, when that is later than the version in its key. Value-log GC
 * rewrites a value under its key's old version, and an iterator that was
 * already reading the list must not meet the rewrite as a new entry at a
 * version it can see (issue 9: the merge above it assumes a source never
 * gains entries inside its snapshot). Only stamped nodes pay the 8 bytes.
 */
#ifndef STOAT_SKIPLIST_H
#define STOAT_SKIPLIST_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/slice.h"

/* With branching 1/2, 24 levels serve 2^24 entries well; a list with
 * more still works, its top level just holds more nodes. */
#define SKIPLIST_MAX_HEIGHT 24

/* Arena bytes a node costs beyond its key and value, at most: header,
 * full tower, a stamp and 8-byte alignment padding. */
#define SKIPLIST_NODE_OVERHEAD (16 + 4 * SKIPLIST_MAX_HEIGHT + 8 + 7)

/* Fields are private to skiplist.c; the struct is public so that a
 * memtable can embed it. */
typedef struct skiplist {
    arena *arena;
    uint32_t head;          /* sentinel node with a full tower, no key */
    _Atomic int height;     /* levels in use, 1..SKIPLIST_MAX_HEIGHT */
    _Atomic uint64_t count; /* distinct internal keys */
    uint64_t rnd;           /* xorshift state for tower heights (writer only) */
    /* Writer only: at every level, the last node <= the last key inserted
     * (the head if none), so an insert right after it needs no search. */
    uint32_t splice[SKIPLIST_MAX_HEIGHT];
} skiplist;

/* Sets up an empty list in arena a (allocates its head node): STOAT_ENOMEM
 * if the arena cannot hold it. The arena must outlive the list. */
int skiplist_init(skiplist *sl, arena *a, uint64_t seed);

/*
 * Copies ikey (at least 8 bytes) and value into the arena and links them,
 * or, when ikey is already present, copies the value and swaps it in.
 * A new node gets the stamp `visible_from` when it is not 0 (see the top
 * of the file); a replaced value keeps its node's visibility. STOAT_ENOMEM
 * when the arena is full, checked before anything is allocated, so the
 * list is unchanged then. *added (may be NULL) is 1 for a new node, 0 for
 * a replaced value. Writer only.
 */
int skiplist_insert(skiplist *sl, slice ikey, slice value, uint64_t visible_from, int *added);
/* skiplist_insert that also gives the node now holding ikey (0 on error). */
int skiplist_insert_node(skiplist *sl, slice ikey, slice value, uint64_t visible_from, int *added,
                         uint32_t *node);

/* The node's stamp, or 0 when it has none (visible from its key's own
 * version). */
uint64_t skiplist_stamp(const skiplist *sl, uint32_t node);

/* Number of distinct internal keys. */
uint64_t skiplist_count(const skiplist *sl);

/* Navigation; each returns a node or 0 when there is none. */
uint32_t skiplist_first(const skiplist *sl);
uint32_t skiplist_last(const skiplist *sl);
/* First node >= target (an internal key). */
uint32_t skiplist_seek(const skiplist *sl, slice target);
/* Last node <= target (an internal key). */
uint32_t skiplist_seek_for_prev(const skiplist *sl, slice target);
uint32_t skiplist_next(const skiplist *sl, uint32_t node);
/* A hint for a scan in key order that is at node (not 0): asks the CPU to
 * fetch node's value and the next node into the cache, so that their
 * misses overlap the caller's work on node. Changes nothing. */
void skiplist_prefetch(const skiplist *sl, uint32_t node);
/* The node before `node` (a search from the head: O(log n)). */
uint32_t skiplist_prev(const skiplist *sl, uint32_t node);

/* Newest node of user key ukey with version <= version, or 0. */
uint32_t skiplist_find(const skiplist *sl, slice ukey, uint64_t version);

/* The internal key and the current value of a node (borrowed, see above). */
slice skiplist_key(const skiplist *sl, uint32_t node);
slice skiplist_value(const skiplist *sl, uint32_t node);

#endif
