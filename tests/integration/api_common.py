"""api_common.py -- shared harness for the HTTP API integration tests.

Starts the real `ravand serve` on a free loopback port with a temporary
database, creates principals through the `ravand principal` CLI, sends
requests with http.client, and prints TAP. Python standard library only.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
FIXTURES = os.path.join(ROOT, 'tests', 'fixtures')


def national_id(seed):
    """A valid 10-digit Iranian national ID derived from seed."""
    base = '%09d' % (seed % 10 ** 9)
    if len(set(base)) == 1:
        base = '1' + base[1:]
    s = sum(int(base[i]) * (10 - i) for i in range(9)) % 11
    return base + str(s if s < 2 else 11 - s)


class Tap:
    """TAP producer: ok(cond, name) / done() -> exit code."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, info=None):
        self.n += 1
        if cond:
            print('ok %d - %s' % (self.n, name))
        else:
            self.failed += 1
            print('not ok %d - %s' % (self.n, name))
            if info is not None:
                for line in str(info).splitlines()[:20]:
                    print('#   ' + line)
        sys.stdout.flush()
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, 'got %r, want %r' % (got, want))

    def diag(self, msg):
        for line in str(msg).splitlines():
            print('# ' + line)
        sys.stdout.flush()

    def done(self):
        print('1..%d' % self.n)
        if self.failed:
            print('# %d of %d failed' % (self.failed, self.n))
        return 1 if self.failed else 0


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self.json = None
        ctype = headers.get('content-type', '')
        if 'json' in ctype and body:
            try:
                self.json = json.loads(body.decode('utf-8'))
            except ValueError:
                self.json = None

    def header(self, name):
        return self.headers.get(name.lower())

    def text(self):
        return self.body.decode('utf-8', 'replace')

    def __repr__(self):
        return '<%d %s>' % (self.status, self.text()[:300])


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """One ravand database and, when started, one `ravand serve`."""

    def __init__(self, ravand, args=()):
        self.ravand = ravand
        self.dir = tempfile.mkdtemp(prefix='ravand-api-')
        self.db = os.path.join(self.dir, 'api.db')
        self.args = list(args)
        self.proc = None
        self.port = None
        self.tokens = {}
        self.log = os.path.join(self.dir, 'serve.log')

    def cli(self, *args, check=True):
        p = subprocess.run([self.ravand, '--db', self.db] + list(args), capture_output=True, text=True,
                           timeout=60)
        if check and p.returncode != 0:
            raise RuntimeError('ravand %s: %s %s' % (' '.join(args), p.stdout, p.stderr))
        return p

    def cli_raw(self, args):
        """ravand with byte-string arguments (not UTF-8 on purpose); bytes out."""
        return subprocess.run([self.ravand.encode(), b'--db', self.db.encode()] +
                              [a if isinstance(a, bytes) else a.encode() for a in args],
                              capture_output=True, timeout=60)

    def principal(self, name, role, **scope):
        args = ['principal', 'add', name, '--role', role]
        for k, v in scope.items():
            args += ['--' + k.replace('_', '-'), v]
        self.cli(*args)
        tok = self.cli('principal', 'token', name).stdout.strip()
        self.tokens[name] = tok
        return tok

    def start(self, *extra):
        self.port = free_port()
        cmd = [self.ravand, '--db', self.db, 'serve', '--listen', '127.0.0.1:%d' % self.port]
        cmd += self.args + list(extra)
        self.logf = open(self.log, 'ab')
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=self.logf)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                r = self.req('GET', '/healthz')
                if r.status == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError('ravand serve did not come up: ' + self.logtext())

    def logtext(self):
        try:
            with open(self.log, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def stop(self):
        """SIGTERM; returns (exit code, sanitizer report or '')."""
        if self.proc is None:
            return 0, ''
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.logf.close()
        log = self.logtext()
        bad = ''
        for marker in ('Sanitizer', 'runtime error:', 'LeakSanitizer'):
            if marker in log:
                bad = log
        return rc, bad

    def cleanup(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def conn(self, timeout=30):
        return http.client.HTTPConnection('127.0.0.1', self.port, timeout=timeout)

    def req(self, method, path, token=None, body=None, headers=None, raw=None, who=None, timeout=30):
        if who is not None:
            token = self.tokens[who]
        h = {}
        if token:
            h['Authorization'] = 'Bearer ' + token
        data = None
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode('utf-8')
            h.setdefault('Content-Type', 'application/json')
        elif body is not None:
            data = json.dumps(body, ensure_ascii=False).encode('utf-8')
            h['Content-Type'] = 'application/json'
        if headers:
            h.update(headers)
            for k in [k for k, v in h.items() if v is None]:
                del h[k]
        c = self.conn(timeout)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            out = Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            c.close()
        return out

    def deploy_fixture(self, who, path='api/cartable.bpmn'):
        with open(os.path.join(FIXTURES, path), encoding='utf-8') as f:
            xml = f.read()
        return self.req('POST', '/v1/deployments', who=who,
                        body={'files': [{'path': 'processes/' + os.path.basename(path), 'content': xml}]})


def problem_ok(r, status):
    """A problem-details reply with the given status."""
    j = r.json or {}
    return (r.status == status and r.header('content-type', ) is not None
            and r.header('content-type').startswith('application/problem+json')
            and j.get('status') == status and isinstance(j.get('title'), str)
            and isinstance(j.get('type'), str))


def strip_rid(j):
    if isinstance(j, dict):
        return {k: v for k, v in j.items() if k != 'request_id'}
    return j


def my_task(s, who, inst, element):
    """The applicant's open task of element in request inst (GET /v1/my/requests/{id}), or None."""
    r = s.req('GET', '/v1/my/requests/%d' % inst, who=who)
    for x in (r.json or {}).get('tasks', []):
        if x['element'] == element:
            return x
    return None


def serve_main(ravand, run, args=()):
    """The usual test main: run(tap, server) with one server (run starts
    it), then stop it and check it exited 0 with no sanitizer report; an
    exception is a failed test with its traceback and the server's log.
    Returns the exit code."""
    t = Tap()
    s = Server(ravand, args)
    try:
        run(t, s)
        rc, bad = s.stop()
        t.eq(rc, 0, 'serve exits 0 on SIGTERM')
        t.ok(bad == '', 'no sanitizer report', bad[-2000:])
    except Exception as e:
        import traceback
        t.ok(False, 'harness: %s' % e, traceback.format_exc() + '\n' + s.logtext()[-2000:])
    finally:
        s.cleanup()
    return t.done()


def tap_main(run):
    """The main of a test that runs servers itself: run(tap, ravand) with
    ravand from argv[1]; an exception is a failed test with its traceback.
    Returns the exit code."""
    t = Tap()
    try:
        run(t, sys.argv[1])
    except Exception as e:
        import traceback
        t.ok(False, 'harness: %s' % e, traceback.format_exc())
    return t.done()
