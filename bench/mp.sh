#!/bin/bash
# bench/mp.sh - issue 11's figures: several processes on one database.
#
# For 100-byte and 1 KiB values, RUNS rounds of: fillrandom then
# readrandom with --processes=N (N = 1, 2, 4, 8 processes each opening
# the one directory; bench/procs.c) for stoat with multi_process = 1 and
# for LMDB (multi-process by design: each process opens the environment),
# and stoat's single-process baselines: multi_process = 0 through
# --processes=1 (the same fork and reopen as the rows above), in-process
# as stoat_bench always ran, and, when BASE names a stoat_bench built at
# an earlier commit, that one in-process ("before"). Each run starts on a
# fresh directory. It rewrites the "Issue 11: several processes" section
# of bench/RESULTS.md (between "<!-- begin processes -->" and
# "<!-- end processes -->"): medians of the rounds, the ratios, the
# targets, the exact commands; it keeps the hand-written analysis between
# "<!-- begin processes-analysis -->" and "<!-- end processes-analysis -->".
#
# The fills share NUM keys between the processes (the same database
# whatever N); each process does READS gets, so ops/sec is aggregate
# throughput: all processes' operations over the wall time from the first
# start to the last finish.
#
# Environment: NUM (200000), READS (100000 per process), RUNS (3), PROCS
# ("1 2 4 8"), SIZES ("100 1024"), BUILD (build), OUT (bench/RESULTS.md;
# "-" prints only), BASE (a stoat_bench of an earlier commit; optional),
# BASE_NAME (how to name it, e.g. its commit), COMMIT (names the stoat
# measured when the tree is not a git checkout), RAW (keep the raw figures,
# one "size run round benchmark value" line each, in this file), RAW_IN
# (write the section from such a file instead of running; give the same
# SIZES, PROCS, RUNS, BASE). About 8 minutes with the defaults on 2 cores.
#
# Do not edit this script while it runs: bash reads it as it goes.
set -u

cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
OUT=${OUT:-bench/RESULTS.md}
NUM=${NUM:-200000}
READS=${READS:-100000}
RUNS=${RUNS:-3}
PROCS=${PROCS:-"1 2 4 8"}
SIZES=${SIZES:-"100 1024"}
BASE=${BASE:-}
BASE_NAME=${BASE_NAME:-earlier build}

make --no-print-directory -j2 bench >&2 || exit 1
stoat=$BUILD/bench/stoat_bench
lmdb=$BUILD/bench/lmdb_bench
if [ ! -x "$lmdb" ]; then
    make --no-print-directory -j2 "$lmdb" >&2 || { echo "no LMDB tool (make deps-bench)" >&2; lmdb=; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mp_bench.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
results=${RAW:-$work/results}
[ -n "${RAW_IN:-}" ] || : > "$results"

# run NAME TOOL [FLAGS...]: one invocation; appends "size name round
# bench ops", "size name round bench_rss MB" and "... bench_pss MB" lines to
# $results.
run() {
    local name=$1 tool=$2 out
    shift 2
    rm -rf "$work/db"
    echo "mp.sh: $size B, round $round: $name" >&2
    if ! out=$("$tool" --benchmarks=fillrandom,readrandom --num="$NUM" --reads="$READS" \
                       --value_size="$size" --db="$work/db" "$@" 2>&1); then
        echo "mp.sh: $name failed:" >&2
        echo "$out" >&2
        return
    fi
    echo "$out" | awk -v s="$size" -v c="$name" -v r="$round" '
        $2 == ":" && / ops\/sec;/ {
            for (i = 1; i <= NF; i++) if ($i == "ops/sec;") print s, c, r, $1, $(i - 1)
            bench = $1 }
        /^  peak RSS:/ && bench != "" { print s, c, r, bench "_rss", $3 }
        /^  memory:/ && bench != "" { print s, c, r, bench "_pss", $2 }
        /^  cpu:/ && bench != "" { print s, c, r, bench "_cps", $7; bench = "" }' >> "$results"
}

run_sizes=$SIZES
[ -n "${RAW_IN:-}" ] && { results=$RAW_IN; run_sizes=; }
for size in $run_sizes; do
    for round in $(seq 1 "$RUNS"); do
        [ -n "$BASE" ] && run before "$BASE"
        run sp-inproc "$stoat" --multi_process=0
        run sp-1 "$stoat" --processes=1 --multi_process=0
        for n in $PROCS; do
            run "mp-$n" "$stoat" --processes="$n" --multi_process=1
            [ -n "$lmdb" ] && run "lmdb-$n" "$lmdb" --processes="$n"
        done
    done
done

# Cores busy per run: ops/sec over ops per CPU second (how much of the
# machine the processes got; above 1 only when they ran in parallel).
awk '$4 !~ /_/ { ops[$1 " " $2 " " $3 " " $4] = $5 }
     $4 ~ /_cps$/ { cps[$1 " " $2 " " $3 " " substr($4, 1, length($4) - 4)] = $5 }
     END { for (k in ops) if (cps[k] > 0) printf "%s_cores %.2f\n", k, ops[k] / cps[k] }' \
    "$results" | cat "$results" - > "$work/all"
results=$work/all

# med SIZE NAME BENCH: the median of the rounds ("-" when none ran).
med() {
    awk -v s="$1" -v c="$2" -v b="$3" '$1 == s && $2 == c && $4 == b { v[n++] = $5 }
        END {
            if (n == 0) { print "-"; exit }
            for (i = 1; i < n; i++) for (j = i; j > 0 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
            m = n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2
            if (b ~ /_(rss|pss)$/) printf "%.1f", m; else if (b ~ /_cores$/) printf "%.2f", m; else printf "%d", m
        }' "$results"
}
# all SIZE NAME BENCH: every round's figure, "a / b / c".
all() {
    awk -v s="$1" -v c="$2" -v b="$3" '$1 == s && $2 == c && $4 == b { printf "%s%s", n++ ? " / " : "", $5 }' "$results"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "-" }'; }
# times A B: "1.23 x", or "-" when either is missing.
times() { local r; r=$(ratio "$1" "$2"); [ "$r" = - ] && echo - || echo "$r x"; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { if (r == "-") print "not run"; else print (r >= t ? "met" : "missed") }'; }

# size_section SIZE: the tables of one value size.
size_section() {
    local s=$1 n row eng bench first
    echo "### $s-byte values"
    echo
    printf '| ops/sec, median of %s |' "$RUNS"
    for n in $PROCS; do printf ' N=%s |' "$n"; done
    for n in $PROCS; do [ "$n" != 1 ] && printf ' %s/1 |' "$n"; done
    echo
    printf '|---|'
    for n in $PROCS; do printf -- '---:|'; done
    for n in $PROCS; do [ "$n" != 1 ] && printf -- '---:|'; done
    echo
    for bench in fillrandom readrandom fillrandom_cps readrandom_cps fillrandom_cores readrandom_cores readrandom_rss readrandom_pss; do
        for eng in mp lmdb; do
            [ "$eng" = lmdb ] && [ -z "$lmdb" ] && continue
            case $eng/$bench in
                mp/readrandom_rss) row="stoat peak RSS summed, MB" ;;
                lmdb/readrandom_rss) row="lmdb peak RSS summed, MB" ;;
                mp/readrandom_pss) row="stoat memory (PSS summed: shared pages once), MB" ;;
                lmdb/readrandom_pss) row="lmdb memory (PSS summed: shared pages once), MB" ;;
                mp/*_cps) row="stoat ${bench%_cps} ops per CPU second" ;;
                lmdb/*_cps) row="lmdb ${bench%_cps} ops per CPU second" ;;
                mp/*_cores) row="stoat ${bench%_cores} cores busy" ;;
                lmdb/*_cores) row="lmdb ${bench%_cores} cores busy" ;;
                mp/*) row="stoat multi_process $bench" ;;
                *) row="lmdb $bench" ;;
            esac
            first=$(med "$s" "$eng-1" "$bench")
            printf '| %s |' "$row"
            for n in $PROCS; do printf ' %s |' "$(med "$s" "$eng-$n" "$bench")"; done
            for n in $PROCS; do
                [ "$n" != 1 ] && printf ' %s |' "$(ratio "$(med "$s" "$eng-$n" "$bench")" "$first")"
            done
            echo
        done
    done
    echo
    echo "One process, stoat (ops/sec, median of $RUNS):"
    echo
    echo "| benchmark |$([ -n "$BASE" ] && echo " before ($BASE_NAME), in-process |") single-process, in-process | single-process, --processes=1 | multi_process, --processes=1 | multi_process / single-process | the same per CPU second |$([ -n "$BASE" ] && echo " single-process in-process / before |")"
    echo "|---|$([ -n "$BASE" ] && printf -- '---:|')---:|---:|---:|---:|---:|$([ -n "$BASE" ] && printf -- '---:|')"
    for bench in fillrandom readrandom; do
        local b0 sp spi mp1
        b0=$(med "$s" before "$bench"); spi=$(med "$s" sp-inproc "$bench")
        sp=$(med "$s" sp-1 "$bench"); mp1=$(med "$s" mp-1 "$bench")
        echo "| $bench |$([ -n "$BASE" ] && echo " $b0 |") $spi | $sp | $mp1 | $(ratio "$mp1" "$sp") | $(ratio "$(med "$s" mp-1 "${bench}_cps")" "$(med "$s" sp-1 "${bench}_cps")") |$([ -n "$BASE" ] && echo " $(ratio "$spi" "$b0") |")"
    done
    echo
}

# targets: one row per target and value size.
targets() {
    local s r
    echo "| target | value size | measured | status |"
    echo "|---|---|---|---|"
    for s in $SIZES; do
        for bench in fillrandom readrandom; do
            r=$(ratio "$(med "$s" mp-1 "$bench")" "$(med "$s" sp-1 "$bench")")
            echo "| multi_process at N=1 >= 0.9 x single-process, $bench | $s B | $(times "$(med "$s" mp-1 "$bench")" "$(med "$s" sp-1 "$bench")") (per CPU second $(times "$(med "$s" mp-1 "${bench}_cps")" "$(med "$s" sp-1 "${bench}_cps")")) | $(verdict "$r" 0.9) |"
        done
        if [ -n "$BASE" ]; then
            for bench in fillrandom readrandom; do
                r=$(ratio "$(med "$s" sp-inproc "$bench")" "$(med "$s" before "$bench")")
                echo "| single-process >= 0.9 x before ($BASE_NAME), $bench | $s B | $(times "$(med "$s" sp-inproc "$bench")" "$(med "$s" before "$bench")") | $(verdict "$r" 0.9) |"
            done
        fi
        r=$(ratio "$(med "$s" mp-2 readrandom)" "$(med "$s" mp-1 readrandom)")
        echo "| readrandom, 2 processes >= 1.7 x 1 | $s B | $(times "$(med "$s" mp-2 readrandom)" "$(med "$s" mp-1 readrandom)") (lmdb $(times "$(med "$s" lmdb-2 readrandom)" "$(med "$s" lmdb-1 readrandom)"); per CPU second $(times "$(med "$s" mp-2 readrandom_cps)" "$(med "$s" mp-1 readrandom_cps)")) | $(verdict "$r" 1.7) |"
        r=$(ratio "$(med "$s" mp-4 fillrandom)" "$(med "$s" mp-1 fillrandom)")
        echo "| fillrandom, 4 processes >= 0.8 x 1 | $s B | $(times "$(med "$s" mp-4 fillrandom)" "$(med "$s" mp-1 fillrandom)") (lmdb $(times "$(med "$s" lmdb-4 fillrandom)" "$(med "$s" lmdb-1 fillrandom)"); per CPU second $(times "$(med "$s" mp-4 fillrandom_cps)" "$(med "$s" mp-1 fillrandom_cps)")) | $(verdict "$r" 0.8) |"
    done
}

raw() {
    local s c bench
    for s in $SIZES; do
        for c in $(awk -v s="$s" '$1 == s { print $2 }' "$results" | awk '!seen[$0]++'); do
            for bench in fillrandom readrandom; do
                echo "- $s B, $c, $bench: $(all "$s" "$c" "$bench")"
            done
        done
    done
}

commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
load=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "$OUT" != "-" ] && [ -f "$OUT" ] && grep -q '^<!-- begin processes-analysis -->$' "$OUT"; then
    analysis=$(sed -n '/^<!-- begin processes-analysis -->$/,/^<!-- end processes-analysis -->$/p' "$OUT")
else
    analysis=$(printf '%s\n' '<!-- begin processes-analysis -->' '### Analysis' '' '(not written yet)' \
                      '<!-- end processes-analysis -->')
fi
section=$(
    echo '<!-- begin processes -->'
    echo '## Issue 11: several processes'
    echo
    echo "Written by \`bench/mp.sh\` on $(date -u '+%Y-%m-%d %H:%M') UTC, stoat at commit $commit,"
    echo "$(nproc) x $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), load average $load when it ended."
    echo "Every run starts on a fresh directory under ${TMPDIR:-/tmp}: fillrandom of $NUM keys"
    echo "(shared between the N processes), then readrandom with $READS gets in each"
    echo "process; 16-byte keys, no fsync. ops/sec is the aggregate of the N processes"
    echo "(all their operations over the wall time from the first start to the last"
    echo "finish); each process opens the database before the common start, so open and"
    echo "WAL replay are not timed. Peak RSS is summed over the processes (shared pages"
    echo "count in each); memory is the processes' PSS summed, taken once all have run and"
    echo "before any closes (each shared page counted once; pages read with pread live in"
    echo "the page cache and count nowhere). Ops per CPU second: all operations over the user + system time"
    echo "of every thread of every process (background work included); other jobs on"
    echo "the machine disturb it less than ops/sec, and it stays flat with N when the"
    echo "processes scale. Cores busy: ops/sec over ops per CPU second, the share of the"
    echo "machine the processes got (up to $(nproc)). Medians of $RUNS rounds; the machine's"
    echo "cores are shared with other jobs, so compare within this section."
    echo
    echo "Commands (V = 100, 1024; N = $PROCS):"
    echo
    echo '```sh'
    echo "build/bench/stoat_bench --benchmarks=fillrandom,readrandom --num=$NUM --reads=$READS --value_size=V --processes=N --multi_process=1"
    echo "build/bench/lmdb_bench  --benchmarks=fillrandom,readrandom --num=$NUM --reads=$READS --value_size=V --processes=N"
    echo "build/bench/stoat_bench --benchmarks=fillrandom,readrandom --num=$NUM --reads=$READS --value_size=V --processes=1 --multi_process=0"
    echo "build/bench/stoat_bench --benchmarks=fillrandom,readrandom --num=$NUM --reads=$READS --value_size=V   # in-process"
    echo '```'
    echo
    for s in $SIZES; do size_section "$s"; done
    echo "### Targets"
    echo
    targets
    echo
    echo "### Every round (ops/sec)"
    echo
    raw
    echo
    echo "$analysis"
    echo '<!-- end processes -->'
)
echo "$section"
if [ "$OUT" != "-" ]; then
    tmp=$(mktemp)
    if [ -f "$OUT" ] && grep -q '^<!-- begin processes -->$' "$OUT"; then
        awk -v sec="$section" '
            /^<!-- begin processes -->$/ { print sec; skip = 1; next }
            /^<!-- end processes -->$/ { skip = 0; next }
            !skip { print }' "$OUT" > "$tmp"
    else
        { [ -f "$OUT" ] && cat "$OUT"; echo; echo "$section"; } > "$tmp"
    fi
    mv "$tmp" "$OUT"
    echo "bench/mp.sh: wrote its section of $OUT" >&2
fi
