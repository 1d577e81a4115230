/*
 * sst_reader.c - opens an SSTable, answers point lookups, and iterates.
 *
 * Open reads the footer and the three meta blocks (index, filter,
 * properties), verifying every checksum. The index block is decoded once,
 * there, into an array (sst_index): per data block its last key and its
 * handle, validated (keys strictly increasing, handles inside the data
 * area), so a lookup is a binary search over memory with no parsing. The
 * search first compares "tags": 8 bytes of each user key taken after the
 * prefix that all the index's user keys share, as a big-endian integer;
 * only equal tags need the full key (see sst_tag). The filter is
 * likewise prepared once (bloom_filter).
 *
 * Data blocks are read on demand: the stored bytes and trailer are read
 * in one call, the checksum is verified before anything else looks at
 * them, then they are decompressed; with a block cache the decompressed
 * block is shared under the key (table id, offset), without one the
 * reader of the block owns it (sst_pin covers both).
 *
 * The reader is immutable after open; refs is atomic. Gets and iterators
 * use only their own state plus pread on the shared file, so any number
 * of threads may use one reader. The table iterator is in sst_iter.c;
 * sst_reader_int.h has what it shares with this file.
 */
#include "table/sst_reader_int.h"
#include "base/perturb.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "table/block.h"
#include "table/bloom.h"
#include "table/shared_cache.h"
#include "base/checksum.h"
#include "base/compress.h"
#include "base/ikey.h"
#include "table/sst_format.h"
#include "base/status.h"
#include "crypt/crypt_env.h"

static int sst_reader_corrupt(const sst_reader *r, uint64_t off, const char *what)
{
    return status_err(STOAT_ECORRUPT, "%s: block at offset %llu: %s", r->path,
                      (unsigned long long)off, what);
}

/* Stored blocks up to this size (trailer included) are read into a
 * buffer on the stack, the common case: no malloc and free per read. */
#define SST_READ_STACK 8192

/*
 * Makes the stored bytes at `stored` (trailer already checked) a malloc'd
 * block, sized for the block cache to adopt (block_cache_alloc_size):
 * decompressed into a new buffer, or, uncompressed, stored itself when it
 * is malloc'd (own) or a copy of it. On success an owned stored buffer
 * belongs to *out or has been freed; on failure it is the caller's.
 */
static int sst_reader_expand(const sst_reader *r, sst_handle h, char *stored, int own, int type,
                             uint32_t raw_len, char **out)
{
    char *raw;

    if (type == STOAT_COMPRESSION_NONE && raw_len != h.size)
        return sst_reader_corrupt(r, h.offset, "raw block length mismatch");
    if (type == STOAT_COMPRESSION_NONE && own) {
        *out = stored;
        return 0;
    }
    if (type != STOAT_COMPRESSION_NONE && type != STOAT_COMPRESSION_LZ4 &&
        type != STOAT_COMPRESSION_ZSTD)
        return sst_reader_corrupt(r, h.offset, "unknown compression type");
    if (!decompress_size_ok(type, stored, (size_t)h.size, raw_len))
        return sst_reader_corrupt(r, h.offset, "bad uncompressed length");
    if ((raw = malloc(block_cache_alloc_size(raw_len))) == NULL)
        return status_err(STOAT_ENOMEM, "%s: no memory for a block of %u bytes", r->path,
                          (unsigned)raw_len);
    if (type == STOAT_COMPRESSION_NONE) {
        memcpy(raw, stored, raw_len);
    } else if (decompress_block(type, stored, (size_t)h.size, raw, raw_len) != 0) {
        free(raw);
        return sst_reader_corrupt(r, h.offset, "bad compressed data");
    }
    if (own)
        free(stored);
    *out = raw;
    return 0;
}

/*
 * Encrypted database: opens the sealed block *stored (h->size bytes, read
 * from h->offset) into a new buffer that replaces it (the old one freed
 * unless it is small), and makes h the plaintext's size.
 */
static int sst_reader_open_block(const sst_reader *r, sst_handle *h, char **stored, char *small)
{
    size_t n, alloc;
    char *plain;
    int rc;

    if (h->size < CRYPT_OVERHEAD)
        return sst_reader_corrupt(r, h->offset, "block too short to be sealed");
    n = (size_t)h->size - CRYPT_OVERHEAD;
    alloc = block_cache_alloc_size(n);
    if ((plain = malloc(alloc > n ? alloc : n)) == NULL)
        return status_err(STOAT_ENOMEM, "%s: no memory for a block of %zu bytes", r->path, n);
    if ((rc = crypt_open(r->file, h->offset, *stored, (size_t)h->size, plain, "block")) != 0) {
        free(plain);
        return rc;
    }
    if (*stored != small)
        free(*stored);
    *stored = plain;
    h->size = n;
    return 0;
}

/*
 * Reads the block at h (which must end by `limit`), verifies its checksum
 * and returns its uncompressed contents, malloc'd, in *out and *len.
 */
static int sst_reader_read_block(const sst_reader *r, sst_handle h, uint64_t limit, char **out,
                                 size_t *len)
{
    char small[SST_READ_STACK], *stored = small, *trailer;
    size_t n = (size_t)h.size + SST_TRAILER_LEN, alloc;
    uint32_t raw_len;
    int rc;

    *out = NULL;
    *len = 0;
    if (limit < SST_TRAILER_LEN || h.size > limit - SST_TRAILER_LEN ||
        h.offset > limit - SST_TRAILER_LEN - h.size || h.size > SIZE_MAX - SST_TRAILER_LEN)
        return sst_reader_corrupt(r, h.offset, "bad block handle");
    if (n > sizeof(small)) {
        /* Uncompressed, the stored bytes are the block: room for the cache. */
        alloc = block_cache_alloc_size((size_t)h.size);
        if ((stored = malloc(alloc > n ? alloc : n)) == NULL)
            return status_err(STOAT_ENOMEM, "%s: no memory for a block of %llu bytes", r->path,
                              (unsigned long long)h.size);
    }
    if ((rc = env_read_exact(r->file, h.offset, stored, n)) != 0)
        goto fail;
    trailer = stored + h.size;
    if (get_fixed64(trailer + 5) != checksum64(stored, (size_t)h.size + 5)) {
        rc = sst_reader_corrupt(r, h.offset, "bad checksum");
        goto fail;
    }
    raw_len = get_fixed32(trailer + 1);
    if (crypt_sealed(r->file) && (rc = sst_reader_open_block(r, &h, &stored, small)) != 0)
        goto fail;
    if ((rc = sst_reader_expand(r, h, stored, stored != small, (unsigned char)trailer[0], raw_len,
                                out)) != 0)
        goto fail;
    *len = raw_len;
    return 0;
fail:
    if (stored != small)
        free(stored);
    return rc;
}

/* Pins data block i (of the index) and parses it into *b. A block not in
 * the cache is added to it when fill is set, else read for this pin only
 * (a compaction's one pass must not push out what readers use). Behind
 * the cache, the shared block cache (multi-process mode) is asked before
 * the file and given what the file gave. */
int sst_reader_pin(sst_reader *r, size_t i, sst_pin *pin, block *b, int fill)
{
    sst_handle h = r->index.e[i].h;
    shared_cache *sc;
    const char *data;
    char *raw;
    size_t len;
    int rc;

    pin->h = NULL;
    pin->owned = NULL;
    if (r->cache != NULL && (pin->h = block_cache_lookup(r->cache, r->id, h.offset)) != NULL)
        goto parse;
    sc = r->cache != NULL && fill ? block_cache_shared(r->cache) : NULL;
    if (sc != NULL && (raw = shared_cache_get(sc, r->id, h.offset, &len)) != NULL)
        goto insert;
    if ((rc = sst_reader_read_block(r, h, r->data_end, &raw, &len)) != 0)
        return rc;
    if (r->cache == NULL || !fill) {
        pin->owned = raw;
        data = raw;
        return block_init(b, data, len, r->path, h.offset);
    }
    if (sc != NULL)
        shared_cache_put(sc, r->id, h.offset, raw, len);
insert:
    if ((pin->h = block_cache_insert(r->cache, r->id, h.offset, raw, len)) == NULL)
        return status_err(STOAT_ENOMEM, "%s: no memory to cache a block", r->path);
parse:
    data = block_handle_data(pin->h);
    len = block_handle_len(pin->h);
    atomic_store_explicit(&r->index.e[i].hint.data, (uintptr_t)data, memory_order_relaxed);
    atomic_store_explicit(&r->index.e[i].hint.len, len, memory_order_relaxed);
    return block_init(b, data, len, r->path, h.offset);
}

void sst_reader_unpin(sst_reader *r, sst_pin *pin)
{
    if (pin->h != NULL)
        block_cache_release(r->cache, pin->h);
    free(pin->owned);
    pin->h = NULL;
    pin->owned = NULL;
}

static int sst_reader_load_footer(sst_reader *r, sst_footer *f, uint64_t *footer_off)
{
    char footer[SST_FOOTER_LEN];
    uint64_t size;
    int rc;

    if ((rc = env_file_size(r->file, &size)) != 0)
        return rc;
    if (size < SST_FOOTER_LEN)
        return status_err(STOAT_ECORRUPT, "%s: file of %llu bytes is too short for an SST",
                          r->path, (unsigned long long)size);
    *footer_off = size - SST_FOOTER_LEN;
    if ((rc = env_read_exact(r->file, *footer_off, footer, sizeof(footer))) != 0)
        return rc;
    if ((rc = sst_footer_decode(footer, r->path, f)) != 0)
        return rc;
    r->props.file_size = size;
    return 0;
}

static slice sst_index_key(const sst_index *ix, size_t i)
{
    return slice_make(ix->keys.data + ix->key_at[i].off, ix->key_at[i].len);
}

/*
 * The tag of user key u: its 8 bytes after the first `from`, zero-padded,
 * as a big-endian integer. For keys that share their first `from` bytes,
 * tags order like the keys themselves except that ties are possible:
 * u < v implies tag(u) <= tag(v) (the first differing byte decides both,
 * and padding with 0 never puts a key above a longer one it prefixes), so
 * tag(u) < tag(v) implies u < v, and only equal tags need a full compare.
 */
static inline uint64_t sst_tag(slice u, size_t from)
{
    char b[8] = {0};
    size_t n = u.len > from ? u.len - from : 0;

    memcpy(b, u.data + from, n < 8 ? n : 8);
    return get_be64(b);
}

static void sst_index_free(sst_index *ix)
{
    free(ix->e);
    free(ix->key_at);
    free(ix->tags);
    buf_free(&ix->keys);
    memset(ix, 0, sizeof(*ix));
}

/* Checks the entry the iterator over the index block (at offset off) is
 * on and appends it to ix, which has room for it. */
static int sst_index_add(sst_reader *r, sst_index *ix, const block_iter *it, uint64_t off)
{
    sst_index_entry *e = &ix->e[ix->n];
    slice key = block_iter_key(it);
    sst_handle h;

    if (sst_handle_get(block_iter_value(it), &h) != 0)
        return status_err(STOAT_ECORRUPT, "%s: block at offset %llu: bad index entry at %zu",
                          r->path, (unsigned long long)off, it->cur);
    if (h.size > r->data_end || h.offset > r->data_end - h.size ||
        r->data_end - h.size - h.offset < SST_TRAILER_LEN)
        return sst_reader_corrupt(r, h.offset, "index names a block outside the data area");
    if (ix->n > 0 && ikey_cmp(sst_index_key(ix, ix->n - 1), key) >= 0)
        return sst_reader_corrupt(r, h.offset, "index keys out of order");
    ix->key_at[ix->n].off = ix->keys.len;
    ix->key_at[ix->n].len = key.len;
    e->h = h;
    atomic_init(&e->hint.data, 0);
    atomic_init(&e->hint.len, 0);
    if (buf_append(&ix->keys, key.data, key.len) != 0)
        return status_err(STOAT_ENOMEM, "%s: out of memory for the index", r->path);
    ix->n++;
    return 0;
}

/* Grows the entry arrays to hold at least n + 1 entries. */
static int sst_index_reserve(sst_reader *r, sst_index *ix, size_t *cap)
{
    sst_index_entry *e;
    sst_key_ref *k;
    size_t ncap;

    if (ix->n < *cap)
        return 0;
    ncap = *cap ? 2 * *cap : 64;
    if ((e = realloc(ix->e, ncap * sizeof(*e))) == NULL)
        return status_err(STOAT_ENOMEM, "%s: out of memory for the index", r->path);
    ix->e = e;
    if ((k = realloc(ix->key_at, ncap * sizeof(*k))) == NULL)
        return status_err(STOAT_ENOMEM, "%s: out of memory for the index", r->path);
    ix->key_at = k;
    *cap = ncap;
    return 0;
}

/* The prefix shared by the first and last user keys is shared by all
 * (they are sorted); the tags start after it. */
static int sst_index_tag(sst_reader *r, sst_index *ix)
{
    slice first, last;
    size_t p = 0;

    if (ix->n == 0)
        return 0;
    if ((ix->tags = malloc(ix->n * sizeof(*ix->tags))) == NULL)
        return status_err(STOAT_ENOMEM, "%s: out of memory for the index", r->path);
    first = ikey_user(sst_index_key(ix, 0));
    last = ikey_user(sst_index_key(ix, ix->n - 1));
    while (p < first.len && p < last.len && first.data[p] == last.data[p])
        p++;
    ix->prefix_len = p;
    for (size_t i = 0; i < ix->n; i++)
        ix->tags[i] = sst_tag(ikey_user(sst_index_key(ix, i)), p);
    return 0;
}

/* Decodes the index block (raw, len bytes at offset off) into r->index. */
static int sst_reader_decode_index(sst_reader *r, const char *raw, size_t len, uint64_t off)
{
    sst_index *ix = &r->index;
    block_iter it;
    block b;
    size_t cap = 0;
    int rc;

    if ((rc = block_init(&b, raw, len, r->path, off)) != 0)
        return rc;
    block_iter_init(&it);
    block_iter_set(&it, &b);
    for (block_iter_seek_first(&it); block_iter_valid(&it); block_iter_next(&it))
        if ((rc = sst_index_reserve(r, ix, &cap)) != 0 ||
            (rc = sst_index_add(r, ix, &it, off)) != 0)
            goto out;
    if ((rc = block_iter_status(&it)) == 0)
        rc = sst_index_tag(r, ix);
out:
    block_iter_free(&it);
    return rc;
}

/* Reads the index, filter and properties blocks named by the footer. */
static int sst_reader_load_meta(sst_reader *r, const sst_footer *f, uint64_t footer_off)
{
    sst_props p;
    char *data;
    size_t len;
    int rc;

    r->data_end = f->filter.size > 0 ? f->filter.offset : f->props.offset;
    if ((rc = sst_reader_read_block(r, f->index, footer_off, &data, &len)) != 0)
        return rc;
    rc = sst_reader_decode_index(r, data, len, f->index.offset);
    free(data);
    if (rc != 0)
        return rc;
    if (f->filter.size > 0) {
        if ((rc = sst_reader_read_block(r, f->filter, footer_off, &r->filter_data, &len)) != 0)
            return rc;
        if (bloom_filter_init(&r->filter, slice_make(r->filter_data, len)) != 0)
            return sst_reader_corrupt(r, f->filter.offset, "bad bloom filter");
    }
    if ((rc = sst_reader_read_block(r, f->props, footer_off, &data, &len)) != 0)
        return rc;
    rc = sst_props_decode(slice_make(data, len), &p);
    free(data);
    if (rc != 0)
        return rc == STOAT_ENOMEM ? status_err(rc, "%s: out of memory", r->path)
                                  : sst_reader_corrupt(r, f->props.offset, "bad properties");
    p.file_size = r->props.file_size;
    r->props = p;
    return 0;
}

static void sst_reader_free(sst_reader *r)
{
    if (r == NULL)
        return;
    env_close(r->file);
    sst_props_free(&r->props);
    sst_index_free(&r->index);
    free(r->filter_data);
    free(r->path);
    free(r);
}

int sst_reader_open(env *e, const char *path, uint64_t id, block_cache *cache, sst_reader **out)
{
    sst_reader *r;
    sst_footer f;
    uint64_t footer_off = 0;
    int rc;

    *out = NULL;
    if ((r = calloc(1, sizeof(*r))) == NULL || (r->path = strdup(path)) == NULL) {
        free(r);
        return status_err(STOAT_ENOMEM, "open %s: out of memory", path);
    }
    atomic_init(&r->refs, 1);
    r->env = e;
    r->id = id;
    r->cache = cache;
    if ((rc = env_open(e, path, ENV_READ, &r->file)) != 0 ||
        (rc = sst_reader_load_footer(r, &f, &footer_off)) != 0 ||
        (rc = sst_reader_load_meta(r, &f, footer_off)) != 0)
        goto fail;
    *out = r;
    return 0;
fail:
    sst_reader_free(r);
    return rc;
}

int sst_reader_may_contain(const sst_reader *r, slice ukey)
{
    return r->filter_data == NULL || bloom_filter_may_contain(&r->filter, ukey);
}

/* The first index entry whose key is >= target (n when none): the only
 * data block that may hold target's first entry at or after it. */
size_t sst_index_find(const sst_index *ix, slice target)
{
    slice u = ikey_user(target);
    size_t lo = 0, hi = ix->n, p = ix->prefix_len;
    uint64_t tag;
    int c;

    if (ix->n == 0)
        return 0;
    /* A key outside the prefix sorts before or after every entry (and a
     * key that is a proper prefix of it, before: sst_tag needs len >= p). */
    c = memcmp(u.data, ix->keys.data + ix->key_at[0].off, u.len < p ? u.len : p);
    if (c < 0 || (c == 0 && u.len < p))
        return 0;
    if (c > 0)
        return ix->n;
    tag = sst_tag(u, p);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->tags[mid] < tag ||
            (ix->tags[mid] == tag && ikey_cmp(sst_index_key(ix, mid), target) < 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

#if defined(__GNUC__)
#define SST_PREFETCH(p) __builtin_prefetch((const void *)(p))
#else
#define SST_PREFETCH(p) ((void)(p))
#endif

/*
 * Asks for block i's memory ahead of its use: the line just past its
 * bytes, where the cache keeps its entry (the lookup reads it first),
 * and the lines a walk into it starts with: the first two going forward,
 * the restart array at the end going backward. An iterator asks for the
 * next block when it enters one, so a scan crossing into a block does
 * not stall on those misses (the TLB's included) one after the other; a
 * get asks for its block before the cache lookup, whose own misses then
 * overlap that one. The addresses come from the hint (sst_block_hint);
 * a prefetch never faults, whatever the address.
 */
void sst_reader_prefetch(const sst_reader *r, size_t i, int forward)
{
    uintptr_t data;
    size_t len;

    if (i >= r->index.n)
        return;
    data = atomic_load_explicit(&r->index.e[i].hint.data, memory_order_relaxed);
    len = atomic_load_explicit(&r->index.e[i].hint.len, memory_order_relaxed);
    if (data == 0)
        return;
    PERTURB("sst_prefetch");
    SST_PREFETCH(data + len);
    if (forward) {
        SST_PREFETCH(data);
        SST_PREFETCH(data + 64);
    } else if (len > 64) {
        SST_PREFETCH(data + len - 64);
    }
}

/* Room for the seek key of most gets without a malloc. */
#define SST_GET_KEY_SMALL 256

int sst_reader_get(sst_reader *r, slice ukey, uint64_t version, buf *ikey_out, buf *value_out)
{
    char small[SST_GET_KEY_SMALL], *tk = small;
    sst_pin pin = {NULL, NULL};
    slice target, value;
    uint64_t hash = checksum64(ukey.data, ukey.len);   /* filter and block hash index */
    size_t i;
    block b;
    int rc;

    buf_reset(ikey_out);
    buf_reset(value_out);
    if (r->filter_data != NULL && !bloom_filter_may_contain_hash(&r->filter, hash))
        return STOAT_ENOTFOUND;
    if (ukey.len + IKEY_SUFFIX_LEN > sizeof(small) &&
        (tk = malloc(ukey.len + IKEY_SUFFIX_LEN)) == NULL)
        return status_err(STOAT_ENOMEM, "%s: out of memory for a key", r->path);
    target = slice_make(tk, ikey_encode(tk, ukey.data, ukey.len, version));
    rc = STOAT_ENOTFOUND;
    if ((i = sst_index_find(&r->index, target)) == r->index.n)
        goto done;
    sst_reader_prefetch(r, i, 1);
    if ((rc = sst_reader_pin(r, i, &pin, &b, 1)) != 0)
        goto done;
    /* ikey_out ends up holding the key found */
    rc = block_get_hashed(&b, target, hash, ikey_out, &value);
    if (rc == STOAT_ENOTFOUND) /* the index said this block's last key is >= target */
        rc = sst_reader_corrupt(r, b.offset, "index key past the block's last key");
    else if (rc == 0 && slice_cmp(ikey_user(slice_make(ikey_out->data, ikey_out->len)), ukey) != 0)
        rc = STOAT_ENOTFOUND;
    if (rc == 0)
        rc = buf_append(value_out, value.data, value.len);
done:
    if (rc != 0) {
        buf_reset(ikey_out);
        buf_reset(value_out);
    }
    sst_reader_unpin(r, &pin);
    if (tk != small)
        free(tk);
    return rc;
}

const sst_props *sst_reader_props(const sst_reader *r)
{
    return &r->props;
}

uint64_t sst_reader_id(const sst_reader *r)
{
    return r->id;
}

void sst_reader_ref(sst_reader *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void sst_reader_unref(sst_reader *r)
{
    if (r != NULL && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        sst_reader_free(r);
}
