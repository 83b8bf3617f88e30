#!/usr/bin/env bash
# The C core's files call one another in layers, never in a circle (see the
# list in exipc_internal.h), and its headers include one another likewise.
# Compiles each native/*.c to a scratch object, reads which file defines every
# global symbol (nm), draws an edge from each file to every file whose symbols
# it uses, and lets tsort(1) find a loop. CHECK_LAYERS_DIR: the native folder
# to check (default: the one beside this script).
set -u
dir=${CHECK_LAYERS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc=${CC:-cc}
fail=0
for f in "$dir"/*.c; do
    b=$(basename "$f" .c)
    if ! $cc -std=gnu11 -D_GNU_SOURCE -DEXIPC_TESTING -pthread -I"$dir" -c -o "$tmp/$b.o" "$f" 2>"$tmp/$b.err"; then
        echo "check_layers: $b.c does not compile:" >&2; cat "$tmp/$b.err" >&2
        fail=1
    fi
done
[ "$fail" -eq 0 ] || { echo "check_layers: 0 passed, 1 failed"; exit 1; }
for o in "$tmp"/*.o; do
    b=$(basename "$o" .o)
    nm --defined-only -g "$o" | awk -v f="$b" 'NF == 3 {print $3, f}'
done | sort -u > "$tmp/defs"
: > "$tmp/edges"
for o in "$tmp"/*.o; do
    b=$(basename "$o" .o)
    echo "$b $b" >> "$tmp/edges" # every file is a node
    nm -u "$o" | awk '{print $2}' | sort -u | join - "$tmp/defs" | awk -v f="$b" '$2 != f {print $2, f}' >> "$tmp/edges"
done
# Headers: "a.h b.h" when b.h includes a.h (so a.h comes first).
for h in "$dir"/*.h "$dir"/*.c; do
    b=$(basename "$h")
    echo "$b $b" >> "$tmp/edges"
    grep -oE '^#include "[^"]+"' "$h" | sed -E 's/#include "(.*)"/\1/' | sed "s|.*|& $b|" >> "$tmp/edges"
done
pass=0
if order=$(tsort "$tmp/edges" 2>"$tmp/loop"); then
    pass=1
    echo "check_layers: callers after callees: $(echo $order | tr ' ' '\n' | grep -v '\.[ch]$' | tr '\n' ' ')"
else
    echo "check_layers: files call or include one another in a circle:" >&2
    loopf=$(grep -v 'input contains a loop' "$tmp/loop" | sed 's/^tsort: //' | sort -u)
    # name the edges inside the circle, so the reader sees who calls whom
    for a in $loopf; do for b in $loopf; do
        [ "$a" != "$b" ] && grep -qx "$a $b" "$tmp/edges" || continue
        if [ -f "$tmp/$b.o" ]; then
            syms=$(nm -u "$tmp/$b.o" | awk '{print $2}' | sort -u | join - "$tmp/defs" | awk -v f="$a" '$2 == f {print $1}' | tr '\n' ' ')
            echo "  $b.c calls $a.c: $syms" >&2
        else
            echo "  $b includes $a" >&2
        fi
    done; done
    fail=1
fi
echo "check_layers: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
