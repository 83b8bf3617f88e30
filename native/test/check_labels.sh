#!/usr/bin/env bash
# Every ordering edge in the C core is labelled `X -> Y: what` at its acquire
# and at its release (STYLE habit 3). A label seen only once means one end of
# an edge lost its comment, or its partner: fail.
set -u
cd "$(dirname "$0")/.." || exit 1
pass=0 fail=0
labels=$(grep -ohE '[A-Z][0-9]+'"'"'? -> [A-Z][0-9]+'"'"'?' ./*.c | sort | uniq -c)
if [ -z "$labels" ]; then
    echo "no ordering labels found" >&2
    fail=1
fi
while read -r n label; do
    [ -z "$label" ] && continue
    if [ "$n" -ge 2 ]; then
        pass=$((pass + 1))
    else
        echo "label '$label' appears once: its partner end is unlabelled" >&2
        fail=$((fail + 1))
    fi
done <<<"$labels"
# Every acquire/release in the core carries a label on its line.
while IFS= read -r line; do
    echo "unlabelled acquire/release: $line" >&2
    fail=$((fail + 1))
done < <(grep -nE 'ATOM_(LOAD_ACQUIRE|STORE_RELEASE)\(' ./ring.c | grep -v -- '->')
echo "check_labels: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
