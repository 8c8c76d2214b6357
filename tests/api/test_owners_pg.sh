#!/usr/bin/env bash
# test_owners_pg.sh: the many-users tests (tests/api/test_owners.sh) with
# PostgreSQL as the store, for the server and for `hark keys` alike; the
# cluster comes and goes as for test_api_pg.sh. Run from the repository
# root; $HARK_BIN is the binary (default build/hark).
exec bash "$(dirname "$0")/test_api_pg.sh" owners
