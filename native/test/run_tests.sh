#!/usr/bin/env bash
# run_tests.sh LABEL PROGRAM... — run standalone C test programs (or *.sh
# check scripts) one by one.
#
# Each program prints its checks and closes with `N passed, N failed`, and
# exits 0 (pass), 77 (skip) or anything else (fail). A program that exits 0
# without that closing line, or whose closing line counts failures, fails too.
# One line per program; the full output of a failing one (or of every one with
# V=1). Last line: `LABEL: N passed, N failed, N skipped` (programs).
#
# Env: TEST_TIMEOUT seconds per program (default 120); V=1 verbose.
set -u
label=${1:?usage: run_tests.sh LABEL PROGRAM...}
shift
timeout_s=${TEST_TIMEOUT:-120}
if [ $# -eq 0 ]; then
    echo "$label: no test programs found"
    echo "$label: 0 passed, 1 failed, 0 skipped"
    exit 1
fi

pass=0 fail=0 skip=0
failed_names=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for prog in "$@"; do
    name=$(basename "$prog")
    t0=$(date +%s%N)
    case $prog in
    *.sh) cmd=(bash "$prog") ;;
    *) cmd=("$prog") ;;
    esac
    timeout -k 10 "$timeout_s" "${cmd[@]}" >"$log" 2>&1 </dev/null
    rc=$?
    t1=$(date +%s%N)
    ms=$(((t1 - t0) / 1000000))
    closing=$(grep -E '^([A-Za-z0-9_-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    nfailed=$(sed -nE 's/.*[0-9]+ passed, ([0-9]+) failed.*/\1/p' <<<"$closing")
    case $rc in
    0)
        if [ -z "$closing" ]; then
            status=FAIL why="exit 0 but no 'N passed, N failed' line"
        elif [ "${nfailed:-0}" != 0 ]; then
            status=FAIL why="exit 0 but $nfailed checks failed"
        else
            status=PASS why=
        fi
        ;;
    77) status=SKIP why="skipped" ;;
    124 | 137) status=FAIL why="timed out after ${timeout_s}s" ;;
    *)
        if [ "$rc" -gt 128 ]; then
            status=FAIL why="killed by signal $((rc - 128))"
        else
            status=FAIL why="exit $rc"
        fi
        ;;
    esac
    case $status in
    PASS) pass=$((pass + 1)) ;;
    SKIP) skip=$((skip + 1)) ;;
    FAIL) fail=$((fail + 1)) failed_names+=("$name") ;;
    esac
    if [ "$status" = FAIL ] || [ "${V:-0}" = 1 ]; then
        echo "---- $name (exit $rc) ----"
        if [ "$(wc -l <"$log")" -gt 300 ]; then
            echo "[... $(($(wc -l <"$log") - 300)) lines cut ...]"
            tail -n 300 "$log"
        else
            cat "$log"
        fi
        echo "----"
    fi
    printf '%-4s %-32s %7d ms  %s%s\n' "$status" "$name" "$ms" "${closing:-}" "${why:+  ($why)}"
done

if [ "$fail" -gt 0 ]; then
    echo "$label: failing: ${failed_names[*]}"
fi
echo "$label: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
