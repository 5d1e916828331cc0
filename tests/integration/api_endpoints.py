#!/usr/bin/env python3
"""api_endpoints.py -- every endpoint of the HTTP API, happy path and errors,
against the real `ravand serve` on loopback. Prints TAP.

usage: api_endpoints.py PATH/TO/ravand
"""
import json
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import national_id, problem_ok, FIXTURES, serve_main  # noqa: E402

NID_A = national_id(1354241)
NID_B = national_id(2468013)




def run(t, s):
    toks = {}
    toks['an'] = s.principal('an', 'analyst')
    toks['op'] = s.principal('op', 'operator')
    toks['it'] = s.principal('it', 'it_admin')
    toks['appA'] = s.principal('appA', 'applicant', national_id=NID_A)
    toks['appB'] = s.principal('appB', 'applicant', national_id=NID_B)
    toks['asA'] = s.principal('asA', 'association', county='C1')
    toks['brA'] = s.principal('brA', 'branch', branch='B1')
    toks['brA2'] = s.principal('brA2', 'branch', branch='B1')
    toks['brB'] = s.principal('brB', 'branch', branch='B2')
    toks['brB2'] = s.principal('brB2', 'branch', branch='B2')
    toks['sup'] = s.principal('sup', 'branch', branch='B1', groups='supervisor')
    toks['com'] = s.principal('com', 'committee')
    toks['orgA'] = s.principal('orgA', 'organisation', organisation='O1', agreement='AG1')
    s.start()

    # --- health, metrics, me ---
    r = s.req('GET', '/healthz')
    t.ok(r.status == 200 and r.json.get('status') == 'ok', 'GET /healthz is public and ok', r)
    r = s.req('GET', '/v1/me', who='brA')
    t.ok(r.status == 200 and r.json['role'] == 'branch' and r.json['scope'] == {'branch': 'B1'}
         and r.json['groups'] == ['branch'], 'GET /v1/me: role, scope, groups', r)
    r = s.req('GET', '/v1/me', who='sup')
    t.eq(r.json.get('groups'), ['branch', 'supervisor'], 'extra groups of a principal')
    r = s.req('GET', '/v1/me')
    t.ok(problem_ok(r, 401) and r.header('www-authenticate', ).startswith('Bearer'),
         '401 without a token, problem details + WWW-Authenticate', r)

    # --- definitions ---
    r = s.deploy_fixture('an')
    t.ok(r.status == 201 and r.json['changed'] is True and len(r.json['processes']) == 4,
         'POST /v1/deployments: 201, four processes', r)
    r = s.deploy_fixture('an')
    t.ok(r.status == 200 and r.json['changed'] is False, 'deploying the same content again: 200, unchanged', r)
    r = s.req('POST', '/v1/deployments', who='an', body={'files': [{'path': 'processes/bad.bpmn',
                                                                      'content': '<bpmn:definitions'}]})
    t.ok(r.status == 422 and isinstance(r.json.get('diagnostics'), list) and r.json['diagnostics'],
         'deploy of broken XML: 422 with diagnostics', r)
    r = s.req('POST', '/v1/deployments', who='an', body={'files': [{'path': '../etc/x.bpmn', 'content': 'x'}]})
    t.ok(problem_ok(r, 400), 'deploy path with .. : 400', r)
    r = s.req('POST', '/v1/deployments', who='an', body={'files': [], 'extra': 1})
    t.ok(problem_ok(r, 400), 'deploy with an unknown field: 400', r)
    with open(os.path.join(FIXTURES, 'runtime', 'xor.bpmn'), encoding='utf-8') as f:
        xor = f.read()
    with open(os.path.join(FIXTURES, 'scripts', 'demo.lua'), encoding='utf-8') as f:
        demo = f.read()
    r = s.req('POST', '/v1/lint', who='an', body={'files': [{'path': 'xor.bpmn', 'content': xor}],
                                                  'scripts': [{'path': 'demo.lua', 'content': demo}]})
    t.ok(r.status == 200 and r.json['ok'] is True, 'POST /v1/lint with scripts: ok', r)
    r = s.req('POST', '/v1/lint', who='an', body={'files': [{'path': 'xor.bpmn', 'content': xor.replace(
        'targetRef="svc"/>', 'targetRef="nowhere"/>', 1)}]})
    t.ok(r.status == 200 and r.json['ok'] is False and r.json['errors'] > 0, 'lint finds errors', r)
    r = s.req('POST', '/v1/deployments', who='an', body={'files': [{'path': 'processes/xor.bpmn', 'content': xor}],
                                                         'scripts': [{'path': 'demo.lua', 'content': demo}]})
    t.ok(r.status == 201, 'deploy BPMN + Lua as one deployment', r)
    r = s.req('GET', '/v1/definitions', who='op')
    names = sorted(d['process'] for d in r.json['items'])
    t.eq(names, ['api-broken', 'api-org', 'api-request', 'api-wait', 'p1'], 'GET /v1/definitions lists versions')
    r = s.req('GET', '/v1/definitions?process=p1', who='appA')
    t.ok(r.status == 200 and len(r.json['items']) == 1, 'definitions filtered by process', r)
    r = s.req('GET', '/v1/definitions/p1/1/xml', who='an')
    t.ok(r.status == 200 and r.header('content-type').startswith('application/xml') and r.text() == xor,
         'GET definition XML returns the deployed file', r)
    r = s.req('GET', '/v1/definitions/p1/9/xml', who='an')
    t.ok(problem_ok(r, 404), 'XML of a missing version: 404', r)
    r = s.req('GET', '/v1/definitions?bogus=1', who='an')
    t.ok(problem_ok(r, 400), 'unknown query parameter: 400', r)

    # --- instances ---
    r = s.req('POST', '/v1/instances', who='appA', body={'process': 'api-request',
                                                         'variables': {'county': 'C1', 'branch': 'B1'}})
    t.ok(r.status == 201 and r.header('location') == '/v1/instances/%d' % r.json['id']
         and r.json['status_text'] == 'در انتظار تکمیل مدارک', 'applicant starts a request: 201 + Location', r)
    ia = r.json['id']
    r = s.req('POST', '/v1/instances', who='appA', body={'process': 'api-request', 'business_key': NID_B})
    t.ok(problem_ok(r, 400), 'applicant cannot start for another national ID', r)
    r = s.req('POST', '/v1/instances', who='appA', body={'process': 'api-org'})
    t.ok(problem_ok(r, 403), 'applicant cannot start a process not open to applicants', r)
    r = s.req('POST', '/v1/instances', who='appA', body={'process': 'nope'})
    t.ok(problem_ok(r, 403), 'unknown process for an applicant: 403 (policy first)', r)
    r = s.req('POST', '/v1/instances', who='op', body={'process': 'nope'})
    t.ok(problem_ok(r, 404), 'unknown process for an operator: 404', r)
    r = s.req('POST', '/v1/instances', who='op', body={'process': 'api-request', 'version': 'x'})
    t.ok(problem_ok(r, 400), 'version of the wrong type: 400', r)
    r1 = s.req('POST', '/v1/instances', who='appB', body={'process': 'api-request', 'request_key': 'k1',
                                                          'variables': {'county': 'C2', 'branch': 'B2'}})
    r2 = s.req('POST', '/v1/instances', who='appB', body={'process': 'api-request', 'request_key': 'k1',
                                                          'variables': {'county': 'C2', 'branch': 'B2'}})
    t.ok(r1.status == 201 and r2.status == 201 and r1.json['id'] == r2.json['id'],
         'request_key makes a start idempotent', (r1, r2))
    ib = r1.json['id']
    r3 = s.req('POST', '/v1/instances', who='appA', body={'process': 'api-request', 'request_key': 'k1',
                                                          'variables': {'county': 'C1', 'branch': 'B1'}})
    t.ok(r3.status == 201 and r3.json['id'] != ib, 'request keys are per principal', r3)
    s.req('POST', '/v1/instances/%d/cancel' % r3.json['id'], who='op')
    r = s.req('POST', '/v1/instances', who='orgA', body={'process': 'api-org'})
    t.ok(r.status == 201, 'organisation starts an inquiry', r)
    io = r.json['id']
    r = s.req('POST', '/v1/instances', who='orgA', body={'process': 'api-org', 'business_key': 'x'})
    t.ok(problem_ok(r, 400), 'organisation cannot choose a business key', r)
    r = s.req('POST', '/v1/instances', who='op', body={'process': 'api-broken', 'variables': {'ok': False}})
    t.ok(r.status == 201, 'operator starts a process that fails (incident)', r)
    ibr = r.json['id']
    r = s.req('POST', '/v1/instances', who='op', body={'process': 'api-wait', 'variables': {'ref': 'R-1'}})
    iw = r.json['id']

    r = s.req('GET', '/v1/instances', who='op')
    ids = [x['id'] for x in r.json['items']]
    t.ok(r.status == 200 and {ia, ib, io, ibr, iw} <= set(ids) and ids == sorted(ids, reverse=True),
         'operator lists all instances, newest first', r)
    r = s.req('GET', '/v1/instances?process=api-request&status=active&limit=1', who='op')
    t.ok(r.status == 200 and len(r.json['items']) == 1 and r.json['more'] is True, 'paging: limit and more', r)
    r2 = s.req('GET', '/v1/instances?process=api-request&status=active&limit=1&offset=1', who='op')
    t.ok(r2.json['items'][0]['id'] != r.json['items'][0]['id'], 'paging: offset', r2)
    r = s.req('GET', '/v1/instances?business_key=%s' % NID_A, who='op')
    t.ok(all(x['business_key'] == NID_A for x in r.json['items']) and ia in [x['id'] for x in r.json['items']],
         'filter by business key (national ID)', r)
    r = s.req('GET', '/v1/instances?waiting_at=applicant_docs', who='op')
    t.ok({ia, ib} <= {x['id'] for x in r.json['items']} and io not in {x['id'] for x in r.json['items']},
         'filter by the element where a token waits', r)
    r = s.req('GET', '/v1/instances?incident=true', who='op')
    t.eq([x['id'] for x in r.json['items']], [ibr], 'filter: instances with an open incident')
    now = int(time.time() * 1000)
    r = s.req('GET', '/v1/instances?started_from=2000-01-01T00:00:00Z&started_to=%d' % (now + 60000), who='op')
    t.ok(r.status == 200 and len(r.json['items']) >= 5, 'started range (ISO and epoch ms)', r)
    r = s.req('GET', '/v1/instances?started_from=yesterday', who='op')
    t.ok(problem_ok(r, 400), 'bad time: 400', r)
    r = s.req('GET', '/v1/instances?limit=0', who='op')
    t.ok(problem_ok(r, 400), 'limit out of range: 400', r)
    r = s.req('GET', '/v1/instances/%d' % ia, who='op')
    t.ok(r.status == 200 and r.json['variables'] == {'county': 'C1', 'branch': 'B1', 'national_id': NID_A}
         and r.json['tokens'][0]['element'] == 'applicant_docs' and r.json['history'],
         'GET instance (staff view): variables, tokens, history', r)
    r = s.req('GET', '/v1/instances/%d' % ia, who='appA')
    t.ok(r.status == 200 and 'variables' not in r.json and r.json['status_label'] == 'در انتظار تکمیل مدارک'
         and r.json['tasks'] and r.json['history'], 'GET instance (applicant view): no variables, own tasks', r)
    r = s.req('GET', '/v1/instances/%d' % ib, who='appA')
    t.ok(problem_ok(r, 404), "another applicant's instance: 404", r)
    r = s.req('GET', '/v1/instances/999999', who='appA')
    t.ok(problem_ok(r, 404), 'missing instance: 404', r)

    # --- tasks: the applicant's step ---
    r = s.req('GET', '/v1/tasks', who='appA')
    mine = [x for x in r.json['items'] if x['instance'] == ia]
    t.ok(r.status == 200 and len(mine) == 1 and 'business_key' not in mine[0], 'applicant sees their own task', r)
    ta = mine[0]['id']
    r = s.req('GET', '/v1/tasks/%d' % ta, who='appA')
    t.ok(r.status == 200 and [f['id'] for f in r.json['form']] == ['confirm', 'mobile'] and 'variables' not in r.json,
         'GET task: form fields, no variables for the applicant', r)
    r = s.req('POST', '/v1/tasks/%d/complete' % ta, who='appA', body={'data': {}})
    t.ok(problem_ok(r, 400) and 'required' in r.json['detail'], 'complete without a required field: 400', r)
    r = s.req('POST', '/v1/tasks/%d/complete' % ta, who='appA', body={'data': {'confirm': 'yes'}})
    t.ok(problem_ok(r, 400), 'complete with a field of the wrong type: 400', r)
    r = s.req('POST', '/v1/tasks/%d/complete' % ta, who='appA', body={'data': {'confirm': True, 'amount': 9}})
    t.ok(problem_ok(r, 400) and 'unknown field' in r.json['detail'], 'complete with an undeclared field: 400', r)
    r = s.req('POST', '/v1/tasks/%d/complete' % ta, who='appA', body={'data': {'confirm': True}, 'status': 'x'})
    t.ok(problem_ok(r, 400), 'complete body with an unknown top-level field: 400', r)
    r = s.req('POST', '/v1/tasks/%d/complete' % ta, who='appA', body={'data': {'confirm': True, 'mobile': '09121234567'}})
    t.ok(r.status == 200 and r.json['state'] == 'completed' and r.json['status_text'].startswith('در حال بررسی کانون'),
         'applicant completes their step; status moves to the association', r)
    r = s.req('POST', '/v1/tasks/%d/complete' % ta, who='appA', body={'data': {'confirm': True}})
    t.ok(problem_ok(r, 409), 'completing a completed task: 409', r)
    # the same completion again (a client whose reply was lost retries): answered as before,
    # marked, and nothing happens twice
    r = s.req('POST', '/v1/tasks/%d/complete' % ta, who='appA', body={'data': {'mobile': '09121234567', 'confirm': True}})
    t.ok(r.status == 200 and r.json.get('duplicate') is True and r.json['state'] == 'completed'
         and r.json['instance'] == ia, 'the same completion sent again: 200, duplicate', r)
    con = sqlite3.connect(s.db, timeout=30)
    n = con.execute("SELECT count(*) FROM journal WHERE command='complete' AND instance_id=?"
                    " AND json_extract(payload, '$.task')=?", (ia, ta)).fetchone()[0]
    con.close()
    t.eq(n, 1, '... and the task was completed once (one journaled completion)')

    # --- association ---
    r = s.req('GET', '/v1/tasks?process=api-request&element=association_review', who='asA')
    t.ok(r.status == 200 and [x['instance'] for x in r.json['items']] == [ia] and r.json['items'][0]['county'] == 'C1',
         'association cartable: its county only', r)
    tas = r.json['items'][0]['id']
    t.ok(r.json['items'][0]['due'] > r.json['items'][0]['created'], 'due date set from rv:due')
    due = r.json['items'][0]['due']
    r = s.req('GET', '/v1/tasks?due_from=%d&due_to=%d' % (due, due + 1), who='asA')
    t.eq([x['id'] for x in r.json['items']], [tas], 'filter by due range')
    r = s.req('GET', '/v1/tasks?created_to=2000-01-01', who='asA')
    t.eq(r.json['items'], [], 'filter by created range')
    from urllib.parse import quote
    r = s.req('GET', '/v1/tasks?status_text=' + quote('در حال بررسی کانون بازنشستگان و مستمری‌بگیران'), who='asA')
    t.eq([x['id'] for x in r.json['items']], [tas], 'filter by applicant-facing status (percent-encoded)')
    r = s.req('GET', '/v1/tasks/%d' % tas, who='asA')
    t.ok(r.status == 200 and r.json['variables'].get('mobile') == '09121234567', 'staff task view carries the request data', r)
    r = s.req('POST', '/v1/tasks/%d/comments' % tas, who='asA', body={'text': 'مدارک کامل است'})
    t.ok(r.status == 201 and r.json['author'] == 'asA', 'POST comment', r)
    r = s.req('POST', '/v1/tasks/%d/comments' % tas, who='asA', body={'text': ''})
    t.ok(problem_ok(r, 400), 'empty comment: 400', r)
    r = s.req('GET', '/v1/tasks/%d/comments' % tas, who='asA')
    t.ok(r.status == 200 and [c['body'] for c in r.json['items']] == ['مدارک کامل است'], 'GET comments', r)
    r = s.req('POST', '/v1/tasks/%d/complete' % tas, who='asA', body={'data': {'approved': True, 'note': 'ok'}})
    t.ok(r.status == 200, 'association approves', r)

    # --- branch: claim, transfer, complete ---
    r = s.req('GET', '/v1/tasks?element=branch_review', who='brA')
    t.eq([x['instance'] for x in r.json['items']], [ia], 'branch B1 cartable has the request')
    tb = r.json['items'][0]['id']
    r = s.req('GET', '/v1/tasks?element=branch_review', who='brB')
    t.eq(r.json['items'], [], 'branch B2 does not see it')
    r = s.req('GET', '/v1/tasks?element=branch_review&branch=B1', who='brB')
    t.eq(r.json['items'], [], 'a filter cannot widen the scope (branch=B1 by B2 staff)')
    r = s.req('POST', '/v1/tasks/%d/claim' % tb, who='brA')
    t.ok(r.status == 200 and r.json['assignee'] == 'brA', 'claim', r)
    r = s.req('POST', '/v1/tasks/%d/claim' % tb, who='brA')
    t.ok(r.status == 200, 'claiming again by the same user is a no-op', r)
    r = s.req('POST', '/v1/tasks/%d/claim' % tb, who='brA2')
    t.ok(problem_ok(r, 409), 'claim of a task claimed by another: 409', r)
    r = s.req('POST', '/v1/tasks/%d/complete' % tb, who='brA2', body={'data': {'accepted': True}})
    t.ok(problem_ok(r, 409), 'complete of a task claimed by another: 409', r)
    r = s.req('POST', '/v1/tasks/%d/unclaim' % tb, who='brA2')
    t.ok(problem_ok(r, 409), 'unclaim of a task claimed by another: 409', r)
    r = s.req('GET', '/v1/tasks?assignee=me', who='brA')
    t.eq([x['id'] for x in r.json['items']], [tb], 'assignee=me')
    r = s.req('GET', '/v1/tasks?unassigned=true', who='brA2')
    t.eq([x['id'] for x in r.json['items']], [], 'unassigned=true excludes claimed tasks')
    r = s.req('POST', '/v1/tasks/%d/unclaim' % tb, who='brA')
    t.ok(r.status == 200 and r.json['assignee'] is None, 'unclaim', r)
    r = s.req('GET', '/v1/tasks?group=supervisor', who='sup')
    t.eq([x['id'] for x in r.json['items']], [tb], 'a member of an extra candidate group sees the task')
    r = s.req('POST', '/v1/tasks/%d/transfer' % tb, who='brA', body={'branch': 'B1'})
    t.ok(problem_ok(r, 409), 'transfer to the same branch: 409', r)
    r = s.req('POST', '/v1/tasks/%d/transfer' % tb, who='brA', body={'branch': 'B;2'})
    t.ok(problem_ok(r, 400), 'transfer to a malformed branch code: 400', r)
    r = s.req('POST', '/v1/tasks/%d/transfer' % tb, who='brA', body={'branch': 'B2', 'reason': 'تغییر شعبه بیمه‌پردازی'})
    t.ok(r.status == 200 and r.json['branch'] == 'B2', 'transfer to another branch (change paying branch)', r)
    r = s.req('GET', '/v1/tasks/%d' % tb, who='brA')
    t.ok(problem_ok(r, 404), 'the old branch no longer sees the task', r)
    r = s.req('GET', '/v1/tasks/%d' % tb, who='brB')
    t.ok(r.status == 200 and r.json['branch'] == 'B2', 'the new branch sees it', r)
    r = s.req('GET', '/v1/tasks/%d/comments' % tb, who='brB')
    t.ok(r.status == 200 and r.json['items'] and r.json['items'][0]['author'] == 'brA',
         'the transfer reason is a comment', r)
    r = s.req('POST', '/v1/tasks/%d/complete' % tb, who='brB', body={'data': {'accepted': True, 'reason': 'other'}})
    t.ok(problem_ok(r, 400), 'enum value not in the list: 400', r)
    r = s.req('POST', '/v1/tasks/%d/complete' % tb, who='brB', body={'data': {'accepted': True}})
    t.ok(r.status == 200 and 'duplicate' not in r.json, 'branch B2 completes', r)
    r = s.req('POST', '/v1/tasks/%d/complete' % tb, who='brB2', body={'data': {'accepted': True}})
    t.ok(problem_ok(r, 409), 'the same data from another user of the branch: 409', r)
    r = s.req('POST', '/v1/tasks/%d/complete' % tb, who='brB', body={'data': {'accepted': True}})
    t.ok(r.status == 200 and r.json.get('duplicate') is True, 'the completing user sends it again: 200, duplicate', r)

    # --- committee: a task without form fields ---
    r = s.req('GET', '/v1/tasks', who='com')
    tc = [x['id'] for x in r.json['items'] if x['instance'] == ia]
    t.eq(len(tc), 1, 'committee cartable')
    r = s.req('POST', '/v1/tasks/%d/complete' % tc[0], who='com', body={'data': {'approved': True}})
    t.ok(problem_ok(r, 400), 'a task without form fields takes no data (no mass assignment)', r)
    r = s.req('POST', '/v1/tasks/%d/complete' % tc[0], who='com')
    t.ok(r.status == 200 and r.json['instance_status'] == 'completed', 'complete with no body', r)
    r = s.req('POST', '/v1/tasks/%d/complete' % tc[0], who='com')
    t.ok(r.status == 200 and r.json.get('duplicate') is True and r.json['instance_status'] == 'completed',
         'complete with no body again: 200, duplicate', r)

    # --- my requests ---
    r = s.req('GET', '/v1/my/requests', who='appA')
    got = {x['id']: x for x in r.json['items']}
    t.ok(r.status == 200 and ia in got and ib not in got and got[ia]['status_label'] == 'مختومه - تایید نهایی',
         'My requests: own requests with Persian status', r)
    r = s.req('GET', '/v1/my/requests/%d' % ia, who='appA')
    hist = [h['status_text'] for h in r.json.get('history', [])]
    t.ok(r.status == 200 and hist[0] == 'درخواست ثبت شد' and hist[-1] == 'مختومه - تایید نهایی' and len(hist) >= 5,
         'My request: status history in Persian', r)
    r = s.req('GET', '/v1/my/requests/%d' % ib, who='appA')
    t.ok(problem_ok(r, 404), "My request of someone else: 404", r)
    r = s.req('GET', '/v1/my/requests', who='brA')
    t.ok(problem_ok(r, 403), 'My requests is for applicants', r)

    # --- organisation ---
    r = s.req('GET', '/v1/tasks', who='orgA')
    t.ok(r.status == 200 and [x['instance'] for x in r.json['items']] == [io], 'organisation sees its own task', r)
    r = s.req('GET', '/v1/instances', who='orgA')
    t.eq([x['id'] for x in r.json['items']], [io], 'organisation sees the instances it started')

    # --- history with gateway reasons ---
    r = s.req('GET', '/v1/instances/%d' % ia, who='op')
    gw = [h for h in r.json['history'] if h['event'] == 'GATEWAY_DECISION']
    t.ok(gw and gw[0]['element'] == 'gw' and gw[0]['detail'], 'history carries the gateway decision and reason', gw)

    # --- cancel ---
    r = s.req('POST', '/v1/instances/%d/cancel' % ib, who='op', body={'reason': 'duplicate'})
    t.ok(r.status == 200 and r.json['status'] == 'canceled', 'cancel an instance', r)
    r = s.req('POST', '/v1/instances/%d/cancel' % ib, who='op')
    t.ok(problem_ok(r, 409), 'cancel a canceled instance: 409', r)
    r = s.req('POST', '/v1/instances/999999/cancel' , who='op')
    t.ok(problem_ok(r, 404), 'cancel a missing instance: 404', r)

    # --- messages and signals ---
    r = s.req('POST', '/v1/messages', who='op', body={'name': 'paid', 'correlation_key': 'R-1',
                                                      'payload': {'amount': 100}, 'message_id': 'm-1'})
    t.ok(r.status == 200 and r.json['result'] == 'correlated' and r.json['instance'] == iw, 'correlate a message', r)
    r = s.req('POST', '/v1/messages', who='op', body={'name': 'paid', 'correlation_key': 'R-1', 'message_id': 'm-1'})
    t.ok(r.status == 200 and r.json['result'] == 'duplicate', 'the same message id again: duplicate', r)
    r = s.req('POST', '/v1/messages', who='op', body={'name': 'paid', 'correlation_key': 'R-9', 'ttl': 'PT1M'})
    t.ok(r.status == 200 and r.json['result'] == 'buffered', 'no subscriber: buffered for its ttl', r)
    r = s.req('POST', '/v1/messages', who='op', body={'name': 'paid', 'ttl': 'soon'})
    t.ok(problem_ok(r, 400), 'bad ttl: 400', r)
    r = s.req('POST', '/v1/messages', who='op', body={'correlation_key': 'R-1'})
    t.ok(problem_ok(r, 400), 'message without a name: 400', r)
    r = s.req('GET', '/v1/instances/%d' % iw, who='op')
    t.eq(r.json['status'], 'completed', 'the message moved the instance on')
    r = s.req('POST', '/v1/signals', who='op', body={'name': 'nobody-listens'})
    t.ok(r.status == 200 and r.json['received'] == 0, 'broadcast a signal', r)

    # --- incidents ---
    r = s.req('GET', '/v1/incidents', who='op')
    inc = [x for x in r.json['items'] if x['instance'] == ibr]
    t.ok(r.status == 200 and len(inc) == 1 and inc[0]['element'] == 'bgw', 'list incidents', r)
    r = s.req('POST', '/v1/incidents/%d/retry' % inc[0]['id'], who='op')
    t.ok(r.status == 200, 'retry an incident', r)
    r = s.req('GET', '/v1/incidents?state=resolved&instance=%d' % ibr, who='op')
    t.ok(inc[0]['id'] in [x['id'] for x in r.json['items']], 'the retried incident is resolved', r)
    r = s.req('POST', '/v1/incidents/999999/retry', who='op')
    t.ok(problem_ok(r, 404), 'retry a missing incident: 404', r)
    r = s.req('GET', '/v1/incidents?state=bogus', who='op')
    t.ok(problem_ok(r, 400), 'bad incident state: 400', r)

    # --- metrics ---
    # p1: fee 20,000 takes the default flow to the echo service, answered
    # inside the start's own command (cfg.answer_now): done before the reply
    r = s.req('POST', '/v1/instances', who='op', body={'process': 'p1', 'variables': {'age': 20}})
    t.ok(r.status == 201, 'start p1 (echo service)', r)
    r = s.req('GET', '/v1/instances/%d' % r.json['id'], who='op')
    t.eq(r.json.get('status'), 'completed', 'the in-process echo answered inside the start command')
    r = s.req('GET', '/metrics', who='op')
    body = r.text()
    answered = [l for l in body.splitlines() if l.startswith('ravand_jobs_answered_now_total ')]
    t.ok(answered and int(answered[0].split()[1]) >= 1, 'metrics: jobs answered inside their command', answered)
    for name in ('ravand_instances{status="completed"}', 'ravand_task_backlog{', 'ravand_jobs',
                 'ravand_incidents_open', 'ravand_http_request_duration_seconds_bucket{route="task.complete",le="+Inf"}',
                 'ravand_http_commit_batch_size_bucket', 'ravand_engine_commits_total'):
        t.ok(name in body, 'metrics: %s' % name, body[:400])
    t.ok(r.header('content-type').startswith('text/plain; version=0.0.4'), 'metrics content type')
    r = s.req('GET', '/metrics', who='brA')
    t.ok(problem_ok(r, 403), 'metrics are for operators and IT admins', r)

    # --- audit ---
    r = s.req('GET', '/v1/audit?action=task.complete', who='it')
    rows = r.json['items']
    t.ok(r.status == 200 and any(x['principal'] == 'brB' and x['object'] == 'task:%d' % tb and x['outcome'] == 200
                                 for x in rows), 'audit has the completion: who, what, outcome', r)
    t.ok(all(x['address'] == '127.0.0.1' and x['at'] > 0 for x in rows), 'audit rows carry address and time')
    r = s.req('GET', '/v1/audit?action=task.get&principal=asA', who='it')
    t.ok(r.json['items'], 'staff reads of personal data are audited', r)
    r = s.req('GET', '/v1/audit?action=instance.list&principal=appA', who='it')
    t.eq(r.json['items'], [], "an applicant reading their own requests is not audited")
    r = s.req('GET', '/v1/audit?outcome=401', who='it')
    t.ok(r.json['items'], 'failed authentication is audited', r)
    r = s.req('GET', '/v1/audit', who='op')
    t.ok(problem_ok(r, 403), 'the audit log is for IT admins', r)
    p = s.cli('audit', 'verify')
    t.ok(p.returncode == 0 and 'intact' in p.stdout, 'audit hash chain verifies', p.stdout + p.stderr)

    # --- tokens: revoke, expire, disable ---
    tok = s.cli('principal', 'token', 'brA2').stdout.strip()
    r = s.req('GET', '/v1/me', token=tok)
    t.eq(r.status, 200, 'a second token works')
    s.cli('principal', 'revoke', 'brA2')
    r = s.req('GET', '/v1/me', token=tok)
    t.ok(problem_ok(r, 401), 'revoked token: 401 at once', r)
    tok = s.cli('principal', 'token', 'brA', '--expires', 'PT1S').stdout.strip()
    time.sleep(1.3)
    r = s.req('GET', '/v1/me', token=tok)
    t.ok(problem_ok(r, 401), 'expired token: 401', r)
    s.cli('principal', 'disable', 'sup')
    r = s.req('GET', '/v1/me', who='sup')
    t.ok(problem_ok(r, 401), 'disabled principal: 401', r)
    s.cli('principal', 'enable', 'sup')
    r = s.req('GET', '/v1/me', who='sup')
    t.eq(r.status, 200, 'enabled again')
    r = s.req('GET', '/v1/me?access_token=' + toks['op'])
    t.ok(problem_ok(r, 401), 'a token in the URL is refused', r)
    r = s.req('GET', '/v1/me', token=toks['op'][:-1] + ('A' if toks['op'][-1] != 'A' else 'B'))
    t.ok(problem_ok(r, 401), 'a forged token: 401', r)
    r = s.req('GET', '/v1/me', headers={'Authorization': 'Basic b3A6b3A='})
    t.ok(problem_ok(r, 401), 'another scheme: 401', r)
    p = s.cli('principal', 'add', 'x1', '--role', 'applicant', '--national-id', '1234567890', check=False)
    t.ok(p.returncode != 0, 'principal add checks the national ID', p.stderr)
    p = s.cli('principal', 'add', 'x2', '--role', 'branch', check=False)
    t.ok(p.returncode == 2, 'principal add requires the scope of the role', p.stderr)

    # --- secrets at rest ---
    raw = b''
    for suffix in ('', '-wal'):
        try:
            with open(s.db + suffix, 'rb') as f:
                raw += f.read()
        except OSError:
            pass
    leaked = [n for n, tk in s.tokens.items() if tk.encode() in raw or tk[4:].encode() in raw]
    t.eq(leaked, [], 'no token appears in the database files')

    # --- the audit log's tail cut off: a shorter chain is a chain; only an anchor shows it ---
    p = s.cli('--json', 'audit', 'verify')
    head = json.loads(p.stdout)['head']
    for _ in range(3):
        s.req('GET', '/v1/instances?limit=1', who='op')          # audited reads after the anchor
    p = s.cli('audit', 'verify', '--anchor', head, check=False)
    t.ok(p.returncode == 0 and 'anchor found' in p.stdout, 'audit verify --anchor: the anchored head is there', p.stdout)
    db = sqlite3.connect(s.db)
    db.execute('DROP TRIGGER audit_no_delete')
    db.execute('DELETE FROM audit WHERE id >= ?', (int(head.split(':')[0]),))
    db.commit()
    db.close()
    p = s.cli('audit', 'verify', check=False)
    t.ok(p.returncode == 0 and 'intact' in p.stdout, 'the cut-off chain alone still verifies (what the anchor is for)',
         p.stdout)
    p = s.cli('audit', 'verify', '--anchor', head, check=False)
    t.ok(p.returncode == 1 and 'BROKEN' in p.stdout and 'gone' in p.stdout,
         'audit verify --anchor: the rows cut off are found missing', p.stdout)
    p = s.cli('audit', 'verify', '--anchor', 'nonsense', check=False)
    t.eq(p.returncode, 2, 'audit verify --anchor: a malformed anchor is a usage error')

    # --- audit tampering is detected ---
    db = sqlite3.connect(s.db)
    db.execute('DROP TRIGGER audit_no_update')
    db.execute("UPDATE audit SET principal='someone' WHERE id=(SELECT min(id)+3 FROM audit)")
    db.commit()
    db.close()
    p = s.cli('audit', 'verify', check=False)
    t.ok(p.returncode == 1 and 'BROKEN' in p.stdout, 'a modified audit row breaks the chain', p.stdout)


if __name__ == '__main__':
    sys.exit(serve_main(sys.argv[1], run, ['--rate', '-1', '--rate-addr', '-1', '--applicant-starts', 'api-request,p1',
                                               '--organisation-starts', 'api-org']))
