#!/bin/bash
# bench/compare.sh [--small] - runs stoat and its peers (LevelDB, RocksDB,
# LMDB) one after another on the same workloads, each on a fresh directory
# under ${TMPDIR:-/tmp}, for values of 100 B, 1 KiB and 16 KiB, and writes
# bench/RESULTS.md: a table per value size with each engine's figures and
# stoat's ratio to each peer, the machine, the date and the exact commands.
#
# bench/compare.sh --lua [--small] - instead runs the C tool (stoat_bench)
# and the Lua one (luajit bench/lua_bench.lua) on the same workloads, RUNS
# rounds alternating which goes first, for 100 B and 1 KiB values, and
# rewrites only the "Lua vs C" section of RESULTS.md: medians of ops/sec
# and the Lua/C ratio per benchmark, keeping the section's hand-written
# analysis (the block between its analysis markers).
#
#   --small   a quarter of the entries (about 2 minutes on 2 cores; the
#             full run about 12; with --lua about 3 and 12)
#   --large   issue 15's scale: 5,000,000 x 100 B (then as many
#             overwrites), 2,000,000 x 1 KiB, 200,000 x 16 KiB (hours on
#             2 cores; SIZES="100" runs one size only)
#
# After the main invocation, seekrandom runs again on the same database
# with --seek_nexts=50 (db_bench's flag: 50 nexts after each seek; num/10
# seeks), reported as the row "seekrandom50".
#
# RESULTS.md sections written by other tools sit between
# "<!-- begin NAME -->" and "<!-- end NAME -->" lines at the end of the
# file; each mode rewrites its own part and keeps every such block.
#
# Environment: BUILD (build directory, default build), THREADS (--threads,
# default 1), OUT (result file, default bench/RESULTS.md), ENGINES (default
# "stoat stoat-enc leveldb rocksdb lmdb"; stoat-enc is stoat encrypted at
# rest, with a stoat-enc/stoat column), RUNS (--lua rounds, default 5), LUAJIT
# (default luajit), SIZES (default "100 1024 16384"), NO_BUILD (1: run the
# tools already in BUILD, e.g. a copy of an older build for a before/after
# comparison). An engine whose tool is missing or fails is reported as
# such; the others still run.
set -u

cd "$(dirname "$0")/.." || exit 1
mode=full
lua=0
for arg in "$@"; do
    case "$arg" in
        --small) mode=small ;;
        --large) mode=large ;;
        --lua) lua=1 ;;
        *) echo "usage: bench/compare.sh [--lua] [--small | --large]" >&2; exit 2 ;;
    esac
done

BUILD=${BUILD:-build}
THREADS=${THREADS:-1}
OUT=${OUT:-bench/RESULTS.md}
ENGINES=${ENGINES:-stoat stoat-enc leveldb rocksdb lmdb}
RUNS=${RUNS:-5}
LUAJIT=${LUAJIT:-luajit}
SIZES=${SIZES:-100 1024 16384}
# The peers stoat is compared with (no ratio columns without stoat).
PEERS=""
case " $ENGINES " in
    *" stoat "*) for e in $ENGINES; do
                     case "$e" in stoat|stoat-enc) ;; *) PEERS="$PEERS $e" ;; esac
                 done ;;
esac
# stoat-enc: stoat_bench --encrypt=1 (encryption at rest), with a column
# stoat-enc/stoat when both run.
ENC=0
case " $ENGINES " in *" stoat "*) case " $ENGINES " in *" stoat-enc "*) ENC=1 ;; esac ;; esac
BENCHMARKS=fillseq,fillrandom,overwrite,readrandom,readmissing,readseq,readreverse,seekrandom,readwhilewriting
ROWS="fillseq fillrandom overwrite readrandom readmissing readseq readreverse seekrandom seekrandom50 readwhilewriting fillsync"

# Entries per value size: about the same raw bytes for each size.
entries() {
    case "$mode:$1" in
        small:100) echo 500000 ;;   small:1024) echo 100000 ;;  small:16384) echo 10000 ;;
        full:100) echo 2000000 ;;   full:1024) echo 400000 ;;  full:16384) echo 40000 ;;
        large:100) echo 5000000 ;;  large:1024) echo 2000000 ;; large:16384) echo 200000 ;;
    esac
}
# fillsync writes num/1000 entries (as db_bench does); it runs on its own
# with a num that gives this many fsynced writes.
if [ "$mode" = small ]; then sync_ops=200; else sync_ops=1000; fi
SEEK_NEXTS=50

work=$(mktemp -d "${TMPDIR:-/tmp}/stoat-compare.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# Builds the tools; the peers need the Debian packages, stoat its library.
build() {
    local mk="make"

    grep -q 'bench/bench.mk' Makefile && mk=make
    $mk BUILD="$BUILD" bench-peers >"$work/build.log" 2>&1 ||
        echo "compare: building the peers failed (see make bench-peers)" >&2
    $mk BUILD="$BUILD" bench >>"$work/build.log" 2>&1 ||
        echo "compare: building stoat_bench failed (see make bench)" >&2
}

# run ENGINE SIZE: both invocations, output appended to $work/ENGINE-SIZE.out
run() {
    local e=$1 size=$2 tool="$BUILD/bench/${1%-enc}_bench" num db log extra=""
    num=$(entries "$size")
    [ "$e" = stoat-enc ] && extra=" --encrypt=1"
    db="$work/db-$e-$size"
    log="$work/$e-$size.out"
    : >"$log"
    if [ ! -x "$tool" ]; then
        echo "FAILED: $tool is not built" >>"$log"
        return
    fi
    local cmd1="$tool$extra --benchmarks=$BENCHMARKS --num=$num --value_size=$size --threads=$THREADS --db=$db"
    local cmd2="$tool$extra --benchmarks=seekrandom --seek_nexts=$SEEK_NEXTS --use_existing_db=1 --num=$num --reads=$((num / 10)) --value_size=$size --threads=$THREADS --db=$db"
    local cmd3="$tool$extra --benchmarks=fillsync --num=$((sync_ops * 1000)) --value_size=$size --threads=$THREADS --db=$db"
    echo "$cmd1" >>"$work/commands"
    echo "$cmd2" >>"$work/commands"
    echo "$cmd3" >>"$work/commands"
    echo "compare: $e, $size-byte values" >&2
    for cmd in "$cmd1" "$cmd2" "$cmd3"; do
        if ! $cmd >>"$log" 2>"$work/err"; then
            echo "FAILED: $(tail -n 3 "$work/err" | tr '\n' ' ')" >>"$log"
        fi
        # The seek-with-nexts run reuses the first run's database.
        [ "$cmd" = "$cmd1" ] || rm -rf "$db"
    done
}

# Turns one tool output into lines "bench metric value". The totals of
# the first invocation are "total", the seekrandom of the second
# invocation (with nexts) is "seekrandom50".
parse() {
    awk '
        /^Date:/ { run++ }
        / micros\/op .* ops\/sec;/ {
            name = $1
            if (run == 2 && name == "seekrandom") name = "seekrandom50"
            for (i = 2; i <= NF; i++) {
                if ($i == "micros/op") print name, "micros", $(i - 1)
                if ($i == "ops/sec;") print name, "ops", $(i - 1)
            }
            next
        }
        /^total +:/ { name = run > 1 ? "total" run : "total"; next }
        /^  size on disk:/ { print name, "disk", $4 }
        /^  bytes written:/ { v = $7; sub(/\)$/, "", v); print name, "written", $3; print name, "wamp", v }
        /^  peak RSS:/ { print name, "rss", $3 }
    ' "$1"
}

# value ENGINE SIZE BENCH METRIC: one figure, or empty.
value() {
    [ -f "$work/$1-$2.parsed" ] || return 0
    awk -v b="$3" -v m="$4" '$1 == b && $2 == m { v = $3 } END { print v }' "$work/$1-$2.parsed"
}

# ratio A B: A / B with two decimals, or "-" when either is missing or zero.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "-";
        else printf "%.2f\n", a / b }'
}

row() {   # row LABEL SIZE BENCH METRIC
    local line="| $1 |" e v s
    s=$(value stoat "$2" "$3" "$4")
    for e in $ENGINES; do
        v=$(value "$e" "$2" "$3" "$4")
        line="$line ${v:--} |"
    done
    for e in $PEERS; do
        line="$line $(ratio "$s" "$(value "$e" "$2" "$3" "$4")") |"
    done
    [ "$ENC" = 1 ] && line="$line $(ratio "$(value stoat-enc "$2" "$3" "$4")" "$s") |"
    echo "$line"
}

header() {
    local line="| $1 |" sep="|---|" e
    for e in $ENGINES; do line="$line $e |"; sep="$sep---:|"; done
    for e in $PEERS; do line="$line stoat/$e |"; sep="$sep---:|"; done
    [ "$ENC" = 1 ] && { line="$line stoat-enc/stoat |"; sep="$sep---:|"; }
    echo "$line"
    echo "$sep"
}

tables() {
    local size b
    for size in $SIZES; do
        echo "## ${size}-byte values, $(entries "$size") entries"
        echo
        echo "Throughput in operations per second (higher is better; a ratio above 1"
        echo "means stoat is faster)."
        echo
        header "ops/sec"
        for b in $ROWS; do row "$b" "$size" "$b" ops; done
        echo
        echo "Disk and memory (lower is better; a ratio below 1 means stoat uses less)."
        echo
        header "figure"
        row "write amp, fillrandom" "$size" fillrandom wamp
        row "write amp, overwrite" "$size" overwrite wamp
        row "write amp, whole run" "$size" total wamp
        row "size on disk after overwrite (MB)" "$size" overwrite disk
        row "peak RSS (MB)" "$size" total rss
        echo
    done
}

# The commit the tools were built from, flagging uncommitted changes.
source_version() {
    local v
    v=$(git rev-parse --short HEAD 2>/dev/null) || { echo "an unknown commit"; return; }
    if [ -n "$(git status --porcelain -- core bench 2>/dev/null)" ]; then
        echo "commit $v with uncommitted changes"
    else
        echo "commit $v"
    fi
}

asserts_note() {
    local e lib
    for e in leveldb rocksdb; do
        [ -x "$BUILD/bench/${e}_bench" ] || continue
        lib=$(ldd "$BUILD/bench/${e}_bench" 2>/dev/null | awk -v l="lib$e" '$1 ~ l { print $3 }')
        if [ -n "$lib" ] && nm -D "$lib" 2>/dev/null | grep -q __assert_fail; then
            echo "- Debian's $e ($lib) is built with assertions on (it calls __assert_fail),"
            echo "  which slows it somewhat; stoat's build keeps its assertions on too."
        fi
    done
}

report() {
    local failures="" e size
    for e in $ENGINES; do
        for size in $SIZES; do
            grep -q '^FAILED' "$work/$e-$size.out" &&
                failures="$failures\n- $e, $size-byte values: $(grep '^FAILED' "$work/$e-$size.out" | head -n 1)"
        done
    done
    cat <<EOF
# stoat and its peers: db_bench workloads

Written by \`bench/compare.sh${1:+ $1}\` on $(date -u '+%Y-%m-%d %H:%M UTC'), stoat at $(source_version). Every engine runs
the same driver (bench/driver.c, bench/workload.c) through its adapter
(bench/engine_*.c), one after another, each on a fresh directory; see
bench/README.md for the settings of each engine and what the figures mean.

## Machine

- CPU: $(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
- Memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
- Kernel: $(uname -sr)
- File system of the databases: $(df -PT "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $2 }')
- Mode: $mode; threads: $THREADS; key size 16; durability: no fsync per write
  (--sync=0) except fillsync

## Notes

- Random writes draw keys uniformly with replacement, so fillrandom leaves
  about 63% of the keys; the reads report how many they found.
- fillsync runs on its own with --num=$((sync_ops * 1000)), so it makes $sync_ops fsynced writes.
- Write amplification is bytes the process wrote to disk (/proc/self/io
  write_bytes) over the key and value bytes the benchmark wrote; background
  work still running when a benchmark ends is counted in the next one. The
  whole-run figure covers all of the first invocation, closing included.
$(asserts_note)
$( [ -n "$failures" ] && printf "\n## Failures\n%b\n" "$failures")

$(tables)

## Commands

\`\`\`
$(cat "$work/commands")
\`\`\`
EOF
}

# --lua: the C tool against the Lua one, same workloads --------------------

LUA_SIZES="100 1024"
LUA_BENCHMARKS=fillrandom,readrandom,readseq,readreverse,seekrandom
# fillbatch is fillrandom --batch=100, run as a second invocation.
LUA_ROWS="fillrandom fillbatch readrandom readseq readreverse seekrandom"

lua_build() {
    local mk="make"

    grep -q 'bench/bench.mk' Makefile && mk=make
    $mk BUILD="$BUILD" lib bench >"$work/build.log" 2>&1 || {
        echo "compare: building libstoat.so and stoat_bench failed:" >&2
        tail -n 20 "$work/build.log" >&2
        exit 1
    }
}

# lua_run c|lua SIZE ROUND: both invocations into $work/lua-TOOL-SIZE-ROUND.out
lua_run() {
    local t=$1 size=$2 round=$3 num db log cmd args
    num=$(entries "$size")
    db="$work/db-$t-$size"
    log="$work/lua-$t-$size-$round.out"
    if [ "$t" = c ]; then
        cmd="$BUILD/bench/stoat_bench"
    else
        cmd="env STOAT_LIB=$lib $LUAJIT bench/lua_bench.lua"
    fi
    : >"$log"
    for args in "--benchmarks=$LUA_BENCHMARKS" "--benchmarks=fillrandom --batch=100"; do
        [ "$round" = 1 ] && echo "$cmd $args --num=$num --value_size=$size --db=DIR" >>"$work/commands"
        echo "## invocation: $args" >>"$log"
        if ! $cmd $args --num="$num" --value_size="$size" --db="$db" >>"$log" 2>"$work/err"; then
            echo "FAILED: $t: $(tail -n 3 "$work/err" | tr '\n' ' ')" >>"$log"
        fi
        rm -rf "$db"
    done
}

# Lines "bench ops" of one lua_run output; the batch fill is "fillbatch".
lua_parse() {
    awk '
        /^## invocation:/ { inv++ }
        / micros\/op .* ops\/sec;/ {
            name = $1
            if (inv == 2 && name == "fillrandom") name = "fillbatch"
            for (i = 2; i <= NF; i++) if ($i == "ops/sec;") print name, $(i - 1)
        }
    ' "$1"
}

# lua_figures SIZE BENCH: "c_median lua_median lowest_ratio highest_ratio
# rounds" over the rounds where both tools reported BENCH (empty if none).
lua_figures() {
    local r c l
    for r in $(seq 1 "$RUNS"); do
        c=$(awk -v b="$2" '$1 == b { print $2 }' "$work/lua-c-$1-$r.parsed")
        l=$(awk -v b="$2" '$1 == b { print $2 }' "$work/lua-lua-$1-$r.parsed")
        [ -n "$c" ] && [ -n "$l" ] && echo "$c $l"
    done | awk '
        function median(a, n,   i, j, t) {
            for (i = 2; i <= n; i++)
                for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
                    t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
                }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        $1 > 0 {
            n++; c[n] = $1; l[n] = $2; r = $2 / $1
            if (n == 1 || r < lo) lo = r
            if (n == 1 || r > hi) hi = r
        }
        END { if (n) printf "%d %d %.2f %.2f %d\n", median(c, n), median(l, n), lo, hi, n }
    '
}

lua_api() {
    case "$1" in
        fillrandom) echo 'set: `db:set(k, v)`' ;;
        fillbatch) echo 'set: `db:batch()`, 100 x `b:set(k, v)`, `b:commit()`' ;;
        readrandom) echo 'get: `db:get(k)`' ;;
        readseq) echo 'scan: `db:view`, `for k, v in txn:pairs{limit = n}`' ;;
        readreverse) echo 'scan: `txn:pairs{reverse = true, limit = n}`' ;;
        seekrandom) echo 'seek: `txn:pairs{start = k, limit = 1}` per seek' ;;
    esac
}

lua_tables() {
    local size b f c l lo hi n ratio target
    for size in $LUA_SIZES; do
        echo "### ${size}-byte values, $(entries "$size") entries"
        echo
        echo "| benchmark | Lua API | C ops/sec | Lua ops/sec | Lua/C | Lua/C per round | target |"
        echo "|---|---|---:|---:|---:|---|---|"
        for b in $LUA_ROWS; do
            f=$(lua_figures "$size" "$b")
            if [ -z "$f" ]; then
                echo "| $b | $(lua_api "$b") | - | - | - | - | - |"
                continue
            fi
            read -r c l lo hi n <<<"$f"
            ratio=$(awk -v a="$l" -v b="$c" 'BEGIN { printf "%.2f", a / b }')
            case "$b" in
                fillrandom|readrandom|readseq)
                    target=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.8 ? "met (>= 0.80)" : "missed (< 0.80)") }') ;;
                *) target="-" ;;
            esac
            echo "| $b | $(lua_api "$b") | $c | $l | **$ratio** | $lo - $hi ($n) | $target |"
        done
        echo
    done
}

# The hand-written analysis of the section now in $OUT (between its
# markers), or a placeholder.
lua_analysis() {
    if [ -f "$OUT" ] && grep -q '^<!-- begin lua-vs-c-analysis -->$' "$OUT"; then
        sed -n '/^<!-- begin lua-vs-c-analysis -->$/,/^<!-- end lua-vs-c-analysis -->$/p' "$OUT"
    else
        printf '%s\n' '<!-- begin lua-vs-c-analysis -->' '### Analysis' '' '(not written yet)' \
            '<!-- end lua-vs-c-analysis -->'
    fi
}

lua_report() {
    cat <<EOF
<!-- begin lua-vs-c -->
## Lua vs C

Written by \`bench/compare.sh --lua${1:+ $1}\` on $(date -u '+%Y-%m-%d %H:%M UTC'), stoat at $(source_version),
$($LUAJIT -v 2>&1 | awk '{ print $1, $2; exit }'). The C tool (bench/stoat_bench: stoat_* calls through
bench/engine_stoat.c) and the Lua one (bench/lua_bench.lua: the Lua module
as an application uses it, on libstoat.so of the same build) run the same
workloads with the same keys, values and random streams, $RUNS rounds,
alternating which goes first; each invocation starts from a fresh
directory. Figures are medians of ops/sec over the rounds; Lua/C is the
ratio of the medians, "per round" the lowest and highest ratio of the two
tools' runs of one round (and the number of rounds). Target (issues 5 and
6): Lua at no less than 0.8 x C for set, get and scan.

- CPU: $(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); kernel $(uname -sr); databases on $(df -PT "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $2 }')
- Load average before and after the run (the machine is shared, so the
  rounds vary; both tools see the same conditions only on average):
  $load_before and $(cut -d' ' -f1-3 /proc/loadavg)
- No fsync per write (--sync=0); 16-byte keys; one thread

$(lua_tables)

Commands (DIR: a fresh directory under \${TMPDIR:-/tmp}, deleted after each run):

\`\`\`
$(cat "$work/commands")
\`\`\`

$(lua_analysis)
<!-- end lua-vs-c -->
EOF
}

lua_main() {
    local size round t order
    lua_build
    lib=$BUILD/libstoat.so  # relative to the repository root, where this runs
    : >"$work/commands"
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    for size in $LUA_SIZES; do
        echo "compare: C and Lua, $size-byte values, $RUNS rounds" >&2
        for round in $(seq 1 "$RUNS"); do
            # Alternate which tool goes first, so drift hits both alike.
            if [ $((round % 2)) = 1 ]; then order="c lua"; else order="lua c"; fi
            for t in $order; do
                lua_run "$t" "$size" "$round"
                lua_parse "$work/lua-$t-$size-$round.out" >"$work/lua-$t-$size-$round.parsed"
            done
        done
        grep -h '^FAILED' "$work"/lua-*-"$size"-*.out >&2
    done
    lua_report "$([ "$mode" = small ] && echo --small)" >"$work/section.md"
    { blocks "$OUT" lua-vs-c; echo; cat "$work/section.md"; } >"$work/results.md"
    cp "$work/results.md" "$OUT"
    echo "compare: wrote the Lua vs C section of $OUT" >&2
}

# blocks FILE: the marked blocks of FILE ("<!-- begin NAME -->" to
# "<!-- end NAME -->" at the top level), each after a blank line.
# blocks FILE NAME: all of FILE but the block NAME, trailing blank lines cut.
blocks() {
    [ -f "$1" ] || return 0
    awk -v skip="${2:-}" '
        name == "" && /^<!-- begin [A-Za-z0-9_-]+ -->$/ {
            name = $3
            if (skip == "") print ""
        }
        name == "" && skip != "" { lines[++n] = $0 }
        name != "" && skip == "" { print }
        name != "" && $0 == "<!-- end " name " -->" { name = "" }
        END {
            while (n > 0 && lines[n] == "") n--
            for (i = 1; i <= n; i++) print lines[i]
        }
    ' "$1"
}

if [ "$lua" = 1 ]; then
    lua_main
    exit
fi

[ "${NO_BUILD:-0}" = 1 ] || build
: >"$work/commands"
for size in $SIZES; do
    for e in $ENGINES; do
        run "$e" "$size"
        parse "$work/$e-$size.out" >"$work/$e-$size.parsed"
    done
done
report "$([ "$mode" != full ] && echo "--$mode")" >"$work/results.md"
blocks "$OUT" >>"$work/results.md"
cp "$work/results.md" "$OUT"
echo "compare: wrote $OUT" >&2
