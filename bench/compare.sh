#!/bin/bash
# bench/compare.sh [--small] - runs stoat and its peers (LevelDB, RocksDB,
# LMDB) one after another on the same workloads, each on a fresh directory
# under ${TMPDIR:-/tmp}, for values of 100 B, 1 KiB and 16 KiB, and writes
# bench/RESULTS.md: a table per value size with each engine's figures and
# stoat's ratio to each peer, the machine, the date and the exact commands.
#
#   --small   a quarter of the entries (about 2 minutes on 2 cores; the
#             full run about 12)
#
# Environment: BUILD (build directory, default build), THREADS (--threads,
# default 1), OUT (result file, default bench/RESULTS.md), ENGINES (default
# "stoat leveldb rocksdb lmdb"). An engine whose tool is missing or fails is
# reported as such; the others still run.
set -u

cd "$(dirname "$0")/.." || exit 1
mode=full
case "${1:-}" in
    --small) mode=small ;;
    "") ;;
    *) echo "usage: bench/compare.sh [--small]" >&2; exit 2 ;;
esac

BUILD=${BUILD:-build}
THREADS=${THREADS:-1}
OUT=${OUT:-bench/RESULTS.md}
ENGINES=${ENGINES:-stoat leveldb rocksdb lmdb}
SIZES="100 1024 16384"
# The peers stoat is compared with (no ratio columns without stoat).
PEERS=""
case " $ENGINES " in
    *" stoat "*) for e in $ENGINES; do [ "$e" = stoat ] || PEERS="$PEERS $e"; done ;;
esac
BENCHMARKS=fillseq,fillrandom,overwrite,readrandom,readmissing,readseq,readreverse,seekrandom,readwhilewriting
ROWS="fillseq fillrandom overwrite readrandom readmissing readseq readreverse seekrandom readwhilewriting fillsync"

# Entries per value size: about the same raw bytes for each size.
entries() {
    case "$mode:$1" in
        small:100) echo 500000 ;;   small:1024) echo 100000 ;;  small:16384) echo 10000 ;;
        full:100) echo 2000000 ;;   full:1024) echo 400000 ;;  full:16384) echo 40000 ;;
    esac
}
# fillsync writes num/1000 entries (as db_bench does); it runs on its own
# with a num that gives this many fsynced writes.
if [ "$mode" = small ]; then sync_ops=200; else sync_ops=1000; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/stoat-compare.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# Builds the tools; the peers need the Debian packages, stoat its library.
build() {
    local mk="make -f Makefile -f bench/bench.mk"

    grep -q 'bench/bench.mk' Makefile && mk=make
    $mk BUILD="$BUILD" bench-peers >"$work/build.log" 2>&1 ||
        echo "compare: building the peers failed (see make bench-peers)" >&2
    $mk BUILD="$BUILD" bench >>"$work/build.log" 2>&1 ||
        echo "compare: building stoat_bench failed (see make bench)" >&2
}

# run ENGINE SIZE: both invocations, output appended to $work/ENGINE-SIZE.out
run() {
    local e=$1 size=$2 tool="$BUILD/bench/$1_bench" num db log
    num=$(entries "$size")
    db="$work/db-$e-$size"
    log="$work/$e-$size.out"
    : >"$log"
    if [ ! -x "$tool" ]; then
        echo "FAILED: $tool is not built" >>"$log"
        return
    fi
    local cmd1="$tool --benchmarks=$BENCHMARKS --num=$num --value_size=$size --threads=$THREADS --db=$db"
    local cmd2="$tool --benchmarks=fillsync --num=$((sync_ops * 1000)) --value_size=$size --threads=$THREADS --db=$db"
    echo "$cmd1" >>"$work/commands"
    echo "$cmd2" >>"$work/commands"
    echo "compare: $e, $size-byte values" >&2
    for cmd in "$cmd1" "$cmd2"; do
        if ! $cmd >>"$log" 2>"$work/err"; then
            echo "FAILED: $(tail -n 3 "$work/err" | tr '\n' ' ')" >>"$log"
        fi
        rm -rf "$db"
    done
}

# Turns one tool output into lines "bench metric value". The totals of
# the first invocation are "total", those of the fillsync one "total2".
parse() {
    awk '
        /^Date:/ { run++ }
        / micros\/op .* ops\/sec;/ {
            name = $1
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
    echo "$line"
}

header() {
    local line="| $1 |" sep="|---|" e
    for e in $ENGINES; do line="$line $e |"; sep="$sep---:|"; done
    for e in $PEERS; do line="$line stoat/$e |"; sep="$sep---:|"; done
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

build
: >"$work/commands"
for size in $SIZES; do
    for e in $ENGINES; do
        run "$e" "$size"
        parse "$work/$e-$size.out" >"$work/$e-$size.parsed"
    done
done
report "$([ "$mode" = small ] && echo --small)" >"$OUT"
echo "compare: wrote $OUT" >&2
