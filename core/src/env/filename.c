/*
 * filename.c - building and parsing NNNNNN.ext names (filename.h).
 */
#include "env/filename.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void filename_format(char *name, uint64_t id, const char *ext)
{
    snprintf(name, FILENAME_MAX_LEN, "%06llu.%s", (unsigned long long)id, ext);
}

char *filename_path(const char *dir, uint64_t id, const char *ext)
{
    int n = snprintf(NULL, 0, "%s/%06llu.%s", dir, (unsigned long long)id, ext);
    char *p = n < 0 ? NULL : malloc((size_t)n + 1);

    if (p != NULL)
        snprintf(p, (size_t)n + 1, "%s/%06llu.%s", dir, (unsigned long long)id, ext);
    return p;
}

int filename_parse(const char *name, const char *ext, int canonical, uint64_t *id)
{
    const char *dot = strchr(name, '.');
    char canon[FILENAME_MAX_LEN];
    uint64_t v = 0;

    if (dot == NULL || dot == name || strcmp(dot + 1, ext) != 0)
        return 0;
    for (const char *p = name; p < dot; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (canonical) {
        filename_format(canon, v, ext);
        if (strcmp(canon, name) != 0)
            return 0;
    }
    *id = v;
    return 1;
}
