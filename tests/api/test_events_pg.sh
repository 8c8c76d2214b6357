#!/usr/bin/env bash
# test_events_pg.sh: a job's events (tests/api/test_events.sh) with
# PostgreSQL as the store: the server runs no workers and a `hark worker`
# process runs the jobs, so every event comes through the database; the
# cluster comes and goes as for test_api_pg.sh. Run from the repository
# root; $HARK_BIN is the binary (default build/hark).
exec bash "$(dirname "$0")/test_api_pg.sh" events
