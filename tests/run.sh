#!/usr/bin/env bash
# Runs every test program given on the command line, prints their output,
# and ends with the total "N passed, N failed" over all of them. A program
# that exits non-zero without reporting a failure (a crash, a sanitizer
# report) counts as one more failure. Each program's wall time is printed
# after its output, so a slow test shows in CI's log.
set -u
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for prog in "$@"; do
    name=${prog##*/}
    echo "== $name"
    start=$SECONDS
    "$prog" >"$log" 2>&1
    rc=$?
    cat "$log"
    echo "== $name took $((SECONDS - start)) s"
    p=$(grep -c '^PASS ' "$log")
    f=$(grep -c '^FAIL ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name: exited with status $rc"
        f=$((f + 1))
    fi
    passed=$((passed + p))
    failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
