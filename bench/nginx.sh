#!/bin/sh
# bench/nginx.sh - stoat against ngx.shared.DICT inside one nginx (issue 12).
#
# Starts Debian's nginx + libnginx-mod-http-lua on 127.0.0.1 under a
# temporary prefix with WORKERS workers and runs wrk against the same get
# and set handlers on an ngx.shared.DICT and on stoat.ngx.dict (the
# shdict look-alike), one after another, in one run:
#
#   get            shdict:get / dict:get of a random key of KEYS (preloaded)
#   set            shdict:set / dict:set of a random key, 100-byte value, on
#                  a database opened with sync = "none"
#   set durable    the stoat set followed by its fsync, two ways:
#                  thread: sync = "none" + stoat.ngx.sync (the fsync runs on
#                  nginx's thread pool, the worker's event loop goes on);
#                  inline: a second database opened with sync = "commit"
#                  (the fsync runs on the event loop)
#   noop p99       the 99th-percentile latency of a no-op location alone,
#                  then while durable writes run (thread, then inline)
#
# and prints requests/s, the stoat/shdict ratios and the p99s, and writes
# them between the "<!-- begin nginx -->" and "<!-- end nginx -->" lines
# of bench/RESULTS.md (OUT), keeping the rest of the file.
#
# Environment: WORKERS (1), RUN_SECONDS (10 per run), CONNECTIONS (32),
# THREADS (wrk threads, 1), KEYS (10000), BUILD (build), OUT
# (bench/RESULTS.md; OUT=- prints only), PORT (a free one is picked).
# The CPU is shared with wrk and whatever else runs: figures are noisy.
set -eu
cd "$(dirname "$0")/.."

WORKERS=${WORKERS:-1}
SECS=${RUN_SECONDS:-10}
CONN=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
KEYS=${KEYS:-10000}
BUILD=${BUILD:-build}
OUT=${OUT:-bench/RESULTS.md}
PORT=${PORT:-$(luajit -e 'local s = require("socket").bind("127.0.0.1", 0); local _, p = s:getsockname(); s:close(); io.write(p)' 2>/dev/null || echo 18091)}
MODULES=/usr/lib/nginx/modules

command -v wrk >/dev/null || { echo "bench/nginx.sh: wrk is missing (make deps)" >&2; exit 1; }
[ -f "$MODULES/ngx_http_lua_module.so" ] || { echo "bench/nginx.sh: libnginx-mod-http-lua is missing (make deps)" >&2; exit 1; }
[ -f "$BUILD/libstoat.so" ] || { echo "bench/nginx.sh: run make first" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/stoat-bench-nginx-XXXXXX")
prefix=$work/nginx
mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/lua" "$prefix/lib" "$prefix/db" "$prefix/db-commit"
cp -r lua/stoat.lua lua/stoat "$prefix/lua/"
rm -f "$prefix/lua/stoat/libpath.lua"
cp "$BUILD/libstoat.so" "$prefix/lib/"
user=""
if [ "$(id -u)" = 0 ]; then
    user="user nobody nogroup;"
    chmod 755 "$work"
    chown -R nobody:nogroup "$prefix/db" "$prefix/db-commit"
fi
nginx_cmd() { "$(command -v nginx)" -p "$prefix" -c conf/nginx.conf "$@"; }
cleanup() {
    nginx_cmd -s stop 2>/dev/null || true
    sleep 0.3
    rm -rf "$work"
}
trap cleanup EXIT

cat > "$prefix/conf/nginx.conf" <<EOF
load_module $MODULES/ndk_http_module.so;
load_module $MODULES/ngx_http_lua_module.so;
$user
worker_processes $WORKERS;
error_log logs/error.log warn;
pid logs/nginx.pid;
thread_pool stoat threads=16;
events { worker_connections 4096; }
http {
    access_log off;
    lua_package_path "$prefix/lua/?.lua;;";
    lua_package_cpath "$prefix/lib/?.so;;";
    lua_shared_dict bench 64m;
    init_by_lua_block {
        sngx = require "stoat.ngx"
        VALUE = string.rep("v", 100)
        SH = ngx.shared.bench
        ST = sngx.dict("bench")
        STD = sngx.dict("bench", { durable = true })
        STC = sngx.dict("bench", { dir = "$prefix/db-commit" })
    }
    init_worker_by_lua_block {
        sngx.open("$prefix/db", { sync = "none" })
        sngx.open("$prefix/db-commit", { sync = "commit" }, { default = false })
    }
    exit_worker_by_lua_block { sngx.close() }
    server {
        listen 127.0.0.1:$PORT;
        location = /noop { return 200 "ok\n"; }
        location = /fill {
            content_by_lua_block {
                for i = 1, $KEYS do
                    SH:set(tostring(i), VALUE)
                    ST:set(tostring(i), VALUE)
                end
                ngx.say("ok")
            }
        }
        location = /shdict/get { content_by_lua_block { local v = SH:get(ngx.var.arg_k); ngx.say(v and "hit" or "miss") } }
        location = /stoat/get { content_by_lua_block { local v = ST:get(ngx.var.arg_k); ngx.say(v and "hit" or "miss") } }
        location = /shdict/set { content_by_lua_block { assert(SH:set(ngx.var.arg_k, VALUE)); ngx.say("ok") } }
        location = /stoat/set { content_by_lua_block { assert(ST:set(ngx.var.arg_k, VALUE)); ngx.say("ok") } }
        location = /stoat/set-thread { content_by_lua_block { assert(STD:set(ngx.var.arg_k, VALUE)); ngx.say("ok") } }
        location = /stoat/set-inline { content_by_lua_block { assert(STC:set(ngx.var.arg_k, VALUE)); ngx.say("ok") } }
    }
}
EOF
cat > "$work/keys.lua" <<EOF
math.randomseed(os.time())
request = function()
    return wrk.format("GET", wrk.path .. "?k=" .. math.random(1, $KEYS))
end
EOF

nginx_cmd
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/noop" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/fill" >/dev/null

# wrk's requests/s, or its p99 latency in ms, from its output file.
rps() { awk '/^Requests\/sec:/ { printf "%d", $2 }' "$1"; }
p99() {
    awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
         f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : 60000;
         printf "%.2f", v * f }' "$1"
}
errors() { awk '/Non-2xx|Socket errors/ { print }' "$1" | tr '\n' ' '; }

run() { # name path [connections]
    wrk -t"$THREADS" -c"${3:-$CONN}" -d"${SECS}s" --latency -s "$work/keys.lua" \
        "http://127.0.0.1:$PORT$2" > "$work/$1.txt" 2>&1
    echo "  $1: $(rps "$work/$1.txt") req/s, p99 $(p99 "$work/$1.txt") ms $(errors "$work/$1.txt")" >&2
}

echo "bench/nginx.sh: $WORKERS worker(s), wrk -t$THREADS -c$CONN, ${SECS} s per run, $KEYS keys" >&2
run noop /noop
run shdict_get /shdict/get
run stoat_get /stoat/get
run shdict_set /shdict/set
run stoat_set /stoat/set
run stoat_set_thread /stoat/set-thread
run stoat_set_inline /stoat/set-inline

# The no-op's p99 alone and while durable writes run beside it.
NOOP_CONN=${NOOP_CONNECTIONS:-4}
run noop_alone /noop "$NOOP_CONN"
wrk -t1 -c"$CONN" -d"$((SECS + 2))s" -s "$work/keys.lua" "http://127.0.0.1:$PORT/stoat/set-thread" \
    > "$work/bg_thread.txt" 2>&1 &
bg=$!
sleep 1
run noop_with_thread /noop "$NOOP_CONN"
wait "$bg"
wrk -t1 -c"$CONN" -d"$((SECS + 2))s" -s "$work/keys.lua" "http://127.0.0.1:$PORT/stoat/set-inline" \
    > "$work/bg_inline.txt" 2>&1 &
bg=$!
sleep 1
run noop_with_inline /noop "$NOOP_CONN"
wait "$bg"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
verdict() { awk -v r="$1" -v t="$2" -v d="$3" 'BEGIN { if (d == "max") print (r <= t ? "met" : "missed"); else print (r >= t ? "met" : "missed") }'; }

R() { rps "$work/$1.txt"; }
P() { p99 "$work/$1.txt"; }
g=$(ratio "$(R stoat_get)" "$(R shdict_get)")
s=$(ratio "$(R stoat_set)" "$(R shdict_set)")
st=$(ratio "$(R stoat_set_thread)" "$(R shdict_set)")
si=$(ratio "$(R stoat_set_inline)" "$(R shdict_set)")
pt=$(ratio "$(P noop_with_thread)" "$(P noop_alone)")
pi=$(ratio "$(P noop_with_inline)" "$(P noop_alone)")
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

section=$(cat <<EOF
<!-- begin nginx -->
## Inside nginx: stoat against ngx.shared.DICT

Written by \`bench/nginx.sh\` on $(date -u '+%Y-%m-%d %H:%M') UTC, stoat at commit $commit:
Debian nginx $(nginx -v 2>&1 | sed 's#.*/##') with libnginx-mod-http-lua, $WORKERS worker(s),
\`wrk -t$THREADS -c$CONN -d${SECS}s\` per run, $KEYS keys of 100-byte values, the same
handlers on an \`ngx.shared.DICT\` and on \`stoat.ngx.dict\` (bench/nginx.sh has them), one
run after another in one nginx. The machine's $(nproc) cores are shared by nginx, wrk and
other jobs: the figures are noisy, compare them within one run.

| handler | req/s | stoat/shdict | target |
|---|---:|---:|---|
| no-op (\`return 200\`) | $(R noop) | | |
| shdict get | $(R shdict_get) | | |
| stoat get | $(R stoat_get) | $g | >= 0.8: $(verdict "$g" 0.8 min) |
| shdict set | $(R shdict_set) | | |
| stoat set, sync none | $(R stoat_set) | $s | >= 0.7: $(verdict "$s" 0.7 min) |
| stoat set, durable: fsync on the thread pool | $(R stoat_set_thread) | $st | >= 0.25: $(verdict "$st" 0.25 min) |
| stoat set, durable: sync = "commit" inline | $(R stoat_set_inline) | $si | >= 0.25: $(verdict "$si" 0.25 min) |

The no-op location's p99 latency (\`wrk -t1 -c$NOOP_CONN\`), alone and while
\`wrk -c$CONN\` runs durable sets beside it:

| no-op | p99 (ms) | / alone | target |
|---|---:|---:|---|
| alone | $(P noop_alone) | | |
| beside durable sets, fsync on the thread pool | $(P noop_with_thread) | $pt | <= 2: $(verdict "$pt" 2 max) |
| beside durable sets, fsync inline (sync = "commit") | $(P noop_with_inline) | $pi | <= 2: $(verdict "$pi" 2 max) |

Durable sets done meanwhile: $(rps "$work/bg_thread.txt") req/s (thread pool), $(rps "$work/bg_inline.txt") req/s (inline).
<!-- end nginx -->
EOF
)
echo "$section"
if [ "$OUT" != "-" ]; then
    tmp=$(mktemp)
    if [ -f "$OUT" ] && grep -q '^<!-- begin nginx -->$' "$OUT"; then
        awk -v sec="$section" '
            /^<!-- begin nginx -->$/ { print sec; skip = 1; next }
            /^<!-- end nginx -->$/ { skip = 0; next }
            !skip { print }' "$OUT" > "$tmp"
    else
        { [ -f "$OUT" ] && cat "$OUT"; echo; echo "$section"; } > "$tmp"
    fi
    mv "$tmp" "$OUT"
    echo "bench/nginx.sh: wrote its section of $OUT" >&2
fi
