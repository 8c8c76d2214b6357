#!/usr/bin/env bash
# test_callbacks.sh: POST /model's "callback_url", against a local receiver
# (tests/api/receiver.mjs, Node's http server).
#
# Server C allows the receiver's host and port (--callback-allow) and signs
# with a given secret. A job's end is POSTed there once, signed
# (X-Hark-Signature: the receiver checks the HMAC-SHA256 of the body), with
# the job, the upload and the results; an answer of 500 is tried again and
# every attempt is in GET /jobs/<n>; a canceled job is told too; one still
# failing an hour after its job ended is given up. URLs to
# hosts or ports not allowed, other schemes and a server without
# --callback-allow are refused (400 callback_not_allowed) before anything
# is queued. Server D, without --callback-secret, makes its secret in
# <data>/callback-secret, readable by its owner alone.
#
# Run from the repository root; helpers and paths as in lib.sh. Prints
# "PASS name" / "FAIL name" per check and ends with "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
. "$HERE/../cli/lib.sh"
. "$HERE/checks.sh"

SECRET=test-secret-$$
DECODE=(--beam-size 1 --no-fallback)

# received N [SECONDS]: waits until the receiver logged N requests.
received() {
    local i
    for ((i = 0; i < ${2:-30} * 10 * SLOW; i++)); do
        [ "$(wc -l <"$LOG" 2>/dev/null || echo 0)" -ge "$1" ] && return 0
        sleep 0.1
    done
    say "the receiver got $(wc -l <"$LOG") requests, not $1"
    return 1
}

# jobq N FILTER: GET /jobs/N satisfies the filter.
jobq() {
    call GET "/jobs/$1"
    want 200 && jqb "$2"
}

test_delivered() {
    url=$C_url
    upload "$AUDIO/jfk.wav" || return 1
    JFK=$up_id
    call POST /model -d "{\"id\":\"$JFK\",\"wait\":true,\"callback_url\":\"http://127.0.0.1:$PORT/hook?x=1\"}"
    want 200 || return 1
    local job
    job=$(jq -r .job_id "$API_TMP/body")
    received 1 || return 1
    local r
    r=$(sed -n 1p "$LOG")
    jq -e --argjson j "$job" --arg u "$JFK" '.path == "/hook?x=1" and .method == "POST" and .validSignature and
        .headers["x-hark-event"] == "job.done" and .headers["x-hark-delivery"] == "\($j)-1" and
        .headers["content-type"] == "application/json" and
        (.body | fromjson | .event == "job.done" and .job.id == $j and .job.state == "done" and
            .upload.id == $u and .upload.status == "done" and (.results.segments | length) > 0)' \
        <<<"$r" >/dev/null || { say "request: $(head -c 600 <<<"$r")"; return 1; }
    # Signed with the secret: openssl gives the same HMAC over the body.
    local mac
    mac=$(jq -j .body <<<"$r" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
    [ "sha256=$mac" = "$(jq -r '.headers["x-hark-signature"]' <<<"$r")" ] || { say "openssl: sha256=$mac"; return 1; }
    jobq "$job" '.callback.url == "http://127.0.0.1:'"$PORT"'/hook?x=1" and .callback.state == "delivered" and
        (.callback.attempts | length) == 1 and .callback.attempts[0].status == 200 and
        .callback.attempts[0].error == null' || return 1
    sleep 1
    [ "$(wc -l <"$LOG")" = 1 ] || { say "sent again: $(wc -l <"$LOG") requests"; return 1; }
}

test_retried() {
    url=$C_url
    call POST /model -d "{\"id\":\"$JFK\",\"wait\":true,\"callback_url\":\"http://127.0.0.1:$PORT/flaky\"}"
    want 200 || return 1
    local job
    job=$(jq -r .job_id "$API_TMP/body")
    received 3 || return 1
    sed -n 2,3p "$LOG" | jq -se --argjson j "$job" '.[0].path == "/flaky" and .[1].path == "/flaky" and
        .[0].headers["x-hark-delivery"] == "\($j)-1" and .[1].headers["x-hark-delivery"] == "\($j)-2" and
        .[0].body == .[1].body and .[1].validSignature' >/dev/null || { say "$(sed -n 2,3p "$LOG" | head -c 400)"; return 1; }
    local i
    for ((i = 0; i < 50; i++)); do
        call GET "/jobs/$job"
        jq -e '.callback.state == "delivered"' "$API_TMP/body" >/dev/null 2>&1 && break
        sleep 0.1
    done
    jobq "$job" '.callback.state == "delivered" and (.callback.attempts | length) == 2 and
        .callback.attempts[0].status == 500 and .callback.attempts[0].error == "HTTP 500" and
        .callback.attempts[1].status == 200 and .callback.attempts[0].at <= .callback.attempts[1].at'
}

test_canceled() {
    url=$C_url
    upload "$API_TMP/cut26.wav" || return 1
    local long=$up_id
    call POST /model -d "{\"id\":\"$long\"}"
    want 202 || return 1
    local first
    first=$(jq -r .job_id "$API_TMP/body")
    call POST /model -d "{\"id\":\"$JFK\",\"callback_url\":\"http://localhost:$PORT/canceled\"}"
    want 202 || return 1
    local job
    job=$(jq -r .job_id "$API_TMP/body")
    call POST "/jobs/$job/cancel"
    want 200 || return 1
    received 4 || return 1
    sed -n 4p "$LOG" | jq -e '.path == "/canceled" and .validSignature and
        (.body | fromjson | .event == "job.canceled" and .job.state == "canceled" and (has("results") | not))' \
        >/dev/null || { say "$(sed -n 4p "$LOG" | head -c 400)"; return 1; }
    call POST "/jobs/$first/cancel"
}

# A callback still failing an hour after its job ended has failed: no more
# attempts. (The job's end is moved two hours back in the database.)
test_gives_up() {
    url=$C_url
    call GET "/uploads/$JFK"
    local job
    job=$(jq -r .job_id "$API_TMP/body")
    python3 - "$API_TMP/c/hark.db" "$job" "http://127.0.0.1:$PORT/down" <<'PY' || { say "cannot change the job"; return 1; }
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
with db:
    db.execute("UPDATE jobs SET callback_url = ?, callback_state = '', callback_next = '', callback_tries = 0,"
               " finished = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-2 hours') WHERE id = ?",
               (sys.argv[3], int(sys.argv[2])))
PY
    local i
    for ((i = 0; i < 100 * SLOW; i++)); do
        call GET "/jobs/$job"
        jq -e '.callback.state == "failed"' "$API_TMP/body" >/dev/null 2>&1 && break
        sleep 0.1
    done
    jobq "$job" '.callback.state == "failed" and (.callback.attempts | length) == 1 and
        .callback.attempts[0].status == 503 and .callback.attempts[0].error == "HTTP 503"' || return 1
    sleep 2.5
    [ "$(grep -c '"path":"/down"' "$LOG")" = 1 ] || { say "tried $(grep -c '"path":"/down"' "$LOG") times"; return 1; }
}

test_refused() {
    url=$C_url
    local u
    for u in "http://10.1.2.3/x" "http://127.0.0.1:$((PORT + 1))/x" "ftp://127.0.0.1:$PORT/x" "http://127.0.0.2:$PORT/x" \
        "not a url" "http://[::1]:$PORT/x"; do
        call POST /model -d "{\"id\":\"$JFK\",\"callback_url\":\"$u\"}"
        want 400 callback_not_allowed && jqb '.error.param == "callback_url"' || { say "($u)"; return 1; }
    done
    call POST /model -d "{\"id\":\"$JFK\",\"callback_url\":7}"
    want 400 invalid_request || return 1
    # Nothing was queued by a refusal.
    call GET "/uploads/$JFK"
    want 200 && jqb '.status == "done" or .status == "canceled"' || return 1
    url=$D_url
    upload "$AUDIO/jfk.wav" || return 1
    call POST /model -d "{\"id\":\"$up_id\",\"callback_url\":\"http://127.0.0.1:$PORT/x\"}"
    want 400 callback_not_allowed && jqb '.error.message | test("callback-allow")'
}

test_secret_file() {
    local f=$API_TMP/d/callback-secret
    [ -f "$f" ] && [ "$(stat -c %a "$f")" = 600 ] && grep -qE '^[0-9a-f]{64}$' "$f" ||
        { say "$f: $(stat -c %a "$f" 2>&1) $(head -c 80 "$f" 2>/dev/null)"; return 1; }
    # Kept across a restart.
    local before
    before=$(cat "$f")
    server_stop D || return 1
    server_start D "$API_TMP/d" || return 1
    [ "$(cat "$f")" = "$before" ] || { say "the secret changed"; return 1; }
}

stop_all() { server_stop C && server_stop D; }

# ------------------------------------------------------------------ main

api_init || { echo "FAIL callbacks_setup"; exit 1; }
LOG=$API_TMP/received.jsonl
: >"$LOG"
wav_header "$API_TMP/cut26.wav" $((44 + 26 * 32000))
for _ in 1 2 3; do tail -c 352000 "$AUDIO/jfk.wav"; done | head -c $((26 * 32000)) >>"$API_TMP/cut26.wav"
HARK_LOG=$LOG HARK_SECRET=$SECRET node "$HERE/receiver.mjs" >"$API_TMP/receiver.out" 2>&1 &
track $!
PORT=
for ((i = 0; i < 100; i++)); do
    PORT=$(sed -n 's/^listening //p' "$API_TMP/receiver.out")
    [ -n "$PORT" ] && break
    sleep 0.1
done
if [ -z "$PORT" ]; then
    echo "FAIL callbacks_setup: the receiver did not start: $(head -c 200 "$API_TMP/receiver.out")"
    failed=$((failed + 1))
elif server_start C "$API_TMP/c" "${DECODE[@]}" --callback-allow "127.0.0.1:$PORT,LocalHost" \
    --callback-secret "$SECRET" && server_start D "$API_TMP/d" "${DECODE[@]}"; then
    t callbacks_delivered_signed test_delivered
    t callbacks_retried test_retried
    t callbacks_canceled test_canceled
    t callbacks_give_up test_gives_up
    t callbacks_refused test_refused
    t callbacks_secret_file test_secret_file
    t callbacks_stop stop_all
else
    echo "FAIL callbacks_setup: a server did not start"
    failed=$((failed + 1))
fi
summary
