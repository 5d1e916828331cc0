#!/usr/bin/env python3
"""tests/integration/sms_gateway.py -- the `sms` adapter against the fake
gateway (ravand-fake-sms), through the real `ravand` binary on loopback.

Each case has its own database and gateway. The process
(tests/fixtures/adapters/sms-notify.bpmn) sends two SMS per instance. The
engine runs as `ravand tick --config FILE` on a virtual clock (--now),
which is moved forward to make retries due (SMS retry: 5 attempts,
backoff 1 min doubling); `serve` is checked once with the system clock.

  1. normal delivery: exact count, masked log, refs = job keys
  2. no config: the in-memory recorder keeps the name `sms`
  3. gateway down (connection refused) -> retried -> delivered once back
  4. HTTP 500 for the first K requests -> each delivered exactly once
  5. accepted, then connection dropped -> re-sent with the same ref ->
     the deduplicating gateway delivers exactly once
  6. kill -9 of ravand while requests are at the gateway -> after restart
     re-sent with the same ref -> exactly one delivery each
  7. non-deduplicating gateway + drops: duplicates == attempts logged as
     ambiguous (the honest bound)
  8. HTTP 400 on every attempt -> failed after 5 attempts, one incident;
     `incidents retry` once the cause is fixed -> delivered
  9. timeout (slow gateway) -> uncertain -> delivered once
 10. `serve --config` delivers; API key from the environment
usage: sms_gateway.py RAVAND FAKE_SMS SOURCE_ROOT      (prints TAP)
"""
import json, os, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proc_common import Gateway, SmsCase, PROCS, exactly_once, finish, kill_all, ok  # noqa: E402

RAVAND, FAKE, ROOT = sys.argv[1], sys.argv[2], sys.argv[3]
FIX = os.path.join(ROOT, "tests", "fixtures", "adapters", "sms-notify.bpmn")
T0 = 1759300200000          # 2025-10-01T10:00:00+03:30
MIN = 60 * 1000
tmp = tempfile.mkdtemp(prefix="rv-sms-")


class Case(SmsCase):
    def __init__(self, name, gw_flags=(), timeout_ms=3000, api_key="k-secret", conf_key=None):
        super().__init__(RAVAND, FAKE, tmp, name, T0, ("--api-key", api_key) + tuple(gw_flags))
        self.write_conf(timeout_ms, api_key if conf_key is None else conf_key)
        self.run("deploy", FIX)

    def write_conf(self, timeout_ms, key):
        with open(self.conf, "w") as f:
            json.dump({"sms": {"url": self.gw.url("/send"), "api_key": key, "sender": "ravand",
                               "timeout_ms": timeout_ms}}, f)


try:
    # 1. normal delivery ----------------------------------------------------------
    c = Case("normal")
    c.start(5)
    ok(c.tick().returncode == 0, "normal: tick")
    st = exactly_once(c, 10, "normal")
    ok(st["requests"] == 10 and st["duplicates"] == 0, "normal: 10 requests, no duplicates")
    m1 = [m for m in st["messages"] if m["to"] == "09120000001"]
    ok(sorted(m["text"] for m in m1) == sorted(["درخواست C-1 ثبت شد", "پرونده C-1 در حال بررسی است"]),
       "normal: Persian templates rendered for instance 1")
    ok(all(m["sender"] == "ravand" for m in st["messages"]), "normal: sender from the config")
    rows = c.q("SELECT recipient, ref, attempts, gateway_id FROM sms_log ORDER BY id")
    ok(all(r[0].startswith("*******") and len(r[0]) == 11 and r[0][-4:].isdigit() for r in rows),
       "normal: recipients masked but the last four digits")
    ok(c.one("SELECT count(*) FROM sms_log WHERE recipient LIKE '0912%'") == 0, "normal: no full number in the log")
    ok(all(r[2] == 1 and r[3] and r[3].startswith("m") for r in rows), "normal: one attempt each, gateway ids kept")
    p = c.run("--json", "sms", "log", "--instance", "1")
    log = json.loads(p.stdout) if p.returncode == 0 else []
    ok(len(log) == 2 and {r["element_id"] for r in log} == {"s", "review"}, "normal: `sms log --instance 1` shows 2 rows")
    ok(c.tick(60 * MIN).returncode == 0 and c.gw.status()["requests"] == 10, "normal: a later tick sends nothing again")
    c.close()

    # 2. no config: the recorder answers --------------------------------------------
    c = Case("noconfig")
    c.start(2)
    ok(c.run("tick").returncode == 0, "recorder: tick without --config")
    ok(c.gw.status()["requests"] == 0, "recorder: nothing reached the gateway")
    ok(c.one("SELECT count(*) FROM sms_log WHERE state='sent'") == 4, "recorder: 4 sent rows in the log")
    c.close()

    # 3. gateway down, then back ----------------------------------------------------
    c = Case("down")
    port = c.gw.port
    c.gw.stop()
    c.start(3)
    ok(c.tick().returncode == 0, "down: tick with the gateway down")
    ok(c.one("SELECT count(*) FROM jobs WHERE adapter='sms' AND state='pending' AND attempts=1") == 6,
       "down: 6 jobs pending after one failed attempt")
    ok(c.one("SELECT count(*) FROM sms_log WHERE state='retrying' AND last_error LIKE '%unreachable%'") == 6,
       "down: log says retrying, unreachable")
    c.tick(2 * MIN)
    ok(c.one("SELECT count(*) FROM jobs WHERE adapter='sms' AND attempts=2") == 6, "down: second attempt failed too")
    c.gw = Gateway(FAKE, c.dir, "--api-key", "k-secret", port=port)
    ok(c.tick(5 * MIN).returncode == 0, "down: tick after the gateway is back")
    st = exactly_once(c, 6, "down")
    ok(st["requests"] == 6, "down: the gateway saw 6 requests (nothing lost, nothing twice)")
    ok(c.one("SELECT count(*) FROM incidents") == 0, "down: no incident")
    c.close()

    # 4. HTTP 500 for the first K ------------------------------------------------------
    c = Case("fail500", gw_flags=("--fail", "7"))
    c.start(5)
    c.tick()
    ok(c.gw.status()["failed"] == 7, "500: the first 7 requests failed")
    for _ in range(3):
        c.tick(30 * MIN)
    st = exactly_once(c, 10, "500")
    ok(st["requests"] == 17 and st["duplicates"] == 0, "500: 17 requests, 0 duplicates")
    ok(c.one("SELECT sum(attempts) FROM sms_log") == 17, "500: the log counts 17 attempts")
    c.close()

    # 5. accepted, then dropped ------------------------------------------------------------
    c = Case("drop", gw_flags=("--drop", "4"))
    c.start(5)
    c.tick()
    st = c.gw.status()
    ok(st["dropped"] == 4 and st["delivered"] == 10, "drop: 4 accepted-then-dropped, 10 delivered")
    ok(c.one("SELECT count(*) FROM sms_log WHERE state='uncertain'") == 4, "drop: 4 log rows uncertain")
    c.tick(30 * MIN)
    st = exactly_once(c, 10, "drop")
    ok(st["duplicates"] == 4 and st["accepted"] == 14, "drop: the 4 re-sends were recognised by ref")
    ok(c.one("SELECT count(*) FROM sms_log WHERE duplicate=1 AND ambiguous=1 AND attempts=2") == 4,
       "drop: log marks the 4 as duplicate at the gateway, one ambiguous attempt")
    ok(all(m["count"] in (1, 2) for m in st["messages"]), "drop: no ref accepted more than twice")
    c.close()

    # 6. kill -9 between dispatch and result -------------------------------------------------
    c = Case("kill", gw_flags=("--delay", "20000"), timeout_ms=30000)
    c.start(4)
    cmd = [RAVAND, "--db", c.db, "--now", str(c.now), "--config", c.conf, "tick"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(p)
    for _ in range(500):
        if c.gw.status()["requests"] >= 8:
            break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    ok(p.returncode == -signal.SIGKILL, "kill: ravand killed with 8 requests at the gateway")
    ok(c.gw.status()["delivered"] == 8, "kill: the gateway had accepted all 8")
    ok(c.one("SELECT count(*) FROM jobs WHERE adapter='sms' AND state='pending' AND attempts=0") == 8,
       "kill: no result was applied (8 jobs pending, 0 attempts)")
    c.gw.control(delay_ms=0)
    ok(c.tick().returncode == 0, "kill: restarted tick")
    st = exactly_once(c, 8, "kill")
    ok(st["duplicates"] == 8 and st["requests"] == 16, "kill: 8 re-sent with the same refs, 0 delivered twice")
    ok(c.one("SELECT count(*) FROM sms_log WHERE duplicate=1") == 8, "kill: log shows the gateway's dedupe")
    c.close()

    # 7. non-deduplicating gateway: the honest bound --------------------------------------------
    c = Case("nodedupe", gw_flags=("--no-dedupe", "--drop", "3"))
    c.start(4)
    c.tick()
    c.tick(30 * MIN)
    st = c.gw.status()
    dups = st["delivered"] - 8
    amb = c.one("SELECT sum(ambiguous) FROM sms_log")
    ok(st["delivered"] == 11 and dups == 3, "no-dedupe: 8 messages + 3 duplicates delivered (got %d)" % st["delivered"])
    ok(amb == 3 and dups <= amb, "no-dedupe: duplicates (%d) <= attempts logged ambiguous (%d)" % (dups, amb))
    ok(c.one("SELECT count(*) FROM sms_log WHERE state='sent'") == 8, "no-dedupe: 8 sent rows")
    c.close()

    # 8. HTTP 400 every time -> incident after the last attempt -------------------------------------
    c = Case("reject", gw_flags=("--reject", "1000"))
    c.run("start", "sms_notify", json.dumps({"mobile": "09120000001", "case_id": "R-1"}))
    c.tick()
    for _ in range(4):
        c.tick(24 * 60 * MIN)
    ok(c.gw.status()["rejected"] == 10 and c.gw.status()["delivered"] == 0, "reject: 2 messages x 5 attempts rejected")
    ok(c.one("SELECT count(*) FROM jobs WHERE adapter='sms' AND state='incident' AND attempts=5") == 2,
       "reject: both jobs stopped after 5 attempts")
    ok(c.one("SELECT count(*) FROM sms_log WHERE state='failed' AND last_error LIKE '%HTTP 400%invalid recipient%'") == 2,
       "reject: log says failed, with the gateway's reason")
    ok(c.one("SELECT count(*) FROM incidents WHERE kind='notify' AND state='open'") == 2, "reject: 2 incidents")
    ok(c.one("SELECT count(*) FROM tasks WHERE state='open'") == 1, "reject: the instance itself moved on")
    c.gw.control(reject=0)                  # the cause is fixed: the operator retries
    for (inc,) in c.q("SELECT id FROM incidents WHERE state='open'"):
        c.run("incidents", "retry", str(inc))
    c.tick(MIN)
    st = exactly_once(c, 2, "reject+retry")
    ok(st["requests"] == 12, "reject+retry: one more request each after the retry")
    c.close()

    # 9. slow gateway: client timeout -> uncertain -> delivered once --------------------------------
    c = Case("slow", gw_flags=("--delay", "1500"), timeout_ms=500)
    c.start(1)
    c.tick()
    ok(c.one("SELECT count(*) FROM sms_log WHERE state='uncertain' AND last_error LIKE '%timeout%'") == 2,
       "slow: both attempts timed out, logged uncertain")
    c.gw.control(delay_ms=0)
    c.tick(30 * MIN)
    st = exactly_once(c, 2, "slow")
    ok(st["duplicates"] == 2, "slow: the re-sends were deduplicated")
    c.close()

    # 10. serve, with the API key from the environment ------------------------------------------
    c = Case("serve", conf_key="wrong-key")
    c.run("start", "sms_notify", json.dumps({"mobile": "09120000001", "case_id": "S-1"}))
    env = dict(os.environ, RAVAND_SMS_API_KEY="k-secret")
    rc = c.serve_until(lambda: c.gw.status()["delivered"] >= 2 and
                       c.one("SELECT count(*) FROM sms_log WHERE state='sent'") == 2, env=env, tries=250)
    ok(rc == 0, "serve: stopped cleanly (exit %s)" % rc)
    st = exactly_once(c, 2, "serve")
    ok(st["unauthorized"] == 0, "serve: the environment's API key won over the file's")
    c.close()
finally:
    kill_all()
sys.exit(finish(tmp))
