#!/usr/bin/env bash
# test_vad.sh: speech detection in `hark serve`, from the outside.
#
# Server N runs with the shared models (no VAD model): it says at start-up
# how to get one, transcribes as before, and refuses what needs one (a job
# with "vad": true, chunking_strategy, /v1/audio/speech-timestamps) with an
# error in OpenAI's shape. Server V has the VAD model in its models folder:
# jobs detect speech by default and results.json records the settings and
# the speech, every segment inside the speech; a job's "vad" (false, true,
# an object) is kept with it and used; bad values are refused naming "vad";
# a file of silence and hiss finishes done with no segments and no text in
# every route; /v1/audio/speech-timestamps gives exactly whisper.cpp's
# segments of jfk.wav and takes settings as fields; chunking_strategy ("auto", the server_vad object as
# JSON text and as the openai client's bracketed fields) reaches the engine.
#
# Run from the repository root; helpers and paths as in lib.sh. Prints
# "PASS name" / "FAIL name" per check and ends with "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
VAD=$VAD_MODEL
REF=$SHARED/reference/vad

# t NAME FUNCTION, say, and the counts; want, jqb and upload.
. "$HERE/../cli/lib.sh"
. "$HERE/checks.sh"

# Every segment lies inside the speech (a segment may end up to 0.1 s
# after, as whisper.cpp's joined audio carries that much of what follows).
segments_in_speech() {
    jqb '.vad.speech as $s | [.segments[] | . as $g | any($s[]; $g.start >= .start - 0.001)
        and any($s[]; $g.end <= .end + 0.101)] | all' || return 1
}

# ------------------------------------------------------------ no model

test_n_note() {
    grep -q "speech detection is off: no VAD model in $MODELS (get one with \`hark models download silero-v6.2.0\`)" \
        "$N_err" || { say "stderr: $(cat "$N_err")"; return 1; }
}

test_n_refusals() {
    url=$N_url
    upload "$AUDIO/jfk.wav" || return 1
    call POST /model -d "{\"id\":\"$up_id\",\"vad\":true}"
    want 400 vad_unavailable && jqb '.error.param == "vad"' || return 1
    call POST /v1/audio/speech-timestamps -F "file=@$AUDIO/jfk.wav"
    want 503 vad_unavailable || return 1
    call POST /v1/audio/transcriptions -F "file=@$AUDIO/jfk.wav" -F chunking_strategy=auto
    want 400 vad_unavailable || return 1
    # Without asking, everything works as without speech detection.
    call POST /model -d "{\"id\":\"$up_id\",\"wait\":true}"
    want 200 || return 1
    call GET "/results/$up_id"
    want 200 && jqb 'has("vad") | not'
}

# ---------------------------------------------------------- with model

test_v_note() { grep -q "speech detection with silero-v6.2.0" "$V_err" || { say "stderr: $(cat "$V_err")"; return 1; }; }

test_v_default() {
    url=$V_url
    upload "$AUDIO/speech_gaps_71s.wav" || return 1
    GAPS=$up_id
    call POST /model -d "{\"id\":\"$GAPS\",\"wait\":true}"
    want 200 && jqb '.status == "done"' || return 1
    call GET "/results/$GAPS"
    want 200 || return 1
    jqb '.vad.model == "silero-v6.2.0" and .vad.threshold == 0.5 and .vad.min_speech_ms == 250 and
        .vad.min_silence_ms == 100 and .vad.max_speech_s == null and .vad.pad_ms == 30 and
        (.vad.speech | length) == 12 and .vad.speech[0].start == 2.31 and .vad.speech[11].end == 59.01 and
        .duration == 71 and (.segments | length) > 0' || return 1
    segments_in_speech || return 1
    # The speech is whisper.cpp's, to the centisecond.
    diff <(awk -F'\t' '!/^#/ { printf "%.2f %.2f\n", $1 / 100, $2 / 100 }' "$REF/speech_gaps_71s.segments.tsv") \
        <(jq -r '.vad.speech[] | "\(.start) \(.end)"' "$API_TMP/body" | awk '{ printf "%.2f %.2f\n", $1, $2 }') \
        >/dev/null || { say "speech differs from the reference"; return 1; }
    call GET "/jobs/$(jq -r .job_id <(curl -s "$url/uploads/$GAPS"))"
    want 200 && jqb '.vad == null'
}

test_v_job_settings() {
    url=$V_url
    upload "$AUDIO/jfk.wav" || return 1
    JFK_ID=$up_id
    call POST /model -d "{\"id\":\"$JFK_ID\",\"wait\":true,\"vad\":{\"threshold\":0.6,\"pad_ms\":50,\"max_speech_s\":null}}"
    want 200 || return 1
    call GET "/jobs/$(jq -r .job_id "$API_TMP/body")"
    want 200 && jqb '.vad == {"threshold":0.6,"min_speech_ms":250,"min_silence_ms":100,"max_speech_s":null,"pad_ms":50}' ||
        return 1
    call GET "/results/$JFK_ID"
    want 200 && jqb '.vad.threshold == 0.6 and .vad.pad_ms == 50 and .vad.speech[0].start == 0.3' || return 1
    segments_in_speech || return 1
    call POST /model -d "{\"id\":\"$JFK_ID\",\"wait\":true,\"vad\":false}"
    want 200 || return 1
    call GET "/jobs/$(jq -r .job_id "$API_TMP/body")"
    want 200 && jqb '.vad == false' || return 1
    call GET "/results/$JFK_ID"
    want 200 && jqb '(has("vad") | not) and .duration == 11'
}

test_v_bad_settings() {
    url=$V_url
    local v
    for v in '"yes"' '{"threshold":2}' '{"bogus":1}' '{"pad_ms":1.5}' '{"min_silence_ms":"x"}' '[1]'; do
        call POST /model -d "{\"id\":\"$GAPS\",\"vad\":$v}"
        want 400 invalid_request && jqb '.error.param == "vad"' || { say "(vad: $v)"; return 1; }
    done
    call GET "/uploads/$GAPS"
    want 200 && jqb '.status == "done"'
}

# 20 s of silence then 10 s of low hiss: no speech anywhere.
make_quiet() {
    python3 - "$API_TMP/quiet.wav" <<'EOF'
import random, struct, sys, wave
random.seed(7)
w = wave.open(sys.argv[1], "wb")
w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
frames = [0] * 320000 + [int(random.gauss(0, 60)) for _ in range(160000)]
w.writeframes(struct.pack("<%dh" % len(frames), *frames))
EOF
}

test_v_no_speech() {
    url=$V_url
    make_quiet || return 1
    upload "$API_TMP/quiet.wav" || return 1
    local id=$up_id
    call POST /model -d "{\"id\":\"$id\",\"wait\":true}"
    want 200 && jqb '.status == "done" and .progress == 100' || return 1
    call GET "/results/$id"
    want 200 && jqb '(.segments | length) == 0 and .text == "" and (.vad.speech | length) == 0 and .duration == 30' ||
        return 1
    call GET "/results/$id?format=txt"
    want 200 && [ ! -s "$API_TMP/body" ] || { say "txt: $(head -c 200 "$API_TMP/body")"; return 1; }
    call GET "/results/$id?format=srt"
    want 200 && [ ! -s "$API_TMP/body" ] || { say "srt: $(head -c 200 "$API_TMP/body")"; return 1; }
    call POST /v1/audio/transcriptions -F "file=@$API_TMP/quiet.wav"
    want 200 && jqb '.text == ""' || return 1
    call POST /v1/audio/transcriptions -F "file=@$API_TMP/quiet.wav" -F response_format=verbose_json
    want 200 && jqb '.text == "" and (.segments | length) == 0' || return 1
    call POST /v1/audio/speech-timestamps -F "file=@$API_TMP/quiet.wav"
    want 200 && jqb '.segments == []'
}

test_v_speech_timestamps() {
    url=$V_url
    call POST /v1/audio/speech-timestamps -F "file=@$AUDIO/jfk.wav"
    want 200 || return 1
    diff <(awk -F'\t' '!/^#/ { printf "%.2f %.2f\n", $1 / 100, $2 / 100 }' "$REF/jfk.segments.tsv") \
        <(jq -r '.segments[] | "\(.start) \(.end)"' "$API_TMP/body" | awk '{ printf "%.2f %.2f\n", $1, $2 }') \
        >/dev/null || { say "segments: $(cat "$API_TMP/body")"; return 1; }
    # Settings as fields, in hark's and in speaches' words.
    call POST /v1/audio/speech-timestamps -F "file=@$AUDIO/jfk.wav" -F min_speech_duration_ms=3000
    want 200 && jqb '.segments == []' || return 1
    call POST /v1/audio/speech-timestamps -F "file=@$AUDIO/jfk.wav" -F pad_ms=100
    want 200 && jqb '.segments[0].start == 0.25' || return 1
    call POST /v1/audio/speech-timestamps -F "file=@$AUDIO/jfk.wav" -F threshold=7
    want 400 invalid_value && jqb '.error.param == "threshold"' || return 1
    call POST /v1/audio/speech-timestamps -F "file=@$HERE/test_vad.sh"
    want 415 unsupported_media || return 1
    call GET /v1/audio/speech-timestamps
    want 405
}

test_v_chunking_strategy() {
    url=$V_url
    call POST /v1/audio/transcriptions -F "file=@$AUDIO/jfk.wav" -F chunking_strategy=auto -F response_format=verbose_json
    want 200 && jqb '.duration == 11 and .vad.threshold == 0.5 and .vad.pad_ms == 30 and (.vad.speech | length) == 4' ||
        return 1
    segments_in_speech || return 1
    call POST /v1/audio/transcriptions -F "file=@$AUDIO/jfk.wav" -F response_format=verbose_json \
        -F 'chunking_strategy={"type":"server_vad","threshold":0.6,"prefix_padding_ms":40,"silence_duration_ms":300}'
    want 200 && jqb '.vad.threshold == 0.6 and .vad.pad_ms == 40 and .vad.min_silence_ms == 300' || return 1
    # OpenAI's clients send the object as bracketed fields.
    call POST /v1/audio/transcriptions -F "file=@$AUDIO/jfk.wav" -F "chunking_strategy[type]=server_vad" \
        -F "chunking_strategy[threshold]=0.7" -F response_format=verbose_json
    want 200 && jqb '.vad.threshold == 0.7' || return 1
    local f
    for f in "chunking_strategy=manual" 'chunking_strategy={"type":"server_vad","threshold":3}' \
        'chunking_strategy={"type":"server_vad","colour":1}' "vad=maybe"; do
        call POST /v1/audio/transcriptions -F "file=@$AUDIO/jfk.wav" -F "$f"
        want 400 invalid_value || { say "($f)"; return 1; }
    done
    # vad=false: the whole audio, as without a model; json stays OpenAI's.
    call POST /v1/audio/transcriptions -F "file=@$AUDIO/jfk.wav" -F vad=false -F response_format=verbose_json
    want 200 && jqb '.duration == 11 and (has("vad") | not)' || return 1
    call POST /v1/audio/transcriptions -F "file=@$AUDIO/jfk.wav"
    want 200 && jqb 'keys == ["text"]'
}

stop_n() { server_stop N; }
stop_v() { server_stop V; }

# ------------------------------------------------------------------ main

api_init || { echo "FAIL vad_setup"; exit 1; }
mkdir -p "$API_TMP/vmodels"
ln -s "$(realpath "$MODELS/$MODEL.bin")" "$API_TMP/vmodels/$MODEL.bin"
cp "$VAD" "$API_TMP/vmodels/"
if server_start N "$API_TMP/n" && server_start V "$API_TMP/v" --models "$API_TMP/vmodels"; then
    t vad_note_without_model test_n_note
    t vad_refused_without_model test_n_refusals
    t vad_note_with_model test_v_note
    t vad_job_default test_v_default
    t vad_job_settings test_v_job_settings
    t vad_job_bad_settings test_v_bad_settings
    t vad_no_speech test_v_no_speech
    t vad_speech_timestamps test_v_speech_timestamps
    t vad_chunking_strategy test_v_chunking_strategy
    openai_checks openai_vad "$V_url" vad.mjs
    t vad_stop_n stop_n
    t vad_stop_v stop_v
else
    echo "FAIL vad_setup: a server did not start"
    failed=$((failed + 1))
fi
summary
