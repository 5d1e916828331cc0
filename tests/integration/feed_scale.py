#!/usr/bin/env python3
"""tests/integration/feed_scale.py -- import a generated civil-registry
file of N records (default 100,000) into an engine with records loaded and
the marriage fixture process deployed; check the exact counts, that no
chunk held the loop for long, and that a second import is a no-op.
Prints the timing as TAP diagnostics (docs/performance.md, "Feed import").

usage: feed_scale.py RAVAND_BINARY SOURCE_ROOT [N]
"""
import json, os, shutil, sqlite3, subprocess, sys, tempfile, time

RAVAND, ROOT = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
tmp = tempfile.mkdtemp(prefix="rv-feed-scale-")
DB = os.path.join(tmp, "t.db")
n_test = failed = 0


def ok(cond, what):
    global n_test, failed
    n_test += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n_test, what), flush=True)
    failed += 0 if cond else 1


def run(*args):
    t = time.monotonic()
    p = subprocess.run([RAVAND, "--db", DB, "--now", "2025-10-01T10:00:00+03:30"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[:2000])
    return p, time.monotonic() - t


gen = os.path.join(tmp, "gen")
p, t_gen = run("records", "generate", str(N // 5), gen, "--seed", "2025", "--feed", str(N))
ok(p.returncode == 0, "generate %d persons and a registry file of %d records (%.1f s)" % (N // 5, N, t_gen))
p, _ = run("deploy", os.path.join(ROOT, "tests", "fixtures", "adapters", "marriage-feed.bpmn"))
ok(p.returncode == 0, "deploy the marriage fixture")
p, t_load = run("records", "load", gen)
ok(p.returncode == 0, "load the records (%.1f s)" % t_load)
feed = os.path.join(gen, "marriages.csv")
p, t_imp = run("--json", "feed", "import", feed)
ok(p.returncode == 0, "import")
rep = json.loads(p.stdout) if p.returncode == 0 else {"spouses": {}}
sp = rep.get("spouses", {})
ok(rep.get("applied") == N and rep.get("rejected") == 0 and rep.get("duplicate") == 0,
   "%d applied, 0 rejected, 0 duplicate" % N)
ok(sp.get("started", 0) + sp.get("not_insured", 0) == 2 * N, "every spouse accounted for")
c = sqlite3.connect(DB)
cases = c.execute("SELECT count(*) FROM instances WHERE process_id='marriage_case'").fetchone()[0]
ok(cases == sp.get("started"), "one case per insured spouse (%d)" % cases)
c.close()
ok(rep.get("max_chunk_ms", 1e9) < 3000, "no chunk held the loop for 3 s (longest %.0f ms)" % rep.get("max_chunk_ms", -1))
print("# feed import: %d records, %d cases started, %.1f s wall (%.0f records/s), %d chunks, longest chunk %.0f ms"
      % (N, sp.get("started", 0), t_imp, N / max(t_imp, 1e-9), rep.get("chunks", 0), rep.get("max_chunk_ms", 0)))
p, t_again = run("--json", "feed", "import", feed)
ok(p.returncode == 0 and json.loads(p.stdout)["already_imported"], "second import is a no-op (%.1f s)" % t_again)
print("1..%d" % n_test)
shutil.rmtree(tmp, ignore_errors=True)
sys.exit(1 if failed else 0)
