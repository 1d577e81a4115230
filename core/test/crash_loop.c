/*
 * crash_loop.c - the kill loop (issue 16, item 6; `make crash-test`, and a
 * short run in `make test`): a writer process commits transactions and
 * acknowledges each one through a pipe once its commit returned; the
 * parent SIGKILLs it at a random moment (while it opens and recovers, or
 * while it writes, flushes, compacts and collects value-log garbage),
 * then opens the database itself and checks that every acknowledged
 * commit is there, whole, with nothing else: no acknowledged commit lost,
 * no transaction half applied. Then the next writer goes on from there.
 *
 * Each commit (version seq) sets "last" = seq and slot key k<seq % SLOTS>
 * to a value made from seq (every 5th one long enough for the value log),
 * so after recovery, with L = "last": L >= the highest acknowledged seq,
 * and every slot holds the value of the newest seq <= L that maps to it.
 * Writers use sync "none" (a killed process loses nothing the kernel has)
 * or, one run in four, "commit".
 *
 * STOAT_CRASH_SECONDS (default 5) sets the duration. One writer process;
 * the same loop with four writer processes on one database is
 * mp_proof_test's test_mp_proof_random_kill_loop (`make crash-test` runs
 * both).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "db_util.h"
#include "test.h"

#define SLOTS 256
#define KEY_LAST "last"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t value_len(uint64_t seq)
{
    return seq % 5 == 0 ? 1500 + (size_t)(seq % 2500) : 8 + (size_t)(seq % 60);
}

static void slot_key(uint64_t slot, char out[16])
{
    snprintf(out, 16, "k%04u", (unsigned)slot);
}

static void crash_options(stoat_options *o, int sync)
{
    dbu_small_options(o);
    o->sync = sync;
    o->value_threshold = 1024;
    o->value_log_file_size = 1 << 20;
    o->auto_gc = 1;
    o->auto_gc_ratio = 0.3;
}

static uint64_t read_last(stoat_db *db, int *rc_out)
{
    void *v = NULL;
    size_t n = 0;
    uint64_t last = 0;
    int rc = stoat_get(db, KEY_LAST, strlen(KEY_LAST), &v, &n);

    if (rc == 0 && n == 8)
        memcpy(&last, v, 8);
    else if (rc == 0)
        rc = STOAT_ECORRUPT;
    stoat_free(v);
    *rc_out = rc == STOAT_ENOTFOUND ? 0 : rc;
    return last;
}

/* The writer: commits and acknowledges until killed. Exit codes name
 * what failed (it is never meant to exit). */
static void writer(const char *dir, int ack_fd, int sync)
{
    stoat_options o;
    stoat_db *db = NULL;
    char key[16], *val = malloc(4096);
    uint64_t seq;
    int rc;

    crash_options(&o, sync);
    if (val == NULL || stoat_open(dir, &o, &db) != 0)
        _exit(2);
    seq = read_last(db, &rc) + 1;
    if (rc != 0)
        _exit(3);
    for (;; seq++) {
        stoat_txn *t;
        size_t len = value_len(seq);

        slot_key(seq % SLOTS, key);
        dbu_value(seq, val, len);
        if (stoat_txn_begin(db, 0, &t) != 0 ||
            stoat_txn_set(t, KEY_LAST, strlen(KEY_LAST), &seq, 8) != 0 ||
            stoat_txn_set(t, key, strlen(key), val, len) != 0 || stoat_txn_commit(t) != 0)
            _exit(4);
        stoat_txn_discard(t);
        if (write(ack_fd, &seq, 8) != 8)
            _exit(5);
    }
}

/* Reads acknowledgements until the deadline (or end of file) into *acked. */
static int read_acks(int fd, double deadline, uint64_t *acked)
{
    uint64_t buf[512];

    for (;;) {
        int wait_ms = deadline < 0 ? -1 : (int)((deadline - now_s()) * 1000);
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t n;

        if (deadline >= 0 && wait_ms <= 0)
            return 0;
        if (poll(&p, 1, wait_ms) <= 0)
            continue;
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 1;   /* end of file: the writer is gone */
        for (ssize_t i = 0; i + 8 <= n; i += 8)
            if (buf[i / 8] > *acked)
                *acked = buf[i / 8];
    }
}

/* Opens the database as a restart would and checks it against acked. */
static int verify(const char *dir, uint64_t acked, uint64_t *last_out)
{
    stoat_options o;
    stoat_db *db;
    char key[16];
    uint64_t last;
    int rc, bad = 0;

    crash_options(&o, STOAT_SYNC_NONE);
    o.auto_gc = 0;
    if ((rc = stoat_open(dir, &o, &db)) != 0) {
        printf("open after a kill: %s: %s\n", stoat_strerror(rc), stoat_errmsg(NULL));
        return 1;
    }
    last = read_last(db, &rc);
    if (rc != 0 || last < acked) {
        printf("lost: last %llu, acknowledged %llu (%s)\n", (unsigned long long)last,
               (unsigned long long)acked, rc ? stoat_errmsg(NULL) : "");
        bad = 1;
    }
    for (uint64_t slot = 0; slot < SLOTS && !bad; slot++) {
        uint64_t s = last >= slot ? last - (last - slot) % SLOTS : 0;
        void *v = NULL;
        size_t n = 0;

        slot_key(slot, key);
        rc = stoat_get(db, key, strlen(key), &v, &n);
        if (s == 0 ? rc != STOAT_ENOTFOUND
                   : rc != 0 || !dbu_value_is(s, value_len(s), v, n)) {
            printf("slot %llu: want commit %llu, got rc %d (%s), %zu bytes\n",
                   (unsigned long long)slot, (unsigned long long)s, rc,
                   rc ? stoat_errmsg(NULL) : "", n);
            bad = 1;
        }
        stoat_free(v);
    }
    stoat_close(db);
    *last_out = last;
    return bad;
}

static void test_crash_loop_kills_lose_nothing(void)
{
    const char *s = getenv("STOAT_CRASH_SECONDS");
    double seconds = s && *s ? atof(s) : 5, start = now_s();
    const char *dir = test_tmpdir();
    uint64_t rng = 16, acked = 0, last = 0, kills = 0, died = 0, lost = 0;

    while (now_s() - start < seconds && lost == 0) {
        int fds[2], status, sync = test_rand(&rng) % 4 == 0;
        uint64_t r = test_rand(&rng);
        /* Mostly within a few ms of the start (open, recovery, the first
         * commits); one run in 32 long enough for flushes, compactions
         * and GC to be under way. */
        double window = r % 32 == 0 ? 0.3 : (double)(r % 20) / 1000.0;
        pid_t pid;

        REQUIRE(pipe(fds) == 0);
        fflush(NULL);
        pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            writer(dir, fds[1], sync);
        }
        close(fds[1]);
        if (read_acks(fds[0], now_s() + window, &acked) == 0)
            kill(pid, SIGKILL);
        REQUIRE(waitpid(pid, &status, 0) == pid);
        read_acks(fds[0], -1, &acked);  /* what it acknowledged before dying */
        close(fds[0]);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
            printf("writer exited by itself (status 0x%x)\n", status);
            died++;
            break;
        }
        kills++;
        if (verify(dir, acked, &last) != 0)
            lost++;
    }
    printf("crash loop: %llu kills in %.0f s, %llu commits acknowledged, %llu lost\n",
           (unsigned long long)kills, now_s() - start, (unsigned long long)acked,
           (unsigned long long)lost);
    CHECK(lost == 0);
    CHECK(died == 0);
    CHECK(kills > 0 && acked > 0);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_crash_loop_kills_lose_nothing);
    return test_summary();
}
