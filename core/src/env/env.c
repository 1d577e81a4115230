/*
 * env.c - helpers every env shares, written only in terms of env_* calls.
 *
 * Owns: exact reads (a short read is corruption), whole-file reads, the
 * atomic replace of a small file (tmp + sync + rename + sync of the
 * directory), path joining and freeing env_list results. Nothing here
 * knows which env it runs on, so the same code is exercised under
 * env_fault in the crash tests.
 *
 * Threading: no state of its own; each helper is as thread-safe as the
 * env calls it makes.
 */
#include "env/env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"

int env_read_exact(env_file *f, uint64_t off, void *buf, size_t len)
{
    size_t got = 0;
    int rc;

    if ((rc = env_read_at(f, off, buf, len, &got)) != 0)
        return rc;
    if (got < len)
        return status_err(STOAT_ECORRUPT,
                          "%s: truncated: wanted %zu bytes at offset %llu, got %zu",
                          f->path, len, (unsigned long long)off, got);
    return 0;
}

void env_list_free(char **names, size_t n)
{
    if (names == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The bytes are followed by a NUL that *len does not count, so a text
 * file can be used as a C string. */
int env_read_file(env_file *f, char **data, size_t *len)
{
    char *p = NULL;
    uint64_t size;
    int rc;

    *data = NULL;
    *len = 0;
    if ((rc = env_file_size(f, &size)) != 0)
        return rc;
    if (size >= SIZE_MAX)
        return status_err(STOAT_ENOMEM, "read %s: %llu bytes do not fit in memory", f->path,
                          (unsigned long long)size);
    if ((p = malloc((size_t)size + 1)) == NULL)
        return status_err(STOAT_ENOMEM, "read %s: out of memory", f->path);
    if ((rc = env_read_exact(f, 0, p, (size_t)size)) != 0) {
        free(p);
        return rc;
    }
    p[size] = '\0';
    *data = p;
    *len = (size_t)size;
    return 0;
}

int env_read_all(env *e, const char *path, char **data, size_t *len)
{
    env_file *f = NULL;
    int rc;

    *data = NULL;
    *len = 0;
    if ((rc = env_open(e, path, ENV_READ, &f)) != 0 || (rc = env_read_file(f, data, len)) != 0) {
        env_close(f);
        return rc;
    }
    if ((rc = env_close(f)) != 0) {
        free(*data);
        *data = NULL;
        *len = 0;
    }
    return rc;
}

/* Best-effort removal of the tmp file that keeps the first error's
 * message, which is the one the caller needs. */
static void env_remove_quietly(env *e, const char *path)
{
    char msg[STATUS_MSG_MAX];

    snprintf(msg, sizeof(msg), "%s", status_msg());
    (void)env_remove(e, path);
    status_set_msg(msg);
}

static char *env_tmp_path(const char *path)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + sizeof(".tmp"));

    if (tmp != NULL) {
        memcpy(tmp, path, n);
        memcpy(tmp + n, ".tmp", sizeof(".tmp"));
    }
    return tmp;
}

/*
 * After a crash, path holds either its old or its new content, never a
 * mix: the new bytes are durable in path.tmp before the rename, and the
 * rename is durable once dir is synced. A failure leaves path untouched
 * and removes path.tmp.
 */
int env_write_atomic_with(env *e, const char *dir, const char *path,
                          int (*write)(env_file *f, void *arg), void *arg)
{
    env_file *f = NULL;
    char *tmp;
    int rc, renamed = 0;

    if ((tmp = env_tmp_path(path)) == NULL)
        return status_err(STOAT_ENOMEM, "write %s: out of memory", path);
    if ((rc = env_open(e, tmp, ENV_WRITE | ENV_TRUNC, &f)) != 0)
        goto fail;
    if ((rc = write(f, arg)) != 0 || (rc = env_sync(f)) != 0)
        goto fail;
    rc = env_close(f);
    f = NULL;
    if (rc != 0 || (rc = env_rename(e, tmp, path)) != 0)
        goto fail;
    renamed = 1;
    if ((rc = env_sync_dir(e, dir)) != 0)
        goto fail;
    free(tmp);
    return 0;
fail:
    env_close(f);
    if (!renamed)
        env_remove_quietly(e, tmp);
    free(tmp);
    return rc;
}

struct env_bytes {
    const void *data;
    size_t len;
};

static int env_append_bytes(env_file *f, void *arg)
{
    const struct env_bytes *b = arg;

    return env_append(f, b->data, b->len);
}

int env_write_atomic(env *e, const char *dir, const char *path, const void *data, size_t len)
{
    struct env_bytes b = {data, len};

    return env_write_atomic_with(e, dir, path, env_append_bytes, &b);
}

char *env_join(const char *dir, const char *name)
{
    size_t dn = strlen(dir), nn = strlen(name);
    int slash = dn > 0 && dir[dn - 1] != '/';
    char *p = malloc(dn + (size_t)slash + nn + 1);

    if (p == NULL)
        return NULL;
    memcpy(p, dir, dn);
    if (slash)
        p[dn] = '/';
    memcpy(p + dn + (size_t)slash, name, nn + 1);
    return p;
}
