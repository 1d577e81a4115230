#!/bin/sh
# make openresty-demo: starts the OpenResty example (nginx.conf, app.lua)
# on 127.0.0.1 under a temporary prefix, with Debian's nginx and
# libnginx-mod-http-lua, sends a few requests, and leaves it running.
#
#   sh examples/openresty/run.sh [port]      (from the repository root, after make)
#
# Environment: WORKERS (default 1), PREFIX (default a new /tmp/stoat-demo-*),
# DEMO_STOP=1 stops it after the requests. The prefix holds conf/, logs/,
# lua/ (a copy of the module and the handlers, as a rock tree would),
# lib/libstoat.so and db/ (the database, owned by the worker user).
set -eu
port=${1:-8089}
workers=${WORKERS:-1}
build=${BUILD:-build}
modules=/usr/lib/nginx/modules
[ -f "$modules/ngx_http_lua_module.so" ] || {
    echo "openresty-demo: $modules/ngx_http_lua_module.so is missing: make deps (libnginx-mod-http-lua)" >&2
    exit 1
}
[ -f "$build/libstoat.so" ] || { echo "openresty-demo: run make first" >&2; exit 1; }
prefix=${PREFIX:-$(mktemp -d /tmp/stoat-demo-XXXXXX)}
mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/lua" "$prefix/lib" "$prefix/db"
cp -r lua/stoat.lua lua/stoat "$prefix/lua/"
rm -f "$prefix/lua/stoat/libpath.lua"
cp examples/openresty/app.lua "$prefix/lua/"
cp "$build/libstoat.so" "$prefix/lib/"
user=""
if [ "$(id -u)" = 0 ]; then
    # nginx started by root runs its workers as nobody: they must be able
    # to read the code and write the database directory.
    user="user nobody nogroup;"
    chmod 755 "$prefix"
    chown -R nobody:nogroup "$prefix/db"
fi
sed -e "s#@MODULES@#$modules#g" -e "s#@LUA@#$prefix/lua#g" -e "s#@LIB@#$prefix/lib#g" \
    -e "s#@DB@#$prefix/db#g" -e "s#@PORT@#$port#g" -e "s#@WORKERS@#$workers#g" \
    -e "s#@USER@#$user#g" -e "s#@EXTRA@##g" -e "s#@LISTEN_OPTS@##g" \
    examples/openresty/nginx.conf > "$prefix/conf/nginx.conf"
nginx -p "$prefix" -c conf/nginx.conf
url=http://127.0.0.1:$port
for _ in 1 2 3 4 5 6 7 8 9 10; do
    curl -fs "$url/noop" >/dev/null 2>&1 && break
    sleep 0.2
done
show() { echo "\$ curl $*"; curl -s "$@"; echo; }
show -X POST "$url/counter/hits"
show -X POST "$url/counter/hits"
show "$url/counter/hits"
sid=$(curl -s -X POST --data 'user=ada' "$url/session?ttl=60")
echo "\$ curl -X POST --data user=ada $url/session?ttl=60"; echo "$sid"
show "$url/session/$sid"
show -X PUT --data '{"title":"first","tags":["a","b"]}' "$url/doc/001"
show -X PUT --data '{"title":"second"}' "$url/doc/002"
show -X PUT --data '{"title":"third"}' "$url/doc/003"
show "$url/doc/002"
show "$url/docs?limit=2"
show "$url/docs?after=002&limit=2"
if [ "${DEMO_STOP:-0}" = 1 ]; then
    nginx -p "$prefix" -c conf/nginx.conf -s stop
    echo "stopped; the database stays in $prefix/db"
else
    echo "running at $url (prefix $prefix; log $prefix/logs/error.log)"
    echo "stop it with: nginx -p $prefix -c conf/nginx.conf -s stop"
fi
