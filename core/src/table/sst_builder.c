/*
 * sst_builder.c - writes one SSTable (layout in sst_format.h).
 *
 * Entries go into the pending data block; a block is cut before an entry
 * that would push it past the target size (so a block exceeds it only
 * when it holds a single large entry) and as soon as it reaches it. A
 * cut block is compressed (kept raw unless that saves 1/8), given its
 * trailer and queued in a write buffer that goes to the file in large
 * appends; its last key and handle become an index entry. The builder
 * owns its buffers and reuses them for every block: no allocation per
 * entry. The first I/O or memory error is sticky: later calls return it
 * and finish removes the file. One builder, one thread.
 */
#include "table/sst_builder.h"

#include <stdlib.h>
#include <string.h>

#include "table/block_builder.h"
#include "table/bloom.h"
#include "base/compress.h"
#include "base/ikey.h"
#include "table/sst_format.h"
#include "base/status.h"
#include "crypt/crypt_env.h"

#define SST_DEFAULT_BLOCK_SIZE 4096u
/* Larger targets are clamped: lz4 takes at most ~2 GiB per call. */
#define SST_MAX_BLOCK_SIZE (256u << 20)
/* A vstruct: meta, user meta, expiry varint, then the value. */
#define SST_MAX_VALUE_LEN ((size_t)STOAT_MAX_VALUE_SIZE + 2 + VARINT64_MAX_LEN)
#define SST_WRITE_BUF (256u << 10)

struct sst_builder {
    env *env;
    env_file *file;
    char *path;
    sst_options o;
    int has_filter;
    block_builder data;
    block_builder index;
    bloom_builder bloom;
    buf last_key;       /* last internal key added */
    buf out;            /* stored blocks not yet appended to the file */
    buf scratch;        /* compressed form of the block being written */
    buf sealed;         /* encrypted database: the sealed form of the block */
    buf meta;           /* filter and properties bytes */
    uint64_t offset;    /* file size once `out` is appended */
    sst_props props;    /* counters; keys filled at finish */
    int rc;             /* first I/O or memory error (sticky) */
};

int sst_builder_new(env *e, const char *path, const sst_options *o, sst_builder **out)
{
    sst_builder *b;
    int rc;

    *out = NULL;
    if (o->compression < STOAT_COMPRESSION_NONE || o->compression > STOAT_COMPRESSION_ZSTD)
        return status_err(STOAT_EINVAL, "sst %s: unknown compression %d", path, o->compression);
    if ((b = calloc(1, sizeof(*b))) == NULL || (b->path = strdup(path)) == NULL) {
        free(b);
        return status_err(STOAT_ENOMEM, "sst %s: out of memory", path);
    }
    b->env = e;
    b->o = *o;
    if (b->o.block_size == 0)
        b->o.block_size = SST_DEFAULT_BLOCK_SIZE;
    if (b->o.block_size > SST_MAX_BLOCK_SIZE)
        b->o.block_size = SST_MAX_BLOCK_SIZE;
    b->has_filter = o->bloom_fp_rate > 0.0 && o->bloom_fp_rate < 1.0;
    block_builder_init(&b->data, BLOCK_RESTART_INTERVAL);
    block_builder_hash_index(&b->data); /* format 3: point lookups skip the binary search */
    block_builder_init(&b->index, 1); /* full keys: binary search needs no scan */
    bloom_builder_init(&b->bloom, o->bloom_fp_rate);
    b->props.min_version = UINT64_MAX;
    if ((rc = env_open(e, path, ENV_WRITE | ENV_TRUNC, &b->file)) != 0)
        goto fail;
    *out = b;
    return 0;
fail:
    sst_builder_abandon(b);
    return rc;
}

static void sst_builder_free(sst_builder *b)
{
    block_builder_free(&b->data);
    block_builder_free(&b->index);
    bloom_builder_free(&b->bloom);
    buf_free(&b->last_key);
    buf_free(&b->out);
    buf_free(&b->scratch);
    buf_free(&b->sealed);
    buf_free(&b->meta);
    sst_props_free(&b->props);
    free(b->path);
    free(b);
}

void sst_builder_abandon(sst_builder *b)
{
    if (b == NULL)
        return;
    if (b->file != NULL) {
        env_close(b->file);
        env_remove(b->env, b->path);
    }
    sst_builder_free(b);
}

static int sst_builder_flush_out(sst_builder *b)
{
    int rc = env_append(b->file, b->out.data, b->out.len);

    buf_reset(&b->out);
    return rc;
}

/* Queues n bytes for the file; large pieces bypass the buffer. */
static int sst_builder_write(sst_builder *b, const char *p, size_t n)
{
    int rc;

    if (b->out.len + n > SST_WRITE_BUF && b->out.len > 0 && (rc = sst_builder_flush_out(b)) != 0)
        return rc;
    if (n >= SST_WRITE_BUF)
        rc = env_append(b->file, p, n);
    else
        rc = buf_append(&b->out, p, n);
    if (rc == 0)
        b->offset += n;
    return rc;
}

/* Stores raw (compressed with `type` if that saves 1/8) plus its trailer. */
static int sst_builder_write_block(sst_builder *b, slice raw, int type, sst_handle *h)
{
    const char *stored = raw.data;
    size_t len = raw.len;
    char trailer[SST_TRAILER_LEN];
    int rc;

    if (type != STOAT_COMPRESSION_NONE) {
        buf_reset(&b->scratch);
        if ((rc = compress_block(type, b->o.zstd_level, raw.data, raw.len, &b->scratch)) != 0)
            return rc;
        if (b->scratch.len < raw.len - raw.len / 8) {
            stored = b->scratch.data;
            len = b->scratch.len;
        } else {
            type = STOAT_COMPRESSION_NONE;
        }
    }
    if (crypt_sealed(b->file)) {
        /* Sealed for its place; the trailer checks the sealed bytes. */
        buf_reset(&b->sealed);
        if (buf_reserve(&b->sealed, crypt_sealed_len(len)) != 0)
            return status_err(STOAT_ENOMEM, "sst %s: out of memory", b->path);
        if ((rc = crypt_seal(b->file, b->offset, stored, len, b->sealed.data)) != 0)
            return rc;
        stored = b->sealed.data;
        len = crypt_sealed_len(len);
    }
    sst_trailer_encode(trailer, type, (uint32_t)raw.len, stored, len);
    h->offset = b->offset;
    h->size = len;
    if ((rc = sst_builder_write(b, stored, len)) != 0)
        return rc;
    return sst_builder_write(b, trailer, sizeof(trailer));
}

/* Writes the pending data block and adds its index entry. */
static int sst_builder_flush_block(sst_builder *b)
{
    sst_handle h;
    slice raw;
    int rc;

    if ((rc = block_builder_finish(&b->data, &raw)) != 0 ||
        (rc = sst_builder_write_block(b, raw, b->o.compression, &h)) != 0)
        return rc;
    buf_reset(&b->meta);
    if ((rc = sst_handle_put(&b->meta, h)) != 0 ||
        (rc = block_builder_add(&b->index, block_builder_last_key(&b->data),
                                slice_make(b->meta.data, b->meta.len))) != 0)
        return rc;
    block_builder_reset(&b->data);
    return 0;
}

static int sst_builder_check(sst_builder *b, slice ikey, slice value)
{
    if (ikey.len < IKEY_SUFFIX_LEN)
        return status_err(STOAT_EINVAL, "sst %s: internal key of %zu bytes", b->path, ikey.len);
    if (ikey.len - IKEY_SUFFIX_LEN > STOAT_MAX_KEY_SIZE || value.len > SST_MAX_VALUE_LEN)
        return status_err(STOAT_ETOOBIG, "sst %s: entry of %zu+%zu bytes over the limits",
                          b->path, ikey.len, value.len);
    if (b->props.num_entries > 0 &&
        ikey_cmp(ikey, slice_make(b->last_key.data, b->last_key.len)) <= 0)
        return status_err(STOAT_EINVAL, "sst %s: keys out of order at entry %llu", b->path,
                          (unsigned long long)b->props.num_entries);
    return 0;
}

static void sst_builder_count(sst_builder *b, slice ikey, slice value)
{
    uint64_t v = ikey_version(ikey);
    sst_props *p = &b->props;

    p->num_entries++;
    if (value.len > 0 && ((uint8_t)value.data[0] & VMETA_DELETE))
        p->num_deletions++;
    if (v < p->min_version)
        p->min_version = v;
    if (v > p->max_version)
        p->max_version = v;
    p->raw_key_bytes += ikey.len;
    p->raw_value_bytes += value.len;
}

int sst_builder_add(sst_builder *b, slice ikey, slice value)
{
    int rc;

    if (b->rc != 0)
        return b->rc;
    if ((rc = sst_builder_check(b, ikey, value)) != 0)
        return rc;
    if (!block_builder_empty(&b->data) &&
        block_builder_size_with(&b->data, ikey.len, value.len) > b->o.block_size &&
        (rc = sst_builder_flush_block(b)) != 0)
        goto fail;
    if ((rc = block_builder_add(&b->data, ikey, value)) != 0)
        goto fail;
    if (b->has_filter && (rc = bloom_builder_add(&b->bloom, ikey_user(ikey))) != 0)
        goto fail;
    if (b->props.num_entries == 0 && (rc = buf_append(&b->props.smallest, ikey.data, ikey.len)))
        goto fail;
    buf_reset(&b->last_key);
    if ((rc = buf_append(&b->last_key, ikey.data, ikey.len)) != 0)
        goto fail;
    sst_builder_count(b, ikey, value);
    if (block_builder_size(&b->data) >= b->o.block_size && (rc = sst_builder_flush_block(b)) != 0)
        goto fail;
    return 0;
fail:
    return b->rc = rc;
}

uint64_t sst_builder_size(const sst_builder *b)
{
    return b->offset + (block_builder_empty(&b->data) ? 0 : block_builder_size(&b->data));
}

uint64_t sst_builder_entries(const sst_builder *b)
{
    return b->props.num_entries;
}

/* Filter, properties and index blocks; their handles go into f. */
static int sst_builder_write_meta(sst_builder *b, sst_footer *f)
{
    slice raw;
    int rc;

    if (b->has_filter) {
        buf_reset(&b->meta);
        if ((rc = bloom_builder_finish(&b->bloom, &b->meta)) != 0 ||
            (rc = sst_builder_write_block(b, slice_make(b->meta.data, b->meta.len),
                                          STOAT_COMPRESSION_NONE, &f->filter)) != 0)
            return rc;
    }
    if (b->props.num_entries == 0)
        b->props.min_version = 0;
    buf_reset(&b->props.largest);
    if ((rc = buf_append(&b->props.largest, b->last_key.data, b->last_key.len)) != 0)
        return rc;
    buf_reset(&b->meta);
    if ((rc = sst_props_encode(&b->props, &b->meta)) != 0 ||
        (rc = sst_builder_write_block(b, slice_make(b->meta.data, b->meta.len),
                                      STOAT_COMPRESSION_NONE, &f->props)) != 0)
        return rc;
    if ((rc = block_builder_finish(&b->index, &raw)) != 0)
        return rc;
    return sst_builder_write_block(b, raw, b->o.compression, &f->index);
}

int sst_builder_finish(sst_builder *b, sst_props *props)
{
    sst_footer f;
    char footer[SST_FOOTER_LEN];
    int rc;

    memset(props, 0, sizeof(*props));
    memset(&f, 0, sizeof(f));
    if ((rc = b->rc) != 0)
        goto fail;
    if (!block_builder_empty(&b->data) && (rc = sst_builder_flush_block(b)) != 0)
        goto fail;
    if ((rc = sst_builder_write_meta(b, &f)) != 0)
        goto fail;
    f.version = SST_FORMAT_VERSION;
    sst_footer_encode(footer, &f);
    if ((rc = sst_builder_write(b, footer, sizeof(footer))) != 0 ||
        (rc = sst_builder_flush_out(b)) != 0 || (rc = env_sync(b->file)) != 0)
        goto fail;
    rc = env_close(b->file);
    b->file = NULL;
    if (rc != 0) {
        env_remove(b->env, b->path);
        goto fail;
    }
    *props = b->props; /* hands over the key buffers */
    memset(&b->props, 0, sizeof(b->props));
    props->file_size = b->offset;
    sst_builder_free(b);
    return 0;
fail:
    sst_builder_abandon(b);
    return rc;
}
