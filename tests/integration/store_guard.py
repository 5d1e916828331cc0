#!/usr/bin/env python3
"""store_guard.py -- the store's self-check at open, from the command line
(RELIABILITY A6; store.c fs_check and the pragma checks, unit-tested in
tests/unit/test_store.c): `ravand serve` on a database whose directory is a
network or FUSE filesystem (statfs's answer faked with RV_TEST_FS_MAGIC)
exits 1 at once with the reason and the way out, having made nothing;
with RAVAND_ALLOW_FS=1 it serves.

usage: store_guard.py PATH/TO/ravand
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import Server, Tap, free_port  # noqa: E402


def main():
    ravand = sys.argv[1]
    t = Tap()
    s = Server(ravand)
    try:
        for magic, name in (('6969', 'NFS'), ('FF534D42', 'CIFS'), ('65735546', 'FUSE')):
            env = dict(os.environ, RV_TEST_FS_MAGIC=magic)
            env.pop('RAVAND_ALLOW_FS', None)
            p = subprocess.run([ravand, '--db', s.db, 'serve', '--listen', '127.0.0.1:%d' % free_port()],
                               capture_output=True, text=True, timeout=30, env=env)
            t.ok(p.returncode == 1 and ('on a %s filesystem' % name) in p.stderr
                 and 'RAVAND_ALLOW_FS=1' in p.stderr, 'serve on %s: exit 1 with the reason' % name,
                 '%d %s' % (p.returncode, p.stderr[-500:]))
            t.ok(not os.path.exists(s.db), 'serve on %s: no database made' % name)
        os.environ['RV_TEST_FS_MAGIC'] = '6969'
        os.environ['RAVAND_ALLOW_FS'] = '1'
        try:
            s.start()
            t.eq(s.req('GET', '/healthz').status, 200, 'RAVAND_ALLOW_FS=1: serves anyway')
            rc, bad = s.stop()
            t.eq(rc, 0, 'serve exits 0')
            t.ok(bad == '', 'no sanitizer report', bad[-2000:])
        finally:
            del os.environ['RV_TEST_FS_MAGIC']
            del os.environ['RAVAND_ALLOW_FS']
    except Exception as e:
        import traceback
        t.ok(False, 'harness: %s' % e, traceback.format_exc() + s.logtext()[-2000:])
    finally:
        s.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
