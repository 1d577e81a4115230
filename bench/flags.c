/*
 * flags.c - parses db_bench-style flags into bench_flags (see flags.h).
 * One table names every flag, its kind and where it is stored, so the
 * parser, the checks and --help share it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flags.h"
#include "gen.h"

typedef enum { FLAG_STR, FLAG_INT, FLAG_I64, FLAG_SIZE, FLAG_BOOL, FLAG_DOUBLE, FLAG_U64 } flag_kind;

typedef struct flag_def {
    const char *name;
    flag_kind kind;
    size_t offset;
    const char *help;
} flag_def;

#define F(name, kind, field, help) { name, kind, offsetof(bench_flags, field), help }

static const flag_def flag_defs[] = {
    F("benchmarks", FLAG_STR, benchmarks, "comma-separated benchmarks to run, in order"),
    F("num", FLAG_I64, num, "entries to write (fills), key range of reads"),
    F("reads", FLAG_I64, reads, "reads per thread (-1: num)"),
    F("value_size", FLAG_SIZE, value_size, "bytes per value"),
    F("key_size", FLAG_SIZE, key_size, "bytes per key (zero-padded decimal)"),
    F("batch", FLAG_I64, batch, "entries per write batch"),
    F("batch_size", FLAG_I64, batch, "alias of --batch (RocksDB)"),
    F("entries_per_batch", FLAG_I64, batch, "alias of --batch"),
    F("sync", FLAG_BOOL, sync, "fsync every write (batch)"),
    F("threads", FLAG_INT, threads, "threads for reads, readwhilewriting readers, fillsync"),
    F("seek_nexts", FLAG_I64, seek_nexts, "nexts after each seek of seekrandom"),
    F("compression_ratio", FLAG_DOUBLE, compression_ratio, "how far values compress"),
    F("histogram", FLAG_BOOL, histogram, "print latency percentiles"),
    F("use_existing_db", FLAG_BOOL, use_existing_db, "keep the database in --db"),
    F("bloom_bits", FLAG_INT, bloom_bits, "LevelDB/RocksDB bloom bits per key (-1: none)"),
    F("value_threshold", FLAG_INT, value_threshold, "stoat: values this long go to the value log (0: default)"),
    F("seed", FLAG_U64, seed, "seed of the pseudo-random generators"),
    F("processes", FLAG_INT, processes, "0: run here; N: N processes each open --db (procs.c)"),
    F("multi_process", FLAG_INT, multi_process, "stoat: its multi_process option (-1: stoat's default, on; 0: exclusive)"),
    F("encrypt", FLAG_BOOL, encrypt, "stoat: encryption at rest (a fixed benchmark key)"),
    F("db", FLAG_STR, db, "database directory"),
};

#define FLAG_COUNT (sizeof flag_defs / sizeof flag_defs[0])

void flags_init(bench_flags *f, const char *engine_name)
{
    const char *tmp = getenv("TMPDIR");

    memset(f, 0, sizeof *f);
    f->benchmarks = FLAGS_DEFAULT_BENCHMARKS;
    f->num = 1000000;
    f->reads = -1;
    f->value_size = 100;
    f->key_size = 16;
    f->batch = 1;
    f->threads = 1;
    f->compression_ratio = 0.5;
    f->bloom_bits = 10;
    f->seed = 301;
    f->multi_process = -1;
    snprintf(f->db_default, sizeof f->db_default, "%s/%s_bench-%ld/dbbench",
             tmp && *tmp ? tmp : "/tmp", engine_name, (long)geteuid());
    f->db = f->db_default;
}

static void flags_usage(FILE *out, const char *prog)
{
    fprintf(out, "usage: %s [--flag=value ...]\n", prog);
    for (size_t i = 0; i < FLAG_COUNT; i++)
        fprintf(out, "  --%-18s %s\n", flag_defs[i].name, flag_defs[i].help);
    fprintf(out, "benchmarks: fillseq fillrandom overwrite readrandom readmissing "
                 "readseq readreverse seekrandom readwhilewriting fillsync\n");
}

static int flags_bool(const char *s, int *out)
{
    if (!strcmp(s, "1") || !strcmp(s, "true"))
        *out = 1;
    else if (!strcmp(s, "0") || !strcmp(s, "false"))
        *out = 0;
    else
        return -1;
    return 0;
}

/* Stores the text s into the field def names; -1 when s does not parse. */
static int flags_store(bench_flags *f, const flag_def *def, const char *s)
{
    char *p = (char *)f + def->offset, *end = NULL;

    errno = 0;
    switch (def->kind) {
    case FLAG_STR:
        *(const char **)p = s;
        return 0;
    case FLAG_BOOL:
        return flags_bool(s, (int *)p);
    case FLAG_DOUBLE:
        *(double *)p = strtod(s, &end);
        break;
    case FLAG_U64:
        *(uint64_t *)p = strtoull(s, &end, 10);
        break;
    case FLAG_SIZE:
        *(size_t *)p = (size_t)strtoull(s, &end, 10);
        break;
    case FLAG_I64:
        *(int64_t *)p = strtoll(s, &end, 10);
        break;
    case FLAG_INT: {
        long v = strtol(s, &end, 10);

        if (v < -1000000 || v > 1000000)
            return -1;
        *(int *)p = (int)v;
        break;
    }
    }
    return errno || end == s || *end || *s == '\0' ? -1 : 0;
}

/* The cross-flag checks; prints the first problem. */
static int flags_check(const bench_flags *f)
{
    const char *why = NULL;

    if (f->num < 1)
        why = "--num must be at least 1";
    else if (f->key_size < (size_t)gen_digits((uint64_t)f->num - 1) || f->key_size > 1024)
        why = "--key_size must hold the decimal digits of num - 1 and be at most 1024";
    else if (f->value_size > ((size_t)64 << 20))
        why = "--value_size is at most 64 MiB";
    else if (f->batch < 1)
        why = "--batch must be at least 1";
    else if (f->threads < 1 || f->threads > 1024)
        why = "--threads must be 1..1024";
    else if (f->processes < 0 || f->processes > 64)
        why = "--processes must be 0..64";
    else if (f->multi_process < -1 || f->multi_process > 1)
        why = "--multi_process must be -1, 0 or 1";
    else if (f->seek_nexts < 0)
        why = "--seek_nexts must be at least 0";
    else if (!(f->compression_ratio > 0 && f->compression_ratio <= 1))
        why = "--compression_ratio must be in (0, 1]";
    else if (f->db == NULL || *f->db == '\0')
        why = "--db must name a directory";
    if (why)
        fprintf(stderr, "%s\n", why);
    return why ? -1 : 0;
}

int flags_parse(bench_flags *f, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq;
        size_t name_len;
        size_t d;

        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            flags_usage(stdout, argv[0]);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0)
            goto invalid;
        arg += 2;
        eq = strchr(arg, '=');
        name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        for (d = 0; d < FLAG_COUNT; d++)
            if (strlen(flag_defs[d].name) == name_len &&
                !strncmp(flag_defs[d].name, arg, name_len))
                break;
        if (d == FLAG_COUNT)
            goto invalid;
        if (flags_store(f, &flag_defs[d], eq ? eq + 1 : flag_defs[d].kind == FLAG_BOOL ? "1" : "") != 0)
            goto invalid;
        continue;
    invalid:
        fprintf(stderr, "Invalid flag '%s' (see --help)\n", argv[i]);
        return -1;
    }
    return flags_check(f);
}
