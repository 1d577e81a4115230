/*
 * env_fault.c - a fault-injecting env for tests: failed appends and syncs,
 * and simulated power loss (the model of what survives it is in
 * env_fault_model.c; what the two share, in env_fault_int.h).
 *
 * It wraps a base env that works on the real filesystem (the tests use
 * env_posix()) and passes every call through, while keeping a model of
 * what the disk would still hold after a power loss. env_fault_crash makes
 * every later call fail ("the process is dead"); env_fault_drop_unsynced
 * then rewrites the real files to the model, so reopening the database
 * shows it what a reboot would.
 *
 * What survives power loss, in this model:
 *  - File data: the first `synced` bytes of a file, where `synced` is its
 *    length at its last successful env_sync. Everything after is lost (the
 *    worst case: no unsynced byte survives). A truncate takes effect at
 *    once (synced = min(synced, new length)), and so does ENV_TRUNC.
 *  - A file that existed before this env first saw it (opened ENV_WRITE
 *    without ENV_TRUNC, or renamed) counts as synced up to its size then,
 *    with a durable directory entry.
 *  - Directory entries: a file created through this env has a durable
 *    name only after env_sync_dir of its directory; until then a power
 *    loss removes it, whatever was synced inside it.
 *  - Renames: a rename is durable once the target's directory is synced.
 *    Before that, a power loss moves the file back to its old name and
 *    restores the file it replaced (kept meanwhile as a hard link named
 *    ".fault-<n>" in the target's directory; list() hides these names).
 *    Undone renames restore the old name's durability, so the manifest
 *    rewrite pattern (write tmp, sync tmp, rename over MANIFEST, sync dir)
 *    yields either the old MANIFEST or the new one, never neither.
 *  - Removes are durable at once (not modelled as undoable). Directories
 *    made by mkdir are durable at once.
 * Not modelled: renames across directories count only the target's
 * directory; a file removed or renamed again after an unsynced rename
 * keeps its newer fate; reordering or tearing inside the synced prefix.
 *
 * Files are modelled as nodes (think inodes): a path names at most one
 * node, and an open file points at its node, so appends through a handle
 * stay with the right file across renames and removes. Files opened
 * ENV_READ have no node; reads are passed through.
 *
 * Injected faults: the n-th append (or sync, of a file or a directory)
 * from the moment it is armed fails, and so does every later one, until
 * env_fault_drop_unsynced clears it. A failed append writes nothing; a
 * failed sync makes nothing durable. After env_fault_crash every call
 * fails with STOAT_EIO ("simulated crash") except close and unlock, which
 * still release their resources; env_exists returns STOAT_EIO too, so a
 * caller must test for < 0.
 *
 * Threading: one mutex guards the model and the counters. It is held
 * around the base calls that change names (open for writing, remove,
 * rename, sync_dir, drop), not around reads, appends and file syncs.
 * Paths must be spelt the same way each time (as env_join builds them):
 * they are compared as strings.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/status.h"
#include "support/env_fault_int.h"

/* ---- files ---- */

static int fault_file_wrap(fault_env *fe, env_file *inner, fault_node *node, env_file **out)
{
    fault_file *f = calloc(1, sizeof(*f));

    if (f == NULL || (f->hdr.path = strdup(inner->path)) == NULL) {
        int rc = status_err(STOAT_ENOMEM, "open %s: out of memory", inner->path);

        free(f);
        env_close(inner);
        pthread_mutex_lock(&fe->mu);
        node_unref(fe, node);
        pthread_mutex_unlock(&fe->mu);
        return rc;
    }
    f->hdr.env = &fe->iface;
    f->inner = inner;
    f->node = node;
    *out = &f->hdr;
    return 0;
}

/* Opens for writing and finds or creates the node, under the lock so the
 * "did it exist" answer matches what the open did. */
static int fault_open_write_locked(fault_env *fe, const char *path, int flags,
                                   env_file **inner, fault_node **node)
{
    fault_node *n = node_find(fe, path);
    uint64_t size = 0;
    int rc, existed = n != NULL;

    if (!existed && (existed = env_exists(fe->base, path)) < 0)
        return existed;
    if ((rc = env_open(fe->base, path, flags, inner)) != 0)
        return rc;
    if (n == NULL) {
        if (existed && (rc = env_file_size(*inner, &size)) != 0)
            goto fail;
        if ((n = node_new(fe, path, size, existed)) == NULL) {
            rc = status_err(STOAT_ENOMEM, "open %s: out of memory", path);
            goto fail;
        }
    } else if (flags & ENV_TRUNC) {
        n->len = n->synced = 0;
        n->n_marks = 0;
    }
    n->refs++;
    *node = n;
    return 0;
fail:
    env_close(*inner);
    *inner = NULL;
    return rc;
}

static int fault_open(env *e, const char *path, int flags, env_file **out)
{
    fault_env *fe = fault_of(e);
    env_file *inner = NULL;
    fault_node *node = NULL;
    int rc;

    *out = NULL;
    pthread_mutex_lock(&fe->mu);
    if ((rc = fault_dead_locked(fe, "open", path)) == 0) {
        if (flags == ENV_READ) {
            /* A file written through this env: an fsync through any of its
             * descriptors makes all of it durable, as the kernel does. */
            if ((rc = env_open(fe->base, path, flags, &inner)) == 0 &&
                (node = node_find(fe, path)) != NULL)
                node->refs++;
        } else
            rc = fault_open_write_locked(fe, path, flags, &inner, &node);
    }
    pthread_mutex_unlock(&fe->mu);
    if (rc != 0)
        return rc;
    return fault_file_wrap(fe, inner, node, out);
}

static int fault_read_at(env_file *ef, uint64_t off, void *buf, size_t len, size_t *nread)
{
    fault_file *f = (fault_file *)ef;
    int rc;

    *nread = 0;
    if ((rc = fault_dead(fault_of(ef->env), "read", ef->path)) != 0)
        return rc;
    return env_read_at(f->inner, off, buf, len, nread);
}

static int fault_marks_grow(fault_node *n)
{
    size_t cap = n->cap_marks ? 2 * n->cap_marks : 16;
    uint64_t *m = realloc(n->marks, cap * sizeof(*m));

    if (m == NULL)
        return -1;
    n->marks = m;
    n->cap_marks = cap;
    return 0;
}

static int fault_append(env_file *ef, const void *data, size_t len)
{
    fault_file *f = (fault_file *)ef;
    fault_env *fe = fault_of(ef->env);
    int rc, err = 0;

    pthread_mutex_lock(&fe->mu);
    if ((rc = fault_dead_locked(fe, "append", ef->path)) == 0) {
        fe->appends++;
        if (fe->fail_append_at > 0 && fe->appends >= fe->fail_append_at)
            err = fe->fail_append_err;
    }
    pthread_mutex_unlock(&fe->mu);
    if (rc != 0)
        return rc;
    if (err != 0)
        return status_errno(err, "append (injected fault)", ef->path);
    if ((rc = env_append(f->inner, data, len)) != 0)
        return rc;
    pthread_mutex_lock(&fe->mu);
    if (f->node) {
        fault_node *n = f->node;

        n->len += len;
        /* Remembered for env_fault_crash_copy (a mark lost to ENOMEM
         * only merges two appends into one). */
        if (n->n_marks < n->cap_marks || fault_marks_grow(n) == 0)
            n->marks[n->n_marks++] = n->len;
    }
    pthread_mutex_unlock(&fe->mu);
    return 0;
}

/* Syncs made by this thread through any fault env. */
static _Thread_local long thread_syncs;

/* Counts a sync (file or directory); nonzero when it must fail. */
static int fault_sync_check_locked(fault_env *fe, const char *op, const char *path)
{
    int rc;

    if ((rc = fault_dead_locked(fe, op, path)) != 0)
        return rc;
    fe->syncs++;
    thread_syncs++;
    if (fe->fail_sync_at > 0 && fe->syncs >= fe->fail_sync_at)
        return status_errno(EIO, "sync (injected fault)", path);
    return 0;
}

static int fault_sync(env_file *ef)
{
    fault_file *f = (fault_file *)ef;
    fault_env *fe = fault_of(ef->env);
    int rc;

    pthread_mutex_lock(&fe->mu);
    rc = fault_sync_check_locked(fe, "sync", ef->path);
    pthread_mutex_unlock(&fe->mu);
    if (rc != 0 || (rc = env_sync(f->inner)) != 0)
        return rc;
    pthread_mutex_lock(&fe->mu);
    if (f->node) {
        f->node->synced = f->node->len;
        f->node->n_marks = 0;
    }
    pthread_mutex_unlock(&fe->mu);
    return 0;
}

static int fault_truncate(env_file *ef, uint64_t len)
{
    fault_file *f = (fault_file *)ef;
    fault_env *fe = fault_of(ef->env);
    int rc;

    if ((rc = fault_dead(fe, "truncate", ef->path)) != 0)
        return rc;
    if ((rc = env_truncate(f->inner, len)) != 0)
        return rc;
    pthread_mutex_lock(&fe->mu);
    if (f->node) {
        f->node->len = len;
        if (f->node->synced > len)
            f->node->synced = len;
        node_marks_cut(f->node);
    }
    pthread_mutex_unlock(&fe->mu);
    return 0;
}

static int fault_size(env_file *ef, uint64_t *out)
{
    fault_file *f = (fault_file *)ef;
    int rc;

    *out = 0;
    if ((rc = fault_dead(fault_of(ef->env), "stat", ef->path)) != 0)
        return rc;
    return env_file_size(f->inner, out);
}

/* Works after a crash too: the descriptor must be released. */
static int fault_close(env_file *ef)
{
    fault_file *f = (fault_file *)ef;
    fault_env *fe = fault_of(ef->env);
    int rc = env_close(f->inner);

    pthread_mutex_lock(&fe->mu);
    node_unref(fe, f->node);
    pthread_mutex_unlock(&fe->mu);
    free(ef->path);
    free(f);
    return rc;
}

/* ---- names: remove, rename, sync_dir ---- */

/* Removes are durable at once: the node simply loses its name. */
static int fault_remove(env *e, const char *path)
{
    fault_env *fe = fault_of(e);
    fault_node *n;
    int rc;

    pthread_mutex_lock(&fe->mu);
    if ((rc = fault_dead_locked(fe, "remove", path)) == 0 &&
        (rc = env_remove(fe->base, path)) == 0 && (n = node_find(fe, path)) != NULL)
        node_unname(fe, n);
    pthread_mutex_unlock(&fe->mu);
    return rc;
}

/* Keeps the file at `to` reachable as dir(to)/.fault-<n> until the
 * rename that replaces it is durable or undone. */
static int fault_backup_locked(fault_env *fe, const char *to, char **out)
{
    const char *slash = strrchr(to, '/');
    int dl = slash ? (int)(slash - to + 1) : 0;
    size_t cap = strlen(to) + 32;
    char *b = malloc(cap);

    *out = NULL;
    if (b == NULL)
        return status_err(STOAT_ENOMEM, "rename to %s: out of memory", to);
    for (;;) {
        snprintf(b, cap, "%.*s.fault-%lu", dl, to, ++fe->backup_seq);
        if (link(to, b) == 0)
            break;
        if (errno != EEXIST) {
            int rc = status_errno(errno, "env_fault: link for backup of", to);

            free(b);
            return rc;
        }
    }
    *out = b;
    return 0;
}

void fault_pending_free(fault_env *fe, fault_pending *r)
{
    node_unref(fe, r->moved);
    node_unref(fe, r->replaced);
    free(r->from);
    free(r->to);
    free(r->backup);
    free(r);
}

/* Finds or adopts the nodes of from and to, and backs up to. */
static int fault_pending_prepare_locked(fault_env *fe, fault_pending *r)
{
    int rc, exists;

    if ((r->moved = node_find(fe, r->from)) == NULL &&
        (rc = node_adopt(fe, r->from, &r->moved)) != 0)
        return rc;
    r->moved->refs++;
    if ((r->replaced = node_find(fe, r->to)) == NULL) {
        if ((exists = env_exists(fe->base, r->to)) < 0)
            return exists;
        if (exists && (rc = node_adopt(fe, r->to, &r->replaced)) != 0)
            return rc;
    }
    if (r->replaced == NULL)
        return 0;
    r->replaced->refs++;
    return fault_backup_locked(fe, r->to, &r->backup);
}

static int fault_rename_locked(fault_env *fe, const char *from, const char *to)
{
    fault_pending *r = calloc(1, sizeof(*r));
    char *name = NULL;
    int rc;

    if (r == NULL || (r->from = strdup(from)) == NULL || (r->to = strdup(to)) == NULL ||
        (name = strdup(to)) == NULL) {
        rc = status_err(STOAT_ENOMEM, "rename %s: out of memory", from);
        goto fail;
    }
    if ((rc = fault_pending_prepare_locked(fe, r)) != 0)
        goto fail;
    if ((rc = env_rename(fe->base, from, to)) != 0)
        goto fail;
    if (r->replaced)
        node_unname(fe, r->replaced);
    r->from_durable = r->moved->durable;
    r->seq = ++fe->dir_seq;
    free(r->moved->path);
    r->moved->path = name;
    r->moved->durable = 0;
    r->next = fe->renames;
    fe->renames = r;
    return 0;
fail:
    if (r && r->backup)
        (void)env_remove(fe->base, r->backup);
    free(name);
    if (r)
        fault_pending_free(fe, r);
    return rc;
}

static int fault_rename(env *e, const char *from, const char *to)
{
    fault_env *fe = fault_of(e);
    int rc;

    pthread_mutex_lock(&fe->mu);
    if ((rc = fault_dead_locked(fe, "rename", from)) == 0) {
        if (strcmp(from, to) == 0)
            rc = env_rename(fe->base, from, to);
        else
            rc = fault_rename_locked(fe, from, to);
    }
    pthread_mutex_unlock(&fe->mu);
    return rc;
}

/* Names in dir become durable, and so do renames into dir: their backups
 * are no longer needed. */
static void fault_dir_durable_locked(fault_env *fe, const char *dir)
{
    fault_pending **pp = &fe->renames;

    for (fault_node *n = fe->nodes; n; n = n->next)
        if (n->path && path_in_dir(n->path, dir))
            n->durable = 1;
    while (*pp) {
        fault_pending *r = *pp;

        if (!path_in_dir(r->to, dir)) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        if (r->backup)
            (void)env_remove(fe->base, r->backup);
        fault_pending_free(fe, r);
    }
}

static int fault_sync_dir(env *e, const char *dir)
{
    fault_env *fe = fault_of(e);
    int rc;

    pthread_mutex_lock(&fe->mu);
    if ((rc = fault_sync_check_locked(fe, "sync directory", dir)) == 0 &&
        (rc = env_sync_dir(fe->base, dir)) == 0)
        fault_dir_durable_locked(fe, dir);
    pthread_mutex_unlock(&fe->mu);
    return rc;
}

/* ---- pass-through calls ---- */

static int fault_mkdir(env *e, const char *path)
{
    fault_env *fe = fault_of(e);
    int rc;

    if ((rc = fault_dead(fe, "mkdir", path)) != 0)
        return rc;
    return env_mkdir(fe->base, path);
}

static int fault_exists(env *e, const char *path)
{
    fault_env *fe = fault_of(e);
    int rc;

    if ((rc = fault_dead(fe, "stat", path)) != 0)
        return rc;
    return env_exists(fe->base, path);
}

/* Hides the ".fault-<n>" backups from the engine. */
static int fault_list(env *e, const char *dir, char ***names, size_t *n)
{
    fault_env *fe = fault_of(e);
    size_t kept = 0;
    int rc;

    *names = NULL;
    *n = 0;
    if ((rc = fault_dead(fe, "list", dir)) != 0 ||
        (rc = env_list(fe->base, dir, names, n)) != 0)
        return rc;
    for (size_t i = 0; i < *n; i++) {
        if (strncmp((*names)[i], ".fault-", 7) == 0)
            free((*names)[i]);
        else
            (*names)[kept++] = (*names)[i];
    }
    *n = kept;
    return 0;
}

static int fault_lock(env *e, const char *path, int exclusive, struct env_lock **out)
{
    fault_env *fe = fault_of(e);
    struct env_lock *inner;
    fault_flock *l;
    int rc;

    *out = NULL;
    if ((rc = fault_dead(fe, "lock", path)) != 0 ||
        (rc = env_lock(fe->base, path, exclusive, &inner)) != 0)
        return rc;
    if ((l = malloc(sizeof(*l))) == NULL) {
        env_unlock(fe->base, inner);
        return status_err(STOAT_ENOMEM, "lock %s: out of memory", path);
    }
    l->base = fe->base;
    l->inner = inner;
    *out = (struct env_lock *)l;
    return 0;
}

/* Works after a crash too: a dead process's locks are released. */
static void fault_unlock(struct env_lock *el)
{
    fault_flock *l = (fault_flock *)el;

    env_unlock(l->base, l->inner);
    free(l);
}

static const struct env_ops fault_ops = {
    .open = fault_open,
    .read_at = fault_read_at,
    .append = fault_append,
    .sync = fault_sync,
    .truncate = fault_truncate,
    .size = fault_size,
    .close = fault_close,
    .remove = fault_remove,
    .rename = fault_rename,
    .sync_dir = fault_sync_dir,
    .mkdir = fault_mkdir,
    .exists = fault_exists,
    .list = fault_list,
    .lock = fault_lock,
    .unlock = fault_unlock,
};

/* ---- construction and knobs ---- */

env *env_fault_new(env *base)
{
    fault_env *fe = calloc(1, sizeof(*fe));

    if (fe == NULL)
        return NULL;
    if (pthread_mutex_init(&fe->mu, NULL) != 0) {
        free(fe);
        return NULL;
    }
    fe->iface.ops = &fault_ops;
    fe->base = base;
    return &fe->iface;
}

/* Pending renames are kept as they are (their backups removed). Files
 * must be closed first. */
void env_fault_free(env *e)
{
    fault_env *fe;

    if (e == NULL)
        return;
    fe = fault_of(e);
    while (fe->renames) {
        fault_pending *r = fe->renames;

        fe->renames = r->next;
        if (r->backup)
            (void)env_remove(fe->base, r->backup);
        fault_pending_free(fe, r);
    }
    while (fe->nodes) {
        fault_node *n = fe->nodes;

        fe->nodes = n->next;
        free(n->path);
        free(n->marks);
        free(n);
    }
    pthread_mutex_destroy(&fe->mu);
    free(fe);
}

void env_fault_fail_append(env *e, long n, int err)
{
    fault_env *fe = fault_of(e);

    pthread_mutex_lock(&fe->mu);
    fe->fail_append_at = n > 0 ? fe->appends + n : 0;
    fe->fail_append_err = err;
    pthread_mutex_unlock(&fe->mu);
}

void env_fault_fail_sync(env *e, long n)
{
    fault_env *fe = fault_of(e);

    pthread_mutex_lock(&fe->mu);
    fe->fail_sync_at = n > 0 ? fe->syncs + n : 0;
    pthread_mutex_unlock(&fe->mu);
}

long env_fault_appends(env *e)
{
    fault_env *fe = fault_of(e);
    long n;

    pthread_mutex_lock(&fe->mu);
    n = fe->appends;
    pthread_mutex_unlock(&fe->mu);
    return n;
}

long env_fault_syncs(env *e)
{
    fault_env *fe = fault_of(e);
    long n;

    pthread_mutex_lock(&fe->mu);
    n = fe->syncs;
    pthread_mutex_unlock(&fe->mu);
    return n;
}

long env_fault_thread_syncs(void)
{
    return thread_syncs;
}

void env_fault_crash(env *e)
{
    fault_env *fe = fault_of(e);

    pthread_mutex_lock(&fe->mu);
    fe->crashed = 1;
    pthread_mutex_unlock(&fe->mu);
}
