#!/usr/bin/env bash
# test_models.sh: `hark models list` and `hark models download` from the
# outside.
#
# list: the shared models folder, one line per .bin file with its size,
# model type, weight type and multilingual flag; HARK_MODELS; an empty
# folder; a file that is not a model. download: help, usage errors (exit 2,
# one "hark: ..." line, nothing created) and, against a small HTTP server
# started here with python3 on 127.0.0.1, a download that must be byte-
# identical to the source, "already present", --force, HARK_MODEL_URL, a 404,
# and Ctrl-C (SIGINT) in the middle of a transfer, which must exit 1, keep the
# .part file, and be resumed by the next run with "Range: bytes=N-". The
# Silero VAD model downloads from HARK_VAD_URL, is checked as a VAD model,
# and is listed apart from the Whisper models.
#
# Run from the repository root; $HARK_BIN is the binary (default build/hark),
# shared data is at ${HARK_SHARED:-../shared} (HARK_TEST_MODELS overrides its
# models folder). Prints "PASS name" / "FAIL name" per test and ends with
# "N passed, N failed".
set -u

HARK=${HARK_BIN:-build/hark}
SHARED=${HARK_SHARED:-../shared}
MODELS=${HARK_TEST_MODELS:-$SHARED/models}
VAD=$SHARED/vad/ggml-silero-v6.2.0.bin
MODEL=rt-mini.en-q4_0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hark-models-XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/lib.sh"

same_file() {
    if ! cmp -s "$1" "$2"; then
        say "$2 differs from $1 ($(stat -c %s "$2" 2>/dev/null || echo no) bytes)"
        return 1
    fi
}

# ------------------------------------------------------------------ help

test_help() {
    local args
    for args in "models download --help" "models list --help" "models --help" "help models"; do
        # shellcheck disable=SC2086
        hark $args
        expect_rc 0 || { say "for: hark $args"; return 1; }
        grep -q 'hark models download' "$tmp/out" || { say "'hark $args' shows no download usage"; return 1; }
    done
    grep -q 'large-v3-turbo' "$tmp/out" && grep -q 'base.en' "$tmp/out" ||
        { say "help lists no model names"; return 1; }
}

# ------------------------------------------------------------------ list

test_list_shared() {
    local n_files n_lines
    hark models list --models "$MODELS"
    expect_rc 0 || return 1
    n_files=$(find "$MODELS" -maxdepth 1 -name '*.bin' ! -name '.*' | wc -l)
    n_lines=$(($(wc -l <"$tmp/out") - 1))
    [ "$n_lines" -eq "$n_files" ] || { say "$n_lines models listed, $n_files .bin files"; return 1; }
    grep -Eq '^rt-mini\.en-f16 +17\.8 MB +unknown +f16 +no$' "$tmp/out" ||
        { say "no rt-mini.en-f16 line:"; sed 's/^/    /' "$tmp/out"; return 1; }
    grep -Eq '^rt-tiny\.en-f16 +77\.7 MB +tiny +f16 +no$' "$tmp/out" || { say "no rt-tiny.en-f16 line"; return 1; }
    grep -Eq '^rt-v3-f16 .* f16 +yes$' "$tmp/out" || { say "rt-v3-f16 not multilingual"; return 1; }
    grep -Eq '^rt-mini\.en-q5_1 .* q5_1 +no$' "$tmp/out" || { say "no rt-mini.en-q5_1 line"; return 1; }
    [ ! -s "$tmp/err" ] || { say "stderr: $(cat "$tmp/err")"; return 1; }
}

test_list_env() {
    HARK_MODELS=$MODELS "$HARK" models list >"$tmp/env.out" 2>"$tmp/err" || { say "exit $?"; return 1; }
    hark models list --models "$MODELS"
    cmp -s "$tmp/out" "$tmp/env.out" || { say "HARK_MODELS gives another list"; return 1; }
}

test_list_empty() {
    mkdir -p "$tmp/empty"
    hark models list --models "$tmp/empty"
    expect_rc 0 || return 1
    [ ! -s "$tmp/out" ] || { say "stdout: $(cat "$tmp/out")"; return 1; }
    one_line_error "no models in $tmp/empty"
}

test_list_invalid() {
    mkdir -p "$tmp/mixed"
    head -c 5000 "$MODELS/$MODEL.bin" >"$tmp/mixed/ggml-cut.bin"
    cp "$MODELS/$MODEL.bin" "$tmp/mixed/ggml-good.bin"
    hark models list --models "$tmp/mixed"
    expect_rc 0 || return 1
    grep -Eq '^cut +0\.0 MB +invalid: ' "$tmp/out" || { say "no invalid line:"; cat "$tmp/out"; return 1; }
    grep -Eq '^good +6\.3 MB +unknown +q4_0 +no$' "$tmp/out" || { say "no good line:"; cat "$tmp/out"; return 1; }
}

# ------------------------------------------------------------ usage errors

usage_error() {
    hark "$@"
    expect_rc 2 || { say "for: hark $*"; return 1; }
    one_line_error || { say "for: hark $*"; return 1; }
}

test_usage_errors() {
    usage_error models download &&
        usage_error models download --models "$tmp/new" ../x &&
        usage_error models download --models "$tmp/new" a/b &&
        usage_error models download --models "$tmp/new" "" &&
        usage_error models download --models "$tmp/new" .hidden &&
        usage_error models download --models "$tmp/new" base.en ../../etc/passwd &&
        usage_error models download --bogus base.en &&
        usage_error models download --models &&
        usage_error models list extra &&
        usage_error models list --force &&
        usage_error models list --base-url http://x &&
        usage_error models frobnicate || return 1
    grep -q "not a model name" <(hark models download ../x; cat "$tmp/err") || { say "no name error"; return 1; }
    [ ! -e "$tmp/new" ] || { say "a refused download created $tmp/new"; return 1; }
}

# -------------------------------------------------- download (local server)

# A small HTTP server: /files/ggml-NAME.bin is $MODELS/NAME.bin (and the
# VAD model as silero-v6.2.0, a text file as silero-v9.9.9), with
# "Range: bytes=N-" answered by 206; /slow/ggml-NAME.bin announces the whole
# file, sends 256 KiB and then trickles one byte every 50 ms. Every request's
# path and Range header are appended to range.log.
start_server() {
    command -v python3 >/dev/null || { say "python3 is needed for the download tests"; return 1; }
    cat >"$tmp/server.py" <<'EOF'
import http.server, os, re, sys, time
root, port_file, log_file = sys.argv[1], sys.argv[2], sys.argv[3]

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        rng = self.headers.get("Range") or ""
        with open(log_file, "a") as log:
            log.write("%s %s\n" % (self.path, rng or "-"))
        m = re.fullmatch(r"/(files|slow)/ggml-([A-Za-z0-9._-]+)\.bin", self.path)
        path = os.path.join(root, m.group(2) + ".bin") if m else None
        if not path or not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            data = f.read()
        start = 0
        r = re.fullmatch(r"bytes=(\d+)-", rng)
        if m.group(1) == "files" and r:
            start = int(r.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        try:
            if m.group(1) == "files":
                self.wfile.write(data[start:])
                return
            self.wfile.write(data[:256 * 1024])
            self.wfile.flush()
            for i in range(256 * 1024, min(len(data), 256 * 1024 + 600)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
EOF
    mkdir -p "$tmp/root"
    for f in "$MODELS"/*.bin; do ln -s "$(realpath "$f")" "$tmp/root/"; done
    ln -s "$(realpath "$VAD")" "$tmp/root/silero-v6.2.0.bin"
    echo "not a model" >"$tmp/root/silero-v9.9.9.bin"
    python3 "$tmp/server.py" "$tmp/root" "$tmp/port" "$tmp/range.log" &
    server_pid=$!
    for _ in $(seq 100); do
        [ -s "$tmp/port" ] && break
        sleep 0.05
    done
    [ -s "$tmp/port" ] || { say "the test HTTP server did not start"; return 1; }
    URL="http://127.0.0.1:$(cat "$tmp/port")"
    # A proxy from the environment must not carry loopback requests.
    export no_proxy='*'
}

test_download() {
    local dir=$tmp/dl/models
    hark models download --models "$dir" --base-url "$URL/files" "$MODEL"
    expect_rc 0 || return 1
    same_file "$MODELS/$MODEL.bin" "$dir/ggml-$MODEL.bin" || return 1
    [ "$(ls -A "$dir")" = "ggml-$MODEL.bin" ] || { say "files left: $(ls -A "$dir")"; return 1; }
    # Not a terminal: one summary line, no progress.
    [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "^hark: downloaded $MODEL: " "$tmp/err" ||
        { say "stderr: $(cat "$tmp/err")"; return 1; }

    hark models download --models "$dir" --base-url "$URL/files" "$MODEL"
    expect_rc 0 || return 1
    grep -q "already present" "$tmp/err" || { say "second run: $(cat "$tmp/err")"; return 1; }

    printf 'old' >"$dir/ggml-$MODEL.bin"
    hark models download --models "$dir" --base-url "$URL/files" --force "$MODEL"
    expect_rc 0 || return 1
    same_file "$MODELS/$MODEL.bin" "$dir/ggml-$MODEL.bin"
}

test_download_env() {
    local dir=$tmp/env-models
    HARK_MODELS=$dir HARK_MODEL_URL=$URL/files/ "$HARK" models download "$MODEL" >"$tmp/out" 2>"$tmp/err" ||
        { say "exit $?: $(cat "$tmp/err")"; return 1; }
    same_file "$MODELS/$MODEL.bin" "$dir/ggml-$MODEL.bin"
}

test_download_missing() {
    local dir=$tmp/missing
    hark models download --models "$dir" --base-url "$URL/files" nope.en
    expect_rc 1 || return 1
    one_line_error "no model nope.en at $URL/files/ggml-nope.en.bin" || return 1
    [ -z "$(ls -A "$dir")" ] || { say "files left: $(ls -A "$dir")"; return 1; }
}

# The VAD model comes from its own address; it is checked as a VAD model
# (a Whisper model's loader would refuse it), and a file that is none is
# removed.
test_download_vad() {
    local dir=$tmp/vad-models
    HARK_VAD_URL=$URL/files HARK_MODEL_URL=$URL/nowhere "$HARK" models download --models "$dir" silero-v6.2.0 \
        >"$tmp/out" 2>"$tmp/err" || { say "exit $?: $(cat "$tmp/err")"; return 1; }
    same_file "$VAD" "$dir/ggml-silero-v6.2.0.bin" || return 1
    cp "$MODELS/$MODEL.bin" "$dir/ggml-$MODEL.bin"
    hark models list --models "$dir"
    expect_rc 0 || return 1
    [ "$(grep -c ' MB ' "$tmp/out")" -eq 1 ] && grep -Eq "^$MODEL " "$tmp/out" && ! grep -q '^silero' "$tmp/out" &&
        grep -q "^speech detection: silero-v6.2.0 (0.9 MB, $dir/ggml-silero-v6.2.0.bin)\$" "$tmp/out" ||
        { say "list:"; sed 's/^/    /' "$tmp/out"; return 1; }
    hark models download --models "$dir" --base-url "$URL/files" silero-v9.9.9
    expect_rc 1 && one_line_error "not a valid speech-detection model" || return 1
    [ ! -e "$dir/ggml-silero-v9.9.9.bin" ] && [ ! -e "$dir/.ggml-silero-v9.9.9.bin.part" ] ||
        { say "files left: $(ls -A "$dir")"; return 1; }
}

test_download_interrupt() {
    local dir=$tmp/int part pid have
    part=$dir/.ggml-$MODEL.bin.part
    "$HARK" models download --models "$dir" --base-url "$URL/slow" "$MODEL" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    for _ in $(seq 200); do
        [ "$(stat -c %s "$part" 2>/dev/null || echo 0)" -gt 0 ] && break
        sleep 0.05
    done
    kill -INT "$pid"
    wait "$pid"
    rc=$?
    expect_rc 1 || return 1
    one_line_error "interrupted" || return 1
    have=$(stat -c %s "$part" 2>/dev/null || echo 0)
    [ "$have" -gt 0 ] || { say "no .part file kept"; return 1; }
    cmp -s -n "$have" "$part" "$MODELS/$MODEL.bin" || { say ".part is not a prefix of the model"; return 1; }
    [ ! -e "$dir/ggml-$MODEL.bin" ] || { say "an interrupted download was put in place"; return 1; }

    hark models download --models "$dir" --base-url "$URL/files" "$MODEL"
    expect_rc 0 || return 1
    same_file "$MODELS/$MODEL.bin" "$dir/ggml-$MODEL.bin" || return 1
    grep -q "resumed" "$tmp/err" || { say "summary: $(cat "$tmp/err")"; return 1; }
    grep -q "^/files/ggml-$MODEL.bin bytes=$have-\$" "$tmp/range.log" ||
        { say "no request for bytes=$have-:"; sed 's/^/    /' "$tmp/range.log"; return 1; }
}

t help test_help
t list_shared test_list_shared
t list_env test_list_env
t list_empty test_list_empty
t list_invalid test_list_invalid
t usage_errors test_usage_errors
if start_server; then
    t download test_download
    t download_env test_download_env
    t download_missing test_download_missing
    t download_vad test_download_vad
    t download_interrupt test_download_interrupt
else
    echo "FAIL download_server"
    failed=$((failed + 1))
fi
summary
