#!/usr/bin/env python3
"""api_documents.py -- the portal's document store (engine/api/documents.c)
against the real `ravand serve` on loopback. Prints TAP.

  - POST /v1/documents: JPEG/PNG/PDF as the raw body, magic bytes checked
    against the Content-Type (415 unknown type, 422 mismatch), size bound
    (413), content-addressed per owner (201 then 200, same id), quotas per
    principal (count and bytes: 409);
  - GET /v1/documents/{sha256}: the bytes, the stored type, attachment,
    nosniff; the owner, and staff who see an instance the document was given
    to; everyone else the identical 404; audited;
  - references: a start, a task completion, or an operator's message or
    signal whose data name a document that is missing or someone else's is
    refused (422) and changes nothing.

usage: api_documents.py PATH/TO/ravand
"""
import hashlib
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_common import national_id, problem_ok, strip_rid, serve_main, my_task  # noqa: E402

NID_A = national_id(1122334)
NID_B = national_id(5566778)
MAX_DOC = 64 * 1024

# an applicant files a request with an attachment, uploads a scan in a step,
# the committee reviews
MODEL = '''<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:rv="urn:ravand:bpmn:1"
                  id="d_docs" targetNamespace="urn:ravand:test">
  <bpmn:process id="doc-request" name="درخواست با مدرک" isExecutable="true">
    <bpmn:startEvent id="s" rv:startableBy="applicant">
      <bpmn:extensionElements>
        <rv:field id="attachment" label="پیوست" type="string"/>
      </bpmn:extensionElements>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="upload"/>
    <bpmn:userTask id="upload" name="بارگذاری تصویر" rv:candidateGroups="applicant">
      <bpmn:extensionElements>
        <rv:field id="scan_image" label="تصویر" type="string" required="true"/>
        <rv:field id="extra" label="پیوست‌ها" type="json"/>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f1" sourceRef="upload" targetRef="review"/>
    <bpmn:userTask id="review" name="بررسی کمیته" rv:candidateGroups="committee">
      <bpmn:extensionElements>
        <rv:field id="ok" label="تایید" type="boolean" required="true"/>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>
'''

PNG = b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 4
JPEG = b'\xff\xd8\xff\xe0' + b'JFIF-test-image' * 50
PDF = b'%PDF-1.4\n% test\n' + b'0' * 300




def upload(s, who, data, ctype):
    h = {'Content-Type': ctype} if ctype else {'Content-Type': None}
    return s.req('POST', '/v1/documents', who=who, raw=data, headers=h)


def doc_id(data):
    return 'doc:sha256-' + hashlib.sha256(data).hexdigest()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def run(t, s):
    path = os.path.join(s.dir, 'doc-request.bpmn')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(MODEL)
    s.cli('deploy', path)
    for name, role, scope in (('appA', 'applicant', {'national_id': NID_A}),
                              ('appB', 'applicant', {'national_id': NID_B}),
                              ('appQ', 'applicant', {'national_id': national_id(777001)}),
                              ('appZ', 'applicant', {'national_id': national_id(777002)}),
                              ('com', 'committee', {}), ('brA', 'branch', {'branch': 'B1'}),
                              ('op', 'operator', {}), ('an', 'analyst', {}), ('it', 'it_admin', {})):
        s.principal(name, role, **scope)
    s.start()

    # --- upload ---
    r = upload(s, 'appA', PNG, 'image/png')
    t.ok(r.status == 201 and r.json == {'id': doc_id(PNG), 'size': len(PNG), 'type': 'image/png'}
         and r.header('location') == '/v1/documents/' + sha(PNG), 'a PNG upload: 201, id, size, type, Location', r)
    r = upload(s, 'appA', PNG, 'image/png')
    t.ok(r.status == 200 and r.json == {'id': doc_id(PNG), 'size': len(PNG), 'type': 'image/png'},
         'the same bytes again by the same owner: 200, the same id', r)
    r = upload(s, 'appA', JPEG, 'image/jpeg; charset=binary')
    t.ok(r.status == 201 and r.json['id'] == doc_id(JPEG) and r.json['type'] == 'image/jpeg',
         'a JPEG (Content-Type with a parameter): 201', r)
    r = upload(s, 'appA', PDF, 'application/pdf')
    t.ok(r.status == 201 and r.json['type'] == 'application/pdf', 'a PDF: 201', r)
    r = upload(s, 'appB', PNG, 'image/png')
    t.ok(r.status == 201 and r.json['id'] == doc_id(PNG), "the same bytes by another owner: their own copy (201)", r)
    b_only = b'\x89PNG\r\n\x1a\n' + b'only B' * 40
    r = upload(s, 'appB', b_only, 'image/png')
    t.ok(r.status == 201, "appB's own PNG", r)

    r = upload(s, 'appA', b'hello', 'text/plain')
    t.ok(problem_ok(r, 415), 'text/plain: 415', r)
    r = upload(s, 'appA', PNG, None)
    t.ok(problem_ok(r, 415), 'no Content-Type: 415', r)
    r = upload(s, 'appA', JPEG, 'image/png')
    t.ok(problem_ok(r, 422) and 'image/png' in r.json['detail'], 'JPEG bytes sent as image/png: 422 (magic bytes)', r)
    r = upload(s, 'appA', b'<html><script>alert(1)</script>', 'application/pdf')
    t.ok(problem_ok(r, 422), 'HTML sent as a PDF: 422', r)
    r = upload(s, 'appA', b'', 'image/png')
    t.ok(problem_ok(r, 400), 'an empty body: 400', r)
    big = b'\x89PNG\r\n\x1a\n' + b'x' * (MAX_DOC - 7)
    r = upload(s, 'appA', big, 'image/png')
    t.ok(problem_ok(r, 413), 'one byte over --max-document: 413', r)
    r = upload(s, 'an', PNG, 'image/png')
    t.ok(problem_ok(r, 403), 'an analyst may not upload: 403', r)
    r = s.req('POST', '/v1/documents', raw=PNG, headers={'Content-Type': 'image/png'})
    t.ok(r.status == 401, 'no token: 401', r)
    r = s.req('POST', '/v1/documents?x=1', who='appA', raw=PNG, headers={'Content-Type': 'image/png'})
    t.ok(problem_ok(r, 400), 'an unknown query key: 400', r)

    db = sqlite3.connect(s.db)
    rows = db.execute('SELECT owner_national_id, type, size, length(data) FROM documents d JOIN principals p'
                      ' ON p.id=d.owner_id WHERE p.name=? ORDER BY d.id', ('appA',)).fetchall()
    t.eq(rows, [(NID_A, 'image/png', len(PNG), len(PNG)), (NID_A, 'image/jpeg', len(JPEG), len(JPEG)),
                (NID_A, 'application/pdf', len(PDF), len(PDF))], 'stored in SQLite with owner, type and size')

    # --- quota: 5 files, 150K per principal ---
    codes = [upload(s, 'appQ', b'%PDF-' + bytes([i]) * 10, 'application/pdf').status for i in range(6)]
    t.eq(codes, [201] * 5 + [409], 'the 6th file of a principal: 409 (--document-quota 5)')
    r = upload(s, 'appQ', b'%PDF-' + bytes([0]) * 10, 'application/pdf')
    t.eq(r.status, 200, 'a file already stored still answers 200 at the quota')
    sizes = [60000, 60000, 40000]
    codes = [upload(s, 'appZ', b'%PDF-' + bytes([i + 1]) * n, 'application/pdf').status for i, n in enumerate(sizes)]
    t.eq(codes, [201, 201, 409], 'past 150K of files: 409 (--document-quota-bytes)')
    r = upload(s, 'appZ', b'%PDF-' + b'z' * 20000, 'application/pdf')
    t.eq(r.status, 201, 'a file that still fits: 201')

    # --- read ---
    r = s.req('GET', '/v1/documents/' + sha(PNG), who='appA')
    t.ok(r.status == 200 and r.body == PNG and r.header('content-type') == 'image/png'
         and r.header('content-disposition', ).startswith('attachment')
         and r.header('x-content-type-options') == 'nosniff', 'the owner reads the bytes back (attachment, nosniff)', r)
    r = s.req('GET', '/v1/documents/' + sha(PDF), who='appA')
    t.ok(r.status == 200 and r.body == PDF and r.header('content-type') == 'application/pdf', 'the PDF too', r)
    foreign = s.req('GET', '/v1/documents/' + sha(JPEG), who='appB')
    missing = s.req('GET', '/v1/documents/' + 'ab' * 32, who='appB')
    t.ok(problem_ok(foreign, 404) and strip_rid(foreign.json) == strip_rid(missing.json),
         "another applicant's document: the same 404 as a missing one", foreign)
    r = s.req('GET', '/v1/documents/' + sha(PNG).upper(), who='appA')
    t.ok(problem_ok(r, 404), 'upper-case hex: 404', r)
    r = s.req('GET', '/v1/documents/short', who='appA')
    t.ok(problem_ok(r, 404), 'not a SHA-256: 404', r)
    r = s.req('GET', '/v1/documents/' + sha(JPEG), who='com')
    t.ok(problem_ok(r, 404), 'the committee, before the document is in a case: 404', r)
    r = s.req('GET', '/v1/documents/' + sha(JPEG), who='an')
    t.ok(problem_ok(r, 403), 'an analyst: 403', r)

    # --- references on start ---
    r = s.req('POST', '/v1/my/requests', who='appA', body={'process': 'doc-request',
                                                           'variables': {'attachment': doc_id(b_only)}})
    t.ok(problem_ok(r, 422) and 'not one you uploaded' in r.json['detail'], "a start naming another's document: 422", r)
    r = s.req('POST', '/v1/my/requests', who='appA', body={'process': 'doc-request',
                                                           'variables': {'attachment': 'doc:sha256-' + 'ab' * 32}})
    t.ok(problem_ok(r, 422), 'a start naming a missing document: 422', r)
    r = s.req('POST', '/v1/my/requests', who='appA', body={'process': 'doc-request',
                                                           'variables': {'attachment': 'doc:sha256-1234'}})
    t.ok(problem_ok(r, 422) and 'not a document id' in r.json['detail'], 'a malformed document id: 422', r)
    t.eq(db.execute("SELECT count(*) FROM instances WHERE process_id='doc-request'").fetchone()[0], 0,
         'refused starts started nothing')
    r = s.req('POST', '/v1/my/requests', who='appA', body={'process': 'doc-request',
                                                           'variables': {'attachment': doc_id(PDF)}})
    t.ok(r.status == 201, 'a start with her own PDF: 201', r)
    inst = r.json['id']

    # --- references on complete ---
    tk = my_task(s, 'appA', inst, 'upload')
    t.ok(tk is not None, 'the upload step is open')
    r = s.req('POST', '/v1/tasks/%d/complete' % tk['id'], who='appA', body={'data': {'scan_image': doc_id(b_only)}})
    t.ok(problem_ok(r, 422) and sha(b_only) in r.json['detail'], "completing with another's document: 422", r)
    r = s.req('POST', '/v1/tasks/%d/complete' % tk['id'], who='appA',
              body={'data': {'scan_image': doc_id(JPEG), 'extra': {'pages': [doc_id(PNG), 'doc:sha256-' + 'cd' * 32]}}})
    t.ok(problem_ok(r, 422), 'a missing document nested in a json field: 422', r)
    t.ok(my_task(s, 'appA', inst, 'upload') is not None, 'the step is still open after the refusals')
    r = s.req('POST', '/v1/tasks/%d/complete' % tk['id'], who='appA',
              body={'data': {'scan_image': doc_id(JPEG), 'extra': {'pages': [doc_id(PNG)]}}})
    t.ok(r.status == 200, 'completing with her own JPEG (and a PNG nested in json): 200', r)

    # --- staff read through the case ---
    r = s.req('GET', '/v1/tasks?element=review', who='com')
    t.ok(r.status == 200 and [x['instance'] for x in r.json['items']] == [inst], 'the committee has the review task', r)
    for name, data in (('JPEG', JPEG), ('PNG', PNG), ('start PDF', PDF)):
        r = s.req('GET', '/v1/documents/' + sha(data), who='com')
        t.ok(r.status == 200 and r.body == data, 'the committee downloads the %s of the case' % name, r)
    r = s.req('GET', '/v1/documents/' + sha(b_only), who='com')
    t.ok(problem_ok(r, 404), "a document not in any case the committee sees: 404", r)
    r = s.req('GET', '/v1/documents/' + sha(JPEG), who='brA')
    t.ok(problem_ok(r, 404), 'a branch that has no task of the case: 404', r)
    r = s.req('GET', '/v1/documents/' + sha(JPEG), who='op')
    t.ok(r.status == 200 and r.body == JPEG, 'an operator (sees every instance): 200', r)
    r = s.req('GET', '/v1/documents/' + sha(JPEG), who='appB')
    t.ok(problem_ok(r, 404), 'appB still gets 404 for appA\'s JPEG', r)
    r = s.req('GET', '/v1/documents/' + sha(PNG), who='appB')
    t.ok(r.status == 200 and r.body == PNG, 'appB reads her own copy of the same bytes', r)

    # --- references in an operator's message or signal ---
    msgs = db.execute("SELECT count(*) FROM messages").fetchone()[0]
    r = s.req('POST', '/v1/messages', who='op', body={'name': 'doc-note', 'correlation_key': str(inst),
                                                      'payload': {'scan': doc_id(JPEG)}})
    t.ok(problem_ok(r, 422) and 'not one you uploaded' in r.json['detail'],
         "an operator's message naming an applicant's document: 422", r)
    r = s.req('POST', '/v1/signals', who='op', body={'name': 'doc-note', 'payload': {'x': [doc_id(PNG)]}})
    t.ok(problem_ok(r, 422), "a signal naming a document: 422", r)
    r = s.req('POST', '/v1/messages', who='op', body={'name': 'doc-note', 'payload': {'scan': 'doc:sha256-12'}})
    t.ok(problem_ok(r, 422) and 'not a document id' in r.json['detail'], 'a malformed id in a message: 422', r)
    t.eq(db.execute("SELECT count(*) FROM messages").fetchone()[0], msgs, 'the refused messages left nothing')
    r = s.req('POST', '/v1/messages', who='op', body={'name': 'doc-note', 'payload': {'note': 'no document'},
                                                      'ttl': 'PT0S'})
    t.ok(r.status == 200, 'a message without a document reference: 200', r)

    # --- audit ---
    rows = db.execute("SELECT principal, outcome, object FROM audit WHERE action='document.get' ORDER BY id").fetchall()
    t.ok(('com', 200, doc_id(JPEG)) in rows and ('com', 404, doc_id(JPEG)) in rows and ('brA', 404, doc_id(JPEG)) in rows,
         'staff reads (200 and 404) are audited with the document id', rows)
    t.ok(('appB', 404, doc_id(JPEG)) in rows, 'a refused read by an applicant is audited too', rows)
    rows = db.execute("SELECT principal, outcome, object, detail FROM audit WHERE action='document.upload'"
                      " AND principal='appA' ORDER BY id").fetchall()
    t.ok(rows[:2] == [('appA', 201, doc_id(PNG), 'image/png, %d bytes' % len(PNG)),
                      ('appA', 200, doc_id(PNG), 'image/png, %d bytes' % len(PNG))],
         'uploads are audited with id, type and size', rows)
    r = s.req('GET', '/v1/audit?action=document.get&principal=com', who='it')
    t.ok(r.status == 200 and len(r.json['items']) >= 3, 'GET /v1/audit lists the document reads', r)
    db.close()


if __name__ == '__main__':
    sys.exit(serve_main(sys.argv[1], run, ['--rate', '-1', '--rate-addr', '-1', '--max-document', '64K',
                                               '--document-quota', '5', '--document-quota-bytes', '150K']))
