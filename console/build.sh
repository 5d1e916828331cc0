#!/bin/sh
# console/build.sh [STAMP] -- build the web console into console/dist with
# npm: `npm ci` (from package-lock.json; only when node_modules is missing or
# older than the lock file), then `vite build`. Works offline once
# node_modules is there. Called by `ninja -C build console`, run.sh and
# test.sh. If npm is missing or fails, says so and exits 0: the server then
# runs without a console and the console tests skip themselves.
case "$1" in
  "") stamp="" ;;
  /*) stamp="$1" ;;
  *) stamp="$PWD/$1" ;;
esac
cd "$(dirname "$0")" || exit 0
fail() {
  echo "console: NOT BUILT: $1 (the API works without it; see docs/console.md)" >&2
  exit 0
}
command -v npm >/dev/null 2>&1 || fail "npm not found"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "console: npm ci"
  # npm 11 refuses `npm ci` for a lock written on one platform when rollup's
  # optional per-platform packages are listed only as optionalDependencies;
  # `npm install` then installs exactly the locked versions and leaves the
  # lock as it is.
  timeout "${RAVAND_NPM_TIMEOUT:-900}" npm ci --no-audit --no-fund --loglevel=error 2>/dev/null \
    || timeout "${RAVAND_NPM_TIMEOUT:-900}" npm install --no-audit --no-fund --loglevel=error \
    || fail "npm ci failed"
fi
timeout 300 npm run --silent build -- --logLevel warn || fail "vite build failed"
echo "console: built console/dist"
[ -n "$stamp" ] && date > "$stamp"
exit 0
