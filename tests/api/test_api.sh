#!/usr/bin/env bash
# test_api.sh: `hark serve` from the outside, against the HTTP contract.
#
# Starts servers on free loopback ports with temporary data folders and the
# rt-mini.en-f16 random-weight model, and checks: the whole flow of an upload
# (metadata, history, scheduling, polling, results in every format, the job
# record), synchronous runs, duplicates, byte ranges and HEAD on stored files,
# rejected uploads and requests (every error in the OpenAI error shape, and
# nothing left behind on disk or in the history), path traversal in every
# spelling, 50 concurrent uploads, a server killed in the middle of a job and
# restarted, cancel and delete of queued and running jobs, the API key (flag
# and environment), /health, /metrics, unknown routes and methods, a clean
# stop on SIGTERM, and the official `openai` npm client against /v1
# (tests/api/openai/test.mjs).
#
# Run from the repository root; $HARK_BIN is the binary (default build/hark),
# shared data as in lib.sh. Prints "PASS name" / "FAIL name" per check (the
# reasons indented below) and ends with "N passed, N failed"; exits non-zero
# if anything failed. Uses curl, jq and, for the openai client, node and npm.
# With HARK_API_PG set (tests/api/test_api_pg.sh), every server runs on a
# PostgreSQL database of its own and the names begin with "pg_".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
LABEL=${HARK_API_PG:+pg_}

passed=0
failed=0

t() {
    local t0=$SECONDS
    if "$2"; then
        echo "PASS $LABEL$1"
        passed=$((passed + 1))
    else
        echo "FAIL $LABEL$1"
        failed=$((failed + 1))
    fi
    [ $((SECONDS - t0)) -lt 3 ] || say "($1 took $((SECONDS - t0)) s)"
}

say() { echo "  $*"; }

url=

body() { head -c "${1:-400}" "$API_TMP/body" | tr -d '\000' | tr '\n' ' '; }

# want STATUS [ERROR CODE]: the last response had STATUS; an error status
# must carry the error shape (and the code, when given).
want() {
    if [ "$code" != "$1" ]; then
        say "$last -> $code, expected $1; body: $(body)"
        return 1
    fi
    if [ "$1" -ge 400 ]; then
        error_shape "$1" || return 1
        if [ -n "${2:-}" ] && ! jq -e --arg c "$2" '.error.code == $c' "$API_TMP/body" >/dev/null 2>&1; then
            say "$last -> $code with error.code $(jq -c .error.code "$API_TMP/body" 2>/dev/null), expected \"$2\""
            return 1
        fi
    fi
    return 0
}

# error_shape STATUS: the body is {"error":{"message","type","param","code"}}
# with the type for the status class.
error_shape() {
    local type=invalid_request_error
    [ "$1" -ge 500 ] && type=server_error
    jq -e --arg t "$type" '.error | type == "object" and (.message | type == "string" and length > 0) and
        .type == $t and has("param") and has("code") and
        (.param == null or (.param | type == "string")) and (.code == null or (.code | type == "string"))' \
        "$API_TMP/body" >/dev/null 2>&1 && return 0
    say "$last -> $code: error body not in the {error:{message,type=$type,param,code}} shape: $(body)"
    return 1
}

# jqb FILTER [JQ ARGS...]: the body satisfies the jq filter.
jqb() {
    local f=$1
    shift
    jq -e "$@" "$f" "$API_TMP/body" >/dev/null 2>&1 && return 0
    say "$last: body fails the check $f"
    say "body: $(body 600)"
    return 1
}

# content_type WANT: the Content-Type header of the last response.
content_type() {
    local got
    got=$(hdr Content-Type)
    [ "$got" = "$1" ] && return 0
    say "$last: Content-Type '$got', expected '$1'"
    return 1
}

# json_type: the last response was JSON (a charset parameter is optional).
json_type() {
    [[ $(hdr Content-Type) =~ ^application/json(\;.*)?$ ]] && return 0
    say "$last: Content-Type '$(hdr Content-Type)', expected application/json"
    return 1
}

# upload FILE [CURL -F ARGS...]: POST /upload with the file as field "file".
upload() {
    local f=$1
    shift
    call POST /upload -F "file=@$f" "$@"
}

# entries DATA: the number of things under DATA/db plus DATA/tmp.
entries() { find "$1/db" "$1/tmp" -mindepth 1 2>/dev/null | wc -l; }

total_uploads() {
    req GET "$url/uploads"
    jq -r .total "$API_TMP/body" 2>/dev/null
}

# wait_status ID STATUS SECONDS: polls GET /uploads/ID until its status is
# STATUS; fails on another final state or when the time is up.
wait_status() {
    local id=$1 st=$2 secs=$3 i s
    for ((i = 0; i < secs * 10; i++)); do
        req GET "$url/uploads/$id"
        s=$(jq -r .status "$API_TMP/body" 2>/dev/null)
        [ "$s" = "$st" ] && return 0
        case $s in
            done | failed | canceled)
                say "upload $id ended '$s' while waiting for '$st': $(body)"
                return 1 ;;
        esac
        sleep 0.1
    done
    say "upload $id not '$st' after $secs s (last: $(body 300))"
    return 1
}

ISO='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'
UUID='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'

MP4=$MEDIA/jfk.mp4
MP3=$MEDIA/jfk.mp3
WAV=$AUDIO/jfk.wav
LONG=$AUDIO/hifitts_concat_75s.wav
MP4_ID=
MP4_JOB=
MP3_ID=

# ------------------------------------------------------------ the flow

test_health() {
    call GET /health
    want 200 && json_type && jqb '.status == "ok"'
}

test_upload() {
    local sha size
    sha=$(sha256sum "$MP4" | cut -d' ' -f1)
    size=$(stat -c %s "$MP4")
    upload "$MP4"
    want 201 || return 1
    MP4_ID=$(jq -r .id "$API_TMP/body")
    jqb '(.id | test($uuid)) and .filename == "jfk.mp4" and .location == "/\(.id)/jfk.mp4" and
        .size == $size and .sha256 == $sha and .content_type == "video/mp4" and
        (.duration_s | type == "number" and . > 10.5 and . < 12.5) and .model == $model and
        .model_ran == false and (.upload_date | test($iso)) and .status == "uploaded" and
        .progress == 0 and .job_id == null and (has("queue_position") | not) and (has("error") | not)' \
        --arg uuid "$UUID" --argjson size "$size" --arg sha "$sha" --arg model "$MODEL" --arg iso "$ISO" || return 1
    [ -f "$A_DATA/db/$MP4_ID/jfk.mp4" ] && cmp -s "$A_DATA/db/$MP4_ID/jfk.mp4" "$MP4" ||
        { say "the stored file $A_DATA/db/$MP4_ID/jfk.mp4 is missing or differs"; return 1; }
}

test_uploads_list() {
    call GET /uploads
    want 200 && jqb '.total == 1 and .limit == 100 and .offset == 0 and .next_offset == null and
        (.uploads | length == 1) and .uploads[0].id == $id and .uploads[0].status == "uploaded" and
        .uploads[0].sha256 == $sha' --arg id "$MP4_ID" --arg sha "$(sha256sum "$MP4" | cut -d' ' -f1)" || return 1
    call GET "/uploads/$MP4_ID"
    want 200 && jqb '.id == $id and .filename == "jfk.mp4" and .status == "uploaded"' --arg id "$MP4_ID"
}

test_results_not_ready() {
    call GET "/results/$MP4_ID"
    want 404 not_ready
}

test_model_queued() {
    call POST /model -H 'Content-Type: application/json' -d "{\"id\":\"$MP4_ID\"}"
    want 202 || return 1
    MP4_JOB=$(jq -r .job_id "$API_TMP/body")
    # The worker may have taken the job already (then it is running); a
    # queued answer carries its place.
    jqb '.id == $id and (.job_id | type == "number" and . >= 1) and .model_ran == false and
        ((.status == "queued" and (.queue_position | type == "number" and . >= 1)) or
         (.status == "running" and (has("queue_position") | not)))' --arg id "$MP4_ID" || return 1
    [ "$(jq -r .status "$API_TMP/body")" = queued ] || say "(note: the 202 answer says '$(jq -r .status "$API_TMP/body")', not 'queued')"
}

test_job_done() {
    wait_status "$MP4_ID" done $((60 * SLOW))
}

test_job_record() {
    call GET "/jobs/$MP4_JOB"
    want 200 && jqb '.id == $job and .upload_id == $id and .model == $model and .task == "transcribe" and
        .state == "done" and .progress == 100 and .attempts == 1 and (.created | test($iso)) and
        (.started | test($iso)) and (.finished | test($iso)) and (.worker | type == "string") and
        has("language") and has("error") and .created <= .started and .started <= .finished' \
        --argjson job "$MP4_JOB" --arg id "$MP4_ID" --arg model "$MODEL" --arg iso "$ISO"
}

test_metadata_after() {
    call GET "/uploads/$MP4_ID"
    want 200 && jqb '.status == "done" and .model_ran == true and .progress == 100 and .job_id == $job and
        (.time | type == "number" and . > 0) and (.model_date | test($iso)) and .model_date >= .upload_date and
        .language == "en" and .results == "/results/\(.id)" and .model == $model and
        (has("queue_position") | not)' --argjson job "$MP4_JOB" --arg iso "$ISO" --arg model "$MODEL"
}

test_results_json() {
    call GET "/results/$MP4_ID"
    want 200 && content_type "application/json; charset=utf-8" || return 1
    cp "$API_TMP/body" "$API_TMP/results.json"
    jqb '.task == "transcribe" and .language == "en" and (.duration | . > 10.5 and . < 12.5) and
        (.text | type == "string") and (.segments | length > 0) and
        all(.segments[]; (.id | type == "number") and (.seek | type == "number") and
            (.start | type == "number") and (.end | type == "number") and .start <= .end and
            (.text | type == "string") and (.tokens | length > 0) and (.temperature | type == "number") and
            (.avg_logprob | type == "number") and (.compression_ratio | type == "number") and
            (.no_speech_prob | type == "number") and
            ([.tokens[]] == [.token_details[].id]) and
            all(.token_details[]; (.p | type == "number" and . >= 0 and . <= 1)))' || return 1
    # The stored file is the same document.
    call GET "/$MP4_ID/results.json"
    want 200 && cmp -s "$API_TMP/body" "$API_TMP/results.json" ||
        { say "GET /$MP4_ID/results.json differs from GET /results/$MP4_ID"; return 1; }
    cmp -s "$A_DATA/db/$MP4_ID/results.json" "$API_TMP/results.json" ||
        { say "<data>/db/$MP4_ID/results.json differs from GET /results/$MP4_ID"; return 1; }
    call GET "/results/$MP4_ID?format=json"
    want 200 && cmp -s "$API_TMP/body" "$API_TMP/results.json" ||
        { say "format=json differs from the default"; return 1; }
}

test_results_srt() {
    call GET "/results/$MP4_ID?format=srt"
    want 200 && content_type "application/x-subrip; charset=utf-8" || return 1
    grep -q . "$API_TMP/body" && [ "$(head -n1 "$API_TMP/body" | tr -d '\r')" = 1 ] &&
        grep -Eq '^[0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3} --> [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3}$' "$API_TMP/body" &&
        ! grep -- '-->' "$API_TMP/body" | grep -vEq '^[0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3} --> [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3}$' ||
        { say "not SRT: $(body 300)"; return 1; }
    cmp -s "$API_TMP/body" "$A_DATA/db/$MP4_ID/results.srt" || { say "differs from results.srt on disk"; return 1; }
}

test_results_vtt() {
    call GET "/results/$MP4_ID?format=vtt"
    want 200 && content_type "text/vtt; charset=utf-8" || return 1
    [ "$(head -n1 "$API_TMP/body")" = WEBVTT ] &&
        grep -Eq '^([0-9]{2}:)?[0-9]{2}:[0-9]{2}\.[0-9]{3} --> ([0-9]{2}:)?[0-9]{2}:[0-9]{2}\.[0-9]{3}' "$API_TMP/body" ||
        { say "not WebVTT: $(body 300)"; return 1; }
    cmp -s "$API_TMP/body" "$A_DATA/db/$MP4_ID/results.vtt" || { say "differs from results.vtt on disk"; return 1; }
}

test_results_txt() {
    local want_text
    call GET "/results/$MP4_ID?format=txt"
    want 200 && content_type "text/plain; charset=utf-8" || return 1
    grep -q '[^[:space:]]' "$API_TMP/body" && ! grep -q -- '-->' "$API_TMP/body" ||
        { say "not plain text: $(body 300)"; return 1; }
    # Its words are the segments' words.
    want_text=$(jq -r '[.segments[].text] | join(" ")' "$API_TMP/results.json" | tr -s '[:space:]' ' ' | sed 's/^ //; s/ $//')
    [ "$(tr -s '[:space:]' ' ' <"$API_TMP/body" | sed 's/^ //; s/ $//')" = "$want_text" ] ||
        { say "txt '$(body 200)' is not the segments' text '$want_text'"; return 1; }
}

test_results_download() {
    local f cd
    for f in json srt vtt txt; do
        call GET "/results/$MP4_ID?format=$f&download=1"
        want 200 || return 1
        cd=$(hdr Content-Disposition)
        [[ $cd == attachment* ]] || { say "$last: Content-Disposition '$cd'"; return 1; }
    done
    call GET "/results/$MP4_ID?format=srt"
    [[ $(hdr Content-Disposition) != attachment* ]] || { say "$last: attachment without download=1"; return 1; }
}

test_results_bad_format() {
    call GET "/results/$MP4_ID?format=xml"
    want 400
}

test_model_wait() {
    upload "$MP3"
    want 201 || return 1
    MP3_ID=$(jq -r .id "$API_TMP/body")
    jqb '.content_type == "audio/mpeg" and .filename == "jfk.mp3"' || return 1
    call POST /model -H 'Content-Type: application/json' -d "{\"id\":\"$MP3_ID\",\"wait\":true}"
    want 200 && jqb '.id == $id and .status == "done" and .model_ran == true and .progress == 100 and
        (.time | . > 0) and .results == "/results/\($id)"' --arg id "$MP3_ID" || return 1
    call GET "/results/$MP3_ID?format=srt"
    want 200
}

# Media that uploads (a WAV header and no samples) but decodes to nothing:
# the request that waited gets the client's error, as the upload would
# have, naming the file as the client did rather than by a server path.
test_model_wait_no_audio() {
    local id
    wav_header "$API_TMP/header_only.wav" 32044 || return 1
    upload "$API_TMP/header_only.wav"
    want 201 || return 1
    id=$(jq -r .id "$API_TMP/body")
    call POST /model -H 'Content-Type: application/json' -d "{\"id\":\"$id\",\"wait\":true}"
    want 415 unsupported_media && jqb '.status == "failed" and
        (.error.message | test("header_only.wav: no decodable audio")) and
        (.error.message | test("/db/") | not)' || return 1
    call DELETE "/uploads/$id"
    want 200
}

test_duplicate() {
    local n
    n=$(total_uploads)
    upload "$MP4" -F "model=$MODEL"
    want 409 duplicate && jqb '.id == $id and .filename == "jfk.mp4" and .status == "done" and .model_ran == true and
        .sha256 == $sha' --arg id "$MP4_ID" --arg sha "$(sha256sum "$MP4" | cut -d' ' -f1)" || return 1
    # Under another name it is still the same bytes.
    call POST /upload -F "file=@$MP4;filename=copy.mp4"
    want 409 duplicate && jqb '.id == $id' --arg id "$MP4_ID" || return 1
    [ "$(total_uploads)" = "$n" ] || { say "the history grew from $n to $(total_uploads)"; return 1; }
    [ ! -e "$A_DATA/db/$MP4_ID/copy.mp4" ] || { say "a duplicate left a file"; return 1; }
    [ "$(find "$A_DATA/tmp" -mindepth 1 | wc -l)" = 0 ] || { say "a duplicate left files in tmp"; return 1; }
}

test_filename_sanitized() {
    local i name want_name n=0 ok=0
    for name in '../../evil name.wav|evil_name.wav' '.hidden.wav|hidden.wav' 'results.json|media-results.json' \
        'caf'$'\xc3\xa9''.wav|caf__.wav' '...|media'; do
        want_name=${name#*|}
        name=${name%|*}
        n=$((n + 1))
        head -c $((100000 + n * 1000)) "$WAV" >"$API_TMP/san.wav"
        call POST /upload -F "file=@$API_TMP/san.wav;filename=$name"
        want 201 || { ok=1; continue; }
        i=$(jq -r .id "$API_TMP/body")
        if ! jq -e --arg f "$want_name" '.filename == $f and .location == "/\(.id)/\($f)"' "$API_TMP/body" >/dev/null; then
            say "filename '$name' stored as $(jq -c '[.filename, .location]' "$API_TMP/body"), expected '$want_name'"
            ok=1
        elif [ ! -f "$A_DATA/db/$i/$want_name" ]; then
            say "no file $A_DATA/db/$i/$want_name"
            ok=1
        fi
        call DELETE "/uploads/$i"
    done
    return $ok
}

# ---------------------------------------------------------- byte ranges

# range_ok HEADER FIRST LAST: a 206 with bytes FIRST..LAST of the mp4.
range_ok() {
    local size
    size=$(stat -c %s "$MP4")
    call GET "/$MP4_ID/jfk.mp4" -H "Range: $1"
    want 206 || return 1
    tail -c +$(($2 + 1)) "$MP4" | head -c $(($3 - $2 + 1)) >"$API_TMP/expect"
    cmp -s "$API_TMP/body" "$API_TMP/expect" ||
        { say "Range: $1 -> $(stat -c %s "$API_TMP/body") bytes that are not bytes $2-$3 of the file"; return 1; }
    [ "$(hdr Content-Range)" = "bytes $2-$3/$size" ] ||
        { say "Range: $1 -> Content-Range '$(hdr Content-Range)', expected 'bytes $2-$3/$size'"; return 1; }
    [ "$(hdr Content-Length)" = $(($3 - $2 + 1)) ] ||
        { say "Range: $1 -> Content-Length '$(hdr Content-Length)'"; return 1; }
    [ "$(hdr Content-Type)" = video/mp4 ] || { say "Range: $1 -> Content-Type '$(hdr Content-Type)'"; return 1; }
}

# range_416 HEADER: unsatisfiable.
range_416() {
    call GET "/$MP4_ID/jfk.mp4" -H "Range: $1"
    [ "$code" = 416 ] || { say "Range: $1 -> $code, expected 416; body: $(body 100)"; return 1; }
    [ "$(hdr Content-Range)" = "bytes */$(stat -c %s "$MP4")" ] ||
        { say "Range: $1 -> 416 with Content-Range '$(hdr Content-Range)'"; return 1; }
}

# range_ignored HEADER: served whole, as if there were no Range header.
range_ignored() {
    call GET "/$MP4_ID/jfk.mp4" -H "Range: $1"
    [ "$code" = 200 ] && cmp -s "$API_TMP/body" "$MP4" ||
        { say "Range: $1 -> $code with $(stat -c %s "$API_TMP/body") bytes, expected 200 and the whole file"; return 1; }
}

test_file_whole() {
    call GET "/$MP4_ID/jfk.mp4"
    want 200 && cmp -s "$API_TMP/body" "$MP4" || { say "body is not the file"; return 1; }
    [ "$(hdr Accept-Ranges)" = bytes ] || { say "Accept-Ranges '$(hdr Accept-Ranges)'"; return 1; }
    content_type video/mp4 || return 1
    [ "$(hdr Content-Length)" = "$(stat -c %s "$MP4")" ] || { say "Content-Length '$(hdr Content-Length)'"; return 1; }
}

test_file_head() {
    local size
    size=$(stat -c %s "$MP4")
    call HEAD "/$MP4_ID/jfk.mp4" -I
    [ "$code" = 200 ] || { say "HEAD -> $code"; return 1; }
    [ "$(hdr Content-Length)" = "$size" ] && [ "$(hdr Accept-Ranges)" = bytes ] && [ "$(hdr Content-Type)" = video/mp4 ] ||
        { say "HEAD headers: $(tr '\r\n' '  ' <"$API_TMP/headers")"; return 1; }
    call HEAD "/$MP4_ID/jfk.mp4" -I -H 'Range: bytes=0-99'
    [ "$code" = 206 ] && [ "$(hdr Content-Range)" = "bytes 0-99/$size" ] ||
        { say "HEAD with Range -> $code, Content-Range '$(hdr Content-Range)'"; return 1; }
}

test_range_first() {
    range_ok bytes=0-99 0 99 || return 1
    head -c 100 "$MP4" | cmp -s - "$API_TMP/body"
}
test_range_middle() { range_ok bytes=1000-1999 1000 1999 && range_ok bytes=7-7 7 7; }
test_range_suffix() {
    local size
    size=$(stat -c %s "$MP4")
    range_ok bytes=-500 $((size - 500)) $((size - 1)) || return 1
    # A suffix longer than the file is the whole file.
    range_ok bytes=-99999999 0 $((size - 1))
}
test_range_open() {
    local size
    size=$(stat -c %s "$MP4")
    range_ok bytes=1000- 1000 $((size - 1)) && range_ok bytes=$((size - 1))- $((size - 1)) $((size - 1))
}
test_range_multidigit() {
    local size
    size=$(stat -c %s "$MP4")
    range_ok bytes=123456-234567 123456 234567 || return 1
    # A last byte past the end is clamped to the end.
    range_ok bytes=300000-999999999 300000 $((size - 1))
}
test_range_unsatisfiable() {
    range_416 bytes=999999999- && range_416 "bytes=$(stat -c %s "$MP4")-" && range_416 bytes=-0
}
# RFC 9110 14.2: a Range header the server cannot parse (a syntax error, an
# unknown unit, last-pos below first-pos which 14.1.1 calls invalid) is
# ignored: 200 with the whole file.
test_range_invalid() {
    range_ignored bytes=abc && range_ignored 'bytes=' && range_ignored 'items=0-10' &&
        range_ignored 'bytes=5-x' && range_ignored 'bytes=500-100'
}

# ------------------------------------------------------------ bad inputs

test_upload_no_file() {
    local before
    before=$(entries "$A_DATA")
    call POST /upload -F "model=$MODEL"
    want 400 || return 1
    head -c 2000 "$WAV" >"$API_TMP/small.wav"
    call POST /upload -F "notfile=@$API_TMP/small.wav"
    want 400 || return 1
    # A large part under another name: the answer must still arrive.
    call POST /upload -F "notfile=@$WAV"
    want 400 || return 1
    call POST /upload -H 'Content-Type: application/json' -d '{"file":"x"}'
    [ "$code" = 400 ] || [ "$code" = 415 ] || { say "$last (json body) -> $code, expected 400 or 415"; return 1; }
    error_shape "$code" || return 1
    [ "$(entries "$A_DATA")" = "$before" ] || { say "files left behind"; return 1; }
}

test_upload_empty() {
    local before n
    before=$(entries "$A_DATA")
    n=$(total_uploads)
    : >"$API_TMP/empty.wav"
    upload "$API_TMP/empty.wav"
    want 400 || return 1
    [ "$(entries "$A_DATA")" = "$before" ] && [ "$(total_uploads)" = "$n" ] || { say "something left behind"; return 1; }
}

test_upload_text() {
    local before n
    before=$(entries "$A_DATA")
    n=$(total_uploads)
    for i in $(seq 1 200); do echo "line $i of a plain text file that no demuxer takes for audio"; done >"$API_TMP/notes.wav"
    upload "$API_TMP/notes.wav"
    want 415 unsupported_media || return 1
    # The reason is FFmpeg's, without the server's own path to the file.
    jqb '(.error.message | startswith("unsupported media: ")) and (.error.message | contains($d) | not)' \
        --arg d "$A_DATA" || return 1
    cp "$API_TMP/notes.wav" "$API_TMP/notes.txt"
    upload "$API_TMP/notes.txt"
    want 415 unsupported_media || return 1
    [ "$(entries "$A_DATA")" = "$before" ] || { say "files left in db or tmp: $(find "$A_DATA/db" "$A_DATA/tmp" -newer "$API_TMP/notes.wav")"; return 1; }
    [ "$(total_uploads)" = "$n" ] || { say "a row was added"; return 1; }
}

test_upload_unknown_model() {
    local before
    before=$(entries "$A_DATA")
    head -c 120000 "$WAV" >"$API_TMP/m.wav"
    upload "$API_TMP/m.wav" -F model=no-such-model
    want 404 model_not_found && [ "$(entries "$A_DATA")" = "$before" ] || { say "files left behind"; return 1; }
    # A path to a real model file is not a model name.
    upload "$API_TMP/m.wav" -F "model=$MODELS/$MODEL.bin"
    want 404 model_not_found && [ "$(entries "$A_DATA")" = "$before" ] || { say "files left behind"; return 1; }
}

model_req() { call POST /model -H 'Content-Type: application/json' -d "$1"; }

test_model_bad_json() {
    model_req '{"id": '
    want 400 || return 1
    model_req 'not json at all'
    want 400 || return 1
    model_req '{}'
    want 400 || return 1
    model_req '{"id": 42}'
    want 400 || return 1
    model_req '[1,2]'
    want 400
}

test_model_unknown_id() {
    model_req '{"id":"00000000-0000-4000-8000-000000000000"}'
    want 404 || return 1
    model_req '{"id":"nothing-like-a-uuid"}'
    want 404
}

test_model_unknown_model() {
    model_req "{\"id\":\"$MP4_ID\",\"model\":\"no-such-model\"}"
    want 404 model_not_found || return 1
    jqb '(.error.message | contains("rt-mini.en-f16")) and (.error.message | contains("rt-tiny.en-f16"))' || return 1
    # Only names the models folder lists: no path, however it is spelled.
    local m
    for m in "$MODELS/$MODEL.bin" "$MODELS/ggml-$MODEL.bin" "../$(basename "$MODELS")/$MODEL" "./$MODEL" \
        "$MODEL/" ".$MODEL"; do
        model_req "$(jq -nc --arg id "$MP4_ID" --arg m "$m" '{id: $id, model: $m}')"
        want 404 model_not_found || return 1
        jqb '.error.param == "model"' || return 1
    done
}

# What a model cannot do is the client's to fix: a 400 naming the field,
# in words, never a 5xx or an internal name.
test_model_cannot() {
    model_req "{\"id\":\"$MP4_ID\",\"model\":\"rt-mini.en-f16\",\"task\":\"translate\"}"
    want 400 invalid_request || return 1
    jqb '.error.param == "task" and (.error.message | test("English-only")) and
        (.error.message | test("hark_") | not)' || return 1
    model_req "{\"id\":\"$MP4_ID\",\"model\":\"rt-mini.en-f16\",\"language\":\"de\"}"
    want 400 invalid_request || return 1
    jqb '.error.param == "language"' || return 1
    head -c 64000 "$WAV" >"$API_TMP/v1.wav"
    call POST /v1/audio/translations -F "file=@$API_TMP/v1.wav" -F model=rt-mini.en-f16
    want 400 invalid_request || return 1
    jqb '.error.param == "task" and (.error.message | test("hark_") | not)' || return 1
    call POST /v1/audio/transcriptions -F "file=@$API_TMP/v1.wav" -F model=rt-mini.en-f16 -F language=fr
    want 400 invalid_request || return 1
    call POST /v1/audio/transcriptions -F "file=@$API_TMP/v1.wav" -F "model=$MODELS/rt-mini-f16.bin"
    want 404 model_not_found || return 1
    # A client's bytes that are not UTF-8, quoted in the reason: still an
    # error object, the bytes made '?'.
    call POST /v1/audio/transcriptions -F "file=@$API_TMP/v1.wav" -F "language=$(printf 'x\377y')"
    want 400 invalid_value || return 1
    jqb '.error.param == "language" and (.error.message | contains("x?y"))'
}

test_model_bad_task() {
    model_req "{\"id\":\"$MP4_ID\",\"task\":\"summarize\"}"
    want 400 || return 1
    model_req "{\"id\":\"$MP4_ID\",\"language\":\"klingon\"}"
    want 400
}

test_model_bad_path() {
    model_req "{\"id\":\"$MP4_ID\",\"path\":\"other.mp4\"}"
    want 404 || return 1
    model_req "{\"id\":\"$MP4_ID\",\"path\":\"/$MP3_ID/jfk.mp3\"}"
    want 404 || return 1
    model_req "{\"id\":\"$MP3_ID\",\"path\":\"/$MP3_ID/jfk.mp3\",\"wait\":true}"
    want 200 && jqb '.status == "done"'
}

test_not_found_ids() {
    local u=00000000-0000-4000-8000-000000000000
    call GET "/uploads/$u"; want 404 || return 1
    call DELETE "/uploads/$u"; want 404 || return 1
    call GET "/results/$u"; want 404 || return 1
    call GET "/$u/jfk.mp4"; want 404 || return 1
    call GET "/$MP4_ID/nope.mp4"; want 404 || return 1
    call GET /jobs/999999; want 404 || return 1
    call POST /jobs/999999/cancel; want 404 || return 1
    call POST "/jobs/$u/cancel"; want 404 || return 1
    # Finished: nothing to cancel.
    call POST "/jobs/$MP4_ID/cancel"; want 409 not_active
}

test_uploads_paging() {
    local n
    n=$(total_uploads)
    call GET '/uploads?limit=1'
    want 200 && jqb '(.uploads | length == 1) and .limit == 1 and .offset == 0 and .next_offset == 1 and .total == $n' \
        --argjson n "$n" || return 1
    # Newest first.
    jqb '.uploads[0].id == $id' --arg id "$MP3_ID" || return 1
    call GET "/uploads?limit=1&offset=$((n - 1))"
    want 200 && jqb '(.uploads | length == 1) and .next_offset == null and .uploads[0].id == $id' --arg id "$MP4_ID" || return 1
    call GET '/uploads?limit=abc'; want 400 || return 1
    call GET '/uploads?offset=-1'; want 400 || return 1
    call GET '/uploads?limit=-5'; want 400
}

# --------------------------------------------------------- traversal

# no_leak EXPECTED-FILE PATH...: each path answers 404 or 400, never the
# file's content (nor "root:" of /etc/passwd).
no_leak() {
    local secret=$1 p ok=0
    shift
    for p in "$@"; do
        call GET "$p"
        if [ "$code" != 404 ] && [ "$code" != 400 ]; then
            say "GET $p -> $code, expected 404 or 400; body: $(body 80)"
            ok=1
        elif grep -aq 'SQLite format 3' "$API_TMP/body" || grep -aq '^root:' "$API_TMP/body" ||
            { [ -s "$API_TMP/body" ] && cmp -s "$API_TMP/body" "$secret"; }; then
            say "GET $p -> $code leaked a file outside <data>/db"
            ok=1
        fi
    done
    return $ok
}

test_traversal_dotdot() {
    no_leak "$A_DATA/hark.db" "/$MP4_ID/../hark.db" "/$MP4_ID/../../hark.db" "/../hark.db" "/../../etc/passwd" \
        "/$MP4_ID/../../../../../../etc/passwd" "/../$MP4_ID/jfk.mp4/../../hark.db" "/$MP4_ID/.." "/$MP4_ID/." \
        "/./hark.db" "/db/hark.db" "/$MP4_ID/..\\..\\hark.db"
}

test_traversal_encoded() {
    no_leak "$A_DATA/hark.db" "/%2e%2e/hark.db" "/%2E%2E/hark.db" "/$MP4_ID/%2e%2e%2fhark.db" \
        "/$MP4_ID/..%2fhark.db" "/$MP4_ID/..%2f..%2fetc%2fpasswd" "/$MP4_ID/%2e%2e%2f%2e%2e%2fhark.db" \
        "/$MP4_ID/%2e%2e%2F%2e%2e%2F%2e%2e%2F%2e%2e%2Fetc%2Fpasswd" "/%2e%2e%2f%2e%2e/etc%2fpasswd" \
        "/$MP4_ID%2f..%2f..%2fhark.db/x" "/$MP4_ID/%252e%252e%252fhark.db" "/$MP4_ID/..%5chark.db" \
        "/%2e%2e/db/../hark.db"
}

test_traversal_absolute() {
    no_leak /etc/passwd "//etc/passwd" "/$MP4_ID//etc/passwd" "/$MP4_ID/%2fetc%2fpasswd" \
        "/%2fetc/passwd" "/$MP4_ID/%2F$(printf %s "$A_DATA" | sed 's|/|%2F|g')%2Fhark.db" \
        "/$(printf %s "$A_DATA/db" | sed 's|/|%2F|g')/hark.db"
}

test_traversal_nul() {
    no_leak "$A_DATA/hark.db" "/$MP4_ID/jfk.mp4%00" "/$MP4_ID/jfk.mp4%00.txt" "/$MP4_ID/%00" \
        "/$MP4_ID/%00/../../hark.db" "/%00/hark.db" "/$MP4_ID%00/jfk.mp4"
}

test_traversal_symlink() {
    local ok=0
    ln -s "$A_DATA/hark.db" "$A_DATA/db/$MP4_ID/link.db"
    ln -s /etc/passwd "$A_DATA/db/$MP4_ID/passwd"
    ln -s .. "$A_DATA/db/$MP4_ID/up"
    no_leak "$A_DATA/hark.db" "/$MP4_ID/link.db" "/$MP4_ID/passwd" "/$MP4_ID/up/hark.db" || ok=1
    rm -f "$A_DATA/db/$MP4_ID/link.db" "$A_DATA/db/$MP4_ID/passwd" "$A_DATA/db/$MP4_ID/up"
    return $ok
}

# An upload cut off in the middle leaves nothing behind.
test_interrupted_upload() {
    local before n pid i seen=0
    before=$(entries "$A_DATA")
    n=$(total_uploads)
    wav_header "$API_TMP/big.wav" $((64 * 1024 * 1024))
    truncate -s $((64 * 1024 * 1024)) "$API_TMP/big.wav"
    curl -s -o /dev/null --limit-rate 4M -F "file=@$API_TMP/big.wav" "$url/upload" &
    pid=$!
    track "$pid"
    for ((i = 0; i < 30 * SLOW; i++)); do
        sleep 0.1
        [ "$(find "$A_DATA/tmp" -mindepth 1 -type f -size +1k | wc -l)" -gt 0 ] && { seen=1; break; }
    done
    sleep 0.5
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    untrack "$pid"
    [ "$seen" = 1 ] || say "(no file in <data>/tmp was seen while the body arrived)"
    for ((i = 0; i < 100 * SLOW; i++)); do
        [ "$(entries "$A_DATA")" = "$before" ] && break
        sleep 0.1
    done
    [ "$(entries "$A_DATA")" = "$before" ] ||
        { say "left behind $((10 * SLOW)) s after the client died: $(find "$A_DATA/tmp" "$A_DATA/db" -newer "$API_TMP/big.wav")"; return 1; }
    [ "$(total_uploads)" = "$n" ] || { say "a row was added"; return 1; }
    call GET /health
    want 200
}

# -------------------------------------------------------- routes, errors

test_unknown_route() {
    call GET /no/such/route/here; want 404 || return 1
    call GET /nothing; want 404 || return 1
    call POST /v2/audio/transcriptions; want 404
}

test_wrong_method() {
    call GET /upload; want 405 || return 1
    call DELETE /upload; want 405 || return 1
    call GET /model; want 405 || return 1
    call PUT /uploads; want 405 || return 1
    call POST /health; want 405 || return 1
    call POST "/uploads/$MP4_ID"; want 405 || return 1
    call GET "/jobs/$MP4_JOB/cancel"; want 405 || return 1
    call GET /v1/audio/transcriptions; want 405 || return 1
    call DELETE "/$MP4_ID/jfk.mp4"; want 405
}

# A sample of errors, each checked field by field.
test_error_shapes() {
    local p ok=0
    for p in "GET /uploads/none" "GET /results/none" "POST /model" "GET /nope/a/b/c" "DELETE /upload" "GET /uploads?limit=x"; do
        call ${p% *} "${p#* }" -H 'Content-Type: application/json' -d ''
        [ "$code" -ge 400 ] || { say "$p -> $code"; ok=1; continue; }
        error_shape "$code" || ok=1
        json_type || ok=1
    done
    return $ok
}

test_metrics() {
    call GET /metrics
    want 200 || return 1
    [[ $(hdr Content-Type) == text/plain* ]] || { say "Content-Type '$(hdr Content-Type)'"; return 1; }
    grep -Eq '^hark_http_requests_total\{[^}]*route="[^"]*"[^}]*\} [0-9]+(\.[0-9]+)?$' "$API_TMP/body" &&
        grep -Eq '^hark_http_requests_total\{[^}]*method="GET"' "$API_TMP/body" &&
        grep -Eq '^hark_http_requests_total\{[^}]*status="201"' "$API_TMP/body" &&
        grep -Eq '^hark_queue_depth [0-9]+$' "$API_TMP/body" ||
        { say "no hark_http_requests_total{route,method,status} / hark_queue_depth lines:"; head -20 "$API_TMP/body" | sed 's/^/    /'; return 1; }
    local m
    for m in hark_jobs_running hark_jobs_done_total hark_jobs_failed_total hark_jobs_canceled_total \
        hark_audio_seconds_total hark_model_seconds_total hark_realtime_factor hark_uploads hark_upload_bytes_total; do
        grep -Eq "^$m(\{[^}]*\})? " "$API_TMP/body" || { say "no $m sample"; return 1; }
    done
    # Prometheus text format 0.0.4: comments are HELP/TYPE (or free text),
    # samples are name{labels} value; every TYPE'd family is declared once.
    awk '
        /^#/ {
            if ($2 == "TYPE") {
                if (NF != 4 || $4 !~ /^(counter|gauge|histogram|summary|untyped)$/) { print "bad TYPE: " $0; bad = 1 }
                if (seen[$3]++) { print "TYPE twice: " $3; bad = 1 }
            }
            next
        }
        /^$/ { next }
        !/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+]?([0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?|\.[0-9]+|NaN|\+Inf|-Inf)( -?[0-9]+)?$/ {
            print "bad sample: " $0; bad = 1
        }
        END { exit bad }' "$API_TMP/body" | head -5 | sed 's/^/  /'
    [ "${PIPESTATUS[0]}" = 0 ] || return 1
    # The counter moves.
    local before after
    before=$(awk '/^hark_http_requests_total\{/ { s += $NF } END { print s + 0 }' "$API_TMP/body")
    call GET /health
    call GET /metrics
    after=$(awk '/^hark_http_requests_total\{/ { s += $NF } END { print s + 0 }' "$API_TMP/body")
    [ "$after" -gt "$before" ] || { say "hark_http_requests_total did not grow ($before -> $after)"; return 1; }
    grep -Eq '^hark_uploads [1-9]' "$API_TMP/body" || { say "hark_uploads: $(grep '^hark_uploads ' "$API_TMP/body")"; return 1; }
}

test_delete() {
    local n
    n=$(total_uploads)
    call DELETE "/uploads/$MP3_ID"
    want 200 && jqb '.id == $id and .deleted == true' --arg id "$MP3_ID" || return 1
    [ ! -e "$A_DATA/db/$MP3_ID" ] || { say "<data>/db/$MP3_ID still exists: $(ls -A "$A_DATA/db/$MP3_ID")"; return 1; }
    call GET "/uploads/$MP3_ID"; want 404 || return 1
    call GET "/results/$MP3_ID"; want 404 || return 1
    call GET "/$MP3_ID/jfk.mp3"; want 404 || return 1
    call DELETE "/uploads/$MP3_ID"; want 404 || return 1
    [ "$(total_uploads)" = $((n - 1)) ] || { say "total $(total_uploads), expected $((n - 1))"; return 1; }
    # The same bytes can be uploaded again, as a new entry.
    upload "$MP3"
    want 201 && jqb '.id != $id and .model_ran == false' --arg id "$MP3_ID" || return 1
    MP3_ID=$(jq -r .id "$API_TMP/body")
}

test_auth_off() {
    call GET /uploads; want 200 || return 1
    call GET /uploads -H 'Authorization: Bearer anything'; want 200
}

# auth_check NAME KEY: server NAME needs KEY.
auth_check() {
    local u=$1_url
    url=${!u}
    call GET /uploads; want 401 invalid_api_key || return 1
    call GET /uploads -H 'Authorization: Bearer wrong-key'; want 401 invalid_api_key || return 1
    call GET /uploads -H "Authorization: Basic $2"; want 401 || return 1
    call GET /uploads -H "Authorization: Bearer $2x"; want 401 || return 1
    call GET /uploads -H "Authorization: Bearer $2"; want 200 || return 1
    call GET /metrics; want 401 || return 1
    call POST /upload -F "file=@$WAV"; want 401 || return 1
    call GET /v1/models; want 401 || return 1
    call GET /health; want 200
}

test_auth_flag() {
    local ok=0 saved=$url
    SERVER_ENV=(HARK_API_KEY=from-the-env)
    server_start C "$API_TMP/c" --api-key flag-key-1 || { SERVER_ENV=(); return 1; }
    SERVER_ENV=()
    auth_check C flag-key-1 || ok=1
    # The flag wins over the environment.
    call GET /uploads -H 'Authorization: Bearer from-the-env'
    want 401 || ok=1
    url=$saved
    return $ok
}

test_auth_env() {
    local ok=0 saved=$url
    SERVER_ENV=(HARK_API_KEY=env-key-2)
    server_start D "$API_TMP/d" || { SERVER_ENV=(); return 1; }
    SERVER_ENV=()
    auth_check D env-key-2 || ok=1
    url=$saved
    server_stop D || ok=1
    return $ok
}

test_upload_too_large() {
    local ok=0 saved=$url
    server_start B "$API_TMP/b" --max-upload-bytes 100000 || return 1
    url=$B_url
    # 352 KB: the 413 must reach the client (not a dropped connection).
    upload "$WAV"
    want 413 || ok=1
    # 2.4 MB, where curl asks "Expect: 100-continue" first.
    upload "$LONG"
    want 413 || ok=1
    [ "$(entries "$API_TMP/b")" = 0 ] || { say "left behind: $(find "$API_TMP/b/db" "$API_TMP/b/tmp" -mindepth 1)"; ok=1; }
    [ "$(total_uploads)" = 0 ] || { say "a row was added"; ok=1; }
    # Under the limit is fine.
    upload "$MP3"
    want 201 || ok=1
    url=$saved
    server_stop B || ok=1
    return $ok
}

# 50 uploads at once: 50 distinct entries, each stored byte for byte.
test_concurrent_uploads() {
    local ok=0 saved=$url i pids=() id len
    server_start F "$API_TMP/f" || return 1
    url=$F_url
    mkdir -p "$API_TMP/conc"
    for i in $(seq 0 49); do
        head -c $((40044 + i * 5000)) "$WAV" >"$API_TMP/conc/c$i.wav"
    done
    for i in $(seq 0 49); do
        curl -s --max-time $((60 * SLOW)) -o "$API_TMP/conc/r$i.json" -w '%{http_code}' \
            -F "file=@$API_TMP/conc/c$i.wav" "$url/upload" >"$API_TMP/conc/s$i" 2>/dev/null &
        pids+=($!)
        track "$!"
    done
    for i in "${pids[@]}"; do
        wait "$i"
        untrack "$i"
    done
    for i in $(seq 0 49); do
        [ "$(cat "$API_TMP/conc/s$i")" = 201 ] || { say "upload $i -> $(cat "$API_TMP/conc/s$i"): $(head -c 200 "$API_TMP/conc/r$i.json")"; ok=1; continue; }
        jq -e --arg sha "$(sha256sum "$API_TMP/conc/c$i.wav" | cut -d' ' -f1)" --argjson size "$(stat -c %s "$API_TMP/conc/c$i.wav")" \
            '.sha256 == $sha and .size == $size and .filename == "c\($ARGS.named.i).wav"' --arg i "$i" "$API_TMP/conc/r$i.json" >/dev/null ||
            { say "upload $i: metadata does not match the file: $(head -c 300 "$API_TMP/conc/r$i.json")"; ok=1; continue; }
        id=$(jq -r .id "$API_TMP/conc/r$i.json")
        req GET "$url/$id/c$i.wav"
        [ "$code" = 200 ] && cmp -s "$API_TMP/body" "$API_TMP/conc/c$i.wav" ||
            { say "GET /$id/c$i.wav -> $code, not the bytes sent"; ok=1; }
    done
    [ "$(cat "$API_TMP"/conc/r*.json | jq -r .id 2>/dev/null | sort -u | wc -l)" = 50 ] || { say "ids are not 50 distinct ones"; ok=1; }
    call GET '/uploads?limit=1000'
    jqb '.total == 50 and (.uploads | length == 50) and ([.uploads[].id] | unique | length == 50)' || ok=1
    [ "$(find "$API_TMP/f/tmp" -mindepth 1 | wc -l)" = 0 ] || { say "files left in tmp"; ok=1; }
    url=$saved
    server_stop F || ok=1
    rm -rf "$API_TMP/conc"
    return $ok
}

# ---------------------------------------------- jobs on a slower model

# rt-tiny.en-f16 decodes a 30 s window in seconds; under the sanitizers it
# takes minutes, so there the smaller rt-mini.en-f16 stands in.
SLOW_MODEL=rt-tiny.en-f16
[ "$SLOW" -gt 1 ] && SLOW_MODEL=rt-mini.en-f16
SLOW_MODEL=${HARK_API_SLOW_MODEL:-$SLOW_MODEL}
LONG_SECONDS=${HARK_API_LONG_SECONDS:-30}
LONG_ID=
LONG_JOB=
Q_ID=

test_cancel_queued() {
    url=$E_url
    # The first LONG_SECONDS of the 75 s clip (16 kHz mono 16-bit, a 44-byte
    # header): two or more 30 s windows, so the job reports progress before
    # it ends.
    wav_header "$API_TMP/long.wav" $((44 + LONG_SECONDS * 32000))
    tail -c +45 "$LONG" | head -c $((LONG_SECONDS * 32000)) >>"$API_TMP/long.wav"
    upload "$API_TMP/long.wav"
    want 201 || return 1
    LONG_ID=$(jq -r .id "$API_TMP/body")
    model_req "{\"id\":\"$LONG_ID\"}"
    want 202 || return 1
    LONG_JOB=$(jq -r .job_id "$API_TMP/body")
    upload "$WAV"
    want 201 || return 1
    Q_ID=$(jq -r .id "$API_TMP/body")
    model_req "{\"id\":\"$Q_ID\"}"
    want 202 && jqb '.status == "queued" and .queue_position >= 1' || return 1
    local qjob
    qjob=$(jq -r .job_id "$API_TMP/body")
    # The one worker is on the long job; this one waits behind it.
    call POST "/jobs/$Q_ID/cancel"
    want 200 && jqb '.id == $id and .status == "canceled"' --arg id "$Q_ID" || return 1
    call POST "/jobs/$qjob/cancel"
    want 409 not_active || return 1
    call GET "/jobs/$qjob"
    want 200 && jqb '.state == "canceled" and (.finished | length > 0)'
}

test_job_active() {
    model_req "{\"id\":\"$LONG_ID\"}"
    want 409 job_active && jqb '.id == $id and (.status == "queued" or .status == "running") and .job_id == $job' \
        --arg id "$LONG_ID" --argjson job "$LONG_JOB"
}

test_kill_mid_job() {
    local i p
    for ((i = 0; i < 600 * SLOW; i++)); do
        req GET "$url/uploads/$LONG_ID"
        p=$(jq -r 'if .status == "running" then .progress else 0 end' "$API_TMP/body" 2>/dev/null)
        [ "$(jq -r .status "$API_TMP/body")" = done ] && { say "the job finished before it was seen running with progress > 0"; return 1; }
        awk -v p="$p" 'BEGIN { exit !(p > 0) }' && break
        sleep 0.1
    done
    awk -v p="$p" 'BEGIN { exit !(p > 0) }' || { say "never running with progress > 0: $(body)"; return 1; }
    server_kill E
    server_start E "$API_TMP/e" --model "$SLOW_MODEL" || return 1
    url=$E_url
    wait_status "$LONG_ID" done $((120 * SLOW)) || return 1
    call GET "/jobs/$LONG_JOB"
    want 200 && jqb '.state == "done" and .attempts == 2 and .upload_id == $id' --arg id "$LONG_ID" || return 1
    call GET /uploads
    jqb '.total == 2 and ([.uploads[] | select(.id == $id)] | length == 1)' --arg id "$LONG_ID" || return 1
    [ "$(find "$API_TMP/e/db" -name results.json | wc -l)" = 1 ] && [ -f "$API_TMP/e/db/$LONG_ID/results.json" ] ||
        { say "results.json files: $(find "$API_TMP/e/db" -name 'results.*')"; return 1; }
    [ "$(find "$API_TMP/e/db/$LONG_ID" -type f | wc -l)" = 5 ] ||
        { say "files beside the media: $(ls -A "$API_TMP/e/db/$LONG_ID")"; return 1; }
    # The job canceled before the crash stays canceled.
    call GET "/uploads/$Q_ID"
    jqb '.status == "canceled" and .model_ran == false'
}

# wait_running ID: until the upload's job runs.
wait_running() { wait_status "$1" running $((60 * SLOW)); }

test_cancel_running() {
    local job
    model_req "{\"id\":\"$LONG_ID\"}"
    want 202 || return 1
    job=$(jq -r .job_id "$API_TMP/body")
    wait_running "$LONG_ID" || return 1
    call POST "/jobs/$job/cancel"
    want 200 && jqb '.status == "canceled"' || return 1
    sleep 0.5
    call GET "/jobs/$job"
    want 200 && jqb '.state == "canceled"' || return 1
    call GET "/uploads/$LONG_ID"
    want 200 && jqb '.status == "canceled" and .model_ran == true'
}

test_delete_running() {
    model_req "{\"id\":\"$LONG_ID\"}"
    want 202 || return 1
    wait_running "$LONG_ID" || return 1
    call DELETE "/uploads/$LONG_ID"
    want 200 && jqb '.deleted == true' || return 1
    call GET "/uploads/$LONG_ID"
    want 404 || return 1
    sleep 0.5
    [ ! -e "$API_TMP/e/db/$LONG_ID" ] || { say "left: $(ls -A "$API_TMP/e/db/$LONG_ID")"; return 1; }
    call GET /health
    want 200
}

# ------------------------------------------------------------------ search

SEARCH_WORD= SEARCH_WORD3= SEARCH_MP3=

# The longest word of 4 or more ASCII letters in a results.json's first
# segment (on stdin).
first_word() {
    jq -r '.segments[0].text' | grep -oE '[A-Za-z]{4,}' | awk '{ print length($0), $0 }' |
        sort -k1,1nr -k2 | head -1 | cut -d' ' -f2
}

# The database argument the CLI needs to read server A's store.
a_db_args() {
    if [ -n "${HARK_API_PG:-}" ]; then
        api_pg_db "$A_DATA" && echo "--data $A_DATA --db $HARK_API_PG/$api_db"
    else
        echo "--data $A_DATA"
    fi
}

# A word of the mp4's transcript finds its segment, as a word, in other
# case and as a prefix; the hit carries its upload, times, text and a marked
# snippet. A word of the mp3's finds the mp3. The command line finds the
# same, and builds the index again.
test_search() {
    local seg
    seg=$(jq -c '.segments[0]' "$API_TMP/results.json")
    SEARCH_WORD=$(first_word <"$API_TMP/results.json")
    [ -n "$SEARCH_WORD" ] || { say "no word of 4 letters in $(jq -r .text <<<"$seg")"; return 1; }
    call GET "/search?q=$SEARCH_WORD"
    want 200 && jqb '.total >= 1 and .offset == 0 and .limit == 20 and
        any(.hits[]; .upload_id == $a and .segment == 0 and .location == "/\($a)/jfk.mp4" and
            .start == $seg.start and .end == $seg.end and .text == $seg.text and
            (.snippet | test("<mark>[^<]+</mark>")) and (.score | type == "number"))' \
        --arg a "$MP4_ID" --argjson seg "$seg" || return 1
    call GET "/search?q=$(tr '[:lower:]' '[:upper:]' <<<"$SEARCH_WORD")"
    want 200 && jqb 'any(.hits[]; .upload_id == $a)' --arg a "$MP4_ID" || return 1
    call GET "/search?q=${SEARCH_WORD:0:3}%2A"
    want 200 && jqb 'any(.hits[]; .upload_id == $a)' --arg a "$MP4_ID" || return 1
    call GET "/search?q=${SEARCH_WORD:0:3}%2A&limit=1&offset=1"
    want 200 && jqb '(.hits | length) == (if .total > 1 then 1 else 0 end) and
        .next_offset == (if .total > 2 then 2 else null end)' || return 1
    call GET "/results/$MP3_ID"
    want 200 || return 1
    SEARCH_MP3=$MP3_ID
    SEARCH_WORD3=$(first_word <"$API_TMP/body")
    [ -n "$SEARCH_WORD3" ] || { say "no word of 4 letters in the mp3's transcript"; return 1; }
    call GET "/search?q=$SEARCH_WORD3"
    want 200 && jqb 'any(.hits[]; .upload_id == $b)' --arg b "$MP3_ID" || return 1
    call GET /search; want 400 && jqb '.error.param == "q"' || return 1
    call GET "/search?q=%2A%2A%2A"; want 400 && jqb '.error.param == "q" and .error.code == "invalid_value"' || return 1
    call GET "/search?q=a&limit=0"; want 400 && jqb '.error.param == "limit"' || return 1
    # shellcheck disable=SC2046
    "$HARK" search $(a_db_args) "$SEARCH_WORD" >"$API_TMP/search.out" 2>"$API_TMP/search.err" &&
        grep -q "^$MP4_ID " "$API_TMP/search.out" || { say "hark search: $(cat "$API_TMP/search.err")"; return 1; }
    # shellcheck disable=SC2046
    "$HARK" search --reindex $(a_db_args) 2>"$API_TMP/search.err" &&
        grep -Eq 'indexed ([0-9]+) of \1 transcribed uploads' "$API_TMP/search.err" ||
        { say "hark search --reindex: $(cat "$API_TMP/search.err")"; return 1; }
    call GET "/search?q=$SEARCH_WORD"
    want 200 && jqb 'any(.hits[]; .upload_id == $a)' --arg a "$MP4_ID" || return 1
    call GET "/search?q=$SEARCH_WORD3"
    want 200 && jqb 'any(.hits[]; .upload_id == $b)' --arg b "$MP3_ID"
}

# A deleted upload's transcript is found no more.
test_search_after_delete() {
    call GET "/search?q=$SEARCH_WORD3&limit=100"
    want 200 && jqb '[.hits[].upload_id] | index($b) == null' --arg b "$SEARCH_MP3" || return 1
    call GET "/search?q=$SEARCH_WORD"
    want 200 && jqb 'any(.hits[]; .upload_id == $a)' --arg a "$MP4_ID"
}

# A value of /metrics.
metric() { curl -s "$url/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# stream_start: a streaming /v1 transcription of the long clip in the
# background (its events in $API_TMP/stream.out, curl's pid in stream_pid),
# once a worker runs it.
stream_start() {
    local i
    curl -sN -F "file=@$LONG" -F model=whisper-1 -F stream=true "$url/v1/audio/transcriptions" \
        >"$API_TMP/stream.out" 2>/dev/null &
    stream_pid=$!
    track "$stream_pid"
    for ((i = 0; i < 600 * SLOW; i++)); do
        [ "$(curl -s "$url/health" | jq -r .busy_workers)" = 1 ] && return 0
        sleep 0.05
    done
    say "the stream never ran"
    return 1
}

# A streaming client that hangs up stops its transcription: the worker is
# free again, and the audio was not counted as transcribed.
test_stream_client_gone() {
    local before busy i
    before=$(metric hark_audio_seconds_total)
    stream_start || return 1
    kill "$stream_pid" 2>/dev/null
    wait "$stream_pid" 2>/dev/null
    untrack "$stream_pid"
    for ((i = 0; i < 600 * SLOW; i++)); do
        busy=$(curl -s "$url/health" | jq -r .busy_workers)
        [ "$busy" = 0 ] && break
        sleep 0.1
    done
    [ "$busy" = 0 ] || { say "the worker is still busy"; return 1; }
    [ "$(metric hark_audio_seconds_total)" = "$before" ] ||
        { say "audio seconds $before -> $(metric hark_audio_seconds_total)"; return 1; }
    call GET /health
    want 200
}

# SIGTERM while a stream runs: the server stops (exit 0), and the client's
# stream ends rather than hanging.
test_stream_stop() {
    stream_start || return 1
    server_stop E || return 1
    local i
    for ((i = 0; i < 100 * SLOW; i++)); do
        kill -0 "$stream_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$stream_pid" 2>/dev/null; then
        kill "$stream_pid"
        say "the client's stream did not end"
        return 1
    fi
    wait "$stream_pid" 2>/dev/null
    untrack "$stream_pid"
}

test_sigterm_stop() { server_stop E; }
test_sigterm_stop_a() { server_stop A; }

# ------------------------------------------------------- openai client

# The openai client's own checks print their PASS/FAIL lines, counted here;
# a client that cannot be installed or run is one FAIL.
run_openai_client() {
    local dir=$HERE/openai
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "FAIL openai_client: node and npm are needed"
        failed=$((failed + 1))
        return
    fi
    if ! npm_install "$dir" openai; then
        echo "FAIL openai_client: npm ci failed (is the npm registry reachable?)"
        failed=$((failed + 1))
        return
    fi
    HARK_URL=$A_URL HARK_KEY_URL=$C_url HARK_KEY=flag-key-1 HARK_MEDIA=$MEDIA HARK_WAV=$WAV HARK_TMP=$API_TMP \
        node_checks openai_client $((300 * SLOW)) "$dir/test.mjs"
}

# --------------------------------------------------------------- main

for tool in curl jq; do
    if ! command -v $tool >/dev/null; then
        echo "FAIL api_setup: $tool is not installed (tools/install-deps.sh installs it)"
        echo "0 passed, 1 failed"
        exit 1
    fi
done
if [ ! -x "$HARK" ] || ! "$HARK" serve --help >/dev/null 2>&1; then
    echo "FAIL api_setup: '$HARK serve --help' does not work"
    echo "0 passed, 1 failed"
    exit 1
fi
api_init || { echo "FAIL api_setup: no temporary folder"; exit 1; }
A_DATA=$API_TMP/a
if ! server_start A "$A_DATA"; then
    echo "FAIL api_setup: the server did not start"
    echo "0 passed, 1 failed"
    exit 1
fi
A_URL=$A_url
url=$A_URL
# On PostgreSQL no database file lies in the data folder; the traversal
# tests look for this one instead.
[ -e "$A_DATA/hark.db" ] || printf 'hark test secret %s\n' "$RANDOM$RANDOM" >"$A_DATA/hark.db"
[[ $A_URL =~ ^http://127\.0\.0\.1:[0-9]+$ ]] && [ "$(grep -c . "$A_log")" = 1 ] && t listening_line true ||
    { say "stdout: $(head -c 300 "$A_log")"; t listening_line false; }

t health test_health
t upload test_upload
t uploads_list test_uploads_list
t results_not_ready test_results_not_ready
t model_queued test_model_queued
t job_done test_job_done
t job_record test_job_record
t metadata_after test_metadata_after
t results_json test_results_json
t results_srt test_results_srt
t results_vtt test_results_vtt
t results_txt test_results_txt
t results_download test_results_download
t results_bad_format test_results_bad_format
t model_wait test_model_wait
t model_wait_no_audio test_model_wait_no_audio
t search test_search
t duplicate test_duplicate
t filename_sanitized test_filename_sanitized
t file_whole test_file_whole
t file_head test_file_head
t range_first test_range_first
t range_middle test_range_middle
t range_suffix test_range_suffix
t range_open test_range_open
t range_multidigit test_range_multidigit
t range_unsatisfiable test_range_unsatisfiable
t range_invalid test_range_invalid
t upload_no_file test_upload_no_file
t upload_empty test_upload_empty
t upload_text test_upload_text
t upload_unknown_model test_upload_unknown_model
t model_bad_json test_model_bad_json
t model_unknown_id test_model_unknown_id
t model_unknown_model test_model_unknown_model
t model_cannot test_model_cannot
t model_bad_task test_model_bad_task
t model_bad_path test_model_bad_path
t not_found_ids test_not_found_ids
t uploads_paging test_uploads_paging
t traversal_dotdot test_traversal_dotdot
t traversal_encoded test_traversal_encoded
t traversal_absolute test_traversal_absolute
t traversal_nul test_traversal_nul
t traversal_symlink test_traversal_symlink
t interrupted_upload test_interrupted_upload
t unknown_route test_unknown_route
t wrong_method test_wrong_method
t error_shapes test_error_shapes
t metrics test_metrics
t delete test_delete
t search_after_delete test_search_after_delete
t auth_off test_auth_off
t auth_flag test_auth_flag
t auth_env test_auth_env
t upload_too_large test_upload_too_large
t concurrent_uploads test_concurrent_uploads
# /v1 transcriptions never reach the store: under the sanitizers the
# openai client runs on SQLite only, where it takes minutes.
if [ -n "${HARK_API_PG:-}" ] && [ "$SLOW" -gt 1 ]; then
    say "openai client: run on SQLite only under the sanitizers"
else
    run_openai_client
fi
server_stop C >/dev/null

if server_start E "$API_TMP/e" --model "$SLOW_MODEL"; then
    t cancel_queued test_cancel_queued
    t job_active test_job_active
    t kill_mid_job test_kill_mid_job
    t cancel_running test_cancel_running
    t delete_running test_delete_running
    t stream_client_gone test_stream_client_gone
    t sigterm_stop_busy test_sigterm_stop
    if server_start E "$API_TMP/e" --model "$SLOW_MODEL"; then
        url=$E_url
        t stream_stop test_stream_stop
    else
        t stream_server false
    fi
else
    t slow_server false
fi
url=$A_URL
t sigterm_stop test_sigterm_stop_a
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
