#!/usr/bin/env python3
"""api_sync.py -- the server's pipelined WAL sync (store.c rv_store_defer_sync,
server.c on_durable).

A batch's COMMIT does not wait for fdatasync any more: a thread syncs the
WAL and the batch's replies wait for that sync. The test slows the sync
thread down (RV_TEST_SYNC_DELAY_MS, read by the store for tests) so that
the waiting shows from outside, and checks:

  - a write's reply comes only after the sync (its latency is at least the
    delay), and what it reported is in the database after it;
  - requests that arrive together share syncs (fewer syncs than writes,
    ravand_wal_syncs_total), and a read that arrives while a write waits
    is answered after it (in order: it may have seen that write);
  - `--commit-sync inline`: the reply does not wait for the thread (no
    sync by it at all), every COMMIT syncs on the loop's thread;
  - SIGTERM while replies wait: the server syncs, and exits 0;
  - a power loss, simulated (RELIABILITY A2 without LazyFS): starts from four
    clients, SIGKILL, then the WAL cut at the length the sync thread last made
    durable (RV_TEST_SYNC_LOG), as a disk that kept only synced data would
    leave it -- every start answered 201 is still there, the database is
    intact, and the cut did take commits away (the harness can see a loss).

usage: api_sync.py PATH/TO/ravand
"""
import os
import shutil
import sqlite3
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import Server, Tap  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
DELAY_MS = 400
START = {'process': 'api-bench', 'business_key': '0013542419',
         'variables': {'branch': 'B1', 'amount': 1200000}}


def metric(s, who, name):
    r = s.req('GET', '/metrics', who=who)
    for line in r.text().splitlines():
        if line.startswith(name + ' '):
            return float(line.split()[1])
    return None


def setup(s):
    s.principal('op', 'operator')
    s.principal('an', 'analyst')
    with open(os.path.join(ROOT, 'bench', 'api', 'api-bench.bpmn'), encoding='utf-8') as f:
        xml = f.read()
    return xml


def deploy(s, xml):
    return s.req('POST', '/v1/deployments', who='an',
                 body={'files': [{'path': 'processes/api-bench.bpmn', 'content': xml}]})


def timed(s, method, path, body=None, out=None, key=None):
    t0 = time.monotonic()
    r = s.req(method, path, who='op', body=body)
    dt = time.monotonic() - t0
    if out is not None:
        out[key] = (r, dt, time.monotonic())
    return r, dt


def count_instances(db):
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT count(*) FROM instances WHERE process_id='api-bench'").fetchone()[0]
    finally:
        con.close()


def start_slow_sync(s, *extra):
    """serve with the sync thread slowed down by DELAY_MS; the process deployed."""
    xml = setup(s)
    os.environ['RV_TEST_SYNC_DELAY_MS'] = str(DELAY_MS)
    try:
        s.start('--rate', '-1', '--rate-addr', '-1', *extra)
    finally:
        del os.environ['RV_TEST_SYNC_DELAY_MS']
    return deploy(s, xml).status


def pipelined(t, ravand):
    s = Server(ravand)
    try:
        t.eq(start_slow_sync(s), 201, 'deployed')
        syncs0 = metric(s, 'op', 'ravand_wal_syncs_total')
        t.ok(syncs0 is not None and syncs0 >= 1, 'the deployment was synced by the thread', syncs0)

        r, dt = timed(s, 'POST', '/v1/instances', START)
        t.eq(r.status, 201, 'an instance started')
        t.ok(dt >= DELAY_MS / 1000.0 * 0.9, 'its reply waited for the sync (%.3f s)' % dt)
        t.eq(count_instances(s.db), 1, 'and the instance is in the database')

        # eight writes at once, then a read while they wait
        before = metric(s, 'op', 'ravand_wal_syncs_total')
        out = {}
        th = [threading.Thread(target=timed, args=(s, 'POST', '/v1/instances', START, out, i))
              for i in range(8)]
        for x in th:
            x.start()
        time.sleep(0.1)
        rd = threading.Thread(target=timed, args=(s, 'GET', '/v1/instances?limit=5', None, out, 'read'))
        rd.start()
        for x in th + [rd]:
            x.join()
        statuses = sorted(out[i][0].status for i in range(8))
        t.eq(statuses, [201] * 8, 'eight concurrent starts: all 201')
        t.ok(all(out[i][1] >= DELAY_MS / 1000.0 * 0.9 for i in range(8)),
             'each waited for a sync', [round(out[i][1], 3) for i in range(8)])
        t.eq(count_instances(s.db), 9, 'all nine instances are in the database')
        after = metric(s, 'op', 'ravand_wal_syncs_total')
        # the metrics reads themselves write audit rows: at most a sync each
        t.ok(after - before < 8, 'they shared syncs: %d for 8 writes (and 2 metric reads)'
             % (after - before))
        rr = out['read']
        t.eq(rr[0].status, 200, 'the read answered 200')
        first_write_done = min(out[i][2] for i in range(8))
        t.ok(rr[2] >= first_write_done - 0.01, 'the read was answered after the writes it may have seen')
        waiting_max = metric(s, 'op', 'ravand_http_replies_awaiting_sync_max')
        t.ok(waiting_max is not None and waiting_max >= 2, 'replies waited together (max %s)' % waiting_max)

        # SIGTERM while a reply waits: synced, and a clean exit
        # (the request is read within the first half of the delay; SIGTERM
        # comes then, before the thread's sync would end)
        res = {}

        def late_start():
            try:
                res['r'] = s.req('POST', '/v1/instances', who='op', body=START)
            except OSError as e:
                res['e'] = e
        w = threading.Thread(target=late_start)
        w.start()
        time.sleep(DELAY_MS / 1000.0 / 2)
        rc, bad = s.stop()
        w.join(timeout=30)
        t.eq(rc, 0, 'serve exits 0 on SIGTERM with a reply waiting for its sync')
        t.ok(bad == '', 'no sanitizer report', bad[-2000:])
        got = res.get('r')
        t.eq(got.status if got is not None else res.get('e'), 201,
             'the waiting reply was synced and sent before the exit')
        t.eq(count_instances(s.db), 10, 'and that start is in the database')
    finally:
        s.cleanup()


def inline(t, ravand):
    s = Server(ravand)
    try:
        t.eq(start_slow_sync(s, '--commit-sync', 'inline'), 201, 'inline: deployed')
        r, dt = timed(s, 'POST', '/v1/instances', START)
        t.eq(r.status, 201, 'inline: an instance started')
        t.ok(dt < DELAY_MS / 1000.0 * 0.9, 'inline: the reply does not wait for the thread (%.3f s)' % dt)
        t.eq(metric(s, 'op', 'ravand_wal_syncs_total'), 0, 'inline: no sync by the thread')
        t.eq(count_instances(s.db), 1, 'inline: the instance is in the database')
        rc, bad = s.stop()
        t.eq(rc, 0, 'inline: serve exits 0')
        t.ok(bad == '', 'inline: no sanitizer report', bad[-2000:])
        p = s.cli('serve', '--commit-sync', 'sometimes', check=False)
        t.ok(p.returncode != 0 and 'commit-sync' in p.stderr, 'a bad --commit-sync is refused', p.stderr)
    finally:
        s.cleanup()


def power_loss(t, ravand):
    s = Server(ravand)
    log = os.path.join(s.dir, 'sync.log')
    try:
        os.environ['RV_TEST_SYNC_LOG'] = log
        try:
            t.eq(start_slow_sync(s), 201, 'power loss: deployed')
        finally:
            del os.environ['RV_TEST_SYNC_LOG']
        acked, lock = [], threading.Lock()

        def client():
            # at most 100 starts in all, paced: the WAL stays below a checkpoint
            for _ in range(25):
                try:
                    r = s.req('POST', '/v1/instances', who='op', body=START, timeout=10)
                except OSError:
                    return
                if r.status == 201:
                    with lock:
                        acked.append(r.json['id'])
                time.sleep(0.05)
        th = [threading.Thread(target=client) for _ in range(4)]
        for x in th:
            x.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:    # a few answers, then the kill: more are on the way
            with lock:
                if len(acked) >= 5:
                    break
            time.sleep(0.01)
        time.sleep(0.25)               # the next round commits and waits for its sync
        s.proc.kill()                  # SIGKILL: nothing more is synced
        s.proc.wait()
        s.proc = None
        s.logf.close()
        for x in th:
            x.join(timeout=30)
        wal = s.db + '-wal'
        with open(wal, 'rb') as f:
            hdr = f.read(32)
        ckpt_seq = struct.unpack('>I', hdr[12:16])[0]
        t.eq(ckpt_seq, 0, 'power loss: the WAL was never restarted (so cutting it is what a disk could do)')
        with open(log) as f:
            sizes = [int(x) for x in f.read().split()]
        synced = sizes[-1]
        whole = os.path.getsize(wal)
        t.ok(sizes == sorted(sizes) and synced <= whole, 'power loss: synced lengths grow', sizes[-5:])
        # the database as written (nothing lost), for comparison
        keep = os.path.join(s.dir, 'whole')
        os.mkdir(keep)
        for suffix in ('', '-wal'):
            shutil.copy(s.db + suffix, os.path.join(keep, 'api.db' + suffix))
        os.truncate(wal, synced)
        if os.path.exists(s.db + '-shm'):
            os.remove(s.db + '-shm')    # memory, not disk: rebuilt from the WAL
        con = sqlite3.connect(s.db, timeout=30)
        ids = {x[0] for x in con.execute("SELECT id FROM instances WHERE process_id='api-bench'")}
        ok = con.execute('PRAGMA integrity_check').fetchone()[0]
        con.close()
        con = sqlite3.connect(os.path.join(keep, 'api.db'), timeout=30)
        all_ids = {x[0] for x in con.execute("SELECT id FROM instances WHERE process_id='api-bench'")}
        con.close()
        t.diag('power loss: %d starts answered, %d in the database as written, %d after the cut '
               '(WAL %d bytes, synced %d)' % (len(acked), len(all_ids), len(ids), whole, synced))
        t.ok(len(acked) > 0, 'power loss: starts were answered before the kill')
        t.eq(sorted(set(acked) - ids), [], 'power loss: every start answered 201 survives the cut')
        t.eq(ok, 'ok', 'power loss: integrity_check after the cut')
        t.ok(len(all_ids) > len(ids), 'power loss: the cut took unsynced commits away (the harness sees a loss)',
             '%d against %d' % (len(all_ids), len(ids)))
    finally:
        s.cleanup()


def main():
    ravand = sys.argv[1]
    t = Tap()
    for part in (pipelined, inline, power_loss):
        try:
            part(t, ravand)
        except Exception as e:
            import traceback
            t.ok(False, 'harness: %s' % e, traceback.format_exc())
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
