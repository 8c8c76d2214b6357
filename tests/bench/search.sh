#!/usr/bin/env bash
# search.sh: the search index's figures, called by tests/bench/run.sh: the
# search_bench program (tests/bench/search.c) on SQLite, then on a
# throwaway PostgreSQL cluster (tests/store/pg.sh) when one can start.
# Prints figures and never fails. BENCH_SEARCH_TRANSCRIPTS (default 10000)
# and BENCH_SEARCH_QUERIES (default 200 per kind).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../store/pg.sh"
build=${HARK_BUILD:-build}
prog=$build/tests/search_bench
n=${BENCH_SEARCH_TRANSCRIPTS:-10000}

echo
echo "search over $n transcripts (store_search, a page of 20 hits)"
if [ ! -x "$prog" ]; then
    echo "  note: $prog is not built; no figures"
    exit 0
fi
dir=$(mktemp -d) || exit 0
trap 'rm -rf "$dir"; pg_stop' EXIT
echo " SQLite (FTS5)"
"$prog" "$dir/search.db" "$n" || echo "  (search_bench exited with status $?)"
if pg_start 2>"$dir/pg.err"; then
    echo " PostgreSQL (tsvector, GIN)"
    "$prog" "$HARK_TEST_PG" "$n" || echo "  (search_bench exited with status $?)"
else
    echo "  note: no PostgreSQL cluster could start: $(head -c 200 "$dir/pg.err")"
fi
exit 0
