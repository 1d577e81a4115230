/*
 * compress.c - lz4 and zstd behind one pair of functions.
 */
#include "base/compress.h"

#include <lz4.h>
#include <zstd.h>
#include <string.h>

#include "base/status.h"

int compress_block(int type, int zstd_level, const void *src, size_t len, buf *out)
{
    size_t bound, n;
    int rc;

    switch (type) {
    case STOAT_COMPRESSION_NONE:
        return buf_append(out, src, len);
    case STOAT_COMPRESSION_LZ4:
        if (len > LZ4_MAX_INPUT_SIZE)
            return status_err(STOAT_EINVAL, "lz4: block of %zu bytes too large", len);
        bound = (size_t)LZ4_compressBound((int)len);
        if ((rc = buf_reserve(out, bound)) != 0)
            return rc;
        n = (size_t)LZ4_compress_default(src, out->data + out->len, (int)len, (int)bound);
        if (n == 0)
            return status_err(STOAT_EIO, "lz4: compression failed");
        out->len += n;
        return 0;
    case STOAT_COMPRESSION_ZSTD:
        bound = ZSTD_compressBound(len);
        if ((rc = buf_reserve(out, bound)) != 0)
            return rc;
        n = ZSTD_compress(out->data + out->len, bound, src, len, zstd_level);
        if (ZSTD_isError(n))
            return status_err(STOAT_EIO, "zstd: %s", ZSTD_getErrorName(n));
        out->len += n;
        return 0;
    default:
        return status_err(STOAT_EINVAL, "unknown compression type %d", type);
    }
}

int compress_lz4_fast(const void *src, size_t len, int acceleration, buf *out)
{
    size_t bound, n;
    int rc;

    if (len > LZ4_MAX_INPUT_SIZE)
        return status_err(STOAT_EINVAL, "lz4: block of %zu bytes too large", len);
    bound = (size_t)LZ4_compressBound((int)len);
    if ((rc = buf_reserve(out, bound)) != 0)
        return rc;
    n = (size_t)LZ4_compress_fast(src, out->data + out->len, (int)len, (int)bound, acceleration);
    if (n == 0)
        return status_err(STOAT_EIO, "lz4: compression failed");
    out->len += n;
    return 0;
}

int decompress_block(int type, const void *src, size_t len, void *dst, size_t raw_len)
{
    size_t n;
    int got;

    switch (type) {
    case STOAT_COMPRESSION_NONE:
        if (len != raw_len)
            break;
        memcpy(dst, src, len);
        return 0;
    case STOAT_COMPRESSION_LZ4:
        if (len > LZ4_MAX_INPUT_SIZE || raw_len > LZ4_MAX_INPUT_SIZE)
            break;
        got = LZ4_decompress_safe(src, dst, (int)len, (int)raw_len);
        if (got < 0 || (size_t)got != raw_len)
            break;
        return 0;
    case STOAT_COMPRESSION_ZSTD:
        n = ZSTD_decompress(dst, raw_len, src, len);
        if (ZSTD_isError(n) || n != raw_len)
            break;
        return 0;
    default:
        return status_err(STOAT_ECORRUPT, "unknown compression type %d in block", type);
    }
    return status_err(STOAT_ECORRUPT, "compressed block (type %d) does not expand to %zu bytes",
                      type, raw_len);
}

int decompress_size_ok(int type, const void *src, size_t len, size_t raw_len)
{
    switch (type) {
    case STOAT_COMPRESSION_NONE:
        return len == raw_len;
    case STOAT_COMPRESSION_LZ4:
        return raw_len <= LZ4_MAX_INPUT_SIZE && (uint64_t)raw_len <= 255 * (uint64_t)len + 64;
    case STOAT_COMPRESSION_ZSTD:
        return ZSTD_getFrameContentSize(src, len) == (unsigned long long)raw_len;
    default:
        return 0;
    }
}
