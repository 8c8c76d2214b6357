#!/usr/bin/env bash
# test_words.sh: word timestamps in `hark serve`, from the outside.
#
# Server W runs with the defaults: a job's results.json has every segment's
# words (their text joined is the segment's text; times ordered, inside the
# segment) and every text token's t_dtw; "word_timestamps": false leaves
# them out, bad values are refused naming the field, and GET /jobs shows the
# job's choice. GET /results/<id>?format=srt|vtt cuts the subtitles again
# from the stored words with the caller's max_line_chars, max_lines,
# max_cue_seconds and (WebVTT) word_tags: every line and cue within them,
# the words in order, the files well formed (tests/api/cues.py; libavformat
# reading them back is tests/unit/test_cues.c's); options it cannot honour
# are refused. Server O runs with --no-word-timestamps: no words
# unless a job asks. /v1 gives words when timestamp_granularities (with or
# without []) asks for them, also through the official openai client.
#
# Run from the repository root; helpers and paths as in lib.sh. Prints
# "PASS name" / "FAIL name" per check and ends with "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

# t NAME FUNCTION, say, and the counts; want, jqb and upload.
. "$HERE/../cli/lib.sh"
. "$HERE/checks.sh"

# transcribe ID [JSON MEMBERS]: POST /model and wait; sets job_id.
transcribe() {
    call POST /model -d "{\"id\":\"$1\",\"wait\":true${2:+,$2}}"
    want 200 && jqb '.status == "done"' || return 1
    job_id=$(jq -r .job_id "$API_TMP/body")
}

# The body (a results.json) has words: joined they are the text (a word
# that runs on into the next segment's tokens is the first segment's, as
# openai-whisper assigns it), their times ordered and inside the segment
# (to the centisecond); every text token has a t_dtw in the audio, ordered
# within its 30 s window (whisper.cpp's DTW times are not held to the
# segment).
words_ok() {
    jqb '(.segments | length) > 0 and ([.segments[] | .words | length] | add) > 0' || return 1
    jqb '([.segments[].words[].word] | join("")) == ([.segments[].text] | join(""))' || return 1
    jqb '[.segments[] | . as $s | .words as $w | range(0; $w | length) as $i | $w[$i] |
        .start <= .end and .start >= $s.start - 0.01 and .end <= $s.end + 0.01 and
        ($i == 0 or .start >= $w[$i - 1].end - 0.001) and .probability >= 0 and .probability <= 1] | all' || return 1
    jqb '.duration as $d | [.segments[].token_details[] | select(.id < 50257 and .text != "") |
        .t_dtw != null and .t_dtw >= 0 and .t_dtw <= $d] | all' || return 1
    jqb '[.segments | group_by(.seek)[] | [.[].token_details[] | select(.id < 50257 and .text != "") | .t_dtw] |
        . == sort] | all'
}

no_words() {
    jqb '(.segments | length) > 0 and ([.segments[] | has("words")] | any | not) and
        ([.segments[].token_details[] | has("t_dtw")] | any | not)'
}

# ------------------------------------------------------------ server W

test_default_job() {
    url=$W_url
    upload "$AUDIO/speech_gaps_71s.wav" || return 1
    GAPS=$up_id
    transcribe "$GAPS" || return 1
    call GET "/jobs/$job_id"
    want 200 && jqb '.word_timestamps == null' || return 1
    call GET "/results/$GAPS"
    want 200 && words_ok || return 1
    cp "$API_TMP/body" "$API_TMP/gaps.json"
}

test_job_off() {
    url=$W_url
    upload "$AUDIO/jfk.wav" || return 1
    JFK=$up_id
    transcribe "$JFK" '"word_timestamps":false' || return 1
    call GET "/jobs/$job_id"
    want 200 && jqb '.word_timestamps == false' || return 1
    call GET "/results/$JFK"
    want 200 && no_words || return 1
    # Subtitles of a result without words are one cue per segment, and
    # still take the options.
    call GET "/results/$JFK?format=srt&max_line_chars=20"
    want 200 || return 1
    cp "$API_TMP/body" "$API_TMP/plain.srt"
    cues "$API_TMP/plain.srt" srt >"$API_TMP/cues" || { cat "$API_TMP/cues"; return 1; }
    call GET "/results/$JFK"
    want 200 && jqb '[.segments[] | select(.text != "")] | length == $n' --argjson n "$(head -n1 "$API_TMP/cues")" ||
        return 1
    transcribe "$JFK" '"word_timestamps":true' || return 1
    call GET "/jobs/$job_id"
    want 200 && jqb '.word_timestamps == true' || return 1
    call GET "/results/$JFK"
    want 200 && words_ok
}

test_bad_values() {
    url=$W_url
    local v
    for v in '"yes"' 1 '{}' '[true]'; do
        call POST /model -d "{\"id\":\"$GAPS\",\"word_timestamps\":$v}"
        want 400 invalid_request && jqb '.error.param == "word_timestamps"' ||
            { say "(word_timestamps: $v)"; return 1; }
    done
    call GET "/uploads/$GAPS"
    want 200 && jqb '.status == "done"'
}

# cues FILE FORMAT [MAX_CHARS MAX_LINES MAX_SECONDS]: cues.py's strict
# reading of the file; the cue count, then the words.
cues() { python3 "$HERE/cues.py" "$@"; }

test_subtitle_options() {
    url=$W_url
    local fmt
    for fmt in srt vtt; do
        call GET "/results/$GAPS?format=$fmt&max_line_chars=24&max_lines=1&max_cue_seconds=3"
        want 200 || return 1
        cp "$API_TMP/body" "$API_TMP/cut.$fmt"
        cues "$API_TMP/cut.$fmt" $fmt 24 1 3 >"$API_TMP/cues" || { cat "$API_TMP/cues"; return 1; }
        # The words, in order, are the transcript's.
        diff <(tail -n +2 "$API_TMP/cues") <(jq -r '[.segments[].words[].word] | join("")' "$API_TMP/gaps.json" |
            tr -s ' ' '\n' | grep .) >/dev/null || { say "$fmt words differ from results.json"; return 1; }
    done
    # The stored files keep the defaults (42 characters, 2 lines, 7 s), and
    # have fewer cues.
    call GET "/results/$GAPS?format=srt"
    want 200 && cmp -s "$API_TMP/body" "$W_data/db/$GAPS/results.srt" ||
        { say "plain srt is not results.srt"; return 1; }
    cues "$API_TMP/body" srt 42 2 7 >"$API_TMP/cues.default" || { cat "$API_TMP/cues.default"; return 1; }
    [ "$(head -n1 "$API_TMP/cues.default")" -lt "$(head -n1 "$API_TMP/cues")" ] ||
        { say "the cut subtitles have no more cues than the default ones"; return 1; }
}

test_word_tags() {
    url=$W_url
    call GET "/results/$GAPS?format=vtt&word_tags=true&download=1"
    want 200 || return 1
    [[ $(hdr Content-Disposition) == attachment*'.vtt"' ]] ||
        { say "Content-Disposition $(hdr Content-Disposition)"; return 1; }
    grep -Eq '<([0-9]{2}:)?[0-9]{2}:[0-9]{2}\.[0-9]{3}>' "$API_TMP/body" ||
        { say "no word tags: $(head -c 300 "$API_TMP/body")"; return 1; }
    cp "$API_TMP/body" "$API_TMP/tags.vtt"
    cues "$API_TMP/tags.vtt" vtt >"$API_TMP/cues" || { cat "$API_TMP/cues"; return 1; }
}

test_option_refusals() {
    url=$W_url
    local q
    for q in "format=srt&max_line_chars=0" "format=srt&max_lines=0" "format=vtt&max_lines=1.5" \
        "format=srt&max_cue_seconds=-1" "format=srt&max_cue_seconds=x" "format=srt&word_tags=1" \
        "format=vtt&word_tags=maybe" "format=json&max_lines=2" "format=txt&max_line_chars=30" "max_lines=2" \
        "format=vtt&max_line_chars="; do
        call GET "/results/$GAPS?$q"
        want 400 invalid_request || { say "($q)"; return 1; }
    done
    call GET "/results/$GAPS?format=srt&max_line_chars=3000000"
    want 400 invalid_request || return 1
    # Not transcribed yet comes before the options.
    upload "$MEDIA/$(ls "$MEDIA" | grep -m1 '\.mp4$')" || return 1
    call GET "/results/$up_id?format=srt&max_lines=1"
    want 404 not_ready
}

test_v1_words() {
    url=$W_url
    call POST /v1/audio/transcriptions -F "file=@$AUDIO/jfk.wav" -F response_format=verbose_json \
        -F "timestamp_granularities[]=word" -F "timestamp_granularities[]=segment"
    want 200 || return 1
    jqb '(.words | length) > 0 and ([.words[] | .start <= .end and (.word | startswith(" ") | not)] | all) and
        (.words | map(.word) | join("") | gsub(" "; "")) == ([.segments[].text] | join("") | gsub(" "; ""))' ||
        return 1
    # Many clients send the field without the brackets.
    call POST /v1/audio/transcriptions -F "file=@$AUDIO/jfk.wav" -F response_format=verbose_json \
        -F "timestamp_granularities=word"
    want 200 && jqb '(.words | length) > 0' || return 1
    call POST /v1/audio/transcriptions -F "file=@$AUDIO/jfk.wav" -F "timestamp_granularities=syllable"
    want 400 invalid_value && jqb '.error.param == "timestamp_granularities"' || return 1
    call POST /v1/audio/transcriptions -F "file=@$AUDIO/jfk.wav" -F response_format=verbose_json
    want 200 && jqb 'has("words") | not'
}

# ------------------------------------------------------------ server O

test_off_default() {
    url=$O_url
    upload "$AUDIO/jfk.wav" || return 1
    local id=$up_id
    transcribe "$id" || return 1
    call GET "/results/$id"
    want 200 && no_words || return 1
    transcribe "$id" '"word_timestamps":true' || return 1
    call GET "/results/$id"
    want 200 && words_ok || return 1
    # /v1 asks for words when the caller wants them.
    call POST /v1/audio/transcriptions -F "file=@$AUDIO/jfk.wav" -F response_format=verbose_json \
        -F "timestamp_granularities[]=word"
    want 200 && jqb '(.words | length) > 0'
}

stop_w() { server_stop W; }
stop_o() { server_stop O; }

# ------------------------------------------------------------------ main

api_init || { echo "FAIL words_setup"; exit 1; }
W_data=$API_TMP/w
# Speech detection stays off here (no VAD model in the shared models).
if server_start W "$W_data" && server_start O "$API_TMP/o" --no-word-timestamps; then
    t words_job_default test_default_job
    t words_job_off test_job_off
    t words_job_bad_values test_bad_values
    t words_subtitle_options test_subtitle_options
    t words_vtt_word_tags test_word_tags
    t words_subtitle_refusals test_option_refusals
    t words_v1 test_v1_words
    t words_server_off test_off_default
    openai_checks openai_words "$O_url" words.mjs
    t words_stop_w stop_w
    t words_stop_o stop_o
else
    echo "FAIL words_setup: a server did not start"
    failed=$((failed + 1))
fi
summary
