#!/usr/bin/env python3
"""api_portal.py -- the portal side of the API against the real `ravand serve`
with the directives' own processes. Prints TAP.

  - applicants start their own requests, also message-started ones
    (supplementary-request, key forced to their national ID: one open request
    per pensioner), only where the model opens them (rv:startableBy), with
    start variables checked against the start form;
  - the applicant's steps show their rv:display variables, and only those;
  - an agency (organisation) files premium-slip for an insured person: the
    business key is that person's national ID, the insured sees it in "My
    requests", the case records who filed it;
  - scope values in Persian: an association user of county تهران gets the
    request of a pensioner whose records county is تهران.

usage: api_portal.py PATH/TO/ravand
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import ROOT, Server, Tap, my_task  # noqa: E402

PENSIONER = '1234567806'   # tests/fixtures/supplementary: county تهران, branch 1201
INSURED = '0650451252'     # tests/fixtures/premium: self-employed
NOW = '2025-12-06T09:00:00+03:30'   # 1404/09/15, inside the 1404 supplementary window


def main():
    t = Tap()
    s = Server(sys.argv[1], args=['--now', NOW])
    try:
        run(t, s)
    except Exception as e:  # noqa: BLE001
        import traceback
        t.ok(False, 'harness: %s' % e, traceback.format_exc())
    finally:
        rc, bad = s.stop()
        t.ok(not bad, 'server log has no sanitizer report', bad[-3000:])
        s.cleanup()
    return t.done()


def run(t, s):
    s.cli('deploy', '--scripts', os.path.join(ROOT, 'scripts'),
          os.path.join(ROOT, 'processes', 'supplementary-insurance.bpmn'),
          os.path.join(ROOT, 'processes', 'premium-slip.bpmn'))
    for d in ('supplementary', 'premium'):
        s.cli('records', 'load', os.path.join(ROOT, 'tests', 'fixtures', d))
    s.principal('pens', 'applicant', national_id=PENSIONER)
    s.principal('insured', 'applicant', national_id=INSURED)
    s.principal('kanoon', 'association', county='تهران')
    s.principal('kanoonK', 'association', county='کرج')
    s.principal('agency1', 'organisation', organisation='K-1201', agreement='کارگزاری ۱۴۰۴/۱۲')
    s.principal('op', 'operator')
    for bad, why in (('ته\u202eران', 'a bidi override'), ('ت' * 65, '65 letters'), ('\u200cتهران', 'a leading ZWNJ'),
                     ('تهران;', "a ';'")):
        p = s.cli('principal', 'add', 'x%d' % len(why), '--role', 'association', '--county', bad, check=False)
        t.ok(p.returncode == 2, 'a county with %s is refused' % why, p.stderr)
    s.start()

    r = s.req('GET', '/v1/me', who='kanoon')
    t.ok(r.status == 200 and r.json['scope'] == {'county': 'تهران'}, 'a Persian county is a scope', r)

    # --- supplementary insurance: the pensioner sends the message start themself
    r = s.req('POST', '/v1/my/requests', who='pens', body={'message': 'supplementary-request',
                                                          'variables': {'national_id': INSURED}})
    t.ok(r.status == 400, "another national ID in the variables: 400", r)
    r = s.req('POST', '/v1/my/requests', who='pens', body={'message': 'supplementary-request',
                                                          'variables': {'eligible': True}})
    t.ok(r.status == 400, 'a variable the start form does not declare: 400', r)
    r = s.req('POST', '/v1/my/requests', who='pens', body={'message': 'payment-confirmed'})
    t.ok(r.status == 403, 'a message the model does not open to applicants: 403', r)
    r = s.req('POST', '/v1/my/requests', who='pens', body={'process': 'supplementary-insurance'})
    t.ok(r.status == 403, 'supplementary-insurance has no none start to open: 403', r)
    r = s.req('POST', '/v1/my/requests', who='pens', body={'message': 'supplementary-request', 'request_key': 'p-1'})
    t.ok(r.status == 201 and r.json['result'] == 'started' and r.json['process'] == 'supplementary-insurance',
         'the pensioner files a supplementary request (message start)', r)
    inst = r.json['id']
    r = s.req('GET', '/v1/instances/%d' % inst, who='op')
    t.ok(r.json['business_key'] == PENSIONER and r.json['variables']['national_id'] == PENSIONER
         and r.json['started_by']['principal'] == 'pens', 'key and national_id are the pensioner\'s', r)
    r = s.req('POST', '/v1/my/requests', who='pens', body={'message': 'supplementary-request'})
    t.ok(r.status == 200 and r.json['result'] == 'correlated' and r.json['id'] == inst,
         'a second request while one is open reaches the open one', r)
    r = s.req('POST', '/v1/my/requests', who='pens', body={'message': 'supplementary-request', 'request_key': 'p-1'})
    t.ok(r.status == 200 and r.json['result'] == 'duplicate' and r.json['id'] == inst,
         'the same request key again: duplicate', r)
    r = s.req('GET', '/v1/my/requests', who='pens')
    t.ok(r.status == 200 and [x['id'] for x in r.json['items']] == [inst], 'one request in "My requests"', r)

    # the draft steps show what their documentation lists
    tk = my_task(s, 'pens', inst, 'step1_terms')
    t.ok(tk and set(tk.get('display', {})) == {'terms', 'period_label'} and len(tk['display']['terms']) == 6,
         'step 1 shows the terms of the period', tk)
    r = s.req('GET', '/v1/tasks/%d' % tk['id'], who='pens')
    t.ok(r.status == 200 and 'variables' not in r.json and set(r.json['display']) == {'terms', 'period_label'},
         'GET /v1/tasks/{id}: display only', r)
    r = s.req('GET', '/v1/tasks/%d' % tk['id'], who='op')
    t.ok(r.status == 200 and 'variables' in r.json and 'display' in r.json, 'staff get variables and display', r)
    s.req('POST', '/v1/tasks/%d/complete' % tk['id'], who='pens', body={'data': {'step1_decision': 'confirm'}})
    tk = my_task(s, 'pens', inst, 'step2_data')
    t.ok(tk and tk['display']['person']['national_id'] == PENSIONER and tk['display']['person']['county'] == 'تهران',
         'step 2 shows the pensioner\'s data', tk)
    s.req('POST', '/v1/tasks/%d/complete' % tk['id'], who='pens', body={'data': {'step2_decision': 'confirm'}})
    tk = my_task(s, 'pens', inst, 'step3_select')
    t.ok(tk and len(tk['display']['persons']) == 4 and tk['display']['hidden_count'] == 1,
         'step 3 shows the persons (one hidden dependent)', tk)
    r = s.req('POST', '/v1/tasks/%d/complete' % tk['id'], who='pens', body={'data': {
        'step3_decision': 'confirm', 'changes': [{'national_id': PENSIONER, 'action': 'register'}]}})
    t.ok(r.status == 200, 'step 3 completed', r)
    tk = my_task(s, 'pens', inst, 'step4_review')
    t.ok(tk and tk['display']['final_statuses'] and tk['display']['monthly_premium_rials'] > 0,
         'step 4 shows the final statuses and the premium', tk)
    s.req('POST', '/v1/tasks/%d/complete' % tk['id'], who='pens', body={'data': {'step4_decision': 'confirm'}})

    # the association of the pensioner's county (تهران) gets it; کرج does not
    r = s.req('GET', '/v1/tasks?element=association_review', who='kanoon')
    t.ok(r.status == 200 and [x['instance'] for x in r.json['items']] == [inst] and r.json['items'][0]['county'] == 'تهران',
         'the association of county تهران sees the request', r)
    r = s.req('GET', '/v1/tasks?element=association_review', who='kanoonK')
    t.ok(r.status == 200 and r.json['items'] == [], 'the association of کرج does not', r)
    r = s.req('GET', '/v1/instances/%d' % inst, who='kanoon')
    t.ok(r.status == 200, 'the association sees the request of its task', r)

    # --- the agency channel: an organisation files premium-slip for an insured person
    pv = {'channel': 'agency', 'agency_code': 'K-1201', 'category': 'self14', 'wage_daily_rials': 4000000,
          'mobile': '09130000000'}
    r = s.req('POST', '/v1/instances', who='agency1', body={'process': 'premium-slip', 'business_key': '0650451253',
                                                            'variables': pv})
    t.ok(r.status == 400, 'a business key that is not a valid national ID: 400', r)
    r = s.req('POST', '/v1/instances', who='agency1', body={'process': 'premium-slip', 'business_key': INSURED,
                                                            'variables': dict(pv, national_id='1583250689')})
    t.ok(r.status == 400, 'business key and variables.national_id differ: 400', r)
    r = s.req('POST', '/v1/instances', who='agency1', body={'process': 'premium-slip', 'business_key': INSURED,
                                                            'variables': dict(pv, discount=1)})
    t.ok(r.status == 400, 'an undeclared start variable: 400', r)
    r = s.req('POST', '/v1/instances', who='agency1', body={'process': 'premium-slip', 'business_key': INSURED,
                                                            'variables': {'channel': 'agency'}})
    t.ok(r.status == 400, 'a required start field missing: 400', r)
    r = s.req('POST', '/v1/instances', who='agency1', body={'process': 'supplementary-insurance',
                                                            'business_key': INSURED})
    t.ok(r.status == 403, 'a process not opened to organisations: 403', r)
    r = s.req('POST', '/v1/instances', who='agency1', body={'process': 'premium-slip', 'business_key': INSURED,
                                                            'variables': pv})
    t.ok(r.status == 201, 'the agency files premium-slip for the insured', r)
    ps = r.json['id']
    r = s.req('GET', '/v1/instances/%d' % ps, who='op')
    v = r.json.get('variables', {})
    t.ok(r.json['business_key'] == INSURED and v.get('national_id') == INSURED and v.get('organisation') == 'K-1201'
         and v.get('started_by') == {'role': 'organisation', 'principal': 'agency1', 'organisation': 'K-1201',
                                     'agreement': 'کارگزاری ۱۴۰۴/۱۲'}
         and r.json['started_by'] == {'principal': 'agency1', 'role': 'organisation', 'organisation': 'K-1201',
                                      'agreement': 'کارگزاری ۱۴۰۴/۱۲'},
         'the case is keyed by the insured and records who filed it', r)
    r = s.req('GET', '/v1/my/requests', who='insured')
    t.ok(r.status == 200 and ps in [x['id'] for x in r.json['items']], 'the insured sees it in "My requests"', r)
    r = s.req('GET', '/v1/instances/%d' % ps, who='agency1')
    t.ok(r.status == 200 and 'variables' not in r.json, 'the agency sees its case (applicant-facing view)', r)
    r = s.req('GET', '/v1/my/requests/%d' % ps, who='pens')
    t.ok(r.status == 404, 'another applicant does not', r)
    # the insured may file one too, from the portal
    r = s.req('POST', '/v1/my/requests', who='insured', body={'process': 'premium-slip', 'variables': dict(
        pv, channel='online', agency_code=None)})
    t.ok(r.status == 201, 'the insured files premium-slip from the portal', r)


if __name__ == '__main__':
    sys.exit(main())
