#!/bin/sh
# The fuzzers' short run in `make test`: builds the targets (make
# fuzz-build) and runs each for $FUZZ_SHORT_SECONDS (default 3). Without a
# clang that links -fsanitize=fuzzer it says so and counts nothing
# (`make deps` installs clang).
cc=${FUZZ_CC:-clang}
probe=${TMPDIR:-/tmp}/stoat-fuzz-probe-$$
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
    >"$probe.c"
if ! command -v "$cc" >/dev/null 2>&1 ||
   ! "$cc" -fsanitize=fuzzer,address,undefined -o "$probe" "$probe.c" >/dev/null 2>&1; then
    rm -f "$probe" "$probe.c"
    echo "SKIP fuzz: $cc with -fsanitize=fuzzer,address,undefined not found (make deps installs clang)"
    echo "0 passed, 0 failed"
    exit 0
fi
rm -f "$probe" "$probe.c"
if ! ${MAKE:-make} -s --no-print-directory fuzz-build >/dev/null 2>&1; then
    echo "FAIL fuzz: make fuzz-build failed:"
    ${MAKE:-make} -s --no-print-directory fuzz-build 2>&1 | tail -n 20
    echo "0 passed, 1 failed"
    exit 1
fi
FUZZ_SECONDS=${FUZZ_SHORT_SECONDS:-3} exec sh core/fuzz/run.sh build-fuzz/fuzz/fuzz_*
