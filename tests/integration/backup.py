#!/usr/bin/env python3
"""backup.py -- `ravand backup DEST` while `ravand serve` writes
(store/backup.c, main.c cmd_backup; RELIABILITY A7, at PR size).

Two clients start instances through the API without pause; meanwhile three
backups are taken with the CLI, from another process, as an operator would.
Each backup must be:

  - whole: integrity_check ok, and its report (instances, schema) agrees
    with what the file holds;
  - a committed prefix: every start answered 201 before the backup began is
    in it, and what it holds is exactly the instances of the live database
    up to its newest one (no hole, nothing the server does not have);
  - restorable: the copy and its DEST.pepper, put in place of a database,
    serve again -- the operator's old token still works (the pepper came
    along), an instance of the copy is there, a later one is not (404).

And the refusals: DEST exists (exit 1, the file untouched), no such
database (exit 1), no DEST (usage, exit 2).

usage: backup.py PATH/TO/ravand
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import Server, tap_main  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
START = {'process': 'api-bench', 'business_key': '0013542419',
         'variables': {'branch': 'B1', 'amount': 1200000}}


def rows(db, sql):
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def ids_of(db):
    return sorted(r[0] for r in rows(db, 'SELECT id FROM instances'))


def integrity(db):
    return rows(db, 'PRAGMA integrity_check')[0][0]


def writer(s, acked, stop, errors):
    """Start instances until stop; acked: (id, monotonic time of the 201)."""
    while not stop.is_set():
        r = s.req('POST', '/v1/instances', who='op', body=START)
        if r.status == 201:
            acked.append((r.json['id'], time.monotonic()))
        else:
            errors.append(r.status)


def backup(ravand, db, dest, *extra):
    return subprocess.run([ravand, '--db', db, '--json', 'backup', dest] + list(extra),
                          capture_output=True, text=True, timeout=120)


def run(t, ravand):
    s = Server(ravand, ['--rate', '-1', '--rate-addr', '-1'])
    s2 = None
    try:
        s.principal('op', 'operator')
        s.principal('an', 'analyst')
        with open(os.path.join(ROOT, 'bench', 'api', 'api-bench.bpmn'), encoding='utf-8') as f:
            xml = f.read()
        s.start()
        r = s.req('POST', '/v1/deployments', who='an',
                  body={'files': [{'path': 'processes/api-bench.bpmn', 'content': xml}]})
        t.eq(r.status, 201, 'deploy')
        acked, errors, stop = [], [], threading.Event()
        threads = [threading.Thread(target=writer, args=(s, acked, stop, errors)) for _ in range(2)]
        for th in threads:
            th.start()
        taken = []
        try:
            for k in range(3):
                time.sleep(0.4)
                dest = os.path.join(s.dir, 'backup-%d.db' % k)
                t0 = time.monotonic()
                before = {i for i, at in list(acked) if at < t0}
                p = backup(ravand, s.db, dest)
                taken.append((dest, before, p))
        finally:
            stop.set()
            for th in threads:
                th.join()
        t.ok(not errors, 'every start while backing up was answered 201',
             '%d refused, statuses %s' % (len(errors), sorted(set(errors))))
        t.ok(len(acked) > 50, 'the clients wrote while the backups ran (%d starts)' % len(acked))
        rc, bad = s.stop()
        t.eq(rc, 0, 'serve exits 0')
        t.ok(bad == '', 'no sanitizer report in serve', bad[-2000:])
        final = ids_of(s.db)
        t.ok(set(i for i, _ in acked) <= set(final), 'every answered start is in the live database')
        for k, (dest, before, p) in enumerate(taken):
            t.ok(p.returncode == 0, 'backup %d exits 0' % k, p.stderr)
            if p.returncode != 0:
                continue
            rep = json.loads(p.stdout)
            t.eq(integrity(dest), 'ok', 'backup %d: integrity_check ok' % k)
            b = ids_of(dest)
            t.eq(rep['instances'], len(b), 'backup %d: the report counts its instances' % k)
            t.ok(rep['integrity'] == 'ok' and rep['pepper'] is True and rep['schema'] > 0,
                 'backup %d: report says checked, pepper copied' % k, p.stdout)
            t.ok(before <= set(b), 'backup %d: every start answered before it began is in it (%d of %d)'
                 % (k, len(before & set(b)), len(before)))
            top = max(b) if b else 0
            t.eq(b, [i for i in final if i <= top], 'backup %d: a committed prefix of the live database' % k)
            t.ok(os.path.exists(dest + '.pepper') and (os.stat(dest + '.pepper').st_mode & 0o077) == 0,
                 'backup %d: its pepper beside it, readable by the owner only' % k)
            t.ok(not [f for f in os.listdir(s.dir) if '.tmp-' in f], 'backup %d: no temporary left' % k)
        t.ok(len(ids_of(taken[-1][0])) < len(final), 'the last backup is older than the end of the run')

        # restore: the copy and its pepper in place of a database, served again
        dest, _, _ = taken[1]
        b = ids_of(dest)
        s2 = Server(ravand)
        shutil.copyfile(dest, s2.db)
        shutil.copyfile(dest + '.pepper', s2.db + '.pepper')
        s2.tokens = dict(s.tokens)
        s2.start()
        r = s2.req('GET', '/v1/instances/%d' % b[-1], who='op')
        t.eq(r.status, 200, 'restored: the old token works and an instance of the copy is there')
        later = [i for i in final if i > b[-1]]
        r = s2.req('GET', '/v1/instances/%d' % later[0], who='op')
        t.eq(r.status, 404, 'restored: an instance started after the backup is not')
        r = s2.req('POST', '/v1/instances', who='op', body=START)
        t.eq(r.status, 201, 'restored: it takes new starts')
        rc, bad = s2.stop()
        t.eq(rc, 0, 'restored serve exits 0')
        t.ok(bad == '', 'no sanitizer report in the restored serve', bad[-2000:])

        # refusals
        dest = taken[0][0]
        before = os.stat(dest).st_mtime_ns, os.path.getsize(dest)
        p = backup(ravand, s.db, dest)
        t.ok(p.returncode == 1 and 'exists' in p.stderr, 'an existing DEST is refused', p.stderr)
        t.eq((os.stat(dest).st_mtime_ns, os.path.getsize(dest)), before, '... and left as it was')
        p = backup(ravand, os.path.join(s.dir, 'nosuch.db'), os.path.join(s.dir, 'x.db'))
        t.ok(p.returncode == 1 and 'no database' in p.stderr and not os.path.exists(os.path.join(s.dir, 'x.db')),
             'a missing database is refused, nothing made', p.stderr)
        p = subprocess.run([ravand, '--db', s.db, 'backup'], capture_output=True, text=True, timeout=60)
        t.eq(p.returncode, 2, 'no DEST: usage')
        for _, _, p in taken:
            t.ok('Sanitizer' not in p.stderr and 'runtime error' not in p.stderr,
                 'no sanitizer report in backup', p.stderr[-2000:])
    finally:
        s.cleanup()
        if s2 is not None:
            s2.cleanup()


if __name__ == '__main__':
    sys.exit(tap_main(run))
