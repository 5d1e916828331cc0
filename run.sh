#!/bin/sh
# run.sh -- the quick start: install what is missing, build, deploy the
# five directives' processes with their Lua rules into an embedded SQLite
# database, load demo data (first run only), start the fake SMS gateway
# and serve the API, timers and jobs.
#   ./run.sh
#   RAVAND_DB=/var/lib/ravand/ravand.db RAVAND_LISTEN=0.0.0.0:8080 ./run.sh
# Demo tokens (one principal per role) are printed and kept in demo/tokens.txt.
set -e
cd "$(dirname "$0")"
./setup.sh
[ -d build ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
# the web console at / (docs/console.md): npm ci once, then vite build; the API works without it
ninja -C build console-dist >/dev/null 2>&1 || true
DB="${RAVAND_DB:-ravand.db}"
LISTEN="${RAVAND_LISTEN:-127.0.0.1:8080}"
SMS_PORT="${RAVAND_FAKE_SMS_PORT:-9099}"
R="build/ravand --db $DB"
$R deploy --scripts scripts processes/*.bpmn
# the fake SMS gateway (loopback only): every SMS the processes send lands there
build/adapters/ravand-fake-sms --port "$SMS_PORT" >/dev/null 2>&1 &
SMS_PID=$!
trap 'kill $SMS_PID 2>/dev/null' EXIT INT TERM
printf '{"sms": {"url": "http://127.0.0.1:%s/send", "sender": "ravand-demo"}}\n' "$SMS_PORT" > ravand.demo.json
if [ "$($R --json instances list --limit 1 | tr -d ' \n\t')" = "[]" ]; then
  RAVAND="$R --config ravand.demo.json" demo/load.sh
fi
echo "run: fake SMS gateway on 127.0.0.1:$SMS_PORT (GET /messages lists what was sent)"
[ -f console/dist/index.html ] && echo "run: web console at http://$LISTEN/ (sign in with a token from demo/tokens.txt)"
$R --config ravand.demo.json serve --listen "$LISTEN" --applicant-starts '*'
