#!/usr/bin/env bash
# Part of `make bench`: one table of the encoder per 30 s window and the
# decoder per token (batch 1) at 2 threads, for every released shape in f16,
# q8_0 and q5_0 (random weights made by tools/mkmodel into
# build/bench-models/ and reused), with the encoder's rate as a share of the
# machine's GEMM and the decoder's bytes per token as a share of its read
# bandwidth (both measured by `hark bench`). When WHISPER_CPP_BENCH names a
# whisper.cpp `whisper-bench` binary built outside the project, it runs on
# the same files in the same sitting and its figures and the ratios
# hark / whisper.cpp are printed beside ours. Never fails.
#
# Environment:
#   BENCH_TABLE_MODELS  shapes (default: "tiny base small large-v3 large-v3-turbo")
#   BENCH_TABLE_TYPES   weight types (default: "f16 q8_0 q5_0")
#   BENCH_TABLE_RUNS    runs per figure (default: 3; 2 for the large shapes)
#   WHISPER_CPP_BENCH   path of whisper.cpp's whisper-bench (optional)
set -u
bin=${HARK_BIN:-build/hark}
build=${HARK_BUILD:-build}
mkmodel=$build/tools/mkmodel
models_dir=build/bench-models
wcpp=${WHISPER_CPP_BENCH:-}
mkdir -p "$models_dir"

if [ -n "$wcpp" ] && [ ! -x "$wcpp" ]; then
    echo "note: WHISPER_CPP_BENCH=$wcpp is not an executable; hark's figures only"
    wcpp=
fi
echo "== encoder and decoder by shape and weight type, 2 threads (medians; whisper.cpp:" \
    "${wcpp:-not run, set WHISPER_CPP_BENCH})"
printf '%-16s %-5s %10s %10s %6s %8s %7s %9s %9s %6s %8s %7s\n' model type "enc ms" "wcpp ms" ratio \
    "G(FL)OP/s" "%gemm" "dec ms" "wcpp ms" ratio "MB/tok" "%bw"

# The figure after "label" in hark bench's output: field n of the line.
field() { awk -v pat="$1" -v n="$2" 'index($0, pat) { print $n; exit }'; }
# whisper-bench's per-run milliseconds of one of its timing lines.
wfield() { sed -n "s/.*$1 time = .*( *\([0-9.]*\) ms per run).*/\1/p" | head -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "-" }'; }

for m in ${BENCH_TABLE_MODELS:-tiny base small large-v3 large-v3-turbo}; do
    case $m in
        large*) runs=2; limit=400 ;;
        *)      runs=3; limit=120 ;;
    esac
    runs=${BENCH_TABLE_RUNS:-$runs}
    for t in ${BENCH_TABLE_TYPES:-f16 q8_0 q5_0}; do
        file=$models_dir/$m-$t.bin
        if [ ! -s "$file" ] && ! "$mkmodel" --preset "$m" --ftype "$t" --seed 1 -q -o "$file"; then
            echo "note: could not generate $m $t; skipped"
            continue
        fi
        out=$(timeout --foreground -k 10 "$limit" "$bin" bench -m "$file" -t 2 --runs "$runs" --tokens 32 \
            --no-beam --no-words 2>&1)
        enc=$(field "encoder / 30 s window" 6 <<<"$out")
        rate=$(field "= encoder rate" 4 <<<"$out")
        gemm=$(field "= encoder rate" 6 <<<"$out" | tr -d '(')
        dec=$(field "decoder / token, batch 1" 6 <<<"$out")
        mb=$(field "= bytes read" 4 <<<"$out")
        bw=$(field "= bytes read" 8 <<<"$out" | tr -d '(')
        wenc= wdec=
        if [ -n "$wcpp" ]; then
            wout=$(timeout --foreground -k 10 "$limit" "$wcpp" -m "$file" -t 2 2>&1)
            wenc=$(wfield encode <<<"$wout")
            wdec=$(wfield decode <<<"$wout")
        fi
        printf '%-16s %-5s %10s %10s %6s %8s %7s %9s %9s %6s %8s %7s\n' "$m" "$t" "${enc:--}" "${wenc:--}" \
            "$(ratio "$enc" "$wenc")" "${rate:--}" "${gemm:--}" "${dec:--}" "${wdec:--}" "$(ratio "$dec" "$wdec")" \
            "${mb:--}" "${bw:--}"
    done
done
exit 0
