# lib.sh: helpers for the black-box tests and benchmarks of `hark serve`,
# sourced by tests/api/test_api.sh and tests/bench/api.sh.
#
# api_init makes a temporary folder ($API_TMP) and installs an exit trap that
# stops every server and background process started through these helpers
# and removes the folder, so nothing is left behind whatever way the script
# ends. server_start runs `hark serve` on a free loopback port (--port 0),
# reads its "hark: listening on http://HOST:PORT" line and waits for
# /health; server_stop ends it with SIGTERM and checks that it exited
# cleanly without a sanitizer report.
#
# With HARK_API_PG set to a PostgreSQL server's URI without a database
# (postgres://USER@HOST:PORT; tests/api/test_api_pg.sh sets it), every data
# folder gets a database of its own on that server, created on first use,
# and servers run with --db naming it and a short lease (API_LEASE_S), so
# a job cut off by a killed server is taken back within seconds.
#
# Paths: $HARK_BIN (default build/hark), models in
# ${HARK_TEST_MODELS:-${HARK_SHARED:-../shared}/models}, media in
# ${HARK_TEST_MEDIA:-.../media}, audio in ${HARK_TEST_AUDIO:-.../audio}.

HARK=${HARK_BIN:-build/hark}
SHARED=${HARK_SHARED:-../shared}
MODELS=${HARK_TEST_MODELS:-$SHARED/models}
MEDIA=${HARK_TEST_MEDIA:-$SHARED/media}
AUDIO=${HARK_TEST_AUDIO:-$SHARED/audio}
MODEL=${HARK_API_MODEL:-rt-mini.en-f16}
VAD_MODEL=$SHARED/vad/ggml-silero-v6.2.0.bin
# The load generator (tests/bench/load.c).
LOAD=${HARK_BUILD:-build}/tests/load

# Time limits grow under the sanitizers (HARK_BUILD=build/san), which run
# the engine several times slower.
case "${HARK_BUILD:-build}:$HARK" in
    *san*) SLOW=6 ;;
    *) SLOW=1 ;;
esac

API_TMP=
_api_pids=()

_api_cleanup() {
    local p
    for p in "${_api_pids[@]}"; do
        [ -n "$p" ] && kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    done
    for p in "${_api_pids[@]}"; do
        [ -n "$p" ] && wait "$p" 2>/dev/null
    done
    [ -n "$API_TMP" ] && rm -rf "$API_TMP"
}

api_init() {
    API_TMP=$(mktemp -d "${TMPDIR:-/tmp}/hark-api-XXXXXX") || return 1
    trap _api_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# track PID: a background process the exit trap must end.
track() { _api_pids+=("$1"); }

# untrack PID: it has ended (or been waited for).
untrack() {
    local i
    for i in "${!_api_pids[@]}"; do
        [ "${_api_pids[$i]}" = "$1" ] && unset "_api_pids[$i]"
    done
}

# server_start NAME DATA_DIR [ARGS...]: starts a server on a free loopback
# port with its data in DATA_DIR (created), the shared models, the test
# model, one worker and two threads; ARGS are added (later flags win).
# Environment for the server can be given by the caller with `env`-style
# assignments in SERVER_ENV (an array). Sets ${NAME}_url, ${NAME}_pid,
# ${NAME}_log (stdout) and ${NAME}_err (stderr). Returns non-zero, with the
# reason on stdout, if it does not come up.
SERVER_ENV=()
API_LEASE_S=${API_LEASE_S:-2}
server_start() {
    local name=$1 data=$2 log err pid url i line db_args=()
    shift 2
    mkdir -p "$data"
    if [ -n "${HARK_API_PG:-}" ]; then
        api_pg_db "$data" || return 1
        db_args=(--db "$HARK_API_PG/$api_db" --lease-seconds "$API_LEASE_S")
    fi
    log=$API_TMP/$name.out
    err=$API_TMP/$name.err
    : >"$log"
    env "${SERVER_ENV[@]}" "$HARK" serve --host 127.0.0.1 --port 0 --data "$data" --models "$MODELS" \
        --model "$MODEL" --workers 1 --threads 2 "${db_args[@]}" "$@" >"$log" 2>"$err" &
    pid=$!
    track "$pid"
    printf -v "${name}_pid" %s "$pid"
    printf -v "${name}_log" %s "$log"
    printf -v "${name}_err" %s "$err"
    url=
    for ((i = 0; i < 300 * SLOW; i++)); do
        line=$(grep -m1 '^hark: listening on http://' "$log" 2>/dev/null)
        if [ -n "$line" ]; then
            url=${line#hark: listening on }
            break
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "  server $name exited before listening: $(head -c 400 "$err")"
            return 1
        fi
        sleep 0.05
    done
    if [ -z "$url" ]; then
        echo "  server $name printed no listening line in $((15 * SLOW)) s"
        return 1
    fi
    printf -v "${name}_url" %s "$url"
    for ((i = 0; i < 200 * SLOW; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/health")" = 200 ] && return 0
        sleep 0.05
    done
    echo "  server $name: /health did not answer 200 in $((10 * SLOW)) s"
    return 1
}

# api_pg_db DATA_DIR: sets api_db to the database of a data folder on
# $HARK_API_PG (hark_ and the first 16 hex digits of the folder's SHA-256),
# creating it when it is not there yet. Needs psql: $PG_BINDIR/psql, or
# psql on the PATH.
api_pg_db() {
    local psql=${PG_BINDIR:+$PG_BINDIR/}psql out
    api_db=hark_$(printf %s "$1" | sha256sum | cut -c1-16)
    out=$("$psql" -X -qAt -d "$HARK_API_PG/postgres" \
        -c "SELECT 1 FROM pg_database WHERE datname = '$api_db'" 2>&1) ||
        { echo "  psql on $HARK_API_PG failed: $out"; return 1; }
    [ "$out" = 1 ] && return 0
    out=$("$psql" -X -q -d "$HARK_API_PG/postgres" -c "CREATE DATABASE $api_db" 2>&1) ||
        { echo "  could not create the database $api_db: $out"; return 1; }
}

# npm_install DIR PACKAGE: installs DIR's locked npm packages (npm ci) when
# DIR/node_modules lacks PACKAGE or is older than the lock file; extra
# environment for npm comes from the caller (VAR=value npm_install ...).
# Returns 1 after printing the end of npm's log when it fails.
npm_install() {
    [ -d "$1/node_modules/$2" ] && cmp -s "$1/package-lock.json" "$1/node_modules/.package-lock.json" 2>/dev/null &&
        return 0
    (cd "$1" && timeout 180 npm ci --no-audit --no-fund --loglevel=error) >"$API_TMP/npm.log" 2>&1 && return 0
    grep -v 'Unknown user config' "$API_TMP/npm.log" | tail -5 | sed 's/^/    /'
    return 1
}

# node_checks NAME SECONDS SCRIPT: runs a node script of checks that prints
# "PASS x" / "FAIL x" lines (its environment from the caller, as for
# npm_install), shows its output and adds its lines to $passed and $failed;
# a script that prints no PASS, or exits non-zero without a FAIL, is one
# more FAIL named NAME.
node_checks() {
    local rc p f
    timeout "$2" node "$3" >"$API_TMP/node.out" 2>&1
    rc=$?
    cat "$API_TMP/node.out"
    p=$(grep -c '^PASS ' "$API_TMP/node.out")
    f=$(grep -c '^FAIL ' "$API_TMP/node.out")
    passed=$((passed + p))
    failed=$((failed + f))
    if { [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; } || [ "$p" -eq 0 ]; then
        echo "FAIL $1: node exited with status $rc after $p checks"
        failed=$((failed + 1))
    fi
}

# median: the median of the numbers on stdin, one per line (the lower of
# the two middle ones for an even count).
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

# sanitizer_clean ERRFILE: no AddressSanitizer/UBSan report in the file.
sanitizer_clean() {
    if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$1" 2>/dev/null; then
        echo "  sanitizer report in $1:"
        grep -m3 -E 'ERROR: |runtime error:|SUMMARY' "$1" | sed 's/^/    /'
        return 1
    fi
}

# server_stop NAME: SIGTERM, then waits up to 30 s (x SLOW) for a clean exit
# (status 0, no sanitizer report); SIGKILL after that. The engine looks for
# a cancel between 30 s windows, so a busy worker may take a window to stop. Returns non-zero with
# the reason printed if the stop was not clean.
server_stop() {
    local name=$1 pid_var="${1}_pid" err_var="${1}_err" pid rc i
    pid=${!pid_var:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 600 * SLOW; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        untrack "$pid"
        printf -v "$pid_var" %s ""
        echo "  server $name did not stop on SIGTERM within $((30 * SLOW)) s"
        return 1
    fi
    wait "$pid"
    rc=$?
    untrack "$pid"
    printf -v "$pid_var" %s ""
    if [ "$rc" -ne 0 ]; then
        echo "  server $name exited with status $rc after SIGTERM: $(tail -c 300 "${!err_var}")"
        return 1
    fi
    sanitizer_clean "${!err_var}"
}

# server_kill NAME: SIGKILL, no questions asked.
server_kill() {
    local pid_var="${1}_pid" pid
    pid=${!pid_var:-}
    [ -n "$pid" ] || return 0
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    untrack "$pid"
    printf -v "$pid_var" %s ""
}

# req METHOD URL [CURL ARGS...]: one request; the status lands in $code, the
# body in $API_TMP/body, the headers in $API_TMP/headers. Never fails.
req() {
    local method=$1 url=$2
    shift 2
    code=$(curl -s --path-as-is -X "$method" -o "$API_TMP/body" -D "$API_TMP/headers" \
        -w '%{http_code}' --max-time $((60 * SLOW)) "$@" "$url" 2>/dev/null)
    [ -n "$code" ] || code=000
}

# call METHOD PATH [CURL ARGS...]: req against the server at $url, the
# request kept in $last for messages.
last=
call() {
    local method=$1 path=$2
    shift 2
    last="$method $path"
    req "$method" "$url$path" "$@"
}

# hdr NAME: a header's value from the last req (case-insensitive, no CR).
hdr() {
    awk -v n="$1" 'BEGIN { n = tolower(n) } {
        sub(/\r$/, "")
        i = index($0, ":")
        if (i && tolower(substr($0, 1, i - 1)) == n) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); last = v }
    } END { if (last != "") print last }' "$API_TMP/headers"
}

# wav_header FILE TOTAL_BYTES: a 44-byte 16 kHz mono 16-bit WAV header whose
# data chunk fills a file of TOTAL_BYTES (at most 4 GiB - 1).
wav_header() {
    local total=$2
    LC_ALL=C awk -v t="$total" 'function le(v, n,   i) { for (i = 0; i < n; i++) { printf "%c", v % 256; v = int(v / 256) } }
    BEGIN {
        d = t - 44
        printf "RIFF"; le(t - 8, 4); printf "WAVEfmt "; le(16, 4); le(1, 2); le(1, 2)
        le(16000, 4); le(32000, 4); le(2, 2); le(16, 2); printf "data"; le(d, 4)
    }' >"$1"
}

# load_uploads URL DATA: the two uploads the mixed load of tests/bench/load.c
# reads (tests/api/test_load.sh, tests/bench/api.sh), on a server started
# with a VAD model: two seconds of silence, transcribed with speech
# detection on, so that the job finds no speech and ends at once even under
# the sanitizers (load_id), and jfk.wav for ranged reads (load_media_id);
# load_args are the mixed load's arguments naming them (DATA is the
# server's data folder). Returns non-zero with the reason on stdout.
load_uploads() {
    local wav=$API_TMP/quiet.wav
    wav_header "$wav" 64044 && truncate -s 64044 "$wav" || { echo "  cannot write $wav"; return 1; }
    req POST "$1/upload" -F "file=@$wav"
    load_id=$(jq -r .id "$API_TMP/body" 2>/dev/null)
    [ "$code" = 201 ] || { echo "  upload of quiet.wav: $code $(head -c 300 "$API_TMP/body")"; return 1; }
    req POST "$1/model" -H 'Content-Type: application/json' -d "{\"id\":\"$load_id\",\"vad\":true,\"wait\":true}"
    if [ "$code" != 200 ] || ! jq -e '.status == "done"' "$API_TMP/body" >/dev/null 2>&1; then
        echo "  POST /model with wait: $code $(head -c 300 "$API_TMP/body")"
        return 1
    fi
    req POST "$1/upload" -F "file=@$AUDIO/jfk.wav"
    load_media_id=$(jq -r .id "$API_TMP/body" 2>/dev/null)
    [ "$code" = 201 ] || { echo "  upload of jfk.wav: $code $(head -c 300 "$API_TMP/body")"; return 1; }
    load_args=(--id "$load_id" --dir "$2/db/$load_id" --media-id "$load_media_id" --media "$AUDIO/jfk.wav")
}
