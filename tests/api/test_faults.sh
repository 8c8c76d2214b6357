#!/usr/bin/env bash
# test_faults.sh: `hark serve` when the disk fills or the process dies,
# from the outside.
#
# Server D runs with a file size limit (RLIMIT_FSIZE, `ulimit -f`) of
# 512 KiB, the way a nearly full disk stops a write: an upload larger than
# that is answered 507 with the storage error in OpenAI's shape, leaves no
# file in the data folder and no row, and the server goes on serving: a
# smaller upload is stored, listed and read back, and the server stops
# cleanly.
#
# Writing results: server R runs under strace, which fails or kills one
# chosen system call of the process (counted per thread, so in the worker
# that writes results). A job's four result files are each written to a
# temporary file and synced (fsync), then renamed into place, and the job
# is recorded done after the last rename.
#  - Disk full: the k-th fsync fails with ENOSPC, for each of the four
#    files. POST /model with wait answers 507; the job ends failed with the
#    reason in one line, no temporary file stays and the results of the run
#    before are untouched; the same server runs the job again when asked,
#    to the same results as a run without faults.
#  - Killed: the process gets SIGKILL at its k-th fsync, or its k-th rename,
#    for each of the four files. Whatever result files are in place are
#    whole (each the same as a run without faults writes); a plain restart
#    sweeps the temporary files, runs the job once more, and it ends done
#    with the results of a run without faults.
# Under the sanitizers only the first and the last file's steps are tried.
#
# Run from the repository root; helpers and paths as in lib.sh. Prints
# "PASS name" / "FAIL name" per check and ends with "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

# t NAME FUNCTION, say, and the counts; want, jqb and upload.
. "$HERE/../cli/lib.sh"
. "$HERE/checks.sh"

LIMIT_KB=512

# Files under the data folder's db/ and tmp/ (the database files aside).
files() { find "$API_TMP/d/db" "$API_TMP/d/tmp" -type f 2>/dev/null | sort; }

test_upload_past_limit() {
    url=$D_url
    local before
    before=$(files)
    [ "$(stat -c %s "$MEDIA/jfk.flac")" -gt $((LIMIT_KB * 1024)) ] || { say "jfk.flac is not over the limit"; return 1; }
    call POST /upload -F "file=@$MEDIA/jfk.flac"
    want 507 storage || return 1
    jqb '.error.type == "server_error"' || return 1
    [ "$(files)" = "$before" ] || { say "files left: $(files)"; return 1; }
    call GET /uploads
    want 200 && jqb '.total == 0'
}

test_serves_after() {
    url=$D_url
    upload "$MEDIA/jfk.mp3" || return 1
    call GET /uploads
    want 200 && jqb '.total == 1 and .uploads[0].id == $id' --arg id "$up_id" || return 1
    call GET "/$up_id/jfk.mp3" -r 0-99
    want 206 || return 1
    call GET /health
    want 200
}

stop_d() { server_stop D; }

# ---------------------------------------------------------- writing results

RESULTS="json srt vtt txt"

# fault_server ACTION SYSCALL K: server R under strace, the K-th SYSCALL of
# a thread failing with ACTION (error=ENOSPC, signal=KILL). Sets R_url,
# R_pid (strace's) and R_err.
fault_server() {
    [ -z "${R_pid:-}" ] || stop_r >/dev/null
    SERVER_ENV=(FAULT_INJECT="$2:$1:when=$3" FAULT_TRACE="$2")
    HARK=$API_TMP/hark-strace server_start R "$API_TMP/r"
    local rc=$?
    SERVER_ENV=()
    return $rc
}

# stop_r: SIGTERM to the server under strace (strace itself would detach
# and leave it running), a clean exit.
stop_r() {
    local child
    child=$(pgrep -P "$R_pid" | head -1)
    [ -n "$child" ] && kill -TERM "$child"
    server_stop R
}

# job_state: the status of upload $rid on $url, or "" when it is not answered.
job_state() {
    req GET "$url/uploads/$rid"
    [ "$code" = 200 ] && jq -r .status "$API_TMP/body"
}

# wait_state STATE...: waits (60 s) until the upload is in one of them.
wait_state() {
    local i st s
    for ((i = 0; i < 600 * SLOW; i++)); do
        st=$(job_state)
        for s in "$@"; do [ "$st" = "$s" ] && return 0; done
        sleep 0.1
    done
    say "upload $rid is ${st:-not answered}, not $*"
    return 1
}

schedule() {
    call POST /model -H 'Content-Type: application/json' -d "{\"id\":\"$rid\"}"
    want 202
}

# same_results [all|tmp-ok]: every result file in place is the same as the
# clean run's (results.json: its segments); with "all" none may be
# missing; no temporary file is left unless "tmp-ok".
same_results() {
    local f d=$API_TMP/r/db/$rid
    for f in $RESULTS; do
        if [ ! -e "$d/results.$f" ]; then
            [ "${1:-}" != all ] && continue
            say "results.$f is missing"
            return 1
        fi
        if [ "$f" = json ]; then
            jq -S .segments "$d/results.json" >"$API_TMP/segments.json" 2>/dev/null &&
                cmp -s "$API_TMP/segments.json" "$API_TMP/clean/segments.json" ||
                { say "results.json is not whole: $(head -c 200 "$d/results.json")"; return 1; }
        else
            cmp -s "$d/results.$f" "$API_TMP/clean/results.$f" ||
                { say "results.$f differs from a run without faults"; return 1; }
        fi
    done
    if [ "${1:-}" != tmp-ok ] && ls -A "$d" | grep -q '^\.'; then
        say "temporary files left: $(ls -A "$d" | grep '^\.' | tr '\n' ' ')"
        return 1
    fi
}

# The clean run: upload one second of silence, run it, keep its results.
test_results_clean() {
    local f
    wav_header "$API_TMP/silence.wav" 32044 && truncate -s 32044 "$API_TMP/silence.wav" || return 1
    server_start R "$API_TMP/r" || return 1
    url=$R_url
    upload "$API_TMP/silence.wav" || return 1
    rid=$up_id
    schedule || return 1
    wait_state done || return 1
    mkdir -p "$API_TMP/clean"
    for f in $RESULTS; do cp "$API_TMP/r/db/$rid/results.$f" "$API_TMP/clean/" || return 1; done
    jq -S .segments "$API_TMP/clean/results.json" >"$API_TMP/clean/segments.json" || return 1
    server_stop R
}

# results_disk_full K: the K-th fsync fails with ENOSPC.
results_disk_full() {
    fault_server error=ENOSPC fsync "$1" || return 1
    url=$R_url
    call POST /model -H 'Content-Type: application/json' -d "{\"id\":\"$rid\",\"wait\":true}"
    want 507 storage || return 1
    jqb '.status == "failed" and (.error.message | test("No space left on device"))' || return 1
    [ "$(job_state)" = failed ] || { say "the job is $(job_state), not failed"; return 1; }
    jqb '(.error | test("No space left on device")) and (.error | test("\n") | not)' || return 1
    same_results all || return 1
    schedule || return 1
    wait_state done failed || return 1
    [ "$(job_state)" = done ] || { say "the job run again ended $(job_state)"; return 1; }
    same_results all || return 1
    stop_r
}

# results_killed SYSCALL K: SIGKILL at the K-th SYSCALL, then a restart.
results_killed() {
    local i rc
    fault_server signal=KILL "$1" "$2" || return 1
    url=$R_url
    schedule || return 1
    # bash reports a job killed by a signal on stderr when it reaps it.
    exec 3>&2 2>/dev/null
    for ((i = 0; i < 600 * SLOW; i++)); do
        kill -0 "$R_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$R_pid" 2>/dev/null; then
        exec 2>&3 3>&-
        say "the server was not killed (the job is $(job_state))"
        stop_r
        return 1
    fi
    wait "$R_pid"
    rc=$?
    exec 2>&3 3>&-
    untrack "$R_pid"
    R_pid=
    [ "$rc" = 137 ] || { say "the server exited with status $rc, not 137 (SIGKILL)"; return 1; }
    same_results tmp-ok || return 1
    server_start R "$API_TMP/r" || return 1
    url=$R_url
    wait_state done || return 1
    same_results all || return 1
    server_stop R
}

# ------------------------------------------------------------------ main

api_init || { echo "FAIL faults_setup"; exit 1; }
# A server under strace is strace's child: killing strace alone would
# leave it running.
trap '[ -z "${R_pid:-}" ] || pkill -KILL -P "$R_pid"; _api_cleanup' EXIT
# bash's ulimit -f counts KiB (a POSIX sh may count 512-byte blocks).
cat >"$API_TMP/hark-fsize" <<EOF
#!/usr/bin/env bash
ulimit -f $LIMIT_KB || exit 1
exec "$(realpath "$HARK")" "\$@"
EOF
chmod +x "$API_TMP/hark-fsize"
if HARK=$API_TMP/hark-fsize server_start D "$API_TMP/d"; then
    t fault_upload_past_size_limit test_upload_past_limit
    t fault_serves_after_size_limit test_serves_after
    t fault_stop_after_size_limit stop_d
else
    echo "FAIL faults_setup: the server did not start"
    failed=$((failed + 1))
fi

# LeakSanitizer cannot run under ptrace; the other servers look for leaks.
cat >"$API_TMP/hark-strace" <<EOF
#!/usr/bin/env bash
export ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}detect_leaks=0"
exec strace -f -qq -o /dev/null -e trace="\$FAULT_TRACE" -e inject="\$FAULT_INJECT" "$(realpath "$HARK")" "\$@"
EOF
chmod +x "$API_TMP/hark-strace"
if [ "$SLOW" -gt 1 ]; then steps="1 4"; else steps="1 2 3 4"; fi
t fault_results_clean_run test_results_clean
for k in $steps; do
    t "fault_results_disk_full_at_fsync_$k" results_disk_full "$k"
done
for sc in fsync rename; do
    for k in $steps; do
        t "fault_results_killed_at_${sc}_$k" results_killed "$sc" "$k"
    done
done
summary
