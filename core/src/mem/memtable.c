/*
 * memtable.c - a skiplist in an arena plus the WAL file that makes it
 * durable (contract in memtable.h, WAL format in wal.h).
 *
 * Owns: the arena and its skiplist (every key and value of the memtable),
 * the WAL file handle (NULL for a read-only recovered memtable, which
 * refuses appends), a scratch buffer for framing records, and the
 * statistics readers may poll (WAL size, version range). The struct is
 * freed, the WAL closed and, if marked obsolete, removed when the last
 * reference goes.
 *
 * Invariants: wal_size is the length of the WAL's good prefix: the header
 * and every record recovered or appended since (a failed append is cut
 * back off, see memtable_append_failed). min_version is UINT64_MAX while
 * nothing was added (no real version is UINT64_MAX, see IKEY_VERSION_MAX).
 *
 * Threads: one writer (memtable_log, memtable_sync, memtable_add, serialised
 * by the caller); readers (get, iterators, the getters) run lock-free
 * alongside it; the statistics are relaxed atomics; ref/unref from any
 * thread.
 */
/* env.h before buf.h (via wal.h): env_read_at's parameter `buf` would
 * otherwise shadow the typedef and fail -Wshadow. */
#include "env/env.h"
#include "mem/memtable.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/coding.h"
#include "base/ikey.h"
#include "mem/mem_filter.h"
#include "mem/mem_index.h"
#include "mem/skiplist.h"
#include "base/status.h"
#include "env/filename.h"
#include "log/wal.h"

_Static_assert(SKIPLIST_NODE_OVERHEAD <= MEMTABLE_ENTRY_OVERHEAD, "entry overhead covers a node");

/* The framing buffer is dropped after a record larger than this, so one
 * huge commit does not pin its size for the memtable's life. */
#define MEMTABLE_REC_KEEP (1u << 20)

/* Arena bytes beyond the entries: the reserved null offset and the head. */
#define MEMTABLE_ARENA_BASE 144
_Static_assert(8 + SKIPLIST_NODE_OVERHEAD <= MEMTABLE_ARENA_BASE, "arena base covers the head");

struct memtable {
    env *env;
    char *path;
    uint64_t id;
    env_file *wal;
    arena *arena;
    skiplist sl;
    mem_filter filter;  /* the user keys added, for gets (mem_filter.h) */
    mem_index index;    /* user key -> node of its newest version (mem_index.h) */
    buf rec;
    int broken;         /* a failed append could not be cut back */
    _Atomic uint64_t wal_size;
    _Atomic uint64_t min_version;
    _Atomic uint64_t max_version;
    _Atomic int refs;
    _Atomic int obsolete;
};

static void memtable_destroy(memtable *m)
{
    if (m == NULL)
        return;
    env_close(m->wal);
    if (atomic_load(&m->obsolete))
        env_remove(m->env, m->path);    /* best effort: a leftover is replayed and found old */
    arena_free(m->arena);
    mem_filter_free(&m->filter);
    mem_index_free(&m->index);
    buf_free(&m->rec);
    free(m->path);
    free(m);
}

/* (Re)creates the arena and an empty skiplist in it. */
static int memtable_reset(memtable *m, uint64_t arena_size)
{
    int rc;

    arena_free(m->arena);
    m->arena = NULL;
    mem_filter_free(&m->filter);
    mem_index_free(&m->index);
    if ((rc = arena_new(arena_size, &m->arena)) != 0)
        return rc;
    mem_filter_init(&m->filter, arena_size);
    mem_index_init(&m->index, arena_size);
    atomic_store(&m->min_version, UINT64_MAX);
    atomic_store(&m->max_version, 0);
    return skiplist_init(&m->sl, m->arena, m->id * 0x9e3779b97f4a7c15ull + 1);
}

static int memtable_alloc(env *e, const char *dir, uint64_t id, uint64_t arena_size, memtable **out)
{
    char name[32];
    memtable *m;
    int rc;

    *out = NULL;
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return status_err(STOAT_ENOMEM, "memtable %llu: out of memory", (unsigned long long)id);
    m->env = e;
    m->id = id;
    atomic_init(&m->refs, 1);
    filename_format(name, id, FILENAME_EXT_WAL);
    if ((m->path = env_join(dir, name)) == NULL) {
        rc = status_err(STOAT_ENOMEM, "memtable %llu: out of memory", (unsigned long long)id);
        goto fail;
    }
    if ((rc = memtable_reset(m, arena_size)) != 0)
        goto fail;
    *out = m;
    return 0;
fail:
    memtable_destroy(m);
    return rc;
}

static int memtable_write_header(memtable *m)
{
    char h[WAL_HEADER_LEN];
    int rc;

    put_fixed64(h, WAL_MAGIC);
    put_fixed32(h + 8, WAL_FORMAT_VERSION);
    put_fixed32(h + 12, 0);
    if ((rc = env_append(m->wal, h, sizeof(h))) != 0)
        return rc;
    atomic_store_explicit(&m->wal_size, WAL_HEADER_LEN, memory_order_relaxed);
    return 0;
}

int memtable_new(env *e, const char *dir, uint64_t id, uint64_t arena_size, memtable **out)
{
    memtable *m = NULL;
    int rc;

    *out = NULL;
    if ((rc = memtable_alloc(e, dir, id, arena_size, &m)) != 0)
        return rc;
    if ((rc = env_open(e, m->path, ENV_WRITE | ENV_TRUNC, &m->wal)) != 0)
        goto fail;
    if ((rc = memtable_write_header(m)) != 0)
        goto fail;
    *out = m;
    return 0;
fail:
    if (m->wal != NULL)
        atomic_store(&m->obsolete, 1);  /* don't leave a headerless WAL behind */
    memtable_destroy(m);
    return rc;
}

/* Replay state: entries go into the skiplist until the arena is full, then
 * are only measured, so that the caller can size the arena and retry. */
typedef struct memtable_replay {
    memtable *m;
    uint64_t need;      /* arena bytes all entries take at most */
    int overflow;
    wal_entry_fn until; /* the caller's, or NULL */
    void *until_arg;
} memtable_replay;

static int memtable_replay_until(void *arg, slice ikey, slice value)
{
    memtable_replay *r = arg;

    return r->until(r->until_arg, ikey, value);
}

static int memtable_replay_fn(void *arg, slice ikey, slice value)
{
    memtable_replay *r = arg;
    int rc;

    r->need += ikey.len + value.len + MEMTABLE_ENTRY_OVERHEAD;
    if (r->overflow)
        return 0;
    if ((rc = memtable_add(r->m, ikey, value, 0)) == STOAT_ENOMEM) {
        r->overflow = 1;
        return 0;
    }
    return rc;
}

/* Replays the open WAL, growing the arena once if arena_size is too small. */
static int memtable_replay_wal(memtable *m, uint64_t arena_size, wal_entry_fn until,
                               void *until_arg, uint64_t *good_len)
{
    memtable_replay r = {m, 0, 0, until, until_arg};
    wal_entry_fn u = until ? memtable_replay_until : NULL;
    uint64_t need;
    int rc;

    if ((rc = wal_replay_until(m->wal, m->path, u, memtable_replay_fn, &r, good_len)) != 0 ||
        !r.overflow)
        return rc;
    need = r.need + MEMTABLE_ARENA_BASE;
    if (need > ARENA_MAX_CAPACITY)
        return status_err(STOAT_ENOMEM, "%s: %llu bytes of entries do not fit in one arena",
                          m->path, (unsigned long long)r.need);
    if ((rc = memtable_reset(m, need > arena_size ? need : arena_size)) != 0)
        return rc;
    r.need = 0;
    r.overflow = 0;
    if ((rc = wal_replay_until(m->wal, m->path, u, memtable_replay_fn, &r, good_len)) != 0)
        return rc;
    if (r.overflow)     /* need bounds every entry, so this means a bug */
        return status_err(STOAT_ENOMEM, "%s: arena of %llu bytes overflowed on replay", m->path,
                          (unsigned long long)arena_capacity(m->arena));
    return 0;
}

/* Cuts the torn tail past good_len, and rewrites a missing header. */
static int memtable_cut_tail(memtable *m, uint64_t good_len)
{
    uint64_t size;
    int rc;

    if ((rc = env_file_size(m->wal, &size)) != 0)
        return rc;
    if (good_len < size && (rc = env_truncate(m->wal, good_len)) != 0)
        return rc;
    if (good_len == 0)
        return memtable_write_header(m);
    atomic_store_explicit(&m->wal_size, good_len, memory_order_relaxed);
    return 0;
}

int memtable_recover(env *e, const char *dir, uint64_t id, uint64_t arena_size, int read_only,
                     uint64_t *max_version, memtable **out)
{
    return memtable_recover_until(e, dir, id, arena_size, read_only, NULL, NULL, max_version,
                                  out);
}

int memtable_recover_until(env *e, const char *dir, uint64_t id, uint64_t arena_size,
                           int read_only, wal_entry_fn until, void *until_arg,
                           uint64_t *max_version, memtable **out)
{
    memtable *m = NULL;
    uint64_t good_len = 0;
    int rc;

    *out = NULL;
    *max_version = 0;
    if ((rc = memtable_alloc(e, dir, id, arena_size, &m)) != 0)
        return rc;
    /* ENV_WRITE would create a missing file: check first. */
    if (!read_only && !env_exists(e, m->path)) {
        rc = status_err(STOAT_ENOTFOUND, "%s: no such WAL", m->path);
        goto fail;
    }
    if ((rc = env_open(e, m->path, read_only ? ENV_READ : ENV_WRITE, &m->wal)) != 0)
        goto fail;
    if ((rc = memtable_replay_wal(m, arena_size, until, until_arg, &good_len)) != 0)
        goto fail;
    if (read_only) {
        env_close(m->wal);
        m->wal = NULL;
        atomic_store_explicit(&m->wal_size, good_len, memory_order_relaxed);
    } else if ((rc = memtable_cut_tail(m, good_len)) != 0) {
        goto fail;
    }
    *max_version = memtable_max_version(m);
    *out = m;
    return 0;
fail:
    memtable_destroy(m);
    return rc;
}

int memtable_attach(env *e, const char *dir, uint64_t id, uint64_t arena_size, memtable **out)
{
    memtable *m = NULL;
    int rc;

    *out = NULL;
    if ((rc = memtable_alloc(e, dir, id, arena_size, &m)) != 0)
        return rc;
    /* ENV_WRITE would create a missing file: check first. */
    if ((rc = env_exists(e, m->path)) <= 0) {
        if (rc == 0)
            rc = status_err(STOAT_ENOTFOUND, "%s: no such WAL", m->path);
        goto fail;
    }
    if ((rc = env_open(e, m->path, ENV_WRITE, &m->wal)) != 0)
        goto fail;
    *out = m;
    return 0;
fail:
    memtable_destroy(m);
    return rc;
}

int memtable_replay_range(memtable *m, uint64_t from, uint64_t to, wal_entry_fn fn, void *arg,
                          uint64_t *good_len)
{
    if (m->wal == NULL)
        return status_err(STOAT_EREADONLY, "%s: read-only memtable", m->path);
    return wal_replay_range(m->wal, m->path, from, to, fn, arg, good_len);
}

void memtable_set_wal_size(memtable *m, uint64_t size)
{
    atomic_store_explicit(&m->wal_size, size, memory_order_relaxed);
}

/*
 * A failed append may have left part of a record behind; later records
 * after it would turn a torn tail into mid-file corruption. So the file is
 * cut back to its last good length (the error is returned as it was: a
 * full disk stays STOAT_ENOSPC, which the caller may survive), and if even
 * that fails the WAL takes no more appends (STOAT_EIO).
 */
static int memtable_append_failed(memtable *m, int rc)
{
    char msg[STATUS_MSG_MAX];

    snprintf(msg, sizeof(msg), "%s", status_msg());
    if (env_truncate(m->wal, atomic_load_explicit(&m->wal_size, memory_order_relaxed)) != 0) {
        m->broken = 1;
        /* Not a full disk any more but a damaged WAL: STOAT_EIO. */
        return status_err(STOAT_EIO, "%s (cutting the partial record back off failed)", msg);
    }
    status_set_msg(msg);
    return rc;
}

int memtable_log(memtable *m, const void *rec, size_t len)
{
    int rc;

    if (m->wal == NULL)
        return status_err(STOAT_EREADONLY, "%s: read-only memtable", m->path);
    if (m->broken)
        return status_err(STOAT_EIO, "%s: an earlier append failed and could not be undone",
                          m->path);
    buf_reset(&m->rec);
    rc = wal_encode_record_at(&m->rec, m->wal, atomic_load_explicit(&m->wal_size,
                              memory_order_relaxed), rec, len);
    if (rc != 0)
        return rc;
    if ((rc = env_append(m->wal, m->rec.data, m->rec.len)) != 0)
        rc = memtable_append_failed(m, rc);
    else
        atomic_fetch_add_explicit(&m->wal_size, m->rec.len, memory_order_relaxed);
    if (m->rec.cap > MEMTABLE_REC_KEEP)
        buf_free(&m->rec);
    return rc;
}

int memtable_sync(memtable *m)
{
    return m->wal ? env_sync(m->wal) : 0;
}

int memtable_add(memtable *m, slice ikey, slice value, uint64_t visible_from)
{
    uint64_t v, hash;
    uint32_t node;
    int rc;

    if (ikey.len < IKEY_SUFFIX_LEN)
        return status_err(STOAT_EINVAL, "memtable: internal key of %zu bytes", ikey.len);
    hash = mem_filter_hash(ikey_user(ikey));
    /* Their misses overlap the skiplist search's (both at random places). */
    mem_filter_prefetch(&m->filter, hash);
    mem_index_prefetch(&m->index, hash);
    if ((rc = skiplist_insert_node(&m->sl, ikey, value, visible_from, NULL, &node)) != 0)
        return rc;
    mem_filter_add(&m->filter, hash);
    mem_index_add(&m->index, &m->sl, ikey_user(ikey), hash, node);
    v = ikey_version(ikey);
    if (v < atomic_load_explicit(&m->min_version, memory_order_relaxed))
        atomic_store_explicit(&m->min_version, v, memory_order_relaxed);
    if (v > atomic_load_explicit(&m->max_version, memory_order_relaxed))
        atomic_store_explicit(&m->max_version, v, memory_order_relaxed);
    return 0;
}

int memtable_room(const memtable *m, uint64_t bytes, uint64_t n)
{
    uint64_t free_bytes = arena_capacity(m->arena) - arena_used(m->arena);

    if (n > (UINT64_MAX - bytes) / MEMTABLE_ENTRY_OVERHEAD)
        return 0;
    return bytes + n * MEMTABLE_ENTRY_OVERHEAD <= free_bytes;
}

/* The newest node of ukey at or below version: from the index when its
 * newest version is visible (the common case), else from a search. */
static uint32_t memtable_find(memtable *m, slice ukey, uint64_t version)
{
    uint64_t hash = mem_filter_hash(ukey);
    uint32_t node;

    if (!mem_filter_may_contain(&m->filter, hash))
        return 0;
    node = mem_index_find(&m->index, &m->sl, ukey, hash);
    if (node != 0 && ikey_version(skiplist_key(&m->sl, node)) <= version)
        return node;
    return skiplist_find(&m->sl, ukey, version);
}

int memtable_get(memtable *m, slice ukey, uint64_t version, slice *ikey, slice *value)
{
    uint32_t node = memtable_find(m, ukey, version);

    if (node == 0) {
        *ikey = slice_make(NULL, 0);
        *value = slice_make(NULL, 0);
        return STOAT_ENOTFOUND;
    }
    *ikey = skiplist_key(&m->sl, node);
    *value = skiplist_value(&m->sl, node);
    return 0;
}

uint64_t memtable_id(const memtable *m)
{
    return m->id;
}

uint64_t memtable_arena_used(const memtable *m)
{
    return arena_used(m->arena);
}

uint64_t memtable_wal_size(const memtable *m)
{
    return atomic_load_explicit(&m->wal_size, memory_order_relaxed);
}

uint64_t memtable_count(const memtable *m)
{
    return skiplist_count(&m->sl);
}

uint64_t memtable_min_version(const memtable *m)
{
    uint64_t v = atomic_load_explicit(&m->min_version, memory_order_relaxed);

    return v == UINT64_MAX ? 0 : v;
}

uint64_t memtable_max_version(const memtable *m)
{
    return atomic_load_explicit(&m->max_version, memory_order_relaxed);
}

void memtable_ref(memtable *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void memtable_unref(memtable *m)
{
    if (m != NULL && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        memtable_destroy(m);
}

void memtable_mark_obsolete(memtable *m)
{
    atomic_store(&m->obsolete, 1);
}

/* --- iterator: a node offset; holds a reference to the memtable --- */

typedef struct mt_iter {
    iter base;
    memtable *m;
    uint32_t node;      /* 0: not valid */
    uint64_t bound;     /* nodes stamped above it are passed over */
} mt_iter;

static int mt_iter_valid(const iter *it)
{
    return ((const mt_iter *)it)->node != 0;
}

/* A node the iterator must not see: a GC rewrite stamped after its
 * reader began (memtable_iter_at). */
static inline int mt_iter_hidden(const mt_iter *mi, uint32_t node)
{
    return skiplist_stamp(&mi->m->sl, node) > mi->bound;
}

/* Forward moves ask for nodes and values ahead of use: a flush or a scan
 * reads the whole memtable in key order, a miss or two per entry
 * (scanning 400,000 entries and copying them out took 28% less time).
 * Landing on a node asks for its successor's value and the node after
 * that (skiplist_prefetch of the successor, which the landing before
 * asked for): each node is asked for two steps before it is read, each
 * value one step before. A seek asks for its own node's too. */
static void mt_iter_land(mt_iter *mi, uint32_t node, int seek)
{
    uint32_t next;

    while (node != 0 && mt_iter_hidden(mi, node))
        node = skiplist_next(&mi->m->sl, node);
    mi->node = node;
    if (node == 0)
        return;
    if (seek)
        skiplist_prefetch(&mi->m->sl, node);
    if ((next = skiplist_next(&mi->m->sl, node)) != 0)
        skiplist_prefetch(&mi->m->sl, next);
}

/* The backward counterpart of mt_iter_land. */
static void mt_iter_land_back(mt_iter *mi, uint32_t node)
{
    while (node != 0 && mt_iter_hidden(mi, node))
        node = skiplist_prev(&mi->m->sl, node);
    mi->node = node;
}

static void mt_iter_seek_first(iter *it)
{
    mt_iter *mi = (mt_iter *)it;

    mt_iter_land(mi, skiplist_first(&mi->m->sl), 1);
}

static void mt_iter_seek_last(iter *it)
{
    mt_iter *mi = (mt_iter *)it;

    mt_iter_land_back(mi, skiplist_last(&mi->m->sl));
}

static void mt_iter_seek(iter *it, slice target)
{
    mt_iter *mi = (mt_iter *)it;

    mt_iter_land(mi, skiplist_seek(&mi->m->sl, target), 1);
}

static void mt_iter_seek_for_prev(iter *it, slice target)
{
    mt_iter *mi = (mt_iter *)it;

    mt_iter_land_back(mi, skiplist_seek_for_prev(&mi->m->sl, target));
}

static void mt_iter_next(iter *it)
{
    mt_iter *mi = (mt_iter *)it;

    if (mi->node != 0)
        mt_iter_land(mi, skiplist_next(&mi->m->sl, mi->node), 0);
}

static void mt_iter_prev(iter *it)
{
    mt_iter *mi = (mt_iter *)it;

    if (mi->node != 0)
        mt_iter_land_back(mi, skiplist_prev(&mi->m->sl, mi->node));
}

/* key() and value() of an invalid iterator are empty rather than garbage. */
static slice mt_iter_key(const iter *it)
{
    const mt_iter *mi = (const mt_iter *)it;

    return mi->node ? skiplist_key(&mi->m->sl, mi->node) : slice_make(NULL, 0);
}

static slice mt_iter_value(const iter *it)
{
    const mt_iter *mi = (const mt_iter *)it;

    return mi->node ? skiplist_value(&mi->m->sl, mi->node) : slice_make(NULL, 0);
}

static int mt_iter_status(const iter *it)
{
    (void)it;
    return 0;   /* nothing in memory can fail */
}

static void mt_iter_free(iter *it)
{
    memtable_unref(((mt_iter *)it)->m);
    free(it);
}

static const struct iter_ops mt_iter_ops = {
    .valid = mt_iter_valid,
    .seek_first = mt_iter_seek_first,
    .seek_last = mt_iter_seek_last,
    .seek = mt_iter_seek,
    .seek_for_prev = mt_iter_seek_for_prev,
    .next = mt_iter_next,
    .prev = mt_iter_prev,
    .key = mt_iter_key,
    .value = mt_iter_value,
    .status = mt_iter_status,
    .free = mt_iter_free,
};

/* NULL (with a status message) when out of memory. Keys and values stay
 * valid while the iterator lives, since it holds the arena. */
iter *memtable_iter_at(memtable *m, uint64_t read_version)
{
    mt_iter *mi = calloc(1, sizeof(*mi));

    if (mi == NULL) {
        status_err(STOAT_ENOMEM, "memtable %llu: no memory for an iterator",
                   (unsigned long long)m->id);
        return NULL;
    }
    mi->base.ops = &mt_iter_ops;
    memtable_ref(m);
    mi->m = m;
    mi->bound = read_version;
    return &mi->base;
}

iter *memtable_iter(memtable *m)
{
    return memtable_iter_at(m, UINT64_MAX);
}
