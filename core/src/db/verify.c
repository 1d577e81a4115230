/*
 * verify.c - stoat_verify: a checksum walk over the files of an open
 * database, naming each damaged file, record and key range.
 *
 * What it reads: every table of the current lsm_view, whole (every data
 * block, so every block checksum, and the order of the entries), every
 * value pointer those tables hold (the record must exist, pass its checks
 * and hold the same key; a pointer into a file GC removed is damage only
 * when it is the version of its key a reader sees), and every record of
 * every sealed value-log file. The MANIFEST and the WALs were checked by
 * stoat_open (damage there fails the open), the index, filter and
 * properties blocks of a table when it is opened; they are not read again.
 * The active value-log file is checked through the pointers into it.
 *
 * Threads: runs in the caller's thread beside the background work. It
 * holds a reference to the lsm_view it walks (its tables stay) and a
 * read-only transaction (the value-log files that snapshot needs stay).
 * The problems go into a text report, one line each; nothing calls back.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/state.h"
#include "base/ikey.h"
#include "base/iter.h"
#include "base/status.h"
#include "table/sst_reader.h"
#include "vlog/vlog.h"

#define VERIFY_KEY_SHOWN 48  /* key bytes shown in a report line */
#define VERIFY_KEY_TEXT 256

typedef struct verify_ctx {
    stoat_db *db;
    stoat_txn *txn;          /* the snapshot that decides whether a dangling pointer matters */
    uint64_t read_version;
    buf report;
    uint64_t problems;
    int rc;                  /* a failure of the walk itself (ENOMEM), not damage */
    buf last_key;            /* the last good record of the value-log file being scanned */
} verify_ctx;

/* A printable form of key k (at most VERIFY_KEY_SHOWN bytes, \xHH escapes). */
static const char *verify_key_text(slice k, char *out)
{
    size_t n = 0, max = k.len < VERIFY_KEY_SHOWN ? k.len : VERIFY_KEY_SHOWN;

    for (size_t i = 0; i < max; i++) {
        unsigned char ch = (unsigned char)k.data[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\')
            out[n++] = (char)ch;
        else
            n += (size_t)snprintf(out + n, VERIFY_KEY_TEXT - n, "\\x%02x", ch);
    }
    if (k.len > max) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* Adds one line to the report. */
static void verify_note(verify_ctx *c, const char *fmt, ...) STATUS_PRINTF(2, 3);
static void verify_note(verify_ctx *c, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    c->problems++;
    if (buf_append(&c->report, line, (size_t)n) != 0)
        c->rc = STOAT_ENOMEM;
}

/* The message of the failure that just happened, or the code's name. */
static const char *verify_msg(int rc)
{
    const char *m = status_msg();
    return m[0] ? m : stoat_strerror(rc);
}

/* Checks the value pointer of entry ikey (table name, level). */
static void verify_pointer(verify_ctx *c, const char *table, int level, slice ikey,
                           const vstruct *vs)
{
    char k[VERIFY_KEY_TEXT];
    const void *val;
    size_t vlen;
    uint64_t seen = 0;
    vptr p;
    int rc;

    vptr_decode(vs->value.data, &p);
    rc = vlog_check(c->db->vlog, &p, ikey);
    if (rc == 0)
        return;
    slice uk = ikey_user(ikey);
    uint64_t ver = ikey_version(ikey);
    if (rc == STOAT_ENOTFOUND) {
        /* GC removed the file: fine unless readers still get this version. */
        if (ver > c->read_version)
            return;
        rc = stoat_txn_get_meta(c->txn, uk.data, uk.len, &val, &vlen, &seen, NULL, NULL);
        if (rc == STOAT_ENOTFOUND || (rc == 0 && seen != ver))
            return;
        if (rc == 0)
            rc = STOAT_ECORRUPT;
    }
    verify_note(c, "%06u.vlog: value pointer of key %s (version %llu, from %s in L%d) to "
                "offset %llu, %u bytes: %s", p.fid, verify_key_text(uk, k),
                (unsigned long long)ver, table, level, (unsigned long long)p.offset, p.len,
                verify_msg(rc));
}

/* Reads table t of level `level` whole. */
static void verify_table(verify_ctx *c, int level, const table_meta *t)
{
    char name[32], lo[VERIFY_KEY_TEXT], hi[VERIFY_KEY_TEXT], at[VERIFY_KEY_TEXT];
    sst_reader *r = NULL;
    buf prev = {0};
    iter *it;
    int rc;

    snprintf(name, sizeof(name), "%06llu.sst", (unsigned long long)t->id);
    verify_key_text(table_smallest_ukey(t), lo);
    verify_key_text(table_largest_ukey(t), hi);
    if ((rc = table_cache_get(c->db->tc, t->id, &r)) != 0) {
        verify_note(c, "%s (L%d): %s; keys %s .. %s are unreadable", name, level,
                    verify_msg(rc), lo, hi);
        return;
    }
    if ((it = sst_reader_iter(r)) == NULL) {
        c->rc = STOAT_ENOMEM;
        sst_reader_unref(r);
        return;
    }
    for (iter_seek_first(it); iter_valid(it) && c->rc == 0; iter_next(it)) {
        slice k = iter_key(it), v = iter_value(it);
        vstruct vs;

        if (prev.len && ikey_cmp(slice_make(prev.data, prev.len), k) >= 0)
            verify_note(c, "%s (L%d): entries out of order at key %s", name, level,
                        verify_key_text(ikey_user(k), at));
        buf_reset(&prev);
        if (buf_append(&prev, k.data, k.len) != 0)
            c->rc = STOAT_ENOMEM;
        if (vstruct_decode(v, &vs) != 0)
            verify_note(c, "%s (L%d): malformed value of key %s", name, level,
                        verify_key_text(ikey_user(k), at));
        else if ((vs.meta & VMETA_VPTR) && c->db->vlog != NULL)
            verify_pointer(c, name, level, k, &vs);
    }
    if ((rc = iter_status(it)) != 0)
        verify_note(c, "%s (L%d): %s; keys %s%s .. %s are not readable", name, level,
                    verify_msg(rc), prev.len ? "after " : "",
                    prev.len ? verify_key_text(ikey_user(slice_make(prev.data, prev.len)), at)
                             : lo, hi);
    iter_free(it);
    sst_reader_unref(r);
    buf_free(&prev);
}

static int verify_vlog_record(void *arg, const vptr *p, slice ikey, slice value)
{
    verify_ctx *c = arg;

    (void)p;
    (void)value;
    buf_reset(&c->last_key);
    return buf_append(&c->last_key, ikey.data, ikey.len);
}

/* Scans every sealed value-log file. */
static void verify_vlog(verify_ctx *c)
{
    char k[VERIFY_KEY_TEXT];
    uint32_t *fids = NULL;
    size_t n = 0;
    int rc;

    if (c->db->vlog == NULL)
        return;
    if ((rc = vlog_files(c->db->vlog, &fids, &n)) != 0) {
        c->rc = rc;
        return;
    }
    for (size_t i = 0; i < n && c->rc == 0; i++) {
        buf_reset(&c->last_key);
        rc = vlog_scan(c->db->vlog, fids[i], verify_vlog_record, c);
        if (rc == STOAT_ECORRUPT) {
            const char *after = c->last_key.len >= 8
                ? verify_key_text(ikey_user(slice_make(c->last_key.data, c->last_key.len)), k)
                : NULL;
            verify_note(c, "%06u.vlog: %s%s%s", fids[i], verify_msg(rc),
                        after ? "; the damaged record follows the one of key " : "",
                        after ? after : "");
        } else if (rc == STOAT_ENOMEM) {
            c->rc = rc;
        }
        /* EINVAL: the active file; ENOTFOUND: GC removed it meanwhile. */
    }
    free(fids);
}

int stoat_verify(stoat_db *db, char **report, size_t *report_len)
{
    verify_ctx c;
    lsm_view *v;
    int rc;

    if (report)
        *report = NULL;
    if (report_len)
        *report_len = 0;
    if ((rc = db_check_handle(db)) != 0)
        return rc;
    memset(&c, 0, sizeof(c));
    c.db = db;
    if ((rc = stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &c.txn)) != 0)
        return rc;
    c.read_version = stoat_txn_read_version(c.txn);
    pthread_mutex_lock(&db->mu);
    v = db->current;
    lsm_view_ref(v);
    pthread_mutex_unlock(&db->mu);
    for (int level = 0; level < v->num_levels && c.rc == 0; level++)
        for (size_t i = 0; i < v->n[level] && c.rc == 0; i++)
            verify_table(&c, level, v->tables[level][i]);
    lsm_view_unref(v);
    if (c.rc == 0)
        verify_vlog(&c);
    stoat_txn_discard(c.txn);
    buf_free(&c.last_key);
    if (c.rc == 0 && buf_put_byte(&c.report, 0) != 0)
        c.rc = STOAT_ENOMEM;
    if (c.rc != 0) {
        buf_free(&c.report);
        return status_err(c.rc, "verify: %s", stoat_strerror(c.rc));
    }
    if (report_len)
        *report_len = c.report.len - 1;
    if (report)
        *report = c.report.data;
    else
        buf_free(&c.report);
    if (c.problems)
        return status_err(STOAT_ECORRUPT, "verify: %llu problem%s found",
                          (unsigned long long)c.problems, c.problems == 1 ? "" : "s");
    status_clear();
    return 0;
}
