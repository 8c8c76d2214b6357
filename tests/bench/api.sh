#!/usr/bin/env bash
# api.sh: speed figures of `hark serve` on loopback, called by
# tests/bench/run.sh. It prints figures and never fails.
#
#   upload      a 2 GiB WAV (a valid header, then zeros; a sparse file, so
#               reading it costs nothing) sent with `curl -F` to POST
#               /upload: GB/s (median of BENCH_API_RUNS runs), and the
#               server's peak resident memory growth during the upload,
#               sampled from /proc/<pid>/status every 50 ms
#   GET /uploads requests per second against a history of 10,000 uploads
#               (rows written through the store's own interface by a small
#               helper compiled here against libhark-service.a, since 10,000
#               real uploads take minutes), pages of 100 and of 1000 rows,
#               8 connections (curl --parallel), ~5 s per run, median of
#               BENCH_API_RUNS runs
#   many clients the load generator of tests/api/test_load.sh
#               ($HARK_BUILD/tests/load): how fast other requests are
#               answered while 1,000 connections sit idle and one trickles
#               its header, and a mixed load of 200 clients (uploads and
#               deletes, history, metadata, results, ranged media reads)
#               for BENCH_LOAD_SECONDS: requests/s, p50 and p99 latency
#
# Environment: HARK_BIN, HARK_BUILD (set by the Makefile); BENCH_API_RUNS
# (default 3); BENCH_API_UPLOAD_GB (default 2); BENCH_API_ROWS (default
# 10000); BENCH_LOAD_SECONDS (default 60); shared data located as in
# tests/api/lib.sh.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../api/lib.sh"
build=${HARK_BUILD:-build}
runs=${BENCH_API_RUNS:-3}
gb=${BENCH_API_UPLOAD_GB:-2}
rows=${BENCH_API_ROWS:-10000}

echo
echo "hark serve (loopback, $(nproc) CPUs)"
if ! "$HARK" serve --help >/dev/null 2>&1; then
    echo "  note: '$HARK serve' is not available; no figures"
    exit 0
fi
api_init || exit 0

# kb NAME PID: a VmRSS/VmHWM figure in kB.
kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$2/status" 2>/dev/null; }

# ------------------------------------------------------------ upload

bench_upload() {
    local big=$API_TMP/big.wav bytes i out secs status id rss0 hwm0 hwm1 peak sampler gbs=() mbs=() hwms=() s
    bytes=$((gb * 1024 * 1024 * 1024))
    wav_header "$big" "$bytes" && truncate -s "$bytes" "$big" || { echo "  note: cannot make $big"; return; }
    server_start U "$API_TMP/u" >/dev/null || { echo "  note: the server did not start"; return; }
    for ((i = 1; i <= runs; i++)); do
        rss0=$(kb VmRSS "$U_pid")
        hwm0=$(kb VmHWM "$U_pid")
        # The sampler writes the largest VmRSS it sees.
        (
            peak=0
            while kill -0 "$U_pid" 2>/dev/null; do
                s=$(kb VmRSS "$U_pid")
                [ -n "$s" ] && [ "$s" -gt "$peak" ] && { peak=$s; echo "$peak" >"$API_TMP/peak"; }
                sleep 0.05
            done
        ) &
        sampler=$!
        track "$sampler"
        out=$(curl -s -o "$API_TMP/up.json" -w '%{time_total} %{http_code}' --max-time 300 \
            -F "file=@$big" "$U_url/upload")
        kill "$sampler" 2>/dev/null
        wait "$sampler" 2>/dev/null
        untrack "$sampler"
        secs=${out% *}
        status=${out#* }
        peak=$(cat "$API_TMP/peak" 2>/dev/null || echo "$rss0")
        if [ "$status" != 201 ]; then
            echo "  upload run $i: HTTP $status after $secs s: $(head -c 200 "$API_TMP/up.json")"
            continue
        fi
        gbs+=("$(awk -v b="$bytes" -v t="$secs" 'BEGIN { printf "%.3f", b / 1e9 / t }')")
        hwm1=$(kb VmHWM "$U_pid")
        mbs+=("$(awk -v a="$rss0" -v p="$peak" 'BEGIN { printf "%.1f", (p - a) / 1024 }')")
        hwms+=("$(awk -v a="$hwm0" -v p="$hwm1" 'BEGIN { printf "%.1f", (p - a) / 1024 }')")
        printf '  upload run %d: %.2f s, %s GB/s; VmRSS %d kB, sampled peak %d kB (+%s MB); VmHWM %s -> %s kB (+%s MB)\n' \
            "$i" "$secs" "${gbs[-1]}" "$rss0" "$peak" "${mbs[-1]}" "$hwm0" "$hwm1" "${hwms[-1]}"
        id=$(jq -r .id "$API_TMP/up.json")
        curl -s -o /dev/null -X DELETE "$U_url/uploads/$id"
        rm -f "$API_TMP/peak"
    done
    if [ ${#gbs[@]} -gt 0 ]; then
        printf '  upload of %d GiB: median %s GB/s over %d runs; RSS growth during the upload: median %s MB sampled every 50 ms, largest VmHWM rise %s MB\n' \
            "$gb" "$(printf '%s\n' "${gbs[@]}" | median)" "${#gbs[@]}" "$(printf '%s\n' "${mbs[@]}" | median)" \
            "$(printf '%s\n' "${hwms[@]}" | sort -g | tail -1)"
    fi
    server_stop U >/dev/null
    rm -f "$big"
    rm -rf "$API_TMP/u"
}

# ---------------------------------------------------------- GET /uploads

# populate DATA N: N upload rows in DATA/hark.db through the store's
# interface (store.h), with no media behind them: only the history routes
# read them.
populate() {
    local src=$API_TMP/populate.c bin=$API_TMP/populate san=
    case $build in *san*) san=-fsanitize=address,undefined ;; esac
    cat >"$src" <<'EOF'
/* Writes N upload rows into a store: the history for the GET /uploads bench. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store.h"

int main(int argc, char **argv)
{
    struct store *s;
    char err[256];
    int n;
    if (argc != 3) return 2;
    n = atoi(argv[2]);
    if (store_open(argv[1], &s, err, sizeof err) != 0) {
        fprintf(stderr, "populate: %s\n", err);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        struct store_upload u;
        memset(&u, 0, sizeof u);
        snprintf(u.id, sizeof u.id, "%08x-0000-4000-8000-%012x", i, i);
        snprintf(u.filename, sizeof u.filename, "row-%05d.wav", i);
        snprintf(u.sha256, sizeof u.sha256, "%056x%08x", 0, i);
        snprintf(u.content_type, sizeof u.content_type, "audio/wav");
        snprintf(u.model, sizeof u.model, "rt-mini.en-f16");
        store_now(u.upload_date);
        u.size = 32044 + i;
        u.duration_s = 1.0;
        if (store_upload_insert(s, &u, NULL) < 0) {
            fprintf(stderr, "populate: row %d: %s\n", i, store_error(s));
            store_close(s);
            return 1;
        }
    }
    store_close(s);
    return 0;
}
EOF
    gcc -std=c11 -D_GNU_SOURCE -O2 $san -Iinclude -Isrc/engine -Isrc/store -o "$bin" "$src" \
        "$build/libhark-service.a" "$build/libhark.a" \
        ${HARK_SERVICE_LIBS:--lcurl -lmicrohttpd -lavformat -lavcodec -lswresample -lavutil -lsqlite3 -lpq -lcrypto -ljansson} -lm -ldl -pthread \
        2>"$API_TMP/gcc.log" || { echo "  note: the populate helper did not build: $(head -c 300 "$API_TMP/gcc.log")"; return 1; }
    mkdir -p "$1"
    "$bin" "$1/hark.db" "$2"
}

# rps URL N: N GETs of URL over 8 connections; prints requests/s, or
# nothing if any answer was not 200.
rps() {
    local cfg=$API_TMP/curl.cfg i t0 t1 bad
    : >"$cfg"
    for ((i = 0; i < $2; i++)); do printf 'url = "%s"\noutput = "/dev/null"\n' "$1"; done >"$cfg"
    t0=$(date +%s.%N)
    curl -s --parallel --parallel-max 8 -w '%{http_code}\n' -K "$cfg" >"$API_TMP/codes" 2>/dev/null
    t1=$(date +%s.%N)
    bad=$(grep -vc '^200$' "$API_TMP/codes")
    [ "$bad" = 0 ] && [ "$(wc -l <"$API_TMP/codes")" = "$2" ] || return 1
    awk -v n="$2" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }'
}

bench_list() {
    local data=$API_TMP/l t0 t1 total path r n i vals
    t0=$(date +%s.%N)
    populate "$data" "$rows" || return
    t1=$(date +%s.%N)
    server_start L "$data" >/dev/null || { echo "  note: the server did not start on the populated store"; return; }
    total=$(curl -s "$L_url/uploads?limit=1" | jq -r .total)
    printf '  history: %s rows written in %.1f s; GET /uploads reports total %s\n' "$rows" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$total"
    for path in "/uploads" "/uploads?limit=1000" "/uploads?limit=100&offset=9000"; do
        # Calibrate on 200 requests, then size the runs to ~5 s.
        r=$(rps "$L_url$path" 200) || { echo "  GET $path: not every answer was 200"; continue; }
        n=$((r * 5))
        [ "$n" -lt 200 ] && n=200
        [ "$n" -gt 50000 ] && n=50000
        vals=()
        for ((i = 1; i <= runs; i++)); do
            r=$(rps "$L_url$path" "$n") && vals+=("$r")
        done
        if [ ${#vals[@]} -gt 0 ]; then
            printf '  GET %-32s %6s requests/s (median of %d runs of %d requests; runs: %s)\n' "$path" \
                "$(printf '%s\n' "${vals[@]}" | median)" "${#vals[@]}" "$n" "${vals[*]}"
        else
            echo "  GET $path: no run completed with every answer 200"
        fi
    done
    server_stop L >/dev/null
    rm -rf "$data"
}

# ---------------------------------------------------------- many clients

bench_load() {
    local data=$API_TMP/load
    [ -x "$LOAD" ] || { echo "  note: $LOAD is not built; no load figures"; return; }
    [ -r "$VAD_MODEL" ] || { echo "  note: no VAD model at $VAD_MODEL; no load figures"; return; }
    server_start B "$data" --vad-model "$VAD_MODEL" >/dev/null || { echo "  note: the server did not start"; return; }
    echo "  many clients (the load generator of tests/api/test_load.sh):"
    "$LOAD" idle "$B_url" --pid "$B_pid" | sed 's/^/  /'
    if load_uploads "$B_url" "$data"; then
        "$LOAD" mixed "$B_url" "${load_args[@]}" --seconds "${BENCH_LOAD_SECONDS:-60}" | sed 's/^/  /'
    fi
    server_stop B >/dev/null
    rm -rf "$data"
}

bench_upload
bench_list
bench_load
exit 0
