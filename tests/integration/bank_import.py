#!/usr/bin/env python3
"""tests/integration/bank_import.py -- `ravand bank import` of payment
confirmations against instances waiting for "payment-confirmed"
(tests/fixtures/adapters/bank-payment.bpmn).

  1. a file with good, duplicate, malformed, unknown-payment and
     mismatched-amount lines: exact counts, line numbers and reasons;
     the right instances moved on, with the payload as variables
  2. the same file again: a no-op (nothing new in any table)
  3. a second file: a bank_ref from the first file is a duplicate; a
     corrected confirmation for the mismatched payment correlates
  4. the buffered confirmation reaches an instance started later
  5. a file whose last line has no line break: that line is rejected
  6. a file without the header is refused as a whole (exit 1, nothing kept)
  7. the stored report (`bank report`, `bank list`) matches
  8. the HTTP callback: who may post, outcomes, a repeated call is a no-op
usage: bank_import.py RAVAND SOURCE_ROOT       (prints TAP)
"""
import json, os, shutil, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import Server       # noqa: E402  (the API tests' harness, for the HTTP callback)
from proc_common import T, Ravand, finish, ok  # noqa: E402

RAVAND, ROOT = sys.argv[1], sys.argv[2]
FIX = os.path.join(ROOT, "tests", "fixtures", "adapters", "bank-payment.bpmn")
NOW = "2025-10-01T10:00:00+03:30"
tmp = tempfile.mkdtemp(prefix="rv-bank-")
R = Ravand(RAVAND, os.path.join(tmp, "t.db"), NOW)
run, q, one = R.run, R.q, R.one


def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return path


def import_json(path, expect=0):
    p = run("--json", "bank", "import", path, expect=expect)
    return json.loads(p.stdout) if p.returncode == 0 else None


def snapshot():
    return [one("SELECT count(*) FROM %s" % t) for t in
            ("bank_imports", "bank_confirmations", "messages", "journal", "history")]


def state_of(payment_id):
    """(instance, waiting at the catch?) for the instance with payment_id."""
    for (iid,) in q("SELECT id FROM instances ORDER BY id"):
        d = json.loads(run("--json", "instances", "show", str(iid)).stdout)
        if d["variables"].get("payment_id") == payment_id:
            return d
    return None


def waiting(d):
    return any(t.get("element") == "wait_paid" for t in d.get("tokens", []))


ok(run("deploy", FIX).returncode == 0, "deploy the fixture")
for v in [{"payment_id": "P-1", "amount_rials": 1500000},
          {"payment_id": "P-2", "amount_rials": "2000000"},
          {"payment_id": "P-3", "slip_amount": 500000},
          {"payment_id": "P-4", "amount_rials": 700000},
          {"payment_id": "P-5"}]:
    run("start", "bank_payment", json.dumps(v))

# 1. mixed file ---------------------------------------------------------------------
F1 = write("day1.csv",
           "\ufeffpayment_id,amount_rials,paid_at,bank_ref\r\n"    # BOM and CRLF are fine
           "P-1,1500000,2025-10-01T09:00:00+03:30,REF-1\r\n"       # 2 correlated
           "P-2,۲۰۰۰۰۰۰,2025-10-01,REF-2\r\n"                      # 3 correlated (Persian digits)
           "P-1,1500000,2025-10-01T09:00:00+03:30,REF-1\r\n"       # 4 duplicate in the same file
           "P-3,500000,2025-10-01T06:30:00Z,REF-3\r\n"             # 5 correlated (slip_amount)
           "P-4,710000,2025-10-01T06:30:00Z,REF-4\r\n"             # 6 mismatched
           "P-9,100000,2025-10-01T06:30:00Z,REF-9\r\n"             # 7 buffered: nobody waits
           "P-5,12.5,2025-10-01,REF-5\r\n"                         # 8 rejected: amount
           "P-6,100,1404/07/09,REF-6\r\n"                          # 9 rejected: paid_at
           "P-7,100\r\n"                                           # 10 rejected: 2 fields
           "\r\n"                                                  # 11 blank: skipped
           "\"P-8,100,2025-10-01,REF-8\r\n"                        # 12 rejected: bad quoting
           ",100,2025-10-01,REF-10\r\n"                            # 13 rejected: no payment_id
           "P-5,300000,2025-10-01,REF-11\r\n")                     # 14 correlated (no amount)
r = import_json(F1)
ok(r is not None, "day1: imported")
r = r or {"counts": {}, "lines": []}
ok(r["counts"] == {"correlated": 4, "started": 0, "buffered": 1, "duplicate": 1, "mismatched": 1, "rejected": 5},
   "day1: counts 4 correlated, 1 buffered, 1 duplicate, 1 mismatched, 5 rejected (%s)" % r["counts"])
ok(r["total"] == 12 and len(r["lines"]) == 12, "day1: 12 lines reported (blank line skipped)")
by_line = {l["line"]: l for l in r["lines"]}
ok({n: by_line[n]["outcome"] for n in by_line} ==
   {2: "correlated", 3: "correlated", 4: "duplicate", 5: "correlated", 6: "mismatched", 7: "buffered",
    8: "rejected", 9: "rejected", 10: "rejected", 12: "rejected", 13: "rejected", 14: "correlated"},
   "day1: every line has the expected outcome at its line number")
ok("mismatched amount" in by_line[6].get("reason", "") and "700000" in by_line[6]["reason"]
   and "710000" in by_line[6]["reason"], "day1: mismatch names both amounts")
ok("amount_rials" in by_line[8]["reason"] and "paid_at" in by_line[9]["reason"]
   and "2 fields" in by_line[10]["reason"] and "payment_id" in by_line[13]["reason"],
   "day1: rejected lines carry their reason")
ok(r["applied_rials"] == 1500000 + 2000000 + 500000 + 100000 + 300000, "day1: applied Rials total")
for pid, moved in [("P-1", True), ("P-2", True), ("P-3", True), ("P-4", False), ("P-5", True)]:
    d = state_of(pid)
    ok(d is not None and waiting(d) != moved, "day1: %s %s" % (pid, "moved on" if moved else "still waits"))
d = state_of("P-1")
ok(d and d["variables"].get("bank_ref") == "REF-1" and d["variables"].get("paid_at") == "2025-10-01T09:00:00+03:30",
   "day1: the payload reached the instance")
ok(one("SELECT count(*) FROM bank_confirmations") == 12, "day1: 12 rows recorded")
ok(one("SELECT count(*) FROM messages WHERE name='payment-confirmed' AND consumed_by IS NULL") == 1,
   "day1: one message buffered")

# 2. the same file again ----------------------------------------------------------------
before = snapshot()
r2 = import_json(F1)
ok(r2 is not None and r2["already_imported"] is True and r2["import"] == r["import"],
   "again: reported as imported before, same import id")
ok(r2 is not None and r2["counts"] == r["counts"], "again: the first import's counts")
ok(snapshot() == before, "again: no new row in imports, confirmations, messages, journal, history")

# 3. a second file --------------------------------------------------------------------------
F2 = write("day2.csv",
           "payment_id,bank_ref,amount_rials,paid_at\n"            # other column order
           "P-1,REF-1,1500000,2025-10-01T09:00:00+03:30\n"         # 2 duplicate of day1
           "P-4,REF-4b,700000,2025-10-02\n"                        # 3 corrected: correlated
           "P-4,REF-4,710000,2025-10-01T06:30:00Z\n")              # 4 second payment of P-4
r3 = import_json(F2)
c3 = r3["counts"] if r3 else {}
ok(c3.get("duplicate") == 2 and c3.get("correlated") == 1, "day2: 2 duplicates, 1 correlated (%s)" % c3)
ok(r3 and [l["outcome"] for l in r3["lines"]] == ["duplicate", "correlated", "duplicate"], "day2: per-line outcomes")
ok(r3 and "applied before" in r3["lines"][0]["reason"] and "second payment" in r3["lines"][2]["reason"],
   "day2: a repeated bank_ref and a second payment are told apart")
ok(not waiting(state_of("P-4")), "day2: P-4 moved on")

# 4. buffered confirmation reaches a later instance -------------------------------------------
run("start", "bank_payment", json.dumps({"payment_id": "P-9", "amount_rials": 100000}))
d = state_of("P-9")
ok(d is not None and not waiting(d) and d["variables"].get("bank_ref") == "REF-9",
   "buffered: P-9 started later and received REF-9 at once")

# 5. last line cut off ------------------------------------------------------------------------
run("start", "bank_payment", json.dumps({"payment_id": "P-20", "amount_rials": 5000000}))
F3 = write("cut.csv", "payment_id,amount_rials,paid_at,bank_ref\nP-20,500,2025-10-03,REF-20")
r4 = import_json(F3)
ok(r4 and r4["counts"]["rejected"] == 1 and "cut off" in r4["lines"][0]["reason"],
   "cut: the last line without a line break is rejected")
ok(waiting(state_of("P-20")), "cut: P-20 still waits")

# 6. no header -------------------------------------------------------------------------------
before = snapshot()
F4 = write("nohead.csv", "P-20,5000000,2025-10-03,REF-21\n")
p = run("bank", "import", F4, expect=1)
ok(p.returncode == 1 and "header" in p.stderr, "nohead: refused as a whole (exit %d)" % p.returncode)
ok(snapshot() == before, "nohead: nothing recorded")

# 7. stored reports -------------------------------------------------------------------------
p = run("--json", "bank", "report", str(r["import"]))
ok(p.returncode == 0 and json.loads(p.stdout)["counts"] == r["counts"], "report: day1's stored report")
p = run("--json", "bank", "list")
lst = json.loads(p.stdout) if p.returncode == 0 else []
ok(len(lst) == 3 and [x["total"] for x in lst] == [1, 3, 12], "list: 3 imports, newest first")
p = run("bank", "import", F1)
ok(p.returncode == 0 and "imported before" in p.stdout, "text report says imported before")
ok(one("SELECT count(*) FROM bank_confirmations WHERE outcome IN ('correlated','started','buffered')") ==
   one("SELECT count(DISTINCT bank_ref) FROM bank_confirmations WHERE outcome IN ('correlated','started','buffered')"),
   "every applied bank_ref exactly once")
ok(one("PRAGMA integrity_check") == "ok", "integrity_check ok")

# 8. the HTTP callback (POST /v1/bank/confirmations) ------------------------------------
sv = Server(RAVAND)
try:
    sv.cli("deploy", FIX)
    for pid, amount in [("H-1", 1000), ("H-2", 2000)]:
        sv.cli("start", "bank_payment", json.dumps({"payment_id": pid, "amount_rials": amount}))
    sv.principal("op", "operator")
    sv.principal("melli", "organisation", organisation="bank-melli", agreement="bank-confirmations")
    sv.principal("inquirer", "organisation", organisation="org-x", agreement="inquiry")
    sv.start()
    body = {"confirmations": [
        {"payment_id": "H-1", "amount_rials": 1000, "paid_at": "2025-10-02T08:00:00Z", "bank_ref": "HB-1"},
        {"payment_id": "H-1", "amount_rials": "1000", "paid_at": "2025-10-02T08:00:00Z", "bank_ref": "HB-1"},
        {"payment_id": "H-2", "amount_rials": 2500, "paid_at": "2025-10-02", "bank_ref": "HB-2"},
        {"payment_id": "H-3", "amount_rials": 12.5, "paid_at": "2025-10-02", "bank_ref": "HB-3"},
        "not an object"]}
    r = sv.req("POST", "/v1/bank/confirmations", body=body)
    ok(r.status == 401, "http: no token -> 401 (%d)" % r.status)
    r = sv.req("POST", "/v1/bank/confirmations", who="inquirer", body=body)
    ok(r.status == 403, "http: an organisation without the bank agreement -> 403 (%d)" % r.status)
    r = sv.req("POST", "/v1/bank/confirmations", who="melli", body=body)
    ok(r.status == 200, "http: the bank posts -> 200 (%d)" % r.status)
    cj = r.json["counts"] if r.status == 200 else {}
    ok(cj == {"correlated": 1, "started": 0, "buffered": 0, "duplicate": 1, "mismatched": 1, "rejected": 2},
       "http: 1 correlated, 1 duplicate, 1 mismatched, 2 rejected (%s)" % cj)
    ok(r.status == 200 and [l["line"] for l in r.json["lines"]] == [1, 2, 3, 4, 5], "http: lines are item numbers")
    r = sv.req("POST", "/v1/bank/confirmations", who="melli", body=body)
    cj = r.json["counts"] if r.status == 200 else {}
    ok(r.status == 200 and cj.get("duplicate") == 2 and cj.get("correlated") == 0 and cj.get("mismatched") == 1,
       "http: the same call again applies nothing new (%s)" % cj)
    r = sv.req("POST", "/v1/bank/confirmations", who="op", body={"confirmations": []})
    ok(r.status == 400, "http: an empty list -> 400 (%d)" % r.status)
    code, report = sv.stop()
    ok(code == 0 and not report, "http: serve stopped cleanly")
    p = sv.cli("--json", "instances", "list", check=False)
    st = {i["id"]: i["status_text"] for i in json.loads(p.stdout)}
    ok(st == {1: "پرداخت تایید شد", 2: "در انتظار تایید پرداخت"}, "http: H-1 moved on, H-2 still waits")
finally:
    if sv.proc is not None and sv.proc.poll() is None:
        sv.proc.kill()
        sv.proc.wait()
    if T.failed == 0:
        shutil.rmtree(sv.dir, ignore_errors=True)

sys.exit(finish(tmp))
