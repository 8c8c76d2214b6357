#!/usr/bin/env bash
# test_workers.sh: many processes on one PostgreSQL queue.
#
# Starts a throwaway cluster (tests/store/pg.sh), one API process
# (`hark serve --workers 0`) and three `hark worker` processes with a 3 s
# lease, all on the cluster's database and one data folder. Queues 30 jobs
# (15 under the sanitizers) over distinct media (cuts of the shared jfk.wav
# at as many lengths, the test model). Meanwhile: the API shows a job running in a worker live; worker 1
# is killed with SIGKILL in the middle of a job, and that job is taken
# back only after its lease has passed; worker 2 gets SIGTERM in the middle
# of a job, releases it and exits 0, and a replacement worker joins; the
# database is restarted (pg_ctl restart) while jobs run, and every process
# reconnects and carries on. A cancel and a delete through the API stop a
# job running in a worker. At the end every job is done exactly once:
# one job row per upload, each done, every upload run once with its four
# result files, no duplicate rows; /health and the processes' SIGTERM
# still behave. Prints "PASS name" / "FAIL name" (reasons indented below)
# and ends with "N passed, N failed". Without PostgreSQL's server binaries
# it fails: the test is required, not optional.
#
# Run from the repository root; $HARK_BIN is the binary (default build/hark).
set -u

cd "$(dirname "$0")/../.." || exit 1
. tests/store/pg.sh
. tests/api/lib.sh

LEASE_S=3
# Under the sanitizers a job takes many times longer: 15 jobs for 3
# workers still see every event below while jobs run.
if [ "$SLOW" -gt 1 ]; then N_JOBS=15; else N_JOBS=30; fi
passed=0
failed=0

say() { echo "  $*"; }
check() {
    if [ "$2" -eq 0 ]; then
        echo "PASS $1"
        passed=$((passed + 1))
    else
        echo "FAIL $1"
        failed=$((failed + 1))
    fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

if [ ! -x "$HARK" ]; then
    check "workers: no binary $HARK (make $HARK)" 1
    finish
fi
api_init || exit 1
if ! pg_start; then
    check "workers: could not start a PostgreSQL cluster" 1
    finish
fi
# Both the processes and the cluster go, whatever way the script ends.
trap '_api_cleanup; pg_stop' EXIT

sql() {
    "$PG_BINDIR/psql" -X -qAt -h 127.0.0.1 -p "$PG_PORT" -U hark -d hark_test -c "$1" 2>/dev/null
}
now_ms() { date +%s%3N; }
# iso_ms TIME: milliseconds since the epoch of a store time.
iso_ms() { date -d "$1" +%s%3N; }

DATA=$API_TMP/data
HOST=$(hostname)

# worker_start NAME: a `hark worker` (one job at a time, one thread);
# sets ${NAME}_pid and ${NAME}_err.
worker_start() {
    local name=$1 out=$API_TMP/$1.out err=$API_TMP/$1.err pid i
    "$HARK" worker --db "$HARK_TEST_PG" --data "$DATA" --models "$MODELS" --model "$MODEL" \
        --workers 1 --threads 1 --lease-seconds "$LEASE_S" >"$out" 2>"$err" &
    pid=$!
    track "$pid"
    printf -v "${name}_pid" %s "$pid"
    printf -v "${name}_err" %s "$err"
    for ((i = 0; i < 300; i++)); do
        grep -q '^hark: worker ready' "$out" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    say "worker $name did not start: $(head -c 300 "$err")"
    return 1
}

# running_job PID SECONDS: prints the id of a job the worker process PID is
# running (past its decoding), waiting for one up to SECONDS.
running_job() {
    local pid=$1 secs=$2 i id
    for ((i = 0; i < secs * 20; i++)); do
        id=$(sql "SELECT id FROM jobs WHERE state = 'running' AND progress >= 10
                  AND worker = '$HOST:$pid/1' LIMIT 1")
        if [ -n "$id" ]; then
            echo "$id"
            return 0
        fi
        sleep 0.05
    done
    return 1
}

n_done() { sql "SELECT COUNT(*) FROM jobs WHERE state = 'done'"; }

# ---- The API process and three workers.
ok=0
server_start api "$DATA" --workers 0 --db "$HARK_TEST_PG" || ok=1
url=${api_url:-}
for w in w1 w2 w3; do worker_start "$w" || ok=1; done
check workers_start "$ok"
if [ "$ok" -ne 0 ]; then finish; fi

# ---- 30 distinct uploads, queued while the workers wait (their wake-up is
# the database's notification).
ok=0
ids=()
for ((i = 1; i <= N_JOBS; i++)); do
    f=$API_TMP/cut$i.wav
    head -c $((96000 + i * 8000)) "$AUDIO/jfk.wav" >"$f"
    id=$(curl -s -F "file=@$f" "$url/upload" | jq -r '.id // empty')
    if [ -z "$id" ]; then
        say "upload $i failed"
        ok=1
        continue
    fi
    ids+=("$id")
    code=$(curl -s -o "$API_TMP/model.json" -w '%{http_code}' -d "{\"id\":\"$id\"}" "$url/model")
    if [ "$code" != 202 ]; then
        say "POST /model $i -> $code $(head -c 200 "$API_TMP/model.json")"
        ok=1
    fi
done
check queue_jobs "$ok"

# ---- The API shows a job running in another process, with its progress.
ok=1
for ((i = 0; i < 400; i++)); do
    for id in "${ids[@]}"; do
        r=$(curl -s "$url/uploads/$id" | jq -r 'select(.status == "running" and .progress > 0) | .progress')
        if [ -n "$r" ]; then
            ok=0
            say "upload $id running in a worker, the API shows $r %"
            break 2
        fi
    done
    sleep 0.05
done
check api_shows_live_progress "$ok"

# ---- /metrics: the queue by state, and what each worker runs anywhere.
ok=1
for ((i = 0; i < 200; i++)); do
    m=$(curl -s "$url/metrics")
    if grep -q "^hark_worker_job_progress{worker=\"$HOST:[0-9]*/1\",job=\"[0-9]*\"} " <<<"$m" &&
        grep -q '^hark_jobs{state="queued"} [0-9]' <<<"$m"; then
        ok=0
        say "$(grep -c '^hark_worker_job_progress{' <<<"$m") workers busy: $(grep '^hark_worker_job_progress{' <<<"$m" | head -3 | tr '\n' ' ')"
        break
    fi
    sleep 0.05
done
[ "$ok" -eq 0 ] || say "/metrics: $(grep -E '^hark_(jobs|worker)' <<<"$m" | tr '\n' ' ')"
check metrics_worker_activity "$ok"

# ---- SIGKILL worker 1 in the middle of a job.
ok=0
killed_job=$(running_job "$w1_pid" $((60 * SLOW))) || ok=1
kill_ms=$(now_ms)
kill -KILL "$w1_pid" 2>/dev/null
wait "$w1_pid" 2>/dev/null
untrack "$w1_pid"
[ -n "$killed_job" ] || say "worker 1 never ran a job"
check sigkill_mid_job "$ok"

# ---- SIGTERM worker 2 in the middle of a job: it releases it, exits 0.
ok=0
term_job=$(running_job "$w2_pid" $((60 * SLOW))) || ok=1
kill -TERM "$w2_pid" 2>/dev/null
for ((i = 0; i < 600; i++)); do
    kill -0 "$w2_pid" 2>/dev/null || break
    sleep 0.05
done
if kill -0 "$w2_pid" 2>/dev/null; then
    say "worker 2 did not exit within 30 s of SIGTERM"
    kill -KILL "$w2_pid"
    ok=1
fi
wait "$w2_pid"
rc=$?
untrack "$w2_pid"
[ "$rc" -eq 0 ] || {
    say "worker 2 exited with status $rc: $(tail -c 300 "$w2_err")"
    ok=1
}
if [ -n "$term_job" ]; then
    # Released at once: queued again, or already another worker's.
    w=$(sql "SELECT state || ' ' || worker FROM jobs WHERE id = $term_job")
    case $w in
        "running $HOST:$w2_pid/1") say "job $term_job still held by the stopped worker"; ok=1 ;;
        *) say "job $term_job after the stop: $w" ;;
    esac
fi
check sigterm_releases_job "$ok"
worker_start w4 || check replacement_worker 1

# ---- Restart the database while jobs run.
ok=0
for ((i = 0; i < 1200; i++)); do
    [ "$(n_done)" -ge $((N_JOBS / 3)) ] && break
    sleep 0.1
done
before=$(n_done)
if ! pg_as_owner "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 restart >/dev/null 2>&1; then
    say "pg_ctl restart failed"
    ok=1
fi
say "database restarted with $before of $N_JOBS jobs done"
check database_restart "$ok"

# ---- Every job ends done.
ok=1
for ((i = 0; i < 3000 * SLOW; i++)); do
    [ "$(n_done)" = "$N_JOBS" ] && { ok=0; break; }
    sleep 0.1
done
[ "$ok" -eq 0 ] || say "after $((300 * SLOW)) s: $(sql "SELECT state, COUNT(*) FROM jobs GROUP BY state" | tr '\n' ' ')"
check all_jobs_done "$ok"
[ "$(n_done)" -gt "${before:-0}" ] || say "no job was done after the restart"

# ---- Exactly once: one job per upload, each done; each upload run once
# and holding its four results; no duplicate rows.
ok=0
v=$(sql "SELECT COUNT(*), COUNT(DISTINCT upload_id), COUNT(*) FILTER (WHERE state = 'done') FROM jobs")
[ "$v" = "$N_JOBS|$N_JOBS|$N_JOBS" ] || { say "jobs (rows|uploads|done): $v"; ok=1; }
v=$(sql "SELECT COUNT(*), COUNT(DISTINCT sha256), COUNT(*) FILTER (WHERE model_ran = 1) FROM uploads")
[ "$v" = "$N_JOBS|$N_JOBS|$N_JOBS" ] || { say "uploads (rows|contents|run): $v"; ok=1; }
for id in "${ids[@]}"; do
    d=$DATA/db/$id
    n=$(ls "$d" | grep -c '^results\.')
    if [ "$n" -ne 4 ] || ! jq -e '.segments | length > 0' "$d/results.json" >/dev/null 2>&1; then
        say "upload $id: $n result files, results.json: $(head -c 100 "$d/results.json" 2>/dev/null)"
        ok=1
    fi
done
m=$(curl -s "$url/metrics")
grep -q "^hark_jobs{state=\"done\"} $N_JOBS\$" <<<"$m" || { say "/metrics: $(grep '^hark_jobs{' <<<"$m" | tr '\n' ' ')"; ok=1; }
say "attempts: $(sql "SELECT attempts || 'x' || COUNT(*) FROM jobs GROUP BY attempts ORDER BY attempts" | tr '\n' ' ')"
check exactly_once "$ok"

# ---- The killed worker's job was taken back only once its lease passed.
ok=0
if [ -n "$killed_job" ]; then
    v=$(sql "SELECT attempts || '|' || worker || '|' || started FROM jobs WHERE id = $killed_job")
    IFS='|' read -r att who started <<<"$v"
    gap=$(($(iso_ms "$started") - kill_ms))
    say "job $killed_job: killed at its attempt 1, attempt $att started $gap ms later by $who"
    [ "${att:-0}" -ge 2 ] || ok=1
    [ "$who" != "$HOST:$w1_pid/1" ] || ok=1
    # Its last heartbeat was at most a third of a lease before the kill.
    [ "$gap" -ge $((LEASE_S * 1000 * 2 / 3 - 100)) ] || { say "taken back before its lease passed"; ok=1; }
else
    ok=1
fi
check killed_job_after_lease "$ok"

# ---- Cancel and delete reach a job that runs in another process: its
# worker stops within about a second (its next progress write finds the job
# gone) and writes no results.

# start_running FILE: uploads and schedules FILE, waits until a worker runs
# it past its decoding; sets up_id, job_id and job_pid (the worker's process).
start_running() {
    local i w
    up_id=$(curl -s -F "file=@$1" "$url/upload" | jq -r '.id // empty')
    job_id=$(curl -s -d "{\"id\":\"$up_id\"}" "$url/model" | jq -r '.job_id // empty')
    [ -n "$job_id" ] || { say "could not schedule $1"; return 1; }
    for ((i = 0; i < 1200 * SLOW; i++)); do
        w=$(sql "SELECT worker FROM jobs WHERE id = $job_id AND state = 'running' AND progress >= 10")
        if [ -n "$w" ]; then
            job_pid=${w#*:}
            job_pid=${job_pid%/*}
            return 0
        fi
        sleep 0.05
    done
    say "job $job_id never ran: $(sql "SELECT state || ' ' || progress FROM jobs WHERE id = $job_id")"
    return 1
}

# cpu_ticks PID: the process's user and system time so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null; }

# goes_idle PID: the process uses under a fifth of a core over a second,
# from half a second on (three under the sanitizers). A worker running a
# job uses a whole one.
goes_idle() {
    local t0 t1 hz
    hz=$(getconf CLK_TCK)
    sleep "$(awk -v s="$SLOW" 'BEGIN { print (s > 1 ? 3 : 0.5) }')"
    t0=$(cpu_ticks "$1")
    sleep 1
    t1=$(cpu_ticks "$1")
    [ -n "$t0" ] && [ -n "$t1" ] && [ $((t1 - t0)) -lt $((hz / 5)) ] ||
        { say "worker $1 used $((t1 - t0)) ticks ($hz a second) in the second after"; return 1; }
}

ok=0
# 75 s of speech in three windows: seconds of work for a worker.
cp "$AUDIO/hifitts_concat_75s.wav" "$API_TMP/cancel.wav"
if start_running "$API_TMP/cancel.wav"; then
    code=$(curl -s -o "$API_TMP/cancel.json" -w '%{http_code}' -X POST "$url/jobs/$job_id/cancel")
    [ "$code" = 200 ] || { say "cancel -> $code $(head -c 200 "$API_TMP/cancel.json")"; ok=1; }
    goes_idle "$job_pid" || ok=1
    v=$(sql "SELECT state FROM jobs WHERE id = $job_id")
    [ "$v" = canceled ] || { say "job $job_id is $v"; ok=1; }
    n=$(ls -A "$DATA/db/$up_id" | grep -vc '^cancel\.wav$')
    [ "$n" -eq 0 ] || { say "beside the media: $(ls -A "$DATA/db/$up_id" | tr '\n' ' ')"; ok=1; }
else
    ok=1
fi
check cancel_reaches_worker "$ok"

ok=0
head -c 2000044 "$AUDIO/hifitts_concat_75s.wav" >"$API_TMP/delete.wav"
if start_running "$API_TMP/delete.wav"; then
    code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$url/uploads/$up_id")
    [ "$code" = 200 ] || { say "DELETE -> $code"; ok=1; }
    goes_idle "$job_pid" || ok=1
    [ ! -e "$DATA/db/$up_id" ] || { say "left: $(ls -A "$DATA/db/$up_id" | tr '\n' ' ')"; ok=1; }
    v=$(sql "SELECT COUNT(*) FROM jobs WHERE id = $job_id")
    [ "$v" = 0 ] || { say "the job's row is still there"; ok=1; }
else
    ok=1
fi
check delete_reaches_worker "$ok"

# ---- The processes are well after the restart.
ok=0
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/health")" = 200 ] || { say "/health after the restart"; ok=1; }
for w in w3 w4; do
    pid_var=${w}_pid
    pid=${!pid_var}
    kill -TERM "$pid"
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    wait "$pid"
    rc=$?
    untrack "$pid"
    [ "$rc" -eq 0 ] || { say "worker $w exited with status $rc"; ok=1; }
done
server_stop api || ok=1
check clean_stops "$ok"
finish
