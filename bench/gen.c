/*
 * gen.c - pseudo-random numbers, db_bench keys and compressible values;
 * see gen.h. No shared mutable state: generators and cursors belong to
 * their thread, the value buffer is read-only once built.
 */
#include <stdlib.h>
#include <string.h>

#include "gen.h"

#define GEN_PIECE 100
#define GEN_MIN_BUFFER (1u << 20)

void gen_rand_seed(gen_rand *r, uint64_t seed)
{
    /* splitmix64 walks one cycle of 2^64 states; scrambling the seed puts
     * nearby seeds far apart on it, so their streams do not overlap. */
    r->state = seed;
    r->state = gen_rand_next(r);
}

uint64_t gen_rand_next(gen_rand *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t gen_rand_uniform(gen_rand *r, uint64_t n)
{
    /* Multiply-shift: the bias is below n / 2^64, far under noise. */
    return (uint64_t)(((unsigned __int128)gen_rand_next(r) * n) >> 64);
}

int gen_digits(uint64_t n)
{
    int d = 1;

    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

size_t gen_key(char *buf, size_t key_size, uint64_t k)
{
    size_t i = key_size;

    while (i > 0) {
        buf[--i] = (char)('0' + k % 10);
        k /= 10;
    }
    return key_size;
}

/* One piece: raw random printable characters, repeated to fill it. */
static void gen_piece(char *dst, size_t len, size_t raw, gen_rand *r)
{
    size_t i;

    for (i = 0; i < raw; i++)
        dst[i] = (char)(' ' + gen_rand_uniform(r, 95));
    for (; i < len; i++)
        dst[i] = dst[i - raw];
}

int gen_values_init(gen_values *v, double ratio, size_t max_value, uint64_t seed)
{
    size_t len = max_value * 2 > GEN_MIN_BUFFER ? max_value * 2 : GEN_MIN_BUFFER;
    size_t raw = (size_t)(ratio * GEN_PIECE);
    gen_rand r;

    if (raw < 1)
        raw = 1;
    if (raw > GEN_PIECE)
        raw = GEN_PIECE;
    v->len = len;
    if ((v->data = malloc(len)) == NULL)
        return -1;
    gen_rand_seed(&r, seed);
    for (size_t off = 0; off < len; off += GEN_PIECE) {
        size_t n = len - off < GEN_PIECE ? len - off : GEN_PIECE;

        gen_piece(v->data + off, n, raw < n ? raw : n, &r);
    }
    return 0;
}

void gen_values_free(gen_values *v)
{
    free(v->data);
    v->data = NULL;
    v->len = 0;
}

const char *gen_value(const gen_values *v, size_t *pos, size_t len)
{
    const char *p;

    if (*pos + len > v->len)
        *pos = 0;
    p = v->data + *pos;
    *pos += len;
    return p;
}
