#!/usr/bin/env bash
# queue.sh: figures of the job queue, called by tests/bench/run.sh. It
# prints figures and never fails.
#
#   throughput  BENCH_QUEUE_JOBS jobs (default 8), each a distinct 1 s cut of
#               jfk.wav on the smallest model (rt-mini.en-q4_0, one thread per
#               job), queued at once on idle workers: jobs done per second,
#               from the first job's creation to the last one's end as the
#               job records give them, median of BENCH_QUEUE_RUNS runs
#               (default 3). Also the hand-over: on each worker, the time
#               from the end of one job to the start of its next, median over
#               every job of the runs, the part of a job's time that belongs
#               to the queue rather than to transcription.
#               SQLite: one `hark serve --workers W`. PostgreSQL: `hark serve
#               --workers 0` and W `hark worker` processes on a throwaway
#               cluster (tests/store/pg.sh). W in BENCH_QUEUE_WORKERS
#               (default "1 2 4").
#   latency     from POST /model to a worker starting the job (the job
#               record's created and started times), on idle workers (two),
#               one job at a time, each canceled once started: median and
#               largest of BENCH_QUEUE_LATENCY jobs (default 10).
#
# Environment: HARK_BIN, HARK_BUILD (set by the Makefile); the shared data
# located as in tests/api/lib.sh.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../api/lib.sh"
. "$HERE/../store/pg.sh"
MODEL=${BENCH_QUEUE_MODEL:-rt-mini.en-q4_0}
n_jobs=${BENCH_QUEUE_JOBS:-8}
runs=${BENCH_QUEUE_RUNS:-3}
counts=${BENCH_QUEUE_WORKERS:-1 2 4}
n_latency=${BENCH_QUEUE_LATENCY:-10}

echo
echo "job queue ($MODEL, $n_jobs jobs of 1 s of audio per run, one thread per job, $(nproc) CPUs)"
if ! "$HARK" worker --help >/dev/null 2>&1; then
    echo "  note: '$HARK worker' is not available; no figures"
    exit 0
fi
api_init || exit 0
trap '_api_cleanup; pg_stop' EXIT

# ms N: "N ms", or "under 1 ms" for 0 (the job records' times are in ms).
ms() {
    case $1 in
        0) echo "under 1 ms" ;;
        '') echo "n/a" ;;
        *) echo "$1 ms" ;;
    esac
}

# The job records' times in milliseconds since the epoch (they are
# "YYYY-MM-DDTHH:MM:SS.mmmZ").
JQ_MS='def ms: (.[0:19] + "Z" | fromdateiso8601) * 1000 + (.[20:23] | tonumber);'

# Distinct media: 1 s of jfk.wav and 10 ms more for each, so no two
# uploads have the same SHA-256.
media=()
for ((i = 0; i < n_jobs; i++)); do
    media+=("$API_TMP/cut$i.wav")
    head -c $((44 + 32000 + i * 320)) "$AUDIO/jfk.wav" >"$API_TMP/cut$i.wav"
done

# upload_all URL: uploads the media; sets ids.
upload_all() {
    local f id
    ids=()
    for f in "${media[@]}"; do
        id=$(curl -s -F "file=@$f" "$1/upload" | jq -r '.id // empty')
        [ -n "$id" ] || return 1
        ids+=("$id")
    done
}

# schedule URL ID: POST /model; prints the job's number.
schedule() {
    curl -s -d "{\"id\":\"$2\"}" "$1/model" | jq -r '.job_id // empty'
}

# wait_jobs URL SECONDS JOB...: until every job has ended; their records go
# to $API_TMP/jobs.json, one per line. Returns 1 on time out.
wait_jobs() {
    local url=$1 secs=$2 j left i
    shift 2
    left=("$@")
    for ((i = 0; i < secs * 5 && ${#left[@]} > 0; i++)); do
        local still=()
        for j in "${left[@]}"; do
            case $(curl -s "$url/jobs/$j" | jq -r .state) in
                done | failed | canceled) ;;
                *) still+=("$j") ;;
            esac
        done
        left=("${still[@]}")
        [ ${#left[@]} -gt 0 ] && sleep 0.2
    done
    [ ${#left[@]} -eq 0 ] || return 1
    : >"$API_TMP/jobs.json"
    for j in "$@"; do curl -s "$url/jobs/$j" >>"$API_TMP/jobs.json"; echo >>"$API_TMP/jobs.json"; done
}

# batch URL: one run of every upload at once; appends the jobs per second
# to $API_TMP/rates and each hand-over (ms) to $API_TMP/handovers.
batch() {
    local url=$1 id jobs=() j
    for id in "${ids[@]}"; do
        j=$(schedule "$url" "$id")
        [ -n "$j" ] || { echo "  note: POST /model failed"; return 1; }
        jobs+=("$j")
    done
    wait_jobs "$url" $((n_jobs * 30)) "${jobs[@]}" || { echo "  note: the jobs did not end in time"; return 1; }
    jq -rs "$JQ_MS"'
        if all(.state == "done") | not then "failed" else
        (length / (((map(.finished | ms) | max) - (map(.created | ms) | min)) / 1000))
        end' "$API_TMP/jobs.json" >>"$API_TMP/rates"
    jq -rs "$JQ_MS"'
        group_by(.worker)[] | sort_by(.started | ms) | . as $w
        | range(1; length) | ($w[.].started | ms) - ($w[. - 1].finished | ms)' \
        "$API_TMP/jobs.json" >>"$API_TMP/handovers"
}

# latency URL: one job at a time on idle workers, canceled once started;
# prints "median M ms, largest L ms".
latency() {
    local url=$1 i j k st
    : >"$API_TMP/latency"
    for ((i = 0; i < n_latency; i++)); do
        j=$(schedule "$url" "${ids[$((i % n_jobs))]}")
        [ -n "$j" ] || { echo "POST /model failed"; return 1; }
        for ((k = 0; k < 300; k++)); do
            st=$(curl -s "$url/jobs/$j" | jq -r .state)
            [ "$st" != queued ] && break
            sleep 0.02
        done
        curl -s -o /dev/null -X POST "$url/jobs/$j/cancel"
        wait_jobs "$url" 60 "$j" || { echo "a job did not end"; return 1; }
        jq -r "$JQ_MS"'select(.started != null) | (.started | ms) - (.created | ms)' "$API_TMP/jobs.json" \
            >>"$API_TMP/latency"
    done
    printf 'median %s, largest %s (%d jobs)' "$(ms "$(median <"$API_TMP/latency")")" \
        "$(ms "$(sort -g "$API_TMP/latency" | tail -1)")" "$(grep -c . "$API_TMP/latency")"
}

# report LABEL W: the line of one backend and worker count.
report() {
    local rate ho
    if grep -q failed "$API_TMP/rates" || [ ! -s "$API_TMP/rates" ]; then
        echo "  $1, $2 workers: jobs failed or did not end; no figure"
        return
    fi
    rate=$(median <"$API_TMP/rates")
    ho=$(median <"$API_TMP/handovers")
    printf '  %-10s %d worker%s: %.2f jobs/s (runs: %s), hand-over median %s\n' "$1" "$2" \
        "$([ "$2" = 1 ] || echo s)" "$rate" "$(awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 }' "$API_TMP/rates")" \
        "$(ms "$ho")"
}

# start_pg_workers W DATA DB: W `hark worker` processes on the database DB.
pg_workers=()
start_pg_workers() {
    local k pid out i
    pg_workers=()
    for ((k = 1; k <= $1; k++)); do
        out=$API_TMP/worker$k.out
        "$HARK" worker --db "$3" --data "$2" --models "$MODELS" --model "$MODEL" \
            --workers 1 --threads 1 >"$out" 2>"$API_TMP/worker$k.err" &
        pid=$!
        track "$pid"
        pg_workers+=("$pid")
        for ((i = 0; i < 300; i++)); do
            grep -q '^hark: worker ready' "$out" 2>/dev/null && break
            sleep 0.05
        done
    done
}

stop_pg_workers() {
    local pid
    for pid in "${pg_workers[@]}"; do
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        untrack "$pid"
    done
    pg_workers=()
}

# ------------------------------------------------------------ SQLite

for w in $counts; do
    server_start Q "$API_TMP/sqlite-$w" --workers "$w" --threads 1 >/dev/null ||
        { echo "  note: the server did not start"; continue; }
    if upload_all "$Q_url"; then
        : >"$API_TMP/rates"
        : >"$API_TMP/handovers"
        for ((r = 0; r < runs; r++)); do batch "$Q_url" || break; done
        report sqlite "$w"
    else
        echo "  note: uploads failed"
    fi
    server_stop Q >/dev/null
done
server_start Q "$API_TMP/sqlite-latency" --workers 2 --threads 1 >/dev/null && upload_all "$Q_url" &&
    echo "  sqlite     POST /model to start: $(latency "$Q_url")"
server_stop Q >/dev/null

# -------------------------------------------------------- PostgreSQL

if ! pg_start 2>"$API_TMP/pg.err"; then
    echo "  note: no PostgreSQL cluster ($(head -c 200 "$API_TMP/pg.err")); no PostgreSQL figures"
    exit 0
fi
pg_base=${HARK_TEST_PG%/*}

# pg_setup NAME W: a database NAME of its own, an API process and W
# workers on it, the media uploaded; returns 1 with a note if not.
pg_setup() {
    local data=$API_TMP/pg-$1
    "$PG_BINDIR/psql" -X -q -d "$pg_base/postgres" -c "CREATE DATABASE $1" >/dev/null 2>&1 ||
        { echo "  note: could not create the database $1"; return 1; }
    server_start Q "$data" --workers 0 --db "$pg_base/$1" >/dev/null ||
        { echo "  note: the server did not start"; return 1; }
    start_pg_workers "$2" "$data" "$pg_base/$1"
    upload_all "$Q_url" || { echo "  note: uploads failed"; return 1; }
}

pg_teardown() {
    stop_pg_workers
    server_stop Q >/dev/null
}

for w in $counts; do
    if pg_setup "bench_$w" "$w"; then
        : >"$API_TMP/rates"
        : >"$API_TMP/handovers"
        for ((r = 0; r < runs; r++)); do batch "$Q_url" || break; done
        report postgresql "$w"
    fi
    pg_teardown
done
pg_setup bench_latency 2 && echo "  postgresql POST /model to start: $(latency "$Q_url")"
pg_teardown
exit 0
