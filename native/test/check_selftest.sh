#!/usr/bin/env bash
# The source checkers must be able to fail (STYLE habit 12): plant, in a
# scratch copy of native/, each fault a checker looks for, once per file it
# covers, and expect the checker to fire; then expect it to pass on the
# untouched copy.
#   check_labels.sh: an unlabelled load-acquire, and a label left with one
#                    end, in every native/*.c that has atomics;
#   check_layers.sh: a call from the data plane (ring.c) up into the reaper,
#                    and a header that includes its includer;
#   check_errors.sh: a code returned with no text of its own.
set -u
here=$(cd "$(dirname "$0")" && pwd)
native=$(cd "$here/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "selftest: $*" >&2; fail=$((fail + 1)); }
fresh() { rm -rf "$tmp/n"; mkdir "$tmp/n"; cp "$native"/*.c "$native"/*.h "$tmp/n/"; }
fires() { # fires CHECKER: the checker must fail on $tmp/n
    CHECK_LABELS_DIR="$tmp/n" CHECK_LAYERS_DIR="$tmp/n" CHECK_ERRORS_DIR="$tmp/n" bash "$here/$1" >/dev/null 2>&1 && return 1 || return 0
}

for chk in check_labels.sh check_layers.sh check_errors.sh; do
    fresh
    if fires "$chk"; then bad "$chk fails on the untouched sources"; else ok; fi
done

for f in "$native"/*.c; do
    b=$(basename "$f")
    grep -q 'ATOM_' "$f" || continue
    fresh
    printf '\nstatic inline unsigned planted_(unsigned *p) { return ATOM_LOAD_ACQUIRE(p); }\n' >> "$tmp/n/$b"
    if fires check_labels.sh; then ok; else bad "check_labels.sh missed an unlabelled acquire planted in $b"; fi
    lab=$(grep -ohE "[A-Z][0-9]+'? -> [A-Z][0-9]+'?" "$f" | head -1)
    [ -n "$lab" ] || continue
    fresh
    # rename every use of that label in this file only: the other ends elsewhere lose their partner,
    # or, when both ends are here, the renamed pair still balances, so also drop its acquire side
    sed -i "s/$lab/Z9 -> Z9/g" "$tmp/n/$b"
    sed -i -E "/Z9 -> Z9/ s/ATOM_LOAD_ACQUIRE\(/ATOM_LOAD_RELAXED(/g; /Z9 -> Z9/ s/ATOM_LOAD_SEQCST\(/ATOM_LOAD_RELAXED(/g" "$tmp/n/$b"
    if grep -qE 'ATOM_(CAS|XCHG_SEQCST|FETCH_ADD)\(.*Z9 -> Z9' "$tmp/n/$b"; then
        sed -i -E "/Z9 -> Z9/ s/ATOM_(CAS|XCHG_SEQCST|FETCH_ADD)\(/ATOM_PLANTED(/g" "$tmp/n/$b"
    fi
    if fires check_labels.sh; then ok; else bad "check_labels.sh missed label '$lab' left with one end in $b"; fi
done

fresh
cat >> "$tmp/n/ring.c" <<'C'

int planted_up_call(exipc_domain_t *d) { return cqm_reap_all(d, false, NULL); }
C
if fires check_layers.sh; then ok; else bad "check_layers.sh missed ring.c calling reap.c"; fi
fresh
sed -i '1i #include "exipc_internal.h"' "$tmp/n/atomics.h"
if fires check_layers.sh; then ok; else bad "check_layers.sh missed atomics.h including exipc_internal.h"; fi

fresh
printf '\nint planted_code_(void) { return -EXDEV; }\n' >> "$tmp/n/ring.c"
if fires check_errors.sh; then ok; else bad "check_errors.sh missed -EXDEV returned without a text"; fi

echo "check_selftest: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
