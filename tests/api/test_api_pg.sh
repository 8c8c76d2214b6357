#!/usr/bin/env bash
# test_api_pg.sh: the whole API test suite (tests/api/test_api.sh) with
# PostgreSQL as the store.
#
# Starts a throwaway cluster (tests/store/pg.sh) and runs test_api.sh with
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

if ! pg_start; then
    echo "FAIL pg_api_setup: could not start a PostgreSQL cluster"
    echo "0 passed, 1 failed"
    exit 1
fi
HARK_API_PG=${HARK_TEST_PG%/*} PG_BINDIR=$PG_BINDIR bash tests/api/test_api.sh
rc=$?
pg_stop
exit $rc
