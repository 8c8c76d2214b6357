#!/usr/bin/env bash
# test_events.sh: GET /jobs/<id>/events, a job followed as Server-Sent
# Events, from the outside, read by Node's EventSource (the WHATWG client
# a browser has, tests/api/events.mjs) and by curl.
#
# Server E decodes greedily without fallback (--beam-size 1 --no-fallback)
# so that a 26 s clip (jfk.wav over and over: two windows) takes seconds.
# With HARK_API_PG set (test_events_pg.sh) E runs no workers and a `hark
# worker` process runs every job: the events come from the store.
#
# - live: progress, then each segment while the job still runs, then done;
#   the segments are results.json's, with their words.
# - late: a client that connects after the end gets every segment, then
#   done; Last-Event-ID resumes after a segment; after "end" it is a 204.
# - queued and canceled, failed; 404 for what is not a job.
# - crash: the processes are killed (SIGKILL) once the first window is
#   finished and started again on the same port. The client reconnects by
#   itself with Last-Event-ID and gets the rest, each segment once; the job
#   resumed from its checkpoint (the window after the first), ran twice and
#   its results are what the client got.
#
# Run from the repository root; helpers and paths as in lib.sh. Prints
# "PASS name" / "FAIL name" per check and ends with "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
. "$HERE/../cli/lib.sh"
. "$HERE/checks.sh"

LABEL=${HARK_API_PG:+pg_}
DECODE=(--beam-size 1 --no-fallback)

# worker_start NAME: a `hark worker` on E's database and data folder; sets
# ${NAME}_pid and ${NAME}_err.
worker_start() {
    local err=$API_TMP/$1.err
    "$HARK" worker --db "$HARK_API_PG/$api_db" --data "$E_data" --models "$MODELS" --model "$MODEL" \
        --workers 1 --threads 2 --lease-seconds "$API_LEASE_S" "${DECODE[@]}" >"$API_TMP/$1.out" 2>"$err" &
    track $!
    printf -v "${1}_pid" %s $!
    printf -v "${1}_err" %s "$err"
}

# start_all [--port N]: server E (and, on PostgreSQL, worker W).
start_all() {
    if [ -n "${HARK_API_PG:-}" ]; then
        server_start E "$E_data" --workers 0 "${DECODE[@]}" "$@" || return 1
        worker_start W
    else
        server_start E "$E_data" "${DECODE[@]}" "$@"
    fi
}

# follow ID OUT [KILL PIDS]: events.mjs on job ID into OUT.
follow() {
    HARK_URL=$url HARK_ID=$1 HARK_OUT=$2 HARK_KILL=${3:-} HARK_TIMEOUT_S=$((120 * SLOW)) \
        timeout $((150 * SLOW)) node --experimental-eventsource --no-warnings "$HERE/events.mjs"
}

# schedule ID: POST /model without waiting; sets job_id.
schedule() {
    call POST /model -d "{\"id\":\"$1\"}"
    want 202 || return 1
    job_id=$(jq -r .job_id "$API_TMP/body")
}

# jqf FILE FILTER [JQ ARGS]: the file satisfies the filter.
jqf() {
    local f=$1 filter=$2
    shift 2
    jq -e "$@" "$filter" "$f" >/dev/null 2>&1 && return 0
    say "not ($filter): $(head -c 600 "$f")"
    return 1
}

# The client's segments (OUT) are the results' (in $API_TMP/body): as many,
# in order, each with its place as its event id, the same text and times
# and the same words.
same_as_results() {
    jq -e --slurpfile got "$1" '
        ($got[0].segments) as $g | .segments as $r |
        ($g | length) == ($r | length) and ($g | length) > 0 and
        ([range(0; $g | length) as $i | $g[$i] |
            .index == $i and .lastEventId == ($i | tostring) and .data.text == $r[$i].text and
            ((.data.start - $r[$i].start) | fabs) < 0.001 and ((.data.end - $r[$i].end) | fabs) < 0.001 and
            ([.data.words[]?.word] == [$r[$i].words[]?.word])] | all)' "$API_TMP/body" >/dev/null 2>&1 && return 0
    say "the events' segments are not the results': $(jq -c '[.segments[] | {index, lastEventId, text: .data.text}]' "$1" | head -c 400)"
    say "results: $(jq -c '[.segments[] | {start, end, text}]' "$API_TMP/body" | head -c 400)"
    return 1
}

# sse_ids: the id lines of a raw event stream in $API_TMP/body, joined.
sse_ids() { grep '^id: ' "$API_TMP/body" | cut -c5- | tr -d '\r' | paste -sd, -; }

# ------------------------------------------------------------------ tests

test_live() {
    url=$E_url
    upload "$CUT" || return 1
    LIVE=$up_id
    schedule "$LIVE" || return 1
    LIVE_JOB=$job_id
    follow "$LIVE" "$API_TMP/live.json" || { say "client: $(head -c 300 "$API_TMP/live.json" 2>/dev/null)"; return 1; }
    local f=$API_TMP/live.json
    jqf "$f" '.end.type == "done" and .end.lastEventId == "end" and .end.data.job == $j and
        .end.data.segments == (.segments | length) and .end.data.upload_id == $u' \
        --argjson j "$LIVE_JOB" --arg u "$LIVE" || return 1
    # Progress came first, and moved on after the first segment: it was
    # sent while the job ran, not at its end.
    jqf "$f" '.progress[0].afterSegments == 0 and (.progress[0].data.state | IN("queued", "running")) and
        ([.progress[] | select(.afterSegments > 0 and .data.percent < 100)] | length) > 0 and
        (.segments[0].t < .end.t)' || return 1
    jqf "$f" '[.progress[].data | .percent >= 0 and .percent <= 100 and .audio_seconds >= 0] | all' || return 1
    jqf "$f" '[.segments[].data | (.words | length) > 0 and .start <= .end and
        (.decoded_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}[.][0-9]{3}Z$"))] | all' || return 1
    call GET "/results/$LIVE"
    want 200 && same_as_results "$f" || return 1
    # --no-fallback: every window decoded once, at temperature 0.
    jqb '[.segments[].temperature == 0] | all' || return 1
    say "first segment after $(jq .segments[0].t "$f") ms, done after $(jq .end.t "$f") ms" \
        "($(jq '.segments | length' "$f") segments, $(jq '.progress | length' "$f") progress events)"
}

test_late() {
    url=$E_url
    # By the job's number this time.
    follow "$LIVE_JOB" "$API_TMP/late.json" || return 1
    local f=$API_TMP/late.json
    jqf "$f" '.end.type == "done" and .progress == [] and .opened == 1' || return 1
    call GET "/results/$LIVE"
    want 200 && same_as_results "$f"
}

test_last_event_id() {
    url=$E_url
    local n
    n=$(jq '.segments | length' "$API_TMP/live.json")
    call GET "/jobs/$LIVE/events" -H "Last-Event-ID: 0"
    want 200 || return 1
    [ "$(hdr content-type)" = text/event-stream ] || { say "content-type $(hdr content-type)"; return 1; }
    local want_ids
    want_ids=$(seq -s, 1 $((n - 1)))
    [ "$(sse_ids)" = "${want_ids:+$want_ids,}end" ] || { say "ids $(sse_ids), want ${want_ids:+$want_ids,}end"; return 1; }
    grep -q '^retry: 1000' "$API_TMP/body" || { say "no retry line: $(body)"; return 1; }
    call GET "/jobs/$LIVE/events" -H "Last-Event-ID: $((n - 1))"
    want 200 && [ "$(sse_ids)" = end ] || { say "after the last: $(sse_ids)"; return 1; }
    # After the end a client is told to stop.
    call GET "/jobs/$LIVE/events" -H "Last-Event-ID: end"
    want 204 || return 1
    # An id that is no place starts from the first.
    call GET "/jobs/$LIVE/events" -H "Last-Event-ID: x"
    want 200 && [ "$(sse_ids)" = "$(seq -s, 0 $((n - 1))),end" ] || { say "from x: $(sse_ids)"; return 1; }
}

test_not_found() {
    url=$E_url
    call GET /jobs/999999/events
    want 404 not_found || return 1
    call GET /jobs/abc/events
    want 404 not_found || return 1
    upload "$AUDIO/jfk.wav" || return 1
    JFK=$up_id
    call GET "/jobs/$JFK/events"
    want 404 not_found && jqb '.error.message | test("never scheduled")' || return 1
    call POST "/jobs/$LIVE/events"
    want 405
}

# A job behind another waits its turn: progress says queued, with its
# place; canceled, the stream ends with canceled.
test_queued_canceled() {
    url=$E_url
    schedule "$LIVE" || return 1
    local first=$job_id
    schedule "$JFK" || return 1
    local second=$job_id
    curl -sN --max-time $((60 * SLOW)) "$url/jobs/$second/events" >"$API_TMP/queued.sse" &
    local reader=$!
    track "$reader"
    local i
    for ((i = 0; i < 100 * SLOW; i++)); do
        grep -q '"state":"queued"' "$API_TMP/queued.sse" && break
        sleep 0.1
    done
    call POST "/jobs/$second/cancel"
    want 200 || return 1
    wait "$reader"
    untrack "$reader"
    grep -q '"queue_position":1' "$API_TMP/queued.sse" || { say "no queued place: $(head -c 400 "$API_TMP/queued.sse")"; return 1; }
    grep -q '^event: canceled' "$API_TMP/queued.sse" || { say "no canceled event: $(tail -c 300 "$API_TMP/queued.sse")"; return 1; }
    call POST "/jobs/$first/cancel"
    [ "$code" = 200 ] || [ "$code" = 409 ] || { say "cancel $first: $code"; return 1; }
}

# A job whose media went missing fails, and says why.
test_failed() {
    url=$E_url
    upload "$API_TMP/cut5.wav" || return 1
    local id=$up_id
    rm -f "$E_data/db/$id/cut5.wav"
    schedule "$id" || return 1
    call GET "/jobs/$id/events"
    want 200 && grep -q '^event: failed' "$API_TMP/body" || { say "$(body)"; return 1; }
    grep -A1 '^event: failed' "$API_TMP/body" | grep -q '"error":"[^"]' || { say "no error: $(body)"; return 1; }
}

test_crash() {
    url=$E_url
    local port=${E_url##*:} pids=$E_pid
    [ -n "${HARK_API_PG:-}" ] && pids="$E_pid,$W_pid"
    upload "$CUT2" || return 1
    CRASH=$up_id
    schedule "$CRASH" || return 1
    local job=$job_id
    follow "$CRASH" "$API_TMP/crash.json" "$pids" &
    local client=$!
    track "$client"
    # The client kills them; they start again on the same port.
    local i
    for ((i = 0; i < 1200 * SLOW; i++)); do
        kill -0 "$E_pid" 2>/dev/null || break
        sleep 0.05
    done
    server_kill E
    [ -n "${HARK_API_PG:-}" ] && server_kill W
    start_all --port "$port" || return 1
    wait "$client"
    local rc=$?
    untrack "$client"
    local f=$API_TMP/crash.json
    [ "$rc" = 0 ] || { say "client: status $rc, $(head -c 400 "$f" 2>/dev/null)"; return 1; }
    jqf "$f" '.killedAt != null and .opened >= 2 and .end.type == "done" and
        .end.data.segments == (.segments | length)' || return 1
    local err=$E_err
    [ -n "${HARK_API_PG:-}" ] && err=$W_err
    grep -q "job $job resumes at" "$err" || { say "no resume in $(head -c 400 "$err")"; return 1; }
    say "$(grep -m1 "job $job resumes at" "$err"); killed after $(jq .killedAt.segments "$f") segments"
    call GET "/jobs/$job"
    want 200 && jqb '.attempts == 2 and .state == "done"' || return 1
    call GET "/results/$CRASH"
    want 200 && same_as_results "$f"
}

stop_all() {
    server_stop E || return 1
    if [ -n "${HARK_API_PG:-}" ]; then
        kill -TERM "$W_pid" 2>/dev/null
        wait "$W_pid"
        local rc=$?
        untrack "$W_pid"
        [ "$rc" = 0 ] && sanitizer_clean "$W_err"
    fi
}

# ------------------------------------------------------------------ main

api_init || { echo "FAIL ${LABEL}events_setup"; exit 1; }
E_data=$API_TMP/e
# 26 s and 31 s of jfk.wav's speech over and over (two windows each), and
# its first 5 s.
CUT=$API_TMP/cut26.wav
CUT2=$API_TMP/cut31.wav
for n in 5 26 31; do
    f=$API_TMP/cut$n.wav
    wav_header "$f" $((44 + n * 32000))
    for _ in 1 2 3; do tail -c 352000 "$AUDIO/jfk.wav"; done | head -c $((n * 32000)) >>"$f"
done
if ! command -v node >/dev/null; then
    echo "FAIL ${LABEL}events_setup: no node"
    failed=$((failed + 1))
elif start_all; then
    t events_live test_live
    t events_late test_late
    t events_last_event_id test_last_event_id
    t events_not_found test_not_found
    t events_queued_canceled test_queued_canceled
    t events_failed test_failed
    t events_crash test_crash
    t events_stop stop_all
else
    echo "FAIL ${LABEL}events_setup: the server did not start"
    failed=$((failed + 1))
fi
summary
