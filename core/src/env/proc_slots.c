/*
 * proc_slots.c - liveness slots and the background owner's election
 * (proc_slots.h).
 *
 * Owns: a descriptor of SHMLOCK (its own open file description, so that
 * F_OFD_GETLK reports the other handles' locks, this one's included,
 * as they never conflict with their own description), the lock on its
 * slot's byte and, while it owns the background work, on the election
 * byte. The descriptor is registered with shm.c's fork hook.
 *
 * Invariant: a slot's value is written only by the holder of its byte,
 * or by a scanner that holds the byte to reset a dead slot; so a claimer
 * (which takes the byte first) never races a reset.
 */
#include "env/proc_slots.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "base/status.h"

struct proc_slots {
    shm_region *region;
    proc_slot *slots;
    int fd;              /* SHMLOCK; -1 in a forked child */
    int index;           /* the claimed slot, -1 if none */
    int owner;           /* 1 while holding the election byte */
    unsigned long fork_gen;
};

void proc_slots_init(void *slots)
{
    proc_slot *s = slots;

    for (unsigned i = 0; i < SHM_SLOTS; i++) {
        atomic_store(&s[i].value, PROC_SLOT_NONE);
        atomic_store(&s[i].wal, PROC_SLOT_NONE);
        atomic_store(&s[i].pid, 0);
        atomic_store(&s[i].claims, 0);
    }
}

static int slots_check(const proc_slots *s)
{
    if (s->fork_gen != shm_fork_generation() || s->fd < 0)
        return status_err(STOAT_EFORKED,
                          "liveness slots used in a forked process: open them again there");
    return 0;
}

static int ofd_lock(int fd, int cmd, struct flock *fl, short type, off_t byte)
{
    memset(fl, 0, sizeof(*fl));
    fl->l_type = type;
    fl->l_whence = SEEK_SET;
    fl->l_start = byte;
    fl->l_len = 1;
    if (fcntl(fd, cmd, fl) == 0)
        return 0;
    return errno == EACCES ? EAGAIN : errno;
}

static int ofd_set(int fd, short type, off_t byte)
{
    struct flock fl;

    return ofd_lock(fd, F_OFD_SETLK, &fl, type, byte);
}

int proc_slots_open(shm_region *r, proc_slots **out)
{
    proc_slots *s;
    int rc, err;

    *out = NULL;
    if ((rc = shm_check(r)) != 0)
        return rc;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return status_err(STOAT_ENOMEM, "liveness slots: out of memory");
    /* Its own open file description: see the top of this file. */
    if ((err = shm_fd_open(shm_lock_path(r), O_RDWR | O_NOFOLLOW, 0, &s->fd)) != 0) {
        free(s);
        return status_errno(err, "open lock file", shm_lock_path(r));
    }
    s->region = r;
    s->slots = (proc_slot *)((char *)shm_base(r) + SHM_OFF_SLOTS);
    s->index = -1;
    s->fork_gen = shm_fork_generation();
    *out = s;
    return 0;
}

int proc_slots_claim(proc_slots *s)
{
    unsigned start = (unsigned)getpid() % SHM_SLOTS;
    int rc, err;

    if ((rc = slots_check(s)) != 0)
        return rc;
    if (s->index >= 0)
        return 0;
    for (unsigned k = 0; k < SHM_SLOTS; k++) {
        unsigned i = (start + k) % SHM_SLOTS;

        err = ofd_set(s->fd, F_WRLCK, SHM_LOCK_BYTE_SLOT0 + (off_t)i);
        if (err == EAGAIN)
            continue;
        if (err != 0)
            return status_errno(err, "lock slot", SHM_LOCK_FILE);
        /* Whoever held it before is gone: its values mean nothing. */
        atomic_store(&s->slots[i].value, PROC_SLOT_NONE);
        atomic_store(&s->slots[i].wal, PROC_SLOT_NONE);
        atomic_store(&s->slots[i].pid, (uint32_t)getpid());
        atomic_fetch_add(&s->slots[i].claims, 1);
        s->index = (int)i;
        return 0;
    }
    return status_err(STOAT_EBUSY, "all %u liveness slots are held by live handles",
                      (unsigned)SHM_SLOTS);
}

int proc_slots_index(const proc_slots *s)
{
    return s->index;
}

static int slots_publish(proc_slots *s, size_t field, uint64_t v)
{
    int rc;

    if ((rc = slots_check(s)) != 0)
        return rc;
    if (s->index < 0)
        return status_err(STOAT_EINVAL, "liveness slots: publish without a claimed slot");
    atomic_store((_Atomic uint64_t *)((char *)&s->slots[s->index] + field), v);
    return 0;
}

int proc_slots_publish(proc_slots *s, uint64_t v)
{
    return slots_publish(s, offsetof(proc_slot, value), v);
}

int proc_slots_publish_wal(proc_slots *s, uint64_t wal)
{
    return slots_publish(s, offsetof(proc_slot, wal), wal);
}

/* Resets dead slot i if nobody claims it meanwhile; 1 when reset. */
static int slots_reclaim(proc_slots *s, unsigned i)
{
    if (ofd_set(s->fd, F_WRLCK, SHM_LOCK_BYTE_SLOT0 + (off_t)i) != 0)
        return 0;
    atomic_store(&s->slots[i].value, PROC_SLOT_NONE);
    atomic_store(&s->slots[i].wal, PROC_SLOT_NONE);
    atomic_store(&s->slots[i].pid, 0);
    ofd_set(s->fd, F_UNLCK, SHM_LOCK_BYTE_SLOT0 + (off_t)i);
    return 1;
}

int proc_slots_scan(proc_slots *s, proc_slots_scan_result *res)
{
    struct flock fl;
    int rc, err;

    res->min = PROC_SLOT_NONE;
    res->wal_min = PROC_SLOT_NONE;
    res->live = 0;
    res->reclaimed = 0;
    if ((rc = slots_check(s)) != 0)
        return rc;
    for (unsigned i = 0; i < SHM_SLOTS; i++) {
        uint64_t v, w;

        if ((int)i != s->index) {
            err = ofd_lock(s->fd, F_OFD_GETLK, &fl, F_WRLCK, SHM_LOCK_BYTE_SLOT0 + (off_t)i);
            if (err != 0)
                return status_errno(err, "test slot lock", SHM_LOCK_FILE);
            if (fl.l_type == F_UNLCK) {
                if ((atomic_load(&s->slots[i].value) != PROC_SLOT_NONE ||
                     atomic_load(&s->slots[i].wal) != PROC_SLOT_NONE ||
                     atomic_load(&s->slots[i].pid) != 0) && slots_reclaim(s, i))
                    res->reclaimed++;
                continue;
            }
        }
        /* Read after seeing the lock held: a value published before the
         * scan by a live holder is never missed (publish is seq_cst). */
        v = atomic_load(&s->slots[i].value);
        w = atomic_load(&s->slots[i].wal);
        res->live++;
        if (v < res->min)
            res->min = v;
        if (w < res->wal_min)
            res->wal_min = w;
    }
    return 0;
}

int proc_slots_elect(proc_slots *s, int *owner)
{
    int rc, err;

    *owner = 0;
    if ((rc = slots_check(s)) != 0)
        return rc;
    if (!s->owner) {
        err = ofd_set(s->fd, F_WRLCK, SHM_LOCK_BYTE_ELECTION);
        if (err != 0 && err != EAGAIN)
            return status_errno(err, "lock election byte", SHM_LOCK_FILE);
        s->owner = err == 0;
    }
    *owner = s->owner;
    return 0;
}

int proc_slots_resign(proc_slots *s)
{
    int rc;

    if ((rc = slots_check(s)) != 0)
        return rc;
    if (s->owner) {
        ofd_set(s->fd, F_UNLCK, SHM_LOCK_BYTE_ELECTION);
        s->owner = 0;
    }
    return 0;
}

void proc_slots_close(proc_slots *s)
{
    if (s == NULL)
        return;
    if (s->fork_gen == shm_fork_generation() && s->fd >= 0) {
        if (s->index >= 0) {
            atomic_store(&s->slots[s->index].value, PROC_SLOT_NONE);
            atomic_store(&s->slots[s->index].wal, PROC_SLOT_NONE);
            atomic_store(&s->slots[s->index].pid, 0);
        }
        shm_fd_close(&s->fd); /* drops the slot and election bytes */
    }
    free(s);
}
