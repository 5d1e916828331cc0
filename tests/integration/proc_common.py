"""proc_common.py -- shared harness for the integration tests that drive the
`ravand` CLI as processes (adapters: sms, bank, finance, feed): one TAP
stream, a database on a virtual clock, SQLite peeks, the fake SMS gateway
(ravand-fake-sms, plain or TLS), `serve` until a condition holds, and
cleanup of every process started. Python standard library only.

The HTTP API tests have their own harness (api_common.py), whose Tap and
free_port this one reuses.
"""
import json
import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import Tap, free_port  # noqa: E402,F401  (free_port re-exported)

T = Tap()
ok = T.ok
PROCS = []          # background processes, killed by finish()

# The harness's own client to the fake gateway's /messages and /control: it
# reads counters from servers whose certificates are wrong on purpose.
HARNESS_TLS = ssl.create_default_context()
HARNESS_TLS.check_hostname = False
HARNESS_TLS.verify_mode = ssl.CERT_NONE


def sanitizer_report(text, log=False):
    """True when text holds an ASan/UBSan report ("ERROR:" too, for a log file)."""
    marks = ("runtime error", "Sanitizer") + (("ERROR:",) if log else ())
    return any(m in text for m in marks)


class Ravand:
    """One database, driven through the CLI; now (ms or ISO text) is --now."""

    def __init__(self, ravand, db, now=None):
        self.ravand, self.db, self.now = ravand, db, now
        self.dir = os.path.dirname(db)
        self.conf = None

    def run(self, *args, conf=False, expect=0, env=None, crash=None, timeout=300):
        """ravand ARGS; a TAP failure when the exit code is not expect (None:
        any) or stderr has a sanitizer report. crash sets RV_TEST_CRASH_AT
        (never inherited from the caller's environment)."""
        cmd = [self.ravand, "--db", self.db]
        if self.now is not None:
            cmd += ["--now", str(self.now)]
        if conf:
            cmd += ["--config", self.conf]
        env = dict(os.environ if env is None else env)
        env.pop("RV_TEST_CRASH_AT", None)
        if crash:
            env["RV_TEST_CRASH_AT"] = crash
        p = subprocess.run(cmd + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env, timeout=timeout)
        if expect is not None and p.returncode != expect:
            ok(False, "ravand %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()[-600:]))
        if sanitizer_report(p.stderr):
            ok(False, "ravand %s: sanitizer report: %s" % (" ".join(args), p.stderr[:600]))
        return p

    def q(self, sql, *a):
        c = sqlite3.connect(self.db)
        try:
            return c.execute(sql, a).fetchall()
        finally:
            c.close()

    def one(self, sql, *a):
        return self.q(sql, *a)[0][0]

    def serve_until(self, done, env=None, tries=500):
        """`serve --config` on a free port until done() (polled every 20 ms,
        at most tries times), then SIGTERM; returns serve's exit code."""
        port = free_port()
        with open(os.path.join(self.dir, "serve.err"), "w") as err:
            sv = subprocess.Popen([self.ravand, "--db", self.db, "--config", self.conf, "serve",
                                   "--listen", "127.0.0.1:%d" % port],
                                  stdout=subprocess.DEVNULL, stderr=err, env=env)
        PROCS.append(sv)
        for _ in range(tries):
            if done():
                break
            time.sleep(0.02)
        sv.send_signal(signal.SIGTERM)
        sv.wait(30)
        return sv.returncode


class Gateway:
    """ravand-fake-sms in directory d; TLS when cert = (cert file, key file).
    port 0 picks a free one; a given port restarts a stopped gateway there."""

    def __init__(self, fake, d, *flags, port=0, cert=None):
        self.fake, self.dir, self.flags, self.port, self.cert = fake, d, list(flags), port, cert
        self.p = None
        self.start()

    def start(self):
        pf = os.path.join(self.dir, "gw.port")
        if os.path.exists(pf):
            os.unlink(pf)
        tls = ["--tls-cert", self.cert[0], "--tls-key", self.cert[1]] if self.cert else []
        with open(os.path.join(self.dir, "gw.err"), "a") as err:
            self.p = subprocess.Popen([self.fake, "--port", str(self.port), "--port-file", pf] + tls + self.flags,
                                      stdout=subprocess.DEVNULL, stderr=err)
        PROCS.append(self.p)
        for _ in range(250):
            if os.path.exists(pf):
                with open(pf) as f:
                    self.port = int(f.read())
                return
            time.sleep(0.02)
        raise RuntimeError("fake gateway did not start")

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(10)

    def url(self, path):
        return "%s://127.0.0.1:%d%s" % ("https" if self.cert else "http", self.port, path)

    def _ctx(self):
        return HARNESS_TLS if self.cert else None

    def status(self):
        with urllib.request.urlopen(self.url("/messages"), timeout=10, context=self._ctx()) as r:
            return json.load(r)

    def control(self, **kw):
        req = urllib.request.Request(self.url("/control"), data=json.dumps(kw).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10, context=self._ctx()) as r:
            return json.load(r)


class SmsCase(Ravand):
    """One case of the sms adapter tests: its own directory, database on a
    virtual clock, fake gateway and config file (written by the subclass)."""

    def __init__(self, ravand, fake, tmp, name, now, gw_flags=(), cert=None):
        d = os.path.join(tmp, name)
        os.makedirs(d)
        super().__init__(ravand, os.path.join(d, "t.db"), now)
        self.gw = Gateway(fake, d, *gw_flags, cert=cert)
        self.conf = os.path.join(d, "ravand.conf")

    def start(self, n, first=1):
        for i in range(first, first + n):
            self.run("start", "sms_notify", json.dumps({"mobile": "0912%07d" % i, "case_id": "C-%d" % i}))

    def tick(self, advance_ms=0, **kw):
        self.now += advance_ms
        return self.run("tick", conf=True, **kw)

    def close(self):
        if self.gw.p.poll() is None:
            self.gw.stop()
        for f in ("gw.err", "serve.err"):       # sanitizer reports of the gateway or serve
            path = os.path.join(self.dir, f)
            text = open(path).read() if os.path.exists(path) else ""
            if sanitizer_report(text, log=True):
                ok(False, "%s: %s" % (f, text[:400]))


def exactly_once(c, n_msgs, what):
    """The gateway delivered each of the case's n_msgs SMS exactly once, refs
    are the job keys, and the delivery log and the jobs agree."""
    st = c.gw.status()
    refs = sorted(m["ref"] for m in st["messages"])
    keys = sorted(r[0] for r in c.q("SELECT key FROM jobs WHERE adapter='sms'"))
    ok(st["delivered"] == n_msgs, "%s: gateway delivered exactly %d (got %d)" % (what, n_msgs, st["delivered"]))
    ok(refs == keys and len(set(refs)) == n_msgs, "%s: one message per job key, refs are the keys" % what)
    sent = c.one("SELECT count(*) FROM sms_log WHERE state='sent'")
    ok(sent == n_msgs, "%s: delivery log has %d sent rows (got %d)" % (what, n_msgs, sent))
    done = c.one("SELECT count(*) FROM jobs WHERE adapter='sms' AND state='done'")
    ok(done == n_msgs, "%s: every sms job done (%d)" % (what, done))
    return st


def kill_all():
    for p in PROCS:
        if p.poll() is None:
            p.kill()
            p.wait()


def finish(tmp):
    """Kill what is left, print the plan; remove tmp when all passed (else
    keep it and say where). Returns the exit code."""
    kill_all()
    code = T.done()
    if code == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("# kept %s" % tmp)
    return code
