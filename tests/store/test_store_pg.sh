#!/usr/bin/env bash
# test_store_pg.sh: the store's unit tests against PostgreSQL.
#
# Starts a throwaway cluster (tests/store/pg.sh), runs the "pg_" tests of
# the store's unit test program ($HARK_BUILD/tests/unit_test_store, default
# build/tests/unit_test_store; HARK_STORE_TEST overrides the program) with
# HARK_TEST_PG naming the cluster's database, and stops the cluster. Prints
# the program's "PASS name" / "FAIL name" lines and ends with
# "N passed, N failed". Without PostgreSQL's server binaries it prints one
# FAIL line saying so: the tests are required, not optional.
#
# Run from the repository root.
set -u

cd "$(dirname "$0")/../.." || exit 1
PROG=${HARK_STORE_TEST:-${HARK_BUILD:-build}/tests/unit_test_store}
. tests/store/pg.sh

if [ ! -x "$PROG" ]; then
    echo "FAIL store_pg: no test program $PROG (build it with make $PROG)"
    echo "0 passed, 1 failed"
    exit 1
fi
if ! pg_start; then
    echo "FAIL store_pg: could not start a PostgreSQL cluster"
    echo "0 passed, 1 failed"
    exit 1
fi

log=$(mktemp)
"$PROG" pg_store_ >"$log" 2>&1
rc=$?
pg_stop
# The program's own summary line is replaced by this script's.
grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$log"
passed=$(grep -c '^PASS ' "$log")
failed=$(grep -c '^FAIL ' "$log")
rm -f "$log"
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    echo "FAIL store_pg: the test program exited with status $rc"
    failed=$((failed + 1))
fi
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
    echo "FAIL store_pg: no PostgreSQL test ran"
    failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
