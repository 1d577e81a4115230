/*
 * mp_proof_test.c - the proof of the multi-process mode (db/shared.c)
 * under crashes, stops and a model: issue 11's "Tests".
 *
 * Writers are forked children committing transactions of 3 keys
 * ("w<id>:<gen>:<seq>:<j>", 100-byte values derived from the key) with
 * sequential seq, and acknowledging each commit on a pipe to the test
 * process after stoat_txn_commit returned 0. The checks (chk_scan): every
 * acknowledged transaction is present with all 3 keys and their exact
 * values; no transaction is torn (a seq with 1 or 2 of its keys); no
 * seq is missing below a present one; at most one unacknowledged commit
 * per writer life (the one in flight when it died). A content digest of
 * a live handle (survivors still attached) must equal a fresh restart's.
 *
 * 1. Kill points (base/killpoint.h, STOAT_KILL_AT in the child): three
 *    writers; one dies at a named point of the commit, rotation, flush,
 *    compaction or take-over path; the survivors must go on committing
 *    (lock_timeout_ms 5000: a commit that fails is a failure), a new
 *    owner must resume flushing/compacting within 3 s when the owner
 *    died, every .sst file must (eventually) be listed in the MANIFEST
 *    (what a dead owner left half-made is removed by the take-over),
 *    then the checks above, live and after a restart.
 * 2. A random kill loop: 4 writers, one SIGKILLed at random every
 *    1-40 ms and restarted (a new generation), for STOAT_MP_KILL_SECONDS
 *    (default 3); prints "kills N lost L".
 * 3. A lock holder stopped (STOAT_STOP_AT, SIGSTOP at commit_intent):
 *    another process's commit fails with STOAT_EBUSY after about its
 *    lock_timeout_ms (300) with the holder's pid in the message; after
 *    SIGCONT both go on.
 * 4. A model test: STOAT_MP_MODEL_PROCS (4) processes run
 *    STOAT_MP_MODEL_TXNS (300) random transactions each on 24 shared
 *    keys (gets, puts, deletes, range scans) and log every transaction:
 *    its read version, its reads with what they returned, its writes, and
 *    for a commit its commit version (read back from a marker key only it
 *    writes). The merged log is checked against a model built from the
 *    committed transactions in commit-version order:
 *    - commit versions are distinct;
 *    - snapshot reads: every read of every transaction (committed,
 *      conflicted or read-only) returned the model's state at its read
 *      version, overlaid with its own earlier writes; a scan returned
 *      exactly the model's keys in its range;
 *    - serializability: for every committed read-write transaction, each
 *      key it read or scanned (outside its own writes) had the same state
 *      at commit version - 1 as at its read version, so the history is
 *      equivalent to running the committed transactions one at a time in
 *      commit-version order (read-only ones at their read version);
 *    - the final state (after every process closed, a fresh open) equals
 *      the model's, and every committed marker is present.
 *    Not checked: that conflicts were necessary (a spurious conflict
 *    passes), and real-time order beyond commit versions.
 * 5. /dev/shm too small (a 16 KiB tmpfs as shm_dir): open fails with
 *    STOAT_ENOSPC in a child that must not die of SIGBUS; another uid
 *    (setuid(65534) in a child) gets an error naming the owner's uid.
 *    Both need root; skipped with a message otherwise.
 *
 * Children leave with _exit; the test process never holds a handle while
 * it forks.
 */
#include <dirent.h>
#include <execinfo.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db_util.h"
#include "proc_util.h"
#include "test.h"
#include "db/shared.h"
#include "env/env.h"
#include "env/filename.h"
#include "lsm/manifest.h"
#include "lsm/view.h"

#define MAXW 4
#define MAXGEN 65536u
#define TXN_KEYS 3
#define VAL_LEN 100
#define ACK_OPENED 0xffffffffu
#define ACK_DONE 0xfffffffeu

static void mp_options(stoat_options *o)
{
    dbu_small_options(o);
    o->multi_process = 1;
    o->lock_timeout_ms = 5000;
}

static int env_int(const char *name, int dflt)
{
    const char *s = getenv(name);
    return s && *s ? atoi(s) : dflt;
}

/* ---- the writers ---- */

typedef struct shared_state {
    _Atomic int stop;               /* writers stop committing, check, report done */
    _Atomic int quit;               /* then close and exit */
    _Atomic uint64_t bg[MAXW];      /* flushes + compactions seen by writer id's handle */
    _Atomic uint64_t busy;          /* commits that waited lock_timeout_ms in vain */
} shared_state;

typedef struct wr_arg {
    const char *dir;
    int id;
    uint32_t gen;
    int ack_fd;
    const char *kill_at, *stop_at;
    shared_state *sh;
} wr_arg;

static void wr_key(char *out, size_t len, int id, uint32_t gen, uint32_t seq, int j)
{
    snprintf(out, len, "w%d:%05u:%08u:%d", id, gen, seq, j);
}

static uint64_t wr_tag(int id, uint32_t gen, uint32_t seq, int j)
{
    return (uint64_t)id << 58 | (uint64_t)gen << 32 | (uint64_t)seq << 2 | (uint64_t)j;
}

static int wr_txn(stoat_db *db, int id, uint32_t gen, uint32_t seq)
{
    char key[48], val[VAL_LEN];
    stoat_txn *t;
    int rc;

    if ((rc = stoat_txn_begin(db, 0, &t)) != 0)
        return rc;
    for (int j = 0; j < TXN_KEYS && rc == 0; j++) {
        wr_key(key, sizeof(key), id, gen, seq, j);
        dbu_value(wr_tag(id, gen, seq, j), val, sizeof(val));
        rc = stoat_txn_set(t, key, strlen(key), val, sizeof(val));
    }
    if (rc == 0)
        rc = stoat_txn_commit(t);
    stoat_txn_discard(t);
    return rc;
}

/* wr_txn, again while it finds the commit lock busy, at most 6 times.
 * Busy is the bounded wait working: the lock was held past
 * lock_timeout_ms (say, a rotation's fsyncs on a machine whose disk other
 * jobs keep busy), and nothing was written. A lock that never comes back
 * (a holder that died unrepaired) is still a failure. */
static int wr_commit(stoat_db *db, const wr_arg *a, uint32_t seq)
{
    int rc;

    for (int busy = 0; (rc = wr_txn(db, a->id, a->gen, seq)) == STOAT_EBUSY && busy < 6;
         busy++) {
        fprintf(stderr, "  writer %d.%u (pid %d): commit %u busy, again: %s\n", a->id, a->gen,
                (int)getpid(), seq, stoat_errmsg(NULL));
        atomic_fetch_add(&a->sh->busy, 1);
    }
    return rc;
}

static int ack(int fd, uint32_t v)
{
    return write(fd, &v, sizeof(v)) == (ssize_t)sizeof(v) ? 0 : -1;
}

/* ---- the checks ---- */

typedef struct chk_result {
    uint64_t txns, lost, torn, extra, bad, digest;
    uint32_t present0[MAXW];    /* transactions present of each writer's generation 0 */
    int rc;
} chk_result;

static uint64_t chk_hash(uint64_t h, const void *p, size_t len)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* The writers' keys in db against acked[id * MAXGEN + gen] (NULL: only
 * tears and holes), for gens below ngen. */
static void chk_scan(stoat_db *db, const uint32_t *acked, uint32_t ngen, chk_result *r)
{
    stoat_iter_options io = {.prefix = "w", .prefix_len = 1};
    uint32_t *present = calloc((size_t)MAXW * MAXGEN, sizeof(*present));
    int cur_id = -1, n_in = 0;
    uint32_t cur_gen = 0, cur_seq = 0;
    stoat_iter *it;

    memset(r, 0, sizeof(*r));
    r->digest = 0xcbf29ce484222325ull;
    if (present == NULL || (r->rc = stoat_iter_open(db, &io, &it)) != 0) {
        fprintf(stderr, "  pid %d: scan: %s\n", (int)getpid(), stoat_errmsg(NULL));
        r->rc = r->rc ? r->rc : STOAT_ENOMEM;
        free(present);
        return;
    }
    for (stoat_iter_seek_first(it);; stoat_iter_next(it)) {
        int valid = stoat_iter_valid(it), id = -1, j = -1;
        uint32_t gen = 0, seq = 0;
        const void *k = NULL, *v = NULL;
        size_t klen = 0, vlen = 0;
        char key[64];

        if (valid) {
            if ((r->rc = stoat_iter_key(it, &k, &klen)) != 0 ||
                (r->rc = stoat_iter_value(it, &v, &vlen)) != 0)
                break;
            snprintf(key, sizeof(key), "%.*s", (int)klen, (const char *)k);
            if (sscanf(key, "w%d:%u:%u:%d", &id, &gen, &seq, &j) != 4 || id < 0 || id >= MAXW ||
                gen >= MAXGEN || j < 0 || j >= TXN_KEYS) {
                r->bad++;
                continue;
            }
            r->digest = chk_hash(chk_hash(r->digest, k, klen), v, vlen);
            if (!dbu_value_is(wr_tag(id, gen, seq, j), VAL_LEN, v, vlen))
                r->bad++;
        }
        if (!valid || id != cur_id || gen != cur_gen || seq != cur_seq) {
            if (cur_id >= 0) {      /* the group just ended */
                uint32_t *p = &present[cur_id * MAXGEN + cur_gen];
                r->txns++;
                if (n_in != TXN_KEYS)
                    r->torn++;
                if (cur_seq != *p)
                    r->lost += cur_seq > *p ? cur_seq - *p : 1;   /* a hole */
                *p = cur_seq + 1;
            }
            cur_id = id;
            cur_gen = gen;
            cur_seq = seq;
            n_in = 0;
        }
        if (!valid)
            break;
        n_in++;
    }
    if (r->rc == 0)
        r->rc = stoat_iter_status(it);
    if (r->rc != 0)
        fprintf(stderr, "  pid %d: scan: %s\n", (int)getpid(), stoat_errmsg(NULL));
    stoat_iter_close(it);
    for (int i = 0; i < MAXW; i++)
        r->present0[i] = present[i * MAXGEN];
    for (size_t i = 0; acked != NULL && i < (size_t)MAXW * MAXGEN; i++) {
        if (i % MAXGEN >= ngen)
            continue;
        if (present[i] < acked[i])
            r->lost += acked[i] - present[i];
        else if (present[i] > acked[i] + 1)
            r->extra++;
        if ((present[i] < acked[i] || present[i] > acked[i] + 1) && getenv("STOAT_MP_DEBUG"))
            fprintf(stderr, "  writer %zu.%zu: acked %u present %u\n", i / MAXGEN, i % MAXGEN,
                    acked[i], present[i]);
    }
    free(present);
}

static void chk_report(const char *what, const char *where, const chk_result *r)
{
    if (r->rc != 0 || r->lost || r->torn || r->extra || r->bad)
        test_fail(__FILE__, __LINE__, "%s (%s): rc %d, %llu txns: lost %llu torn %llu extra %llu "
                  "bad %llu", what, where, r->rc, (unsigned long long)r->txns,
                  (unsigned long long)r->lost, (unsigned long long)r->torn,
                  (unsigned long long)r->extra, (unsigned long long)r->bad);
}

/* ---- the writer child ---- */

/* A crash in a child: its stack on stderr, then the default action. */
static void crash_handler(int sig)
{
    void *frames[64];
    int n = backtrace(frames, 64);

    backtrace_symbols_fd(frames, n, 2);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void crash_handlers(void)
{
    signal(SIGSEGV, crash_handler);
    signal(SIGBUS, crash_handler);
    signal(SIGABRT, crash_handler);
}

static int wr_child(void *p)
{
    wr_arg *a = p;
    shared_state *sh = a->sh;
    stoat_options o;
    stoat_db *db;
    chk_result r;

    alarm(300);
    crash_handlers();
    if (a->kill_at != NULL)
        setenv("STOAT_KILL_AT", a->kill_at, 1);
    if (a->stop_at != NULL)
        setenv("STOAT_STOP_AT", a->stop_at, 1);
    mp_options(&o);
    if (stoat_open(a->dir, &o, &db) != 0) {
        fprintf(stderr, "  writer %d.%u (pid %d): open: %s\n", a->id, a->gen, (int)getpid(),
                stoat_errmsg(NULL));
        return 1;
    }
    if (ack(a->ack_fd, ACK_OPENED) != 0)
        return 2;
    for (uint32_t seq = 0; !atomic_load(&sh->stop); seq++) {
        int rc = wr_commit(db, a, seq);
        if (rc != 0) {
            fprintf(stderr, "  writer %d.%u (pid %d): commit %u: %s\n", a->id, a->gen,
                    (int)getpid(), seq, stoat_errmsg(NULL));
            if (getenv("STOAT_MP_DEBUG") != NULL) {
                char cmd[DBU_PATH_MAX + 32];
                snprintf(cmd, sizeof(cmd), "ls -l %s >&2", a->dir);
                if (system(cmd) != 0)
                    fprintf(stderr, "  (ls failed)\n");
            }
            return 3;
        }
        if (ack(a->ack_fd, seq) != 0)
            return 4;
        if (seq % 8 == 0) {
            stoat_stats st;
            if (stoat_stats_get(db, &st) == 0)
                atomic_store(&sh->bg[a->id], st.flushes + st.compactions);
        }
    }
    /* Everything this survivor's handle sees now: no tear, no hole. */
    chk_scan(db, NULL, 0, &r);
    if (r.rc != 0 && getenv("STOAT_MP_DEBUG") != NULL)
        fprintf(stderr, "  writer %d.%u: owner %d\n", a->id, a->gen, db_mp_is_owner(db));
    if (r.rc != 0 || r.torn || r.lost || r.bad) {
        fprintf(stderr, "  writer %d.%u: its view: rc %d torn %llu lost %llu bad %llu\n", a->id,
                a->gen, r.rc, (unsigned long long)r.torn, (unsigned long long)r.lost,
                (unsigned long long)r.bad);
        return 5;
    }
    if (ack(a->ack_fd, ACK_DONE) != 0)
        return 6;
    while (!atomic_load(&sh->quit))
        pu_sleep_us(2000);
    return stoat_close(db) == 0 ? 0 : 7;
}

/* The test process's side of a writer. */
typedef struct wproc {
    int id;
    pid_t pid;
    int fd;
    uint32_t gen;
    int opened, done, dead, status;
} wproc;

static void wp_start(wproc *w, wr_arg *a)
{
    int fds[2];

    REQUIRE(pipe(fds) == 0);
    a->ack_fd = fds[1];
    a->gen = w->gen;
    w->id = a->id;
    w->pid = pu_spawn(wr_child, a);
    close(fds[1]);
    w->fd = fds[0];
    REQUIRE(fcntl(w->fd, F_SETFL, O_NONBLOCK) == 0);
    w->opened = w->done = w->dead = 0;
}

/* Reads what writer id said; 1 at end of file. */
static int wp_drain(wproc *w, uint32_t *acked)
{
    int id = w->id;

    uint32_t got[1024];
    ssize_t n;

    while ((n = read(w->fd, got, sizeof(got))) > 0) {
        REQUIRE(n % (ssize_t)sizeof(uint32_t) == 0);    /* writes of 4 bytes are atomic */
        for (ssize_t i = 0; i < n / (ssize_t)sizeof(uint32_t); i++) {
            if (got[i] == ACK_OPENED)
                w->opened = 1;
            else if (got[i] == ACK_DONE)
                w->done = 1;
            else if (got[i] + 1 > acked[id * MAXGEN + w->gen])
                acked[id * MAXGEN + w->gen] = got[i] + 1;
        }
    }
    return n == 0;
}

/* Reaps w if it died (or waits for it when block); 1 once reaped. */
static int wp_reap(wproc *w, uint32_t *acked, int block)
{
    int status;

    if (w->dead)
        return 1;
    pid_t r = waitpid(w->pid, &status, block ? 0 : WNOHANG);
    if (r != w->pid)
        return 0;
    w->dead = 1;
    w->status = WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
    /* Dead: nobody else holds the pipe's write end. */
    REQUIRE(fcntl(w->fd, F_SETFL, 0) == 0);
    while (!wp_drain(w, acked))
        ;
    close(w->fd);
    w->fd = -1;
    return 1;
}

/* Reads the pipes of ws[0..n) for ms milliseconds. */
static void wp_pump(wproc *ws, int n, uint32_t *acked, int ms)
{
    uint64_t end = pu_now_ms() + (uint64_t)ms;

    do {
        struct pollfd pf[MAXW];
        int m = 0, idx[MAXW];
        for (int i = 0; i < n; i++) {
            if (ws[i].fd >= 0) {
                pf[m] = (struct pollfd){.fd = ws[i].fd, .events = POLLIN};
                idx[m++] = i;
            }
        }
        uint64_t now = pu_now_ms();
        int wait = now >= end ? 0 : (int)(end - now);
        if (poll(pf, (nfds_t)m, wait > 20 ? 20 : wait) > 0)
            for (int i = 0; i < m; i++)
                if (pf[i].revents)
                    wp_drain(&ws[idx[i]], acked);
    } while (pu_now_ms() < end);
}

static uint64_t acked_total(const uint32_t *acked, int id)
{
    uint64_t n = 0;

    for (uint32_t g = 0; g < MAXGEN; g++)
        n += acked[id * MAXGEN + g];
    return n;
}

/* ---- a live checker, and the restart ---- */

typedef struct live_arg {
    const char *dir;
    const uint32_t *acked;
    uint32_t ngen;
    chk_result *out;    /* shared */
} live_arg;

static int live_check_child(void *p)
{
    live_arg *a = p;
    stoat_options o;
    stoat_db *db;

    alarm(600);
    mp_options(&o);
    if (stoat_open(a->dir, &o, &db) != 0) {
        fprintf(stderr, "  checker: open: %s\n", stoat_errmsg(NULL));
        return 1;
    }
    chk_scan(db, a->acked, a->ngen, a->out);
    return stoat_close(db) == 0 ? 0 : 2;
}

/* Checks dir live (a child joining the writers still attached), then
 * tells the writers to quit, then checks a fresh restart; both must
 * agree. */
static void check_live_then_restart(const char *what, const char *dir, wproc *ws, int n,
                                    shared_state *sh, const uint32_t *acked, uint32_t ngen,
                                    chk_result *out)
{
    chk_result *live = pu_shared(sizeof(*live)), rs;
    live_arg la = {dir, acked, ngen, live};
    stoat_options o;
    stoat_db *db;

    CHECK(pu_run(live_check_child, &la) == 0);
    chk_report(what, "live", live);
    atomic_store(&sh->quit, 1);
    for (int i = 0; i < n; i++) {
        if (!wp_reap(&ws[i], (uint32_t *)acked, 1))
            continue;
        if (ws[i].status != 0 && ws[i].status != 1000 + SIGKILL)
            test_fail(__FILE__, __LINE__, "%s: writer %d exited with %d", what, i, ws[i].status);
    }
    mp_options(&o);
    REQUIRE_OK(stoat_open(dir, &o, &db));
    chk_scan(db, acked, ngen, &rs);
    REQUIRE_OK(stoat_close(db));
    chk_report(what, "restart", &rs);
    if (live->digest != rs.digest || live->txns != rs.txns)
        test_fail(__FILE__, __LINE__, "%s: the live view (%llu txns) and the restart (%llu) "
                  "differ", what, (unsigned long long)live->txns, (unsigned long long)rs.txns);
    munmap(live, sizeof(*live));
    if (out != NULL)
        *out = rs;
}

/* Every .sst file of dir is listed in its MANIFEST, within a few
 * seconds (an owner's output is unlisted until its edit). */
static void check_no_orphans(const char *what, const char *dir)
{
    uint64_t end = pu_now_ms() + 5000, unknown = 0;
    char last_name[256] = "";

    do {
        lsm_view *v = NULL;
        manifest_state st;
        manifest *man = NULL;
        DIR *d;
        struct dirent *e;

        unknown = 0;
        if (manifest_open(env_posix(), dir, 7, 1, &v, &st, &man) != 0) {
            pu_sleep_us(50000);
            unknown = 1;
            continue;
        }
        REQUIRE((d = opendir(dir)) != NULL);
        while ((e = readdir(d)) != NULL) {
            uint64_t id;
            int known = 0;
            if (filename_parse(e->d_name, FILENAME_EXT_WAL, 0, &id))
                known = id >= st.log_number;    /* below: flushed, to be removed */
            else if (!filename_parse(e->d_name, FILENAME_EXT_TABLE, 0, &id))
                continue;
            for (int l = 0; l < v->num_levels && !known; l++)
                for (size_t j = 0; j < v->n[l] && !known; j++)
                    known = v->tables[l][j]->id == id;
            if (!known) {
                unknown++;
                snprintf(last_name, sizeof(last_name), "%s", e->d_name);
            }
        }
        closedir(d);
        lsm_view_unref(v);
        manifest_close(man);
        if (unknown)
            pu_sleep_us(50000);
    } while (unknown && pu_now_ms() < end);
    if (unknown)
        test_fail(__FILE__, __LINE__, "%s: %llu .sst (or flushed .wal) files not in the MANIFEST after 5 s "
                  "(e.g. %s)", what, (unsigned long long)unknown, last_name);
}

/* ---- 1. kill points ---- */

enum { KP_ANY, KP_OWNER, KP_TAKEOVER };

/* inflight: the victim's commit in flight must be absent (0), present
 * (1), or either (-1) afterwards. */
static const struct {
    const char *at;
    int kind, inflight;
} kp_cases[] = {
    {"commit_intent:40", KP_ANY, 0},          /* intent recorded, nothing appended */
    {"commit_appended:40", KP_ANY, 0},        /* appended (and applied), not published */
    {"commit_head_published:40", KP_ANY, 1},  /* wal_head published, last_version not */
    {"commit_published:40", KP_ANY, 1},       /* published, lock held, not acknowledged */
    {"rotate_created:2", KP_ANY, -1},          /* new WAL created, not published */
    {"rotate_published:2", KP_ANY, -1},        /* new WAL published, intent not idle */
    {"flush_written:2", KP_OWNER, -1},         /* L0 table written, MANIFEST not edited */
    {"flush_installed:2", KP_OWNER, -1},       /* MANIFEST edited, memtable not dropped */
    {"compaction_output:1", KP_OWNER, -1},     /* one output written, more to come */
    {"compaction_written:1", KP_OWNER, -1},    /* outputs written, MANIFEST not edited */
    {"compaction_installed:1", KP_OWNER, -1},  /* MANIFEST edited, inputs not removed */
    {"takeover_loaded:1", KP_TAKEOVER, -1},    /* a new owner loaded the MANIFEST */
    {"takeover_cleaned:1", KP_TAKEOVER, -1},   /* ... and removed the unknown tables */
};

static int wp_wait_opened(wproc *w, uint32_t *acked)
{
    uint64_t end = pu_now_ms() + 10000;

    while (!w->opened && pu_now_ms() < end && !wp_reap(w, acked, 0))
        wp_pump(w, 1, acked, 5);
    return w->opened;
}

static uint64_t bg_sum(shared_state *sh, const int *alive, int n)
{
    uint64_t s = 0;

    for (int i = 0; i < n; i++)
        if (alive[i])
            s += atomic_load(&sh->bg[i]);
    return s;
}

static void kp_run(const char *at, int kind, int expect_inflight)
{
    chk_result rs;
    char dirbuf[DBU_PATH_MAX], name[64];
    const char *dir;
    shared_state *sh = pu_shared(sizeof(*sh));
    uint32_t *acked = calloc((size_t)MAXW * MAXGEN, sizeof(*acked));
    int victim = kind == KP_ANY ? 1 : kind == KP_OWNER ? 0 : 1, alive[3] = {1, 1, 1};
    wproc ws[3] = {{0}};
    wr_arg args[3];
    uint64_t t_death, acks_at_death = 0, bg_at_death;

    REQUIRE(acked != NULL);
    snprintf(name, sizeof(name), "%.*s", (int)strcspn(at, ":"), at);
    dir = dbu_subdir(dirbuf, name);
    /* The first to open creates the region and owns the background work. */
    for (int i = 0; i < 3; i++) {
        args[i] = (wr_arg){.dir = dir, .id = i, .sh = sh};
        args[i].kill_at = i == victim ? at : NULL;
        wp_start(&ws[i], &args[i]);
        if (!wp_wait_opened(&ws[i], acked)) {
            test_fail(__FILE__, __LINE__, "%s: writer %d did not open", at, i);
            goto out;
        }
    }
    if (kind == KP_TAKEOVER) {
        /* Writer 2 stopped, so that the armed writer 1 wins the election
         * when the owner (writer 0) dies; writer 2 takes over after. */
        int st;
        wp_pump(ws, 3, acked, 300);
        kill(ws[2].pid, SIGSTOP);
        REQUIRE(waitpid(ws[2].pid, &st, WUNTRACED) == ws[2].pid && WIFSTOPPED(st));
        kill(ws[0].pid, SIGKILL);
        wp_reap(&ws[0], acked, 1);
        alive[0] = 0;
    }
    uint64_t end = pu_now_ms() + 20000;
    while (!wp_reap(&ws[victim], acked, 0) && pu_now_ms() < end)
        wp_pump(ws, 3, acked, 10);
    if (kind == KP_TAKEOVER)
        kill(ws[2].pid, SIGCONT);
    if (!ws[victim].dead || ws[victim].status != 1000 + SIGKILL) {
        test_fail(__FILE__, __LINE__, "%s: the armed writer %s (status %d)", at,
                  ws[victim].dead ? "ended otherwise" : "never reached it", ws[victim].status);
        goto out;
    }
    alive[victim] = 0;
    t_death = pu_now_ms();
    for (int i = 0; i < 3; i++)
        acks_at_death += alive[i] ? acked_total(acked, i) : 0;
    bg_at_death = bg_sum(sh, alive, 3);
    /* The survivors go on; a new owner resumes the background work. */
    if (kind != KP_ANY) {
        while (bg_sum(sh, alive, 3) == bg_at_death && pu_now_ms() < t_death + 3000)
            wp_pump(ws, 3, acked, 20);
        if (bg_sum(sh, alive, 3) == bg_at_death)
            test_fail(__FILE__, __LINE__, "%s: no flush or compaction in the 3 s after the "
                      "owner died", at);
        else
            fprintf(stderr, "  %s: a survivor flushed or compacted within %llu ms\n", at,
                    (unsigned long long)(pu_now_ms() - t_death));
    }
    wp_pump(ws, 3, acked, 500);
    uint64_t acks_after = 0;
    for (int i = 0; i < 3; i++)
        acks_after += alive[i] ? acked_total(acked, i) : 0;
    if (acks_after <= acks_at_death)
        test_fail(__FILE__, __LINE__, "%s: the survivors committed nothing after the death", at);
    for (int i = 0; i < 3; i++)
        if (alive[i] && wp_reap(&ws[i], acked, 0))
            test_fail(__FILE__, __LINE__, "%s: survivor %d exited (%d)", at, i, ws[i].status);
    atomic_store(&sh->stop, 1);
    end = pu_now_ms() + 20000;
    for (int i = 0; i < 3; i++)
        while (alive[i] && !ws[i].done && !ws[i].dead && pu_now_ms() < end) {
            wp_pump(&ws[i], 1, acked, 10);
            wp_reap(&ws[i], acked, 0);
        }
    check_no_orphans(at, dir);
    check_live_then_restart(at, dir, ws, 3, sh, acked, 1, &rs);
    /* The commit in flight: cut back when unpublished, rolled forward
     * once wal_head named it. */
    if (expect_inflight >= 0 && rs.present0[victim] != acked[victim * MAXGEN] + (uint32_t)expect_inflight)
        test_fail(__FILE__, __LINE__, "%s: the killed writer's commit in flight is %s", at,
                  expect_inflight ? "missing (published: must be rolled forward)"
                                  : "present (unpublished: must be cut back)");
out:
    atomic_store(&sh->stop, 1);
    atomic_store(&sh->quit, 1);
    for (int i = 0; i < 3; i++) {
        if (ws[i].pid > 0 && !ws[i].dead) {
            kill(ws[i].pid, SIGCONT);
            wp_reap(&ws[i], acked, 1);
        }
    }
    munmap(sh, sizeof(*sh));
    free(acked);
}

static void test_mp_proof_kill_points(void)
{
    const char *only = getenv("STOAT_MP_KILL_POINT");

    for (size_t i = 0; i < sizeof(kp_cases) / sizeof(kp_cases[0]); i++) {
        if (only != NULL && strncmp(only, kp_cases[i].at, strlen(only)) != 0)
            continue;
        uint64_t t0 = pu_now_ms();
        int failed_before = test_failed_now, failed;
        test_failed_now = 0;
        kp_run(kp_cases[i].at, kp_cases[i].kind, kp_cases[i].inflight);
        failed = test_failed_now;
        test_failed_now |= failed_before;
        fprintf(stderr, "  kill point %-26s %s (%llu ms)\n", kp_cases[i].at,
                failed ? "FAILED" : "ok", (unsigned long long)(pu_now_ms() - t0));
    }
}

/* ---- 2. the random kill loop ---- */

static void test_mp_proof_random_kill_loop(void)
{
    const char *dir = test_tmpdir();
    int seconds = env_int("STOAT_MP_KILL_SECONDS", 3);
    uint64_t seed = (uint64_t)env_int("STOAT_SEED", 11), kills = 0, end, t0 = pu_now_ms();
    shared_state *sh = pu_shared(sizeof(*sh));
    uint32_t *acked = calloc((size_t)MAXW * MAXGEN, sizeof(*acked)), ngen = 1;
    wproc ws[MAXW] = {{0}};
    wr_arg args[MAXW];
    int failed = 0;

    REQUIRE(acked != NULL);
    for (int i = 0; i < MAXW; i++) {
        args[i] = (wr_arg){.dir = dir, .id = i, .sh = sh};
        wp_start(&ws[i], &args[i]);
    }
    end = pu_now_ms() + (uint64_t)seconds * 1000;
    while (pu_now_ms() < end && failed == 0) {
        int id = (int)(test_rand(&seed) % MAXW);
        wp_pump(ws, MAXW, acked, 1 + (int)(test_rand(&seed) % 40));
        kill(ws[id].pid, SIGKILL);
        wp_reap(&ws[id], acked, 1);
        if (ws[id].status != 1000 + SIGKILL) {
            test_fail(__FILE__, __LINE__, "kill loop: writer %d.%u ended with %d before its kill",
                      id, ws[id].gen, ws[id].status);
            failed = 1;
        }
        kills++;
        if (kills % 1000 == 0)
            fprintf(stderr, "  kill loop: %llu kills, %llu s\n", (unsigned long long)kills,
                    (unsigned long long)(pu_now_ms() - t0) / 1000);
        if (++ws[id].gen >= MAXGEN)
            break;
        if (ws[id].gen + 1 > ngen)
            ngen = ws[id].gen + 1;
        wp_start(&ws[id], &args[id]);
    }
    /* Each writer reports on what its own handle sees, then one more
     * process joins to check every acknowledged commit, then a restart. */
    atomic_store(&sh->stop, 1);
    uint64_t stop_end = pu_now_ms() + 60000;
    for (int i = 0; i < MAXW; i++)
        while (!ws[i].done && !wp_reap(&ws[i], acked, 0) && pu_now_ms() < stop_end)
            wp_pump(&ws[i], 1, acked, 10);
    for (int i = 0; i < MAXW; i++)
        if (ws[i].dead && ws[i].status != 0)
            test_fail(__FILE__, __LINE__, "kill loop: writer %d ended with %d", i, ws[i].status);
    int before = test_failed_now;
    check_live_then_restart("kill loop", dir, ws, MAXW, sh, acked, ngen, NULL);
    uint64_t acks = 0;
    for (int i = 0; i < MAXW; i++)
        acks += acked_total(acked, i);
    fprintf(stderr, "  kill loop: kills %llu lost %s, %llu acknowledged commits, %llu busy "
            "commits retried, %llu s\n", (unsigned long long)kills,
            test_failed_now == before ? "0" : "SEE ABOVE", (unsigned long long)acks,
            (unsigned long long)atomic_load(&sh->busy),
            (unsigned long long)(pu_now_ms() - t0) / 1000);
    CHECK(kills > 0);
    munmap(sh, sizeof(*sh));
    free(acked);
}

/* ---- 3. a stopped lock holder ---- */

typedef struct stop_arg {
    const char *dir;
    pid_t holder;
    _Atomic int *phase;     /* 1: busy seen, 2: holder continued, 3: committed */
    _Atomic uint64_t *waited_ms;
} stop_arg;

static int stop_other_child(void *p)
{
    stop_arg *a = p;
    stoat_options o;
    stoat_db *db;
    char pid[32];
    uint64_t t0;
    int rc;

    mp_options(&o);
    o.lock_timeout_ms = 300;
    if (stoat_open(a->dir, &o, &db) != 0)
        return 1;
    /* stoat_sync does not take the commit lock: the stopped holder does
     * not hold it up. */
    t0 = pu_now_ms();
    if ((rc = stoat_sync(db)) != 0 || pu_now_ms() - t0 >= 300) {
        fprintf(stderr, "  stopped holder: sync = %d after %llu ms\n", rc,
                (unsigned long long)(pu_now_ms() - t0));
        return 6;
    }
    t0 = pu_now_ms();
    rc = stoat_put(db, "other", 5, "x", 1);
    atomic_store(a->waited_ms, pu_now_ms() - t0);
    snprintf(pid, sizeof(pid), "%d", (int)a->holder);
    if (rc != STOAT_EBUSY) {
        fprintf(stderr, "  stopped holder: put = %d (%s), want busy\n", rc, stoat_errmsg(NULL));
        return 2;
    }
    if (strstr(stoat_errmsg(NULL), pid) == NULL) {
        fprintf(stderr, "  stopped holder: '%s' does not name pid %s\n", stoat_errmsg(NULL), pid);
        return 3;
    }
    atomic_store(a->phase, 1);
    while (atomic_load(a->phase) < 2)
        pu_sleep_us(1000);
    if (stoat_put(db, "other", 5, "y", 1) != 0) {
        fprintf(stderr, "  stopped holder: after SIGCONT: %s\n", stoat_errmsg(NULL));
        return 4;
    }
    atomic_store(a->phase, 3);
    return stoat_close(db) == 0 ? 0 : 5;
}

static void test_mp_proof_stopped_lock_holder(void)
{
    const char *dir = test_tmpdir();
    shared_state *sh = pu_shared(sizeof(*sh));
    _Atomic int *phase = pu_shared(sizeof(*phase));
    _Atomic uint64_t *waited = pu_shared(sizeof(*waited));
    uint32_t *acked = calloc((size_t)MAXW * MAXGEN, sizeof(*acked));
    wproc ws[1] = {{0}};
    wr_arg wa = {.dir = dir, .id = 0, .sh = sh, .stop_at = "commit_intent:20"};
    int st;

    REQUIRE(acked != NULL);
    wp_start(&ws[0], &wa);
    /* Stops itself holding the commit lock, its record announced. */
    REQUIRE(waitpid(ws[0].pid, &st, WUNTRACED) == ws[0].pid && WIFSTOPPED(st));
    stop_arg sa = {dir, ws[0].pid, phase, waited};
    pid_t other = pu_spawn(stop_other_child, &sa);
    uint64_t end = pu_now_ms() + 10000;
    while (atomic_load(phase) < 1 && pu_now_ms() < end && waitpid(other, &st, WNOHANG) == 0)
        pu_sleep_us(1000);
    CHECK(atomic_load(phase) == 1);
    /* Bounded: about lock_timeout_ms, not the holder's whole stop. */
    CHECK(atomic_load(waited) >= 250 && atomic_load(waited) < 3000);
    fprintf(stderr, "  stopped holder: busy after %llu ms (lock_timeout_ms 300)\n",
            (unsigned long long)atomic_load(waited));
    kill(ws[0].pid, SIGCONT);
    atomic_store(phase, 2);
    CHECK(pu_wait(other) == 0);
    CHECK(atomic_load(phase) == 3);
    wp_pump(ws, 1, acked, 200);
    CHECK(acked_total(acked, 0) > 20);     /* the holder went on */
    atomic_store(&sh->stop, 1);
    end = pu_now_ms() + 10000;
    while (!ws[0].done && !wp_reap(&ws[0], acked, 0) && pu_now_ms() < end)
        wp_pump(ws, 1, acked, 10);
    check_live_then_restart("stopped holder", dir, ws, 1, sh, acked, 1, NULL);
    munmap(sh, sizeof(*sh));
    munmap(phase, sizeof(*phase));
    munmap((void *)waited, sizeof(*waited));
    free(acked);
}

/* ---- 4. the model test ---- */

#define M_KEYS 24
#define M_VAL_LEN 64
#define M_MAX_OPS 512

enum { M_GET = 1, M_PUT, M_DEL, M_SCAN, M_ITEM };
enum { M_COMMITTED = 0, M_CONFLICT = 1, M_READ_ONLY = 2 };

typedef struct mop {
    uint32_t kind, key;     /* M_SCAN: key = lo | hi << 8; M_ITEM: a key the scan returned */
    uint64_t tag;           /* what was read or written (0: absent, deleted); M_SCAN: items */
} mop;

typedef struct mtxn {
    uint32_t proc, seq, n_ops, status;
    uint64_t rv, cv;        /* read version; commit version (committed writers) */
} mtxn;

typedef struct model_arg {
    const char *dir;
    const char *log;
    int proc, txns;
} model_arg;

static void m_key(char *out, uint32_t k)
{
    snprintf(out, 8, "m%02u", k);
}

static uint64_t m_tag_of(const void *v, size_t len)
{
    uint64_t t = 0;

    if (len == M_VAL_LEN)
        memcpy(&t, v, sizeof(t));
    return t;
}

/* One random transaction, logged into ops; 0 or a failure code. */
static int model_txn(stoat_db *db, model_arg *a, uint32_t seq, uint64_t *rng, mtxn *h, mop *ops)
{
    int n_ops = 1 + (int)(test_rand(rng) % 6), writes = 0, rc;
    char key[8], val[M_VAL_LEN], marker[32];
    stoat_txn *t;

    memset(val, 0, sizeof(val));
    *h = (mtxn){.proc = (uint32_t)a->proc, .seq = seq};
    if ((rc = stoat_txn_begin(db, 0, &t)) != 0)
        return rc;
    h->rv = stoat_txn_read_version(t);
    for (int i = 0; i < n_ops && rc == 0; i++) {
        uint32_t k = (uint32_t)(test_rand(rng) % M_KEYS), r = (uint32_t)(test_rand(rng) % 100);
        uint64_t tag = (uint64_t)a->proc << 48 | (uint64_t)seq << 8 | (uint64_t)(i + 1);
        const void *v;
        size_t vlen;
        m_key(key, k);
        if (r < 35) {
            rc = stoat_txn_get(t, key, 3, &v, &vlen);
            ops[h->n_ops++] = (mop){M_GET, k, rc == 0 ? m_tag_of(v, vlen) : 0};
            rc = rc == STOAT_ENOTFOUND ? 0 : rc;
        } else if (r < 65) {
            memcpy(val, &tag, sizeof(tag));
            rc = stoat_txn_set(t, key, 3, val, sizeof(val));
            ops[h->n_ops++] = (mop){M_PUT, k, tag};
            writes++;
        } else if (r < 80) {
            rc = stoat_txn_delete(t, key, 3);
            ops[h->n_ops++] = (mop){M_DEL, k, 0};
            writes++;
        } else {
            uint32_t hi = k + 1 + (uint32_t)(test_rand(rng) % 8);
            char lo_key[8], hi_key[8];
            stoat_iter_options io = {0};
            stoat_iter *it;
            uint32_t at = h->n_ops, n = 0;
            m_key(lo_key, k);
            m_key(hi_key, hi);
            io.lower = lo_key;
            io.lower_len = 3;
            io.upper = hi_key;
            io.upper_len = 3;
            ops[h->n_ops++] = (mop){M_SCAN, k | hi << 8, 0};
            if ((rc = stoat_txn_iter_open(t, &io, &it)) != 0)
                break;
            for (stoat_iter_seek_first(it); stoat_iter_valid(it); stoat_iter_next(it)) {
                const void *ik;
                size_t iklen;
                if ((rc = stoat_iter_key(it, &ik, &iklen)) != 0 ||
                    (rc = stoat_iter_value(it, &v, &vlen)) != 0)
                    break;
                ops[h->n_ops++] = (mop){M_ITEM, (uint32_t)atoi((const char *)ik + 1),
                                        m_tag_of(v, vlen)};
                n++;
            }
            if (rc == 0)
                rc = stoat_iter_status(it);
            stoat_iter_close(it);
            ops[at].tag = n;
        }
    }
    if (rc == 0 && test_rand(rng) % 5 == 0)
        pu_sleep_us(1000);  /* let others commit meanwhile: more conflicts to judge */
    if (rc == 0 && writes > 0) {
        snprintf(marker, sizeof(marker), "x%d:%08u", a->proc, seq);
        rc = stoat_txn_set(t, marker, strlen(marker), "", 0);
    }
    if (rc == 0)
        rc = stoat_txn_commit(t);
    stoat_txn_discard(t);
    h->status = writes == 0 ? M_READ_ONLY : rc == STOAT_ECONFLICT ? M_CONFLICT : M_COMMITTED;
    if (rc == STOAT_ECONFLICT)
        return 0;
    if (rc != 0 || writes == 0)
        return rc;
    /* Its commit version: the marker's, which only it wrote. */
    if ((rc = stoat_txn_begin(db, STOAT_TXN_READ_ONLY, &t)) != 0)
        return rc;
    const void *v;
    size_t vlen;
    rc = stoat_txn_get_meta(t, marker, strlen(marker), &v, &vlen, &h->cv, NULL, NULL);
    stoat_txn_discard(t);
    return rc;
}

static int model_child(void *p)
{
    model_arg *a = p;
    uint64_t rng = (uint64_t)env_int("STOAT_SEED", 5) * 1000003u + (uint64_t)a->proc;
    mop *ops = malloc(M_MAX_OPS * sizeof(*ops));
    FILE *log = fopen(a->log, "wb");
    stoat_options o;
    stoat_db *db;

    alarm(600);
    mp_options(&o);
    if (ops == NULL || log == NULL || stoat_open(a->dir, &o, &db) != 0)
        return 1;
    for (int i = 0; i < a->txns; i++) {
        mtxn h;
        int rc = model_txn(db, a, (uint32_t)i, &rng, &h, ops);
        if (rc != 0) {
            fprintf(stderr, "  model: process %d txn %d: %s\n", a->proc, i, stoat_errmsg(NULL));
            return 2;
        }
        if (fwrite(&h, sizeof(h), 1, log) != 1 || fwrite(ops, sizeof(*ops), h.n_ops, log) != h.n_ops)
            return 3;
    }
    if (fclose(log) != 0)
        return 4;
    free(ops);
    return stoat_close(db) == 0 ? 0 : 5;
}

typedef struct m_logged {
    mtxn h;
    mop *ops;
} m_logged;

typedef struct m_hist {
    uint64_t *cv, *tag;
    size_t n, cap;
} m_hist;

/* The model's state of key k at version v (0: absent). */
static uint64_t m_state(const m_hist *hist, uint32_t k, uint64_t v)
{
    const m_hist *h = &hist[k];
    size_t lo = 0, hi = h->n;

    while (lo < hi) {   /* the first entry above v */
        size_t mid = (lo + hi) / 2;
        if (h->cv[mid] <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? 0 : h->tag[lo - 1];
}

static int m_by_cv(const void *a, const void *b)
{
    const m_logged *x = *(m_logged *const *)a, *y = *(m_logged *const *)b;
    return x->h.cv < y->h.cv ? -1 : x->h.cv > y->h.cv;
}

static void test_mp_proof_model(void)
{
    char dirbuf[DBU_PATH_MAX], logs[MAXW * 2][DBU_PATH_MAX];
    const char *dir = dbu_subdir(dirbuf, "db");
    int procs = env_int("STOAT_MP_MODEL_PROCS", 4), txns = env_int("STOAT_MP_MODEL_TXNS", 300);
    m_logged *all = NULL;
    m_logged **commits = NULL;
    size_t n_all = 0, cap_all = 0, n_commits = 0;
    m_hist hist[M_KEYS];
    uint64_t snap_bad = 0, ser_bad = 0, final_bad = 0, conflicts = 0, ro = 0;
    pid_t pids[MAXW * 2];

    REQUIRE(procs >= 1 && procs <= MAXW * 2);
    memset(hist, 0, sizeof(hist));
    for (int i = 0; i < procs; i++) {
        model_arg a = {dir, logs[i], i, txns};
        snprintf(logs[i], sizeof(logs[i]), "%s/model.%d", test_tmpdir(), i);
        pids[i] = pu_spawn(model_child, &a);
    }
    for (int i = 0; i < procs; i++)
        CHECK(pu_wait(pids[i]) == 0);
    /* The merged log. */
    for (int i = 0; i < procs; i++) {
        FILE *f = fopen(logs[i], "rb");
        mtxn h;
        REQUIRE(f != NULL);
        while (fread(&h, sizeof(h), 1, f) == 1) {
            if (n_all == cap_all) {
                cap_all = cap_all ? 2 * cap_all : 1024;
                REQUIRE((all = realloc(all, cap_all * sizeof(*all))) != NULL);
            }
            all[n_all].h = h;
            REQUIRE((all[n_all].ops = malloc((h.n_ops + 1) * sizeof(mop))) != NULL);
            REQUIRE(fread(all[n_all].ops, sizeof(mop), h.n_ops, f) == h.n_ops);
            n_all++;
        }
        fclose(f);
    }
    REQUIRE((commits = malloc((n_all + 1) * sizeof(*commits))) != NULL);
    for (size_t i = 0; i < n_all; i++) {
        if (all[i].h.status == M_COMMITTED)
            commits[n_commits++] = &all[i];
        conflicts += all[i].h.status == M_CONFLICT;
        ro += all[i].h.status == M_READ_ONLY;
    }
    qsort(commits, n_commits, sizeof(*commits), m_by_cv);
    /* The model: each key's history, in commit-version order. */
    for (size_t i = 0; i < n_commits; i++) {
        const m_logged *c = commits[i];
        if (i > 0 && c->h.cv == commits[i - 1]->h.cv)
            test_fail(__FILE__, __LINE__, "two commits at version %llu",
                      (unsigned long long)c->h.cv);
        if (c->h.cv <= c->h.rv)
            test_fail(__FILE__, __LINE__, "commit version %llu not above its read version %llu",
                      (unsigned long long)c->h.cv, (unsigned long long)c->h.rv);
        for (uint32_t j = 0; j < c->h.n_ops; j++) {
            const mop *op = &c->ops[j];
            m_hist *h;
            if (op->kind != M_PUT && op->kind != M_DEL)
                continue;
            h = &hist[op->key];
            if (h->n > 0 && h->cv[h->n - 1] == c->h.cv) {
                h->tag[h->n - 1] = op->tag;     /* the txn's last write wins */
                continue;
            }
            if (h->n == h->cap) {
                h->cap = h->cap ? 2 * h->cap : 64;
                REQUIRE((h->cv = realloc(h->cv, h->cap * sizeof(*h->cv))) != NULL);
                REQUIRE((h->tag = realloc(h->tag, h->cap * sizeof(*h->tag))) != NULL);
            }
            h->cv[h->n] = c->h.cv;
            h->tag[h->n++] = op->tag;
        }
    }
    /* Every transaction's reads against the model. */
    for (size_t i = 0; i < n_all; i++) {
        const m_logged *t = &all[i];
        int64_t own[M_KEYS];
        for (int k = 0; k < M_KEYS; k++)
            own[k] = -1;
        for (uint32_t j = 0; j < t->h.n_ops; j++) {
            const mop *op = &t->ops[j];
            if (op->kind == M_PUT || op->kind == M_DEL) {
                own[op->key] = (int64_t)op->tag;
            } else if (op->kind == M_GET) {
                uint64_t at_rv = m_state(hist, op->key, t->h.rv);
                uint64_t want = own[op->key] >= 0 ? (uint64_t)own[op->key] : at_rv;
                if (op->tag != want && snap_bad++ < 5)
                    test_fail(__FILE__, __LINE__, "process %u txn %u (rv %llu) read m%02u = "
                              "%llx, the model says %llx", t->h.proc, t->h.seq,
                              (unsigned long long)t->h.rv, op->key,
                              (unsigned long long)op->tag, (unsigned long long)want);
                if (t->h.status == M_COMMITTED && own[op->key] < 0 &&
                    m_state(hist, op->key, t->h.cv - 1) != at_rv && ser_bad++ < 5)
                    test_fail(__FILE__, __LINE__, "process %u txn %u committed at %llu, but "
                              "m%02u it read at %llu changed before", t->h.proc, t->h.seq,
                              (unsigned long long)t->h.cv, op->key,
                              (unsigned long long)t->h.rv);
            } else if (op->kind == M_SCAN) {
                uint32_t lo = op->key & 0xff, hi = op->key >> 8, got = (uint32_t)op->tag, at = 0;
                const mop *items = op + 1;
                int bad = 0;
                for (uint32_t k = lo; k < hi && k < M_KEYS; k++) {
                    uint64_t at_rv = m_state(hist, k, t->h.rv);
                    uint64_t want = own[k] >= 0 ? (uint64_t)own[k] : at_rv;
                    if (t->h.status == M_COMMITTED && own[k] < 0 &&
                        m_state(hist, k, t->h.cv - 1) != at_rv && ser_bad++ < 5)
                        test_fail(__FILE__, __LINE__, "process %u txn %u committed at %llu, but "
                                  "m%02u in the range it scanned at %llu changed before",
                                  t->h.proc, t->h.seq, (unsigned long long)t->h.cv, k,
                                  (unsigned long long)t->h.rv);
                    if (want == 0)
                        continue;
                    if (at >= got || items[at].key != k || items[at].tag != want)
                        bad = 1;
                    at++;
                }
                if ((bad || at != got) && snap_bad++ < 5)
                    test_fail(__FILE__, __LINE__, "process %u txn %u (rv %llu): scan [m%02u, "
                              "m%02u) returned %u keys, not the model's", t->h.proc, t->h.seq,
                              (unsigned long long)t->h.rv, lo, hi, got);
                j += got;
            }
        }
    }
    /* The final state, after a fresh open. */
    stoat_options o;
    stoat_db *db;
    mp_options(&o);
    REQUIRE_OK(stoat_open(dir, &o, &db));
    uint64_t last_cv = n_commits ? commits[n_commits - 1]->h.cv : 0;
    for (uint32_t k = 0; k < M_KEYS; k++) {
        char key[8];
        void *v;
        size_t vlen;
        uint64_t want = m_state(hist, k, last_cv), got = 0;
        m_key(key, k);
        int rc = stoat_get(db, key, 3, &v, &vlen);
        if (rc == 0) {
            got = m_tag_of(v, vlen);
            stoat_free(v);
        }
        if (got != want && final_bad++ < 5)
            test_fail(__FILE__, __LINE__, "final m%02u = %llx, the model says %llx", k,
                      (unsigned long long)got, (unsigned long long)want);
    }
    for (size_t i = 0; i < n_commits; i++) {
        char marker[32];
        void *v;
        size_t vlen;
        snprintf(marker, sizeof(marker), "x%u:%08u", commits[i]->h.proc, commits[i]->h.seq);
        if (stoat_get(db, marker, strlen(marker), &v, &vlen) == 0)
            stoat_free(v);
        else if (final_bad++ < 5)
            test_fail(__FILE__, __LINE__, "committed marker %s missing", marker);
    }
    REQUIRE_OK(stoat_close(db));
    fprintf(stderr, "  model: %d processes, %zu txns: %zu committed, %llu conflicts, %llu read-only;"
            " snapshot-read errors %llu, serializability errors %llu, final-state errors %llu\n",
            procs, n_all, n_commits, (unsigned long long)conflicts, (unsigned long long)ro,
            (unsigned long long)snap_bad, (unsigned long long)ser_bad,
            (unsigned long long)final_bad);
    CHECK(n_commits > 0);
    for (size_t i = 0; i < n_all; i++)
        free(all[i].ops);
    free(all);
    free(commits);
    for (int k = 0; k < M_KEYS; k++) {
        free(hist[k].cv);
        free(hist[k].tag);
    }
}

/* ---- 5. /dev/shm too small, another uid ---- */

typedef struct shm_arg {
    const char *dir, *shm_dir;
} shm_arg;

static int small_shm_child(void *p)
{
    shm_arg *a = p;
    stoat_options o;
    stoat_db *db;
    int rc;

    mp_options(&o);
    o.shm_dir = a->shm_dir;
    rc = stoat_open(a->dir, &o, &db);
    if (rc == STOAT_ENOSPC && strstr(stoat_errmsg(NULL), "shm_dir") != NULL) {
        fprintf(stderr, "  small shm: %s\n", stoat_errmsg(NULL));
        return 0;
    }
    fprintf(stderr, "  small shm: open = %d (%s), want no space naming shm_dir\n", rc,
            stoat_errmsg(NULL));
    if (rc == 0)
        stoat_close(db);
    return 1;
}

static void test_mp_proof_shm_too_small(void)
{
    char mnt_buf[DBU_PATH_MAX], dir_buf[DBU_PATH_MAX];
    const char *mnt, *dir;
    stoat_options o;
    stoat_db *db;

    if (geteuid() != 0) {
        fprintf(stderr, "  SKIP: not root: cannot mount a small tmpfs for the region\n");
        return;
    }
    mnt = dbu_subdir(mnt_buf, "shm");
    dir = dbu_subdir(dir_buf, "db");
    if (mount("stoat-test", mnt, "tmpfs", 0, "size=16k") != 0) {
        fprintf(stderr, "  SKIP: cannot mount a tmpfs: %s\n", strerror(errno));
        return;
    }
    shm_arg a = {dir, mnt};
    /* In a child: a SIGBUS would show as its exit status. */
    CHECK(pu_run(small_shm_child, &a) == 0);
    CHECK(umount2(mnt, MNT_DETACH) == 0);
    /* The failed open left nothing in the way. */
    mp_options(&o);
    REQUIRE_OK(stoat_open(dir, &o, &db));
    REQUIRE_OK(stoat_put(db, "k", 1, "v", 1));
    REQUIRE_OK(stoat_close(db));
}

typedef struct uid_arg {
    const char *dir;
    _Atomic int *phase;     /* holder: 1 open, 2 close */
} uid_arg;

static int uid_holder_child(void *p)
{
    uid_arg *a = p;
    stoat_options o;
    stoat_db *db;

    mp_options(&o);
    if (stoat_open(a->dir, &o, &db) != 0 || stoat_put(db, "k", 1, "v", 1) != 0)
        return 1;
    atomic_store(a->phase, 1);
    while (atomic_load(a->phase) < 2)
        pu_sleep_us(1000);
    return stoat_close(db) == 0 ? 0 : 2;
}

static int uid_other_child(void *p)
{
    uid_arg *a = p;
    stoat_options o;
    stoat_db *db;
    int rc;

    if (setgid(65534) != 0 || setuid(65534) != 0)
        return 10;
    mp_options(&o);
    rc = stoat_open(a->dir, &o, &db);
    if (rc == 0) {
        fprintf(stderr, "  other uid: the open succeeded as uid 65534\n");
        stoat_close(db);
        return 1;
    }
    if (strstr(stoat_errmsg(NULL), "uid 0") == NULL) {
        fprintf(stderr, "  other uid: '%s' does not name the owner (uid 0)\n",
                stoat_errmsg(NULL));
        return 2;
    }
    fprintf(stderr, "  other uid: %s: %s\n", stoat_strerror(rc), stoat_errmsg(NULL));
    return 0;
}

static void test_mp_proof_other_uid(void)
{
    char dir_buf[DBU_PATH_MAX];
    _Atomic int *phase = pu_shared(sizeof(*phase));
    const char *dir;

    if (geteuid() != 0) {
        fprintf(stderr, "  SKIP: not root: cannot open as another uid\n");
        munmap(phase, sizeof(*phase));
        return;
    }
    /* Writable by everyone, so that what is refused is the region and
     * its lock files, not the directory. */
    REQUIRE(chmod(test_tmpdir(), 0755) == 0);
    dir = dbu_subdir(dir_buf, "db");
    REQUIRE(chmod(dir, 0777) == 0);
    uid_arg a = {dir, phase};
    pid_t holder = pu_spawn(uid_holder_child, &a);
    uint64_t end = pu_now_ms() + 10000;
    while (atomic_load(phase) < 1 && pu_now_ms() < end)
        pu_sleep_us(1000);
    REQUIRE(atomic_load(phase) == 1);
    CHECK(pu_run(uid_other_child, &a) == 0);        /* beside a live process */
    atomic_store(phase, 2);
    CHECK(pu_wait(holder) == 0);
    CHECK(pu_run(uid_other_child, &a) == 0);        /* alone, the files left behind */
    munmap(phase, sizeof(*phase));
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    TEST_RUN(test_mp_proof_kill_points);
    TEST_RUN(test_mp_proof_stopped_lock_holder);
    TEST_RUN(test_mp_proof_random_kill_loop);
    TEST_RUN(test_mp_proof_model);
    TEST_RUN(test_mp_proof_shm_too_small);
    TEST_RUN(test_mp_proof_other_uid);
    return test_summary();
}
