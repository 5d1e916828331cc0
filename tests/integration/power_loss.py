#!/usr/bin/env python3
"""power_loss.py -- power loss under load, 20 cycles (RELIABILITY A2), and
a full disk (A5).

`ravand serve` runs with lostwrites.so preloaded (tests/integration/
lostwrites.c): beside the real files it keeps the image of what a disk would
still hold after a power loss -- only what was synced, and in half of the
cycles some unsynced pages too, written back early in random order. Four
clients start instances and complete their tasks and note every 2xx. At a
random instant the server gets SIGKILL; the database files are replaced by
the image (the disk after the power loss) and the next cycle starts the
server on them, so recovery runs 20 times in a row on what the last one left.

Checked after every cycle: integrity_check is ok; every start answered 201
is there and every completion answered 200 is completed. The cycles
alternate `--commit-sync pipelined` (the default; half of them with the
sync thread slowed by 30 ms) and `inline`.

Jobs leave only once durable: six more cycles start instances of a process
whose start event sends an SMS through the fake gateway; after each power
loss every SMS the gateway got must be of an instance the disk kept, and
SMS must have left during every cycle (a job waited for *every* commit to be
durable once, and starved while the clients kept committing).

A full disk: under load the library fails every write to the database's
files with ENOSPC for 1.5 s. The server keeps running, refuses what comes
meanwhile with 503/507 at once (the first within 1 s, none waits 2 s), and
takes starts again as soon as there is space, without a restart (10 s);
after the power loss that ends it every answered start is there.

Read errors (A3 from outside): on a server just started, reads of the
database fail with EIO: every call is refused with a 5xx (never the 401 or
404 a handler could conclude from a read that failed), and once reads work
again the same server answers.

That the harness is not blind: one more cycle sends a single start with the
sync thread slowed to 3 s and cuts the power 0.3 s later -- written, not
synced, not answered, the start must be gone from the disk; and the canary,
a cycle on a disk that ignores syncs (LOSTWRITES_LIE=1), must lose answered
starts. At the end the server starts on the last image, answers, and stops
cleanly.

usage: power_loss.py PATH/TO/ravand PATH/TO/lostwrites.so PATH/TO/ravand-fake-sms [CYCLES]
"""
import json
import os
import random
import shutil
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import Server, Tap  # noqa: E402
from proc_common import Gateway  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
START = {'process': 'api-bench', 'business_key': '0013542419',
         'variables': {'branch': 'B1', 'amount': 1200000}}
SMS_START = {'process': 'sms_notify', 'variables': {'mobile': '09120000001', 'case_id': 'C-1'}}
CLIENTS = 4


def tracked(s):
    """the database's files in the server's directory (api.db, -wal, -shm, .pepper)"""
    base = os.path.basename(s.db)
    return [os.path.join(s.dir, n) for n in os.listdir(s.dir) if n.startswith(base)]


def read_db(path):
    """integrity_check, {instance: status}, and the rows every write adds (a
    command's journal row, an audited request's audit row)"""
    con = sqlite3.connect(path, timeout=30)
    try:
        ok = con.execute('PRAGMA integrity_check').fetchone()[0]
        status = dict(con.execute('SELECT id, status FROM instances'))
        rows = con.execute('SELECT (SELECT count(*) FROM journal) + (SELECT count(*) FROM audit)').fetchone()[0]
        return ok, status, rows
    finally:
        con.close()


def load(s, acked, stop):
    """one client: start, find the task, complete it; note each 2xx."""
    while not stop.is_set():
        try:
            r = s.req('POST', '/v1/instances', who='op', body=START, timeout=10)
            if r.status != 201:
                continue
            inst = r.json['id']
            acked['start'].add(inst)
            r = s.req('GET', '/v1/tasks?instance=%d' % inst, who='clerk', timeout=10)
            items = (r.json or {}).get('items', []) if r.status == 200 else []
            if not items:
                continue
            r = s.req('POST', '/v1/tasks/%d/complete' % items[0]['id'], who='clerk',
                      body={'data': {'approved': True}}, timeout=10)
            if r.status == 200:
                acked['complete'].add(inst)
        except (OSError, ValueError, KeyError, TypeError):
            return          # the server is gone


def sms_load(s, acked, stop):
    """one client of the SMS part: starts of a process that sends an SMS at once"""
    while not stop.is_set():
        try:
            r = s.req('POST', '/v1/instances', who='op', body=SMS_START, timeout=10)
            if r.status == 201:
                acked['start'].add(r.json['id'])
        except (OSError, ValueError, KeyError, TypeError):
            return


def one_start(s, acked):
    try:
        r = s.req('POST', '/v1/instances', who='op', body=START, timeout=10)
        if r.status == 201:
            acked['start'].add(r.json['id'])
    except OSError:
        pass                # the server is gone before it answered


def cycle(s, lib, image, mode, early, seed, delay=0, lie=False, one=False, client=load, extra=None,
          drive=None):
    """one run of the server up to its power loss; returns (acked, whole, after).
    one: a single start instead of the clients, the power lost 0.3 s after
    it was sent (with a sync delay longer than that: committed, not synced).
    drive: what happens while the clients run, instead of a random wait"""
    shutil.rmtree(image, ignore_errors=True)
    os.mkdir(image)
    env = {'LD_PRELOAD': lib, 'LOSTWRITES_PREFIX': s.db, 'LOSTWRITES_IMAGE': image,
           'LOSTWRITES_EARLY': str(early), 'LOSTWRITES_SEED': str(seed),
           'LOSTWRITES_LIE': '1' if lie else '0',
           # a slower sync thread: more commits wait for it when the power goes
           'RV_TEST_SYNC_DELAY_MS': str(delay)}
    env.update(extra or {})
    asan = os.environ.get('ASAN_OPTIONS')
    # under AddressSanitizer the preloaded library comes before its runtime
    env['ASAN_OPTIONS'] = (asan + ':' if asan else '') + 'verify_asan_link_order=0'
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        s.start('--rate', '-1', '--rate-addr', '-1', '--commit-sync', mode)
    finally:
        for k, v in saved.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
    acked = {'start': set(), 'complete': set()}
    stop = threading.Event()
    if one:
        th = [threading.Thread(target=one_start, args=(s, acked))]
    else:
        th = [threading.Thread(target=client, args=(s, acked, stop)) for _ in range(CLIENTS)]
    for x in th:
        x.start()
    rnd = random.Random(seed)
    if drive:
        drive()
    elif one:
        time.sleep(0.3)
    else:
        want = rnd.randint(10, 60)
        deadline = time.monotonic() + 20
        while len(acked['start']) < want and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rnd.uniform(0, 0.1))     # not just after an answer: any instant
    s.proc.kill()                       # the power goes: nothing more reaches the disk
    s.proc.wait()
    s.proc = None
    s.logf.close()
    stop.set()
    for x in th:
        x.join(timeout=30)
    # the files as the process left them (what a crash without power loss keeps)
    whole = os.path.join(s.dir, 'whole')
    shutil.rmtree(whole, ignore_errors=True)
    os.mkdir(whole)
    for p in tracked(s):
        shutil.copy(p, whole)
    before = read_db(os.path.join(whole, os.path.basename(s.db)))
    shutil.rmtree(whole)
    # the disk after the power loss
    for p in tracked(s):
        os.remove(p)
    for n in os.listdir(image):
        shutil.copy(os.path.join(image, n), s.dir)
    return acked, before, read_db(s.db)


def sms_part(t, s, lib, image, fake):
    """Jobs leave only once durable: an SMS the gateway received belongs to an
    instance the disk kept. Six cycles of starts of a process whose start
    event sends an SMS (the ref is the job key, '<instance>:...'), each
    checked right after its power loss (a later cycle may reuse the id of an
    instance the power took)."""
    gw = Gateway(fake, s.dir, '--api-key', 'k-secret')
    try:
        conf = os.path.join(s.dir, 'sms.json')
        with open(conf, 'w') as f:
            json.dump({'sms': {'url': gw.url('/send'), 'api_key': 'k-secret', 'sender': 'ravand',
                               'timeout_ms': 3000}}, f)
        s.cli('deploy', os.path.join(ROOT, 'tests', 'fixtures', 'adapters', 'sms-notify.bpmn'))
        seen = 0
        for k in range(6):
            mode = 'pipelined' if k % 3 < 2 else 'inline'
            delay = 30 if k % 3 == 0 else 0
            acked, whole, after = cycle(s, lib, image, mode, 300 if k >= 3 else 0, 2000 + k, delay,
                                        client=sms_load, extra={'RAVAND_CONFIG': conf})
            msgs = gw.status()['messages'][seen:]
            seen += len(msgs)
            insts = {int(m['ref'].split(':')[0]) for m in msgs}
            t.diag('sms cycle %d (%s, sync delay %d ms): %d starts answered, %d SMS at the gateway, '
                   '%d instances written, %d on the disk' % (k + 1, mode, delay, len(acked['start']),
                                                             len(msgs), len(whole[1]), len(after[1])))
            t.eq(after[0], 'ok', 'sms cycle %d: integrity_check after the power loss' % (k + 1))
            t.eq(sorted(acked['start'] - set(after[1])), [],
                 'sms cycle %d: every start answered 201 survives' % (k + 1))
            t.ok(len(msgs) > 0, 'sms cycle %d: SMS left while the clients kept committing' % (k + 1))
            t.eq(sorted(insts - set(after[1])), [],
                 'sms cycle %d: every SMS the gateway got is of an instance on the disk' % (k + 1))
    finally:
        gw.stop()


# The only details a reply of the store's failure may carry (request.c, routes.c,
# server.c): what went wrong inside -- SQLite's message, SQL, a path -- is in the log,
# under the request id the reply carries.
STORE_FAILURE_DETAILS = {
    "internal error; quote the request id", "the server's disk is full; retry later",
    "the change could not be committed; retry", "the store is busy; retry",
}


def leaky(s, r):
    """RELIABILITY E11: a 5xx reply whose detail is not one of the fixed
    texts above, or that carries no request id."""
    j = r.json or {}
    return r.status >= 500 and (not j.get('request_id') or j.get('detail') not in STORE_FAILURE_DETAILS)


def disk_full(t, s, lib, image):
    """RELIABILITY A5: the disk fills under load (LOSTWRITES_FULL: writes to
    the database's files fail with ENOSPC) for 1.5 s and is freed again."""
    flag = os.path.join(s.dir, 'disk-full')
    log, marks, leaks = [], {}, []

    def client(s_, acked, stop):
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                r = s_.req('POST', '/v1/instances', who='op', body=START, timeout=10)
            except (OSError, ValueError):
                return
            log.append((t0, time.monotonic(), r.status))
            if r.status == 201:
                acked['start'].add(r.json['id'])
            else:
                if leaky(s_, r):
                    leaks.append(r.text())
                time.sleep(0.05)        # a client that waits a little before it retries

    def drive():
        time.sleep(0.5)
        marks['full'] = time.monotonic()
        open(flag, 'w').close()
        time.sleep(1.5)
        marks['freed'] = time.monotonic()
        os.remove(flag)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                t0 >= marks['freed'] and st == 201 for t0, _, st in list(log)):
            time.sleep(0.05)
        time.sleep(0.2)
        marks['alive'] = s.proc.poll() is None

    acked, whole, after = cycle(s, lib, image, 'pipelined', 0, 3000, client=client,
                                extra={'LOSTWRITES_FULL': flag}, drive=drive)
    full, freed = marks['full'], marks['freed']
    during = [(t0, t1, st) for t0, t1, st in log if full + 0.05 <= t0 and t1 <= freed]
    refused = [t1 for t0, t1, st in log if t1 >= full and st != 201]
    resumed = [t1 for t0, t1, st in log if t0 >= freed and st == 201]
    t.diag('disk full: %d requests while full, statuses %s; first refusal %.2f s after it filled, '
           'first start %.2f s after it was freed' % (
               len(during), sorted({st for _, _, st in during}),
               min(refused) - full if refused else -1, min(resumed) - freed if resumed else -1))
    t.ok(marks.get('alive'), 'disk full: the server kept running')
    t.ok(refused and min(refused) - full <= 1.0, 'disk full: refused within 1 s of the disk filling')
    t.ok(during and all(st in (503, 507) for _, _, st in during),
         'disk full: every request while full is refused with 503 or 507',
         sorted({st for _, _, st in during}))
    t.ok(during and max(t1 - t0 for t0, t1, _ in during) <= 2.0,
         'disk full: no request waits more than 2 s for its refusal')
    t.ok(resumed and min(resumed) - freed <= 10.0, 'disk full: starts succeed again within 10 s, '
         'without a restart')
    t.ok(not leaks, 'disk full: the refusals carry a request id and a fixed text (no SQLite message, SQL or path)',
         leaks[:3])
    t.eq(after[0], 'ok', 'disk full: integrity_check after the power loss that ended it')
    t.eq(sorted(acked['start'] - set(after[1])), [], 'disk full: every start answered 201 survives')


def read_errors(t, s, lib, image):
    """Reads of the database failing (LOSTWRITES_EIO: EIO from read/pread),
    on a server that just started (nothing cached): every call is refused
    with a 5xx -- never the 401 or 404 a handler could conclude from a read
    that failed -- and once reads work again the same server answers."""
    flag = os.path.join(s.dir, 'eio')
    acked = {}

    def drive():
        open(flag, 'w').close()
        rs = [s.req('GET', '/v1/tasks?process=api-bench&limit=5', who='clerk'),
              s.req('GET', '/v1/instances/1', who='op'),
              s.req('POST', '/v1/instances', who='op', body=START)]
        got = [r.status for r in rs]
        t.ok(all(500 <= g < 600 for g in got), 'read errors: every call refused with a 5xx', got)
        leaks = [r.text() for r in rs if leaky(s, r)]
        t.ok(not leaks, 'read errors: the replies carry a request id and a fixed text (no SQLite message, SQL or '
             'path)', leaks)
        t.eq(s.req('GET', '/healthz').status, 200, 'read errors: the server is up (healthz)')
        os.remove(flag)
        r = s.req('POST', '/v1/instances', who='op', body=START)
        t.eq(r.status, 201, 'read errors: a start succeeds once reads work again, without a restart')
        if r.status == 201:
            acked['start'] = {r.json['id']}
        t.eq(s.req('GET', '/v1/tasks?process=api-bench&limit=5', who='clerk').status, 200,
             'read errors: the task list answers again')

    _, _, after = cycle(s, lib, image, 'pipelined', 0, 4000, client=lambda *a: None,
                        extra={'LOSTWRITES_EIO': flag}, drive=drive)
    t.eq(after[0], 'ok', 'read errors: integrity_check afterwards')
    t.eq(sorted(acked.get('start', set()) - set(after[1])), [], 'read errors: the answered start survives')


def main():
    ravand, lib, fake = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
    cycles = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    t = Tap()
    s = Server(ravand)
    image = os.path.join(s.dir, 'image')
    try:
        s.principal('op', 'operator')
        s.principal('clerk', 'branch', branch='B1')
        s.cli('deploy', os.path.join(ROOT, 'bench', 'api', 'api-bench.bpmn'))
        lost_unacked = 0
        all_acked = {'start': set(), 'complete': set()}
        for k in range(cycles):
            mode = 'pipelined' if k % 2 == 0 else 'inline'
            early = 0 if k % 4 < 2 else 300
            delay = 30 if mode == 'pipelined' and (k // 4) % 2 == 0 else 0
            acked, whole, after = cycle(s, lib, image, mode, early, 1000 + k, delay)
            ok, status, rows = after
            lost_s = sorted(acked['start'] - set(status))
            lost_c = sorted(i for i in acked['complete'] if status.get(i) != 'completed')
            # commits the process made that the disk did not keep: unanswered ones
            lost_unacked += whole[2] - rows
            t.diag('cycle %d (%s, sync delay %d ms, early write-back %d/1000): %d starts and %d '
                   'completions answered; %d instances and %d journal/audit rows written, %d and %d '
                   'on the disk after the power loss'
                   % (k + 1, mode, delay, early, len(acked['start']), len(acked['complete']),
                      len(whole[1]), whole[2], len(status), rows))
            t.ok(len(acked['start']) > 0, 'cycle %d: starts were answered before the power loss' % (k + 1))
            t.eq(ok, 'ok', 'cycle %d: integrity_check after the power loss' % (k + 1))
            t.eq(lost_s, [], 'cycle %d: every start answered 201 survives' % (k + 1))
            t.eq(lost_c, [], 'cycle %d: every completion answered 200 survives' % (k + 1))
            for kind in all_acked:
                all_acked[kind] |= acked[kind]
        t.diag('the power losses took %d unanswered journal/audit rows away' % lost_unacked)

        sms_part(t, s, lib, image, fake)
        disk_full(t, s, lib, image)
        read_errors(t, s, lib, image)

        # the harness sees a loss: a start committed and waiting for its sync
        acked, whole, after = cycle(s, lib, image, 'pipelined', 0, 998, delay=3000, one=True)
        t.ok(not acked['start'] and len(whole[1]) == len(after[1]) + 1,
             'a start committed but not synced (not answered) is lost with the power',
             '%d answered; %d instances written, %d on the disk' % (len(acked['start']), len(whole[1]), len(after[1])))

        # canary: a disk that ignores syncs loses what was answered
        acked, whole, after = cycle(s, lib, image, 'pipelined', 0, 999, lie=True)
        lost = acked['start'] - set(after[1])
        t.ok(len(lost) > 0, 'canary: on a disk that ignores syncs answered starts are lost',
             '%d answered, %d lost' % (len(acked['start']), len(lost)))

        # the last image serves, and what every cycle answered is still there
        s.start('--rate', '-1', '--rate-addr', '-1')
        r = s.req('GET', '/v1/tasks?process=api-bench&limit=1', who='clerk')
        t.eq(r.status, 200, 'the server comes up on the last image and answers')
        rc, bad = s.stop()
        t.eq(rc, 0, 'serve exits 0 on SIGTERM')
        t.ok(bad == '', 'no sanitizer report', bad[-2000:])
        ok, status, _ = read_db(s.db)
        canary_lost = lost
        t.eq(sorted(all_acked['start'] - set(status) - canary_lost), [],
             'after all cycles: every answered start of the honest cycles is there')
    except Exception as e:
        import traceback
        t.ok(False, 'harness: %s' % e, traceback.format_exc() + '\n' + s.logtext()[-3000:])
    finally:
        s.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
