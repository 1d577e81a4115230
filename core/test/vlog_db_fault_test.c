/*
 * vlog_db_fault_test.c - value-log GC under crashes and failed writes
 * (100 runs through the fault env: nothing durable lost), and automatic
 * GC shrinking the log by itself. Helpers in vlog_db_util.h.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

#include "db/db_env.h"
#include "db_util.h"
#include "support/env_fault.h"
#include "test.h"
#include "vlog_db_util.h"

/*
 * Crashes and failed writes during GC. Each run loads a small database (a
 * couple of MB over F_KEYS keys: overwrites and deletes), makes it durable
 * with stoat_sync, arms one fault and calls stoat_gc: the n-th append
 * fails (EIO or ENOSPC), or the n-th sync, or the power goes at a random
 * moment (env_fault_crash from a thread). n and the moment are drawn from
 * what an undisturbed GC of the same kind of load does (a calibration
 * run). Then close, drop what was not synced, reopen: every key has its
 * value from before GC, and (every fourth run) so after a GC of the
 * recovered database.
 */
#define F_KEYS 300
#define F_RUNS 100

typedef struct fault_calib {
    long appends, syncs, micros;
} fault_calib;

typedef struct crasher {
    env *e;
    long micros;
    pthread_t th;
} crasher;

static void *crasher_main(void *arg)
{
    crasher *cr = arg;

    usleep((useconds_t)cr->micros);
    env_fault_crash(cr->e);
    return NULL;
}

static void fault_load(stoat_db *db, uint64_t *model, uint64_t *rng)
{
    uint64_t tag = 1;

    for (int round = 0; round < 4; round++) {
        for (uint32_t i = 0; i < F_KEYS; i++) {
            if (round > 0 && rnd(rng, 3) == 0)
                continue;
            vd_put(db, i, tag, 1000 + rnd(rng, 2500));
            model[i] = tag++;
        }
    }
    for (uint32_t i = 0; i < F_KEYS; i++) {
        if (rnd(rng, 6) == 0) {
            vd_delete(db, i);
            model[i] = ABSENT;
        }
    }
    REQUIRE_OK(stoat_sync(db));
}

/* Arms fault `mode` (0..3; other: none) for the GC about to run. */
static int fault_arm(env *fault, int mode, const fault_calib *cal, uint64_t *rng, crasher *cr)
{
    switch (mode) {
    case 0:
        env_fault_fail_append(fault, 1 + (long)rnd(rng, (uint64_t)cal->appends), EIO);
        return 0;
    case 1:
        env_fault_fail_append(fault, 1 + (long)rnd(rng, (uint64_t)cal->appends), ENOSPC);
        return 0;
    case 2:
        env_fault_fail_sync(fault, 1 + (long)rnd(rng, (uint64_t)cal->syncs));
        return 0;
    case 3:
        *cr = (crasher){fault, (long)rnd(rng, (uint64_t)cal->micros), 0};
        REQUIRE(pthread_create(&cr->th, NULL, crasher_main, cr) == 0);
        return 1;
    default:
        return 0;
    }
}

/* One run; returns stoat_gc's rc. With `measure`, records what the GC did. */
static int fault_run(const char *dir, int mode, const fault_calib *cal, uint64_t *rng,
                     fault_calib *measure)
{
    env *fault = env_fault_new(env_posix());
    uint64_t model[F_KEYS];
    long a0, s0, t0;
    stoat_options o;
    stoat_db *db;
    crasher cr;
    int rc_gc, crashing, rc;

    REQUIRE(fault != NULL);
    vd_options(&o);
    vd_clear_dir(dir);
    REQUIRE_OK(db_open_env(dir, &o, fault, &db));
    fault_load(db, model, rng);
    a0 = env_fault_appends(fault);
    s0 = env_fault_syncs(fault);
    t0 = now_micros();
    crashing = fault_arm(fault, mode, cal, rng, &cr);
    rc_gc = stoat_gc(db, 0.2, NULL);
    if (measure)
        *measure = (fault_calib){env_fault_appends(fault) - a0, env_fault_syncs(fault) - s0,
                                 now_micros() - t0};
    if (crashing)
        pthread_join(cr.th, NULL);
    stoat_close(db);
    REQUIRE_OK(env_fault_drop_unsynced(fault));
    if ((rc = db_open_env(dir, &o, fault, &db)) != 0)
        test_fail(__FILE__, __LINE__, "fault %d: reopen: %s: %s", mode, stoat_strerror(rc),
                  stoat_errmsg(NULL));
    REQUIRE(rc == 0);
    vd_check_model(db, model, F_KEYS);
    if (mode < 0 || rnd(rng, 4) == 0) {   /* the recovered files collect too */
        REQUIRE_OK(stoat_gc(db, 0.2, NULL));
        vd_check_model(db, model, F_KEYS);
    }
    REQUIRE_OK(stoat_close(db));
    env_fault_free(fault);
    return rc_gc;
}

static void test_vlog_db_gc_crash_loses_nothing(void)
{
    char dir[DBU_PATH_MAX];
    uint64_t rng = vd_seed() ^ 0xc4a54;
    fault_calib cal;
    int hits = 0;
    long t0 = now_micros();

    dbu_subdir(dir, "run");
    REQUIRE_OK(fault_run(dir, -1, NULL, &rng, &cal));
    printf("  an undisturbed GC: %ld appends, %ld syncs, %ld us\n", cal.appends, cal.syncs,
           cal.micros);
    REQUIRE(cal.appends > 0 && cal.syncs > 0);
    cal.micros += 1;
    for (int i = 0; i < F_RUNS && !test_failed_now; i++)
        hits += fault_run(dir, i % 4, &cal, &rng, NULL) != 0;
    printf("  %d of %d GC calls stopped by the fault; %.1f s\n", hits, F_RUNS,
           (double)(now_micros() - t0) / 1e6);
    CHECK(hits >= F_RUNS / 4);
}

static void test_vlog_db_auto_gc_shrinks_log(void)
{
    enum { N = 2000, LEN = 1000 };
    const char *dir = test_tmpdir();
    uint64_t model[N], before, live = N * VD_REC(LEN);
    long t0;
    stoat_options o;
    stoat_stats st;
    stoat_db *db;

    vd_options(&o);
    o.auto_gc = 1;
    o.auto_gc_ratio = 0.3;
    db = vd_open(dir, &o);
    for (uint64_t r = 0; r < 3; r++)
        vd_fill(db, model, 0, N, 1 + r * N, LEN);
    REQUIRE_OK(stoat_stats_get(db, &st));
    before = st.vlog_bytes;
    t0 = now_micros();
    while (st.vlog_bytes > live + live / 2 && now_micros() - t0 < 20 * 1000000L) {
        usleep(100000);
        REQUIRE_OK(stoat_stats_get(db, &st));
    }
    printf("  value log %.1f MB -> %.1f MB by itself in %.1f s (live %.1f MB)\n", before / 1e6,
           st.vlog_bytes / 1e6, (double)(now_micros() - t0) / 1e6, live / 1e6);
    CHECK(st.vlog_bytes <= live + live / 2);
    CHECK(dbu_dir_bytes(dir, ".vlog") <= live + live / 2);
    vd_check_model(db, model, N);
    REQUIRE_OK(stoat_close(db));
}

int main(int argc, char **argv)
{
    TEST_RUN(test_vlog_db_gc_crash_loses_nothing);
    TEST_RUN(test_vlog_db_auto_gc_shrinks_log);
    return test_summary();
}
