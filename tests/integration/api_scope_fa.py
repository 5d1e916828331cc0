#!/usr/bin/env python3
"""api_scope_fa.py -- Persian scope values: an association user of a county
named in Persian sees that county's tasks whatever spelling the record used
(Arabic yeh/kaf, Arabic-Indic or Persian digits, odd spaces), and a user of
another county gets the same 404 as for a task that does not exist. The same
for branch names, and for a transfer to a branch spelt the Arabic way.
`ravand principal add` refuses malformed or unsafe scope values. Prints TAP.

usage: api_scope_fa.py PATH/TO/ravand
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import national_id, serve_main, strip_rid  # noqa: E402

FA_YEH, AR_YEH, ALEF_MAKSURA = '\u06cc', '\u064a', '\u0649'
FA_KAF, AR_KAF = '\u06a9', '\u0643'
ZWNJ, NBSP = '\u200c', '\u00a0'

TEHRAN = 'تهران'
# Tehran-province counties whose names have a yeh and a kaf: the records
# from older systems spell them with the Arabic letters.
KAHRIZAK = 'ک' + 'هریزک'                      # کهریزک (Persian letters)
KAHRIZAK_AR = KAHRIZAK.replace(FA_KAF, AR_KAF).replace(FA_YEH, AR_YEH)
SHAHRIAR = 'شهریار'
SHAHRIAR_AR = SHAHRIAR.replace(FA_YEH, ALEF_MAKSURA)
ESLAMSHAHR = 'اسلام' + ZWNJ + 'شهر'          # اسلام‌شهر, with its ZWNJ
BRANCH = 'شعبه ۱۲ تهران'                      # Persian digits
BRANCH_NORM = 'شعبه 12 تهران'
BRANCH_AR = 'شعبه ١٢ تهران'                   # Arabic-Indic digits
BRANCH2 = 'شعبه کرج'
BRANCH2_AR = 'شعبه كرج'

MODEL = '''<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:rv="urn:ravand:bpmn:1"
  id="d_scope_fa" targetNamespace="urn:ravand:test">
  <bpmn:process id="scope-fa" name="scope-fa" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="review"/>
    <bpmn:userTask id="review" name="بررسی کانون" rv:candidateGroups="association,branch"
      rv:county="county" rv:branch="branch"/>
    <bpmn:sequenceFlow id="f1" sourceRef="review" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>
'''


def run(t, s):
    # principals typed as an operator would: Arabic keyboard, odd spaces
    s.principal('kanoon', 'association', county=' ' + TEHRAN + NBSP)
    s.principal('kahrizak', 'association', county=KAHRIZAK_AR)
    s.principal('shahriar', 'association', county=SHAHRIAR)
    s.principal('eslamshahr', 'association', county=ESLAMSHAHR)
    s.principal('karaj', 'association', county='کرج')
    s.principal('br12', 'branch', branch=BRANCH)
    s.principal('brkaraj', 'branch', branch=BRANCH2)
    s.principal('op', 'operator')
    s.principal('an', 'analyst')

    listed = {p['name']: p for p in json.loads(s.cli('--json', 'principal', 'list').stdout)}
    t.eq(listed['kanoon'].get('county'), TEHRAN, 'principal add stores the county trimmed')
    t.eq(listed['kahrizak'].get('county'), KAHRIZAK, 'principal add stores Persian yeh and keheh')
    t.eq(listed['br12'].get('branch'), BRANCH_NORM, 'principal add stores ASCII digits')

    # refused: malformed UTF-8, an overlong '/', a surrogate, bidi and control
    # characters, ZWNJ outside a word, too long; nothing is added
    bad = [b'\xd8', b'\xc0\xaf', b'\xed\xa0\x80', 'ته\u202eران'.encode(), 'ته\u200bران'.encode(),
           b'a\x01b', (ZWNJ + TEHRAN).encode(), ('ت' * 65).encode(), b'a;b', b'']
    for i, v in enumerate(bad):
        p = s.cli_raw(['principal', 'add', 'bad%d' % i, '--role', 'association', '--county', v])
        t.ok(p.returncode == 2 and b'--county' in p.stderr, 'principal add refuses bad county #%d' % i,
             p.stderr)
    listed = json.loads(s.cli('--json', 'principal', 'list').stdout)
    t.ok(not [p for p in listed if p['name'].startswith('bad')], 'no refused principal was added')

    s.start()
    r = s.req('POST', '/v1/deployments', who='an',
              body={'files': [{'path': 'processes/scope-fa.bpmn', 'content': MODEL}]})
    t.ok(r.status in (200, 201), 'deploy the scope model', r)

    def task_of(county, branch, seed):
        r = s.req('POST', '/v1/instances', who='op',
                  body={'process': 'scope-fa', 'business_key': national_id(seed),
                        'variables': {'county': county, 'branch': branch}})
        assert r.status == 201, r
        r = s.req('GET', '/v1/tasks?instance=%d' % r.json['id'], who='op')
        assert r.status == 200 and len(r.json['items']) == 1, r
        return r.json['items'][0]

    tasks = {
        'tehran': task_of(TEHRAN, BRANCH, 101),
        'tehran_sp': task_of('  ' + TEHRAN + ' \t', BRANCH_AR, 102),
        'kahrizak_fa': task_of(KAHRIZAK, BRANCH2, 103),
        'kahrizak_ar': task_of(KAHRIZAK_AR, BRANCH2_AR, 104),
        'shahriar_ar': task_of(SHAHRIAR_AR, BRANCH2, 105),
        'eslamshahr': task_of(ESLAMSHAHR, BRANCH2, 106),
    }
    t.eq(tasks['kahrizak_ar']['county'], KAHRIZAK, 'the task county is written in normal form')
    t.eq(tasks['tehran_sp']['branch'], BRANCH_NORM, 'the task branch is written in normal form')

    sees = {
        'kanoon': {'tehran', 'tehran_sp'},
        'kahrizak': {'kahrizak_fa', 'kahrizak_ar'},
        'shahriar': {'shahriar_ar'},
        'eslamshahr': {'eslamshahr'},
        'karaj': set(),
        'br12': {'tehran', 'tehran_sp'},
        'brkaraj': {'kahrizak_fa', 'kahrizak_ar', 'shahriar_ar', 'eslamshahr'},
    }
    missing = s.req('GET', '/v1/tasks/999999', who='kanoon')
    for who, want in sorted(sees.items()):
        r = s.req('GET', '/v1/tasks?limit=100', who=who)
        got = {k for k, v in tasks.items() if v['id'] in {i['id'] for i in r.json['items']}}
        t.eq(got, want, '%s lists exactly its own tasks' % who)
        for k, task in sorted(tasks.items()):
            r = s.req('GET', '/v1/tasks/%d' % task['id'], who=who)
            if k in want:
                t.eq(r.status, 200, '%s reads task %s' % (who, k))
            else:
                t.ok(r.status == 404 and strip_rid(r.json) == strip_rid(missing.json),
                     '%s gets the missing-task 404 for %s' % (who, k), r)

    # the cartable filters take any spelling: they are normalised like the rows
    import urllib.parse
    for label, county, want in (('Arabic yeh/kaf', KAHRIZAK_AR, {'kahrizak_fa', 'kahrizak_ar'}),
                                ('Persian', KAHRIZAK, {'kahrizak_fa', 'kahrizak_ar'}),
                                ('padded', '  ' + TEHRAN + ' ', {'tehran', 'tehran_sp'})):
        r = s.req('GET', '/v1/tasks?limit=100&county=' + urllib.parse.quote(county), who='op')
        got = {k for k, v in tasks.items() if v['id'] in {i['id'] for i in r.json['items']}}
        t.eq(got, want, 'operator filter ?county= spelt %s finds the same tasks' % label)
    r = s.req('GET', '/v1/tasks?limit=100&branch=' + urllib.parse.quote(BRANCH2_AR), who='brkaraj')
    got = {k for k, v in tasks.items() if v['id'] in {i['id'] for i in r.json['items']}}
    t.eq(got, sees['brkaraj'], 'brkaraj filter ?branch= spelt with an Arabic kaf finds its tasks')

    # the association user of Tehran completes the Tehran task spelt with odd spaces
    r = s.req('POST', '/v1/tasks/%d/claim' % tasks['tehran_sp']['id'], who='kanoon')
    t.eq(r.status, 200, 'kanoon claims the Tehran task')
    r = s.req('POST', '/v1/tasks/%d/complete' % tasks['kahrizak_ar']['id'], who='kanoon')
    t.eq(r.status, 404, 'kanoon cannot complete a Kahrizak task (404)')

    # transfer to a branch spelt with an Arabic kaf lands in the Persian-spelt branch
    r = s.req('POST', '/v1/tasks/%d/transfer' % tasks['tehran']['id'], who='br12',
              body={'branch': BRANCH2_AR})
    t.eq(r.status, 200, 'br12 transfers a task to «شعبه كرج» (Arabic kaf)')
    r = s.req('GET', '/v1/tasks/%d' % tasks['tehran']['id'], who='brkaraj')
    t.ok(r.status == 200 and r.json.get('branch') == BRANCH2, 'brkaraj now sees it, branch in normal form', r)
    r = s.req('GET', '/v1/tasks/%d' % tasks['tehran']['id'], who='br12')
    t.eq(r.status, 404, 'br12 no longer sees it')


if __name__ == '__main__':
    sys.exit(serve_main(sys.argv[1], run, ['--rate', '-1', '--rate-addr', '-1']))
