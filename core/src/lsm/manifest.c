/*
 * manifest.c - the MANIFEST file: encoding edits, appending them durably,
 * replaying them at open, and rewriting the file as one snapshot.
 *
 * Format (core/FORMAT.md, "MANIFEST"): a 16-byte header (fixed64 magic,
 * fixed32 format version, fixed32 0), then records framed like the WAL's
 * (wal_record_header_*): a 12-byte header of fixed32 payload length,
 * fixed32 checksum32(payload) and fixed32 checksum32(those 8 bytes), then
 * the payload. A payload is one lsm_edit as a sequence of varint
 * tags, each followed by its fields (MTAG_*). The first record of a file
 * written by create or a rewrite is a snapshot: the counters plus one
 * "add" per table.
 *
 * Owns: the open MANIFEST (an append handle), the counters in force
 * (manifest_state: the maximum of every value the edits carried), and the
 * rewrite threshold: once the file exceeds max(4 x its size right after a
 * snapshot, 64 KiB) it is replaced by a fresh snapshot via MANIFEST.tmp,
 * fsync, rename, fsync of the directory.
 *
 * Durability: manifest_append returns 0 only once its record is fsynced.
 * A failed write (a full disk) is cut back off and the edit is not made;
 * after a failed sync, or a failed write that cannot be cut back, the
 * manifest is failed for good (sticky): the file may end in a partial
 * record and the kernel may have dropped pages, so later appends are
 * refused. A rewrite that fails before its
 * rename leaves the old file in use and is retried later; the edit was
 * already durable, so the append still succeeds.
 *
 * Threads: the database serialises manifest_append calls; the rest is
 * open/close.
 */
#include "base/ikey.h"
#include "lsm/manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/checksum.h"
#include "base/coding.h"
#include "base/status.h"
#include "crypt/crypt_env.h"
#include "env/filename.h"
#include "log/wal.h"

#define MANIFEST_HEADER_LEN 16
#define MANIFEST_RECORD_HEADER_LEN WAL_RECORD_HEADER_LEN
#define MANIFEST_MIN_REWRITE (64u * 1024)

/* Payload tags; values are fixed by the format. */
enum {
    MTAG_NEXT_FILE_ID = 1,
    MTAG_LOG_NUMBER = 2,
    MTAG_LAST_VERSION = 3,
    MTAG_ADD_TABLE = 4,
    MTAG_DEL_TABLE = 5,
    MTAG_ADD_TABLE_STALE = 6    /* tag 4's fields + num_stale, stale_version (format 2) */
};

struct manifest {
    env *env;
    char *dir;
    char *path;             /* dir/MANIFEST */
    char *tmp_path;         /* dir/MANIFEST.tmp */
    env_file *f;            /* append handle; NULL when read-only */
    int num_levels;
    int read_only;
    int failed;             /* sticky STOAT_E* of a failed write, or 0 */
    uint64_t size;          /* bytes in the file */
    uint64_t rewrite_at;    /* rewrite once size exceeds this */
    manifest_state st;
};

/* ---- encoding ---- */

static void state_merge(manifest_state *st, const lsm_edit *e)
{
    if (e->has_next_file_id && e->next_file_id > st->next_file_id)
        st->next_file_id = e->next_file_id;
    if (e->has_log_number && e->log_number > st->log_number)
        st->log_number = e->log_number;
    if (e->has_last_version && e->last_version > st->last_version)
        st->last_version = e->last_version;
}

static int encode_add(buf *b, int level, const table_meta *t)
{
    int rc = 0;

    rc |= buf_put_varint(b, t->num_stale ? MTAG_ADD_TABLE_STALE : MTAG_ADD_TABLE);
    rc |= buf_put_varint(b, (uint64_t)level);
    rc |= buf_put_varint(b, t->id);
    rc |= buf_put_varint(b, t->file_size);
    rc |= buf_put_varint(b, t->num_entries);
    rc |= buf_put_varint(b, t->num_deletions);
    rc |= buf_put_varint(b, t->min_version);
    rc |= buf_put_varint(b, t->max_version);
    rc |= buf_put_lenpref(b, t->smallest.data, t->smallest.len);
    rc |= buf_put_lenpref(b, t->largest.data, t->largest.len);
    if (t->num_stale) {
        rc |= buf_put_varint(b, t->num_stale);
        rc |= buf_put_varint(b, t->stale_version);
    }
    return rc ? STOAT_ENOMEM : 0;
}

/* A tag and one varint field. */
static int encode_tagged(buf *b, int tag, uint64_t v)
{
    return (buf_put_varint(b, (uint64_t)tag) | buf_put_varint(b, v)) ? STOAT_ENOMEM : 0;
}

static int encode_edit(buf *b, const lsm_edit *e)
{
    int rc = 0;

    if (e->has_next_file_id)
        rc |= encode_tagged(b, MTAG_NEXT_FILE_ID, e->next_file_id);
    if (e->has_log_number)
        rc |= encode_tagged(b, MTAG_LOG_NUMBER, e->log_number);
    if (e->has_last_version)
        rc |= encode_tagged(b, MTAG_LAST_VERSION, e->last_version);
    for (size_t i = 0; i < e->n_dels; i++) {
        rc |= buf_put_varint(b, MTAG_DEL_TABLE);
        rc |= buf_put_varint(b, (uint64_t)e->dels[i].level);
        rc |= buf_put_varint(b, e->dels[i].id);
    }
    for (size_t i = 0; i < e->n_adds; i++)
        rc |= encode_add(b, e->adds[i].level, e->adds[i].t);
    return rc ? STOAT_ENOMEM : 0;
}

static int encode_snapshot(buf *b, const lsm_view *v, const manifest_state *st)
{
    int rc = 0;

    rc |= encode_tagged(b, MTAG_NEXT_FILE_ID, st->next_file_id);
    rc |= encode_tagged(b, MTAG_LOG_NUMBER, st->log_number);
    rc |= encode_tagged(b, MTAG_LAST_VERSION, st->last_version);
    for (int l = 0; v != NULL && l < v->num_levels; l++)
        for (size_t i = 0; i < v->n[l]; i++)
            rc |= encode_add(b, l, v->tables[l][i]);
    return rc ? STOAT_ENOMEM : 0;
}

/* Frames the payload in b (from offset `from` on) in place: the record
 * header goes in front of it. */
static int frame_record(buf *b, size_t from)
{
    size_t len = b->len - from;
    char hdr[MANIFEST_RECORD_HEADER_LEN];

    if (len > UINT32_MAX)
        return status_err(STOAT_ETOOBIG, "MANIFEST: record of %zu bytes", len);
    wal_record_header_encode(hdr, b->data + from, (uint32_t)len);
    if (buf_reserve(b, sizeof(hdr)) != 0)
        return status_err(STOAT_ENOMEM, "MANIFEST: out of memory");
    memmove(b->data + from + sizeof(hdr), b->data + from, len);
    memcpy(b->data + from, hdr, sizeof(hdr));
    b->len += sizeof(hdr);
    return 0;
}

/*
 * Before b (framed records from offset `start` on) is appended at offset
 * file_off of f: in an encrypted database each record's payload is sealed
 * for the place it will sit at (wal_encode_record_at); else nothing.
 */
static int seal_records(env_file *f, uint64_t file_off, buf *b, size_t start)
{
    buf out = {0};
    size_t off = start;
    int rc = 0;

    if (!crypt_sealed(f))
        return 0;
    if (buf_append(&out, b->data, start) != 0)
        rc = status_err(STOAT_ENOMEM, "MANIFEST: out of memory");
    while (rc == 0 && off < b->len) {
        uint32_t plen = get_fixed32(b->data + off);

        rc = wal_encode_record_at(&out, f, file_off + out.len,
                                  b->data + off + MANIFEST_RECORD_HEADER_LEN, plen);
        off += MANIFEST_RECORD_HEADER_LEN + (size_t)plen;
    }
    if (rc != 0) {
        buf_free(&out);
        return rc;
    }
    buf_free(b);
    *b = out;
    return 0;
}

static int write_tmp(manifest *m, buf *b);

/* A whole file: header plus one snapshot record. */
static int encode_file(buf *b, const lsm_view *v, const manifest_state *st)
{
    int rc = 0;

    rc |= buf_put_fixed64(b, MANIFEST_MAGIC);
    rc |= buf_put_fixed32(b, MANIFEST_FORMAT_VERSION);
    rc |= buf_put_fixed32(b, 0);
    if (rc != 0 || encode_snapshot(b, v, st) != 0)
        return status_err(STOAT_ENOMEM, "MANIFEST: out of memory");
    return frame_record(b, MANIFEST_HEADER_LEN);
}

static void set_rewrite_at(manifest *m, uint64_t snapshot_len)
{
    m->rewrite_at = 4 * snapshot_len;
    if (m->rewrite_at < MANIFEST_MIN_REWRITE)
        m->rewrite_at = MANIFEST_MIN_REWRITE;
}

/* ---- decoding ---- */

typedef struct reader {
    const char *p, *limit;
} reader;

static int rd_varint(reader *r, uint64_t *v)
{
    return r->p != NULL && (r->p = get_varint64(r->p, r->limit, v)) != NULL;
}

static int rd_key(reader *r, slice *s)
{
    uint64_t n;

    if (!rd_varint(r, &n) || n > (uint64_t)(r->limit - r->p) || n < IKEY_SUFFIX_LEN)
        return 0;
    *s = slice_make(r->p, (size_t)n);
    r->p += n;
    return 1;
}

/* decode_field results besides 0 */
enum { FIELD_MALFORMED = 1, FIELD_UNKNOWN = 2 };

/* One MTAG_ADD_TABLE's (with `stale`, MTAG_ADD_TABLE_STALE's) fields into
 * e: 0, FIELD_MALFORMED, or an error. */
static int decode_add(reader *r, lsm_edit *e, int stale)
{
    uint64_t level, id, size, f[6] = {0};
    slice lo, hi;
    table_meta *t;
    int rc;

    if (!rd_varint(r, &level) || !rd_varint(r, &id) || !rd_varint(r, &size))
        return FIELD_MALFORMED;
    for (int i = 0; i < 4; i++)
        if (!rd_varint(r, &f[i]))
            return FIELD_MALFORMED;
    if (!rd_key(r, &lo) || !rd_key(r, &hi) || level >= MAX_LEVELS)
        return FIELD_MALFORMED;
    if (stale && (!rd_varint(r, &f[4]) || !rd_varint(r, &f[5]) || f[4] == 0))
        return FIELD_MALFORMED;
    if ((t = table_meta_new(id, size, lo, hi)) == NULL)
        return status_err(STOAT_ENOMEM, "MANIFEST: out of memory");
    t->num_entries = f[0];
    t->num_deletions = f[1];
    t->min_version = f[2];
    t->max_version = f[3];
    t->num_stale = f[4];
    t->stale_version = f[5];
    rc = lsm_edit_add(e, (int)level, t);
    table_meta_unref(t);
    return rc;
}

/* Decodes the tag at r and its fields into e: 0, FIELD_MALFORMED,
 * FIELD_UNKNOWN (*tag says which), or a negative error. */
static int decode_field(reader *r, lsm_edit *e, uint64_t *tag)
{
    uint64_t level, id;

    if (!rd_varint(r, tag))
        return FIELD_MALFORMED;
    switch (*tag) {
    case MTAG_NEXT_FILE_ID:
        e->has_next_file_id = 1;
        return rd_varint(r, &e->next_file_id) ? 0 : FIELD_MALFORMED;
    case MTAG_LOG_NUMBER:
        e->has_log_number = 1;
        return rd_varint(r, &e->log_number) ? 0 : FIELD_MALFORMED;
    case MTAG_LAST_VERSION:
        e->has_last_version = 1;
        return rd_varint(r, &e->last_version) ? 0 : FIELD_MALFORMED;
    case MTAG_ADD_TABLE:
    case MTAG_ADD_TABLE_STALE:
        return decode_add(r, e, *tag == MTAG_ADD_TABLE_STALE);
    case MTAG_DEL_TABLE:
        if (!rd_varint(r, &level) || !rd_varint(r, &id) || level >= MAX_LEVELS)
            return FIELD_MALFORMED;
        return lsm_edit_del(e, (int)level, id);
    default:
        return FIELD_UNKNOWN;
    }
}

static int decode_edit(const manifest *m, const char *p, size_t len, uint64_t off,
                       lsm_edit *e)
{
    reader r = {p, p + len};
    uint64_t tag = 0;
    int rc;

    while (r.p < r.limit) {
        rc = decode_field(&r, e, &tag);
        if (rc == FIELD_UNKNOWN)
            return status_err(STOAT_ECORRUPT, "%s: unknown tag %llu in record at offset %llu",
                              m->path, (unsigned long long)tag, (unsigned long long)off);
        if (rc == FIELD_MALFORMED)
            return status_err(STOAT_ECORRUPT, "%s: malformed record at offset %llu", m->path,
                              (unsigned long long)off);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- replay ---- */

static int all_zero(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

static int check_header(const manifest *m, const char *data, size_t len)
{
    if (len < MANIFEST_HEADER_LEN)
        return status_err(STOAT_ECORRUPT, "%s: %zu bytes, shorter than its header", m->path, len);
    if (get_fixed64(data) != MANIFEST_MAGIC)
        return status_err(STOAT_ECORRUPT, "%s: bad magic", m->path);
    if (get_fixed32(data + 8) < MANIFEST_FORMAT_VERSION_MIN ||
        get_fixed32(data + 8) > MANIFEST_FORMAT_VERSION || get_fixed32(data + 12) != 0)
        return status_err(STOAT_ENOTSUP, "%s: format version %u (flags %u) not supported",
                          m->path, get_fixed32(data + 8), get_fixed32(data + 12));
    return 0;
}

/* Decodes the record payload at off and applies it to *v. */
static int replay_record(manifest *m, const char *payload, size_t len, uint64_t off,
                         lsm_view **v)
{
    lsm_edit e;
    lsm_view *next = NULL;
    int rc;

    lsm_edit_init(&e);
    if ((rc = decode_edit(m, payload, len, off, &e)) != 0)
        goto out;
    if ((rc = lsm_view_apply(*v, m->num_levels, &e, &next)) != 0) {
        char msg[STATUS_MSG_MAX];

        snprintf(msg, sizeof(msg), "%s", status_msg());
        rc = status_err(rc, "%s: record at offset %llu: %s", m->path, (unsigned long long)off,
                        msg);
        goto out;
    }
    state_merge(&m->st, &e);
    lsm_view_unref(*v);
    *v = next;
out:
    lsm_edit_free(&e);
    return rc;
}

/* check_record's verdict for a torn tail (errors are negative). */
#define MANIFEST_TORN 1

/*
 * Checks the record at off of data[0, len): 0 and its payload length,
 * MANIFEST_TORN when it is a torn tail, or STOAT_ECORRUPT. The length is
 * used only once the record header's own check has passed.
 */
static int check_record(const manifest *m, const char *data, size_t len, size_t off,
                        size_t *plen)
{
    size_t rest = len - off;
    const char *h = data + off;

    if (rest < MANIFEST_RECORD_HEADER_LEN)
        return MANIFEST_TORN;
    if (!wal_record_header_ok(h)) {
        /* Only zeros after the header's place: a header cut short by a
         * torn write, the file's size persisted ahead of its data. */
        if (all_zero(h + MANIFEST_RECORD_HEADER_LEN, rest - MANIFEST_RECORD_HEADER_LEN))
            return MANIFEST_TORN;
        return status_err(STOAT_ECORRUPT, "%s: bad checksum at offset %zu (record header)",
                          m->path, off);
    }
    *plen = get_fixed32(h);
    if (*plen > rest - MANIFEST_RECORD_HEADER_LEN)
        return MANIFEST_TORN;
    if (checksum32(h + MANIFEST_RECORD_HEADER_LEN, *plen) == get_fixed32(h + 4))
        return 0;
    if (*plen == rest - MANIFEST_RECORD_HEADER_LEN ||
        all_zero(h + MANIFEST_RECORD_HEADER_LEN + *plen,
                 rest - MANIFEST_RECORD_HEADER_LEN - *plen))
        return MANIFEST_TORN;   /* the last record, maybe followed by zeros (above) */
    return status_err(STOAT_ECORRUPT, "%s: bad checksum at offset %zu", m->path, off);
}

/*
 * Replays every record of data into *v. *good_len gets the end of the last
 * good record: less than len when the file ends in a torn tail (a cut
 * record header, or a bad one followed by zeros only, an intact header
 * whose payload runs past end of file, a last record whose payload
 * checksum fails and that ends exactly at end of file or is followed by
 * zeros only, or zero bytes), which the caller truncates.
 */
static int replay(manifest *m, env_file *f, const char *data, size_t len, lsm_view **v,
                  uint64_t *good_len)
{
    size_t off = MANIFEST_HEADER_LEN, plen = 0;
    buf plain = {0};
    int rc;

    if ((rc = check_header(m, data, len)) != 0)
        return rc;
    while (off < len) {
        const char *payload = data + off + MANIFEST_RECORD_HEADER_LEN;
        size_t n;

        if ((rc = check_record(m, data, len, off, &plen)) == MANIFEST_TORN)
            break;
        if (rc != 0)
            break;
        n = plen;
        if (crypt_sealed(f)) {
            if ((rc = crypt_open_buf(f, off, payload, plen, &plain, "record")) != 0)
                break;
            payload = plain.data;
            n = plain.len;
        }
        if ((rc = replay_record(m, payload, n, off, v)) != 0)
            break;
        off += MANIFEST_RECORD_HEADER_LEN + plen;
    }
    buf_free(&plain);
    if (rc != 0 && rc != MANIFEST_TORN)
        return rc;
    /* The first record, a snapshot, is durable before the file gets its
     * name (creation and rewrites both): without it the file is damaged,
     * not torn, and an empty version would disown every table. */
    if (off == MANIFEST_HEADER_LEN)
        return status_err(STOAT_ECORRUPT, "%s: no complete snapshot record (%zu bytes)", m->path,
                          len);
    *good_len = off;
    return 0;
}

/* ---- the file ---- */

static void manifest_free(manifest *m)
{
    if (m == NULL)
        return;
    env_close(m->f);
    free(m->dir);
    free(m->path);
    free(m->tmp_path);
    free(m);
}

static manifest *manifest_alloc(env *e, const char *dir, int num_levels, int read_only)
{
    manifest *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->env = e;
    m->num_levels = num_levels;
    m->read_only = read_only;
    m->dir = strdup(dir);
    m->path = env_join(dir, FILENAME_MANIFEST);
    m->tmp_path = env_join(dir, FILENAME_MANIFEST_TMP);
    if (m->dir == NULL || m->path == NULL || m->tmp_path == NULL) {
        manifest_free(m);
        return NULL;
    }
    return m;
}

int manifest_create(env *e, const char *dir, int num_levels, const manifest_state *st,
                    manifest **out)
{
    manifest *m = NULL;
    buf b = {0};
    int rc;

    *out = NULL;
    if (num_levels < 1 || num_levels > MAX_LEVELS)
        return status_err(STOAT_EINVAL, "manifest_create: bad num_levels %d", num_levels);
    if ((m = manifest_alloc(e, dir, num_levels, 0)) == NULL) {
        rc = status_err(STOAT_ENOMEM, "manifest_create: out of memory");
        goto fail;
    }
    m->st = *st;
    if ((rc = encode_file(&b, NULL, st)) != 0)
        goto fail;
    if ((rc = write_tmp(m, &b)) != 0 || (rc = env_rename(e, m->tmp_path, m->path)) != 0 ||
        (rc = env_sync_dir(e, dir)) != 0)
        goto fail;
    if ((rc = env_open(e, m->path, ENV_WRITE, &m->f)) != 0)
        goto fail;
    m->size = b.len;
    set_rewrite_at(m, b.len);
    buf_free(&b);
    *out = m;
    return 0;
fail:
    buf_free(&b);
    manifest_free(m);
    return rc;
}


/* Replaces a file of an older format version with b (a snapshot in the
 * current one) before anything is appended to it: an older binary must
 * see a version it refuses, not a tag it calls corruption. */
static int upgrade_format(manifest *m, buf *b)
{
    int rc;

    if ((rc = write_tmp(m, b)) != 0 || (rc = env_rename(m->env, m->tmp_path, m->path)) != 0) {
        (void)env_remove(m->env, m->tmp_path);
        return rc;
    }
    env_close(m->f);
    m->f = NULL;
    if ((rc = env_sync_dir(m->env, m->dir)) != 0)
        return rc;
    return env_open(m->env, m->path, ENV_WRITE, &m->f);
}

/* Cuts a torn tail off and opens the file for appends. */
static int open_for_append(manifest *m, uint64_t len, uint64_t good_len)
{
    int rc;

    if ((rc = env_open(m->env, m->path, ENV_WRITE, &m->f)) != 0)
        return rc;
    if (good_len < len &&
        ((rc = env_truncate(m->f, good_len)) != 0 || (rc = env_sync(m->f)) != 0))
        return rc;
    /* A rewrite that died before its rename left this behind. */
    if (env_exists(m->env, m->tmp_path) == 1)
        (void)env_remove(m->env, m->tmp_path);
    return 0;
}


int manifest_open(env *e, const char *dir, int num_levels, int read_only, lsm_view **v,
                  manifest_state *st, manifest **out)
{
    manifest *m = NULL;
    lsm_view *cur = NULL;
    env_file *rf = NULL;
    char *data = NULL;
    size_t len = 0;
    uint64_t good_len = 0;
    buf b = {0};
    int rc;

    *v = NULL;
    *out = NULL;
    memset(st, 0, sizeof(*st));
    if (num_levels < 1 || num_levels > MAX_LEVELS)
        return status_err(STOAT_EINVAL, "manifest_open: bad num_levels %d", num_levels);
    rc = STOAT_ENOMEM;
    if ((m = manifest_alloc(e, dir, num_levels, read_only)) == NULL ||
        (cur = lsm_view_new_empty(num_levels)) == NULL) {
        status_err(rc, "manifest_open: out of memory");
        goto fail;
    }
    /* Kept open for replay: records are sealed for this file. */
    if ((rc = env_open(e, m->path, ENV_READ, &rf)) != 0 ||
        (rc = env_read_file(rf, &data, &len)) != 0)
        goto fail;
    if ((rc = replay(m, rf, data, len, &cur, &good_len)) != 0)
        goto fail;
    if (!read_only && (rc = open_for_append(m, len, good_len)) != 0)
        goto fail;
    if ((rc = encode_file(&b, cur, &m->st)) != 0)
        goto fail;
    m->size = good_len;
    if (!read_only && get_fixed32(data + 8) != MANIFEST_FORMAT_VERSION) {
        if ((rc = upgrade_format(m, &b)) != 0)
            goto fail;
        m->size = b.len;
    }
    set_rewrite_at(m, b.len);
    env_close(rf);
    buf_free(&b);
    free(data);
    *st = m->st;
    *v = cur;
    *out = m;
    return 0;
fail:
    env_close(rf);
    buf_free(&b);
    free(data);
    lsm_view_unref(cur);
    manifest_free(m);
    return rc;
}

/* Writes b to MANIFEST.tmp and fsyncs it. */
static int write_tmp(manifest *m, buf *b)
{
    env_file *f = NULL;
    int rc;

    if ((rc = env_open(m->env, m->tmp_path, ENV_WRITE | ENV_TRUNC, &f)) != 0)
        return rc;
    if ((rc = seal_records(f, 0, b, MANIFEST_HEADER_LEN)) != 0 ||
        (rc = env_append(f, b->data, b->len)) != 0 || (rc = env_sync(f)) != 0) {
        env_close(f);
        return rc;
    }
    return env_close(f);
}

/*
 * Replaces the file with a snapshot of v. Before the rename a failure
 * leaves the old file in use (retried once the file has grown by half);
 * after it the manifest is failed.
 */
static int manifest_rewrite(manifest *m, const lsm_view *v)
{
    buf b = {0};
    int rc;

    if (encode_file(&b, v, &m->st) != 0)
        goto retry_later;
    if (4 * (uint64_t)b.len >= m->size) {
        /* The snapshot has grown with the version: not worth it yet. */
        set_rewrite_at(m, b.len);
        buf_free(&b);
        return 0;
    }
    if (write_tmp(m, &b) != 0 || env_rename(m->env, m->tmp_path, m->path) != 0)
        goto retry_later;
    env_close(m->f);
    m->f = NULL;
    if ((rc = env_sync_dir(m->env, m->dir)) != 0 ||
        (rc = env_open(m->env, m->path, ENV_WRITE, &m->f)) != 0) {
        m->failed = rc;
        buf_free(&b);
        return rc;
    }
    m->size = b.len;
    set_rewrite_at(m, b.len);
    buf_free(&b);
    return 0;
retry_later:
    (void)env_remove(m->env, m->tmp_path);
    m->rewrite_at = m->size + m->size / 2;
    buf_free(&b);
    return 0;
}

/*
 * A failed write (a full disk) may have left part of the record behind:
 * the file is cut back to its last good size, and the manifest goes on
 * (the edit is simply not made; the error is returned as it was). Only if
 * the cut fails too is it failed for good (STOAT_EIO). A failed sync
 * always is (the file's pages may be gone).
 */
static int manifest_append_failed(manifest *m, int rc)
{
    char msg[STATUS_MSG_MAX];

    snprintf(msg, sizeof(msg), "%s", status_msg());
    if (env_truncate(m->f, m->size) != 0) {
        m->failed = STOAT_EIO;
        return status_err(STOAT_EIO, "%s (cutting the partial record back off failed)", msg);
    }
    status_set_msg(msg);
    return rc;
}

int manifest_append(manifest *m, const lsm_view *current, const lsm_edit *e)
{
    lsm_view *next = NULL;
    buf b = {0};
    int rc;

    if (m->read_only)
        return status_err(STOAT_EREADONLY, "%s: opened read-only", m->path);
    if (m->failed)
        return status_err(m->failed, "%s: an earlier write failed", m->path);
    /* Refuse an edit that would not replay rather than log it. */
    if ((rc = lsm_view_apply(current, m->num_levels, e, &next)) != 0)
        return rc;
    if (encode_edit(&b, e) != 0) {
        rc = status_err(STOAT_ENOMEM, "%s: out of memory", m->path);
        goto out;
    }
    if ((rc = frame_record(&b, 0)) != 0 || (rc = seal_records(m->f, m->size, &b, 0)) != 0)
        goto out;
    if ((rc = env_append(m->f, b.data, b.len)) != 0) {
        rc = manifest_append_failed(m, rc);
        goto out;
    }
    if ((rc = env_sync(m->f)) != 0) {
        m->failed = rc;
        goto out;
    }
    m->size += b.len;
    state_merge(&m->st, e);
    if (m->size > m->rewrite_at)
        rc = manifest_rewrite(m, next);
out:
    buf_free(&b);
    lsm_view_unref(next);
    return rc;
}

uint64_t manifest_size(const manifest *m)
{
    return m->size;
}

void manifest_close(manifest *m)
{
    manifest_free(m);
}
