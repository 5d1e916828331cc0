#!/usr/bin/env python3
"""timer_burst.py -- thousands of timers due at one instant while `ravand
serve` answers requests (RELIABILITY B9 at PR size; main.c on_tick/on_burst,
engine.c rv_engine_fire_due_within): a month's end does this to the
marriage grant.

2,000 instances wait on a one-second timer (then a script that takes a
moment); serve starts again with its
clock ten seconds later, so every timer is due at once. Meanwhile an
operator lists active instances, again as soon as answered. Checks:

  - every timer fired exactly once (one `timer` command per instance in the
    journal, none left), every instance completed;
  - requests were answered while timers were still due -- the burst runs in
    batches with the loop in between, it does not hold the server until it
    is over -- and every one was 200.

How fast is a benchmark's business (bench/run, workload 5 while serving).

usage: timer_burst.py PATH/TO/ravand
"""
import os
import sqlite3
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import Server, tap_main  # noqa: E402

N = 2000
T0, T1 = '2026-01-01T00:00:00Z', '2026-01-01T00:00:10Z'
# start -> a one-second timer -> a script that takes a moment -> end: the
# burst must last long enough to be seen from outside
BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">
  <process id="burst" isExecutable="true">
    <startEvent id="s"/>
    <sequenceFlow id="f1" sourceRef="s" targetRef="wait"/>
    <intermediateCatchEvent id="wait">
      <timerEventDefinition><timeDuration>PT1S</timeDuration></timerEventDefinition>
    </intermediateCatchEvent>
    <sequenceFlow id="f2" sourceRef="wait" targetRef="work"/>
    <scriptTask id="work" scriptFormat="lua"><script>local x = 0 for i = 1, 100000 do x = x + i % 7 end sum = x</script></scriptTask>
    <sequenceFlow id="f3" sourceRef="work" targetRef="e"/>
    <endEvent id="e"/>
  </process>
</definitions>
"""


def ro(db):
    return sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=30)


def starter(s, k, n, bad):
    for _ in range(n):
        r = s.req('POST', '/v1/instances', who='op', body={'process': 'burst'})
        if r.status != 201:
            bad.append(r.status)


def run(t, ravand):
    limits = ['--rate', '-1', '--rate-addr', '-1']
    s = Server(ravand, limits + ['--now', T0])
    try:
        s.principal('op', 'operator')
        s.principal('an', 'analyst')
        s.start()
        r = s.req('POST', '/v1/deployments', who='an',
                  body={'files': [{'path': 'processes/burst.bpmn', 'content': BPMN}]})
        t.eq(r.status, 201, 'deploy')
        bad = []
        th = [threading.Thread(target=starter, args=(s, k, N // 4, bad)) for k in range(4)]
        for x in th:
            x.start()
        for x in th:
            x.join()
        t.ok(not bad, '%d instances started, all 201' % N, str(sorted(set(bad))))
        rc, log = s.stop()
        t.eq(rc, 0, 'serve exits 0 (clock at %s)' % T0)
        con = ro(s.db)
        due = con.execute('SELECT count(*) FROM timers').fetchone()[0]
        con.close()
        t.eq(due, N, 'every instance waits on its timer')

        s.args = limits + ['--now', T1]
        s.start()
        statuses, during, after = [], 0, 0
        con = ro(s.db)
        for _ in range(100000):
            r = s.req('GET', '/v1/instances?status=active&limit=20', who='op')
            statuses.append(r.status)
            left = con.execute('SELECT count(*) FROM timers').fetchone()[0]
            if left > 0:
                during += 1
            else:
                after += 1
                if after >= 3:
                    break
        con.close()
        rc, log = s.stop()
        t.eq(rc, 0, 'serve exits 0 (clock at %s)' % T1)
        t.ok(log == '', 'no sanitizer report', log[-2000:])
        t.eq(sorted(set(statuses)), [200], 'every request during the burst answered 200')
        t.ok(during >= 3, 'requests were answered while timers were still due (%d)' % during)
        con = ro(s.db)
        fired = con.execute("SELECT count(*), count(DISTINCT instance_id) FROM journal WHERE command='timer'").fetchone()
        twice = con.execute("SELECT count(*) FROM (SELECT instance_id FROM journal WHERE command='timer'"
                            " GROUP BY instance_id HAVING count(*) > 1)").fetchone()[0]
        left = con.execute('SELECT count(*) FROM timers').fetchone()[0]
        done = con.execute("SELECT count(*) FROM instances WHERE status='completed'").fetchone()[0]
        con.close()
        t.eq(list(fired), [N, N], 'every timer fired, one command each')
        t.eq(twice, 0, 'no timer fired twice')
        t.eq(left, 0, 'no timer left')
        t.eq(done, N, 'every instance completed')
    finally:
        s.cleanup()


if __name__ == '__main__':
    sys.exit(tap_main(run))
