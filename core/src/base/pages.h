/*
 * pages.h - zero-filled memory straight from the kernel, for large tables
 * that start empty and fill sparsely (the memtable's key index and key
 * filter): their pages cost no memory until written, where malloc plus a
 * clearing loop touched every page at once, in every process that keeps
 * a memtable (each multi-process handle has its own).
 */
#ifndef STOAT_PAGES_H
#define STOAT_PAGES_H

#include <stddef.h>

/* n bytes (rounded up to whole pages), zero, aligned to a page; NULL on
 * ENOMEM. Free with pages_free and the same n. */
void *pages_zalloc(size_t n);
void pages_free(void *p, size_t n);

#endif
