#!/bin/sh
# Runs each libFuzzer target given as an argument for $FUZZ_SECONDS
# (default 60) under ASan + UBSan (as built by `make fuzz-build`), from its
# seed corpus core/fuzz/corpus/<target>/, writing new inputs to
# build-fuzz/corpus/<target>/ and any crashing input to
# build-fuzz/crash/<target>/. Prints per target "PASS <target>: N runs in
# S s" or "FAIL <target>" with the fuzzer's report, then "N passed, N
# failed" (the line core/test/run.sh adds up).
seconds=${FUZZ_SECONDS:-60}
passed=0
failed=0
# The targets' scratch files go under one directory removed at the end
# (fuzz_util.h: a target cut by the time limit cannot clean up itself).
shm=/dev/shm
[ -d "$shm" ] || shm=${TMPDIR:-/tmp}
STOAT_FUZZ_SCRATCH=$(mktemp -d "$shm/stoat-fuzz-run-XXXXXX") || exit 2
export STOAT_FUZZ_SCRATCH
trap 'rm -rf "$STOAT_FUZZ_SCRATCH"' EXIT
for t in "$@"; do
    name=$(basename "$t")
    corpus=build-fuzz/corpus/$name
    crash=build-fuzz/crash/$name
    log=${TMPDIR:-/tmp}/stoat-fuzz-$$-$name.log
    mkdir -p "$corpus" "$crash"
    seeds=core/fuzz/corpus/$name
    [ -d "$seeds" ] || seeds=
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$t" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$crash/" "$corpus" $seeds >"$log" 2>&1
    code=$?
    runs=$(grep -E '^stat::number_of_executed_units:' "$log" | tail -n 1 | awk '{print $2}')
    if [ "$code" -eq 0 ]; then
        echo "PASS $name: ${runs:-?} runs in ${seconds} s"
        passed=$((passed + 1))
    else
        echo "FAIL $name (exit $code), crashing input in $crash/:"
        grep -E 'ERROR|FUZZ_ASSERT|runtime error|SUMMARY|#[0-9]+ 0x' "$log" | head -n 30
        failed=$((failed + 1))
    fi
    rm -f "$log"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
