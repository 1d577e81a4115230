/*
 * env_fault_model.c - the fault env's model of what a power loss keeps:
 * files as nodes with a synced length and a durable name, renames that a
 * power loss undoes, and env_fault_drop_unsynced, which rewrites the real
 * files to the model. The rules are in env_fault.c's opening comment.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/status.h"
#include "support/env_fault_int.h"

fault_env *fault_of(env *e)
{
    return (fault_env *)e;
}

int fault_dead_locked(fault_env *fe, const char *op, const char *path)
{
    if (fe->crashed)
        return status_err(STOAT_EIO, "%s %s: simulated crash", op, path);
    return 0;
}

int fault_dead(fault_env *fe, const char *op, const char *path)
{
    int rc;

    pthread_mutex_lock(&fe->mu);
    rc = fault_dead_locked(fe, op, path);
    pthread_mutex_unlock(&fe->mu);
    return rc;
}

/* ---- the model: nodes and their names ---- */

fault_node *node_find(fault_env *fe, const char *path)
{
    for (fault_node *n = fe->nodes; n; n = n->next)
        if (n->path && strcmp(n->path, path) == 0)
            return n;
    return NULL;
}

/* A new node named path, holding the name's reference. */
fault_node *node_new(fault_env *fe, const char *path, uint64_t len, int durable)
{
    fault_node *n = calloc(1, sizeof(*n));

    if (n == NULL || (n->path = strdup(path)) == NULL) {
        free(n);
        return NULL;
    }
    n->len = n->synced = len;
    n->durable = durable;
    n->create_seq = durable ? 0 : ++fe->dir_seq;
    n->refs = 1;
    n->next = fe->nodes;
    fe->nodes = n;
    return n;
}

void node_unref(fault_env *fe, fault_node *n)
{
    fault_node **pp;

    if (n == NULL || --n->refs > 0)
        return;
    for (pp = &fe->nodes; *pp != n; pp = &(*pp)->next)
        ;
    *pp = n->next;
    free(n->path);
    free(n->marks);
    free(n);
}

/* Forgets the appends a truncate cut off. */
void node_marks_cut(fault_node *n)
{
    while (n->n_marks > 0 && n->marks[n->n_marks - 1] > n->len)
        n->n_marks--;
    if (n->synced == n->len)
        n->n_marks = 0;
}

/* The node loses its name (removed or replaced) and the name's ref. */
void node_unname(fault_env *fe, fault_node *n)
{
    free(n->path);
    n->path = NULL;
    node_unref(fe, n);
}

/* Gives an unnamed node back a name (taking ownership of path); its
 * durability is what it was when it lost the name. */
static void node_name(fault_node *n, char *path)
{
    n->path = path;
    n->refs++;
}

/* Starts tracking a file that existed before this env saw it. */
int node_adopt(fault_env *fe, const char *path, fault_node **out)
{
    env_file *f = NULL;
    uint64_t size = 0;
    int rc;

    *out = NULL;
    if ((rc = env_open(fe->base, path, ENV_READ, &f)) != 0)
        return rc;
    rc = env_file_size(f, &size);
    env_close(f);
    if (rc != 0)
        return rc;
    if ((*out = node_new(fe, path, size, 1)) == NULL)
        return status_err(STOAT_ENOMEM, "env_fault: out of memory tracking %s", path);
    return 0;
}

/* 1 if path's directory part is dir ("a/b" is in "a" and in "a/"). */
int path_in_dir(const char *path, const char *dir)
{
    const char *slash = strrchr(path, '/');
    size_t dl = strlen(dir);

    while (dl > 0 && dir[dl - 1] == '/')
        dl--;
    if (slash == NULL)
        return strcmp(dir, ".") == 0;
    return (size_t)(slash - path) == dl && memcmp(path, dir, dl) == 0;
}

/* ---- power loss ---- */

/* Moves the file back to `from` and the replaced file back to `to`,
 * unless a later remove or rename already changed those names. */
static int fault_undo_rename_locked(fault_env *fe, fault_pending *r)
{
    fault_node *at_to = node_find(fe, r->to), *at_from;
    int rc = 0, rc2;

    if (at_to == r->moved) {
        if ((rc = env_rename(fe->base, r->to, r->from)) == 0) {
            if ((at_from = node_find(fe, r->from)) != NULL)
                node_unname(fe, at_from);
            free(r->moved->path);
            r->moved->path = r->from;
            r->moved->durable = r->from_durable;
            r->from = NULL;
            at_to = NULL;
        }
    }
    if (r->backup == NULL)
        return rc;
    if (at_to == NULL && (rc2 = env_rename(fe->base, r->backup, r->to)) == 0) {
        node_name(r->replaced, r->to);
        r->to = NULL;
    } else {
        rc2 = env_remove(fe->base, r->backup);
    }
    return rc ? rc : rc2;
}

/* Cuts a durable file back to its synced length. */
static int fault_cut_locked(fault_env *fe, fault_node *n)
{
    env_file *f = NULL;
    uint64_t size;
    int rc;

    if ((rc = env_exists(fe->base, n->path)) <= 0) {
        node_unname(fe, n); /* gone behind our back: forget it */
        return rc;
    }
    if ((rc = env_open(fe->base, n->path, ENV_WRITE, &f)) != 0)
        return rc;
    if ((rc = env_file_size(f, &size)) == 0 && size > n->synced)
        rc = env_truncate(f, n->synced);
    if (rc == 0 && size < n->synced)
        n->synced = size;
    n->len = n->synced;
    n->n_marks = 0;
    if (env_close(f) != 0 && rc == 0)
        rc = STOAT_EIO;
    return rc;
}

int env_fault_drop_unsynced(env *e)
{
    fault_env *fe = fault_of(e);
    fault_node *n, *next;
    int rc = 0, rc2;

    pthread_mutex_lock(&fe->mu);
    while (fe->renames) {
        fault_pending *r = fe->renames;

        fe->renames = r->next;
        if ((rc2 = fault_undo_rename_locked(fe, r)) != 0 && rc == 0)
            rc = rc2;
        fault_pending_free(fe, r);
    }
    for (n = fe->nodes; n; n = next) {
        next = n->next; /* n may be freed below, never next */
        if (n->path == NULL)
            continue;
        if (!n->durable) {
            rc2 = env_remove(fe->base, n->path);
            if (rc2 == STOAT_ENOTFOUND)
                rc2 = 0;
            node_unname(fe, n);
        } else {
            rc2 = fault_cut_locked(fe, n);
        }
        if (rc2 != 0 && rc == 0)
            rc = rc2;
    }
    fe->crashed = 0;
    fe->fail_append_at = fe->fail_sync_at = 0;
    pthread_mutex_unlock(&fe->mu);
    return rc;
}
