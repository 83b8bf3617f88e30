#!/usr/bin/env bash
# Every ordering edge in the C core is labelled (STYLE habit 3): each line of
# native/*.c with an ATOM_LOAD_ACQUIRE or ATOM_STORE_RELEASE carries, on that
# line, a label `X1 -> Y1: what it orders`, and every label appears on at
# least one release-side line (store-release, seq_cst store, exchange, CAS,
# fetch-add, bump_wake) and one acquire-side line (load-acquire, seq_cst load,
# exchange, CAS, fetch-add), so no edge loses one of its ends. A label on a
# line with no atomic counts for neither side. CHECK_LABELS_DIR: the folder to
# check (default: native/ beside this script).
set -u
dir=${CHECK_LABELS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
label_re="[A-Z][0-9]+'? -> [A-Z][0-9]+'?"
rel_re='ATOM_(STORE_RELEASE|STORE_SEQCST|XCHG_SEQCST|CAS|FETCH_ADD)\(|bump_wake\(|doorbell_bump\('
acq_re='ATOM_(LOAD_ACQUIRE|LOAD_SEQCST|XCHG_SEQCST|CAS|FETCH_ADD)\('
pass=0 fail=0
files=("$dir"/*.c)
# 1. no unlabelled acquire or release
while IFS= read -r line; do
    echo "unlabelled acquire/release: $line" >&2
    fail=$((fail + 1))
done < <(grep -HnE 'ATOM_(LOAD_ACQUIRE|STORE_RELEASE)\(' "${files[@]}" | grep -vE "$label_re" | sed "s|^$dir/||")
# 2. every label has both ends
labels=$(grep -ohE "$label_re" "${files[@]}" | sort -u)
if [ -z "$labels" ]; then
    echo "no ordering labels found" >&2
    fail=$((fail + 1))
fi
while IFS= read -r label; do
    [ -z "$label" ] && continue
    lines=$(grep -hF -- "$label" "${files[@]}")
    r=$(grep -cE "$rel_re" <<<"$lines")
    a=$(grep -cE "$acq_re" <<<"$lines")
    if [ "$r" -ge 1 ] && [ "$a" -ge 1 ]; then
        pass=$((pass + 1))
    else
        echo "label '$label': $r release-side and $a acquire-side lines: one end of the edge is unlabelled" >&2
        fail=$((fail + 1))
    fi
done <<<"$labels"
echo "check_labels: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
