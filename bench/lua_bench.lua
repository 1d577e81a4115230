-- lua_bench.lua - db_bench for stoat's Lua face: the flags, workloads and
-- output of bench/stoat_bench (driver.c, workload.c), run through the Lua
-- module the way an application would use it, so its figures compare line
-- by line with the C tool's on the same machine.
--
--     luajit bench/lua_bench.lua --benchmarks=fillrandom,readrandom,readseq \
--         --num=500000 --value_size=100 [--batch=B] [--sync=1] [--db=DIR]
--
-- Same as the C tool: keys are the index as key_size zero-padded decimal
-- digits; values are slices of a buffer of 100-byte pieces, half random
-- printable characters and half a repeat of them (gen.c, byte for byte);
-- the pseudo-random streams (splitmix64, multiply-shift ranges) and their
-- seeds per benchmark are gen.c's and driver.c's, so both tools write and
-- read the same keys in the same order. The value slices are made into Lua
-- strings before each write benchmark (the C tool too has its values
-- ready in memory) and dropped before each read benchmark: LuaJIT interns
-- every string, so a value read back while its twin is alive would be
-- looked up in the string table (a memcmp against a cold copy; measured
-- dearer than making it) instead of being made, which is not what an
-- application reading its data sees. Keys are formatted per operation, as
-- an application builds its keys.
--
-- The API used is the natural one: db:set and db:get for single operations,
-- db:batch() with b:set and b:commit for --batch > 1, db:view with
-- txn:pairs{reverse =, limit =} for the scans, and one
-- txn:pairs{start =, limit =} per seek (a new iterator per seek, as the C
-- tool opens one). Two flags without a C counterpart use the module's
-- buffer paths: --key_buffer=1 builds each key of the sets and gets in a
-- string.buffer and passes the buffer (no key string), and the scans and
-- seeks pass key_buffer = a string.buffer (keys copied into it, not made
-- strings); --value_buffer=1 makes the gets pass a string.buffer for the
-- value (db:get(key, buf)) and the scans and seeks value_buffer = one.
-- (The seek's start key is a string either way.)
--
-- One Lua thread: --threads must be 1, and readwhilewriting (which needs a
-- concurrent writer) is refused, though it still counts in the seeds so
-- the other benchmarks draw what the C tool draws. It finds lua/stoat.lua
-- and build/libstoat.so relative to itself ($STOAT_LIB overrides the
-- library, see lua/stoat/base.lua). The database directory is deleted only
-- when it is empty or holds a MANIFEST, as the C tool does.

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/../lua/?.lua;" .. package.path
package.cpath = here .. "/../build/?.so;" .. package.cpath

local ffi = require "ffi"
local bit = require "bit"
local stoat = require "stoat"

local band, bxor, rshift = bit.band, bit.bxor, bit.rshift
local floor, sqrt, huge = math.floor, math.sqrt, math.huge
local fmt = string.format
local tonumber, tostring, type = tonumber, tostring, type

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } lua_bench_timespec;
int clock_gettime(int clock_id, lua_bench_timespec *tp);
unsigned int geteuid(void);
int memcmp(const void *a, const void *b, size_t n);
]]

local CLOCK_MONOTONIC = 1 -- Linux
local MB = 1048576
local MARKER = "MANIFEST"

local function die(...)
    io.stderr:write(fmt(...), "\n")
    os.exit(1)
end

-- Flags ------------------------------------------------------------------

local DEFAULT_BENCHMARKS = "fillseq,fillrandom,overwrite,readrandom,readmissing,readseq,"
    .. "readreverse,seekrandom,fillsync"

-- name -> { kind, field, help }; kinds: str, int, bool, double.
local FLAGS = {
    { "benchmarks", "str", "benchmarks", "comma-separated benchmarks to run, in order" },
    { "num", "int", "num", "entries to write (fills), key range of reads" },
    { "reads", "int", "reads", "reads (-1: num)" },
    { "value_size", "int", "value_size", "bytes per value" },
    { "key_size", "int", "key_size", "bytes per key (zero-padded decimal)" },
    { "batch", "int", "batch", "entries per write batch" },
    { "batch_size", "int", "batch", "alias of --batch (RocksDB)" },
    { "entries_per_batch", "int", "batch", "alias of --batch" },
    { "sync", "bool", "sync", "fsync every write (batch)" },
    { "threads", "int", "threads", "must be 1 (one Lua thread)" },
    { "seek_nexts", "int", "seek_nexts", "nexts after each seek of seekrandom" },
    { "compression_ratio", "double", "compression_ratio", "how far values compress" },
    { "histogram", "bool", "histogram", "print latency percentiles" },
    { "use_existing_db", "bool", "use_existing_db", "keep the database in --db" },
    { "bloom_bits", "int", "bloom_bits", "-1: no bloom filter; else stoat's 1%" },
    { "value_threshold", "int", "value_threshold",
      "values this long go to the value log (0: default)" },
    { "seed", "int", "seed", "seed of the pseudo-random generators" },
    { "key_buffer", "bool", "key_buffer",
      "keys in a string.buffer: sets and gets pass one, scans and seeks yield one "
      .. "(Lua only)" },
    { "value_buffer", "bool", "value_buffer",
      "values into a string.buffer: gets and scans and seeks (Lua only)" },
    { "db", "str", "db", "database directory" },
}

local function flags_defaults()
    local tmp = os.getenv("TMPDIR")
    if tmp == nil or tmp == "" then
        tmp = "/tmp"
    end
    return {
        benchmarks = DEFAULT_BENCHMARKS, num = 1000000, reads = -1, value_size = 100,
        key_size = 16, batch = 1, sync = false, threads = 1, seek_nexts = 0,
        compression_ratio = 0.5, histogram = false, use_existing_db = false,
        bloom_bits = 10, value_threshold = 0, seed = 301, value_buffer = false,
        key_buffer = false,
        db = fmt("%s/stoat_lua_bench-%d/dbbench", tmp, ffi.C.geteuid()),
    }
end

local function usage()
    print("usage: luajit bench/lua_bench.lua [--flag=value ...]")
    for _, d in ipairs(FLAGS) do
        print(fmt("  --%-18s %s", d[1], d[4]))
    end
    print("benchmarks: fillseq fillrandom overwrite readrandom readmissing readseq "
          .. "readreverse seekrandom fillsync")
end

-- The value of text s for a flag of kind; nil when it does not parse.
local function flag_value(kind, s)
    if kind == "str" then
        return s
    elseif kind == "bool" then
        if s == "1" or s == "true" then return true end
        if s == "0" or s == "false" then return false end
        return nil
    end
    local v = tonumber(s)
    if v == nil or s:find("^%s") then
        return nil
    end
    if kind == "int" and (v ~= floor(v) or v < -2 ^ 53 or v > 2 ^ 53) then
        return nil
    end
    return v
end

-- The first problem of f (as flags.c checks them), or nil.
local function flags_problem(f)
    if f.num < 1 then
        return "--num must be at least 1"
    elseif f.key_size < #tostring(f.num - 1) or f.key_size > 1024 then
        return "--key_size must hold the decimal digits of num - 1 and be at most 1024"
    elseif f.value_size < 0 or f.value_size > 64 * MB then
        return "--value_size is at most 64 MiB"
    elseif f.batch < 1 then
        return "--batch must be at least 1"
    elseif f.threads ~= 1 then
        return fmt("--threads must be 1: lua_bench.lua runs one Lua thread (got %d); "
                   .. "use build/bench/stoat_bench for several threads", f.threads)
    elseif f.seek_nexts < 0 then
        return "--seek_nexts must be at least 0"
    elseif not (f.compression_ratio > 0 and f.compression_ratio <= 1) then
        return "--compression_ratio must be in (0, 1]"
    elseif f.value_threshold < 0 then
        return "--value_threshold must be at least 0"
    elseif f.seed < 0 then
        return "--seed must be at least 0"
    elseif f.db == "" then
        return "--db must name a directory"
    end
    return nil
end

local function flags_parse(args)
    local f, by_name = flags_defaults(), {}
    for _, d in ipairs(FLAGS) do
        by_name[d[1]] = d
    end
    for _, a in ipairs(args) do
        if a == "--help" or a == "-h" then
            usage()
            os.exit(0)
        end
        local name, eq, text = a:match("^%-%-([%w_]+)(=?)(.*)$")
        local d = name and by_name[name]
        local v
        if d then
            if eq == "" then
                text = d[2] == "bool" and "1" or ""
            end
            v = flag_value(d[2], text)
        end
        if v == nil then
            die("Invalid flag '%s' (see --help)", a)
        end
        f[d[3]] = v
    end
    local why = flags_problem(f)
    if why then
        die("%s", why)
    end
    return f
end

-- Pseudo-random numbers: gen.c's splitmix64 on uint64_t cdata -------------

local GOLDEN, MIX1, MIX2 = 0x9e3779b97f4a7c15ULL, 0xbf58476d1ce4e5b9ULL, 0x94d049bb133111ebULL
local LOW32 = 0xffffffffULL

local function rand_next(r)
    local z = r[0] + GOLDEN
    r[0] = z
    z = bxor(z, rshift(z, 30)) * MIX1
    z = bxor(z, rshift(z, 27)) * MIX2
    return bxor(z, rshift(z, 31))
end

-- A generator (a uint64_t[1] of state) seeded as gen_rand_seed does.
local function rand_new(seed)
    local r = ffi.new("uint64_t[1]", seed)
    r[0] = rand_next(r)
    return r
end

-- Uniform in [0, n), n a Lua number below 2^53: the high 64 bits of the
-- 128-bit product next * n, as gen_rand_uniform computes it.
local function rand_uniform(r, n)
    local a, b = rand_next(r), n + 0ULL
    local alo, ahi, blo, bhi = band(a, LOW32), rshift(a, 32), band(b, LOW32), rshift(b, 32)
    local lh, hl = alo * bhi, ahi * blo
    local mid = rshift(alo * blo, 32) + band(lh, LOW32) + band(hl, LOW32)
    return tonumber(ahi * bhi + rshift(lh, 32) + rshift(hl, 32) + rshift(mid, 32))
end

-- Keys and values ---------------------------------------------------------

-- The format of key k: key_size zero-padded digits (plus "." for missing
-- keys). string.format pads up to 99 characters; wider keys get a prefix.
local function key_format(key_size, suffix)
    local width = key_size < 20 and key_size or 20
    return string.rep("0", key_size - width) .. "%0" .. width .. "d" .. suffix
end

-- The Lua strings of every value gen_value hands out, in its order: the
-- buffer of gen_values_init cut at 0, size, 2 size... (gen_value wraps to
-- 0 when the next slice would pass the end).
local function values_pool(f)
    local piece = 100
    local len = f.value_size * 2 > MB and f.value_size * 2 or MB
    local raw = floor(f.compression_ratio * piece)
    raw = raw < 1 and 1 or raw > piece and piece or raw
    local data = ffi.new("uint8_t[?]", len)
    local r = rand_new(f.seed)
    for off = 0, len - 1, piece do
        local n = len - off < piece and len - off or piece
        local rn = raw < n and raw or n
        for i = 0, n - 1 do
            data[off + i] = i < rn and 32 + rand_uniform(r, 95) or data[off + i - rn]
        end
    end
    local pool, size = {}, f.value_size
    if size == 0 then
        return { "" }
    end
    for pos = 0, len - size, size do
        pool[#pool + 1] = ffi.string(data + pos, size)
    end
    return pool
end

-- Time, histogram, report lines ---------------------------------------------

local ts = ffi.new("lua_bench_timespec")

local function now()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- hist.c's buckets: 16 steps per decade from 0.1 us to 10^9 us.
local HIST_STEPS = { 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0,
                     8.0, 9.0 }
local HIST_BUCKETS = 176

local function hist_limit(b) -- b counted from 0, as in hist.c
    return HIST_STEPS[b % 16 + 1] * 10 ^ (floor(b / 16) - 1)
end

local function hist_new()
    local h = { min = huge, max = 0, count = 0, sum = 0, sum_sq = 0 }
    for b = 0, HIST_BUCKETS - 1 do
        h[b] = 0
    end
    return h
end

local function hist_add(h, micros)
    local lo, hi = 0, HIST_BUCKETS - 1
    while lo < hi do
        local mid = floor((lo + hi) / 2)
        if hist_limit(mid) > micros then hi = mid else lo = mid + 1 end
    end
    h[lo] = h[lo] + 1
    if micros < h.min then h.min = micros end
    if micros > h.max then h.max = micros end
    h.count, h.sum, h.sum_sq = h.count + 1, h.sum + micros, h.sum_sq + micros * micros
end

local function hist_percentile(h, p)
    local threshold, sum = h.count * p / 100, 0
    for b = 0, HIST_BUCKETS - 1 do
        sum = sum + h[b]
        if sum >= threshold and h[b] > 0 then
            local left = b == 0 and 0 or hist_limit(b - 1)
            local r = left + (hist_limit(b) - left) * (threshold - (sum - h[b])) / h[b]
            return r < h.min and h.min or r > h.max and h.max or r
        end
    end
    return h.max
end

local function hist_print(h)
    local n = h.count > 0 and h.count or 1
    local avg = h.sum / n
    local var = h.sum_sq / n - avg * avg
    print("Microseconds per op:")
    print(fmt("Count: %d Average: %.4f  StdDev: %.2f", h.count, avg, var > 0 and sqrt(var) or 0))
    print(fmt("Min: %.4f  Median: %.4f  Max: %.4f", h.count > 0 and h.min or 0,
              hist_percentile(h, 50), h.max))
    print(fmt("Percentiles: P50: %.2f P75: %.2f P99: %.2f P99.9: %.2f P99.99: %.2f",
              hist_percentile(h, 50), hist_percentile(h, 75), hist_percentile(h, 99),
              hist_percentile(h, 99.9), hist_percentile(h, 99.99)))
end

-- A benchmark's counters (stats.h): done, found, bytes, user_written.
local function stats_new(histogram)
    local st = { done = 0, found = 0, bytes = 0, user_written = 0,
                 hist = histogram and hist_new() or false }
    st.start = now()
    st.last = st.start
    return st
end

-- Counts n operations; with --histogram, times them too.
local function stats_ops(st, n)
    st.done = st.done + n
    if st.hist then
        local t = now()
        hist_add(st.hist, (t - st.last) * 1e6)
        st.last = t
    end
end

local function stats_report(st, name, msg)
    local elapsed = st.finish - st.start
    local done = st.done > 0 and st.done or 1
    local extra = ""
    if elapsed <= 0 then
        elapsed = 1e-9
    end
    if st.bytes > 0 then
        extra = fmt("%6.1f MB/s", st.bytes / MB / elapsed)
    end
    if msg ~= "" then
        extra = extra .. (extra ~= "" and " " or "") .. msg
    end
    print(fmt("%-12s : %11.3f micros/op %d ops/sec;%s%s", name, elapsed * 1e6 / done,
              floor(st.done / elapsed), extra ~= "" and " " or "", extra))
    if st.hist then
        hist_print(st.hist)
    end
    io.stdout:flush()
end

-- The database directory, through the shell (outside the timed parts) ------

local function quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function sh(cmd)
    local r = os.execute(cmd)
    return r == 0 or r == true
end

local function sh_read(cmd)
    local p = io.popen(cmd)
    local out = p:read("*a")
    p:close()
    return out
end

local function dir_create(dir)
    if not sh("mkdir -p -- " .. quote(dir)) then
        die("mkdir %s failed", dir)
    end
end

-- Deletes dir when it is empty or holds a MANIFEST; refuses otherwise.
local function dir_destroy(dir)
    if not sh("test -e " .. quote(dir) .. " || test -L " .. quote(dir)) then
        return
    end
    if sh_read("ls -A -- " .. quote(dir) .. " 2>&1") ~= ""
            and not sh("test -e " .. quote(dir .. "/" .. MARKER)) then
        die("refusing to delete %s: it is not empty and holds no %s, so it is not a "
            .. "database of this engine", dir, MARKER)
    end
    if not sh("rm -rf -- " .. quote(dir)) then
        die("cannot delete %s", dir)
    end
end

-- Bytes allocated under dir (du counts blocks, as dbdir_usage does).
local function dir_usage(dir)
    return tonumber(sh_read("du -s -B1 -- " .. quote(dir) .. " 2>/dev/null"):match("^(%d+)"))
        or 0
end

-- Process figures: /proc/self/io and /proc/self/status ----------------------

local use_wchar = false

-- write_bytes (or wchar on a file system that does not count writes), or nil.
local function io_bytes()
    local fh = io.open("/proc/self/io")
    if fh == nil then
        return nil
    end
    local text = fh:read("*a")
    fh:close()
    local wb, wc = text:match("write_bytes: (%d+)"), text:match("wchar: (%d+)")
    if wb == nil or wc == nil then
        return nil
    end
    return tonumber(use_wchar and wc or wb)
end

-- Which counter the reports use: write_bytes unless 64 KiB written into
-- dir leave it unchanged (tmpfs), as stats_io_probe decides. Dirtying the
-- page cache counts, so no fsync is needed.
local function io_probe(dir)
    local before = io_bytes()
    local path = dir .. "/.bench_io_probe"
    local fh = io.open(path, "wb")
    if before == nil or fh == nil then
        return nil
    end
    fh:write(string.rep("p", 65536))
    fh:close()
    local after = io_bytes()
    os.remove(path)
    use_wchar = after == before
    return use_wchar and "wchar" or "write_bytes"
end

local function peak_rss()
    local fh = io.open("/proc/self/status")
    local kb = fh and fh:read("*a"):match("VmHWM:%s*(%d+)")
    if fh then
        fh:close()
    end
    return (tonumber(kb) or 0) * 1024
end

-- The workloads (workload.c) ------------------------------------------------

-- A run: flags f, the open database db, the value pool, the generator r,
-- the stats st, the operation count ops, the key format key_fmt.

-- Dies with what failed unless ok.
local function check(ok, err, what)
    if not ok then
        die("%s: %s", what, tostring(err))
    end
end

-- A string.buffer when flag is set (nil without it).
local function new_buffer(flag)
    if not flag then
        return nil
    end
    local ok, buffer = pcall(require, "string.buffer")
    if not ok then
        die("--key_buffer and --value_buffer need LuaJIT's string.buffer (%s)", tostring(buffer))
    end
    return buffer.new()
end

-- Writes ops entries, in order when seq, one db:set each or in batches of
-- --batch entries (a batch counts as that many operations).
local function fill(run, seq)
    local db, f, st, r, pool = run.db, run.f, run.st, run.r, run.pool
    local num, npool, vi = f.num, #run.pool, 0
    local entry, kf, batch = f.key_size + f.value_size, run.key_fmt, f.batch
    local kb = new_buffer(f.key_buffer)
    local i = 0
    while i < run.ops do
        local n = run.ops - i < batch and run.ops - i or batch
        if n == 1 then
            local k = seq and i or rand_uniform(r, num)
            vi = vi < npool and vi + 1 or 1
            local ok, err
            if kb then
                kb:reset()
                ok, err = db:set(kb:putf(kf, k), pool[vi])
            else
                ok, err = db:set(fmt(kf, k), pool[vi])
            end
            check(ok, err, "put")
        else
            local b = db:batch()
            for j = 0, n - 1 do
                local k = seq and i + j or rand_uniform(r, num)
                vi = vi < npool and vi + 1 or 1
                local ok, err = b:set(fmt(kf, k), pool[vi])
                check(ok, err, "batch_put")
            end
            local ok, err = b:commit()
            check(ok, err, "batch_commit")
        end
        st.bytes = st.bytes + n * entry
        st.user_written = st.user_written + n * entry
        stats_ops(st, n)
        i = i + n
    end
end

-- Point reads of random keys (missing: keys with a "." appended).
local function get(run, missing)
    local db, f, st, r = run.db, run.f, run.st, run.r
    local num, size = f.num, f.value_size
    local kf = missing and run.key_fmt .. "." or run.key_fmt
    local kb, vb = new_buffer(f.key_buffer), new_buffer(f.value_buffer)
    for _ = 1, run.ops do
        local key
        if kb then
            kb:reset()
            key = kb:putf(kf, rand_uniform(r, num))
        else
            key = fmt(kf, rand_uniform(r, num))
        end
        local v, err = db:get(key, vb)
        if v then
            if #v ~= size then
                die("get: key %s has a %d-byte value, want %d", tostring(key), #v, size)
            end
            st.found = st.found + 1
            st.bytes = st.bytes + #key + #v
        elseif err then
            die("get: %s", err)
        end
        stats_ops(st, 1)
    end
end

-- Whether k (a string, or a string.buffer with --key_buffer) holds the
-- bytes of string key, without making a string of the buffer.
local function same_key(k, key)
    if type(k) == "string" then
        return k == key
    end
    local p, n = k:ref()
    return n == #key and ffi.C.memcmp(p, key, n) == 0
end

-- Scans up to ops entries forward or backward over one snapshot.
local function scan(run, reverse)
    local st, vbuf, kbuf = run.st, new_buffer(run.f.value_buffer), new_buffer(run.f.key_buffer)
    local ok, err = run.db:view(function(txn)
        for k, v in txn:pairs{ reverse = reverse, limit = run.ops, value_buffer = vbuf,
                               key_buffer = kbuf } do
            st.bytes = st.bytes + #k + #v
            stats_ops(st, 1)
        end
        return true
    end)
    check(ok, err, "iterator")
end

-- Each operation: a new iterator from a random key, 1 + seek_nexts entries.
local function seek(run)
    local f, st, r = run.f, run.st, run.r
    local vbuf, kbuf = new_buffer(f.value_buffer), new_buffer(f.key_buffer)
    local num, kf, limit = f.num, run.key_fmt, 1 + f.seek_nexts
    local ok, err = run.db:view(function(txn)
        for _ = 1, run.ops do
            local key = fmt(kf, rand_uniform(r, num))
            local first = true
            for k, v in txn:pairs{ start = key, limit = limit, value_buffer = vbuf,
                                   key_buffer = kbuf } do
                if first and same_key(k, key) then
                    st.found = st.found + 1
                end
                first = false
                st.bytes = st.bytes + #k + #v
            end
            stats_ops(st, 1)
        end
        return true
    end)
    check(ok, err, "seek")
end

-- Each benchmark as driver.c defines it: its workload, whether it starts
-- on a new database, forces sync, does --reads operations (else --num),
-- divides the count (fillsync writes num / 1000), reports what it found;
-- and whether it writes values (needs the value pool).
local BENCHMARKS = {
    fillseq = { fn = function(run) fill(run, true) end, fresh = true, writes = true },
    fillrandom = { fn = function(run) fill(run, false) end, fresh = true, writes = true },
    overwrite = { fn = function(run) fill(run, false) end, writes = true },
    fillsync = { fn = function(run) fill(run, false) end, fresh = true, sync = true,
                 divisor = 1000, writes = true },
    readrandom = { fn = function(run) get(run, false) end, reads = true, found = true },
    readmissing = { fn = function(run) get(run, true) end, reads = true, found = true },
    readseq = { fn = function(run) scan(run, false) end, reads = true },
    readreverse = { fn = function(run) scan(run, true) end, reads = true },
    seekrandom = { fn = seek, reads = true, found = true },
}
local SINGLE_THREAD_ONLY = { readwhilewriting = true }

-- The driver (driver.c) -------------------------------------------------------

-- The open database, its sync setting, the value pool (while writing).
local bench = { db = nil, db_sync = nil, pool = nil, user_written = 0 }

local function bench_open(f, sync)
    dir_create(f.db)
    local opts = { sync = sync and "commit" or "none" }
    if f.bloom_bits < 0 then
        opts.bloom_fp_rate = 0
    end
    if f.value_threshold > 0 then
        opts.value_threshold = f.value_threshold
    end
    local db, err = stoat.open(f.db, opts)
    if db == nil then
        die("open %s: %s", f.db, err)
    end
    bench.db = db
    bench.db_sync = sync
end

local function bench_close(f)
    if bench.db then
        local ok, err = bench.db:close()
        if not ok then
            die("close %s: %s", f.db, err)
        end
    end
    bench.db = nil
end

local function bench_prepare(f, def)
    local sync = def.sync or f.sync
    if def.fresh then
        bench_close(f)
        dir_destroy(f.db)
        bench_open(f, sync)
    elseif bench.db == nil or sync ~= bench.db_sync then
        bench_close(f)
        bench_open(f, sync)
    end
end

local function report_resources(f, user_written, io0, io1)
    print(fmt("  size on disk: %.1f MB", dir_usage(f.db) / MB))
    if io0 == nil or io1 == nil then
        print("  bytes written: n/a")
    elseif user_written == 0 then
        print(fmt("  bytes written: %.1f MB (write amp n/a)", (io1 - io0) / MB))
    else
        print(fmt("  bytes written: %.1f MB (write amp %.2f)", (io1 - io0) / MB,
                  (io1 - io0) / user_written))
    end
    print(fmt("  peak RSS: %.1f MB", peak_rss() / MB))
    io.stdout:flush()
end

local function bench_run(f, name, def, ordinal)
    bench_prepare(f, def)
    if def.writes then
        bench.pool = bench.pool or values_pool(f)
    else
        bench.pool = nil -- see the file comment
    end
    local divisor = def.divisor or 1
    local ops = floor((def.reads and f.reads >= 0 and f.reads or f.num) / divisor)
    if ops < 1 and divisor > 1 then
        ops = 1 -- fillsync on a small --num still writes something
    end
    local run = { f = f, db = bench.db, pool = bench.pool, ops = ops,
                  key_fmt = key_format(f.key_size, ""),
                  r = rand_new(f.seed + ordinal * 1000) }
    collectgarbage() -- each benchmark starts with a clean heap
    local io0 = io_bytes()
    run.st = stats_new(f.histogram)
    def.fn(run)
    run.st.finish = now()
    local io1 = io_bytes()
    local msg = def.found and fmt("(%d of %d found)", run.st.found, run.st.done) or ""
    stats_report(run.st, name, msg)
    bench.user_written = bench.user_written + run.st.user_written
    report_resources(f, run.st.user_written, io0, io1)
end

local function cpu_info()
    local model, cache, count = "unknown", "unknown", 0
    local fh = io.open("/proc/cpuinfo")
    if fh then
        for line in fh:lines() do
            local key, val = line:match("^([^:]-)%s*:%s*(.*)$")
            if key == "model name" then
                count, model = count + 1, val
            elseif key == "cache size" then
                cache = val
            end
        end
        fh:close()
    end
    return model, cache, count
end

local function header(f, io_counter)
    local model, cache, cpus = cpu_info()
    local entry = f.key_size + f.value_size
    local compressed = f.key_size + f.value_size * f.compression_ratio
    print(fmt("%-12s%s", "stoat-lua:", fmt("version %s through %s (JIT %s); default options, "
        .. "%s, %s", stoat.version, jit.version, jit.status() and "on" or "off",
        f.bloom_bits < 0 and "no bloom filter" or "bloom filter 1%",
        f.sync and "sync writes" or "no sync")
        .. (f.key_buffer and ", keys in a string.buffer" or "")
        .. (f.value_buffer and ", values into a string.buffer" or "")))
    print("Date:       " .. os.date("%a %b %e %H:%M:%S %Y"))
    print(fmt("CPU:        %d * %s", cpus, model))
    print("CPUCache:   " .. cache)
    print(fmt("Keys:       %d bytes each", f.key_size))
    print(fmt("Values:     %d bytes each (%d bytes after compression)", f.value_size,
              floor(f.value_size * f.compression_ratio + 0.5)))
    print(fmt("Entries:    %d", f.num))
    print(fmt("RawSize:    %.1f MB (estimated)", entry * f.num / MB))
    print(fmt("FileSize:   %.1f MB (estimated)", compressed * f.num / MB))
    print(fmt("Batch:      %d\nSync:       %d\nThreads:    %d", f.batch, f.sync and 1 or 0,
              f.threads))
    print("DB:         " .. f.db)
    print("Disk I/O:   " .. (io_counter or "not measurable (no /proc/self/io)"))
    if not jit.status() then
        print("WARNING: the JIT compiler is off: benchmarks unnecessarily slow")
    end
    print("------------------------------------------------")
    io.stdout:flush()
end

local function main(args)
    local f = flags_parse(args)
    if not f.use_existing_db then
        dir_destroy(f.db)
    end
    dir_create(f.db)
    header(f, io_probe(f.db))
    local io0 = io_bytes()
    local ordinal = 0
    for name in f.benchmarks:gmatch("[^,]+") do
        local def = BENCHMARKS[name]
        if SINGLE_THREAD_ONLY[name] then
            io.stderr:write(fmt("%s needs a concurrent writer thread; lua_bench.lua runs "
                .. "one Lua thread: skipped (use build/bench/stoat_bench)\n", name))
            ordinal = ordinal + 1 -- the C tool's later benchmarks draw with this counted
        elseif def == nil then
            io.stderr:write(fmt("unknown benchmark '%s'\n", name))
        else
            bench_run(f, name, def, ordinal)
            ordinal = ordinal + 1
        end
    end
    bench_close(f)
    local io1 = io_bytes()
    print("------------------------------------------------")
    print(fmt("total        : %.1f MB written by the benchmarks", bench.user_written / MB))
    report_resources(f, bench.user_written, io0, io1)
end

main(arg or {})
