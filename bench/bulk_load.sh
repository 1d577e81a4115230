#!/bin/sh
# bench/bulk_load.sh - issue 14's target: a bulk load of 2,000,000 sorted
# 100-byte entries against batched puts (batches of 1000), run RUNS times
# (default 3); prints every run and the median of each ratio.
#
#   sh bench/bulk_load.sh [bulk_load flags...]     (make bench-bulk runs it)
#   RUNS=5 sh bench/bulk_load.sh --num=1000000
#
# Each run writes the same entries into two fresh databases under $TMPDIR
# (build/bench/bulk_load, bench/bulk_load.c), checks that they read the
# same, and prints the times; "ratio" is batched puts (to their last
# commit) over the loader, "ratio with flush" counts the batches until
# their data is in tables, "ratio with flatten" until it is compacted into
# the last level (where the loader puts it), "cpu ratio with flush"
# compares the CPU time of the whole process (all threads) during each.
# The load average before each run is printed: on a shared machine the
# figures move with it.
set -e
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RUNS=${RUNS:-3}
make --no-print-directory -s "$BUILD/bench/bulk_load" >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=1
while [ "$i" -le "$RUNS" ]; do
    echo "run $i of $RUNS (load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null))"
    "$BUILD/bench/bulk_load" "$@" | tee -a "$out"
    i=$((i + 1))
done
median() {
    grep "^$1: " "$out" | sed "s/^$1: //" | sort -n | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo "median of $RUNS runs: ratio $(median ratio), ratio with flush $(median 'ratio with flush'), ratio with flatten $(median 'ratio with flatten'), cpu ratio with flush $(median 'cpu ratio with flush')"
