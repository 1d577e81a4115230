/*
 * options.c - the options' defaults (stoat_options_init) and the check
 * every open makes of them. The defaults are also listed at each field in
 * stoat.h. No state; thread-safe.
 */
#include <string.h>

#include "db/options.h"
#include "base/status.h"

void stoat_options_init(stoat_options *o)
{
    memset(o, 0, sizeof(*o));
    o->create_if_missing = 1;
    o->sync = STOAT_SYNC_NONE;
    o->memtable_size = 32ull << 20;
    o->num_memtables = 4;
    o->block_size = 4096;
    o->compression = STOAT_COMPRESSION_LZ4;
    o->zstd_level = 1;
    o->bloom_fp_rate = 0.01;
    o->cache_size = 256ull << 20;
    o->max_open_files = 1000;
    o->num_compactors = 2;
    o->num_levels = 7;
    o->base_level_size = 256ull << 20;
    o->level_size_multiplier = 10;
    o->table_size = 64ull << 20;
    o->l0_compaction_trigger = 4;
    o->l0_slowdown_trigger = 12;
    o->l0_stall_trigger = 20;
    o->detect_conflicts = 1;
    o->num_versions_to_keep = 1;
    o->max_txn_bytes = 0;
    o->max_txn_entries = 100000;
    o->value_threshold = 1024;
    o->value_log_compression = STOAT_COMPRESSION_LZ4;
    o->value_log_file_size = 256ull << 20;
    o->auto_gc = 1;
    o->auto_gc_ratio = 0.5;
    o->multi_process = 1;
    o->lock_timeout_ms = 5000;
    o->open_timeout_ms = 0;
    o->shm_dir = NULL;
}

int db_options_check(const stoat_options *o)
{
#define BAD(cond, what) \
    if (cond)           \
        return status_err(STOAT_EINVAL, "option %s", what)
    BAD(o->sync != STOAT_SYNC_NONE && o->sync != STOAT_SYNC_COMMIT, "sync: not a STOAT_SYNC_* value");
    BAD(o->memtable_size < (64u << 10) || o->memtable_size > (2ull << 30),
        "memtable_size: must be 64 KiB .. 2 GiB");
    BAD(o->num_memtables < 2 || o->num_memtables > 64, "num_memtables: must be 2..64");
    BAD(o->multi_process != 0 && o->multi_process != 1, "multi_process: must be 0 or 1");
    BAD(o->lock_timeout_ms > 3600000u, "lock_timeout_ms: at most one hour");
    BAD(o->open_timeout_ms > 3600000u, "open_timeout_ms: at most one hour");
    BAD(o->block_size < 256 || o->block_size > (4u << 20), "block_size: must be 256 B .. 4 MiB");
    BAD(o->compression < STOAT_COMPRESSION_NONE || o->compression > STOAT_COMPRESSION_ZSTD,
        "compression: not a STOAT_COMPRESSION_* value");
    BAD(o->zstd_level < -7 || o->zstd_level > 22, "zstd_level: must be -7..22");
    BAD(o->value_log_compression < STOAT_COMPRESSION_NONE ||
            o->value_log_compression > STOAT_COMPRESSION_ZSTD,
        "value_log_compression: not a STOAT_COMPRESSION_* value");
    BAD(!(o->bloom_fp_rate >= 0 && o->bloom_fp_rate < 1), "bloom_fp_rate: must be in [0, 1)");
    BAD(o->max_open_files < 16, "max_open_files: must be at least 16");
    BAD(o->num_compactors < 1 || o->num_compactors > DB_MAX_COMPACTORS,
        "num_compactors: must be 1..16");
    BAD(o->num_levels < 2 || o->num_levels > MAX_LEVELS, "num_levels: must be 2..16");
    BAD(o->base_level_size < (64u << 10), "base_level_size: must be at least 64 KiB");
    BAD(o->level_size_multiplier < 2 || o->level_size_multiplier > 100,
        "level_size_multiplier: must be 2..100");
    BAD(o->table_size < (64u << 10), "table_size: must be at least 64 KiB");
    BAD(o->l0_compaction_trigger < 1, "l0_compaction_trigger: must be at least 1");
    BAD(o->l0_slowdown_trigger < o->l0_compaction_trigger,
        "l0_slowdown_trigger: must be >= l0_compaction_trigger");
    BAD(o->l0_stall_trigger < o->l0_slowdown_trigger,
        "l0_stall_trigger: must be >= l0_slowdown_trigger");
    BAD(o->num_versions_to_keep < 1, "num_versions_to_keep: must be at least 1");
    BAD(o->max_txn_entries < 1, "max_txn_entries: must be at least 1");
    BAD(o->value_threshold < 1, "value_threshold: must be at least 1");
    BAD(o->value_log_file_size < (1u << 20) || o->value_log_file_size > (4ull << 30),
        "value_log_file_size: must be 1 MiB .. 4 GiB");
    BAD(!(o->auto_gc_ratio > 0 && o->auto_gc_ratio < 1), "auto_gc_ratio: must be in (0, 1)");
    BAD(o->max_txn_bytes > o->memtable_size / 2,
        "max_txn_bytes: must be at most memtable_size / 2 (a transaction fits in one memtable)");
#undef BAD
    return 0;
}
