#!/bin/sh
# stress.sh - the concurrency hunt (make stress): the model test and the
# tests that race iterators, value-log GC, flushes and compactions, run in
# parallel copies for STRESS_SECONDS, with CPU hogs beside them, each run
# with its own directory and a fresh random STOAT_SEED. Stops at the first
# failure and prints its seed and log; exit 1 then, else 0.
#
#   core/test/stress.sh BUILD_DIR
#
# Environment: STRESS_SECONDS (default 600), STRESS_COPIES (parallel
# workers, default 4), STRESS_HOGS (busy loops beside them, default 1),
# STOAT_PERTURB (delay rate of a -DSTOAT_PERTURB build, see
# core/src/base/perturb.h), STRESS_MODEL_OPS (operations per model-test run,
# default the test's own 1,000,000), STRESS_JOBS (a pattern: only the jobs
# whose line matches it, e.g. STRESS_JOBS=db_model_test).
build=${1:?usage: stress.sh BUILD_DIR}
seconds=${STRESS_SECONDS:-600}
copies=${STRESS_COPIES:-4}
hogs=${STRESS_HOGS:-1}
work=$(mktemp -d "${TMPDIR:-/tmp}/stoat-stress-XXXXXX")
deadline=$(( $(date +%s) + seconds ))

# The jobs, taken in turn by each worker: the model test and the scan
# race most often.
jobs="db_model_test
db_scan_race_test
vlog_db_race_test test_vlog_db_gc_concurrent_no_wrong_reads
db_model_test
db_scan_race_test
db_test test_db_many_threads test_db_iterator_snapshot_survives_compaction
db_model_test
db_scan_race_test
txn_bank_test"
if [ -n "${STRESS_JOBS:-}" ]; then
    jobs=$(printf '%s\n' "$jobs" | grep -- "$STRESS_JOBS" | sort -u)
    [ -n "$jobs" ] || { echo "stress: no job matches '$STRESS_JOBS'"; exit 2; }
fi
njobs=$(printf '%s\n' "$jobs" | wc -l)

random_seed() {
    od -An -N6 -tu8 /dev/urandom | tr -d ' '
}

worker() {
    id=$1
    i=$id
    mkdir -p "$work/w$id"
    while [ ! -e "$work/FAILED" ]; do
        left=$(( deadline - $(date +%s) ))
        [ "$left" -le 0 ] && break
        job=$(printf '%s\n' "$jobs" | sed -n "$(( i % njobs + 1 ))p")
        i=$(( i + 1 ))
        seed=$(random_seed)
        log="$work/w$id/log"
        # shellcheck disable=SC2086
        TMPDIR="$work/w$id" STOAT_SEED=$seed STOAT_BANK_SECONDS=${STOAT_BANK_SECONDS:-15} \
            STOAT_SCAN_RACE_SECONDS=${STOAT_SCAN_RACE_SECONDS:-30} \
            ${STRESS_MODEL_OPS:+STOAT_MODEL_OPS=$STRESS_MODEL_OPS} \
            timeout "$left" "$build/test/"$job >"$log" 2>&1
        rc=$?
        [ "$rc" -eq 124 ] && break     # cut by the deadline: not a result
        # A run that ran no test (a test renamed or moved) is a failure too.
        if [ "$rc" -ne 0 ] || grep -q '^FAIL\|mismatch at\|mismatch:\|^0 passed, 0 failed' "$log"; then
            if mkdir "$work/FAILED" 2>/dev/null; then
                {
                    echo "stress: FAILED: $job (exit $rc), replay with STOAT_SEED=$seed"
                    cat "$log"
                } >"$work/FAILED/report"
            fi
            break
        fi
        echo "$job" >>"$work/w$id/passed"
    done
}

hog_pids=""
h=0
while [ "$h" -lt "$hogs" ]; do
    (while :; do :; done) &
    hog_pids="$hog_pids $!"
    h=$(( h + 1 ))
done
trap 'kill $hog_pids 2>/dev/null' EXIT INT TERM

echo "stress: $copies workers, $hogs CPU hogs, ${seconds} s, build $build${STOAT_PERTURB:+, perturb $STOAT_PERTURB}"
c=0
pids=""
while [ "$c" -lt "$copies" ]; do
    worker "$c" &
    pids="$pids $!"
    c=$(( c + 1 ))
done
wait $pids
kill $hog_pids 2>/dev/null
runs=$(cat "$work"/w*/passed 2>/dev/null | wc -l)
models=$(cat "$work"/w*/passed 2>/dev/null | grep -c '^db_model_test')
if [ -e "$work/FAILED" ]; then
    cat "$work/FAILED/report"
    echo "stress: $runs runs passed before the failure (kept in $work)"
    echo "0 passed, 1 failed"
    exit 1
fi
rm -rf "$work"
echo "stress: $runs runs passed ($models of the model test), none failed"
echo "1 passed, 0 failed"
exit 0
