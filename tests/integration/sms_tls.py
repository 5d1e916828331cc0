#!/usr/bin/env python3
"""tests/integration/sms_tls.py -- the `sms` adapter over https:// against
the fake gateway serving TLS (ravand-fake-sms --tls-cert/--tls-key), through
the real `ravand` binary on loopback.

A throwaway PKI is made at test time with the `openssl` command-line tool:
CA "good" (trusted through sms.ca_file), CA "other" (never trusted), and
server certificates signed by "good" for localhost + 127.0.0.1, for
other.example only, and for localhost only (no IP address).

  1. https://localhost, ca_file = the good CA -> each SMS delivered exactly once
  2. https://127.0.0.1 (IP SAN checked, no SNI) -> delivered
  3. ca_file = another CA -> never delivered, "TLS: certificate verify failed",
     5 attempts, incidents; fixed config + `incidents retry` -> delivered once
  4. no ca_file: the system CA store does not know the test CA -> refused
  5. certificate for another host name -> refused (hostname mismatch);
     certificate without the IP -> refused at https://127.0.0.1 (IP mismatch)
  6. https:// to a plain-http gateway -> handshake failure, nothing delivered
  7. accepted then dropped over TLS -> "uncertain" (not "tls"), re-sent with
     the same ref -> delivered exactly once
  8. config refusals: insecure_skip_verify, unreadable ca_file, ca_file with http://
  9. `serve` over https
usage: sms_tls.py RAVAND FAKE_SMS SOURCE_ROOT      (prints TAP)
"""
import json, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proc_common import SmsCase, exactly_once, finish, kill_all, ok  # noqa: E402

RAVAND, FAKE, ROOT = sys.argv[1], sys.argv[2], sys.argv[3]
FIX = os.path.join(ROOT, "tests", "fixtures", "adapters", "sms-notify.bpmn")
T0 = 1759300200000
MIN = 60 * 1000
DAY = 24 * 60 * MIN
tmp = tempfile.mkdtemp(prefix="rv-sms-tls-")


# --- the throwaway PKI ---------------------------------------------------------------
PKI = os.path.join(tmp, "pki")


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def make_ca(name):
    key, crt = os.path.join(PKI, name + ".key"), os.path.join(PKI, name + ".pem")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
            "-days", "2", "-subj", "/CN=ravand test CA " + name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return crt, key


def make_server(name, ca, san):
    key, csr, crt = (os.path.join(PKI, name + e) for e in (".key", ".csr", ".pem"))
    ext = os.path.join(PKI, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n" % san)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=" + san.split(",")[0].split(":", 1)[1])
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
            "-out", crt, "-days", "2", "-extfile", ext)
    return crt, key


class Case(SmsCase):
    def __init__(self, name, cert, host="localhost", ca_file=None, gw_flags=(), scheme="https"):
        super().__init__(RAVAND, FAKE, tmp, name, T0, gw_flags, cert=cert)
        self.url = "%s://%s:%d/send" % (scheme, host, self.gw.port)
        self.write_conf(ca_file)
        self.run("deploy", FIX)

    def write_conf(self, ca_file, **extra):
        sms = {"url": self.url, "sender": "ravand", "timeout_ms": 5000}
        if ca_file:
            sms["ca_file"] = ca_file
        sms.update(extra)
        with open(self.conf, "w") as f:
            json.dump({"sms": sms}, f)


def refused(c, n_jobs, like, what):
    """One tick: every job failed its first attempt with a TLS reason, nothing reached /send."""
    ok(c.tick().returncode == 0, "%s: tick" % what)
    st = c.gw.status()
    ok(st["requests"] == 0 and st["delivered"] == 0, "%s: nothing reached the gateway (%d requests)"
       % (what, st["requests"]))
    rows = c.q("SELECT state, last_error FROM sms_log")
    ok(len(rows) == n_jobs and all(r[0] == "retrying" and r[1] and r[1].startswith("TLS: ") for r in rows),
       "%s: %d log rows retrying with a TLS reason" % (what, n_jobs))
    hits = c.one("SELECT count(*) FROM sms_log WHERE last_error LIKE ?", like)
    ok(hits == n_jobs, "%s: reason matches %r (got %r)" % (what, like, rows[0][1] if rows else None))
    return rows


if shutil.which("openssl") is None:
    print("1..0 # SKIP the openssl command-line tool is not installed (setup.sh installs it)")
    sys.exit(0)

try:
    os.makedirs(PKI)
    good, other = make_ca("good"), make_ca("other")
    srv = make_server("srv", good, "DNS:localhost,IP:127.0.0.1")
    wrong_name = make_server("wrongname", good, "DNS:other.example")
    name_only = make_server("nameonly", good, "DNS:localhost")
    ok(True, "throwaway CAs and server certificates made with openssl")

    # 1. trusted private CA ------------------------------------------------------------------
    c = Case("trusted", srv, ca_file=good[0])
    c.start(3)
    ok(c.tick().returncode == 0, "trusted: tick")
    st = exactly_once(c, 6, "trusted")
    ok(st["requests"] == 6 and st["duplicates"] == 0, "trusted: 6 requests, no duplicates")
    ok(c.one("SELECT count(*) FROM sms_log WHERE attempts=1 AND gateway_id LIKE 'm%'") == 6,
       "trusted: one attempt each, gateway ids kept")
    ok(c.tick(60 * MIN).returncode == 0 and c.gw.status()["requests"] == 6, "trusted: a later tick sends nothing")
    c.close()

    # 2. IP address in the URL ------------------------------------------------------------------
    c = Case("ip", srv, host="127.0.0.1", ca_file=good[0])
    c.start(1)
    ok(c.tick().returncode == 0, "ip: tick")
    exactly_once(c, 2, "ip")
    c.close()

    # 3. a CA that did not sign the gateway's certificate ------------------------------------------
    c = Case("untrusted", srv, ca_file=other[0])
    c.start(1)
    refused(c, 2, "TLS: certificate verify failed: %", "untrusted")
    for _ in range(4):
        c.tick(DAY)
    ok(c.gw.status()["requests"] == 0, "untrusted: 5 attempts, still nothing delivered")
    ok(c.one("SELECT count(*) FROM jobs WHERE adapter='sms' AND state='incident' AND attempts=5") == 2,
       "untrusted: both jobs stopped after 5 attempts")
    ok(c.one("SELECT count(*) FROM sms_log WHERE state='failed' AND ambiguous=0 AND "
             "last_error LIKE 'TLS: certificate verify failed:%'") == 2,
       "untrusted: log says failed (not ambiguous), certificate verify failed")
    ok(c.one("SELECT count(*) FROM incidents WHERE kind='notify' AND state='open'") == 2,
       "untrusted: 2 incidents after the last retry")
    c.write_conf(good[0])                       # the operator fixes the trust, then retries
    for (inc,) in c.q("SELECT id FROM incidents WHERE state='open'"):
        c.run("incidents", "retry", str(inc))
    c.tick(MIN)
    exactly_once(c, 2, "untrusted+fixed")
    c.close()

    # 4. no ca_file: the system store, which does not know the test CA --------------------------------
    c = Case("systemstore", srv)
    c.start(1)
    refused(c, 2, "TLS: certificate verify failed: %", "system store")
    c.close()

    # 5. the certificate is for another name / lacks the address ----------------------------------------
    c = Case("wrongname", wrong_name, ca_file=good[0])
    c.start(1)
    refused(c, 2, "TLS: certificate verify failed: hostname mismatch%localhost%", "wrong host name")
    c.close()
    c = Case("wrongip", name_only, host="127.0.0.1", ca_file=good[0])
    c.start(1)
    refused(c, 2, "TLS: certificate verify failed: IP address mismatch%", "wrong IP")
    c.close()

    # 6. https:// to a gateway that speaks plain http ---------------------------------------------------
    c = Case("plain", None, ca_file=good[0])
    c.start(1)
    refused(c, 2, "TLS: handshake with localhost:%", "plain-http gateway")
    c.close()

    # 7. accepted, then dropped, over TLS: uncertain, re-sent, delivered once -----------------------------
    c = Case("drop", srv, ca_file=good[0], gw_flags=("--drop", "2"))
    c.start(2)
    c.tick()
    ok(c.one("SELECT count(*) FROM sms_log WHERE state='uncertain' AND last_error NOT LIKE 'TLS:%'") == 2,
       "drop: the 2 dropped after the handshake are uncertain, not TLS failures")
    c.tick(30 * MIN)
    st = exactly_once(c, 4, "drop")
    ok(st["duplicates"] == 2, "drop: the 2 re-sends were recognised by ref")
    c.close()

    # 8. configuration refusals ---------------------------------------------------------------------
    c = Case("config", srv, ca_file=good[0])
    c.start(1)
    c.write_conf(good[0], insecure_skip_verify=True)
    p = c.tick(expect=1)
    ok(p.returncode == 1 and "insecure_skip_verify is not supported" in p.stderr,
       "config: insecure_skip_verify is refused")
    c.write_conf(os.path.join(c.dir, "no-such-ca.pem"))
    p = c.tick(expect=1)
    ok(p.returncode == 1 and "ca_file" in p.stderr and "cannot be loaded" in p.stderr,
       "config: an unreadable ca_file is refused")
    c.url = "http://localhost:%d/send" % c.gw.port
    c.write_conf(good[0])
    p = c.tick(expect=1)
    ok(p.returncode == 1 and "not https://" in p.stderr, "config: ca_file with an http:// URL is refused")
    ok(c.gw.status()["requests"] == 0, "config: nothing was sent")
    env = dict(os.environ, RAVAND_SMS_URL="https://localhost:%d/send" % c.gw.port, RAVAND_SMS_CA_FILE=good[0])
    ok(c.tick(env=env).returncode == 0, "config: url and ca_file from the environment")
    exactly_once(c, 2, "config env")
    c.close()

    # 9. serve over https --------------------------------------------------------------------------
    c = Case("serve", srv, ca_file=good[0])
    c.run("start", "sms_notify", json.dumps({"mobile": "09120000001", "case_id": "S-1"}))
    rc = c.serve_until(lambda: c.gw.status()["delivered"] >= 2 and
                       c.one("SELECT count(*) FROM sms_log WHERE state='sent'") == 2)
    ok(rc == 0, "serve: stopped cleanly (exit %s)" % rc)
    exactly_once(c, 2, "serve")
    c.close()
finally:
    kill_all()
sys.exit(finish(tmp))
