#!/bin/sh
# core/check_layers.sh - fails when a file of core/src includes from a
# folder its layer may not use (run by `make check-layers`, part of
# `make test`). The table is the layering of core/README.md, bottom-up:
# a folder may include from itself and from the folders listed after it.
# Includes name their folder ("table/sst_reader.h"); the only bare name
# allowed is the public header, "stoat.h". Inside db/ the files call each
# other downward only (the order of db/db.h): a unit may include the
# headers of units of a lower rank.
cd "$(dirname "$0")/src" || exit 2
awk '
BEGIN {
    may["base"]  = "base"
    may["env"]   = "env base"
    may["crypt"] = "crypt env base"
    may["log"]   = "log crypt env base"
    may["mem"]   = "mem log crypt env base"
    may["table"] = "table crypt env base"
    may["vlog"]  = "vlog crypt env base"
    may["lsm"]   = "lsm table log crypt env base"
    may["mvcc"]  = "mvcc base"
    may["db"]    = "db mvcc lsm vlog table mem log crypt env base"
    # db/: rank of each unit (file name without extension), top = highest
    alias["db_env"] = "open"     # db_env.h declares db_open_env, of open.c
    # a split unit: its private header and the files beside it count as it
    split("shared_int shared_catchup shared_open", us); for (i in us) alias[us[i]] = "shared"
    split("write_int write_record", uw); for (i in uw) alias[uw[i]] = "write"
    rank["open"] = 5
    split("txn batch vlog_gc stats verify ingest", u4); for (i in u4) rank[u4[i]] = 4
    split("iterator flush_compact ingest_build", u3); for (i in u3) rank[u3[i]] = 3
    split("read write", u2); for (i in u2) rank[u2[i]] = 2
    rank["shared"] = 1.5
    split("state snapshots options", u1); for (i in u1) rank[u1[i]] = 1
    rank["db"] = 0
    bad = 0
}
FNR == 1 {
    layer = FILENAME; sub(/\/.*/, "", layer)
    unit = FILENAME; sub(/^.*\//, "", unit); sub(/\.[ch]$/, "", unit)
    if (unit in alias) unit = alias[unit]
    if (layer == "db" && !(unit in rank)) {
        printf "%s: db unit %s has no rank in check_layers.sh\n", FILENAME, unit
        bad = 1
    }
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
    if (layer == "db" && dir == "db") {
        to = inc; sub(/^db\//, "", to); sub(/\.h$/, "", to)
        if (to in alias) to = alias[to]
        if (to != unit && (!(to in rank) || rank[to] >= rank[unit])) {
            printf "%s:%d: db/%s may not include \"%s\" (db units call downward only)\n", FILENAME, FNR, unit, inc
            bad = 1
        }
    }
}
END { exit bad }
' */*.c */*.h || { echo "check-layers: failed"; exit 1; }
echo "check-layers: ok"
