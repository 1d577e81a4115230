#!/bin/sh
# bench/threshold.sh - measures stoat across value_threshold settings, to
# choose its default (bench/RESULTS.md, "Value threshold").
#
#     bench/threshold.sh [BENCH_BINARY]      (default build/bench/stoat_bench)
#
# For each value size it loads about $MB MiB (default 256) of data with
# fillrandom, overwrites it once, then runs readrandom and readseq, once
# with every value inline (threshold above the value size) and once per
# threshold at or below the value size. Prints one table row per run:
# value size, threshold, ops/s per benchmark, write amplification, size on
# disk. Databases go under ${TMPDIR:-/tmp} and are removed.
set -eu
bin=${1:-build/bench/stoat_bench}
mb=${MB:-256}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/stoat-threshold.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

ops() { awk -v b="$1" '$1 == b && $2 == ":" { print $5; exit }' "$2"; }

echo "| value | threshold | fillrandom | overwrite | readrandom | readseq | write amp | size MB |"
echo "|---|---|---|---|---|---|---|---|"
for v in 128 512 1024 4096 16384; do
    num=$((mb * 1024 * 1024 / v))
    for t in inline 256 1024 4096 16384; do
        if [ "$t" = inline ]; then
            th=1000000   # above every value size: all inline
        elif [ "$t" -gt "$v" ]; then
            continue
        else
            th=$t
        fi
        rm -rf "$tmp/db"
        "$bin" --benchmarks=fillrandom,overwrite,readrandom,readseq --num=$num \
            --reads=$((num / 2)) --value_size=$v --value_threshold=$th --db="$tmp/db" \
            > "$tmp/out" 2>&1
        amp=$(awk '/^total/ { t = 1 } t && /write amp/ { gsub(/[()]/, ""); print $NF; exit }' "$tmp/out")
        size=$(awk '/^total/ { t = 1 } t && /size on disk/ { print $4; exit }' "$tmp/out")
        echo "| $v | $t | $(ops fillrandom "$tmp/out") | $(ops overwrite "$tmp/out") |" \
             "$(ops readrandom "$tmp/out") | $(ops readseq "$tmp/out") | $amp | $size |"
    done
done
