#!/bin/sh
# Runs every test binary given as an argument (under $TEST_WRAPPER, e.g.
# valgrind, when set), then (unless STOAT_NO_LUA is set) the busted specs,
# and prints the sum as the last line: "N passed, N failed".
passed=0
failed=0
log=${TMPDIR:-/tmp}/stoat-test-$$.log
for t in "$@"; do
    echo "== $t"
    $TEST_WRAPPER "$t" >"$log" 2>&1
    code=$?
    grep -v '^PASS ' "$log"
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -z "$last" ]; then
        echo "FAIL $t exited $code without a summary"
        failed=$((failed + 1))
        continue
    fi
    p=${last%% passed*}
    f=${last#*, }
    f=${f%% failed*}
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$code" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $t exited $code"
        failed=$((failed + 1))
    fi
done
rm -f "$log"
if [ -z "$STOAT_NO_LUA" ] && [ -d spec ] && ls spec/*_spec.lua >/dev/null 2>&1; then
    echo "== busted"
    out=$(busted --lua=luajit -o plainTerminal spec 2>&1)
    echo "$out" | tail -n 30
    summary=$(echo "$out" | grep -E '^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' | tail -n 1)
    if [ -z "$summary" ]; then
        echo "FAIL busted printed no summary"
        failed=$((failed + 1))
    else
        s=$(echo "$summary" | sed -E 's#^([0-9]+) success.*#\1#')
        fl=$(echo "$summary" | sed -E 's#^[0-9]+ successes? / ([0-9]+) failures?.*#\1#')
        er=$(echo "$summary" | sed -E 's#.*/ ([0-9]+) errors?.*#\1#')
        passed=$((passed + s))
        failed=$((failed + fl + er))
    fi
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
