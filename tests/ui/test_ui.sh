#!/usr/bin/env bash
# test_ui.sh: the web page of `hark serve` in a real browser.
#
# Starts two servers on free loopback ports with temporary data folders and
# the rt-mini.en-f16 random-weight model (one without and one with an API
# key), installs playwright-core from tests/ui/package-lock.json when it is
# missing or stale, and runs tests/ui/test.mjs, which drives Debian's
# chromium headless through the whole page: uploads with progress, a
# duplicate, a rejected file, scheduling, the transcript player (seeking by
# segment, captions, downloads), the history (filter, sort, pages, delete),
# the API key dialog, whose history a user's key sees (a key made with
# hark keys), the upload-to-player path with the keyboard only, and (on a
# third server with a VAD model) the speech timeline under the video.
# Screenshots of every screen land in a folder this script prints (outside
# the repository; HARK_UI_SHOTS picks it).
#
# Run from the repository root; $HARK_BIN is the binary (default
# build/hark), shared data as in tests/api/lib.sh, $HARK_CHROMIUM the
# browser (default /usr/bin/chromium). Prints "PASS name" / "FAIL name" per
# check and ends with "N passed, N failed"; exits non-zero if anything
# failed.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../api/lib.sh"

passed=0
failed=0
CHROMIUM=${HARK_CHROMIUM:-/usr/bin/chromium}
KEY=ui-test-key-7

setup_fail() {
    echo "FAIL ui_setup: $*"
    echo "$passed passed, $((failed + 1)) failed"
    exit 1
}

for tool in node npm curl; do
    command -v $tool >/dev/null || setup_fail "$tool is not installed (tools/install-deps.sh installs it)"
done
[ -x "$CHROMIUM" ] || setup_fail "no browser at $CHROMIUM (Debian's chromium package; tools/install-deps.sh installs it)"
if [ ! -x "$HARK" ] || ! "$HARK" serve --help >/dev/null 2>&1; then
    setup_fail "'$HARK serve --help' does not work"
fi
api_init || setup_fail "no temporary folder"

PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_install "$HERE" playwright-core ||
    setup_fail "npm ci failed (is the npm registry reachable?)"

server_start A "$API_TMP/a" || setup_fail "the server did not start"
server_start K "$API_TMP/k" --api-key "$KEY" || setup_fail "the server with a key did not start"
# A third server with the VAD model beside the test model: speech detection.
mkdir -p "$API_TMP/vmodels"
ln -s "$(realpath "$MODELS/$MODEL.bin")" "$API_TMP/vmodels/$MODEL.bin"
cp "$VAD_MODEL" "$API_TMP/vmodels/"
server_start V "$API_TMP/v" --models "$API_TMP/vmodels" || setup_fail "the server with a VAD model did not start"

# A user's key on the keyed server (hark keys add on its store): its
# history holds only its own uploads, under its name.
USER_KEY=$("$HARK" keys add carol --data "$API_TMP/k" 2>/dev/null) || setup_fail "hark keys add failed"

SHOTS=${HARK_UI_SHOTS:-$(mktemp -d "${TMPDIR:-/tmp}/hark-ui-shots-XXXXXX")}
mkdir -p "$SHOTS"
echo "  screenshots go to $SHOTS"

HARK_URL=$A_url HARK_KEY_URL=$K_url HARK_VAD_URL=$V_url HARK_KEY=$KEY HARK_USER_KEY=$USER_KEY HARK_MEDIA=$MEDIA HARK_AUDIO=$AUDIO HARK_TMP=$API_TMP \
    HARK_UI_SHOTS=$SHOTS HARK_SLOW=$SLOW HARK_CHROMIUM=$CHROMIUM \
    node_checks ui_browser $((300 * SLOW)) "$HERE/test.mjs"

for s in A K V; do
    if server_stop $s; then
        echo "PASS ui_server_${s}_clean_stop"
        passed=$((passed + 1))
    else
        echo "FAIL ui_server_${s}_clean_stop"
        failed=$((failed + 1))
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
