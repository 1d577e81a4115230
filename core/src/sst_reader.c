/*
 * sst_reader.c - opens an SSTable, answers point lookups, and iterates.
 *
 * Open reads the footer and the three meta blocks (index, filter,
 * properties), verifying every checksum, and keeps them in memory for
 * the reader's life. Data blocks are read on demand: the stored bytes and
 * trailer are read in one call, the checksum is verified before anything
 * else looks at them, then they are decompressed; with a block cache the
 * decompressed block is shared under the key (table id, offset), without
 * one the reader of the block owns it (sst_pin covers both).
 *
 * The reader is immutable after open; refs is atomic. Gets and iterators
 * use only their own state plus pread on the shared file, so any number
 * of threads may use one reader. The table iterator (sst_iter) is a
 * two-level iterator: a block_iter over the index picks the data block,
 * a second block_iter walks it; the iterator pins its current block and
 * drops the pin when it runs off either end. Its first error is sticky:
 * later moves do nothing, valid() is 0 and status() returns it.
 */
#include "sst_reader.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "bloom.h"
#include "checksum.h"
#include "compress.h"
#include "ikey.h"
#include "sst_format.h"
#include "status.h"

struct sst_reader {
    atomic_int refs;
    env *env;
    env_file *file;
    char *path;
    uint64_t id;
    block_cache *cache;     /* borrowed; may be NULL */
    uint64_t data_end;      /* data blocks lie in [0, data_end) */
    sst_props props;
    char *index_data;
    block index;
    char *filter_data;      /* NULL: no filter */
    slice filter;
};

/* A data block in use: pinned in the cache, or owned when there is none. */
typedef struct sst_pin {
    block_handle *h;
    char *owned;
} sst_pin;

static int sst_reader_corrupt(const sst_reader *r, uint64_t off, const char *what)
{
    return status_err(STOAT_ECORRUPT, "%s: block at offset %llu: %s", r->path,
                      (unsigned long long)off, what);
}

/* Expands stored bytes (trailer already checked) into a malloc'd block. */
static int sst_reader_expand(const sst_reader *r, sst_handle h, char *stored, int type,
                             uint32_t raw_len, char **out)
{
    char *raw;

    if (type == STOAT_COMPRESSION_NONE) {
        if (raw_len != h.size)
            return sst_reader_corrupt(r, h.offset, "raw block length mismatch");
        *out = stored;
        return 0;
    }
    if (type != STOAT_COMPRESSION_LZ4 && type != STOAT_COMPRESSION_ZSTD)
        return sst_reader_corrupt(r, h.offset, "unknown compression type");
    if ((raw = malloc(raw_len ? raw_len : 1)) == NULL)
        return status_err(STOAT_ENOMEM, "%s: no memory for a block of %u bytes", r->path,
                          (unsigned)raw_len);
    if (decompress_block(type, stored, (size_t)h.size, raw, raw_len) != 0) {
        free(raw);
        return sst_reader_corrupt(r, h.offset, "bad compressed data");
    }
    free(stored);
    *out = raw;
    return 0;
}

/*
 * Reads the block at h (which must end by `limit`), verifies its checksum
 * and returns its uncompressed contents, malloc'd, in *out and *len.
 */
static int sst_reader_read_block(const sst_reader *r, sst_handle h, uint64_t limit, char **out,
                                 size_t *len)
{
    char *stored = NULL, *trailer;
    uint32_t raw_len;
    int rc;

    *out = NULL;
    *len = 0;
    if (limit < SST_TRAILER_LEN || h.size > limit - SST_TRAILER_LEN ||
        h.offset > limit - SST_TRAILER_LEN - h.size || h.size > SIZE_MAX - SST_TRAILER_LEN)
        return sst_reader_corrupt(r, h.offset, "bad block handle");
    if ((stored = malloc((size_t)h.size + SST_TRAILER_LEN)) == NULL)
        return status_err(STOAT_ENOMEM, "%s: no memory for a block of %llu bytes", r->path,
                          (unsigned long long)h.size);
    if ((rc = env_read_exact(r->file, h.offset, stored, (size_t)h.size + SST_TRAILER_LEN)) != 0)
        goto fail;
    trailer = stored + h.size;
    if (get_fixed64(trailer + 5) != checksum64(stored, (size_t)h.size + 5)) {
        rc = sst_reader_corrupt(r, h.offset, "bad checksum");
        goto fail;
    }
    raw_len = get_fixed32(trailer + 1);
    if ((rc = sst_reader_expand(r, h, stored, (unsigned char)trailer[0], raw_len, out)) != 0)
        goto fail;
    *len = raw_len;
    return 0;
fail:
    free(stored);
    return rc;
}

/* Pins the data block at h and parses it into *b. */
static int sst_reader_pin(sst_reader *r, sst_handle h, sst_pin *pin, block *b)
{
    const char *data;
    char *raw;
    size_t len;
    int rc;

    pin->h = NULL;
    pin->owned = NULL;
    if (r->cache != NULL && (pin->h = block_cache_lookup(r->cache, r->id, h.offset)) != NULL)
        goto parse;
    if ((rc = sst_reader_read_block(r, h, r->data_end, &raw, &len)) != 0)
        return rc;
    if (r->cache == NULL) {
        pin->owned = raw;
        data = raw;
        return block_init(b, data, len, r->path, h.offset);
    }
    if ((pin->h = block_cache_insert(r->cache, r->id, h.offset, raw, len)) == NULL)
        return status_err(STOAT_ENOMEM, "%s: no memory to cache a block", r->path);
parse:
    return block_init(b, block_handle_data(pin->h), block_handle_len(pin->h), r->path, h.offset);
}

static void sst_reader_unpin(sst_reader *r, sst_pin *pin)
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

/* Reads the index, filter and properties blocks named by the footer. */
static int sst_reader_load_meta(sst_reader *r, const sst_footer *f, uint64_t footer_off)
{
    sst_props p;
    char *data;
    size_t len;
    int rc;

    if ((rc = sst_reader_read_block(r, f->index, footer_off, &r->index_data, &len)) != 0 ||
        (rc = block_init(&r->index, r->index_data, len, r->path, f->index.offset)) != 0)
        return rc;
    r->data_end = f->props.offset;
    if (f->filter.size > 0) {
        if ((rc = sst_reader_read_block(r, f->filter, footer_off, &r->filter_data, &len)) != 0)
            return rc;
        r->filter = slice_make(r->filter_data, len);
        if (!bloom_filter_valid(r->filter))
            return sst_reader_corrupt(r, f->filter.offset, "bad bloom filter");
        r->data_end = f->filter.offset;
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
    free(r->index_data);
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
    return r->filter_data == NULL || bloom_may_contain(r->filter, ukey);
}

/* The data block named by the index entry the iterator is on. */
static int sst_reader_index_handle(const sst_reader *r, const block_iter *ix, sst_handle *h)
{
    if (sst_handle_get(block_iter_value(ix), h) != 0)
        return status_err(STOAT_ECORRUPT, "%s: block at offset %llu: bad index entry at %zu",
                          r->path, (unsigned long long)r->index.offset, ix->cur);
    return 0;
}

/* Finds the first entry >= target in the table; 0 and *found = 0 if none. */
static int sst_reader_find(sst_reader *r, slice target, block_iter *ix, block_iter *data,
                           block *b, sst_pin *pin, int *found)
{
    sst_handle h;
    int rc;

    *found = 0;
    block_iter_set(ix, &r->index);
    block_iter_seek(ix, target);
    if (!block_iter_valid(ix))
        return block_iter_status(ix);
    if ((rc = sst_reader_index_handle(r, ix, &h)) != 0 || (rc = sst_reader_pin(r, h, pin, b)) != 0)
        return rc;
    block_iter_set(data, b);
    block_iter_seek(data, target);
    if (block_iter_valid(data)) {
        *found = 1;
        return 0;
    }
    if ((rc = block_iter_status(data)) != 0)
        return rc;
    /* The index said this block's last key is >= target. */
    return sst_reader_corrupt(r, h.offset, "index key past the block's last key");
}

int sst_reader_get(sst_reader *r, slice ukey, uint64_t version, buf *ikey_out, buf *value_out)
{
    block_iter ix, data;
    sst_pin pin = {NULL, NULL};
    block b;
    slice key;
    int rc, found = 0;

    buf_reset(ikey_out);
    buf_reset(value_out);
    if (!sst_reader_may_contain(r, ukey))
        return STOAT_ENOTFOUND;
    block_iter_init(&ix);
    block_iter_init(&data);
    /* ikey_out holds the target until the answer replaces it. */
    if ((rc = buf_reserve(ikey_out, ukey.len + IKEY_SUFFIX_LEN)) != 0)
        goto done;
    ikey_out->len = ikey_encode(ikey_out->data, ukey.data, ukey.len, version);
    rc = sst_reader_find(r, slice_make(ikey_out->data, ikey_out->len), &ix, &data, &b, &pin,
                         &found);
    buf_reset(ikey_out);
    if (rc != 0)
        goto done;
    rc = STOAT_ENOTFOUND;
    key = block_iter_key(&data);
    if (!found || slice_cmp(ikey_user(key), ukey) != 0)
        goto done;
    if ((rc = buf_append(ikey_out, key.data, key.len)) != 0 ||
        (rc = buf_append(value_out, block_iter_value(&data).data, block_iter_value(&data).len)))
        goto done;
    rc = 0;
done:
    if (rc != 0) {
        buf_reset(ikey_out);
        buf_reset(value_out);
    }
    block_iter_free(&ix);
    block_iter_free(&data);
    sst_reader_unpin(r, &pin);
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

/* ---- the table iterator ---- */

typedef struct sst_iter {
    iter base;
    sst_reader *r;
    block_iter index;
    block_iter data;
    block blk;          /* the current data block, pinned by pin */
    sst_pin pin;
    uint64_t blk_off;
    int has_blk;
    int status;
} sst_iter;

static void sst_iter_drop_block(sst_iter *it)
{
    sst_reader_unpin(it->r, &it->pin);
    it->has_blk = 0;
}

static void sst_iter_fail(sst_iter *it, int rc)
{
    it->status = rc;
    sst_iter_drop_block(it);
}

/* Aims the data iterator (unpositioned) at the block the index is on. */
static int sst_iter_load_block(sst_iter *it)
{
    sst_handle h;
    int rc;

    if ((rc = sst_reader_index_handle(it->r, &it->index, &h)) != 0)
        goto fail;
    if (!it->has_blk || it->blk_off != h.offset) {
        sst_iter_drop_block(it);
        if ((rc = sst_reader_pin(it->r, h, &it->pin, &it->blk)) != 0)
            goto fail;
        it->has_blk = 1;
        it->blk_off = h.offset;
    }
    block_iter_set(&it->data, &it->blk);
    return 0;
fail:
    sst_iter_fail(it, rc);
    return rc;
}

/* Once the index has moved: load its block, or stop at the end. */
static int sst_iter_index_moved(sst_iter *it)
{
    if (!block_iter_valid(&it->index)) {
        if (block_iter_status(&it->index) != 0)
            sst_iter_fail(it, block_iter_status(&it->index));
        else
            sst_iter_drop_block(it);
        return -1;
    }
    return sst_iter_load_block(it);
}

static void sst_iter_skip_forward(sst_iter *it)
{
    while (it->status == 0 && it->has_blk && !block_iter_valid(&it->data)) {
        if (block_iter_status(&it->data) != 0) {
            sst_iter_fail(it, block_iter_status(&it->data));
            return;
        }
        block_iter_next(&it->index);
        if (sst_iter_index_moved(it) != 0)
            return;
        block_iter_seek_first(&it->data);
    }
}

static void sst_iter_skip_backward(sst_iter *it)
{
    while (it->status == 0 && it->has_blk && !block_iter_valid(&it->data)) {
        if (block_iter_status(&it->data) != 0) {
            sst_iter_fail(it, block_iter_status(&it->data));
            return;
        }
        block_iter_prev(&it->index);
        if (sst_iter_index_moved(it) != 0)
            return;
        block_iter_seek_last(&it->data);
    }
}

static int sst_iter_valid(const iter *base)
{
    const sst_iter *it = (const sst_iter *)base;

    return it->status == 0 && it->has_blk && block_iter_valid(&it->data);
}

static void sst_iter_seek_first(iter *base)
{
    sst_iter *it = (sst_iter *)base;

    if (it->status != 0)
        return;
    block_iter_seek_first(&it->index);
    if (sst_iter_index_moved(it) != 0)
        return;
    block_iter_seek_first(&it->data);
    sst_iter_skip_forward(it);
}

static void sst_iter_seek_last(iter *base)
{
    sst_iter *it = (sst_iter *)base;

    if (it->status != 0)
        return;
    block_iter_seek_last(&it->index);
    if (sst_iter_index_moved(it) != 0)
        return;
    block_iter_seek_last(&it->data);
    sst_iter_skip_backward(it);
}

static void sst_iter_seek(iter *base, slice target)
{
    sst_iter *it = (sst_iter *)base;

    if (it->status != 0)
        return;
    block_iter_seek(&it->index, target);
    if (sst_iter_index_moved(it) != 0)
        return;
    block_iter_seek(&it->data, target);
    sst_iter_skip_forward(it);
}

static void sst_iter_seek_for_prev(iter *base, slice target)
{
    sst_iter *it = (sst_iter *)base;

    sst_iter_seek(base, target);
    if (it->status != 0)
        return;
    if (!sst_iter_valid(base))
        sst_iter_seek_last(base);
    else if (ikey_cmp(block_iter_key(&it->data), target) > 0)
        base->ops->prev(base);
}

static void sst_iter_next(iter *base)
{
    sst_iter *it = (sst_iter *)base;

    if (!sst_iter_valid(base))
        return;
    block_iter_next(&it->data);
    sst_iter_skip_forward(it);
}

static void sst_iter_prev(iter *base)
{
    sst_iter *it = (sst_iter *)base;

    if (!sst_iter_valid(base))
        return;
    block_iter_prev(&it->data);
    sst_iter_skip_backward(it);
}

static slice sst_iter_key(const iter *base)
{
    return block_iter_key(&((const sst_iter *)base)->data);
}

static slice sst_iter_value(const iter *base)
{
    return block_iter_value(&((const sst_iter *)base)->data);
}

static int sst_iter_status(const iter *base)
{
    return ((const sst_iter *)base)->status;
}

static void sst_iter_free(iter *base)
{
    sst_iter *it = (sst_iter *)base;

    sst_iter_drop_block(it);
    block_iter_free(&it->index);
    block_iter_free(&it->data);
    sst_reader_unref(it->r);
    free(it);
}

static const struct iter_ops sst_iter_ops = {
    sst_iter_valid, sst_iter_seek_first, sst_iter_seek_last, sst_iter_seek,
    sst_iter_seek_for_prev, sst_iter_next, sst_iter_prev, sst_iter_key,
    sst_iter_value, sst_iter_status, sst_iter_free,
};

iter *sst_reader_iter(sst_reader *r)
{
    sst_iter *it = calloc(1, sizeof(*it));

    if (it == NULL)
        return NULL;
    it->base.ops = &sst_iter_ops;
    it->r = r;
    sst_reader_ref(r);
    block_iter_init(&it->index);
    block_iter_set(&it->index, &r->index);
    block_iter_init(&it->data);
    return &it->base;
}
