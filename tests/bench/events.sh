#!/usr/bin/env bash
# events.sh: how soon a job's events reach a client, called by
# tests/bench/run.sh. A server on SQLite runs the jobs itself (the stream
# wakes when its queue stores a segment); on a throwaway PostgreSQL cluster
# (tests/store/pg.sh) a `hark worker` process runs them and the server's
# stream wakes when PostgreSQL announces each stored segment (LISTEN/NOTIFY).
# Each job is 90 s of jfk.wav's speech over and over (three windows),
# decoded greedily with the test model; Node's EventSource
# (tests/api/events.mjs) follows it and measures, for every segment, the
# time from its worker storing it (its decoded_at) to the event's arrival.
# Prints the median and the 90th percentile and never fails.
# BENCH_EVENTS_JOBS (default 4).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../api/lib.sh"
. "$HERE/../store/pg.sh"
jobs=${BENCH_EVENTS_JOBS:-4}
DECODE=(--beam-size 1 --no-fallback)

echo
echo "job events: from a segment decoded to its event at the client ($jobs jobs of 90 s, $MODEL, greedy)"
if ! command -v node >/dev/null || [ ! -x "$HARK" ]; then
    echo "  note: node or $HARK is missing; no figures"
    exit 0
fi
api_init || exit 0
clip=$API_TMP/clip.wav
wav_header "$clip" $((44 + 90 * 32000))
for _ in $(seq 9); do tail -c 352000 "$AUDIO/jfk.wav"; done | head -c $((90 * 32000)) >>"$clip"

# run NAME URL: the jobs, one after another, each followed from its start.
run() {
    local url=$2 i id lat=$API_TMP/$1.lat first=$API_TMP/$1.first
    : >"$lat"
    : >"$first"
    for ((i = 0; i < jobs; i++)); do
        # A distinct file each time (one more byte of silence).
        head -c $((44 + 90 * 32000 + 2 * i)) /dev/zero | cat "$clip" - | head -c $((44 + 90 * 32000 + 2 * i)) \
            >"$API_TMP/j$i.wav"
        req POST "$url/upload" -F "file=@$API_TMP/j$i.wav"
        id=$(jq -r .id "$API_TMP/body" 2>/dev/null)
        req POST "$url/model" -H 'Content-Type: application/json' -d "{\"id\":\"$id\"}"
        if [ "$code" != 202 ]; then
            echo "  $1: POST /model: $code $(head -c 200 "$API_TMP/body")"
            return
        fi
        HARK_URL=$url HARK_ID=$id HARK_OUT=$API_TMP/ev.json HARK_TIMEOUT_S=300 \
            node --experimental-eventsource --no-warnings "$HERE/../api/events.mjs" ||
            { echo "  $1: the client saw no end"; return; }
        jq -r '.segments[].latency' "$API_TMP/ev.json" >>"$lat"
        jq -r '.segments[0].t' "$API_TMP/ev.json" >>"$first"
    done
    printf '  %-34s %3d segments: median %4s ms, p90 %4s ms, max %4s ms; first segment %s ms after connecting (median)\n' \
        "$1" "$(wc -l <"$lat")" "$(median <"$lat")" "$(sort -g "$lat" | awk '{ v[NR] = $1 } END { print v[int(NR * 0.9 + 0.5)] }')" \
        "$(sort -g "$lat" | tail -n1)" "$(median <"$first")"
}

if server_start S "$API_TMP/s" "${DECODE[@]}"; then
    run "SQLite, one process" "$S_url"
    server_stop S >/dev/null
else
    echo "  note: the server did not start"
fi
if pg_start 2>"$API_TMP/pg.err"; then
    # pg_start's own exit trap stops the cluster; the processes go first.
    trap '_api_cleanup; pg_stop' EXIT
    HARK_API_PG=${HARK_TEST_PG%/*}
    if server_start P "$API_TMP/p" --workers 0 "${DECODE[@]}"; then
        "$HARK" worker --db "$HARK_API_PG/$api_db" --data "$API_TMP/p" --models "$MODELS" --model "$MODEL" \
            --workers 1 --threads 2 "${DECODE[@]}" >"$API_TMP/w.out" 2>"$API_TMP/w.err" &
        track $!
        run "PostgreSQL, a worker process" "$P_url"
    else
        echo "  note: the server on PostgreSQL did not start"
    fi
else
    echo "  note: no PostgreSQL cluster could start: $(head -c 200 "$API_TMP/pg.err")"
fi
exit 0
