#!/usr/bin/env python3
"""api_authz.py -- the authorization matrix: every role x every endpoint x
own and someone else's object, generated from a policy table that is
written here independently of the server's. Prints TAP.

A cell passes when the reply's status is the one the policy gives. The
run fails on any leak:
  - a 2xx where the policy says no (or a list that holds an object the
    caller may not see, whatever filter was sent);
  - a "not yours" reply that differs from the "does not exist" reply
    (status and body, request id aside): no enumeration oracle;
  - any reply to a caller that carries a canary value or a national ID
    of an instance that caller may not see;
  - a document (GET /v1/documents/{sha256}) served to anyone but its owner
    and the staff who may see a case it was given to, or served with other
    bytes than were uploaded.

usage: api_authz.py PATH/TO/ravand
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import national_id, serve_main, strip_rid  # noqa: E402

NID = {'A': national_id(1354241), 'B': national_id(2468013)}
COUNTY = {'A': 'C1', 'B': 'C2'}
BRANCH = {'A': 'B1', 'B': 'B2'}
ORG = {'A': 'O1', 'B': 'O2'}

# name: (role, scope, extra groups)
PRINCIPALS = {
    'appA': ('applicant', {'national_id': NID['A']}, []),
    'appB': ('applicant', {'national_id': NID['B']}, []),
    'brA': ('branch', {'branch': 'B1'}, []),
    'brB': ('branch', {'branch': 'B2'}, []),
    'supA': ('branch', {'branch': 'B1'}, ['supervisor']),
    'asA': ('association', {'county': 'C1'}, []),
    'asB': ('association', {'county': 'C2'}, []),
    'com': ('committee', {}, []),
    'orgA': ('organisation', {'organisation': 'O1', 'agreement': 'AG1'}, []),
    'orgB': ('organisation', {'organisation': 'O2', 'agreement': 'AG2'}, []),
    'it': ('it_admin', {}, []),
    'op': ('operator', {}, []),
    'an': ('analyst', {}, []),
    'anon': (None, {}, []),
}

ROLE_GROUP = {'applicant': 'applicant', 'branch': 'branch', 'association': 'association',
              'committee': 'committee', 'organisation': 'organisation', 'it_admin': 'it_admin'}
ACTORS = {'applicant', 'branch', 'association', 'committee', 'organisation', 'it_admin'}
ALL = {'applicant', 'branch', 'association', 'committee', 'organisation', 'it_admin', 'operator', 'analyst'}

# The policy table: who may call each endpoint at all (function level).
ROUTE_ROLES = {
    'me': ALL,
    'metrics': {'operator', 'it_admin'},
    'definitions': ALL,
    'xml': {'analyst', 'operator', 'it_admin'},
    'deploy': {'analyst'},
    'lint': {'analyst'},
    'start_request': {'applicant', 'operator'},          # process open to applicants
    'start_request_other': {'applicant', 'operator'},    # with someone else's national ID
    'start_org': {'organisation', 'operator'},           # process open to organisations
    'instance_list': {'applicant', 'organisation', 'branch', 'association', 'committee', 'it_admin', 'operator'},
    'instance_get': {'applicant', 'organisation', 'branch', 'association', 'committee', 'it_admin', 'operator'},
    'instance_cancel': {'operator'},
    'my_requests': {'applicant'},
    'my_request': {'applicant'},
    'task_list': ACTORS | {'operator'},
    'task_get': ACTORS | {'operator'},
    'task_comments': ACTORS | {'operator'},
    'task_comment': ACTORS,
    'task_claim': ACTORS,
    'task_unclaim': ACTORS,
    'task_complete': ACTORS,
    'task_transfer': {'branch'},
    'message': {'operator'},
    'signal': {'operator'},
    'incidents': {'operator'},
    'incident_retry': {'operator'},
    'audit': {'it_admin'},
    'waiting': {'analyst', 'operator', 'it_admin'},     # counts per element, like the XML
    'doc_upload': ACTORS,                               # applicants, organisations, task-acting staff
    'doc_get': ACTORS | {'operator'},                   # then: owner, or staff of a case it was given to
    'doc_ref': {'applicant', 'organisation', 'operator'},   # a start whose variables name a document
}

# Who may read a document besides its owner: staff and operators who may see
# an instance it was given to (a start or completion that referred to it).
# Applicants and organisations read only their own uploads.
CASE_READERS = {'branch', 'association', 'committee', 'it_admin', 'operator'}

NOT_FOUND = {'type': 'urn:ravand:problem:not-found', 'title': 'Not Found', 'status': 404,
             'detail': 'no such object'}


class P:
    def __init__(self, name):
        self.name = name
        self.role, scope, extra = PRINCIPALS[name]
        self.nid = scope.get('national_id')
        self.branch = scope.get('branch')
        self.county = scope.get('county')
        self.org = scope.get('organisation')
        self.groups = ([ROLE_GROUP[self.role]] if self.role in ROLE_GROUP else []) + extra


def task_visible(p, t):
    if p.role == 'operator':
        return True
    if p.role not in ACTORS:
        return False
    if t['assignee'] == p.name:
        return True
    groups = [g.strip() for g in (t['candidate_groups'] or '').split(',')]
    if not set(groups) & set(p.groups):
        return False
    return {'applicant': t['business_key'] == p.nid and p.nid is not None,
            'branch': t['branch'] == p.branch,
            'association': t['county'] == p.county,
            'committee': True,
            'it_admin': True,
            'organisation': t['org'] == p.org}[p.role]


def instance_visible(p, inst, tasks):
    if p.role == 'operator':
        return True
    if p.role == 'applicant':
        return inst['business_key'] == p.nid
    if p.role == 'organisation':
        return inst['org'] == p.org
    if p.role in ('branch', 'association', 'committee', 'it_admin'):
        return any(task_visible(p, t) for t in tasks if t['instance'] == inst['id'])
    return False


def main():
    return serve_main(sys.argv[1], run, ['--rate', '-1', '--rate-addr', '-1', '--applicant-starts', 'api-request',
                                         '--organisation-starts', 'api-org'])


def png(tag):
    """A small PNG-typed file whose bytes are unique to tag."""
    return b'\x89PNG\r\n\x1a\n' + ('matrix document %s ' % tag).encode() * 8


def upload(s, who, data, ctype='image/png'):
    return s.req('POST', '/v1/documents', token=s.tokens.get(who), raw=data, headers={'Content-Type': ctype})


def setup(s):
    """Requests in every office and stage, for both sides A and B; and the
    documents: applicant A's file given to A's request that waits at branch
    B1, another file of A's given to nothing, organisation O1's file given to
    its case that waits for the IT admins."""
    insts = {}     # id -> {id, business_key, org, canary}
    docs = {}      # name -> {sha, data, type, copies: [{owner, instances}]}
    k = [0]

    def start(who, process, side=None, county=None, branch=None, org=None, extra=None):
        k[0] += 1
        canary = 'CANARY%04dX' % k[0]
        v = {'canary': canary}
        v.update(extra or {})
        if county:
            v['county'] = county
        if branch:
            v['branch'] = branch
        body = {'process': process, 'variables': v}
        if who == 'op' and side:
            body['business_key'] = NID[side]
        r = s.req('POST', '/v1/instances', who=who, body=body)
        assert r.status == 201, r
        i = r.json['id']
        insts[i] = {'id': i, 'business_key': NID[side] if side and who != 'orgA' and who != 'orgB' else None,
                    'org': org, 'canary': canary}
        if who.startswith('org'):
            insts[i]['business_key'] = 'org:' + org
        return i

    def open_task(inst, element):
        r = s.req('GET', '/v1/tasks?instance=%d&element=%s' % (inst, element), who='op')
        assert r.status == 200 and len(r.json['items']) == 1, r
        return r.json['items'][0]['id']

    def complete(who, task, data):
        r = s.req('POST', '/v1/tasks/%d/complete' % task, who=who, body={'data': data} if data else None)
        assert r.status == 200, (who, task, r)

    for side in 'AB':
        app, ass, br = 'app' + side, 'as' + side, 'br' + side
        start('op', 'api-request', side, COUNTY[side], BRANCH[side])                      # X: applicant step
        y = start('op', 'api-request', side, COUNTY[side], BRANCH[side])                  # Y: association
        complete(app, open_task(y, 'applicant_docs'), {'confirm': True})
        z = start('op', 'api-request', side, COUNTY[side], BRANCH[side])                  # Z: branch
        complete(app, open_task(z, 'applicant_docs'), {'confirm': True})
        complete(ass, open_task(z, 'association_review'), {'approved': True})
        w = start('op', 'api-request', side, COUNTY[side], BRANCH[side])                  # W: committee
        complete(app, open_task(w, 'applicant_docs'), {'confirm': True})
        complete(ass, open_task(w, 'association_review'), {'approved': True})
        complete(br, open_task(w, 'branch_review'), {'accepted': True})
        o = start('org' + side, 'api-org', org=ORG[side])                                 # O: organisation
        if side == 'A':                                                                   # ... and IT admin
            complete('orgA', open_task(o, 'org_review'), None)
    # crossed offices: applicant A, county C1, but paid by branch B2
    m = start('op', 'api-request', 'A', 'C1', 'B2')
    complete('appA', open_task(m, 'applicant_docs'), {'confirm': True})
    complete('asA', open_task(m, 'association_review'), {'approved': True})

    def document(name, who, data, ctype='image/png'):
        r = upload(s, who, data, ctype)
        assert r.status == 201, (name, r)
        docs[name] = {'sha': r.json['id'][len('doc:sha256-'):], 'id': r.json['id'], 'data': data, 'type': ctype,
                      'copies': [{'owner': who, 'instances': set()}]}
        return docs[name]
    # A's file, given to A's own request (started by A), which waits at branch B1
    d = document('A-case', 'appA', png('A-case'))
    c = start('appA', 'api-request', 'A', 'C1', 'B1', extra={'attachment': d['id']})
    d['copies'][0]['instances'].add(c)
    complete('appA', open_task(c, 'applicant_docs'), {'confirm': True})
    complete('asA', open_task(c, 'association_review'), {'approved': True})
    document('A-loose', 'appA', png('A-loose'))                                       # given to nothing
    # O1's file, given to its case, which waits for the IT admins
    d = document('O-case', 'orgA', b'%PDF-1.4\n% matrix O-case\n' + b'0' * 64, 'application/pdf')
    c = start('orgA', 'api-org', org='O1', extra={'attachment': d['id']})
    d['copies'][0]['instances'].add(c)
    complete('orgA', open_task(c, 'org_review'), None)
    r = s.req('POST', '/v1/instances', who='op', body={'process': 'api-broken', 'variables': {'ok': False}})
    assert r.status == 201
    insts[r.json['id']] = {'id': r.json['id'], 'business_key': None, 'org': None, 'canary': 'CANARY-none'}
    r = s.req('GET', '/v1/tasks?state=all&limit=500', who='op')
    tasks = r.json['items']
    for x in tasks:
        x['org'] = insts[x['instance']]['org']
    return insts, tasks, docs


def run(t, s):
    for name, (role, scope, extra) in PRINCIPALS.items():
        if role:
            kw = dict(scope)
            if extra:
                kw['groups'] = ','.join(extra)
            s.principal(name, role, **kw)
    s.start()
    r = s.deploy_fixture('an')
    assert r.status == 201, r
    insts, tasks, docs = setup(s)
    ps = {n: P(n) for n in PRINCIPALS}
    open_tasks = [x for x in tasks if x['state'] == 'open']
    all_nids = set(NID.values())
    stats = {'cells': 0, 'leaks': 0, 'oracles': 0, 'mismatch': 0}
    t.diag('%d instances, %d tasks (%d open), %d principals' % (len(insts), len(tasks), len(open_tasks), len(ps)))

    def visible_canaries(p):
        return {i['canary'] for i in insts.values() if instance_visible(p, i, tasks)}

    def leak_scan(p, r):
        """Canaries and national IDs of instances p may not see."""
        body = r.body.decode('utf-8', 'replace')
        seen = visible_canaries(p)
        bad = [c for c in (i['canary'] for i in insts.values()) if c in body and c not in seen]
        ok_nids = {i['business_key'] for i in insts.values() if instance_visible(p, i, tasks)}
        if p.nid:
            ok_nids.add(p.nid)
        bad += [n for n in all_nids if n in body and n not in ok_nids]
        return bad

    def call(p, method, path, body=None, raw=None, ctype=None):
        tok = None if p.role is None else s.tokens[p.name]
        return s.req(method, path, token=tok, body=body, raw=raw, headers={'Content-Type': ctype} if ctype else None)

    def expect(p, ep, visible=True, ok=200):
        if p.role is None:
            return 401
        if p.role not in ROUTE_ROLES[ep]:
            return 403
        if not visible:
            return 404
        return ok

    def check(p, ep, r, want, what, fails):
        stats['cells'] += 1
        leaked = leak_scan(p, r)
        if leaked:
            stats['leaks'] += 1
            fails.append('%s %s: leaked %s' % (ep, what, leaked))
        if r.status != want:
            if 200 <= r.status < 300 and not 200 <= want < 300:
                stats['leaks'] += 1
            stats['mismatch'] += 1
            fails.append('%s %s: got %d want %d %s' % (ep, what, r.status, want, r.text()[:160]))
        elif want == 404 and strip_rid(r.json) != NOT_FOUND:
            stats['oracles'] += 1
            fails.append('%s %s: 404 body differs from "does not exist": %s' % (ep, what, r.text()[:200]))

    # --- lists: exactly what the policy allows, whatever the filter ---------------
    for p in ps.values():
        fails = []
        if expect(p, 'task_list') == 200:
            want = {x['id'] for x in open_tasks if task_visible(p, x)}
            r = call(p, 'GET', '/v1/tasks?limit=500')
            got = {x['id'] for x in (r.json or {}).get('items', [])}
            check(p, 'task_list', r, 200, '', fails)
            if got != want:
                stats['leaks'] += len(got - want)
                fails.append('task_list: got %s want %s' % (sorted(got), sorted(want)))
            wanted_all = {x['id'] for x in tasks if task_visible(p, x)}
            for q in ('branch=B1', 'branch=B2', 'county=C1', 'county=C2', 'business_key=' + NID['A'],
                      'business_key=' + NID['B'], 'state=all', 'assignee=brB', 'group=branch', 'group=committee',
                      'process=api-org', 'instance=%d' % min(insts), 'instance=%d' % max(insts)):
                r = call(p, 'GET', '/v1/tasks?limit=500&' + q)
                got = {x['id'] for x in (r.json or {}).get('items', [])}
                check(p, 'task_list', r, 200, q, fails)
                if not got <= wanted_all:
                    stats['leaks'] += len(got - wanted_all)
                    fails.append('task_list?%s: leaked %s' % (q, sorted(got - wanted_all)))
        else:
            check(p, 'task_list', call(p, 'GET', '/v1/tasks'), expect(p, 'task_list'), '', fails)
        for ep, path in (('instance_list', '/v1/instances'), ('my_requests', '/v1/my/requests')):
            if expect(p, ep) == 200:
                want = {i for i, x in insts.items() if instance_visible(p, x, tasks)}
                r = call(p, 'GET', path + '?limit=500')
                got = {x['id'] for x in (r.json or {}).get('items', [])}
                check(p, ep, r, 200, '', fails)
                if got != want:
                    stats['leaks'] += len(got - want)
                    fails.append('%s: got %s want %s' % (ep, sorted(got), sorted(want)))
                for q in ('business_key=' + NID['A'], 'business_key=' + NID['B'], 'process=api-org',
                          'status=active', 'incident=true'):
                    if ep == 'my_requests' and q.startswith(('business_key', 'incident')):
                        continue
                    r = call(p, 'GET', path + '?limit=500&' + q)
                    got = {x['id'] for x in (r.json or {}).get('items', [])}
                    check(p, ep, r, 200, q, fails)
                    if not got <= want:
                        stats['leaks'] += len(got - want)
                        fails.append('%s?%s: leaked %s' % (ep, q, sorted(got - want)))
            else:
                check(p, ep, call(p, 'GET', path), expect(p, ep), '', fails)
        t.ok(not fails, 'lists: %s (%s)' % (p.name, p.role), '\n'.join(fails))

    # --- one task at a time: own and others' ----------------------------------------
    missing = 10 ** 9
    for p in ps.values():
        fails = []
        for x in open_tasks + [{'id': missing, 'missing': True}]:
            vis = not x.get('missing') and task_visible(p, x)
            tid = x['id']
            what = 'task %d (%s)' % (tid, x.get('element', 'missing'))
            r = call(p, 'GET', '/v1/tasks/%d' % tid)
            check(p, 'task_get', r, expect(p, 'task_get', vis), what, fails)
            r = call(p, 'GET', '/v1/tasks/%d/comments' % tid)
            check(p, 'task_comments', r, expect(p, 'task_comments', vis), what, fails)
            r = call(p, 'POST', '/v1/tasks/%d/comments' % tid, {'text': 'matrix'})
            check(p, 'task_comment', r, expect(p, 'task_comment', vis, 201), what, fails)
            r = call(p, 'POST', '/v1/tasks/%d/claim' % tid)
            check(p, 'task_claim', r, expect(p, 'task_claim', vis), what, fails)
            if r.status == 200:
                r = call(p, 'POST', '/v1/tasks/%d/unclaim' % tid)
                check(p, 'task_unclaim', r, 200, what + ' after claim', fails)
            r = call(p, 'POST', '/v1/tasks/%d/unclaim' % tid)
            check(p, 'task_unclaim', r, expect(p, 'task_unclaim', vis), what, fails)
            # allowed: the form check refuses the data, so nothing changes (400)
            r = call(p, 'POST', '/v1/tasks/%d/complete' % tid, {'data': {'__matrix': 1}})
            check(p, 'task_complete', r, expect(p, 'task_complete', vis, 400), what, fails)
            # allowed: to the branch it already has (409), so nothing changes
            r = call(p, 'POST', '/v1/tasks/%d/transfer' % tid, {'branch': x.get('branch') or 'B1'})
            want = expect(p, 'task_transfer', vis, 409 if x.get('branch') else 200)
            if want == 200:            # a visible task with no branch would move: not in this fixture
                want = 409
            check(p, 'task_transfer', r, want, what, fails)
        t.ok(not fails, 'tasks: %s (%s) x %d tasks x 7 endpoints' % (p.name, p.role, len(open_tasks) + 1),
             '\n'.join(fails[:30]))

    # --- one instance at a time -------------------------------------------------------
    for p in ps.values():
        fails = []
        for i in list(insts) + [missing]:
            vis = i in insts and instance_visible(p, insts[i], tasks)
            r = call(p, 'GET', '/v1/instances/%d' % i)
            check(p, 'instance_get', r, expect(p, 'instance_get', vis), 'instance %d' % i, fails)
            r = call(p, 'GET', '/v1/my/requests/%d' % i)
            check(p, 'my_request', r, expect(p, 'my_request', vis), 'instance %d' % i, fails)
            if p.role != 'operator':      # operators cancel throwaways below
                r = call(p, 'POST', '/v1/instances/%d/cancel' % i)
                check(p, 'instance_cancel', r, expect(p, 'instance_cancel', vis), 'instance %d' % i, fails)
        t.ok(not fails, 'instances: %s (%s) x %d instances' % (p.name, p.role, len(insts) + 1), '\n'.join(fails[:30]))
    fails = []
    for side in 'AB':
        r = s.req('POST', '/v1/instances', who='op', body={'process': 'api-request', 'business_key': NID[side],
                                                           'variables': {'county': COUNTY[side]}})
        r = call(ps['op'], 'POST', '/v1/instances/%d/cancel' % r.json['id'])
        check(ps['op'], 'instance_cancel', r, 200, 'throwaway ' + side, fails)
    r = call(ps['op'], 'POST', '/v1/instances/%d/cancel' % missing)
    check(ps['op'], 'instance_cancel', r, 404, 'missing', fails)
    t.ok(not fails, 'instances: operator cancels', '\n'.join(fails))

    # --- waiting counts per element: engine people only; a missing version is the 404 ----
    truth = {}
    for x in s.req('GET', '/v1/tasks?process=api-request&limit=500', who='op').json['items']:
        truth.setdefault(x['element'], set()).add(x['instance'])
    truth = {e: len(v) for e, v in truth.items()}
    for p in ps.values():
        fails = []
        r = call(p, 'GET', '/v1/definitions/api-request/1/waiting')
        check(p, 'waiting', r, expect(p, 'waiting'), 'api-request v1', fails)
        if r.status == 200 and r.json != truth:
            fails.append('waiting: got %s want %s' % (r.json, truth))
        for path in ('/v1/definitions/api-request/99/waiting', '/v1/definitions/no-such-process/1/waiting'):
            check(p, 'waiting', call(p, 'GET', path), expect(p, 'waiting', False), path, fails)
        t.ok(not fails, 'waiting: %s (%s) x 3 definitions' % (p.name, p.role), '\n'.join(fails))

    # --- documents: upload, then every document read by every principal --------------------
    def doc_visible(p, d):
        return any(c['owner'] == p.name or
                   (p.role in CASE_READERS and any(instance_visible(p, insts[i], tasks) for i in c['instances']))
                   for c in d['copies'])

    for p in ps.values():
        fails = []
        data = png('own ' + p.name)
        r = call(p, 'POST', '/v1/documents', raw=data, ctype='image/png')
        check(p, 'doc_upload', r, expect(p, 'doc_upload', True, 201), 'new file', fails)
        if r.status == 201:
            docs['own ' + p.name] = {'sha': r.json['id'][len('doc:sha256-'):], 'data': data, 'type': 'image/png',
                                     'copies': [{'owner': p.name, 'instances': set()}]}
            r = call(p, 'POST', '/v1/documents', raw=data, ctype='image/png')
            check(p, 'doc_upload', r, 200, 'the same file again', fails)
        # the function check comes before the body's: a refused role learns nothing of the format
        r = call(p, 'POST', '/v1/documents', raw=b'plain text', ctype='text/plain')
        check(p, 'doc_upload', r, expect(p, 'doc_upload', True, 415), 'text/plain', fails)
        t.ok(not fails, 'documents: %s (%s) uploads' % (p.name, p.role), '\n'.join(fails))
    readers = sorted(n for n, p in ps.items() if expect(p, 'doc_get', doc_visible(p, docs['A-case'])) == 200)
    t.diag("A's file on A's request at branch B1: read by %s; everyone else 404 / 403 / 401" % ', '.join(readers))
    # someone else's bytes: a copy of one's own (201 as for new bytes: no "it exists" oracle)
    fails = []
    r = call(ps['appB'], 'POST', '/v1/documents', raw=docs['A-case']['data'], ctype='image/png')
    check(ps['appB'], 'doc_upload', r, 201, "A's bytes by B", fails)
    if r.status == 201:
        docs['A-case']['copies'].append({'owner': 'appB', 'instances': set()})
    t.ok(not fails, "documents: B uploading A's bytes gets a copy of B's own (201)", '\n'.join(fails))
    # nobody but the owner can give a document to a case (422), so A's loose file stays A's
    for p in ps.values():
        if p.name == 'appA':
            continue
        fails = []
        proc = 'api-org' if p.role == 'organisation' else 'api-request'
        r = call(p, 'POST', '/v1/instances', {'process': proc, 'variables': {'attachment': docs['A-loose']['id']}})
        want = expect(p, 'doc_ref', True, 422)
        check(p, 'doc_ref', r, want, "A's loose file in a start", fails)
        if r.status == 201:
            insts[r.json['id']] = {'id': r.json['id'], 'org': p.org, 'business_key': None, 'canary': 'CANARY-none'}
        t.ok(not fails, "documents: %s (%s) cannot give A's file to a case" % (p.name, p.role), '\n'.join(fails))

    docs['missing'] = {'sha': 'ab' * 32, 'data': None, 'type': None, 'copies': []}
    malformed = ['AB' * 32, 'ab' * 31 + 'a', 'ab' * 33, 'zz' * 32]
    for p in ps.values():
        fails = []
        for name, d in sorted(docs.items()):
            vis = doc_visible(p, d)
            r = call(p, 'GET', '/v1/documents/' + d['sha'])
            check(p, 'doc_get', r, expect(p, 'doc_get', vis), name, fails)
            if r.status == 200 and (r.body != d['data'] or r.header('content-type') != d['type']):
                stats['leaks'] += 1
                fails.append('doc_get %s: other bytes or type (%s, %d bytes)' % (name, r.header('content-type'),
                                                                                len(r.body)))
        for m in malformed:
            check(p, 'doc_get', call(p, 'GET', '/v1/documents/' + m), expect(p, 'doc_get', False), m[:8], fails)
        t.ok(not fails, 'documents: %s (%s) x %d documents' % (p.name, p.role, len(docs) + len(malformed)),
             '\n'.join(fails))

    # --- everything else: function level ------------------------------------------------
    incident = s.req('GET', '/v1/incidents', who='op').json['items'][0]['id']
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'api', 'cartable.bpmn'),
              encoding='utf-8') as f:
        xml = f.read()
    files = {'files': [{'path': 'processes/cartable.bpmn', 'content': xml}]}
    cases = [
        ('me', 'GET', '/v1/me', None, 200),
        ('metrics', 'GET', '/metrics', None, 200),
        ('definitions', 'GET', '/v1/definitions', None, 200),
        ('xml', 'GET', '/v1/definitions/api-request/1/xml', None, 200),
        ('deploy', 'POST', '/v1/deployments', files, 200),
        ('lint', 'POST', '/v1/lint', files, 200),
        ('incidents', 'GET', '/v1/incidents?state=all', None, 200),
        ('message', 'POST', '/v1/messages', {'name': 'nobody', 'ttl': 'PT0S'}, 200),
        ('signal', 'POST', '/v1/signals', {'name': 'nobody'}, 200),
        ('audit', 'GET', '/v1/audit?limit=5', None, 200),
        ('start_request', 'POST', '/v1/instances', {'process': 'api-request'}, 201),
        ('start_org', 'POST', '/v1/instances', {'process': 'api-org'}, 201),
    ]
    for p in ps.values():
        fails = []
        for ep, method, path, body, ok in cases:
            want = expect(p, ep, True, ok)
            if ep == 'start_request' and p.role == 'organisation':
                want = 403
            r = call(p, method, path, body)
            check(p, ep, r, want, '', fails)
            if r.status == 201:
                insts[r.json['id']] = {'id': r.json['id'], 'org': p.org,
                                       'business_key': p.nid if p.role == 'applicant' else
                                       ('org:' + p.org if p.org else None), 'canary': 'CANARY-none'}
        # someone else's national ID as business key
        other = NID['B'] if p.nid == NID['A'] else NID['A']
        r = call(p, 'POST', '/v1/instances', {'process': 'api-request', 'business_key': other})
        want = expect(p, 'start_request_other', True, 201)
        if p.role == 'applicant':
            want = 400
        check(p, 'start_request_other', r, want, '', fails)
        if r.status == 201:
            insts[r.json['id']] = {'id': r.json['id'], 'org': None, 'business_key': other, 'canary': 'CANARY-none'}
        r = call(p, 'POST', '/v1/incidents/%d/retry' % incident)
        want = expect(p, 'incident_retry')
        check(p, 'incident_retry', r, want, 'incident %d' % incident, fails)
        if r.status == 200:
            incident = s.req('GET', '/v1/incidents', who='op').json['items'][0]['id']
        t.ok(not fails, 'function level: %s (%s) x %d endpoints' % (p.name, p.role, len(cases) + 2),
             '\n'.join(fails))

    t.diag('cells: %(cells)d, mismatches: %(mismatch)d, leaks: %(leaks)d, oracles: %(oracles)d' % stats)
    t.ok(stats['cells'] > 1000, 'the matrix has %d cells' % stats['cells'])
    t.eq(stats['leaks'], 0, '0 leaks')
    t.eq(stats['oracles'], 0, '0 enumeration oracles (404 bodies identical)')


if __name__ == '__main__':
    sys.exit(main())
