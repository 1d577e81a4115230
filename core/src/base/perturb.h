/*
 * perturb.h - timing perturbation for hunting races (test builds only).
 *
 * PERTURB(site) marks a point where a thread racing another one could be
 * delayed: between two steps that other threads may observe apart. In a
 * normal build it is nothing. Built with -DSTOAT_PERTURB (make stress), it
 * calls perturb_point, which, with the probability set by the environment
 * variable STOAT_PERTURB (per 10,000 passes; default 50), yields the CPU
 * or sleeps for up to 200 microseconds, so that interleavings that are
 * one in a million on an idle machine come up every few seconds.
 * Thread-safe: each thread draws from its own random state.
 */
#ifndef STOAT_PERTURB_H
#define STOAT_PERTURB_H

#ifdef STOAT_PERTURB
void perturb_point(const char *site);
#define PERTURB(site) perturb_point(site)
#else
#define PERTURB(site) ((void)0)
#endif

#endif
