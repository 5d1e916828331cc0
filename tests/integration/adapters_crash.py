#!/usr/bin/env python3
"""tests/integration/adapters_crash.py -- kill -9 the ravand CLI between
the durable steps of the payroll/finance ledger, the export and the feed
import (RV_TEST_CRASH_AT), restart, and check the exact outcome.

  A. ledger: the rows are written inside the command that reaches the
     service tasks (the `tick` that fires the cases' timers; adapter.h
     answer_now); the process dies after the k-th row is written and before
     that command commits: nothing of the tick is left (no row without its
     case moving on), and after recovery every job has exactly one row and
     every case moved on exactly once.
  A2. the same through the loop ($RAVAND_ANSWER_NOW=0, as an engine without
     answers inside the command): the process dies after the ledger rows are
     committed and before the answers are applied, at different jobs; after
     recovery every job has exactly one row and every case moved on once.
  B. export: the exporter dies after cutting the batch, after writing the
     first row and the whole temporary file, after fsync, after the rename;
     at every moment each
     visible *.csv is complete; after recovery every row is in exactly one
     batch and one file, control totals match, re-export is byte-identical,
     no temporary file is left.
  C. feed: the importer dies after a committed chunk; a second run resumes
     and the result is the same as one clean run (no lost or doubled
     record, message or case); a third run is a no-op.

usage: adapters_crash.py RAVAND_BINARY SOURCE_ROOT
Prints TAP.
"""
import csv, glob, hashlib, io, os, signal, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proc_common import Ravand, finish, ok  # noqa: E402

RAVAND, ROOT = sys.argv[1], sys.argv[2]
FIX = os.path.join(ROOT, "tests", "fixtures", "adapters")
NOW = "2025-10-01T10:00:00+03:30"
tmp = tempfile.mkdtemp(prefix="rv-adapters-")
DB = os.path.join(tmp, "t.db")
R = Ravand(RAVAND, DB, NOW)
run, q, one = R.run, R.q, R.one      # run(..., crash=POINT): RV_TEST_CRASH_AT, the CLI kills itself there


IDS = ["0499370899", "0790419904", "0084575948", "0963695398", "0684159414", "0067749828",
       "0650451252", "1583250689", "4032152314", "0076229645", "4271467685", "0200203241"]


def start_cases(n, first, process="ledger_case"):
    for i in range(first, first + n):
        run("start", process,
            '{"national_id":"%s","period":"1404-0%d","premium":%d,"grant":%d,'
            '"sheba":"IR820540102680020817909002","reference":"MG-%d"}'
            % (IDS[i % len(IDS)], 6 + i % 2, 4700000 + i, 103909680 + i, i))


# --- A. ledger ---------------------------------------------------------------
ok(run("deploy", os.path.join(FIX, "ledger.bpmn"), os.path.join(FIX, "marriage-feed.bpmn")).returncode == 0,
   "deploy fixtures")
start_cases(30, 0, "ledger_timed")
ok(one("SELECT count(*) FROM timers") == 30 and one("SELECT count(*) FROM fin_ledger") == 0,
   "ledger: 30 cases wait on their timers, no row yet")
kills = atomic = 0
for k in [1, 3, 2, 5, 1, 4, 7, 2, 6, 3, 1, 8]:
    p = run("tick", crash="ledger-written:%d" % k, expect=None)
    if p.returncode == -signal.SIGKILL:
        kills += 1
        atomic += (one("SELECT count(*) FROM fin_ledger") == 0 and one("SELECT count(*) FROM timers") == 30
                   and one("SELECT count(*) FROM jobs") == 0)
    elif p.returncode != 0:
        ok(False, "tick exited %d: %s" % (p.returncode, p.stderr))
ok(kills >= 8, "ledger: killed %d times between a ledger row and its command's commit" % kills)
ok(atomic == kills, "ledger: after each kill no row, no job and no fired timer is left (%d of %d)" % (atomic, kills))
ok(run("tick").returncode == 0, "ledger: a clean tick finishes the work")
ok(one("SELECT count(*) FROM fin_ledger") == 60, "ledger: exactly 60 rows for 60 jobs (%d)" % one("SELECT count(*) FROM fin_ledger"))
ok(one("SELECT count(DISTINCT job_key) FROM fin_ledger") == 60, "ledger: one row per job key")
ok(one("SELECT count(*) FROM jobs WHERE adapter IN ('payroll','finance')") == 0,
   "ledger: answered inside their commands, the jobs left no rows")
ok(one("SELECT count(*) FROM journal, json_each(journal.payload) WHERE command='answers'"
       " AND json_extract(value, '$.outcome')='ok' AND json_type(value, '$.input')='object'"
       " AND json_extract(value, '$.element') IN ('deduct5','pay5')") == 60,
   "ledger: 60 answers journaled, each with its job's input")
ok(one("SELECT count(*) FROM tasks WHERE element_id='wait5' AND state='open'") == 30, "ledger: every case moved on")
ok(one("SELECT count(*) FROM history WHERE event='JOB_COMPLETED'") == 60, "ledger: 60 job completions, none twice")
ok(one("SELECT count(*) FROM fin_ledger WHERE job_key NOT LIKE instance_id || ':%:' || element_id") == 0,
   "ledger: rows carry their job's instance")

# --- A2. ledger through the loop ------------------------------------------------
LOOP = dict(os.environ, RAVAND_ANSWER_NOW="0")
rows0, done0 = one("SELECT count(*) FROM fin_ledger"), one("SELECT count(*) FROM jobs WHERE state='done'")
for i in range(200, 220):
    run("start", "ledger_case",
        '{"national_id":"%s","period":"1404-07","premium":%d,"grant":%d,'
        '"sheba":"IR820540102680020817909002","reference":"MG-%d"}'
        % (IDS[i % len(IDS)], 4700000 + i, 103909680 + i, i), env=LOOP)
ok(one("SELECT count(*) FROM jobs WHERE state='pending' AND adapter='payroll'") == 20 and
   one("SELECT count(*) FROM fin_ledger") == rows0, "loop: 20 cases wait for their payroll job, no row yet")
kills = 0
for k in [1, 3, 2, 5, 1, 4, 7, 2, 6, 3, 1, 8]:
    p = run("tick", crash="ledger-written:%d" % k, expect=None, env=LOOP)
    if p.returncode == -signal.SIGKILL:
        kills += 1
    elif p.returncode != 0:
        ok(False, "loop: tick exited %d: %s" % (p.returncode, p.stderr))
ok(kills >= 8, "loop: killed %d times between ledger commit and answer" % kills)
ok(run("tick", env=LOOP).returncode == 0, "loop: a clean tick finishes the work")
ok(one("SELECT count(*) FROM fin_ledger") == rows0 + 40, "loop: exactly 40 more rows for 40 jobs (%d)" % (one("SELECT count(*) FROM fin_ledger") - rows0))
ok(one("SELECT count(DISTINCT job_key) FROM fin_ledger") == one("SELECT count(*) FROM fin_ledger"), "loop: one row per job key")
ok(one("SELECT count(*) FROM jobs WHERE state='done'") == done0 + 40, "loop: every job done")
ok(one("SELECT count(*) FROM tasks WHERE element_id='wait' AND state='open'") == 20, "loop: every case moved on")
ok(one("SELECT count(*) FROM history WHERE event='JOB_COMPLETED' AND element_id IN ('deduct','pay')") == 40,
   "loop: 40 job completions, none twice")

# --- B. export -----------------------------------------------------------------
OUT = os.path.join(tmp, "out")


def visible_files_complete():
    """Every visible *.csv is a whole batch file."""
    good = True
    for path in glob.glob(os.path.join(OUT, "*.csv")):
        data = open(path, "rb").read()
        name = os.path.basename(path)
        row = q("SELECT id, row_count, sum_rials, sha256 FROM fin_batches WHERE file_name=?", name)
        if not row:
            return False
        bid, count, total, sha = row[0]
        if sha is not None and hashlib.sha256(data).hexdigest() != sha:
            good = False
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
        if len(rows) != count or sum(int(r["amount_rials"]) for r in rows) != total:
            good = False
        if not data.endswith(b"\r\n"):
            good = False
    return good


points = ["export-batched", "export-partial", "export-written", "export-synced", "export-renamed"]
for i, point in enumerate(points):
    start_cases(3, 100 + 3 * i)
    run("tick")
    p = run("export", "payroll", "--dir", OUT, crash=point, expect=None)
    ok(p.returncode == -signal.SIGKILL, "export: killed at %s" % point)
    ok(visible_files_complete(), "export: after the kill at %s every visible file is complete" % point)
    unpublished = one("SELECT count(*) FROM fin_batches WHERE published IS NULL")
    ok(unpublished == 1, "export: the cut batch is recorded, not yet published (%d)" % unpublished)
    p = run("export", "payroll", "--dir", OUT)
    ok(p.returncode == 0 and "left unpublished" in p.stdout, "export: the next run publishes it first")
    ok(visible_files_complete(), "export: after recovery every visible file is complete")
ok(run("export", "finance", "--dir", OUT).returncode == 0, "export: finance")
ok(not glob.glob(os.path.join(OUT, ".*")), "export: no temporary file left")
ok(one("SELECT count(*) FROM fin_ledger WHERE batch_id IS NULL") == 0, "export: every row is in a batch")
ids_in_files = []
for path in sorted(glob.glob(os.path.join(OUT, "*.csv"))):
    for r in csv.DictReader(open(path, encoding="utf-8", newline="")):
        ids_in_files.append(int(r["ledger_id"]))
all_ids = [r[0] for r in q("SELECT id FROM fin_ledger ORDER BY id")]
ok(sorted(ids_in_files) == all_ids, "export: each of %d rows in exactly one file" % len(all_ids))
ok(one("SELECT count(*) FROM fin_batches WHERE sha256 IS NULL") == 0, "export: every batch published")
identical = True
for bid, name, sha in q("SELECT id, file_name, sha256 FROM fin_batches"):
    path = os.path.join(OUT, name)
    before = open(path, "rb").read()
    p = run("export", "again", str(bid), "--dir", OUT)
    after = open(path, "rb").read()
    identical &= p.returncode == 0 and before == after and hashlib.sha256(after).hexdigest() == sha
ok(identical, "export: re-export of every batch is byte-identical")
ok(run("export", "payroll", "--dir", OUT).stdout.startswith("nothing to export"), "export: nothing left")

# --- C. feed -------------------------------------------------------------------
GEN = os.path.join(tmp, "gen")
ok(run("records", "generate", "400", GEN, "--seed", "9", "--feed", "3000").returncode == 0, "feed: generate")
ok(run("records", "load", GEN).returncode == 0, "feed: load records")
FEED = os.path.join(GEN, "marriages.csv")
cases_before = one("SELECT count(*) FROM instances WHERE process_id='marriage_case'")
p = run("feed", "import", FEED, "--chunk", "500", "--chunk-ms", "600000", crash="feed-chunk:2", expect=None)
ok(p.returncode == -signal.SIGKILL, "feed: killed after the second chunk")
ok(one("SELECT count(*) FROM feed_records") == 1000, "feed: two chunks committed (%d)" % one("SELECT count(*) FROM feed_records"))
ok(one("SELECT state FROM feed_imports") == "running", "feed: the import is resumable")
p = run("feed", "import", FEED, "--chunk", "500", "--chunk-ms", "600000", crash="feed-chunk:3", expect=None)
ok(p.returncode == -signal.SIGKILL and one("SELECT count(*) FROM feed_records") == 2500,
   "feed: a resumed run, killed again after three chunks")
p = run("--json", "feed", "import", FEED, "--chunk", "500")
ok(p.returncode == 0, "feed: the third run finishes")
import json
rep = json.loads(p.stdout)
ok(rep["applied"] == 3000 and rep["rejected"] == 0 and rep["duplicate"] == 0, "feed: 3000 applied, 0 rejected, 0 duplicate")
started = rep["spouses"]["started"]
cases = one("SELECT count(*) FROM instances WHERE process_id='marriage_case'") - cases_before
ok(cases == started, "feed: one case per started spouse (%d cases, %d started)" % (cases, started))
ok(started + rep["spouses"]["not_insured"] == 6000, "feed: every spouse accounted for")
ok(one("SELECT count(*) FROM (SELECT count(*) c FROM instances WHERE process_id='marriage_case'"
       " GROUP BY business_key, json_extract(state, '$.eis[0].v.certificate_no'),"
       " json_extract(state, '$.eis[0].v.registry_office') HAVING c > 1)") == 0,
   "feed: no case started twice for the same spouse and record")
ok(one("SELECT count(*) FROM messages WHERE name='marriage-registered'") == started,
   "feed: one recorded message id per started case")
p = run("--json", "feed", "import", FEED)
ok(p.returncode == 0 and json.loads(p.stdout)["already_imported"], "feed: a fourth run is a no-op")
ok(one("SELECT count(*) FROM instances WHERE process_id='marriage_case'") - cases_before == started, "feed: still no new case")
# a truncated copy is rejected as a whole
cut = os.path.join(tmp, "cut.csv")
data = open(FEED, "rb").read()
open(cut, "wb").write(data[: len(data) // 2])
p = run("feed", "import", cut, expect=None)
ok(p.returncode == 1 and "rejected as a whole" in p.stdout, "feed: a truncated file is rejected as a whole")
ok(one("PRAGMA integrity_check") == "ok", "integrity_check ok")

sys.exit(finish(tmp))
