/*
 * perturb.c - random delays at marked points (perturb.h), compiled to
 * nothing unless STOAT_PERTURB is defined.
 */
#include "base/perturb.h"

#ifdef STOAT_PERTURB
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static _Thread_local uint64_t perturb_rng;
static int perturb_rate = -1;   /* per 10,000; read once */

static uint64_t perturb_next(void)
{
    if (perturb_rng == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        perturb_rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)&perturb_rng ^
                      (uint64_t)pthread_self() ^ 0x9e3779b97f4a7c15ull;
    }
    perturb_rng ^= perturb_rng << 13;
    perturb_rng ^= perturb_rng >> 7;
    perturb_rng ^= perturb_rng << 17;
    return perturb_rng;
}

void perturb_point(const char *site)
{
    uint64_t r;

    (void)site;
    if (perturb_rate < 0) {
        const char *s = getenv("STOAT_PERTURB");
        perturb_rate = s && *s ? atoi(s) : 50;
    }
    r = perturb_next();
    if ((int)(r % 10000) >= perturb_rate)
        return;
    if ((r >> 20) & 1)
        sched_yield();
    else
        usleep((useconds_t)((r >> 24) % 200));
}
#else
typedef int perturb_unused; /* ISO C wants a declaration in every file */
#endif
