/*
 * pages.c - anonymous private mappings (pages.h). Nothing is kept: the
 * caller passes the size back to pages_free.
 */
#include "base/pages.h"

#include <sys/mman.h>

void *pages_zalloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    return p == MAP_FAILED ? NULL : p;
}

void pages_free(void *p, size_t n)
{
    if (p != NULL)
        munmap(p, n);
}
