#!/bin/bash
# bench/lua_cpu.sh - CPU time per set, get and scan of the C tool and of
# the Lua one (bench/RESULTS.md, "Issue 15: Lua overhead"). On a shared
# machine wall-clock ops/sec swing between rounds; CPU time of the process
# (task-clock: every thread, background work included) much less.
#
#     bench/lua_cpu.sh [ROUNDS]              (default 5)
#
# Tools: c (build/bench/stoat_bench), lua (luajit bench/lua_bench.lua, the
# natural API), luabuf (the same with --key_buffer=1 --value_buffer=1),
# and, when LUA_BEFORE names a directory holding lua/, bench/lua_bench.lua
# and libstoat.so of another version (e.g. `git archive` of a commit), also
# before (that version). Per size (100 B: 300,000 entries, 200,000 gets;
# 1 KiB: 100,000 and 100,000), each tool's figure is the task-clock of an
# invocation with the operations minus that of the same invocation without
# them, per operation: set = fillrandom on a fresh directory (minus
# --num=1); get = readrandom on a database stoat_bench wrote and db:flatten
# compacted (minus --reads=0); scan = three readseq over every key (minus
# one with --reads=0). The tools run interleaved, the order rotated each
# round (SIZES="100:300000:200000 1024:100000:100000", value size:
# entries:gets, changes the sizes). Prints "round tool op ns" lines, then
# per op the medians and C's
# median over each tool's (the Lua/C ratio of throughputs). Needs perf;
# builds nothing (run `make lib bench` first). Databases go under
# ${TMPDIR:-/tmp} and are removed.
set -eu
rounds=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
lib=$root/build/libstoat.so
tmp=$(mktemp -d "${TMPDIR:-/tmp}/stoat-lua-cpu.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

names=(c lua luabuf)
cmds=("$root/build/bench/stoat_bench"
      "env STOAT_LIB=$lib luajit $root/bench/lua_bench.lua"
      "env STOAT_LIB=$lib luajit $root/bench/lua_bench.lua --key_buffer=1 --value_buffer=1")
if [ -n "${LUA_BEFORE:-}" ]; then
    names+=(before)
    cmds+=("env STOAT_LIB=$LUA_BEFORE/libstoat.so luajit $LUA_BEFORE/bench/lua_bench.lua")
fi
n=${#names[@]}

# cpu CMD ARGS...: seconds of CPU of the command (task-clock).
cpu() {
    perf stat -x, -e task-clock "$@" 2>&1 >/dev/null | awk -F, '/task-clock/ { print $1 / 1000 }'
}

# run SIZE NUM READS: the "round tool op ns" lines of one value size.
run() {
    local size=$1 num=$2 reads=$3 db=$tmp/db fill=$tmp/fill keys r j i c s1 sn g0 gn q0 qn
    rm -rf "$db"
    "${cmds[0]}" --benchmarks=fillrandom --num="$num" --value_size="$size" --db="$db" >/dev/null
    keys=$(env STOAT_LIB="$lib" luajit -e "package.path = '$root/lua/?.lua;' .. package.path
        local db = assert(require('stoat').open('$db')); assert(db:flatten())
        print(db:count()); db:close()")
    for r in $(seq 1 "$rounds"); do
        for j in $(seq 0 $((n - 1))); do
            i=$(((j + r) % n)); c=${cmds[$i]}
            rm -rf "$fill"
            s1=$(cpu $c --benchmarks=fillrandom --num=1 --value_size="$size" --db="$fill")
            rm -rf "$fill"
            sn=$(cpu $c --benchmarks=fillrandom --num="$num" --value_size="$size" --db="$fill")
            rm -rf "$fill"
            g0=$(cpu $c --benchmarks=readrandom --reads=0 --num="$num" --value_size="$size" \
                 --use_existing_db=1 --db="$db")
            gn=$(cpu $c --benchmarks=readrandom --reads="$reads" --num="$num" --value_size="$size" \
                 --use_existing_db=1 --db="$db")
            q0=$(cpu $c --benchmarks=readseq --reads=0 --num="$num" --value_size="$size" \
                 --use_existing_db=1 --db="$db")
            qn=$(cpu $c --benchmarks=readseq,readseq,readseq --reads="$num" --num="$num" \
                 --value_size="$size" --use_existing_db=1 --db="$db")
            awk -v r="$r" -v t="${names[$i]}" -v s1="$s1" -v sn="$sn" -v num="$num" -v g0="$g0" \
                -v gn="$gn" -v reads="$reads" -v q0="$q0" -v qn="$qn" -v keys="$keys" 'BEGIN {
                printf "%d %s set %.0f\n", r, t, (sn - s1) / num * 1e9
                printf "%d %s get %.0f\n", r, t, (gn - g0) / reads * 1e9
                printf "%d %s scan %.0f\n", r, t, (qn - q0) / (3 * keys) * 1e9 }'
        done
    done
}

# medians: per op, each tool's median ns and C's median over it.
medians() {
    awk '{ k = $3 SUBSEP $2; v[k, ++c[k]] = $4
           if (!($3 in seen_op)) { seen_op[$3]; ops[++nops] = $3 }
           if (!($2 in seen_tool)) { seen_tool[$2]; tools[++ntools] = $2 } }
        function med(k,   i, j, t, a, m) {
            m = c[k]; for (i = 1; i <= m; i++) a[i] = v[k, i]
            for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
                t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
        END { for (o = 1; o <= nops; o++) {
                line = ops[o]; base = med(ops[o] SUBSEP "c")
                for (t = 1; t <= ntools; t++) {
                    m = med(ops[o] SUBSEP tools[t])
                    line = line sprintf("  %s %d ns (C/%s %.2f)", tools[t], m, tools[t], base / m) }
                print line } }'
}

for spec in ${SIZES:-100:300000:200000 1024:100000:100000}; do
    set -- ${spec//:/ }
    echo "== $1-byte values (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    run "$1" "$2" "$3" | tee "$tmp/lines"
    medians <"$tmp/lines"
done
