/*
 * status.h - return codes and detailed error messages.
 *
 * Every internal function returns an int: 0 or a negative STOAT_E* code
 * from stoat.h. Where an error is detected, status_err() records a detailed
 * message in thread-local storage and returns the code, so the usual line is
 *
 *     return status_err(STOAT_ECORRUPT, "%s: bad block checksum at %llu", ...);
 *
 * The message stays until the same thread records another one. Background
 * threads copy theirs into the database's sticky error (db/state.c).
 * Thread-safe: all state is thread-local.
 */
#ifndef STOAT_STATUS_H
#define STOAT_STATUS_H

#include "stoat.h"

#define STATUS_MSG_MAX 512

#if defined(__GNUC__)
#define STATUS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define STATUS_PRINTF(a, b)
#endif

/* Records "fmt ..." as this thread's message and returns rc. */
int status_err(int rc, const char *fmt, ...) STATUS_PRINTF(2, 3);

/* Records the message for an errno value: "<what>: <strerror>", mapping
 * ENOSPC to STOAT_ENOSPC, ENOMEM to STOAT_ENOMEM and the rest to STOAT_EIO.
 * Returns that code. */
int status_errno(int err, const char *what, const char *path);

/* This thread's last message. Borrowed: valid until the thread's next
 * status_err() or status_clear(). "" when none. */
const char *status_msg(void);

/* Replaces this thread's message with a copy of msg (used to hand a
 * background thread's message to the caller). */
void status_set_msg(const char *msg);

void status_clear(void);

/* The one way messages print a key: quoted, bytes outside printable ASCII
 * and the characters " and \ as \xNN, at most STATUS_KEY_SHOWN bytes then
 * "...(N bytes)". dst needs STATUS_KEY_MAX bytes; returns dst. */
#define STATUS_KEY_SHOWN 32
#define STATUS_KEY_MAX (4 * STATUS_KEY_SHOWN + 32)
const char *status_key_str(const void *key, size_t len, char *dst);

#endif
