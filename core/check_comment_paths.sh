#!/bin/sh
# core/check_comment_paths.sh - fails when a comment names a file of the
# repository that does not exist (run by `make lint`). A name with a
# folder ("core/src/db/open.c", "db/open.c", "spec/open_spec.lua") must be
# a path from the root, from core/src, from lua/ or from the commenting
# file's folder; a bare name ("open.c") must be some tracked file's name.
# Comments are the text after /*, // or a leading * in C, after -- in
# Lua, after # in make and shell files.
cd "$(dirname "$0")/.." || exit 2
# Names that are not the repository's: the peers' headers (bench/engine_*.c),
# what `make install` writes (lua/lua.mk), placeholders in usage text.
external="leveldb/c.h rocksdb/c.h lmdb.h stoat/libpath.lua script.lua"
# Known stale, owned by the Lua side (issue 10, item 9): remove when fixed.
known="lua/stoat/options.lua:spec/options_spec.lua"
files=$(git ls-files)
names=$(printf '%s\n' "$files" | sed 's|.*/||' | sort -u)
bad=0
for f in $(printf '%s\n' "$files" | grep -E '\.(c|h|lua|mk|sh|md)$|(^|/)Makefile$'); do
    case "$f" in
        *.c|*.h) pat='(/\*|//|^[[:space:]]*\*)' ;;
        *.lua) pat='--' ;;
        *.md) pat='' ;;
        *) pat='#' ;;
    esac
    dir=$(dirname "$f")
    # every comment's text, then the names in it that end like a source file
    refs=$(awk -v pat="$pat" '
        pat == "" { print; next }
        { i = match($0, pat); if (i) print substr($0, i) }' "$f" |
        grep -oE '[A-Za-z0-9.][A-Za-z0-9_./-]*[A-Za-z0-9_]\.(c|h|lua|md|mk|sh|rockspec)\b' | sort -u)
    for r in $refs; do
        r=${r#./}
        case " $external " in *" $r "*) continue ;; esac
        case " $known " in *" $f:$r "*) continue ;; esac
        case "$r" in .../*) continue ;; esac
        case "$r" in
            */*) [ -e "$r" ] || [ -e "core/src/$r" ] || [ -e "$dir/$r" ] || [ -e "lua/$r" ] || {
                     echo "$f: names $r, which does not exist"; bad=1; } ;;
            *) printf '%s\n' "$names" | grep -qxF "$r" || {
                     echo "$f: names $r, which no tracked file is called"; bad=1; } ;;
        esac
    done
done
[ "$bad" -eq 0 ] || { echo "check-comment-paths: failed"; exit 1; }
echo "check-comment-paths: ok"
