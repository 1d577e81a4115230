/*
 * shared_open.c - the multi-process mode's open and close: the first
 * process to attach recovers the directory and publishes the result, a
 * later one joins (the MANIFEST, then the WALs up to the published
 * head); and the keeper thread of every process: the owner's election
 * and take-over, catch-up, the WAL sweep, the oldest snapshot of any
 * live process. The design and the lock order are in shared.c's opening
 * comment; shared_int.h lists what it calls in the other two files.
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "db/shared_int.h"
#include "db/snapshots.h"
#include "db/state.h"
#include "base/ikey.h"
#include "base/killpoint.h"
#include "base/status.h"
#include "env/filename.h"
#include "table/block_cache.h"

#define DB_SHARED_MAGIC 0x35485354414f5453ull    /* "STOATSH5" */
#define MP_KEEPER_MS 100

/* ---- open: the first process recovers, the others join ---- */

typedef struct mp_init_arg {
    stoat_db *db;
    db_recover_fn recover;
} mp_init_arg;

/* The first process to attach: recover as a restart would, publish. */
static int mp_init(void *base, uint64_t size, void *arg)
{
    mp_init_arg *a = arg;
    stoat_db *db = a->db;
    db_shared_hdr *h = (db_shared_hdr *)((char *)base + SHM_OFF_FREE);
    int rc;

    (void)size;
    if ((rc = a->recover(db)) != 0)
        return rc;
    atomic_store(&h->last_version, atomic_load(&db->last_version));
    atomic_store(&h->wal_head, head_make(memtable_id(db->mem), WAL_HEADER_LEN));
    atomic_store(&h->wal_arena, db_mp_arena_size(db->opts.memtable_size));
    atomic_store(&h->memtable_size, db->opts.memtable_size);
    atomic_store(&h->next_file_id, db->next_file_id);
    if (db->vlog != NULL && vlog_active_fid(db->vlog) != 0) {
        mp_publish_vlog(h, vlog_active_fid(db->vlog),
                        vlog_file_size(db->vlog, vlog_active_fid(db->vlog)));
    }
    atomic_store(&h->manifest_gen, 1);
    atomic_store(&h->magic, DB_SHARED_MAGIC);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sealed WALs [log_number, active) as immutable memtables. */
static int mp_join_sealed(stoat_db *db, uint64_t log_number, uint64_t active, uint64_t last)
{
    char **names = NULL;
    size_t n = 0, n_ids = 0;
    uint64_t *ids;
    int rc;

    if ((rc = env_list(db->env, db->dir, &names, &n)) != 0)
        return rc;
    ids = calloc(n + 1, sizeof(*ids));
    for (size_t i = 0; ids != NULL && i < n; i++) {
        uint64_t id;
        if (filename_parse(names[i], FILENAME_EXT_WAL, 0, &id) && id >= log_number &&
            id < active)
            ids[n_ids++] = id;
    }
    env_list_free(names, n);
    if (ids == NULL)
        return status_err(STOAT_ENOMEM, "out of memory joining %s", db->dir);
    qsort(ids, n_ids, sizeof(*ids), cmp_u64);
    for (size_t i = 0; rc == 0 && i < n_ids; i++) {
        uint64_t mv;
        memtable *m;
        if ((rc = memtable_recover(db->env, db->dir, ids[i], db->opts.memtable_size, 1, &mv,
                                   &m)) != 0)
            break;
        if (mv > last) {
            /* Commits published while this process joined: the oracle
             * must know them. */
            iter *it = memtable_iter(m);
            for (iter_seek_first(it); rc == 0 && iter_valid(it); iter_next(it))
                if (ikey_version(iter_key(it)) > last)
                    rc = mp_note_key(db->mp, ikey_version(iter_key(it)), ikey_user(iter_key(it)));
            iter_free(it);
        }
        if (rc == 0)
            rc = db_push_imm_locked(db, m);
        if (rc != 0)
            memtable_unref(m);
    }
    free(ids);
    return rc;
}

static void mp_join_undo(stoat_db *db)
{
    for (size_t i = 0; i < db->n_imm; i++)
        memtable_unref(db->imm[i]);
    db->n_imm = 0;
    memtable_unref(db->mem);
    db->mem = NULL;
    if (db->current != NULL)
        lsm_view_unref(db->current);
    db->current = NULL;
    db->mp->n_key_refs = 0;
    buf_reset(&db->mp->keys);
}

/* A later process: the MANIFEST, the sealed WALs, the active WAL up to
 * its published length. A WAL the owner flushes and removes meanwhile
 * makes it start over. */
static int mp_join(stoat_db *db)
{
    db_mp *mp = db->mp;
    db_shared_hdr *h = mp->hdr;
    int rc = 0;

    for (int i = 0; i < MP_RETRIES; i++) {
        manifest_state st;
        manifest *man = NULL;
        uint64_t last, head, gen;

        if ((rc = mp_load_view(db, 0, &db->current, &st, &man, &gen)) != 0)
            return rc;
        manifest_close(man);
        atomic_store(&mp->manifest_gen, gen);
        mp->log_number = st.log_number;
        /* Published before the WALs are listed and gen checked below: a
         * WAL flushed after that check stays until this process moved on. */
        mp->note_id = st.log_number;
        mp_follow(db, st.log_number);
        last = atomic_load_explicit(&h->last_version, memory_order_acquire);
        head = atomic_load_explicit(&h->wal_head, memory_order_acquire);
        rc = mp_join_sealed(db, st.log_number, head_id(head), last);
        if (rc == 0)
            rc = memtable_attach(db->env, db->dir, head_id(head), atomic_load(&h->wal_arena),
                                 &db->mem);
        if (rc == 0) {
            mp_apply a = {mp, db->mem, 0, 0, last, 0};
            rc = memtable_replay_range(db->mem, WAL_HEADER_LEN, head_end(head), mp_apply_entry,
                                       &a, &mp->wal_pos);
        }
        /* A flush installed meanwhile may have removed a WAL before it was
         * listed, its tables not in the view loaded: start over. */
        if (rc == 0 && atomic_load(&h->manifest_gen) != gen)
            rc = STOAT_ENOTFOUND;
        if (rc == 0) {
            /* Every commit above `last` it met is noted: both cursors
             * start where the replay ended. */
            uint64_t max_v = last;
            for (size_t k = 0; k < mp->n_key_refs; k++)
                if (mp->key_refs[k].version > max_v)
                    max_v = mp->key_refs[k].version;
            mp->applied_max = mp->note_version = max_v;
            mp->note_pos = mp->wal_pos;
            mp->note_id = head_id(head);
            memtable_ref(db->mem);
            mp->wtail = db->mem;
            mp_follow(db, head_id(head));
            atomic_store(&mp->applied_head, head_make(mp->wal_id, mp->wal_pos));
            atomic_store(&db->last_version, last);
            pthread_mutex_lock(&db->mu);
            rc = mp_record_keys_locked(db);
            pthread_mutex_unlock(&db->mu);
            return rc;
        }
        mp_join_undo(db);
        if (rc != STOAT_ENOTFOUND)
            return rc;
        usleep(1000);
    }
    return status_err(STOAT_EBUSY, "%s: could not join: its WALs kept changing", db->dir);
}

/* ---- the keeper: election, catch-up, the oldest snapshot ---- */

/* This handle won the election: it takes the MANIFEST over, removes what
 * a dead owner left half-made, and starts flushing and compacting. */
static int mp_take_over(stoat_db *db)
{
    manifest_state st;
    manifest *man = NULL;
    lsm_view *v = NULL;
    char **names = NULL;
    size_t n = 0;
    uint64_t gen;
    int rc;

    pthread_mutex_lock(&db->mp->tail_mu);   /* no reload meanwhile */
    rc = mp_load_view(db, 1, &v, &st, &man, &gen);
    KILL_POINT("takeover_loaded");
    if (rc == 0 && (rc = env_list(db->env, db->dir, &names, &n)) == 0) {
        for (size_t i = 0; i < n; i++) {
            uint64_t id;
            int known = 0;
            if (filename_parse(names[i], FILENAME_EXT_WAL, 0, &id)) {
                continue;   /* flushed ones go once nobody follows them (mp_sweep_wals) */
            } else if (filename_parse(names[i], FILENAME_EXT_TABLE, 0, &id)) {
                for (int l = 0; l < v->num_levels && !known; l++)
                    for (size_t j = 0; j < v->n[l] && !known; j++)
                        known = v->tables[l][j]->id == id;
            } else {
                continue;
            }
            if (!known) {
                char *path = env_join(db->dir, names[i]);
                if (path != NULL)
                    env_remove(db->env, path);  /* what a dead owner left half-done */
                free(path);
            }
        }
        env_list_free(names, n);
    }
    KILL_POINT("takeover_cleaned");
    if (rc == 0) {
        /* The view and MANIFEST handle first: the flusher and compactors
         * start at `owner`, and must never pick from a view of the
         * follower's lineage nor edit without a MANIFEST handle. Then
         * follow the WALs up to the active one: the flusher needs the
         * memtable commits go to (the install may have dropped a flushed
         * one this handle was still following). */
        mp_install_view(db, v, man, st.log_number, gen);
        if ((rc = mp_catch_up_locked(db)) == 0) {
            atomic_store(&db->mp->hdr->owner_pid, (uint64_t)getpid());
            pthread_mutex_lock(&db->mu);
            atomic_store(&db->mp->owner, 1);
            pthread_cond_broadcast(&db->bg_cv);
            pthread_mutex_unlock(&db->mu);
        }
    } else if (v != NULL) {
        lsm_view_unref(v);
        manifest_close(man);
    }
    pthread_mutex_unlock(&db->mp->tail_mu);
    return rc;
}

int db_mp_refresh_horizon(stoat_db *db)
{
    db_mp *mp = db->mp;
    proc_slots_scan_result res;
    int rc;

    if (mp == NULL)
        return 0;
    pthread_mutex_lock(&mp->slots_mu);
    rc = proc_slots_scan(mp->slots, &res);
    pthread_mutex_unlock(&mp->slots_mu);
    /* Only up: every live slot's value only grows, and a process that
     * joins reads above any horizon taken before. A slower scan (the
     * keeper's beside flatten's) must not store an older minimum over a
     * newer one, or compaction would keep what no reader needs. */
    if (rc == 0)
        atomic_store(&mp->hdr->live, res.live);
    if (rc == 0 && res.min != PROC_SLOT_NONE) {
        uint64_t cur = atomic_load(&mp->horizon);
        while (res.min > cur && !atomic_compare_exchange_weak(&mp->horizon, &cur, res.min))
            ;
    }
    return rc;
}

/*
 * The owner removes the WALs that are flushed (below the MANIFEST's log
 * number) and that no live process follows any more (below every slot's
 * WAL). A process that fell behind reads the commits of each WAL it
 * crosses, flushed or not: its oracle must see every one (a WAL it never
 * saw would be commits its conflict checks miss). The log number is read
 * before the scan, and a process publishes a WAL before it validates
 * what it read (mp_join), so a stale scan only keeps more.
 */
static void mp_sweep_wals(stoat_db *db)
{
    db_mp *mp = db->mp;
    proc_slots_scan_result res;
    char **names = NULL;
    size_t n = 0;
    uint64_t below;
    int rc;

    pthread_mutex_lock(&db->mu);
    below = mp->log_number;
    pthread_mutex_unlock(&db->mu);
    if (below <= mp->swept_below)
        return;
    pthread_mutex_lock(&mp->slots_mu);
    rc = proc_slots_scan(mp->slots, &res);
    pthread_mutex_unlock(&mp->slots_mu);
    if (rc != 0)
        return;
    if (res.wal_min < below)
        below = res.wal_min;
    if (below <= mp->swept_below || env_list(db->env, db->dir, &names, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        uint64_t id;
        if (filename_parse(names[i], FILENAME_EXT_WAL, 0, &id) && id < below) {
            char *path = env_join(db->dir, names[i]);
            if (path != NULL)
                env_remove(db->env, path);  /* one left over goes at the next sweep or open */
            free(path);
        }
    }
    env_list_free(names, n);
    mp->swept_below = below;
}

/*
 * The block cache budget (cache_size) is all processes' together. A
 * handle alone caches all of it by itself, as in the exclusive mode. With
 * others, and the shared block cache (the usual case), the decompressed
 * blocks live there, once for every process, and each handle keeps
 * DB_CACHE_OWN of its own in front of it (a hot block is used without a
 * copy), so that the memory of N processes stays near that of one.
 * Without it (encrypted databases, no tmpfs) each handle caches
 * cache_size / (live handles), at least DB_CACHE_FLOOR. Set every keeper
 * round (the cache does nothing when it stays the same).
 */
#define DB_CACHE_FLOOR (4ull << 20)
#define DB_CACHE_OWN (256ull << 10)

uint64_t db_mp_cache_share(uint64_t cache_size, uint64_t live, int shared)
{
    uint64_t want;

    if (live <= 1)
        return cache_size;
    want = shared ? DB_CACHE_OWN : cache_size / live;
    if (!shared && want < DB_CACHE_FLOOR)
        want = DB_CACHE_FLOOR;
    return want < cache_size ? want : cache_size;
}

static void mp_size_cache(stoat_db *db)
{
    uint64_t live = atomic_load(&db->mp->hdr->live);

    if (live == 0)
        return;     /* no scan yet */
    block_cache_set_capacity(db->bc,
                             db_mp_cache_share(db->opts.cache_size, live, db->mp->sc != NULL));
    block_cache_set_shared(db->bc, db->mp->sc, live > 1);
}

static void mp_keeper_round(stoat_db *db)
{
    db_mp *mp = db->mp;
    int owner = atomic_load(&mp->owner), rc;

    if (!owner) {
        pthread_mutex_lock(&mp->slots_mu);
        rc = proc_slots_elect(mp->slots, &owner);
        pthread_mutex_unlock(&mp->slots_mu);
        if (rc == 0 && owner && mp_take_over(db) != 0) {
            pthread_mutex_lock(&mp->slots_mu);
            proc_slots_resign(mp->slots);
            pthread_mutex_unlock(&mp->slots_mu);
            owner = 0;
        }
    }
    /* The owner applies every commit (it flushes its memtables), and so
     * does a process that reads: its reads then find little left to do.
     * One that only writes applies nothing, only follows the flushes. */
    mp_note_published_vlog(db);    /* a process that joined and only reads maps too */
    int read = atomic_exchange_explicit(&mp->read_since, 0, memory_order_relaxed);
    if (owner || read) {
        mp_catch_up(db);    /* a failure shows at the next read or write */
    } else if (atomic_load(&mp->hdr->manifest_gen) != atomic_load(&mp->manifest_gen)) {
        pthread_mutex_lock(&mp->tail_mu);
        mp_reload_manifest(db);
        pthread_mutex_unlock(&mp->tail_mu);
    }
    pthread_mutex_lock(&mp->tail_mu);
    mp_note_catch_up_locked(db);
    pthread_mutex_unlock(&mp->tail_mu);
    if (owner) {
        pthread_mutex_lock(&db->mu);
        db_mp_backlog_locked(db);
        pthread_mutex_unlock(&db->mu);
        mp_sweep_wals(db);
    }
    if (owner && db_mp_refresh_horizon(db) == 0) {
        pthread_mutex_lock(&db->mu);
        pthread_cond_broadcast(&db->bg_cv);
        pthread_mutex_unlock(&db->mu);
    }
    mp_size_cache(db);
}

static void *mp_keeper_main(void *arg)
{
    stoat_db *db = arg;
    db_mp *mp = db->mp;

    pthread_mutex_lock(&db->mu);
    while (!db->closing) {
        struct timespec ts;
        pthread_mutex_unlock(&db->mu);
        mp_keeper_round(db);
        pthread_mutex_lock(&db->mu);
        if (db->closing)
            break;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += MP_KEEPER_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&mp->keeper_cv, &db->mu, &ts);
    }
    pthread_mutex_unlock(&db->mu);
    return NULL;
}

int db_mp_open(stoat_db *db, db_recover_fn recover)
{
    mp_init_arg a = {db, recover};
    shm_opts so = {.init = mp_init, .init_arg = &a};
    db_mp *mp = calloc(1, sizeof(*mp));
    int rc, owner = 0;

    if (mp == NULL)
        return status_err(STOAT_ENOMEM, "out of memory opening %s", db->dir);
    pthread_mutex_init(&mp->slots_mu, NULL);
    pthread_mutex_init(&mp->tail_mu, NULL);
    pthread_cond_init(&mp->keeper_cv, NULL);
    mp->lock_timeout_ms = db->opts.lock_timeout_ms;
    db->mp = mp;
    so.wait_ms = db->opts.open_timeout_ms ? db->opts.open_timeout_ms : 0;
    so.shm_dir = db->opts.shm_dir;
    db->opts.shm_dir = NULL;    /* the caller's string, valid during the open only */
    if (db->kr == NULL) {
        /* Decrypted blocks stay out of files, even on a tmpfs. */
        so.cache_size = db->opts.cache_size;
        so.cache_fixed = shared_cache_fixed_size(so.cache_size);
    }
    if ((rc = shm_open_region(db->dir, &so, &mp->region)) != 0)
        return rc;
    if (shm_cache_base(mp->region) != NULL) {
        mp->sc = shared_cache_attach(shm_cache_base(mp->region), shm_cache_size(mp->region),
                                     shm_cache_reserve, mp->region);
        block_cache_set_shared(db->bc, mp->sc, 0);  /* in use once others are live */
    }
    mp->hdr = (db_shared_hdr *)((char *)shm_base(mp->region) + SHM_OFF_FREE);
    mp->lock = (proc_lock *)((char *)shm_base(mp->region) + SHM_OFF_COMMIT_LOCK);
    uint64_t magic = atomic_load(&mp->hdr->magic);
    if (magic != DB_SHARED_MAGIC && (magic & 0x00ffffffffffffffull) ==
                                        (DB_SHARED_MAGIC & 0x00ffffffffffffffull))
        return status_err(STOAT_ENOTSUP, "%s: live processes share it with version %c of the "
                          "shared state, this build uses %c: stop them (or wait for them to "
                          "close) first", db->dir, (char)(magic >> 56),
                          (char)(DB_SHARED_MAGIC >> 56));
    if (magic != DB_SHARED_MAGIC)
        return status_err(STOAT_ECORRUPT, "%s: shared region not initialised", db->dir);
    if ((rc = proc_slots_open(mp->region, &mp->slots)) != 0 ||
        (rc = proc_slots_claim(mp->slots)) != 0)
        return rc;
    if (shm_created(mp->region)) {
        mp->note_id = memtable_id(db->mem);
        mp->note_pos = WAL_HEADER_LEN;
        mp->note_version = mp->applied_max = atomic_load(&db->last_version);
        memtable_ref(db->mem);
        mp->wtail = db->mem;
        mp_follow(db, memtable_id(db->mem));
        mp->wal_pos = WAL_HEADER_LEN;
        atomic_store(&mp->applied_head, head_make(mp->wal_id, mp->wal_pos));
        atomic_store(&mp->manifest_gen, 1);
        if ((rc = proc_slots_elect(mp->slots, &owner)) != 0)
            return rc;
        if (owner) {
            atomic_store(&mp->owner, 1);
            atomic_store(&mp->hdr->owner_pid, (uint64_t)getpid());
        } else {
            manifest_close(db->manifest);   /* another handle won meanwhile */
            db->manifest = NULL;
        }
    } else {
        manifest_close(db->manifest);
        db->manifest = NULL;
        if ((rc = mp_join(db)) != 0)
            return rc;
    }
    pthread_mutex_lock(&db->mu);
    db_snapshot_publish_locked(db);
    pthread_mutex_unlock(&db->mu);
    if (atomic_load(&mp->owner) && (rc = db_mp_refresh_horizon(db)) != 0)
        return rc;
    return 0;
}

int db_mp_start(stoat_db *db)
{
    int rc;

    if ((rc = pthread_create(&db->mp->keeper, NULL, mp_keeper_main, db)) != 0)
        return status_err(STOAT_ENOMEM, "cannot start the keeper thread (error %d)", rc);
    db->mp->keeper_started = 1;
    return 0;
}

void db_mp_close(stoat_db *db)
{
    db_mp *mp = db->mp;

    if (mp == NULL)
        return;
    if (mp->keeper_started) {
        pthread_mutex_lock(&db->mu);
        db->closing = 1;
        pthread_cond_broadcast(&mp->keeper_cv);
        pthread_mutex_unlock(&db->mu);
        pthread_join(mp->keeper, NULL);
        mp->keeper_started = 0;
    }
    /* The WALs flushed since the keeper's last round go now (when no
     * other process follows them), not at the next open. */
    if (mp->slots != NULL && atomic_load(&mp->owner))
        mp_sweep_wals(db);
    proc_slots_close(mp->slots);
    block_cache_set_shared(db->bc, NULL, 0);
    shared_cache_detach(mp->sc);
    shm_close(mp->region);
    pthread_mutex_destroy(&mp->slots_mu);
    pthread_mutex_destroy(&mp->tail_mu);
    pthread_cond_destroy(&mp->keeper_cv);
    memtable_unref(mp->wtail);
    mp_note_close(mp);
    buf_free(&mp->keys);
    free(mp->key_refs);
    free(mp);
    db->mp = NULL;
}
