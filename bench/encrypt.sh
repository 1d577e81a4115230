#!/bin/bash
# bench/encrypt.sh - issue 17's figures: what encryption at rest costs.
#
# For 100-byte and 1 KiB values, RUNS rounds, each running stoat_bench
# fillrandom,readrandom,readseq on a fresh directory without a key and
# with one (--encrypt=1), alternating which goes first. Prints, per size
# and benchmark, the medians of micros/op and of CPU time per op (user +
# system of the whole process, background threads included: robust on a
# shared machine where wall time is not), and the ratios encrypted /
# plain as throughput (plain micros / encrypted micros: the target is
# >= 0.85). With OUT set, also rewrites the part between
# "<!-- begin encryption -->" and "<!-- end encryption -->" of that file
# (bench/RESULTS.md; the analysis is written by hand outside it).
#
# Environment: NUM100 (300000), NUM1K (100000), RUNS (5), BUILD (build),
# SIZES ("100 1024"), OUT (unset: print only).
set -u

cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
RUNS=${RUNS:-5}
SIZES=${SIZES:-100 1024}
NUM100=${NUM100:-300000}
NUM1K=${NUM1K:-100000}
BENCHES="fillrandom readrandom readseq"
TOOL="$BUILD/bench/stoat_bench"

make -s BUILD="$BUILD" bench >/dev/null || { echo "encrypt: make bench failed" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/stoat-encrypt.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

num_of() { [ "$1" = 100 ] && echo "$NUM100" || echo "$NUM1K"; }

# one SIZE ENC ROUND: appends "size enc bench micros cpu_us_per_op" lines.
one() {
    local size=$1 enc=$2 num out t0 t1 cpu
    num=$(num_of "$size")
    rm -rf "$work/db"
    out="$work/out"
    # CPU time of the process: /proc/self/stat of a child is read by
    # `time`; bash's TIMEFORMAT gives user and system seconds.
    TIMEFORMAT='%U %S'
    { time "$TOOL" --benchmarks=fillrandom,readrandom,readseq --num="$num" \
          --value_size="$size" --encrypt="$enc" --db="$work/db" >"$out" 2>&1; } 2>"$work/time"
    for b in $BENCHES; do
        t0=$(awk -v b="$b" '$1 == b && $2 == ":" { print $3; exit }' "$out")
        echo "$size $enc $b $t0" >>"$work/raw"
    done
    cpu=$(awk '{ print $1 + $2 }' "$work/time")
    echo "$size $enc cpu_total $cpu" >>"$work/raw"
}

: >"$work/raw"
for size in $SIZES; do
    for r in $(seq 1 "$RUNS"); do
        if [ $((r % 2)) = 1 ]; then one "$size" 0; one "$size" 1; else one "$size" 1; one "$size" 0; fi
        echo "encrypt: $size B, round $r of $RUNS" >&2
    done
done

median() {  # median of the values on stdin
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2];
                    else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

table() {
    echo "| value size | benchmark | plain us/op | encrypted us/op | encrypted / plain (throughput) | target |"
    echo "|---:|---|---:|---:|---:|---|"
    for size in $SIZES; do
        for b in $BENCHES cpu_total; do
            p=$(awk -v s="$size" -v b="$b" '$1 == s && $2 == 0 && $3 == b { print $4 }' "$work/raw" | median)
            e=$(awk -v s="$size" -v b="$b" '$1 == s && $2 == 1 && $3 == b { print $4 }' "$work/raw" | median)
            r=$(awk -v p="$p" -v e="$e" 'BEGIN { if (p == "" || e == "" || e + 0 == 0) print "-"; else printf "%.2f", p / e }')
            if [ "$b" = cpu_total ]; then
                label="CPU seconds, whole run"
                verdict="-"
            else
                label=$b
                verdict=$(awk -v r="$r" 'BEGIN { print (r != "-" && r + 0 >= 0.85) ? "met (>= 0.85)" : "missed (>= 0.85)" }')
            fi
            echo "| $size | $label | $p | $e | $r | $verdict |"
        done
    done
}

{
    echo "Medians of $RUNS rounds (plain and encrypted alternating which runs first),"
    echo "written by \`bench/encrypt.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), stoat at"
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), on $(nproc) cores."
    echo
    table
    echo
    echo "Command per round: \`$TOOL --benchmarks=fillrandom,readrandom,readseq --num=N --value_size=V [--encrypt=1] --db=DIR\`"
    echo "(N = $NUM100 at 100 B, $NUM1K at 1 KiB); CPU seconds are user + system of the whole run."
} >"$work/section"
cat "$work/section"

if [ -n "${OUT:-}" ]; then
    awk -v sec="$work/section" '
        /^<!-- begin encryption -->/ { print; while ((getline l < sec) > 0) print l; skip = 1; next }
        /^<!-- end encryption -->/ { skip = 0 }
        skip { next }
        { print }
    ' "$OUT" >"$work/new" && cp "$work/new" "$OUT"
fi
