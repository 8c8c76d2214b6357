#!/usr/bin/env bash
# test_load.sh: `hark serve` with many clients, slow ones and idle ones, on
# loopback; tests/bench/load.c ($HARK_BUILD/tests/load) drives them.
#
#   load_idle     1,024 connections that send nothing (the server's sockets
#                 pass FD_SETSIZE, and it was started with a soft limit of
#                 1,024 open files, which it raises) and a client trickling
#                 its header a byte every 50 ms: 20 other requests, each on
#                 a new connection, are answered within a second, and the
#                 trickled one too
#   load_limits   --max-connections 12, --max-connections-per-ip 8,
#                 --idle-timeout-seconds 5: a connection over either limit
#                 is closed unanswered while the server answers others;
#                 silent, half-sent and kept-alive connections are closed
#                 5 s after their last byte; the server then serves again
#   load_fd_limit with a hard limit of 256 open files the connection limit
#                 is lowered to fit, with a note, and the server serves
#   load_mixed    200 clients for 60 s (LOAD_CLIENTS, LOAD_SECONDS):
#                 uploads and their deletion, history pages, an upload's
#                 metadata, its results as json and vtt, ranged reads of a
#                 stored file; every answer checked, none may fail; after
#                 it the history holds only the two uploads it began with
#                 and the temporary folder is empty
#
# The results the mixed load reads come from a real job of the server's,
# kept short (lib.sh's load_uploads): two seconds of silence with speech
# detection on, so the job finds no speech and ends at once, under the
# sanitizers too.
#
# Run from the repository root; paths and shared data as in lib.sh. Prints
# "PASS name" / "FAIL name" and ends with "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

CLIENTS=${LOAD_CLIENTS:-200}
SECONDS_MIXED=${LOAD_SECONDS:-60}
IDLE=1024

# t NAME FUNCTION, say, and the counts; want and jqb.
. "$HERE/../cli/lib.sh"
. "$HERE/checks.sh"

# load MODE ARGS...: the load generator, its lines indented.
load() {
    "$LOAD" "$@" 2>&1 | sed 's/^/  /'
    return "${PIPESTATUS[0]}"
}

test_load_idle() {
    local hard rc
    hard=$(ulimit -Hn)
    if [ "$hard" != unlimited ] && [ "$hard" -lt $((2 * IDLE + 256)) ]; then
        say "the hard limit on open files is $hard; $((2 * IDLE + 256)) are needed"
        return 1
    fi
    # The server starts with a soft limit of 1,024 open files and must raise
    # it itself to hold the connections.
    ulimit -Sn 1024
    server_start I "$API_TMP/i"
    rc=$?
    ulimit -Sn "$hard"
    [ $rc -eq 0 ] || return 1
    load idle "$I_url" --connections "$IDLE" --pid "$I_pid" || return 1
    server_stop I
}

test_load_limits() {
    local max=12 per_ip=8 idle=5
    server_start L "$API_TMP/l" --max-connections $max --max-connections-per-ip $per_ip \
        --idle-timeout-seconds $idle || return 1
    load limits "$L_url" --max-connections $max --per-ip $per_ip --idle-timeout $idle --pid "$L_pid" || return 1
    server_stop L
}

# With a hard limit of 256 open files the connection limit is lowered to
# what they hold ((256 - 64) / 2 = 96), with a note, and the server serves.
test_load_fd_limit() {
    printf '#!/usr/bin/env bash\nulimit -n 256 && exec %q "$@"\n' "$(realpath "$HARK")" >"$API_TMP/hark256"
    chmod +x "$API_TMP/hark256"
    HARK=$API_TMP/hark256 server_start F "$API_TMP/f" --workers 0 || return 1
    if ! grep -q 'at most 96 connections at once, not 4096: the limit on open files is 256' "$F_err"; then
        say "no note about the connection limit on stderr: $(head -c 300 "$F_err")"
        server_stop F
        return 1
    fi
    server_stop F
}

test_load_mixed() {
    local data=$API_TMP/m n
    if [ ! -r "$VAD_MODEL" ]; then
        say "no VAD model at $VAD_MODEL"
        return 1
    fi
    server_start M "$data" --vad-model "$VAD_MODEL" || return 1
    load_uploads "$M_url" "$data" || return 1
    load mixed "$M_url" "${load_args[@]}" --clients "$CLIENTS" --seconds "$SECONDS_MIXED" || return 1
    url=$M_url
    call GET /uploads
    want 200 && jqb '.total == 2' || return 1
    n=$(find "$data/tmp" -mindepth 1 2>/dev/null | wc -l)
    [ "$n" -eq 0 ] || { say "$n entries left in $data/tmp"; return 1; }
    server_stop M
}

if [ ! -x "$LOAD" ]; then
    echo "FAIL load_generator: $LOAD is not built (make $LOAD)"
    echo "0 passed, 1 failed"
    exit 1
fi
api_init || exit 1
t load_idle test_load_idle
t load_limits test_load_limits
t load_fd_limit test_load_fd_limit
t load_mixed test_load_mixed
summary
