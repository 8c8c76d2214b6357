#!/usr/bin/env bash
# Installs the Debian packages hark needs to build and test, if any is missing.
set -eu
pkgs="build-essential libopenblas-dev libjansson-dev zlib1g-dev jq curl libmicrohttpd-dev libavformat-dev libavcodec-dev libswresample-dev libavutil-dev libsqlite3-dev libssl-dev libcurl4-openssl-dev libpq-dev postgresql python3 chromium strace"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Node.js and npm run the API tests' OpenAI client and the UI tests' playwright-core.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
