#!/bin/sh
# setup.sh -- install what ravand needs on Debian 12 (only what is missing).
# Run as root (or with sudo available). Safe to run again.
set -e
PKGS="build-essential meson ninja-build pkg-config libxml2-dev liblua5.4-dev \
libsqlite3-dev libevent-dev libcjson-dev libsodium-dev libcmocka-dev sqlite3 python3 curl \
libssl-dev openssl ca-certificates"
# the web console's browser tests (test.sh): Debian's Chromium, driven by playwright-core
[ "${1:-}" = "--console-tests" ] && PKGS="$PKGS chromium"
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
