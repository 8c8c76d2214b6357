#!/usr/bin/env bash
# test_cli.sh: the `hark` command from the outside.
#
# Help and usage errors (exit codes 0 and 2), one-line errors with exit 1 for
# missing and malformed inputs, `models info` against the hyperparameters in
# the shared MANIFEST.json, and `hark transcribe` of jfk.wav with the
# rt-mini.en-f32 random-weight model in every output format. The whisper.cpp
# profile with greedy decoding must reproduce whisper.cpp's own segments
# (text, text token ids, times) from reference/rt-mini.en-f32/expect.json.
# Inputs go through FFmpeg (media.c): jfk.mp4 (AAC in MP4, 44.1 kHz stereo)
# and jfk.mp3 transcribe to valid JSON of the right duration; a text file,
# a file cut inside its header and an empty file are one error line each.
#
# Run from the repository root; $HARK_BIN is the binary (default build/hark),
# shared data is at ${HARK_SHARED:-../shared} (HARK_TEST_MODELS,
# HARK_TEST_AUDIO and HARK_TEST_MEDIA override its folders). JSON is read with jq. Prints
# "PASS name" / "FAIL name" per test and ends with "N passed, N failed".
set -u
# The whole audio is transcribed here (speech detection has tests/cli/test_vad.sh).
export HARK_VAD=0

HARK=${HARK_BIN:-build/hark}
SHARED=${HARK_SHARED:-../shared}
MODELS=${HARK_TEST_MODELS:-$SHARED/models}
AUDIO=${HARK_TEST_AUDIO:-$SHARED/audio}
MEDIA=${HARK_TEST_MEDIA:-$SHARED/media}
REF=$SHARED/reference
MINI=$MODELS/rt-mini.en-f32.bin
MINI16=$MODELS/rt-mini.en-f16.bin
TINY=$MODELS/rt-tiny.en-f16.bin
JFK=$AUDIO/jfk.wav
EXPECT=$REF/rt-mini.en-f32/expect.json
# Arguments that make hark decode as whisper-cli -bs 1 -bo 1 -tp 0 -nf did.
WCPP=(--decoder whisper.cpp --beam 1 --best-of 1 --temperature 0 --no-fallback -l en -t 2)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hark-cli-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/lib.sh"

# ------------------------------------------------------------------ help

help_ok() {
    hark "$@"
    expect_rc 0 || return 1
    if ! grep -q 'usage: hark' "$tmp/out"; then
        say "'hark $*' printed no usage on stdout"
        return 1
    fi
}

test_help_main() { help_ok --help && help_ok -h && help_ok help; }
test_help_transcribe() { help_ok transcribe --help && help_ok help transcribe && grep -q -- '--decoder' "$tmp/out"; }
test_help_models() { help_ok models --help && help_ok models info --help && help_ok help models; }
test_help_bench() { help_ok bench --help && help_ok help bench; }
test_help_search() { help_ok search --help && help_ok help search && grep -q -- '--reindex' "$tmp/out"; }
test_version() {
    hark --version
    expect_rc 0 || return 1
    grep -Eq '^hark [0-9]+\.[0-9]+\.[0-9]+$' "$tmp/out" || { say "version line: $(cat "$tmp/out")"; return 1; }
}

# ----------------------------------------------------------- usage errors

# The long-running commands refuse a bad setting before they start anything:
# exit 2 and one line naming it, from a flag or from the environment.
test_serve_worker_usage() {
    local c args
    for c in "serve --port x|--port must be a whole number from 0 to 65535" \
        "serve --workers 65|--workers must be" "serve --lease-seconds 0|--lease-seconds must be" \
        "serve --beam-size 0|--beam-size must be a whole number from 1 to 8" \
        "worker --beam-size 9 --db x|--beam-size must be" \
        "worker --threads 0|--threads must be" "worker --workers 0 --db x|--workers must be a whole number from 1" \
        "serve --bogus|--bogus" "worker --bogus|--bogus" "serve extra|extra" "worker extra|extra"; do
        args=${c%%|*}
        hark $args --data "$tmp/nodata"
        expect_rc 2 && one_line_error "${c#*|}" || { say "($args)"; return 1; }
    done
    HARK_WORKERS=99 "$HARK" serve --data "$tmp/nodata" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    expect_rc 2 && one_line_error "HARK_WORKERS must be a whole number from 0 to 64" || return 1
    HARK_BEAM_SIZE=2.5 "$HARK" serve --data "$tmp/nodata" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    expect_rc 2 && one_line_error "HARK_BEAM_SIZE must be a whole number from 1 to 8" || return 1
    HARK_LEASE_SECONDS=x "$HARK" worker --db x >"$tmp/out" 2>"$tmp/err"
    rc=$?
    expect_rc 2 && one_line_error "HARK_LEASE_SECONDS" || return 1
    HARK_WORD_TIMESTAMPS=yes "$HARK" serve --data "$tmp/nodata" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    expect_rc 2 && one_line_error "HARK_WORD_TIMESTAMPS must be a whole number from 0 to 1" || return 1
    hark worker --data "$tmp/nodata"
    expect_rc 2 && one_line_error "--db postgres://" || return 1
    hark worker --db x --models "$MODELS" --model no-such-model
    expect_rc 2 && one_line_error 'no model "no-such-model"' || return 1
    [ ! -e "$tmp/nodata" ] || { say "a refused command made $tmp/nodata"; return 1; }
}

# A worker needs the data folder `hark serve` made (shared, mounted): it
# makes none itself.
test_worker_no_data() {
    hark worker --db "$tmp/w.db" --data "$tmp/nodata" --models "$MODELS"
    expect_rc 1 && one_line_error "no data folder $tmp/nodata/db" || return 1
    [ ! -e "$tmp/nodata" ] || { say "the worker made $tmp/nodata"; return 1; }
}

usage_error() {
    hark "$@"
    expect_rc 2 || { say "for: hark $*"; return 1; }
    one_line_error || { say "for: hark $*"; return 1; }
}

test_usage_errors() {
    usage_error --bogus &&
        usage_error frobnicate &&
        usage_error transcribe --bogus "$JFK" &&
        usage_error transcribe -x "$JFK" &&
        usage_error transcribe -f xml "$JFK" &&
        usage_error transcribe --beam 0 "$JFK" &&
        usage_error transcribe --beam 5x "$JFK" &&
        usage_error transcribe --threads -1 "$JFK" &&
        usage_error transcribe --temperature hot "$JFK" &&
        usage_error transcribe --decoder nope "$JFK" &&
        usage_error transcribe -l klingon "$JFK" &&
        usage_error transcribe "$JFK" -m &&
        usage_error transcribe &&
        usage_error models &&
        usage_error models bogus &&
        usage_error models info &&
        usage_error models info --bogus "$TINY" &&
        usage_error help nothing &&
        usage_error search &&
        usage_error search one two &&
        usage_error search --reindex words &&
        usage_error search --limit 0 words &&
        usage_error search --bogus words
}

test_no_args() {
    hark
    expect_rc 2 || return 1
    grep -q 'usage: hark' "$tmp/err" || { say "no usage on stderr"; return 1; }
}

# -------------------------------------------------------- failing inputs

test_missing_audio() {
    hark transcribe -m "$MINI" "$tmp/no-such.wav"
    expect_rc 1 && one_line_error "no-such.wav"
}

test_missing_model() {
    hark transcribe -m "$tmp/no-such.bin" "$JFK"
    expect_rc 1 && one_line_error "no-such.bin" || return 1
    hark models info "$tmp/no-such.bin"
    expect_rc 1 && one_line_error "no-such.bin"
}

test_malformed_model() {
    printf 'this is not a ggml model file\n' >"$tmp/bad.bin"
    hark models info "$tmp/bad.bin"
    expect_rc 1 && one_line_error "bad.bin" || return 1
    hark transcribe -m "$tmp/bad.bin" "$JFK"
    expect_rc 1 && one_line_error "bad.bin" || return 1
    # A real model cut short after its header and filters.
    head -c 70000 "$MINI" >"$tmp/short.bin"
    hark models info "$tmp/short.bin"
    expect_rc 1 && one_line_error "short.bin"
}

test_non_wav_input() {
    printf 'ID3 not a wave file at all, just some bytes' >"$tmp/song.wav"
    hark transcribe -m "$MINI" -t 2 "$tmp/song.wav"
    expect_rc 1 && one_line_error "song.wav"
}

# ------------------------------------------------------------ models info

# The value printed for an hparam: "  n_vocab        51864" -> 51864.
info_field() { awk -v k="$1" '$1 == k { print $2; exit }' "$tmp/out"; }

test_models_info_tiny() {
    local key want got ok=0
    hark models info "$TINY"
    expect_rc 0 || return 1
    for key in n_vocab n_audio_ctx n_audio_state n_audio_head n_audio_layer n_text_ctx n_text_state \
        n_text_head n_text_layer n_mels ftype; do
        want=$(jq -r --arg k "$key" '.[] | select(.file == "models/rt-tiny.en-f16.bin") | .header_hparams[$k]' \
            "$MODELS/MANIFEST.json")
        got=$(info_field "$key")
        if [ -z "$want" ] || [ "$want" != "$got" ]; then
            say "$key: printed '$got', MANIFEST.json has '$want'"
            ok=1
        fi
    done
    grep -Eq '^tensors +167$' "$tmp/out" || { say "tensor count line: $(grep '^tensors' "$tmp/out")"; ok=1; }
    grep -Eq '^model type +tiny$' "$tmp/out" || { say "model type: $(grep '^model type' "$tmp/out")"; ok=1; }
    grep -Eq '^vocabulary +english-only' "$tmp/out" || { say "vocabulary: $(grep '^vocabulary' "$tmp/out")"; ok=1; }
    grep -Eq '^file size +77704715 bytes' "$tmp/out" || { say "file size: $(grep '^file size' "$tmp/out")"; ok=1; }
    grep -Eq '^  encoder\.conv1\.weight +f16 +\[384, 80, 3\] +184320$' "$tmp/out" ||
        { say "conv1 row: $(grep 'conv1.weight' "$tmp/out")"; ok=1; }
    grep -Eq '^  f32 +100 tensors' "$tmp/out" && grep -Eq '^  f16 +67 tensors' "$tmp/out" ||
        { say "totals: $(grep -A3 '^totals' "$tmp/out" | tr '\n' '|')"; ok=1; }
    # The tensor table has one row per tensor.
    [ "$(grep -Ec '^  (encoder|decoder)\.' "$tmp/out")" -eq 167 ] || { say "table rows != 167"; ok=1; }
    return $ok
}

test_models_info_v3() {
    hark models info "$MODELS/rt-v3-f16.bin"
    expect_rc 0 || return 1
    [ "$(info_field n_mels)" = 128 ] && [ "$(info_field n_vocab)" = 51866 ] &&
        grep -Eq '^tensors +119$' "$tmp/out" &&
        grep -Eq '^vocabulary +multilingual, 100 languages' "$tmp/out" ||
        { say "rt-v3-f16 info:"; head -20 "$tmp/out" | sed 's/^/    /'; return 1; }
}

# ------------------------------------------------------------- transcribe

# The reference segments of whisper.cpp's greedy jfk run as lines
# "t0<TAB>t1<TAB>text" with times as HH:MM:SS,mmm.
ref_srt_lines() {
    jq -r '.runs.jfk.greedy.segments[] |
        def ts: (. * 1000 | round) as $ms |
            "\($ms / 3600000 | floor | tostring | if length < 2 then "0" + . else . end):" +
            "\(($ms % 3600000) / 60000 | floor | tostring | if length < 2 then "0" + . else . end):" +
            "\(($ms % 60000) / 1000 | floor | tostring | if length < 2 then "0" + . else . end)," +
            "\($ms % 1000 | tostring | if length == 1 then "00" + . elif length == 2 then "0" + . else . end)";
        "\(.t0 | ts)\t\(.t1 | ts)\t\(.text | sub("^\\s+"; "") | sub("\\s+$"; ""))"' "$EXPECT"
}

test_reference_segments() {
    local want got
    hark transcribe -m "$MINI" "${WCPP[@]}" -f json "$JFK"
    expect_rc 0 || return 1
    jq -e . "$tmp/out" >/dev/null || { say "output is not JSON"; return 1; }
    want=$(jq -c '[.runs.jfk.greedy.segments[].text]' "$EXPECT")
    got=$(jq -c '[.segments[].text]' "$tmp/out")
    if [ "$want" != "$got" ]; then
        say "segment texts differ from whisper.cpp's"
        say "want: $want"
        say "got:  $got"
        return 1
    fi
    want=$(jq -c '[.runs.jfk.greedy.segments[].tokens[] | select(. < 50256)]' "$EXPECT")
    got=$(jq -c '[.segments[].tokens[] | select(. < 50256)]' "$tmp/out")
    [ "$want" = "$got" ] || { say "text token ids differ: want $want, got $got"; return 1; }
    # Times to within half a millisecond (0.7 may be written 0.7000000000000001).
    want=$(jq -c '[.runs.jfk.greedy.segments[] | [.t0, .t1]]' "$EXPECT")
    got=$(jq -c '[.segments[] | [.start, .end]]' "$tmp/out")
    jq -e -n --argjson w "$want" --argjson g "$got" \
        '($w | length) == ($g | length) and
         all((range($w | length) as $i | range(2) as $j | $w[$i][$j] - $g[$i][$j]); . < 0.0005 and . > -0.0005)' \
        >/dev/null || { say "segment times differ: want $want, got $got"; return 1; }
}

test_format_json() {
    hark transcribe -m "$MINI" "${WCPP[@]}" -f json "$JFK"
    expect_rc 0 || return 1
    jq -e '
        (.task == "transcribe") and (.language == "en") and ((.duration - 11) | . < 0.01 and . > -0.01) and
        (.text | type == "string") and (.language_probability | type == "number") and
        (.segments | length > 0) and
        all(.segments[];
            (.tokens | length > 0) and
            ([.tokens[]] == [.token_details[].id]) and
            all(.token_details[]; (.bytes | test("^([0-9a-f]{2})*$")) and (.p >= 0 and .p <= 1)) and
            (.start <= .end) and (.avg_logprob | type == "number"))' "$tmp/out" >/dev/null ||
        { say "JSON fields wrong: $(head -c 400 "$tmp/out")"; return 1; }
    # The tokens jq saw must be the ones decoded: every reference id is there.
    local ids
    ids=$(jq -r '.runs.jfk.greedy.tokens[]' "$EXPECT")
    for id in $ids; do
        jq -e --argjson id "$id" 'any(.segments[].tokens[]; . == $id)' "$tmp/out" >/dev/null ||
            { say "token id $id missing from the JSON"; return 1; }
    done
}

test_format_txt() {
    local want
    hark transcribe -m "$MINI" "${WCPP[@]}" -f txt "$JFK"
    expect_rc 0 || return 1
    want=$(ref_srt_lines | cut -f3)
    [ "$(cat "$tmp/out")" = "$want" ] || { say "txt: want '$want', got '$(cat "$tmp/out")'"; return 1; }
}

test_format_srt() {
    local want
    hark transcribe -m "$MINI" "${WCPP[@]}" -f srt "$JFK"
    expect_rc 0 || return 1
    want=$(ref_srt_lines | awk -F'\t' '{ printf "%d\n%s --> %s\n%s\n\n", NR, $1, $2, $3 }')
    [ "$(cat "$tmp/out")" = "$want" ] || { say "srt:"; diff <(echo "$want") "$tmp/out" | head -10; return 1; }
    # Blocks end with a blank line.
    [ "$(tail -c 2 "$tmp/out" | od -An -c | tr -d ' ')" = '\n\n' ] || { say "srt does not end in a blank line"; return 1; }
}

test_format_vtt() {
    local want
    hark transcribe -m "$MINI" "${WCPP[@]}" -f vtt "$JFK"
    expect_rc 0 || return 1
    want=$(printf 'WEBVTT\n\n'; ref_srt_lines | tr ',' '.' | awk -F'\t' '{ printf "%s --> %s\n%s\n\n", $1, $2, $3 }')
    [ "$(cat "$tmp/out")" = "$want" ] || { say "vtt:"; diff <(echo "$want") "$tmp/out" | head -10; return 1; }
}

test_format_tsv() {
    local want
    hark transcribe -m "$MINI" "${WCPP[@]}" -f tsv "$JFK"
    expect_rc 0 || return 1
    want=$(printf 'start\tend\ttext\n'
        jq -r '.runs.jfk.greedy.segments[] | "\(.t0_cs * 10)\t\(.t1_cs * 10)\t\(.text | sub("^\\s+"; "") | sub("\\s+$"; ""))"' "$EXPECT")
    [ "$(cat "$tmp/out")" = "$want" ] || { say "tsv:"; diff <(echo "$want") "$tmp/out" | head -10; return 1; }
}

# openai-whisper's rules with the defaults (beam 5, fallback): a valid result.
test_default_decoder() {
    hark transcribe -m "$MINI" -t 2 -f json "$JFK"
    expect_rc 0 || return 1
    jq -e '(.segments | length > 0) and all(.segments[]; ([.tokens[]] == [.token_details[].id]))' \
        "$tmp/out" >/dev/null || { say "bad JSON: $(head -c 300 "$tmp/out")"; return 1; }
}

# -o FILE writes what stdout would have held; -o DIR one file per input.
test_output_file() {
    hark transcribe -m "$MINI" "${WCPP[@]}" -f srt "$JFK"
    expect_rc 0 || return 1
    cp "$tmp/out" "$tmp/stdout.srt"
    hark transcribe -m "$MINI" "${WCPP[@]}" -f srt -o "$tmp/file.srt" "$JFK"
    expect_rc 0 || return 1
    [ ! -s "$tmp/out" ] || { say "-o also wrote to stdout"; return 1; }
    cmp -s "$tmp/file.srt" "$tmp/stdout.srt" || { say "-o file differs from stdout output"; return 1; }
}

test_output_dir() {
    mkdir -p "$tmp/dir"
    cp "$JFK" "$tmp/second.wav"
    hark transcribe -m "$MINI" "${WCPP[@]}" -f tsv -o "$tmp/dir" "$JFK" "$tmp/second.wav"
    expect_rc 0 || return 1
    [ -s "$tmp/dir/jfk.wav.tsv" ] && [ -s "$tmp/dir/second.wav.tsv" ] ||
        { say "expected dir/jfk.wav.tsv and dir/second.wav.tsv: $(ls "$tmp/dir")"; return 1; }
    cmp -s "$tmp/dir/jfk.wav.tsv" "$tmp/dir/second.wav.tsv" || { say "same audio, different results"; return 1; }
}

# A failed input among good ones: the good one is still written, status 1.
test_partial_failure() {
    printf 'RIFF....WAVEjunk' >"$tmp/junk.wav"
    hark transcribe -m "$MINI" "${WCPP[@]}" -f txt "$tmp/junk.wav" "$JFK"
    expect_rc 1 && one_line_error "junk.wav" || return 1
    [ "$(cat "$tmp/out")" = "$(ref_srt_lines | cut -f3)" ] || { say "the good file's text is missing"; return 1; }
}

# ------------------------------------------------------- other media

# jfk.mp4 (AAC, 44.1 kHz stereo, with video) and jfk.mp3 (16 kHz mono) are
# the 11 s of jfk.wav: valid JSON with segments and an 11 s duration (AAC's
# last frame may add up to 1024 samples at 44.1 kHz, 0.023 s).
media_json_ok() {
    hark transcribe -m "$MINI16" -t 2 --beam 1 --best-of 1 --no-fallback -l en -f json "$1"
    expect_rc 0 || return 1
    jq -e '(.task == "transcribe") and ((.duration - 11) | . < 0.03 and . > -0.03) and
        (.text | type == "string") and (.segments | length > 0) and
        all(.segments[]; (.start <= .end) and (.tokens | length > 0))' "$tmp/out" >/dev/null ||
        { say "$(basename "$1"): bad JSON: $(head -c 300 "$tmp/out")"; return 1; }
    # FFmpeg's own log is silenced: nothing reaches stderr.
    [ ! -s "$tmp/err" ] || { say "stderr not empty: $(head -c 200 "$tmp/err")"; return 1; }
}

test_transcribe_mp4() { media_json_ok "$MEDIA/jfk.mp4"; }
test_transcribe_mp3() { media_json_ok "$MEDIA/jfk.mp3"; }

# Not media at all: one line naming the file, exit 1, nothing on stdout.
test_text_input() {
    printf 'These are meeting notes,\nnot a recording.\n' >"$tmp/notes.txt"
    hark transcribe -m "$MINI16" -t 2 "$tmp/notes.txt"
    expect_rc 1 && one_line_error "notes.txt" || return 1
    [ ! -s "$tmp/out" ] || { say "stdout not empty"; return 1; }
}

# A recording cut short inside its header (the first 300 bytes of jfk.flac)
# and an empty file: one error line each.
test_broken_media() {
    head -c 300 "$MEDIA/jfk.flac" >"$tmp/cut.flac"
    hark transcribe -m "$MINI16" -t 2 "$tmp/cut.flac"
    expect_rc 1 && one_line_error "cut.flac" || return 1
    : >"$tmp/empty.mp3"
    hark transcribe -m "$MINI16" -t 2 "$tmp/empty.mp3"
    expect_rc 1 && one_line_error "empty.mp3"
}

if ! command -v jq >/dev/null; then
    echo "FAIL cli_setup: jq is not installed (tools/install-deps.sh installs it)"
    echo "0 passed, 1 failed"
    exit 1
fi
if [ ! -x "$HARK" ]; then
    echo "FAIL cli_setup: no binary at $HARK"
    echo "0 passed, 1 failed"
    exit 1
fi

t help_main test_help_main
t help_transcribe test_help_transcribe
t help_models test_help_models
t help_bench test_help_bench
t help_search test_help_search
t version test_version
t serve_worker_usage test_serve_worker_usage
t worker_no_data test_worker_no_data
t no_args test_no_args
t usage_errors test_usage_errors
t missing_audio test_missing_audio
t missing_model test_missing_model
t malformed_model test_malformed_model
t non_wav_input test_non_wav_input
t models_info_tiny test_models_info_tiny
t models_info_v3 test_models_info_v3
t reference_segments test_reference_segments
t format_json test_format_json
t format_txt test_format_txt
t format_srt test_format_srt
t format_vtt test_format_vtt
t format_tsv test_format_tsv
t default_decoder test_default_decoder
t output_file test_output_file
t output_dir test_output_dir
t partial_failure test_partial_failure
t transcribe_mp4 test_transcribe_mp4
t transcribe_mp3 test_transcribe_mp3
t text_input test_text_input
t broken_media test_broken_media

summary
