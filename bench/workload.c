/*
 * workload.c - what each benchmark does in one thread, through the engine
 * table only (engine.h), so every engine runs the same code.
 *
 * Writes go one entry at a time when --batch is 1 and in batches of
 * --batch entries otherwise; a batch counts as that many operations (as in
 * RocksDB's db_bench). Keys are drawn from [0, num): in order for fillseq,
 * uniformly with replacement for the random writes and reads. A found
 * value must have --value_size bytes, which catches a broken adapter.
 * Iterator benchmarks touch every page of each value they pass, so an
 * engine that maps its files (LMDB) really reads them too.
 *
 * Each function runs in its own thread on its own bench_thread; it stops
 * early when another thread failed (b->failed).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "driver.h"

#define WORKLOAD_PAGE 4096

/* Reads one byte of every page of p so that mapped bytes are faulted in. */
static unsigned workload_touch(const void *p, size_t len)
{
    const unsigned char *c = p;
    unsigned sum = 0;

    for (size_t i = 0; i < len; i += WORKLOAD_PAGE)
        sum += c[i];
    return len ? sum + c[len - 1] : sum;
}

/* Records the adapter's message for the main thread and stops the others. */
static int workload_fail(bench_thread *t, const char *what)
{
    snprintf(t->err, sizeof t->err, "%s: %s", what, engine_errmsg());
    atomic_store(&t->b->failed, 1);
    return ENGINE_ERR;
}

static size_t workload_key(bench_thread *t, uint64_t k)
{
    return gen_key(t->key, t->b->f.key_size, k);
}

/* Writes n entries as one put or one batch: keys first.. in order when
 * seq, else uniformly random ones. */
static int workload_write(bench_thread *t, int64_t first, int64_t n, int seq)
{
    const bench *b = t->b;
    size_t vlen = b->f.value_size;

    if (n == 1) {
        uint64_t k = seq ? (uint64_t)first : gen_rand_uniform(&t->rand, (uint64_t)b->f.num);
        size_t klen = workload_key(t, k);

        if (engine.put(t->s, t->key, klen, gen_value(&b->values, &t->value_pos, vlen), vlen))
            return workload_fail(t, "put");
    } else {
        if (engine.batch_begin(t->s))
            return workload_fail(t, "batch_begin");
        for (int64_t j = 0; j < n; j++) {
            uint64_t k = seq ? (uint64_t)(first + j) : gen_rand_uniform(&t->rand, (uint64_t)b->f.num);
            size_t klen = workload_key(t, k);

            if (engine.batch_put(t->s, t->key, klen,
                                 gen_value(&b->values, &t->value_pos, vlen), vlen))
                return workload_fail(t, "batch_put");
        }
        if (engine.batch_commit(t->s))
            return workload_fail(t, "batch_commit");
    }
    t->st.bytes += (uint64_t)n * (b->f.key_size + vlen);
    t->st.user_written += (uint64_t)n * (b->f.key_size + vlen);
    stats_ops(&t->st, (uint64_t)n);
    return ENGINE_OK;
}

static int workload_fill(bench_thread *t, int seq)
{
    int64_t batch = t->b->f.batch;

    for (int64_t i = 0; i < t->ops && !atomic_load(&t->b->failed); i += batch) {
        int64_t n = t->ops - i < batch ? t->ops - i : batch;

        if (workload_write(t, t->first + i, n, seq))
            return ENGINE_ERR;
    }
    return ENGINE_OK;
}

int workload_fill_seq(bench_thread *t)
{
    return workload_fill(t, 1);
}

int workload_fill_random(bench_thread *t)
{
    return workload_fill(t, 0);
}

int workload_write_while_reading(bench_thread *t)
{
    while (atomic_load(&t->b->readers_left) > 0 && !atomic_load(&t->b->failed))
        if (workload_write(t, 0, t->b->f.batch, 0))
            return ENGINE_ERR;
    return ENGINE_OK;
}

/* Point reads of random keys; missing adds a "." so no key matches. */
static int workload_get(bench_thread *t, int missing)
{
    const bench *b = t->b;
    int rc = ENGINE_OK;

    for (int64_t i = 0; i < t->ops && !atomic_load(&b->failed); i++) {
        size_t klen = workload_key(t, gen_rand_uniform(&t->rand, (uint64_t)b->f.num));

        if (missing)
            t->key[klen++] = '.';
        rc = engine.get(t->s, t->key, klen, &t->val);
        if (rc == ENGINE_OK) {
            if (t->val.len != b->f.value_size) {
                engine_error("key %.*s has a %zu-byte value, want %zu", (int)klen,
                             t->key, t->val.len, b->f.value_size);
                return workload_fail(t, "get");
            }
            t->st.found++;
            t->st.bytes += klen + t->val.len;
        } else if (rc != ENGINE_NOTFOUND) {
            return workload_fail(t, "get");
        }
        stats_ops(&t->st, 1);
    }
    return ENGINE_OK;
}

int workload_read_random(bench_thread *t)
{
    int rc = workload_get(t, 0);

    atomic_fetch_sub(&t->b->readers_left, 1);
    return rc;
}

int workload_read_missing(bench_thread *t)
{
    return workload_get(t, 1);
}

/* Adds the current entry's bytes; ENGINE_ERR when they cannot be read. */
static int workload_entry(bench_thread *t, engine_iter *it)
{
    const void *k, *v;
    size_t klen, vlen;

    if (engine.iter_key(it, &k, &klen) || engine.iter_value(it, &v, &vlen))
        return ENGINE_ERR;
    t->touched += workload_touch(v, vlen);
    t->st.bytes += klen + vlen;
    return ENGINE_OK;
}

/* Scans up to ops entries forward or backward over one snapshot. */
static int workload_scan(bench_thread *t, int reverse)
{
    engine_iter *it = NULL;
    int64_t i;

    if (engine.iter_open(t->s, &it))
        return workload_fail(t, "iter_open");
    if (reverse ? engine.iter_seek_last(it) : engine.iter_seek_first(it))
        goto fail;
    for (i = 0; i < t->ops && engine.iter_valid(it); i++) {
        if (workload_entry(t, it))
            goto fail;
        stats_ops(&t->st, 1);
        if (reverse ? engine.iter_prev(it) : engine.iter_next(it))
            goto fail;
        if ((i & 1023) == 0 && atomic_load(&t->b->failed))
            break;
    }
    engine.iter_close(it);
    return ENGINE_OK;
fail:
    engine.iter_close(it);
    return workload_fail(t, "iterator");
}

int workload_read_seq(bench_thread *t)
{
    return workload_scan(t, 0);
}

int workload_read_reverse(bench_thread *t)
{
    return workload_scan(t, 1);
}

/* One seek on a new iterator, then --seek_nexts nexts. */
static int workload_seek_one(bench_thread *t, engine_iter *it, size_t klen)
{
    const void *k;
    size_t found_len;

    if (engine.iter_seek(it, t->key, klen))
        return ENGINE_ERR;
    if (engine.iter_valid(it)) {
        if (engine.iter_key(it, &k, &found_len))
            return ENGINE_ERR;
        if (found_len == klen && memcmp(k, t->key, klen) == 0)
            t->st.found++;
        if (workload_entry(t, it))
            return ENGINE_ERR;
    }
    for (int64_t j = 0; j < t->b->f.seek_nexts && engine.iter_valid(it); j++) {
        if (engine.iter_next(it))
            return ENGINE_ERR;
        if (engine.iter_valid(it) && workload_entry(t, it))
            return ENGINE_ERR;
    }
    return ENGINE_OK;
}

int workload_seek_random(bench_thread *t)
{
    const bench *b = t->b;

    for (int64_t i = 0; i < t->ops && !atomic_load(&b->failed); i++) {
        size_t klen = workload_key(t, gen_rand_uniform(&t->rand, (uint64_t)b->f.num));
        engine_iter *it = NULL;
        int rc;

        if (engine.iter_open(t->s, &it))
            return workload_fail(t, "iter_open");
        rc = workload_seek_one(t, it, klen);
        engine.iter_close(it);
        if (rc)
            return workload_fail(t, "seek");
        stats_ops(&t->st, 1);
    }
    return ENGINE_OK;
}
