#!/usr/bin/env bash
# What `make bench` runs: speed figures of hark on random-weight models with
# the real shapes of Whisper tiny, base, small and large-v3 (f16), generated
# once by tools/mkmodel into build/bench-models/ and reused. For each model it
# runs `hark bench`: load, mel, encoder per window, decoder per token (batch
# 1 and 5), and transcriptions of the two reference clips (greedy, beam 5,
# and greedy with word timestamps in both decoding profiles, with the share
# aligning takes), medians of several runs at 1 and 2 threads, with
# whisper.cpp 1.9.3's figures beside ours. It prints figures and never fails: a model that cannot
# be generated or a bench that stops early is reported and the rest go on.
# Then one table of every shape (large-v3-turbo too) in f16, q8_0 and q5_0
# at 2 threads, with the encoder's share of the machine's GEMM and the
# decoder's bytes per token against its read bandwidth, and whisper.cpp's
# figures on the same files when WHISPER_CPP_BENCH names its whisper-bench
# (tests/bench/table.sh). Then speech detection's figures (`hark bench vad`), the HTTP service's
# (tests/bench/api.sh), the job queue's on SQLite and PostgreSQL
# (tests/bench/queue.sh), the search index's (tests/bench/search.sh) and
# how soon a job's events reach a client (tests/bench/events.sh).
#
# Environment:
#   BENCH_MODELS   shapes to run (default: "tiny base small large-v3")
#   BENCH_RUNS     runs per figure (default: 5; 3 for small and large-v3)
#   BENCH_THREADS  thread counts (default: 1,2)
#   BENCH_TIMEOUT  seconds allowed per model (default: per model, so that the
#                  f16 figures stay under 15 minutes on 2 cores)
#   HARK_BIN, HARK_BUILD  set by the Makefile; HARK_SHARED / HARK_TEST_AUDIO
#                  locate the shared data as the tests do.
set -u
bin=${HARK_BIN:-build/hark}
build=${HARK_BUILD:-build}
mkmodel=$build/tools/mkmodel
models_dir=build/bench-models
shared=${HARK_SHARED:-../shared}
audio_dir=${HARK_TEST_AUDIO:-$shared/audio}
threads=${BENCH_THREADS:-1,2}
start=$(date +%s)

echo "hark bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -m)"
if ! "$bin" bench --help >/dev/null 2>&1; then
    echo "note: '$bin bench' is not available; no figures"
    exit 0
fi
mkdir -p "$models_dir"

audio_args=()
for clip in jfk.wav hifitts_concat_75s.wav; do
    if [ -r "$audio_dir/$clip" ]; then
        audio_args+=(-a "$audio_dir/$clip")
    else
        echo "note: $audio_dir/$clip not found; not transcribed"
    fi
done

for m in ${BENCH_MODELS:-tiny base small large-v3}; do
    file=$models_dir/$m-f16.bin
    # Runs, transcription runs, per-figure budget (s) and time limit (s):
    # the large shapes get fewer runs; large-v3 transcribes only jfk greedily
    # (with and without word timestamps), at 2 threads alone.
    extra=()
    t=$threads
    case $m in
        tiny)     runs=5; truns=3; budget=20; limit=120 ;;
        base)     runs=5; truns=3; budget=25; limit=150 ;;
        small)    runs=3; truns=1; budget=30; limit=210 ;;
        large-v3) runs=3; truns=1; budget=60; limit=300; extra=(--no-beam --tokens 16); t=${BENCH_THREADS:-2} ;;
        *)        runs=3; truns=1; budget=30; limit=300 ;;
    esac
    runs=${BENCH_RUNS:-$runs}
    limit=${BENCH_TIMEOUT:-$limit}
    if [ ! -s "$file" ]; then
        echo "generating $file"
        if ! "$mkmodel" --preset "$m" --ftype f16 --seed 1 -q -o "$file"; then
            echo "note: could not generate $m; skipped"
            continue
        fi
    fi
    clips=("${audio_args[@]}")
    if [ "$m" = large-v3 ] && [ ${#audio_args[@]} -ge 2 ]; then
        clips=("${audio_args[@]:0:2}")
    fi
    echo
    timeout --foreground -k 10 "$limit" "$bin" bench -m "$file" --label "$m (random weights)" \
        -t "$t" --runs "$runs" --transcribe-runs "$truns" --budget "$budget" \
        "${clips[@]}" "${extra[@]}"
    rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "  (stopped at the ${limit} s limit for $m; figures above are complete)"
    elif [ $rc -ne 0 ]; then
        echo "  (hark bench exited with status $rc)"
    fi
done
echo
"$(dirname "$0")/table.sh"
echo
# Speech detection: an hour of the shared recordings, and what it saves on a
# recording with long silences (the tiny shape, random weights).
vad=$shared/vad/ggml-silero-v6.2.0.bin
if [ -r "$vad" ]; then
    timeout --foreground -k 10 300 "$bin" bench vad --vad-model "$vad" -a "$audio_dir/jfk.wav" \
        -a "$audio_dir/hifitts_concat_75s.wav" -a "$audio_dir/speech_gaps_71s.wav" -t "$threads" \
        -m "$models_dir/tiny-f16.bin" --gaps "$audio_dir/speech_gaps_71s.wav" ||
        echo "  (hark bench vad exited with status $?)"
else
    echo "note: $vad not found; no speech-detection figures"
fi
echo
"$(dirname "$0")/api.sh"
"$(dirname "$0")/queue.sh"
"$(dirname "$0")/search.sh"
"$(dirname "$0")/events.sh"
echo
echo "bench finished in $(( $(date +%s) - start )) s"
exit 0
