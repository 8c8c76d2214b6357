#!/usr/bin/env bash
# test_vad.sh: speech detection on the command line.
#
# `hark vad` prints exactly whisper.cpp's speech segments of jfk.wav
# (reference/vad/jfk.segments.tsv) as text and as JSON, finds the model in a
# models folder, reads media through FFmpeg, and refuses what it cannot do
# (no model, a broken model, bad settings) with one line. `hark transcribe`
# uses a VAD model found in the models folder or beside the Whisper model,
# gives in the whisper.cpp profile the segment times whisper-cli --vad gave
# (reference/vad/cli_rt-mini-f16_jfk_vad.json), records its settings and the
# speech in the JSON, and leaves it out with --no-vad or HARK_VAD=0.
#
# Run from the repository root; $HARK_BIN is the binary (default build/hark),
# shared data at ${HARK_SHARED:-../shared}. Prints "PASS name" / "FAIL name"
# per test and ends with "N passed, N failed".
set -u

HARK=${HARK_BIN:-build/hark}
SHARED=${HARK_SHARED:-../shared}
MODELS=${HARK_TEST_MODELS:-$SHARED/models}
AUDIO=${HARK_TEST_AUDIO:-$SHARED/audio}
MEDIA=${HARK_TEST_MEDIA:-$SHARED/media}
VAD=$SHARED/vad/ggml-silero-v6.2.0.bin
REF=$SHARED/reference/vad
JFK=$AUDIO/jfk.wav
WCPP=(--decoder whisper.cpp --beam 1 --best-of 1 --temperature 0 --no-fallback -l en -t 2)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hark-vad-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/lib.sh"
# No VAD setting of the caller's environment leaks in.
unset HARK_VAD HARK_VAD_MODEL HARK_VAD_THRESHOLD HARK_VAD_MIN_SPEECH_MS HARK_VAD_MIN_SILENCE_MS \
    HARK_VAD_MAX_SPEECH_S HARK_VAD_PAD_MS
export HARK_MODELS=$tmp/no-models

# The reference segments as hark vad prints them: seconds with 2 decimals.
ref_lines() { awk -F'\t' '!/^#/ { printf "%.2f %.2f\n", $1 / 100, $2 / 100 }' "$REF/$1.segments.tsv"; }

test_vad_text() {
    hark vad --vad-model "$VAD" "$JFK"
    expect_rc 0 || return 1
    diff <(ref_lines jfk) "$tmp/out" >/dev/null || { say "segments differ:"; diff <(ref_lines jfk) "$tmp/out" | sed 's/^/    /'; return 1; }
    [ ! -s "$tmp/err" ] || { say "stderr: $(cat "$tmp/err")"; return 1; }
}

test_vad_json() {
    mkdir -p "$tmp/m"
    cp "$VAD" "$tmp/m/"
    hark vad --models "$tmp/m" -f json "$AUDIO/speech_gaps_71s.wav"
    expect_rc 0 || return 1
    jq -r '.segments[] | "\(.start) \(.end)"' "$tmp/out" | awk '{ printf "%.2f %.2f\n", $1, $2 }' >"$tmp/got" ||
        { say "not JSON: $(head -c 200 "$tmp/out")"; return 1; }
    diff <(ref_lines speech_gaps_71s) "$tmp/got" >/dev/null || { say "segments differ"; return 1; }
}

# Through FFmpeg: jfk.mp4 (AAC, 44.1 kHz stereo) resampled finds the same
# four stretches of speech, within a frame or two.
test_vad_media() {
    hark vad --vad-model "$VAD" "$MEDIA/jfk.mp4"
    expect_rc 0 || return 1
    paste -d' ' <(ref_lines jfk) "$tmp/out" | awk '{ d = $1 - $3; if (d < 0) d = -d; e = $2 - $4; if (e < 0) e = -e;
        if (NF != 4 || d > 0.07 || e > 0.07) bad = 1 } END { exit bad }' ||
        { say "mp4 segments:"; paste <(ref_lines jfk) "$tmp/out" | sed 's/^/    /'; return 1; }
}

test_vad_errors() {
    hark vad "$JFK"
    expect_rc 1 && one_line_error "hark models download silero-v6.2.0" || return 1
    head -c 1000 "$VAD" >"$tmp/cut.bin"
    hark vad --vad-model "$tmp/cut.bin" "$JFK"
    expect_rc 1 && one_line_error "$tmp/cut.bin: truncated" || return 1
    hark vad --vad-model "$MODELS/rt-mini.en-q4_0.bin" "$JFK"
    expect_rc 1 && one_line_error "rt-mini.en-q4_0.bin" || return 1
    hark vad --vad-model "$VAD" "$tmp/no-such.wav"
    expect_rc 1 && one_line_error "no-such.wav" || return 1
    local c args
    for c in "--vad-threshold 2|--vad-threshold" "--vad-threshold 0|--vad-threshold" "--vad-pad-ms x|--vad-pad-ms" \
        "--vad-min-speech-ms -1|--vad-min-speech-ms" "--vad-max-speech-s 0.5|--vad-max-speech-s" "-f xml|xml" \
        "--no-vad|--no-vad" "--bogus|--bogus"; do
        args=${c%%|*}
        # shellcheck disable=SC2086
        hark vad --vad-model "$VAD" $args "$JFK"
        expect_rc 2 && one_line_error "${c#*|}" || { say "($args)"; return 1; }
    done
    hark vad --vad-model "$VAD"
    expect_rc 2 && one_line_error "no input file" || return 1
    HARK_VAD_THRESHOLD=x "$HARK" vad --vad-model "$VAD" "$JFK" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    expect_rc 2 && one_line_error "HARK_VAD_THRESHOLD" || return 1
    HARK_VAD=maybe "$HARK" transcribe -m "$MODELS/rt-mini.en-f16.bin" "$JFK" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    expect_rc 2 && one_line_error "HARK_VAD must be 1" || return 1
    # jfk's longest stretch of speech is under 3 s: none is long enough.
    hark vad --vad-model "$VAD" --vad-min-speech-ms 3000 "$JFK"
    expect_rc 0 && [ ! -s "$tmp/out" ] || { say "min speech 3 s: $(cat "$tmp/out")"; return 1; }
}

# The whisper.cpp profile with the model beside the Whisper model: the
# segment times whisper-cli --vad gave, and the settings in the JSON.
test_transcribe_vad() {
    mkdir -p "$tmp/side"
    ln -s "$(realpath "$MODELS/rt-mini-f16.bin")" "$tmp/side/rt-mini-f16.bin"
    cp "$VAD" "$tmp/side/"
    hark transcribe -m "$tmp/side/rt-mini-f16.bin" "${WCPP[@]}" -f json "$JFK"
    expect_rc 0 || return 1
    local want got
    want=$(jq -r '.transcription[] | "\(.offsets.from / 1000) \(.offsets.to / 1000)"' \
        <(LC_ALL=C tr -d '\200-\377' <"$REF/cli_rt-mini-f16_jfk_vad.json"))
    got=$(jq -r '.segments[] | "\(.start) \(.end)"' "$tmp/out")
    [ -n "$want" ] && [ "$want" = "$got" ] || { say "segments: got [$got], whisper-cli [$want]"; return 1; }
    jq -e '.vad.model == "silero-v6.2.0" and .vad.threshold == 0.5 and .vad.pad_ms == 30 and
        .vad.max_speech_s == null and (.vad.speech | length) == 4 and .vad.speech[0].start == 0.32 and
        .vad.speech_duration == 7.85 and .duration == 11' "$tmp/out" >/dev/null ||
        { say "vad: $(jq -c .vad "$tmp/out")"; return 1; }
    hark transcribe -m "$tmp/side/rt-mini-f16.bin" "${WCPP[@]}" -f json --no-vad "$JFK"
    expect_rc 0 && ! jq -e 'has("vad")' "$tmp/out" >/dev/null || { say "--no-vad still detects"; return 1; }
    HARK_VAD=0 "$HARK" transcribe -m "$tmp/side/rt-mini-f16.bin" -f json "${WCPP[@]}" "$JFK" >"$tmp/out" 2>"$tmp/err"
    ! jq -e 'has("vad")' "$tmp/out" >/dev/null || { say "HARK_VAD=0 still detects"; return 1; }
    # Settings from the command line reach the result.
    hark transcribe -m "$tmp/side/rt-mini-f16.bin" "${WCPP[@]}" -f json --vad-threshold 0.6 --vad-pad-ms 50 "$JFK"
    jq -e '.vad.threshold == 0.6 and .vad.pad_ms == 50' "$tmp/out" >/dev/null || { say "settings: $(jq -c .vad "$tmp/out")"; return 1; }
}

# --vad needs a model; by default a missing one only means no detection.
test_transcribe_no_model() {
    hark transcribe -m "$MODELS/rt-mini.en-f16.bin" --vad "$JFK"
    expect_rc 1 && one_line_error "needs a VAD model" || return 1
    hark transcribe -m "$MODELS/rt-mini.en-f16.bin" -f json --beam 1 "$JFK"
    expect_rc 0 && ! jq -e 'has("vad")' "$tmp/out" >/dev/null || { say "detection without a model?"; return 1; }
}

# Speech placed 40 s into silence is transcribed at 40 s, in every format.
test_transcribe_offset() {
    sox -n -r 16000 -c 1 -b 16 "$tmp/sil.wav" trim 0 40 2>/dev/null ||
        python3 -c "import wave,sys; w=wave.open(sys.argv[1],'wb'); w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000); w.writeframes(b'\0\0'*640000)" "$tmp/sil.wav"
    python3 - "$tmp/sil.wav" "$JFK" "$tmp/late.wav" <<'EOF'
import sys, wave
a, b = wave.open(sys.argv[1]), wave.open(sys.argv[2])
out = wave.open(sys.argv[3], "wb")
out.setnchannels(1); out.setsampwidth(2); out.setframerate(16000)
out.writeframes(a.readframes(a.getnframes()) + b.readframes(b.getnframes()))
EOF
    hark transcribe -m "$MODELS/rt-mini.en-f16.bin" --vad-model "$VAD" --beam 1 -f json "$tmp/late.wav"
    expect_rc 0 || return 1
    jq -e '(.segments | length) > 0 and (.segments | all(.start >= 40.32)) and .vad.speech[0].start == 40.32' \
        "$tmp/out" >/dev/null || { say "$(jq -c '[.vad.speech[0], [.segments[] | [.start, .end]]]' "$tmp/out")"; return 1; }
    hark transcribe -m "$MODELS/rt-mini.en-f16.bin" --vad-model "$VAD" --beam 1 -f srt "$tmp/late.wav"
    head -2 "$tmp/out" | tail -1 | grep -q '^00:00:4[0-9],' || { say "srt: $(head -3 "$tmp/out")"; return 1; }
}

t vad_text test_vad_text
t vad_json test_vad_json
t vad_media test_vad_media
t vad_errors test_vad_errors
t transcribe_vad test_transcribe_vad
t transcribe_no_model test_transcribe_no_model
t transcribe_offset test_transcribe_offset

summary
