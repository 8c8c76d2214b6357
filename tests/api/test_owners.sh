#!/usr/bin/env bash
# test_owners.sh: many users of one `hark serve`, each with their own history.
#
# One server, first open (no key anywhere: one anonymous admin), then with
# keys added by `hark keys add` on its store while it runs: alice and bob
# (owners) and root (an admin). Checks that the same file uploaded by two
# owners is two entries, and a duplicate only within one owner; that bob
# can never list, read, follow (events), schedule, range-read, HEAD, cancel or delete
# alice's upload, by id, by job number, by file name, by result file or
# through /v1, and that every such answer is exactly the answer to an
# unknown id (status and body, the id aside); that deleting alice's copy
# leaves bob's intact on disk; that the admin sees everyone; that an open
# service ignores a key sent to it; that a request
# without a key, with an unknown key or with a revoked one is refused with
# 401 in the OpenAI error shape; /whoami; /metrics for admins only; and
# that --api-key stays an admin key beside the store's keys.
#
# Run from the repository root; $HARK_BIN is the binary (default build/hark),
# shared data as in lib.sh. With HARK_API_PG set (test_owners_pg.sh) the
# server and `hark keys` use a PostgreSQL database and the names begin with
# "pg_". Prints "PASS name" / "FAIL name" per check and ends with
# "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
LABEL=${HARK_API_PG:+pg_}

# t NAME FUNCTION, say, and the counts; want, jqb and body.
. "$HERE/../cli/lib.sh"
. "$HERE/checks.sh"

# as WHO METHOD PATH [CURL ARGS...]: a request with WHO's key ("" for none).
as() {
    local who=$1 key=${keys[$1]:-}
    shift
    call "$@" ${key:+-H "Authorization: Bearer $key"}
    last="$who: $last"
}

# keys_cli ARGS...: `hark keys` on the server's store; stdout in $API_TMP/kout.
keys_cli() {
    if [ -n "${HARK_API_PG:-}" ]; then
        api_pg_db "$DATA" >&2 || return 1
        "$HARK" keys "$@" --db "$HARK_API_PG/$api_db" >"$API_TMP/kout" 2>"$API_TMP/kerr"
    else
        "$HARK" keys "$@" --data "$DATA" >"$API_TMP/kout" 2>"$API_TMP/kerr"
    fi
}

# like_unknown WHO METHOD PATH ID OTHER_ID [CURL ARGS...]: WHO's request
# naming ID (in the path or the arguments) is answered 404, exactly as the
# same request naming OTHER_ID, which does not exist: the same status and
# the same body once OTHER_ID is written as ID.
like_unknown() {
    local who=$1 method=$2 path=$3 id=$4 oid=$5 c1 b1 b2 a other=()
    shift 5
    for a in "$@"; do other+=("${a//$id/$oid}"); done
    as "$who" "$method" "$path" "$@"
    c1=$code
    b1=$(jq -cS . "$API_TMP/body" 2>/dev/null || body)
    as "$who" "$method" "${path//$id/$oid}" "${other[@]}"
    b2=$(jq -cS . "$API_TMP/body" 2>/dev/null || body)
    b2=${b2//$oid/$id}
    if [ "$c1" != 404 ] || [ "$code" != "$c1" ] || [ "$b1" != "$b2" ]; then
        say "$who: $method $path -> $c1 $b1"
        say "but for an unknown id: $code $b2"
        return 1
    fi
}

# wait_done WHO ID SECONDS: polls WHO's GET /uploads/ID until it is done;
# fails on another final state or when the time is up. (A shared machine
# can take minutes for one transcription.)
wait_done() {
    local i st
    for ((i = 0; i < $3; i++)); do
        as "$1" GET "/uploads/$2"
        st=$(jq -r .status "$API_TMP/body" 2>/dev/null)
        [ "$st" = done ] && return 0
        case $st in
            failed | canceled) say "upload $2 ended '$st': $(body)"; return 1 ;;
        esac
        sleep 1
    done
    say "upload $2 not done after $3 s: $(body 300)"
    return 1
}

MP3=$MEDIA/jfk.mp3
WAV=$AUDIO/jfk.wav
LONG=$AUDIO/hifitts_concat_75s.wav
NOBODY=00000000-0000-4000-8000-000000000000
declare -A keys=([anon]="" [stranger]="hark_$(printf '%064d' 7)")
A_ID= B_ID= ANON_ID= A_JOB= LONG_ID= LONG_JOB=

api_init || exit 1
DATA=$API_TMP/data

test_open() {
    as anon GET /whoami
    want 200 && jqb '.admin == true and .keyed == false and .name == null' || return 1
    # An open service ignores whatever key a client still sends.
    as stranger GET /whoami
    want 200 && jqb '.admin == true and .keyed == false' || return 1
    as anon POST /upload -F "file=@$WAV"
    want 201 && jqb '.owner == null' || return 1
    ANON_ID=$(jq -r .id "$API_TMP/body")
}

test_keys_added() {
    local who
    for who in alice bob; do
        keys_cli add "$who" || { say "hark keys add $who: $(cat "$API_TMP/kerr")"; return 1; }
        keys[$who]=$(cat "$API_TMP/kout")
    done
    keys_cli add root --admin || { say "hark keys add root: $(cat "$API_TMP/kerr")"; return 1; }
    keys[root]=$(cat "$API_TMP/kout")
    [[ ${keys[alice]} =~ ^hark_[0-9a-f]{64}$ ]] || { say "key not hark_ and 64 hex: ${keys[alice]}"; return 1; }
    keys_cli list || return 1
    if grep -qF -e "${keys[alice]#hark_}" -e "${keys[root]#hark_}" "$API_TMP/kout"; then
        say "hark keys list shows a key"
        return 1
    fi
}

test_refused_without_key() {
    local path
    for path in /uploads /whoami "/uploads/$ANON_ID" /v1/models; do
        as anon GET "$path"
        want 401 invalid_api_key || return 1
        as stranger GET "$path"
        want 401 invalid_api_key || return 1
    done
    as anon POST /v1/audio/transcriptions -F "file=@$WAV" -F model=whisper-1
    want 401 invalid_api_key || return 1
    # The page and /health need no key.
    as anon GET /
    want 200 || return 1
    as anon GET /health
    want 200
}

test_whoami() {
    as alice GET /whoami
    want 200 && jqb '.name == "alice" and .admin == false and .keyed == true' || return 1
    as root GET /whoami
    want 200 && jqb '.name == "root" and .admin == true'
}

test_same_file_two_owners() {
    as alice POST /upload -F "file=@$MP3"
    want 201 && jqb '.owner == "alice"' || return 1
    A_ID=$(jq -r .id "$API_TMP/body")
    as bob POST /upload -F "file=@$MP3"
    want 201 && jqb '.owner == "bob"' || return 1
    B_ID=$(jq -r .id "$API_TMP/body")
    [ "$A_ID" != "$B_ID" ] || { say "one id for two owners"; return 1; }
    as alice POST /upload -F "file=@$MP3"
    want 409 && jqb '.id == $id' --arg id "$A_ID" || return 1
    as bob POST /upload -F "file=@$MP3"
    want 409 && jqb '.id == $id' --arg id "$B_ID" || return 1
    # The anonymous upload's file, sent again by alice, is hers alone.
    as alice POST /upload -F "file=@$WAV"
    want 201 || return 1
    as alice DELETE "/uploads/$(jq -r .id "$API_TMP/body")"
    want 200
}

test_lists_own() {
    as alice GET /uploads
    want 200 && jqb '.total == 1 and (.uploads | length == 1) and .uploads[0].id == $id' --arg id "$A_ID" || return 1
    as bob GET /uploads
    want 200 && jqb '.total == 1 and (.uploads | length == 1) and .uploads[0].id == $id' --arg id "$B_ID" || return 1
    as bob GET "/uploads?limit=1000&offset=0"
    want 200 && jqb '[.uploads[].id] == [$id]' --arg id "$B_ID" || return 1
    as root GET /uploads
    want 200 && jqb '.total == 3 and ([.uploads[].id] | sort) == ([$a, $b, $n] | sort) and
        ([.uploads[].owner] | sort) == ([null, "alice", "bob"] | sort)' \
        --arg a "$A_ID" --arg b "$B_ID" --arg n "$ANON_ID"
}

test_schedule_own() {
    like_unknown bob POST /model "$A_ID" "$NOBODY" -H 'Content-Type: application/json' \
        -d "{\"id\":\"$A_ID\"}" || return 1
    as alice POST /model -H 'Content-Type: application/json' -d "{\"id\":\"$A_ID\"}"
    want 202 || return 1
    A_JOB=$(jq -r .job_id "$API_TMP/body")
    wait_done alice "$A_ID" $((900 * SLOW))
}

test_read_others() {
    like_unknown bob GET "/uploads/$A_ID" "$A_ID" "$NOBODY" || return 1
    like_unknown bob GET "/results/$A_ID" "$A_ID" "$NOBODY" || return 1
    like_unknown bob GET "/results/$A_ID?format=srt" "$A_ID" "$NOBODY" || return 1
    like_unknown bob GET "/jobs/$A_JOB" "$A_JOB" 999999999 || return 1
    like_unknown bob GET "/jobs/$A_ID" "$A_ID" "$NOBODY" || return 1
    like_unknown bob GET "/jobs/$A_JOB/events" "$A_JOB" 999999999 || return 1
    like_unknown bob GET "/jobs/$A_ID/events" "$A_ID" "$NOBODY" || return 1
    as alice GET "/jobs/$A_ID/events"
    want 200 && grep -q '^event: done' "$API_TMP/body" || { say "alice's events: $(body)"; return 1; }
    # Root reads them all.
    as root GET "/uploads/$A_ID"
    want 200 && jqb '.owner == "alice"' || return 1
    as root GET "/results/$A_ID"
    want 200 || return 1
    as root GET "/jobs/$A_JOB"
    want 200 || return 1
    as root GET "/jobs/$A_JOB/events"
    want 200 && grep -q '^event: done' "$API_TMP/body"
}

# Search sees only what the key may read: alice's transcript is found by
# alice and by root, never by bob.
test_search_own() {
    local word
    as alice GET "/results/$A_ID"
    want 200 || return 1
    word=$(jq -r '.segments[0].text' "$API_TMP/body" | grep -oE '[A-Za-z]{4,}' | head -1)
    [ -n "$word" ] || { say "no word of 4 letters in alice's transcript"; return 1; }
    as alice GET "/search?q=$word"
    want 200 && jqb '.total >= 1 and any(.hits[]; .upload_id == $a)' --arg a "$A_ID" || return 1
    as root GET "/search?q=$word"
    want 200 && jqb 'any(.hits[]; .upload_id == $a)' --arg a "$A_ID" || return 1
    as bob GET "/search?q=$word"
    want 200 && jqb '.total == 0 and .hits == []' --arg a "$A_ID"
}

test_files_of_others() {
    local f
    for f in jfk.mp3 results.json results.txt; do
        like_unknown bob GET "/$A_ID/$f" "$A_ID" "$NOBODY" || return 1
        like_unknown bob GET "/$A_ID/$f" "$A_ID" "$NOBODY" -H 'Range: bytes=0-9' || return 1
        like_unknown bob GET "/$A_ID/$f" "$A_ID" "$NOBODY" -H 'Range: bytes=-5' || return 1
        as bob HEAD "/$A_ID/$f" -I
        [ "$code" = 404 ] || { say "$last -> $code, expected 404"; return 1; }
    done
    as alice GET "/$A_ID/jfk.mp3" -H 'Range: bytes=0-9'
    want 206 || return 1
    as bob GET "/$B_ID/jfk.mp3" -H 'Range: bytes=0-9'
    want 206
}

test_cancel_others() {
    as alice POST /upload -F "file=@$LONG"
    want 201 || return 1
    LONG_ID=$(jq -r .id "$API_TMP/body")
    as alice POST /model -H 'Content-Type: application/json' -d "{\"id\":\"$LONG_ID\"}"
    want 202 || return 1
    LONG_JOB=$(jq -r .job_id "$API_TMP/body")
    like_unknown bob POST "/jobs/$LONG_JOB/cancel" "$LONG_JOB" 999999999 || return 1
    like_unknown bob POST "/jobs/$LONG_ID/cancel" "$LONG_ID" "$NOBODY" || return 1
    as alice GET "/jobs/$LONG_JOB"
    want 200 && jqb '.state == "queued" or .state == "running"' || return 1
    as alice POST "/jobs/$LONG_JOB/cancel"
    want 200 && jqb '.status == "canceled"' || return 1
    # A canceled job stops at its next 30 s window: wait for the worker to
    # be idle, so that the server stops promptly later.
    local i
    for ((i = 0; i < 900 * SLOW; i++)); do
        as root GET /health
        jq -e '.busy_workers == 0' "$API_TMP/body" >/dev/null 2>&1 && return 0
        sleep 1
    done
    say "the worker is still busy"
    return 1
}

test_v1_stores_nothing() {
    # Synchronous: the server holds a request up to 300 s.
    as bob POST /v1/audio/transcriptions -F "file=@$WAV" -F model=whisper-1 --max-time 300
    want 200 || return 1
    as bob GET /uploads
    want 200 && jqb '.total == 1' || return 1
    as alice GET /uploads
    want 200 && jqb '.total == 1' || return 1
    # No /v1 path reaches a stored upload or its files.
    like_unknown bob GET "/v1/$A_ID/jfk.mp3" "$A_ID" "$NOBODY" || return 1
    like_unknown bob GET "/v1/uploads/$A_ID" "$A_ID" "$NOBODY"
}

test_delete_own_copy() {
    like_unknown bob DELETE "/uploads/$A_ID" "$A_ID" "$NOBODY" || return 1
    [ -f "$DATA/db/$A_ID/jfk.mp3" ] || { say "bob's DELETE removed alice's file"; return 1; }
    as alice DELETE "/uploads/$A_ID"
    want 200 || return 1
    [ ! -e "$DATA/db/$A_ID" ] || { say "alice's folder is still there"; return 1; }
    cmp -s "$DATA/db/$B_ID/jfk.mp3" "$MP3" || { say "bob's copy is gone or changed"; return 1; }
    as bob GET "/$B_ID/jfk.mp3"
    want 200 || return 1
    cmp -s "$API_TMP/body" "$MP3" || { say "bob's file differs"; return 1; }
    as bob GET "/uploads/$B_ID"
    want 200
}

test_metrics_admin() {
    as bob GET /metrics
    want 403 || return 1
    as root GET /metrics
    want 200
}

test_revoke() {
    keys_cli revoke bob || { say "hark keys revoke: $(cat "$API_TMP/kerr")"; return 1; }
    as bob GET /uploads
    want 401 invalid_api_key || return 1
    as root GET "/uploads/$B_ID"
    want 200 && jqb '.owner == "bob"' || return 1
    keys_cli add bob
    [ $? -ne 0 ] || { say "a revoked name was given again"; return 1; }
    keys_cli list && grep -Eq '^bob +[^ ]+ +no +[0-9]{4}-' "$API_TMP/kout" ||
        { say "list does not show bob revoked: $(cat "$API_TMP/kout")"; return 1; }
}

test_api_key_admin() {
    server_stop srv || return 1
    server_start srv "$DATA" --api-key "the-service-key" || return 1
    url=$srv_url
    keys[svc]=the-service-key
    as svc GET /whoami
    want 200 && jqb '.admin == true and .name == null and .keyed == true' || return 1
    as svc GET /uploads
    want 200 && jqb '.total == 3' || return 1
    as alice GET /uploads
    want 200 && jqb '.total == 1' || return 1
    as anon GET /uploads
    want 401 invalid_api_key
}

stop_server() { server_stop srv; }

if server_start srv "$DATA"; then
    url=$srv_url
    t owners_open_service test_open
    t owners_keys_added test_keys_added
    t owners_refused_without_key test_refused_without_key
    t owners_whoami test_whoami
    t owners_same_file_two_owners test_same_file_two_owners
    t owners_lists_own test_lists_own
    t owners_schedule_own test_schedule_own
    t owners_read_others test_read_others
    t owners_search_own test_search_own
    t owners_files_of_others test_files_of_others
    t owners_v1_stores_nothing test_v1_stores_nothing
    t owners_cancel_others test_cancel_others
    t owners_delete_own_copy test_delete_own_copy
    t owners_metrics_admin test_metrics_admin
    t owners_revoke test_revoke
    t owners_api_key_admin test_api_key_admin
    t owners_clean_stop stop_server
else
    echo "FAIL ${LABEL}owners_server_start"
    failed=$((failed + 1))
fi
summary
