#!/usr/bin/env bash
# test_api_pg.sh [SUITE]: an API test suite (tests/api/test_SUITE.sh, by
# default test_api.sh, the whole contract) with PostgreSQL as the store.
#
# Starts a throwaway cluster (tests/store/pg.sh) and runs the suite with
# HARK_API_PG naming it: each server of the suite gets a database of its own
# on the cluster. The cluster is stopped and removed at the end. Prints the
# suite's lines, its names beginning with "pg_", and ends with its
# "N passed, N failed". Without PostgreSQL's server binaries it fails: the
# test is required, not optional.
#
# Run from the repository root; $HARK_BIN is the binary (default build/hark).
set -u

cd "$(dirname "$0")/../.." || exit 1
. tests/store/pg.sh

suite=${1:-api}
if ! pg_start; then
    echo "FAIL pg_${suite}_setup: could not start a PostgreSQL cluster"
    echo "0 passed, 1 failed"
    exit 1
fi
HARK_API_PG=${HARK_TEST_PG%/*} PG_BINDIR=$PG_BINDIR bash "tests/api/test_$suite.sh"
rc=$?
pg_stop
exit $rc
