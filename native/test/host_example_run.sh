#!/usr/bin/env bash
# host_example_run.sh BINARY [LABEL] — run host_example as server and client,
# two processes on one fresh domain, and check what each printed.
# Prints `LABEL: N passed, N failed` last; exit 0 pass, 1 fail.
set -u
bin=${1:?usage: host_example_run.sh BINARY [LABEL]}
label=${2:-host}
domain="host-example.$$.$RANDOM"
tmp=$(mktemp -d)
pass=0 fail=0
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then echo "ok   - $what"; pass=$((pass + 1)); else echo "FAIL - $what"; fail=$((fail + 1)); fi
}
cleanup() {
    [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null
    if [ -e "/dev/shm/exipc.$domain" ]; then rm -f "/dev/shm/exipc.$domain"; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

timeout 30 "$bin" server "$domain" >"$tmp/server.out" 2>"$tmp/server.err" &
spid=$!
timeout 30 "$bin" client "$domain" >"$tmp/client.out" 2>"$tmp/client.err"
crc=$?
wait "$spid"; src=$?; spid=

cat "$tmp/server.out" "$tmp/client.out"
cat "$tmp/server.err" "$tmp/client.err" >&2
check "server exits 0 (got $src)" test "$src" -eq 0
check "client exits 0 (got $crc)" test "$crc" -eq 0
check "server received hello" grep -qx "server got: hello" "$tmp/server.out"
check "client received the reply" grep -qx "client got: hello yourself" "$tmp/client.out"
check "the last process out unlinked the domain" test ! -e "/dev/shm/exipc.$domain"
# A client whose connect fails (no server) exits 1 and leaves nothing behind.
timeout 30 "$bin" client "$domain" 1 >"$tmp/alone.out" 2>"$tmp/alone.err"
arc=$?
cat "$tmp/alone.err" >&2
check "a client with no server exits 1 (got $arc)" test "$arc" -eq 1
check "it names the failed call" grep -q "exipc_connect: no such service or domain" "$tmp/alone.err"
check "and leaves no domain behind" test ! -e "/dev/shm/exipc.$domain"
echo "$label: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
