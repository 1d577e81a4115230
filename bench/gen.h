/*
 * gen.h - what the benchmarks write: pseudo-random numbers, keys and values.
 *
 * gen_rand is a small, fast, seedable generator (splitmix64); each thread
 * owns its own, seeded from the run's seed and its thread index, so runs
 * are repeatable and threads share no state.
 *
 * Keys are the db_bench ones: the index written as zero-padded decimal,
 * key_size characters wide ("0000000000000042" for 16 bytes).
 *
 * Values are slices of one read-only buffer built at start-up, shared by
 * all threads: every 100-byte piece holds ratio*100 random printable
 * characters repeated to fill it, so a block compressor shrinks values to
 * about `ratio` of their size (as db_bench's CompressibleString does). A
 * thread walks the buffer with its own cursor.
 */
#ifndef BENCH_GEN_H
#define BENCH_GEN_H

#include <stddef.h>
#include <stdint.h>

typedef struct gen_rand {
    uint64_t state;
} gen_rand;

void gen_rand_seed(gen_rand *r, uint64_t seed);
uint64_t gen_rand_next(gen_rand *r);
/* Uniform in [0, n); n > 0. */
uint64_t gen_rand_uniform(gen_rand *r, uint64_t n);

/* Decimal digits needed to write n (1 for 0). */
int gen_digits(uint64_t n);

/*
 * Writes index k as key_size zero-padded decimal characters into buf
 * (which holds at least key_size + 1 bytes; no terminator is written).
 * The caller checked that key_size >= gen_digits(k). Returns key_size.
 */
size_t gen_key(char *buf, size_t key_size, uint64_t k);

typedef struct gen_values {
    char *data;
    size_t len;
} gen_values;

/*
 * Builds the shared buffer: at least 1 MiB and twice max_value bytes.
 * Returns 0, or -1 when out of memory.
 */
int gen_values_init(gen_values *v, double ratio, size_t max_value, uint64_t seed);
void gen_values_free(gen_values *v);

/*
 * The next len bytes for the thread whose cursor is *pos (start at 0).
 * Borrowed from v: valid until gen_values_free. len <= v->len / 2.
 */
const char *gen_value(const gen_values *v, size_t *pos, size_t len);

#endif /* BENCH_GEN_H */
