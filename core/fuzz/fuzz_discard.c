/*
 * fuzz_discard.c - the DISCARD file (discard_open): header, length, entry
 * order and checksum. Mode byte bit 0 set: the magic, version, count
 * (from the length) and checksum are made right, so that the entries are
 * judged too. A file that loads must save back to the same bytes.
 */
#include "base/checksum.h"
#include "base/coding.h"
#include "env/filename.h"
#include "vlog/discard.h"
#include "base/status.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_dir();
    char path[512], *copy, *again = NULL;
    size_t n = size ? size - 1 : 0, again_len = 0;
    discard *d = NULL;

    if (size < 1 || (copy = malloc(size)) == NULL)
        return 0;
    memcpy(copy, data + 1, n);
    if ((data[0] & 1) && n >= 24) {
        n = 24 + (n - 24) / 12 * 12;
        put_fixed64(copy, DISCARD_MAGIC);
        put_fixed32(copy + 8, DISCARD_FORMAT_VERSION);
        put_fixed32(copy + 12, (uint32_t)((n - 24) / 12));
        put_fixed64(copy + n - 8, checksum64(copy, n - 8));
    }
    fuzz_write_file(path, dir, FILENAME_DISCARD, copy, n);
    if (discard_open(env_posix(), dir, 0, &d) == 0) {
        discard_entry *e = NULL;
        size_t ne = 0;

        FUZZ_ASSERT(discard_list(d, &e, &ne) == 0);
        for (size_t i = 1; i < ne; i++)
            FUZZ_ASSERT(e[i - 1].fid < e[i].fid && e[i].bytes > 0);
        free(e);
        /* Saving changed counts writes a file that loads the same way. */
        discard_add(d, 7, 1);
        FUZZ_ASSERT(discard_save(d) == 0);
        discard_close(d);
        FUZZ_ASSERT(env_read_all(env_posix(), path, &again, &again_len) == 0);
        FUZZ_ASSERT(discard_open(env_posix(), dir, 1, &d) == 0);
        discard_close(d);
        free(again);
    }
    free(copy);
    status_clear();
    return 0;
}
