/*
 * test.h - the C tests' tiny harness.
 *
 * A test file defines `static void test_<file>_<behaviour>(void)` functions
 * and lists them in main with TEST_RUN. CHECK records a failure with its
 * line and lets the test go on; REQUIRE stops the current test. Every test
 * prints "PASS name" or "FAIL name"; the last line is "N passed, N failed",
 * which core/test/run.sh adds up. A test may name one or more tests on
 * the command line to run only those.
 *
 * test_tmpdir() gives each test a fresh directory under $TMPDIR (or /tmp),
 * removed after the test unless STOAT_KEEP_TMP is set.
 */
#ifndef STOAT_TEST_H
#define STOAT_TEST_H

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stoat.h"

extern int test_failed_now;
extern jmp_buf test_jmp;
extern const char *test_current;

void test_fail(const char *file, int line, const char *fmt, ...);
const char *test_tmpdir(void);
void test_begin(const char *name);
void test_end(void);
int test_selected(int argc, char **argv, const char *name);
int test_summary(void);
/* A deterministic xorshift generator for tests. */
uint64_t test_rand(uint64_t *state);

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond))                                                       \
            test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);             \
    } while (0)

#define REQUIRE(cond)                                                      \
    do {                                                                   \
        if (!(cond)) {                                                     \
            test_fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond);           \
            longjmp(test_jmp, 1);                                          \
        }                                                                  \
    } while (0)

/* Checks that expr returns rc_expected; on mismatch prints the message. */
#define CHECK_RC(expr, rc_expected)                                        \
    do {                                                                   \
        int rc_ = (expr);                                                  \
        if (rc_ != (rc_expected))                                          \
            test_fail(__FILE__, __LINE__, "%s = %d (%s: %s), want %d",     \
                      #expr, rc_, stoat_strerror(rc_), stoat_errmsg(NULL), \
                      (rc_expected));                                      \
    } while (0)

#define REQUIRE_OK(expr)                                                   \
    do {                                                                   \
        int rc_ = (expr);                                                  \
        if (rc_ != 0) {                                                    \
            test_fail(__FILE__, __LINE__, "%s = %d (%s: %s)", #expr, rc_,  \
                      stoat_strerror(rc_), stoat_errmsg(NULL));            \
            longjmp(test_jmp, 1);                                          \
        }                                                                  \
    } while (0)

#define TEST_RUN(fn)                                                       \
    do {                                                                   \
        if (test_selected(argc, argv, #fn)) {                              \
            test_begin(#fn);                                               \
            if (setjmp(test_jmp) == 0)                                     \
                fn();                                                      \
            test_end();                                                    \
        }                                                                  \
    } while (0)

#endif
