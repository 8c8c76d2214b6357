#!/usr/bin/env bash
# test_faults.sh: `hark serve` when the disk fills, from the outside.
#
# Server D runs with a file size limit (RLIMIT_FSIZE, `ulimit -f`) of
# 512 KiB, the way a nearly full disk stops a write: an upload larger than
# that is answered 507 with the storage error in OpenAI's shape, leaves no
# file in the data folder and no row, and the server goes on serving: a
# smaller upload is stored, listed and read back, and the server stops
# cleanly.
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

# ------------------------------------------------------------------ main

api_init || { echo "FAIL faults_setup"; exit 1; }
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
summary
