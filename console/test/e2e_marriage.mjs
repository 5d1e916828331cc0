// Browser test of the marriage grant's objection with the document store
// (directive 003, issue #8): a case of the civil-registry feed reaches the
// insured person, who reads the grant's reason in «درخواست‌های من», files an
// objection with images uploaded to POST /v1/documents, and the branch that
// reviews the objection downloads the same bytes from the task page.
// Same environment as e2e.mjs (helpers in lib.mjs); exit 77 when Chromium,
// playwright-core or the built console is missing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { SRC, prerequisites, ravandCli, addPrincipals, waitFor, startServer, launchBrowser, apiClient,
  browserSession } from './lib.mjs';

// 1405/01/01 03:30 Tehran, as tests/scenario/marriage-*.scn: the 1404/12 feed is current
const NOW = '2026-03-21T00:00:00Z';
const chromium = await prerequisites();

const GROOM = '4032152314';      // tests/fixtures/marriage: branch B2, 521 paid days (< 720: DAYS)
const REASON = 'سابقه پرداخت حق بیمه در پنج سال پیش از ازدواج کمتر از ۷۲۰ روز است';
// small but real files: what the server's magic-byte check wants
const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.from('marriage certificate scan '.repeat(40))]);
const JPEG = Buffer.concat([Buffer.from('ffd8ffe0', 'hex'), Buffer.from('id booklet, marriage page '.repeat(40))]);
const docId = (b) => 'doc:sha256-' + createHash('sha256').update(b).digest('hex');

const tmp = mkdtempSync(join(tmpdir(), 'ravand-console-marriage-'));
const DB = join(tmp, 'console.db');
const procs = [];
const tokens = {};
const env = { browser: null, base: null, tokens };
const { signIn, shot, pages } = browserSession(env);
const apiAs = apiClient(env);
const cli = ravandCli(DB, NOW);
let grantId, objectionId;

before(async () => {
  cli('deploy', '--scripts', 'scripts', 'processes/marriage-grant.bpmn', 'processes/marriage-objection.bpmn');
  cli('records', 'load', join(SRC, 'tests/fixtures/marriage/records'));
  addPrincipals(cli, {
    groom: ['--role', 'applicant', '--national-id', GROOM],
    brB2: ['--role', 'branch', '--branch', 'B2'],
    brB1: ['--role', 'branch', '--branch', 'B1'],
    op: ['--role', 'operator'],
  }, tokens);
  ({ base: env.base } = await startServer({ tmp, db: DB, now: NOW, procs }));
  // the registry's monthly file: one case per insured spouse (message start, key = national ID)
  cli('feed', 'import', join(SRC, 'tests/fixtures/marriage/feed-1404-12.csv'));
  env.browser = await launchBrowser(chromium);
});

after(async () => {
  await env.browser?.close().catch(() => {});
  for (const p of procs) p.kill('SIGTERM');
  rmSync(tmp, { recursive: true, force: true });
});

test('the feed case reaches the insured person, who reads the reason in «درخواست‌های من»', async () => {
  // the records look-ups run as jobs in the server: wait for the decision
  const mine = await waitFor(async () => {
    const r = await apiAs('groom', 'GET', '/v1/my/requests');
    const x = r.data.items?.find((i) => i.process === 'marriage-grant');
    return x && x.status !== 'active' ? x : null;
  }, 'the marriage-grant case to end', 30000);
  grantId = mine.id;
  const page = await signIn('groom');
  const card = page.locator(`[data-instance="${grantId}"]`);
  await card.getByText(REASON).waitFor();
  await shot(page, 'applicant-marriage-grant-reason');
  await card.locator('a').click();
  await page.getByTestId('status').getByText(REASON).waitFor();
  assert.deepEqual(page.outside, []);
});

test('the insured person objects, uploading the two images', async () => {
  const page = await signIn('groom');
  await page.goto(`${env.base}/#/new/marriage-objection`);
  await page.getByRole('button', { name: 'ثبت درخواست' }).click();
  const step = page.locator('section.step[data-element="objection_form"]');
  await step.waitFor();
  objectionId = Number(/#\/my\/(\d+)/.exec(page.url())[1]);
  await step.locator('#f_objection_text').fill('سابقه کار در کارگاه دیگر ثبت نشده است');
  await step.locator('#f_marriage_date').fill('1404/05/10');
  await step.locator('#f_certificate_no').fill('5002');
  await step.locator('#f_spouse_national_id').fill('0076229645');
  await step.locator('input[name="f_marriage_type"][value="permanent"]').check();
  await step.locator('#f_entered_mobile').fill('09351112233');
  // a file of a type the store refuses is refused in the page, before any upload
  await step.locator('#f_certificate_image').setInputFiles({ name: 'note.txt', mimeType: 'text/plain', buffer: Buffer.from('x') });
  await step.getByTestId('upload-certificate_image').getByText('فقط تصویر').waitFor();
  await step.locator('#f_certificate_image').setInputFiles({ name: 'aghd.png', mimeType: 'image/png', buffer: PNG });
  await step.locator('#f_id_marriage_page_image').setInputFiles({ name: 'shenasname.jpg', mimeType: 'image/jpeg', buffer: JPEG });
  await step.getByTestId('upload-certificate_image').getByText('بارگذاری شد').waitFor();
  await step.getByTestId('upload-id_marriage_page_image').getByText('بارگذاری شد').waitFor();
  assert.equal(await step.getByTestId('upload-certificate_image').getAttribute('data-doc'), docId(PNG));
  await shot(page, 'applicant-objection-upload');
  await step.getByRole('button', { name: 'ثبت و ارسال' }).click();
  await step.waitFor({ state: 'detached' });
  // the checks and the records look-ups run as jobs; then the page shows where the request is
  await waitFor(async () => (await apiAs('groom', 'GET', `/v1/my/requests/${objectionId}`)).data.status_text === 'در حال بررسی در شعبه',
    'the objection to reach the branch', 20000);
  await page.reload();
  await page.getByTestId('status').getByText('در حال بررسی در شعبه').waitFor();
  assert.deepEqual(page.outside, []);
  // the stored references are the uploads' ids
  const inst = await apiAs('op', 'GET', `/v1/instances/${objectionId}`);
  assert.equal(inst.data.variables.certificate_image, docId(PNG));
  assert.equal(inst.data.variables.id_marriage_page_image, docId(JPEG));
});

test('the branch of the case downloads the same bytes from the task; another branch cannot', async () => {
  const page = await signIn('brB2');
  const row = page.locator('tr[data-element="branch_review"]');
  await row.waitFor();
  await row.locator('a').first().click();
  const docs = page.getByTestId('documents');
  await docs.waitFor();
  await shot(page, 'staff-task-documents');
  for (const [name, bytes] of [['تصویر عقدنامه', PNG], ['تصویر صفحه ازدواج شناسنامه', JPEG]]) {
    const [dl] = await Promise.all([page.waitForEvent('download'), docs.getByRole('button', { name: `دریافت ${name}` }).click()]);
    const got = readFileSync(await dl.path());
    assert.ok(got.equals(bytes), `the downloaded ${name} is the uploaded file`);
  }
  assert.deepEqual(page.outside, []);
  const hex = docId(PNG).slice('doc:sha256-'.length);
  assert.equal((await apiAs('brB1', 'GET', `/v1/documents/${hex}`)).status, 404);
  assert.equal((await apiAs('brB2', 'GET', `/v1/documents/${hex}`)).status, 200);
});
