/*
 * env_fault_state.c - power-loss states with the reorderings real disks
 * and file systems allow (env_fault_crash_copy; the model it reads is in
 * env_fault_model.c, the rules of the plain power loss in env_fault.c).
 *
 * env_fault_drop_unsynced gives the one worst case: no unsynced byte and
 * no unsynced directory change survives. A real power loss may keep any
 * of them, in an order of its own (ALICE, OSDI '14):
 *  - ENV_FAULT_PREFIX: each file keeps a prefix of the appends made since
 *    its last sync, chosen per file, so files go out of order with each
 *    other (a WAL's record without the value-log record it points to).
 *  - ENV_FAULT_TORN: that prefix may end inside the next append, at a
 *    512-byte or 4 KiB boundary of the file (a torn multi-sector write).
 *  - ENV_FAULT_ZEROS: the file's size may have reached further than its
 *    data: zeros up to a random size, at most the written one (ext4's and
 *    XFS's size update without the data block).
 *  - ENV_FAULT_NAMES: a prefix, in the order they were made, of the
 *    creations and renames not yet made durable by a directory sync
 *    survives (a journal commits them in order); each file created then
 *    keeps its data by the rules above.
 *  - ENV_FAULT_HOLES: instead of a prefix, every 4 KiB page of the
 *    unsynced part of a file survives or reads as zeros on its own, the
 *    file keeping its written size (write-back in any order). Stronger
 *    than what ext4's ordered mode lets happen; run on its own.
 * The synced part of a file is never touched.
 *
 * The state is written to another directory, so that a harness can
 * check many states of one moment: the database directory and the env's
 * model are left as they are. The env's mutex is held throughout, so the
 * copy is of one instant: an append under way counts as not made yet.
 *
 * Not modelled: unsynced removes (they stay durable at once), a rename
 * of a file renamed before (only the newest rename into a name is
 * undone), overwrites (the engine only appends).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "support/env_fault_int.h"

#define PAGE 4096u

static uint64_t state_rand(uint64_t *s)
{
    uint64_t x = *s += 0x9e3779b97f4a7c15ull;

    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t *s, uint64_t n)
{
    return n ? state_rand(s) % n : 0;
}

static void desc_add(char *desc, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(desc);
    va_list ap;

    if (used + 1 >= cap)
        return;
    va_start(ap, fmt);
    vsnprintf(desc + used, cap - used, fmt, ap);
    va_end(ap);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? slash + 1 : path;
}

/* Reads the first len bytes of path (fewer if it is shorter). */
static int read_prefix(env *base, const char *path, uint64_t len, char **out, size_t *got)
{
    env_file *f = NULL;
    int rc;

    *out = NULL;
    *got = 0;
    if ((rc = env_open(base, path, ENV_READ, &f)) != 0)
        return rc;
    if (len == UINT64_MAX && (rc = env_file_size(f, &len)) != 0)
        goto out;
    if ((*out = malloc(len ? len : 1)) == NULL) {
        rc = status_err(STOAT_ENOMEM, "env_fault: out of memory copying %s", path);
        goto out;
    }
    rc = env_read_at(f, 0, *out, (size_t)len, got);
out:
    env_close(f);
    return rc;
}

static int write_file(env *base, const char *path, const char *data, size_t len)
{
    env_file *f = NULL;
    int rc;

    if ((rc = env_open(base, path, ENV_WRITE | ENV_TRUNC, &f)) != 0)
        return rc;
    rc = len ? env_append(f, data, len) : 0;
    if (env_close(f) != 0 && rc == 0)
        rc = STOAT_EIO;
    return rc;
}

/* How much of a tracked file survives: the synced part, then by flags. */
static size_t node_keep(const fault_node *n, uint64_t have, int flags, uint64_t *rng,
                        char *data, size_t *size, char *desc, size_t cap)
{
    uint64_t len = n->len < have ? n->len : have, keep = n->synced < len ? n->synced : len;
    uint64_t next, end = len;
    size_t nm = n->n_marks;

    while (nm > 0 && n->marks[nm - 1] > len)
        nm--;
    if (flags & ENV_FAULT_HOLES) {
        uint64_t last = keep;

        for (uint64_t p = keep / PAGE * PAGE; p < len; p += PAGE) {
            uint64_t from = p > keep ? p : keep, to = p + PAGE < len ? p + PAGE : len;

            if (rnd(rng, 2))
                last = to;
            else
                memset(data + from, 0, (size_t)(to - from));
        }
        *size = (size_t)(rnd(rng, 2) ? len : last);
        if (len > n->synced)
            desc_add(desc, cap, " %s:%llu+holes/%zu", base_name(n->path),
                     (unsigned long long)n->synced, *size);
        return (size_t)*size;
    }
    if (flags & ENV_FAULT_PREFIX) {
        uint64_t j = rnd(rng, nm + 1);

        keep = j == 0 ? keep : n->marks[j - 1];
        next = j < nm ? n->marks[j] : len;
        if ((flags & ENV_FAULT_TORN) && keep < next && rnd(rng, 3) == 0) {
            uint64_t sector = rnd(rng, 2) ? 512 : PAGE, first = (keep / sector + 1) * sector;

            if (first < next)
                keep = first + rnd(rng, (next - 1 - first) / sector + 1) * sector;
        }
    }
    *size = (size_t)keep;
    if ((flags & ENV_FAULT_ZEROS) && keep < end && rnd(rng, 4) == 0) {
        *size = (size_t)(keep + 1 + rnd(rng, end - keep));
        memset(data + keep, 0, *size - (size_t)keep);
    }
    if (len > n->synced)
        desc_add(desc, cap, " %s:%llu+%llu/%zu", base_name(n->path),
                 (unsigned long long)n->synced,
                 (unsigned long long)(keep - (n->synced < keep ? n->synced : keep)), *size);
    return (size_t)keep;
}

/* Copies src (a file of node n, or untracked when n is NULL) to dst as
 * the power loss leaves it. */
static int copy_as_left(fault_env *fe, const fault_node *n, const char *src, const char *dst,
                        int flags, uint64_t *rng, char *desc, size_t cap)
{
    char *data = NULL;
    size_t got = 0, size;
    int rc;

    if ((rc = read_prefix(fe->base, src, n ? n->len : UINT64_MAX, &data, &got)) != 0)
        return rc;
    size = got;
    if (n != NULL)
        node_keep(n, got, flags, rng, data, &size, desc, cap);
    rc = write_file(fe->base, dst, data, size);
    free(data);
    return rc;
}

/* The newest pending rename into path, or NULL. */
static fault_pending *pending_into(fault_env *fe, const char *path)
{
    for (fault_pending *r = fe->renames; r; r = r->next)
        if (r->to && strcmp(r->to, path) == 0)
            return r;
    return NULL;
}

/* The directory changes of dir not yet durable survive up to (and
 * including) the one numbered by the result. */
static uint64_t names_cut(fault_env *fe, const char *dir, int flags, uint64_t *rng)
{
    uint64_t lo = UINT64_MAX, hi = 0;

    if (!(flags & ENV_FAULT_NAMES))
        return 0;
    for (fault_node *n = fe->nodes; n; n = n->next) {
        if (n->path && !n->durable && n->create_seq && path_in_dir(n->path, dir)) {
            lo = n->create_seq < lo ? n->create_seq : lo;
            hi = n->create_seq > hi ? n->create_seq : hi;
        }
    }
    for (fault_pending *r = fe->renames; r; r = r->next) {
        if (r->to && path_in_dir(r->to, dir)) {
            lo = r->seq < lo ? r->seq : lo;
            hi = r->seq > hi ? r->seq : hi;
        }
    }
    if (hi == 0)
        return 0;
    return lo - 1 + rnd(rng, hi - lo + 2);
}

/* One entry of dir, as the power loss leaves it, into out. */
static int state_entry(fault_env *fe, const char *path, const char *out, uint64_t cut,
                       int flags, uint64_t *rng, char *desc, size_t cap)
{
    fault_node *n = node_find(fe, path);
    fault_pending *r = n ? pending_into(fe, path) : NULL;
    char *dst = NULL;
    int rc = 0;

    if (r != NULL && r->moved != n)
        r = NULL;
    if (r != NULL && r->seq > cut) {
        /* The rename is lost: the replaced file is back, the moved one
         * has its old name if that was durable. */
        if (r->backup != NULL && (dst = env_join(out, base_name(path))) != NULL)
            rc = copy_as_left(fe, r->replaced, r->backup, dst, flags, rng, desc, cap);
        free(dst);
        dst = NULL;
        if (rc == 0 && r->from_durable && (dst = env_join(out, base_name(r->from))) != NULL)
            rc = copy_as_left(fe, n, path, dst, flags, rng, desc, cap);
        free(dst);
        if (r->seq > cut)
            desc_add(desc, cap, " %s:unrenamed", base_name(path));
        return rc;
    }
    if (n != NULL && !n->durable && r == NULL && (n->create_seq == 0 || n->create_seq > cut)) {
        desc_add(desc, cap, " %s:lost", base_name(path));
        return 0;   /* created, and the name did not make it */
    }
    if ((dst = env_join(out, base_name(path))) == NULL)
        return status_err(STOAT_ENOMEM, "env_fault: out of memory");
    rc = copy_as_left(fe, n, path, dst, flags, rng, desc, cap);
    free(dst);
    return rc;
}

int env_fault_crash_copy(env *e, const char *dir, const char *out, uint64_t seed, int flags,
                         char *desc, size_t desc_len)
{
    fault_env *fe = fault_of(e);
    uint64_t rng = seed, cut;
    char **names = NULL;
    size_t n = 0;
    int rc;

    if (desc_len > 0)
        desc[0] = '\0';
    pthread_mutex_lock(&fe->mu);
    cut = names_cut(fe, dir, flags, &rng);
    if ((rc = env_list(fe->base, dir, &names, &n)) != 0)
        goto out;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *path;

        if (strncmp(names[i], ".fault-", 7) == 0)
            continue;
        if ((path = env_join(dir, names[i])) == NULL) {
            rc = status_err(STOAT_ENOMEM, "env_fault: out of memory");
            break;
        }
        rc = state_entry(fe, path, out, cut, flags, &rng, desc, desc_len);
        free(path);
    }
    env_list_free(names, n);
out:
    pthread_mutex_unlock(&fe->mu);
    return rc;
}
