/*
 * killpoint.h - named points where a test can kill (or stop) the process
 * (test builds only).
 *
 * KILL_POINT(name) marks a step of the commit, rotation, flush,
 * compaction and take-over paths after which a crash leaves something
 * half-done for the other processes (or a restart) to repair. In a normal
 * build it is nothing. In a test build (-DSTOAT_TESTING, the library the
 * C tests link) it calls killpoint_hit, which compares name with two
 * environment variables of the process:
 *
 *   STOAT_KILL_AT=name[:nth]   raise(SIGKILL) at the nth pass (default 1)
 *   STOAT_STOP_AT=name[:nth]   raise(SIGSTOP) at the nth pass, then go on
 *                              when continued (SIGCONT)
 *
 * Passes are counted per process and per variable, from the first pass
 * at the armed name. The variables are read at every pass (getenv), so a
 * forked child may set them before it opens. Thread-safe.
 * core/test/mp_proof_test.c lists the names and drives them.
 */
#ifndef STOAT_KILLPOINT_H
#define STOAT_KILLPOINT_H

#ifdef STOAT_TESTING
void killpoint_hit(const char *name);
#define KILL_POINT(name) killpoint_hit(name)
#else
#define KILL_POINT(name) ((void)0)
#endif

#endif
