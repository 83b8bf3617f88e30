#!/usr/bin/env bash
# Every negative errno the C core returns has its own line in exipc_strerror's
# table (util.c), and no two lines share a text (STYLE habit 14). The codes
# are read from the sources (`return -EXXX`, `rc = -EXXX`, `? -EXXX :`), so a
# new code without a text fails here. CHECK_ERRORS_DIR: the folder to check.
set -u
dir=${CHECK_ERRORS_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
pass=0 fail=0
table=$(sed -n '/^} error_texts\[\] = {/,/^};/p;/error_texts\[\] = {/,/^};/p' "$dir/util.c" | grep -oE '\{-?E?[A-Z0-9]*, "[^"]*"\}' | sort -u)
[ -n "$table" ] || { echo "check_errors: no error_texts table in util.c" >&2; echo "check_errors: 0 passed, 1 failed"; exit 1; }
codes=$(grep -ohE '(return|=|\?|:|\() *-E[A-Z0-9]+\b' "$dir"/*.c | grep -oE 'E[A-Z0-9]+' | sort -u)
for c in $codes; do
    if grep -q "{-$c, " <<<"$table"; then pass=$((pass + 1)); else
        echo "check_errors: -$c is returned but has no text in exipc_strerror's table" >&2; fail=$((fail + 1)); fi
done
dups=$(sed -E 's/^\{[^,]*, //' <<<"$table" | sort | uniq -d)
if [ -n "$dups" ]; then echo "check_errors: texts shared by two codes: $dups" >&2; fail=$((fail + 1)); else pass=$((pass + 1)); fi
echo "check_errors: $pass passed, $fail failed ($(wc -w <<<"$codes") codes returned)"
[ "$fail" -eq 0 ]
