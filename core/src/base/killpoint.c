/*
 * killpoint.c - the kill and stop points of test builds (killpoint.h),
 * compiled to nothing unless STOAT_TESTING is defined.
 */
#include "base/killpoint.h"

#ifdef STOAT_TESTING
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic unsigned long killpoint_passes[2];

/* 1 when var arms name ("name" or "name:nth") and this pass is the nth. */
static int killpoint_armed(const char *var, const char *name, _Atomic unsigned long *passes)
{
    const char *s = getenv(var);
    size_t len = strlen(name);
    unsigned long nth = 1;

    if (s == NULL || strncmp(s, name, len) != 0 || (s[len] != '\0' && s[len] != ':'))
        return 0;
    if (s[len] == ':')
        nth = strtoul(s + len + 1, NULL, 10);
    return atomic_fetch_add(passes, 1) + 1 == (nth ? nth : 1);
}

void killpoint_hit(const char *name)
{
    if (killpoint_armed("STOAT_KILL_AT", name, &killpoint_passes[0]))
        raise(SIGKILL);
    if (killpoint_armed("STOAT_STOP_AT", name, &killpoint_passes[1]))
        raise(SIGSTOP);
}
#else
typedef int killpoint_unused; /* ISO C wants a declaration in every file */
#endif
