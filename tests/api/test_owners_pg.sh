#!/usr/bin/env bash
# test_owners_pg.sh: the many-users tests (tests/api/test_owners.sh) with
# PostgreSQL as the store, for the server and for `hark keys` alike.
#
# Starts a throwaway cluster (tests/store/pg.sh), runs test_owners.sh with
# HARK_API_PG naming it, and stops and removes the cluster at the end.
# Prints the suite's lines, its names beginning with "pg_", and ends with
# its "N passed, N failed". Without PostgreSQL's server binaries it fails:
# the test is required, not optional.
#
# Run from the repository root; $HARK_BIN is the binary (default build/hark).
set -u

cd "$(dirname "$0")/../.." || exit 1
. tests/store/pg.sh

if ! pg_start; then
    echo "FAIL pg_owners_setup: could not start a PostgreSQL cluster"
    echo "0 passed, 1 failed"
    exit 1
fi
HARK_API_PG=${HARK_TEST_PG%/*} PG_BINDIR=$PG_BINDIR bash tests/api/test_owners.sh
rc=$?
pg_stop
exit $rc
