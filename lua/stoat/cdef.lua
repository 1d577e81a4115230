-- stoat.cdef: the one ffi.cdef of the module, a copy of core/include/stoat.h.
--
-- `declarations` holds every declaration of stoat.h, comments and
-- preprocessor lines stripped; `defines` holds the values of its #define
-- constants, which the FFI cannot parse: they are declared as static const
-- ints (so C.STOAT_STATS_LEVELS sizes the stats arrays as in C) and kept as
-- Lua values. spec/cdef_spec.lua checks both against stoat.h token by token:
-- change them together. Requiring this module runs ffi.cdef once (require
-- caches it); the FFI C namespace is process-wide and every name is
-- prefixed stoat_/STOAT_.

local ffi = require "ffi"

local M = {}

M.defines = {
    STOAT_VERSION_MAJOR = 0,
    STOAT_VERSION_MINOR = 2,
    STOAT_VERSION_PATCH = 0,
    STOAT_VERSION_STRING = "0.2.0",
    STOAT_KEY_LEN = 32,
    STOAT_MAX_KEY_SIZE = 65536,
    STOAT_MAX_VALUE_SIZE = 1073741824,
    STOAT_MAX_TTL_MS = 2 ^ 50,
    STOAT_STATS_LEVELS = 16,
    STOAT_STREAM_SALT_LEN = 16,
    STOAT_STREAM_OVERHEAD = 40,
}

M.declarations = [[
enum {
    STOAT_OK = 0,
    STOAT_ENOTFOUND = -1,
    STOAT_EINVAL = -2,
    STOAT_ECORRUPT = -3,
    STOAT_EIO = -4,
    STOAT_ENOMEM = -5,
    STOAT_EBUSY = -6,
    STOAT_ECLOSED = -7,
    STOAT_EFORKED = -8,
    STOAT_ECONFLICT = -9,
    STOAT_ETOOBIG = -10,
    STOAT_EREADONLY = -11,
    STOAT_ENOSPC = -12,
    STOAT_ENOTSUP = -13,
    STOAT_EEXIST = -14,
    STOAT_EKEY = -15
};

enum {
    STOAT_COMPRESSION_NONE = 0,
    STOAT_COMPRESSION_LZ4 = 1,
    STOAT_COMPRESSION_ZSTD = 2
};

enum {
    STOAT_SYNC_NONE = 0,
    STOAT_SYNC_COMMIT = 1
};

typedef struct stoat_options {
    int create_if_missing;
    int error_if_exists;
    int read_only;
    int sync;
    uint64_t memtable_size;
    int num_memtables;
    uint32_t block_size;
    int compression;
    int zstd_level;
    double bloom_fp_rate;
    uint64_t cache_size;
    int max_open_files;
    int num_compactors;
    int num_levels;
    uint64_t base_level_size;
    int level_size_multiplier;
    uint64_t table_size;
    int l0_compaction_trigger;
    int l0_slowdown_trigger;
    int l0_stall_trigger;
    int detect_conflicts;
    int num_versions_to_keep;
    uint64_t max_txn_bytes;
    uint64_t max_txn_entries;
    uint32_t value_threshold;
    uint64_t value_log_file_size;
    int value_log_compression;
    int auto_gc;
    double auto_gc_ratio;
    int multi_process;
    uint32_t lock_timeout_ms;
    uint32_t open_timeout_ms;
    const char *shm_dir;
    const uint8_t *encryption_key;
    uint64_t encryption_key_rotation_ms;
} stoat_options;

typedef struct stoat_db stoat_db;
typedef struct stoat_iter stoat_iter;
typedef struct stoat_txn stoat_txn;
typedef struct stoat_batch stoat_batch;
typedef struct stoat_loader stoat_loader;

typedef struct stoat_iter_options {
    const void *prefix;
    size_t prefix_len;
    const void *lower;
    size_t lower_len;
    const void *upper;
    size_t upper_len;
    int keys_only;
    int all_versions;
} stoat_iter_options;

enum {
    STOAT_TXN_READ_ONLY = 1
};

uint64_t stoat_clock_ms(void);

const char *stoat_strerror(int rc);
const char *stoat_errmsg(const stoat_db *db);
const char *stoat_version(void);
void stoat_options_init(stoat_options *opts);
int stoat_open(const char *dir, const stoat_options *opts, stoat_db **out);
int stoat_close(stoat_db *db);

int stoat_put(stoat_db *db, const void *key, size_t klen, const void *val, size_t vlen);
int stoat_delete(stoat_db *db, const void *key, size_t klen);
int stoat_get(stoat_db *db, const void *key, size_t klen, void **val, size_t *vlen);
void stoat_free(void *p);
int stoat_sync(stoat_db *db);
int stoat_flush(stoat_db *db);
int stoat_flatten(stoat_db *db);

int stoat_iter_open(stoat_db *db, const stoat_iter_options *opts, stoat_iter **out);
int stoat_iter_seek_first(stoat_iter *it);
int stoat_iter_seek_last(stoat_iter *it);
int stoat_iter_seek(stoat_iter *it, const void *key, size_t klen);
int stoat_iter_seek_for_prev(stoat_iter *it, const void *key, size_t klen);
int stoat_iter_next(stoat_iter *it);
int stoat_iter_prev(stoat_iter *it);
int stoat_iter_valid(const stoat_iter *it);
int stoat_iter_status(const stoat_iter *it);
int stoat_iter_key(stoat_iter *it, const void **key, size_t *klen);
int stoat_iter_value(stoat_iter *it, const void **val, size_t *vlen);
void stoat_iter_close(stoat_iter *it);
int stoat_iter_meta(stoat_iter *it, uint64_t *version, uint64_t *expires_at, uint8_t *user_meta,
                    int *deleted);

int stoat_txn_begin(stoat_db *db, int flags, stoat_txn **out);
int stoat_txn_begin_at(stoat_db *db, uint64_t read_version, stoat_txn **out);
uint64_t stoat_txn_read_version(const stoat_txn *txn);
int stoat_txn_get(stoat_txn *txn, const void *key, size_t klen, const void **val, size_t *vlen);
int stoat_txn_get_meta(stoat_txn *txn, const void *key, size_t klen, const void **val,
                       size_t *vlen, uint64_t *version, uint64_t *expires_at,
                       uint8_t *user_meta);
int stoat_txn_set(stoat_txn *txn, const void *key, size_t klen, const void *val, size_t vlen);
int stoat_txn_set_ex(stoat_txn *txn, const void *key, size_t klen, const void *val, size_t vlen,
                     uint64_t ttl_ms, uint8_t user_meta);
int stoat_txn_delete(stoat_txn *txn, const void *key, size_t klen);
int stoat_txn_iter_open(stoat_txn *txn, const stoat_iter_options *opts, stoat_iter **out);
int stoat_txn_commit(stoat_txn *txn);
void stoat_txn_discard(stoat_txn *txn);

int stoat_batch_new(stoat_db *db, stoat_batch **out);
int stoat_batch_set(stoat_batch *b, const void *key, size_t klen, const void *val, size_t vlen);
int stoat_batch_set_ex(stoat_batch *b, const void *key, size_t klen, const void *val,
                       size_t vlen, uint64_t ttl_ms, uint8_t user_meta);
int stoat_batch_delete(stoat_batch *b, const void *key, size_t klen);
int stoat_batch_commit(stoat_batch *b);
void stoat_batch_free(stoat_batch *b);

int stoat_loader_new(stoat_db *db, stoat_loader **out);
int stoat_loader_add(stoat_loader *ld, const void *key, size_t klen, const void *val,
                     size_t vlen, uint64_t expires_at_ms, uint8_t user_meta);
int stoat_loader_finish(stoat_loader *ld, uint64_t *version);
void stoat_loader_abort(stoat_loader *ld);

int stoat_gc(stoat_db *db, double discard_ratio, uint64_t *reclaimed);

int stoat_verify(stoat_db *db, char **report, size_t *report_len);

int stoat_drop_prefix(stoat_db *db, const void *prefix, size_t plen);
int stoat_drop_all(stoat_db *db);

typedef struct stoat_stats {
    int num_levels;
    uint64_t level_tables[STOAT_STATS_LEVELS];
    uint64_t level_bytes[STOAT_STATS_LEVELS];
    uint64_t memtables;
    uint64_t memtable_bytes;
    uint64_t block_cache_bytes;
    uint64_t block_cache_capacity;
    uint64_t block_cache_hits;
    uint64_t block_cache_misses;
    uint64_t open_files;
    uint64_t last_version;
    uint64_t flushes;
    uint64_t compactions;
    uint64_t stall_micros;
    uint64_t vlog_files;
    uint64_t vlog_bytes;
    uint64_t vlog_garbage_bytes;
    uint64_t txn_commits;
    uint64_t txn_conflicts;
    uint64_t table_entries;
    uint64_t table_deletions;
    uint64_t memtable_entries;
    uint64_t shared_cache_bytes;
    uint64_t shared_cache_hits;
    uint64_t shared_cache_misses;
} stoat_stats;

int stoat_stats_get(stoat_db *db, stoat_stats *out);

int stoat_rekey(const char *dir, const uint8_t *old_key, const uint8_t *new_key);

int stoat_rotate_key(stoat_db *db);

typedef struct stoat_stream_key stoat_stream_key;

int stoat_stream_key_new(const uint8_t *master, uint8_t *salt, int fresh,
                         stoat_stream_key **out);

void stoat_stream_key_free(stoat_stream_key *k);

int stoat_stream_seal(const stoat_stream_key *k, const void *ad, size_t ad_len, const void *in,
                      size_t len, void *out);

int stoat_stream_open(const stoat_stream_key *k, const void *ad, size_t ad_len, const void *in,
                      size_t len, void *out);
]]

-- The integer #defines that fit an int, as C constants the declarations
-- can use (the others, such as STOAT_MAX_TTL_MS, are Lua values only).
local function constants(defines)
    local names = {}
    for name, value in pairs(defines) do
        if type(value) == "number" and value <= 2147483647 then
            names[#names + 1] = name
        end
    end
    table.sort(names)
    local out = {}
    for i, name in ipairs(names) do
        out[i] = ("static const int %s = %d;"):format(name, defines[name])
    end
    return table.concat(out, "\n")
end

ffi.cdef(constants(M.defines) .. "\n" .. M.declarations)

return M
