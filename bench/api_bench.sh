#!/bin/sh
# bench/api_bench.sh -- HTTP API requests per second and p50/p99 latency,
# measured with wrk against the real `ravand serve` on loopback:
#
#   1. start      POST /v1/instances              (operator; creates the tasks)
#   2. task list  GET  /v1/tasks?limit=50         (branch clerk's cartable, audited)
#   3. complete   POST /v1/tasks/{id}/complete    (each task exactly once, form checked)
#
# The store runs as in production (WAL, synchronous=FULL); every write and
# every audited read is acknowledged only after its group commit. Rate
# limits are switched off for the run (they would measure themselves).
#
#   bench/api_bench.sh                 THREADS=2 CONNS=16 DUR=10 BUILD=build
#   SERVE_ARGS="--commit-sync inline"  extra `ravand serve` options (a comparison)
# Prints a Markdown table for docs/performance.md ("HTTP API").
set -e
cd "$(dirname "$0")/.."
ROOT=$PWD
THREADS=${THREADS:-2}
CONNS=${CONNS:-16}
DUR=${DUR:-10}
BUILD=${BUILD:-build}

if ! command -v wrk >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "api_bench: installing wrk" >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
[ -d "$BUILD" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null
R="$ROOT/$BUILD/ravand"

DIR=$(mktemp -d "${TMPDIR:-/tmp}/ravand-api-bench-XXXXXX")
DB="$DIR/bench.db"
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

$R --db "$DB" principal add op --role operator >/dev/null
$R --db "$DB" principal add an --role analyst >/dev/null
$R --db "$DB" principal add clerk --role branch --branch B1 >/dev/null
OP=$($R --db "$DB" principal token op)
AN=$($R --db "$DB" principal token an)
CLERK=$($R --db "$DB" principal token clerk)

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
$R --db "$DB" serve --listen "127.0.0.1:$PORT" --rate -1 --rate-addr -1 \
   --max-conns-per-addr 1024 ${SERVE_ARGS:-} 2>"$DIR/serve.log" &
PID=$!
i=0
until curl -fsS "$URL/healthz" >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -gt 100 ] && { cat "$DIR/serve.log" >&2; exit 1; }; sleep 0.1
done

python3 - "$ROOT/bench/api/api-bench.bpmn" > "$DIR/deploy.json" <<'EOF'
import json, sys
print(json.dumps({"files": [{"path": "processes/api-bench.bpmn", "content": open(sys.argv[1]).read()}]}))
EOF
curl -fsS -X POST -H "Authorization: Bearer $AN" -H 'Content-Type: application/json' \
     --data-binary @"$DIR/deploy.json" "$URL/v1/deployments" >/dev/null

run() {   # name token script path [seconds]
  RAVAND_TOKEN=$2 wrk -t"$THREADS" -c"$CONNS" -d"${5:-$DUR}s" --latency -s "$ROOT/bench/api/$3" "$URL$4" \
    > "$DIR/$1.txt" 2>&1
  cat "$DIR/$1.txt" >&2
}
field() {   # file pattern -> second column
  awk -v p="$2" '$1 == p { print $2; exit }' "$1"
}
row() {     # label name
  f="$DIR/$2.txt"
  rps=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' "$f")
  total=$(awk '/requests in/ { print $1; exit }' "$f")
  non2xx=$(awk '/Non-2xx/ { print $5 }' "$f")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$rps" "$(field "$f" 50%)" "$(field "$f" 99%)" \
         "$total" "${non2xx:-0}"
}

# twice as long, so that the completion phase never runs out of tasks
echo "api_bench: starting instances for $((2 * DUR))s" >&2
run start "$OP" start.lua /v1/instances $((2 * DUR))
TASKS=$(curl -fsS -H "Authorization: Bearer $OP" "$URL/metrics" |
        awk '/^ravand_task_backlog\{/ { n += $NF } END { print n + 0 }')
echo "api_bench: $TASKS open tasks" >&2
echo "api_bench: listing the cartable for ${DUR}s" >&2
run list "$CLERK" list.lua "/v1/tasks?process=api-bench&limit=50"
echo "api_bench: completing tasks for ${DUR}s" >&2
RAVAND_TASKS=$TASKS RAVAND_THREADS=$THREADS run complete "$CLERK" complete.lua /
LEFT=$(curl -fsS -H "Authorization: Bearer $OP" "$URL/metrics" |
       awk '/^ravand_task_backlog\{/ { n += $NF } END { print n + 0 }')
BATCH=$(curl -fsS -H "Authorization: Bearer $OP" "$URL/metrics" |
        awk '/^ravand_http_commit_batch_size_sum/ { s = $2 } /^ravand_http_commit_batch_size_count/ { c = $2 }
             END { if (c) printf "%.1f", s / c }')
# optimistic batches run again with savepoints when a request failed after writing
RERUNS=$(curl -fsS -H "Authorization: Bearer $OP" "$URL/metrics" |
         awk '/^ravand_http_batch_reruns_total/ { print $2 }')
AUDIT=$($R --db "$DB" audit verify)
# the disk's limit in the same run: one-row transactions, WAL, synchronous=FULL
FSYNC=$(python3 - "$DIR/fsync.db" <<'EOF'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t(x)")
n, t0 = 0, time.time()
while time.time() - t0 < 2:
    db.execute("BEGIN IMMEDIATE"); db.execute("INSERT INTO t VALUES (1)"); db.execute("COMMIT"); n += 1
print(int(n / (time.time() - t0)))
EOF
)

echo
echo "wrk -t$THREADS -c$CONNS -d${DUR}s, $(nproc) CPUs, $(uname -r), build '$BUILD'"
echo
echo "| call | requests/s | p50 | p99 | requests | non-2xx |"
echo "|---|---|---|---|---|---|"
row "start instance (POST /v1/instances)" start
row "task list, 50 per page (GET /v1/tasks)" list
row "complete task (POST /v1/tasks/{id}/complete)" complete
echo
echo "$TASKS tasks before the completion run, $LEFT after; mean API requests per group commit: $BATCH;" \
     "batches run again: ${RERUNS:-0}"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "storage limit (bare one-row SQLite transactions, same disk): $FSYNC tx/s"
echo "$AUDIT"
