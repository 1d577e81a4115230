#!/bin/sh
# core/check_layers.sh - fails when a file of core/src includes from a
# folder its layer may not use (run by `make check-layers`, part of
# `make test`). The table is the layering of core/README.md, bottom-up:
# a folder may include from itself and from the folders listed after it.
# Includes name their folder ("table/sst_reader.h"); the only bare name
# allowed is the public header, "stoat.h".
cd "$(dirname "$0")/src" || exit 2
awk '
BEGIN {
    may["base"]  = "base"
    may["env"]   = "env base"
    may["log"]   = "log env base"
    may["mem"]   = "mem log env base"
    may["table"] = "table env base"
    may["vlog"]  = "vlog env base"
    may["lsm"]   = "lsm table log env base"
    may["mvcc"]  = "mvcc base"
    may["db"]    = "db mvcc lsm vlog table mem log env base"
    bad = 0
}
FNR == 1 {
    layer = FILENAME; sub(/\/.*/, "", layer)
    if (!(layer in may)) {
        printf "%s: folder %s is not in the layer table\n", FILENAME, layer
        bad = 1
    }
}
/^[ \t]*#[ \t]*include[ \t]*"/ {
    inc = $0; sub(/^[^"]*"/, "", inc); sub(/".*/, "", inc)
    if (inc == "stoat.h")
        next
    if (inc !~ /\//) {
        printf "%s:%d: include \"%s\" does not name its folder\n", FILENAME, FNR, inc
        bad = 1
        next
    }
    dir = inc; sub(/\/.*/, "", dir)
    n = split(may[layer], ok, " "); allowed = 0
    for (i = 1; i <= n; i++) if (ok[i] == dir) allowed = 1
    if (!allowed) {
        printf "%s:%d: %s/ may not include \"%s\" (may use: %s)\n", FILENAME, FNR, layer, inc, may[layer]
        bad = 1
    }
}
END { exit bad }
' */*.c */*.h || { echo "check-layers: failed"; exit 1; }
echo "check-layers: ok"
