#!/usr/bin/env python3
"""api_batch.py -- the HTTP server's optimistic group commit (server.c on_flush).

Requests that arrive in one loop pass share one transaction without a
savepoint each. One that fails after writing (here: a task completion whose
Lua output mapping divides by zero after the task row was updated) spoils
the batch: it is rolled back and every request runs again with a savepoint
each. This test makes the requests of a round land in one batch for sure
(connections open, server stopped with SIGSTOP, every request written,
SIGCONT: one epoll wake-up sees them all) and checks:

  - every reply is what the request deserves alone (200, 400 form, 404 not
    yours, 409 already completed, 422 rule failed, 401 bad token), whoever
    shared its batch;
  - the resulting task and instance states: no lost and no doubled effect;
  - the audit log: exactly one row per audited request, with the reply's
    status, and `ravand audit verify` intact (no row of the rolled-back
    pass survives, the hash chain is unbroken);
  - the rerun took no second rate-limit token and counted the failed
    authentication once (metrics), and the batch was run again
    (ravand_http_batch_reruns_total) -- or not, for a batch whose failures
    all came before any write;
  - a handler that must undo what its engine command wrote (an applicant's
    message that reached someone else's case) makes the batch run again,
    and that case does not move.

usage: api_batch.py PATH/TO/ravand
"""
import http.client
import json
import os
import signal
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import Server, Tap, national_id  # noqa: E402

# One user task with a required form and an output mapping that throws for
# parts == 0, after the engine has marked the task completed.
BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:rv="urn:ravand:bpmn:1"
    id="d_api_batch" targetNamespace="urn:ravand:test">
  <bpmn:process id="api-batch" name="batch" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="review"/>
    <bpmn:userTask id="review" name="review" rv:candidateGroups="branch" rv:branch="branch">
      <bpmn:extensionElements>
        <rv:output name="share" expr="1000 // result.parts"/>
        <rv:field id="approved" type="boolean" required="true"/>
        <rv:field id="parts" type="long" required="true"/>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f1" sourceRef="review" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>
"""

# --rate 1 --burst 9: a principal's bucket holds 9 tokens and refills one a
# second. Each round's clerk sends exactly 9 requests in the batch: if the
# rerun took its tokens again, some of them would come back 429.
RATE = ['--rate', '1', '--burst', '9']


def metrics(s, who):
    """The server's counters, read as who (an operator of its own, so that
    the test's reads do not use up the clerks' or each other's tokens)."""
    r = s.req('GET', '/metrics', who=who)
    while r.status == 429:               # its own bucket: wait for a token
        time.sleep(1)
        r = s.req('GET', '/metrics', who=who)
    out = {}
    for line in r.text().splitlines():
        if line and not line.startswith('#'):
            k, v = line.rsplit(' ', 1)
            out[k] = float(v)
    return out


def start_tasks(s, n, branch='B1'):
    """Start n instances through the CLI (no API tokens spent); [(instance, task)]."""
    ids = []
    for _ in range(n):
        p = s.cli('--json', 'start', 'api-batch', json.dumps({'branch': branch}))
        inst = json.loads(p.stdout)['instance']
        ids.append((inst, sql(s, 'SELECT id FROM tasks WHERE instance_id=?', inst)[0][0]))
    return ids


def sql(s, q, *args):
    db = sqlite3.connect('file:%s?mode=ro' % s.db, uri=True, timeout=30)
    try:
        return db.execute(q, args).fetchall()
    finally:
        db.close()


def wait_conns(s, mon, n):
    """Wait until the server holds n connections besides the one asking."""
    deadline = time.time() + 60
    while time.time() < deadline:
        r = s.req('GET', '/metrics', who=mon)
        if r.status == 429:              # the monitor's own bucket: wait for a token
            time.sleep(1)
            continue
        g = [line for line in r.text().splitlines() if line.startswith('ravand_http_connections ')]
        if g and float(g[0].split()[1]) == n + 1:
            return True
        time.sleep(0.2)
    return False


def open_conns(s, n, mon):
    """n connections the server has accepted and set up (its connection
    gauge says so: one that is still in the kernel's backlog would be read
    a loop pass later, in another batch). Earlier ones are closed first."""
    wait_conns(s, mon, 0)
    conns = []
    for _ in range(n):
        c = http.client.HTTPConnection('127.0.0.1', s.port, timeout=120)
        c.connect()
        conns.append(c)
    wait_conns(s, mon, n)
    return conns


def proc_state(pid):
    with open('/proc/%d/stat' % pid) as f:
        return f.read().rsplit(')', 1)[1].split()[0]


def send_batch(s, conns, reqs):
    """Send every request at once so that they share one batch: the server
    is stopped (SIGSTOP) while they are written and continued after, so one
    wake-up of its loop finds them all. Returns [(status, json, request id)]."""
    os.kill(s.proc.pid, signal.SIGSTOP)
    try:
        stopped_by = time.time() + 10      # the signal is asynchronous: wait until it took
        while time.time() < stopped_by and proc_state(s.proc.pid) != 'T':
            time.sleep(0.01)
        for c, (method, path, token, body) in zip(conns, reqs):
            h = {'Authorization': 'Bearer ' + token}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                h['Content-Type'] = 'application/json'
            c.request(method, path, body=data, headers=h)
        time.sleep(0.1)
    finally:
        os.kill(s.proc.pid, signal.SIGCONT)
    out = []
    for c in conns:
        r = c.getresponse()
        body = r.read()
        try:
            j = json.loads(body.decode())
        except ValueError:
            j = None
        out.append((r.status, j, r.getheader('X-Request-Id')))
        c.close()
    return out


def task_state(s, tid):
    return tuple(sql(s, 'SELECT state, assignee FROM tasks WHERE id=?', tid)[0])


def instance(s, inst):
    return json.loads(s.cli('--json', 'instances', 'show', str(inst)).stdout)


def round_mixed(t, s, rnd, spoil):
    """One batch: valid completions, a claim, a list, and failures of every
    kind; with spoil, one completion whose Lua mapping throws after writing."""
    clerk, mon = 'clerk%d' % rnd, 'mon%d' % rnd
    s.principal(clerk, 'branch', branch='B1')
    s.principal(mon, 'operator')
    tok = s.tokens[clerk]
    other = s.tokens['clerkB2']
    tasks = start_tasks(s, 8)
    done_task = tasks[7][1]
    s.cli('tasks', 'complete', str(done_task), json.dumps({'approved': True, 'parts': 10}), '--actor', 'x')
    hidden = start_tasks(s, 1, branch='B2')[0]

    C = '/v1/tasks/%d/complete'
    # exactly 9 requests with the clerk's token (its bucket: see RATE)
    reqs = [
        ('POST', C % tasks[0][1], tok, {'data': {'approved': True, 'parts': 4}}),      # 200
        ('POST', C % tasks[1][1], tok, {'data': {'approved': True, 'parts': 0 if spoil else 1}}),
        ('POST', C % tasks[2][1], tok, {'data': {'approved': 'yes', 'parts': 1}}),     # 400 form
        ('POST', C % done_task, tok, {'data': {'approved': True, 'parts': 2}}),        # 409
        ('POST', C % tasks[3][1], tok, {'data': {'approved': False, 'parts': 2}}),     # 200
        ('POST', C % hidden[1], tok, {'data': {'approved': True, 'parts': 2}}),        # 404
        ('GET', '/v1/tasks?process=api-batch&limit=5', tok, None),                     # 200
        ('POST', C % tasks[4][1], 'rvt_not-a-token', {'data': {'approved': True, 'parts': 2}}),  # 401
        ('POST', C % tasks[5][1], tok, {'data': {'approved': True, 'parts': 5}}),      # 200
        ('POST', '/v1/tasks/%d/claim' % tasks[6][1], tok, None),                       # 200
        ('POST', C % tasks[1][1], other, {'data': {'approved': True, 'parts': 3}}),    # 404 (B2)
    ]
    want = [200, 422 if spoil else 200, 400, 409, 200, 404, 200, 401, 200, 200, 404]
    conns = open_conns(s, len(reqs), mon)
    m0 = metrics(s, mon)
    got = send_batch(s, conns, reqs)
    m1 = metrics(s, mon)
    d = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1}
    # m0's own batch is counted after its reply: one more than ours
    t.eq(d['ravand_http_commit_batch_size_count'], 2,
         'round %d: the %d requests shared one batch' % (rnd, len(reqs)))
    t.eq(d['ravand_http_batch_reruns_total'], 1 if spoil else 0,
         'round %d: the batch was %s' % (rnd, 'run again with savepoints' if spoil else 'not run again'))
    t.eq([g[0] for g in got], want, 'round %d: every reply is what the request deserves alone' % rnd)
    if spoil:
        t.ok(got[1][1] and 'zero' in (got[1][1].get('detail') or ''),
             'round %d: the failing rule says why (422 detail)' % rnd, got[1])
    t.eq(d['ravand_http_auth_failures_total'], 1, 'round %d: the bad token counted once' % rnd)
    t.eq(d['ravand_http_rejected_total{reason="rate"}'], 0,
         'round %d: no rate-limit token taken twice (no 429)' % rnd)

    # states: no lost, no doubled effect
    st = [task_state(s, tid) for _, tid in tasks]
    t.eq([x[0] for x in st],
         ['completed', 'open' if spoil else 'completed', 'open', 'completed', 'open', 'completed', 'open',
          'completed'],
         'round %d: task states' % rnd)
    t.eq(st[6][1], clerk, 'round %d: the claim holds' % rnd)
    t.eq(task_state(s, hidden[1]), ('open', None), 'round %d: the other branch\'s task is untouched' % rnd)
    insts = [instance(s, inst) for inst, _ in tasks[:6]]
    t.eq([(x['status'], x['variables'].get('share')) for x in insts],
         [('completed', 250), ('active', None) if spoil else ('completed', 1000), ('active', None),
          ('completed', 500), ('active', None), ('completed', 200)],
         'round %d: instance states and mapped variables' % rnd)
    t.eq([sum(1 for h in x['history'] if h['event'] == 'TASK_COMPLETED') for x in insts],
         [1, 0 if spoil else 1, 0, 1, 0, 1],
         'round %d: one TASK_COMPLETED per completed task, none for the others' % rnd)
    if spoil:
        # the task whose rule failed can still be completed, with good data
        s.principal('late%d' % rnd, 'branch', branch='B1')     # the clerk's bucket is empty
        r = s.req('POST', C % tasks[1][1], who='late%d' % rnd, body={'data': {'approved': True, 'parts': 8}})
        t.eq((r.status, task_state(s, tasks[1][1])[0]), (200, 'completed'),
             'round %d: the task whose rule failed completes later with good data' % rnd)

    # audit: one row per request of the batch, with the reply's status
    rows = sql(s, 'SELECT request_id, outcome FROM audit')
    by_rid = {}
    for rid, outcome in rows:
        by_rid.setdefault(rid, []).append(outcome)
    t.eq([by_rid.get(g[2], []) for g in got], [[w] for w in want],
         'round %d: exactly one audit row per request, with its reply\'s status' % rnd)
    v = s.cli('--json', 'audit', 'verify', check=False)
    try:
        j = json.loads(v.stdout)
    except ValueError:
        j = {}
    t.ok(v.returncode == 0 and j.get('broken') == 0 and j.get('rows') == len(rows),
         'round %d: ravand audit verify: chain intact (%s rows)' % (rnd, j.get('rows')), v.stdout + v.stderr)


# A handler's own undo (r->rollback): an applicant's message reaches a case
# that is not theirs (keyed by their national ID, filed under another
# business key); the engine command has already moved that case when the
# handler finds out, so in an optimistic batch the batch must run again.
APPEAL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:rv="urn:ravand:bpmn:1"
    id="d_api_batch_appeal" targetNamespace="urn:ravand:test">
  <bpmn:message id="m_appeal" name="appeal"/>
  <bpmn:process id="appeal-file" name="appeal" isExecutable="true">
    <bpmn:startEvent id="s" rv:startableBy="applicant">
      <bpmn:messageEventDefinition messageRef="m_appeal"/>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="review"/>
    <bpmn:userTask id="review" name="review" rv:candidateGroups="branch"/>
    <bpmn:sequenceFlow id="f1" sourceRef="review" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
  <bpmn:process id="appeal-other" name="other" isExecutable="true">
    <bpmn:startEvent id="s2"/>
    <bpmn:sequenceFlow id="g0" sourceRef="s2" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait" rv:correlationKey="nid">
      <bpmn:messageEventDefinition messageRef="m_appeal"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="g1" sourceRef="wait" targetRef="e2"/>
    <bpmn:endEvent id="e2"/>
  </bpmn:process>
</bpmn:definitions>
"""
NID1, NID2 = national_id(1354241), national_id(2468013)


def round_undo(t, s, rnd):
    """A batch in which a handler must undo what its engine command wrote."""
    mon = 'mon%d' % rnd
    s.principal(mon, 'operator')
    s.principal('clerk%d' % rnd, 'branch', branch='B1')
    tok = s.tokens['clerk%d' % rnd]
    other = json.loads(s.cli('--json', 'start', 'appeal-other', json.dumps({'nid': NID1}),
                             '--business-key', '1111111111').stdout)['instance']
    tasks = start_tasks(s, 2)
    C = '/v1/tasks/%d/complete'
    reqs = [
        ('POST', C % tasks[0][1], tok, {'data': {'approved': True, 'parts': 4}}),      # 200
        ('POST', '/v1/my/requests', s.tokens['app1'], {'message': 'appeal'}),         # 409, undone
        ('POST', '/v1/my/requests', s.tokens['app2'], {'message': 'appeal'}),         # 201
        ('POST', C % tasks[1][1], tok, {'data': {'approved': True, 'parts': 5}}),      # 200
    ]
    want = [200, 409, 201, 200]
    conns = open_conns(s, len(reqs), mon)
    m0 = metrics(s, mon)
    got = send_batch(s, conns, reqs)
    m1 = metrics(s, mon)
    t.eq(m1['ravand_http_commit_batch_size_count'] - m0['ravand_http_commit_batch_size_count'], 2,
         'round %d: the %d requests shared one batch' % (rnd, len(reqs)))
    t.eq(m1['ravand_http_batch_reruns_total'] - m0['ravand_http_batch_reruns_total'], 1,
         'round %d: the handler\'s undo made the batch run again' % rnd)
    t.eq([g[0] for g in got], want, 'round %d: every reply is what the request deserves alone' % rnd)
    oi = instance(s, other)
    t.ok(oi['status'] == 'active' and not any(h['event'] == 'MESSAGE_CORRELATED' for h in oi['history'])
         and len(oi['subscriptions']) == 1,
         'round %d: the case that is not the applicant\'s did not move (still waits for the message)' % rnd,
         json.dumps(oi)[:600])
    t.eq(sql(s, "SELECT count(*) FROM instances WHERE process_id='appeal-file' AND business_key=?", NID2),
         [(1,)], 'round %d: the other applicant\'s case started exactly once' % rnd)
    t.eq([task_state(s, tid)[0] for _, tid in tasks], ['completed', 'completed'],
         'round %d: the completions that shared the batch hold' % rnd)
    by_rid = {}
    for rid, outcome in sql(s, 'SELECT request_id, outcome FROM audit'):
        by_rid.setdefault(rid, []).append(outcome)
    t.eq([by_rid.get(g[2], []) for g in got], [[w] for w in want],
         'round %d: exactly one audit row per request, with its reply\'s status' % rnd)
    v = s.cli('--json', 'audit', 'verify', check=False)
    t.ok(v.returncode == 0 and json.loads(v.stdout or '{}').get('broken') == 0,
         'round %d: ravand audit verify: chain intact' % rnd, v.stdout + v.stderr)


def main():
    t = Tap()
    s = Server(sys.argv[1], args=RATE + ['--rate-addr', '-1'])
    try:
        path = os.path.join(s.dir, 'api-batch.bpmn')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(BPMN)
        s.cli('deploy', path)
        path = os.path.join(s.dir, 'appeal.bpmn')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(APPEAL)
        s.cli('deploy', path)
        s.principal('clerkB2', 'branch', branch='B2')
        s.principal('app1', 'applicant', national_id=NID1)
        s.principal('app2', 'applicant', national_id=NID2)
        s.start()
        round_mixed(t, s, 1, spoil=True)
        round_mixed(t, s, 2, spoil=False)
        round_mixed(t, s, 3, spoil=True)
        round_undo(t, s, 4)
        rc, bad = s.stop()
        t.ok(rc == 0 and not bad, 'server stops cleanly (no sanitizer report)', bad[-3000:] if bad else rc)
    finally:
        s.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
