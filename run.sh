#!/bin/sh
# run.sh -- the quick start: install, build, deploy the processes with
# their rules into an embedded SQLite database, load demo data and serve.
#   ./run.sh                 (database: ./ravand.db, listen 127.0.0.1:8080)
#   RAVAND_DB=/var/lib/ravand/ravand.db RAVAND_LISTEN=0.0.0.0:8080 ./run.sh
set -e
cd "$(dirname "$0")"
./setup.sh
[ -d build ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
DB="${RAVAND_DB:-ravand.db}"
LISTEN="${RAVAND_LISTEN:-127.0.0.1:8080}"
R="build/ravand --db $DB"
$R deploy --scripts scripts processes/*.bpmn
if [ -x demo/load.sh ] && [ "$($R --json instances list --limit 1)" = "[]" ]; then
  RAVAND="$R" demo/load.sh
fi
exec $R serve --listen "$LISTEN"
