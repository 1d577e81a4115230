/*
 * env_fault_int.h - what the fault env's two files share (test support):
 * the model's structs, and the functions one file calls in the other.
 *
 *   env_fault_model.c  the model of what is durable: nodes and their
 *                      names, and power loss (env_fault_drop_unsynced)
 *   env_fault_state.c  power-loss states with reordering, torn writes and
 *                      lost directory changes (env_fault_crash_copy)
 *   env_fault.c        the env: files, names, pass-through calls, knobs
 *
 * The model and its rules are in env_fault.c's opening comment.
 */
#ifndef STOAT_ENV_FAULT_INT_H
#define STOAT_ENV_FAULT_INT_H

#include <pthread.h>
#include <stdint.h>

#include "support/env_fault.h"

typedef struct fault_node {
    struct fault_node *next;   /* fault_env.nodes */
    char *path;                /* current name; NULL once removed or replaced */
    uint64_t len;              /* bytes in the file now */
    uint64_t synced;           /* bytes that survive power loss */
    int durable;               /* the name `path` survives power loss */
    int refs;                  /* the name, open files, rename records */
    uint64_t create_seq;       /* its creation among directory changes (0: durable) */
    uint64_t *marks;           /* end offsets of the appends since the last sync */
    size_t n_marks, cap_marks;
} fault_node;

/* A rename not yet made durable by a sync of the target's directory. */
typedef struct fault_pending {
    struct fault_pending *next; /* older records follow */
    char *from, *to;
    char *backup;              /* hard link of the replaced file, or NULL */
    fault_node *moved;         /* the file renamed (one ref) */
    fault_node *replaced;      /* the file it replaced (one ref), or NULL */
    int from_durable;          /* moved's name `from` was durable */
    uint64_t seq;              /* its place among directory changes */
} fault_pending;

typedef struct fault_env {
    env iface;                 /* first: an env * is a fault_env * */
    env *base;
    pthread_mutex_t mu;
    fault_node *nodes;
    fault_pending *renames;    /* newest first */
    int crashed;
    long appends, syncs;       /* calls seen while not crashed */
    long fail_append_at;       /* 0: off; else the append count that fails */
    int fail_append_err;
    long fail_sync_at;
    unsigned long backup_seq;
    uint64_t dir_seq;          /* creations and renames so far (their order) */
} fault_env;

typedef struct fault_file {
    env_file hdr;              /* first: an env_file * is a fault_file * */
    env_file *inner;
    fault_node *node;          /* NULL for files opened ENV_READ */
} fault_file;

typedef struct fault_flock {
    env *base;
    struct env_lock *inner;
} fault_flock;

void fault_pending_free(fault_env *fe, fault_pending *r);
int fault_dead(fault_env *fe, const char *op, const char *path);
int fault_dead_locked(fault_env *fe, const char *op, const char *path);
fault_env *fault_of(env *e);
int node_adopt(fault_env *fe, const char *path, fault_node **out);
fault_node *node_find(fault_env *fe, const char *path);
fault_node *node_new(fault_env *fe, const char *path, uint64_t len, int durable);
void node_unname(fault_env *fe, fault_node *n);
void node_unref(fault_env *fe, fault_node *n);
int path_in_dir(const char *path, const char *dir);
void node_marks_cut(fault_node *n);

#endif
