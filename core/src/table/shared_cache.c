/*
 * shared_cache.c - the shared block cache (shared_cache.h): a ring of
 * records and a set-associative index in one mapping, without locks.
 *
 * Layout (core/FORMAT.md "The shared block cache"): a 4096-byte header
 * (the ring's head, frontier, reserved, limit and used, each on its own
 * cache line), the index (a power of two of 16-byte entries {tag, loc} in
 * sets of 4), then the ring. Ring positions are logical: they grow for
 * ever and a record at position p lies at p % ring_size (records never
 * straddle the end: a record that would is placed at the next lap's
 * start).
 *
 * The one invariant: a record at position p is intact while p >= frontier.
 * A writer moves the frontier past whatever its reservation will overwrite
 * (to its end minus ring_size) before it writes a byte (a release fence
 * between the two), and a reader checks the frontier after its copy (an
 * acquire fence between the two): if the copy saw any byte of a later
 * writer, it sees that writer's frontier too and drops the copy (the
 * seqlock argument, over positions instead of a counter). An index entry
 * is only a hint: its loc is loaded with acquire, so the record's bytes
 * written before it are visible, and the record's own header must name
 * the block asked for.
 *
 * The frontier protects readers from writers, not a record from a writer
 * that was lapped: one stopped in the middle of its copy (SIGSTOP, or
 * just descheduled while a whole ring of puts went by) writes its stale
 * bytes over newer records when it resumes. So every record carries a
 * checksum of its data, checked on the private copy (its header fields
 * are compared with the block asked for, its length bounded): a damaged
 * record is a miss (shared_cache_test's thread race hit this
 * within seconds on a 1 MiB ring before the checksum).
 *
 * Pages: the file is sparse. Ring pages are reserved (the reserve
 * callback: posix_fallocate) the first time the head reaches them, so a
 * full file system is a failed reservation, never a SIGBUS; on one the
 * ring's limit becomes what is reserved and later laps wrap there. A lap
 * also ends early, at what is reserved, while the index names less than
 * half of it (`used`, kept by puts and erases: approximate, since a
 * process may die between an entry and the count; it only decides
 * whether the ring grows).
 */
#include "table/shared_cache.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/checksum.h"
#include "table/block_cache.h"

#define SC_HEADER 4096u
#define SC_WAYS 4u
#define SC_ALIGN 64u
#define SC_CHUNK (1u << 20)      /* ring pages are reserved 1 MiB at a time */
#define SC_MIN_RING (256u << 10)

typedef struct sc_header {
    _Alignas(64) _Atomic uint64_t head;     /* position of the next record */
    _Alignas(64) _Atomic uint64_t frontier; /* records below it may be overwritten */
    _Alignas(64) _Atomic uint64_t reserved; /* ring bytes, from its start, with pages */
    _Alignas(64) _Atomic uint64_t limit;    /* 0: the ring's size; else where laps wrap */
    _Alignas(64) _Atomic uint64_t used;     /* bytes of the records entries name (about) */
} sc_header;

/* tag: the table id's low 32 bits, then 32 bits of the block's hash with
 * bit 0 set; 0: empty. loc: the record's position / 64 << 16 | its size /
 * 64; 0: empty. */
typedef struct sc_entry {
    _Atomic uint64_t tag;
    _Atomic uint64_t loc;
} sc_entry;

#define SC_MAX_RECORD (0xffffull * SC_ALIGN)

static uint64_t sc_tag(uint64_t table_id, uint64_t hash)
{
    return (table_id & 0xffffffffull) << 32 | (hash & 0xffffffffull) | 1;
}

static uint64_t sc_loc(uint64_t pos, uint64_t n)
{
    return pos / SC_ALIGN << 16 | n / SC_ALIGN;
}

static uint64_t sc_loc_pos(uint64_t loc)
{
    return (loc >> 16) * SC_ALIGN;
}

static uint64_t sc_loc_size(uint64_t loc)
{
    return (loc & 0xffff) * SC_ALIGN;
}

typedef struct sc_record {
    uint64_t table_id, offset;
    uint32_t len, pad;
    uint64_t check;         /* checksum64 of the data (the fields above are compared) */
} sc_record;

_Static_assert(sizeof(sc_header) <= SC_HEADER, "shared cache header fits its page");
_Static_assert(sizeof(sc_entry) == 16 && sizeof(sc_record) == 32, "FORMAT.md sizes");

struct shared_cache {
    sc_header *hdr;
    sc_entry *index;
    unsigned char *ring;
    uint64_t ring_off, ring_size, n_sets, max_len;
    shared_cache_reserve_fn reserve;
    void *arg;
    _Atomic uint64_t hits, misses, puts;
};

/* The geometry every process derives from the file's size alone. */
static uint64_t sc_entries(uint64_t size)
{
    uint64_t n = 64;

    while (n * 2 <= size / 2048)
        n *= 2;
    return n;
}

uint64_t shared_cache_fixed_size(uint64_t size)
{
    uint64_t fixed = SC_HEADER + ((sc_entries(size) * sizeof(sc_entry) + 4095) & ~4095ull);

    return size >= fixed + SC_MIN_RING ? fixed : 0;
}

shared_cache *shared_cache_attach(void *base, uint64_t size, shared_cache_reserve_fn reserve,
                                  void *arg)
{
    uint64_t fixed = shared_cache_fixed_size(size);
    shared_cache *c;

    if (fixed == 0 || base == NULL || (c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    c->hdr = base;
    c->index = (sc_entry *)((char *)base + SC_HEADER);
    c->n_sets = sc_entries(size) / SC_WAYS;
    c->ring_off = fixed;
    c->ring = (unsigned char *)base + fixed;
    c->ring_size = (size - fixed) & ~(uint64_t)(SC_ALIGN - 1);
    c->max_len = c->ring_size / 8;
    if (c->max_len > SC_MAX_RECORD - sizeof(sc_record))
        c->max_len = SC_MAX_RECORD - sizeof(sc_record);
    c->reserve = reserve;
    c->arg = arg;
    return c;
}

void shared_cache_detach(shared_cache *c)
{
    free(c);
}

static uint64_t sc_hash(uint64_t table_id, uint64_t offset)
{
    uint64_t h = (table_id + 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull ^ offset;

    h ^= h >> 29;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 32);
}

/*
 * Copies between the ring and private memory. Readers copy while writers
 * may overwrite (the frontier check throws such a copy away): a race by
 * design, which ThreadSanitizer builds see as relaxed atomic accesses so
 * that they report only real ones.
 */
#if defined(__SANITIZE_THREAD__)
#define SC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SC_TSAN 1
#endif
#endif

/* ThreadSanitizer does not model fences (GCC refuses them there); its
 * builds copy with atomics, and a torn copy still fails the checksum. */
#ifdef SC_TSAN
#define SC_FENCE(order) ((void)0)
#else
#define SC_FENCE(order) atomic_thread_fence(order)
#endif

static void sc_copy(void *dst, const void *src, size_t n)
{
#ifdef SC_TSAN
    unsigned char *d = dst;
    const unsigned char *s = src;

    for (size_t i = 0; i < n; i++) {
        unsigned char b = atomic_load_explicit((_Atomic unsigned char *)(s + i),
                                               memory_order_relaxed);
        atomic_store_explicit((_Atomic unsigned char *)(d + i), b, memory_order_relaxed);
    }
#else
    memcpy(dst, src, n);
#endif
}

char *shared_cache_get(shared_cache *c, uint64_t table_id, uint64_t offset, size_t *len)
{
    uint64_t h = sc_hash(table_id, offset), tag = sc_tag(table_id, h);
    sc_entry *set = c->index + (h % c->n_sets) * SC_WAYS;

    for (unsigned i = 0; i < SC_WAYS; i++) {
        uint64_t loc, pos, phys;
        sc_record rec;
        char *copy;

        if (atomic_load_explicit(&set[i].tag, memory_order_acquire) != tag)
            continue;
        if ((loc = atomic_load_explicit(&set[i].loc, memory_order_acquire)) == 0)
            continue;
        pos = sc_loc_pos(loc);
        if (pos < atomic_load_explicit(&c->hdr->frontier, memory_order_relaxed))
            continue;
        phys = pos % c->ring_size;
        if (phys + sizeof(rec) > c->ring_size)
            continue;
        sc_copy(&rec, c->ring + phys, sizeof(rec));
        if (rec.table_id != table_id || rec.offset != offset || rec.len > c->max_len ||
            phys + sizeof(rec) + rec.len > c->ring_size)
            continue;
        if ((copy = malloc(block_cache_alloc_size(rec.len))) == NULL)
            break;
        sc_copy(copy, c->ring + phys + sizeof(rec), rec.len);
        SC_FENCE(memory_order_acquire);
        if (atomic_load_explicit(&c->hdr->frontier, memory_order_relaxed) > pos ||
            checksum64(copy, rec.len) != rec.check) {
            free(copy);     /* overwritten while we copied, or by a lapped writer */
            continue;
        }
        atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
        *len = rec.len;
        return copy;
    }
    atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);
    return NULL;
}

static void sc_atomic_max(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(a, memory_order_relaxed);

    while (cur < v && !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

/* Pages for ring bytes [0, end): 0, or -1 when they cannot be had (the
 * ring then wraps at what it has). */
static int sc_reserve_to(shared_cache *c, uint64_t end)
{
    uint64_t have = atomic_load_explicit(&c->hdr->reserved, memory_order_acquire), want;

    if (end <= have)
        return 0;
    want = (end + SC_CHUNK - 1) / SC_CHUNK * SC_CHUNK;
    if (want > c->ring_size)
        want = c->ring_size;
    if (c->reserve == NULL || c->reserve(c->arg, c->ring_off + have, want - have) != 0) {
        uint64_t lim = 0;

        /* The first failure sets the limit; later laps wrap there. */
        atomic_compare_exchange_strong(&c->hdr->limit, &lim, have);
        return -1;
    }
    sc_atomic_max(&c->hdr->reserved, want);
    return 0;
}

/* Takes n bytes of ring: the record's position, or UINT64_MAX when the
 * ring has no room it may use. */
static uint64_t sc_take(shared_cache *c, uint64_t n)
{
    uint64_t head = atomic_load_explicit(&c->hdr->head, memory_order_relaxed), start, end;

    for (;;) {
        uint64_t limit = atomic_load_explicit(&c->hdr->limit, memory_order_relaxed);
        uint64_t have = atomic_load_explicit(&c->hdr->reserved, memory_order_relaxed);
        uint64_t phys = head % c->ring_size;

        if (limit == 0)
            limit = c->ring_size;
        /* Less than half of what is reserved is named (the blocks of
         * removed tables were erased): come round in it, do not grow. */
        if (have >= n && have < limit &&
            2 * atomic_load_explicit(&c->hdr->used, memory_order_relaxed) < have)
            limit = have;
        if (n > limit)
            return UINT64_MAX;
        start = phys + n > limit ? head - phys + c->ring_size : head;
        end = start + n;
        if (atomic_compare_exchange_weak_explicit(&c->hdr->head, &head, end,
                                                  memory_order_relaxed, memory_order_relaxed))
            break;
    }
    if (end > c->ring_size)
        sc_atomic_max(&c->hdr->frontier, end - c->ring_size);
    SC_FENCE(memory_order_release);     /* the frontier before any byte */
    return start;
}

void shared_cache_put(shared_cache *c, uint64_t table_id, uint64_t offset, const char *data,
                      size_t len)
{
    uint64_t h = sc_hash(table_id, offset), tag = sc_tag(table_id, h), n, pos, phys, frontier;
    uint64_t old, oldest = UINT64_MAX;
    sc_entry *set = c->index + (h % c->n_sets) * SC_WAYS, *victim = set;
    sc_record rec = {.table_id = table_id, .offset = offset, .len = (uint32_t)len};

    if (len > c->max_len)
        return;
    n = (sizeof(rec) + len + SC_ALIGN - 1) & ~(uint64_t)(SC_ALIGN - 1);
    if ((pos = sc_take(c, n)) == UINT64_MAX)
        return;
    phys = pos % c->ring_size;
    if (sc_reserve_to(c, phys + n) != 0)
        return;
    rec.check = checksum64(data, len);
    sc_copy(c->ring + phys, &rec, sizeof(rec));
    sc_copy(c->ring + phys + sizeof(rec), data, len);
    /* The entry to take: an empty or overwritten one, else the oldest. */
    frontier = atomic_load_explicit(&c->hdr->frontier, memory_order_relaxed);
    for (unsigned i = 0; i < SC_WAYS; i++) {
        uint64_t loc = atomic_load_explicit(&set[i].loc, memory_order_relaxed);

        if (loc == 0 || sc_loc_pos(loc) < frontier) {
            victim = &set[i];
            break;
        }
        if (loc < oldest) {
            oldest = loc;
            victim = &set[i];
        }
    }
    atomic_store_explicit(&victim->tag, 0, memory_order_relaxed);
    old = atomic_exchange_explicit(&victim->loc, sc_loc(pos, n), memory_order_release);
    atomic_store_explicit(&victim->tag, tag, memory_order_release);
    atomic_fetch_add_explicit(&c->hdr->used, n - sc_loc_size(old), memory_order_relaxed);
    atomic_fetch_add_explicit(&c->puts, 1, memory_order_relaxed);
}

void shared_cache_erase_table(shared_cache *c, uint64_t table_id)
{
    uint64_t mine = table_id & 0xffffffffull;

    for (uint64_t i = 0; i < c->n_sets * SC_WAYS; i++) {
        uint64_t tag = atomic_load_explicit(&c->index[i].tag, memory_order_relaxed), loc;

        /* A writer taking the entry meanwhile changes its tag first: then
         * the CAS fails and its new record stays. */
        if (tag == 0 || tag >> 32 != mine ||
            !atomic_compare_exchange_strong_explicit(&c->index[i].tag, &tag, 0,
                                                     memory_order_relaxed, memory_order_relaxed))
            continue;
        loc = atomic_exchange_explicit(&c->index[i].loc, 0, memory_order_relaxed);
        atomic_fetch_sub_explicit(&c->hdr->used, sc_loc_size(loc), memory_order_relaxed);
    }
}

void shared_cache_get_stats(shared_cache *c, shared_cache_stats *out)
{
    out->hits = atomic_load(&c->hits);
    out->misses = atomic_load(&c->misses);
    out->puts = atomic_load(&c->puts);
    out->bytes = c->ring_off + atomic_load(&c->hdr->reserved);
}
