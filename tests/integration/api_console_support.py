#!/usr/bin/env python3
"""api_console_support.py -- what the web console needs from the API, against
the real `ravand serve` (docs/api.md, docs/console.md). Prints TAP.

  - GET /v1/definitions/{p}/{v}/waiting: per element, how many active
    instances of that version wait there, checked against the instance list's
    waiting_at filter for every element; other versions, ended and canceled
    instances are not counted; tasks, message subscriptions and incidents
    count; roles (operator, analyst, IT admin) and 403/404 for everyone else;
    no audit row for the counts;
  - GET /v1/definitions: element names for staff and engine people (not for
    applicants and organisations); "startable" and "start_form" per caller,
    the same rule as the start routes (a start the list says is not startable
    is refused with 403, one it says is startable is not), also with the serve
    override; applicants' message starts ("start_messages");
  - GET /v1/me: the server's clock ("now"), which follows --now;
  - deployed file names: the path rule shared with the console's files.

usage: api_console_support.py PATH/TO/ravand
"""
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import ROOT, FIXTURES, national_id, problem_ok, serve_main  # noqa: E402

NID_A = national_id(1354241)
NID_B = national_id(2468013)
NOW = '2025-12-06T09:00:00+03:30'     # 1404/09/15
NOW_MS = 1764999000000                 # the same instant, epoch ms
PROCESSES = ('supplementary-insurance', 'premium-slip', 'voluntary-contract', 'org-onboarding')




def defs_of(s, who):
    r = s.req('GET', '/v1/definitions', who=who)
    assert r.status == 200, r
    return {(d['process'], d['version']): d for d in r.json['items']}


def latest(defs, process):
    v = max(ver for (p, ver) in defs if p == process)
    return defs[(process, v)]


def described(s, who, defs, key):
    """The row of key (process, version), described: older versions only with ?version=."""
    if 'startable' in defs[key]:
        return defs[key]
    r = s.req('GET', '/v1/definitions?process=%s&version=%d' % key, who=who)
    assert r.status == 200 and len(r.json['items']) == 1, r
    return r.json['items'][0]


def run(t, s):
    s.cli('deploy', '--scripts', os.path.join(ROOT, 'scripts'),
          *[os.path.join(ROOT, 'processes', p + '.bpmn') for p in PROCESSES])
    for who, role, scope in [('op', 'operator', {}), ('an', 'analyst', {}), ('it', 'it_admin', {}),
                             ('appA', 'applicant', {'national_id': NID_A}),
                             ('appB', 'applicant', {'national_id': NID_B}),
                             ('brA', 'branch', {'branch': 'B1'}), ('asA', 'association', {'county': 'C1'}),
                             ('com', 'committee', {}),
                             ('orgA', 'organisation', {'organisation': 'O1', 'agreement': 'AG1'})]:
        s.principal(who, role, **scope)
    s.start()
    r = s.deploy_fixture('an')
    assert r.status == 201, r
    me(t, s)
    paths(t, s)
    waiting(t, s)
    definitions(t, s)


def me(t, s):
    r = s.req('GET', '/v1/me', who='brA')
    t.eq((r.status, r.json.get('now')), (200, NOW_MS), 'GET /v1/me: "now" is the server clock (--now), epoch ms')
    r = s.req('GET', '/v1/me', who='appA')
    t.eq(r.json.get('now'), NOW_MS, 'applicants get the server clock too')


def paths(t, s):
    """Deployed file names go through the same path rule as the console's files (rv__safe_relpath)."""
    bad = ['processes/.x.bpmn', 'a/b/c/d/e.bpmn', 'processes/x y.bpmn', 'processes/x.txt', '/abs.bpmn',
           'processes//x.bpmn', 'processes/%2e.bpmn', 'پرونده/x.bpmn', 'x' * 200 + '.bpmn', 'processes/x.bpmn/']
    got = [(p, s.req('POST', '/v1/lint', who='an', body={'files': [{'path': p, 'content': '<x/>'}]}).status)
           for p in bad]
    t.ok(all(st == 400 for _, st in got), 'deploy/lint: unsafe file paths are 400', [g for g in got if g[1] != 400])
    r = s.req('POST', '/v1/lint', who='an', body={'files': [{'path': 'a/b/c/x-1_2.bpmn', 'content': '<x/>'}]})
    t.ok(r.status == 200 and r.json['ok'] is False and r.json['diagnostics'][0]['file'] == 'a/b/c/x-1_2.bpmn',
         'deploy/lint: four segments of [A-Za-z0-9._-] are a path (the content is then linted)', r)


# --- GET /v1/definitions: names, start forms, startable --------------------------------

def definitions(t, s):
    app = defs_of(s, 'appA')
    ps = latest(app, 'premium-slip')
    t.eq(ps['startable'], True, 'applicant: premium-slip (rv:startableBy applicant) is startable')
    form = {f['id']: f for f in ps.get('start_form', [])}
    t.eq(list(form), ['mobile', 'channel', 'agency_code', 'category', 'wage_daily_rials'],
         'premium-slip start_form: the start event\'s rv:fields in model order')
    t.eq(form.get('category'), {'id': 'category', 'label': 'نوع بیمه', 'type': 'enum', 'required': True,
                                 'values': ['voluntary', 'self12', 'self14', 'self18']},
         'start_form field: id, Persian label, type, required, enum values')
    t.eq((form['wage_daily_rials']['type'], form['wage_daily_rials']['required'], form['mobile']['required']),
         ('long', True, False), 'start_form field types and required flags')
    vc = latest(app, 'voluntary-contract')
    t.eq((vc['startable'], [f['id'] for f in vc.get('start_form', [])]), (True, ['mobile']),
         'applicant: voluntary-contract startable, its one start field')
    t.ok('elements' not in ps and 'elements' not in vc, 'applicants get no element names', ps)
    onb = latest(app, 'org-onboarding')
    t.ok(onb['startable'] is False and 'start_form' not in onb,
         'applicant: org-onboarding (organisations only) is not startable and has no start_form', onb)
    si = latest(app, 'supplementary-insurance')
    t.eq(si['startable'], False, 'applicant: supplementary-insurance has no none start: not startable by process')
    msgs = si.get('start_messages') or []
    t.ok(len(msgs) == 1 and msgs[0]['message'] == 'supplementary-request' and msgs[0]['form'] == [],
         'applicant: the message start opened to applicants is listed (start_messages)', si)
    t.eq(latest(app, 'api-request')['startable'], True, 'the serve override (--applicant-starts) makes a start startable')
    t.eq(latest(app, 'api-request').get('start_form'), [], 'a start without fields: empty start_form')
    t.eq(latest(app, 'api-org')['startable'], False, 'a process opened to nobody is not startable for applicants')

    org = defs_of(s, 'orgA')
    t.eq((latest(org, 'premium-slip')['startable'], latest(org, 'org-onboarding')['startable'],
          latest(org, 'voluntary-contract')['startable'], latest(org, 'api-request')['startable']),
         (True, True, False, False), 'organisation: startable follows rv:startableBy (and not the applicant override)')
    t.ok(all('start_messages' not in d and 'elements' not in d for d in org.values()),
         'organisation: no message starts (POST /v1/my/requests is for applicants), no element names')

    br = defs_of(s, 'brA')
    t.ok(all(d.get('startable', False) is False and 'start_form' not in d for d in br.values()),
         'branch staff: nothing startable, no start forms')
    psb = latest(br, 'premium-slip')
    t.eq((psb['elements'].get('get_person'), psb['elements'].get('start')),
         ('اطلاعات بیمه‌شده', 'درخواست برگ پرداخت'), 'staff get the element names of each version (id -> name)')
    t.ok('gw' not in latest(br, 'api-request')['elements'], 'unnamed elements are left out')
    op = defs_of(s, 'op')
    t.ok(all(described(s, 'op', op, k)['startable'] is True for k in op), 'operators may start every version')
    t.eq(latest(op, 'api-request')['elements'].get('branch_review'), 'رسیدگی شعبه', 'operators get element names')
    an = defs_of(s, 'an')
    t.ok(all(d.get('startable', False) is False for d in an.values()) and 'elements' in latest(an, 'premium-slip'),
         'analysts: names, nothing startable')

    # the list describes the latest version of each process; ?version= describes another
    old = op[('api-request', 1)]
    t.ok(old['latest'] is False and latest(op, 'api-request')['latest'] is True and 'startable' not in old
         and 'elements' not in old, 'an older version is listed (latest: false) but not described', old)
    v1 = described(s, 'op', op, ('api-request', 1))
    t.ok(v1['version'] == 1 and v1['startable'] is True and v1['elements']['applicant_docs'] == 'تکمیل مدارک',
         '?process=&version= describes that version (its own element names)', v1)
    v1a = described(s, 'appA', app, ('api-request', 1))
    t.eq((v1a['startable'], v1a.get('start_form')), (True, []), '?version= for an applicant: startable and form')
    for q in ('version=0', 'version=x', 'version=1&version=2', 'versions=1'):
        r = s.req('GET', '/v1/definitions?' + q, who='op')
        t.ok(problem_ok(r, 400), 'GET /v1/definitions?%s -> 400' % q, r)

    # the same rule as the start route: not startable -> 403; startable -> not 403
    for who, defs in (('appA', app), ('orgA', org), ('brA', br), ('op', op)):
        agree = []
        for (p, v) in sorted(defs):
            if who == 'appA' and v != latest(defs, p)['version']:
                continue          # an applicant files the latest version
            d = described(s, who, defs, (p, v))
            # an undeclared variable: a start that is allowed fails on the form (400),
            # one that is not is refused first (403); api-request (override) starts
            body = {'process': p, 'variables': {'probe_field': 1}}
            if who == 'appA':
                r = s.req('POST', '/v1/my/requests', who=who, body=body)
            else:
                r = s.req('POST', '/v1/instances', who=who, body=dict(body, version=v))
            agree.append((p, v, d['startable'], r.status, (r.status != 403) == d['startable']))
        t.ok(all(a[-1] for a in agree), '%s: "startable" agrees with the start route for every process' % who,
             [a for a in agree if not a[-1]])
    r = s.req('GET', '/v1/definitions?process=premium-slip', who='appA')
    t.ok(r.status == 200 and len(r.json['items']) == 1 and r.json['items'][0]['startable'] is True,
         '?process= filter keeps the new fields', r)


# --- GET /v1/definitions/{p}/{v}/waiting ---------------------------------------------------

def start(s, process, bkey=None, variables=None, version=None):
    body = {'process': process, 'variables': variables or {}}
    if bkey:
        body['business_key'] = bkey
    if version:
        body['version'] = version
    r = s.req('POST', '/v1/instances', who='op', body=body)
    assert r.status == 201, r
    return r.json['id']


def truth(s, process, version, elements):
    """The counts the instance list gives, element by element."""
    out = {}
    for e in elements:
        r = s.req('GET', '/v1/instances?process=%s&version=%d&status=active&waiting_at=%s&limit=500'
                  % (process, version, e), who='op')
        assert r.status == 200, r
        if r.json['items']:
            out[e] = len(r.json['items'])
    return out


def my_task(s, who, inst):
    r = s.req('GET', '/v1/tasks?state=open', who=who)
    return [x['id'] for x in r.json['items'] if x['instance'] == inst][0]


def waiting(t, s):
    url = '/v1/definitions/api-request/1/waiting'
    r = s.req('GET', url, who='op')
    t.eq((r.status, r.json), (200, {}), 'waiting: no instances yet -> {}')
    v = {'county': 'C1', 'branch': 'B1'}
    i1, i2 = start(s, 'api-request', NID_A, v), start(s, 'api-request', NID_A, v)
    i3, i4 = start(s, 'api-request', NID_B, v), start(s, 'api-request', NID_B, v)
    i5 = start(s, 'api-request', NID_B, v)
    r = s.req('POST', '/v1/tasks/%d/complete' % my_task(s, 'appA', i1), who='appA', body={'data': {'confirm': True}})
    assert r.status == 200, r
    r = s.req('POST', '/v1/instances/%d/cancel' % i4, who='op', body={})
    assert r.status == 200, r
    # i5 runs to its end: docs, association says no -> "rejected"
    r = s.req('POST', '/v1/tasks/%d/complete' % my_task(s, 'appB', i5), who='appB', body={'data': {'confirm': True}})
    r = s.req('POST', '/v1/tasks/%d/complete' % my_task(s, 'asA', i5), who='asA', body={'data': {'approved': False}})
    assert r.status == 200, r
    names = latest(defs_of(s, 'op'), 'api-request')['elements']
    all_elements = list(names) + ['gw', 's', 'done', 'rejected']
    r = s.req('GET', url, who='op')
    t.eq(r.json, {'applicant_docs': 2, 'association_review': 1},
         'waiting: active instances per element (canceled and ended ones not counted)')
    t.eq(r.json, truth(s, 'api-request', 1, all_elements), 'waiting agrees with ?waiting_at= for every element')
    t.eq(r.header('cache-control'), 'no-store', 'waiting: Cache-Control no-store')
    _ = (i2, i3)

    # another version: counted apart
    with open(os.path.join(FIXTURES, 'api', 'cartable.bpmn'), encoding='utf-8') as f:
        xml = f.read().replace('name="تکمیل مدارک"', 'name="تکمیل مدارک (نسخه ۲)"')
    r = s.req('POST', '/v1/deployments', who='an', body={'files': [{'path': 'processes/cartable.bpmn', 'content': xml}]})
    assert r.status == 201, r
    start(s, 'api-request', NID_A, v)
    r2 = s.req('GET', '/v1/definitions/api-request/2/waiting', who='op')
    t.eq(r2.json, {'applicant_docs': 1}, 'waiting: version 2 counts only its own instances')
    t.eq(s.req('GET', url, who='op').json, {'applicant_docs': 2, 'association_review': 1},
         'waiting: version 1 unchanged by an instance of version 2')
    t.eq(latest(defs_of(s, 'op'), 'api-request')['elements']['applicant_docs'], 'تکمیل مدارک (نسخه ۲)',
         'element names follow the version')

    # message subscriptions and incidents count too (the file's other processes
    # got a version 2 with it)
    start(s, 'api-wait', None, {'ref': 'R1'})
    start(s, 'api-wait', None, {'ref': 'R2'})
    start(s, 'api-broken', None, {'ok': False})
    r = s.req('GET', '/v1/definitions/api-wait/2/waiting', who='op')
    t.eq(r.json, {'paid_in': 2}, 'waiting: message catch events count')
    r = s.req('GET', '/v1/definitions/api-broken/2/waiting', who='op')
    t.eq(r.json, {'bgw': 1}, 'waiting: an open incident counts at its element')
    t.eq(r.json, truth(s, 'api-broken', 2, ['bs', 'bgw', 'be']), 'incident count agrees with ?waiting_at=')

    # who may ask
    for who in ('an', 'it'):
        r = s.req('GET', url, who=who)
        t.eq((r.status, r.json), (200, {'applicant_docs': 2, 'association_review': 1}),
             'waiting: %s may read the counts (as the definition XML)' % who)
    for who in ('appA', 'brA', 'asA', 'com', 'orgA'):
        r = s.req('GET', url, who=who)
        t.ok(problem_ok(r, 403), 'waiting: %s gets 403' % who, r)
    r = s.req('GET', url)
    t.ok(problem_ok(r, 401), 'waiting: no token -> 401', r)
    nf = [s.req('GET', p, who='op') for p in ('/v1/definitions/api-request/9/waiting',
                                              '/v1/definitions/nope/1/waiting')]
    t.ok(all(problem_ok(x, 404) and x.json['detail'] == 'no such object' for x in nf),
         'waiting: unknown version or process -> the one 404', nf)
    r = s.req('GET', url + '?element=x', who='op')
    t.ok(problem_ok(r, 400), 'waiting: an unknown query parameter -> 400', r)
    r = s.req('POST', url, who='op')
    t.ok(r.status == 405, 'waiting: POST -> 405', r)
    r = s.req('GET', '/v1/definitions/api-request/0/waiting', who='op')
    t.ok(problem_ok(r, 404), 'waiting: version 0 is not a version -> 404', r)

    # counts are not personal data: no audit row for a successful read; refusals are audited
    db = sqlite3.connect(s.db)
    try:
        rows = db.execute("SELECT outcome, count(*) FROM audit WHERE action='definition.waiting'"
                          " GROUP BY outcome ORDER BY outcome").fetchall()
    finally:
        db.close()
    t.ok(dict(rows).get(200) is None and dict(rows).get(403) == 5,
         'audit: successful counts are not logged, the five 403s are', rows)


if __name__ == '__main__':
    sys.exit(serve_main(sys.argv[1], run, ['--now', NOW, '--rate', '-1', '--rate-addr', '-1',
                                               '--applicant-starts', 'api-request']))
