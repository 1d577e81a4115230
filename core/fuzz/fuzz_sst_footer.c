/*
 * fuzz_sst_footer.c - the SST footer decoder (sst_footer_decode) on any
 * 68 bytes. Mode byte odd: the footer checksum is made right first, so
 * that the handles and version behind it are decoded too. A footer that
 * decodes must encode back to the same bytes.
 */
#include "base/checksum.h"
#include "base/coding.h"
#include "table/sst_format.h"
#include "base/status.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char src[SST_FOOTER_LEN], again[SST_FOOTER_LEN];
    sst_footer f;

    if (size < 1)
        return 0;
    memset(src, 0, sizeof(src));
    memcpy(src, data + 1, size - 1 < sizeof(src) ? size - 1 : sizeof(src));
    if (data[0] & 1)
        put_fixed64(src + 52, checksum64(src, 52));
    if (data[0] & 2)
        put_fixed64(src + 60, SST_MAGIC);
    if (sst_footer_decode(src, "fuzz.sst", &f) == 0) {
        sst_footer_encode(again, &f);
        FUZZ_ASSERT(memcmp(src, again, sizeof(src)) == 0);
    }
    status_clear();
    return 0;
}
