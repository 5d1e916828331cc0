// End-to-end tests of the web console in headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core), against a real `ravand serve`
// on loopback with a temporary database: the directives' processes from
// processes/ with scripts/, principals made with the CLI, the fake SMS
// gateway. Run by `meson test --suite console` (tests/console) or directly:
//   RAVAND=build/ravand RAVAND_FAKE_SMS=build/adapters/ravand-fake-sms node --test test/e2e.mjs
// RAVAND_CONSOLE_SHOTS=DIR keeps screenshots of the main pages there (docs/console).
// Exit 77 (skipped) when Chromium, playwright-core or the built console is missing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SRC, CONSOLE, prerequisites, ravandCli, addPrincipals, waitFor, startServer, launchBrowser, apiClient,
  browserSession } from './lib.mjs';

// 1404/09/15 (Tehran): inside the 1404 registration window of the supplementary insurance
const NOW = '2025-12-06T09:00:00+03:30';
const chromium = await prerequisites();

const NID = '1234567806';        // the pensioner (tests/fixtures/supplementary)
const SPOUSE = '5102030401';     // his wife: a dependent without supplementary insurance
const COUNTY = 'THR';            // see below: principal scopes are ASCII
const tmp = mkdtempSync(join(tmpdir(), 'ravand-console-'));
const DB = join(tmp, 'console.db');
const procs = [];
let base, browser, tokens = {}, smsPort;
const env = { browser: null, base: null, tokens };
const { signIn, shot, pages } = browserSession(env);
const apiAs = apiClient(env);

const cli = ravandCli(DB, NOW);

before(async () => {
  // records: the supplementary fixture, with the county as an ASCII code --
  // `ravand principal add --county` takes only [A-Za-z0-9._-] (docs/console.md)
  const rec = join(tmp, 'records');
  mkdirSync(rec);
  for (const f of readdirSync(join(SRC, 'tests/fixtures/supplementary'))) {
    if (f.endsWith('.csv')) writeFileSync(join(rec, f), readFileSync(join(SRC, 'tests/fixtures/supplementary', f), 'utf8').replaceAll('تهران', COUNTY));
  }
  const bpmn = readdirSync(join(SRC, 'processes')).filter((f) => f.endsWith('.bpmn')).map((f) => join('processes', f));
  cli('deploy', '--scripts', 'scripts', ...bpmn);
  cli('deploy', join(CONSOLE, 'test/fixtures/notify.bpmn'));
  cli('records', 'load', rec);
  const people = {
    pensioner: ['--role', 'applicant', '--national-id', NID],
    kanoon: ['--role', 'association', '--county', COUNTY],
    br1201: ['--role', 'branch', '--branch', '1201'],
    br1305: ['--role', 'branch', '--branch', '1305'],
    op: ['--role', 'operator'],
  };
  addPrincipals(cli, people, tokens);
  // the fake SMS gateway, and the server
  ({ base, smsPort } = await startServer({ tmp, db: DB, now: NOW, procs, args: [
    '--applicant-starts', 'supplementary-insurance,marriage-grant,marriage-objection,premium-slip,voluntary-contract,coverage-inquiry'] }));
  env.base = base;
  browser = env.browser = await launchBrowser(chromium);
});

after(async () => {
  await browser?.close().catch(() => {});
  for (const p of procs) p.kill('SIGTERM');
  rmSync(tmp, { recursive: true, force: true });
});

const decide = (page, element, value) => page.locator(`section.step[data-element="${element}"] button[data-decision="${value}"]`).click();

let instanceId, branchTaskId;
// on a failure, keep a picture of every page still open (RAVAND_CONSOLE_FAILSHOTS=DIR)
import { afterEach } from 'node:test';
afterEach(async (t) => {
  const dir = process.env.RAVAND_CONSOLE_FAILSHOTS;
  for (const [i, p] of pages.entries()) {
    if (dir && !p.isClosed()) await p.screenshot({ path: join(dir, `fail-${i}.png`), fullPage: true }).catch(() => {});
  }
  pages.length = 0;
});

test('a pensioner registers a dependent in the four steps, going back from step 4 to 3', async () => {
  const page = await signIn('pensioner', { shot: 'signin' });
  await page.getByRole('heading', { name: 'درخواست‌های من' }).waitFor();
  await page.locator('#main').getByRole('link', { name: 'درخواست جدید' }).click();
  await page.locator('a[data-process="supplementary-insurance"]').click();
  await page.getByRole('button', { name: 'ثبت درخواست' }).click();
  // step 1: terms
  await page.locator('section.step[data-element="step1_terms"]').waitFor();
  instanceId = Number(/#\/my\/(\d+)/.exec(page.url())[1]);
  assert.match(await page.getByTestId('status').innerText(), /گام ۱/);
  await page.locator('ol.terms li').first().waitFor();                   // the period's terms (rv:display)
  await shot(page, 'applicant-step1');
  await decide(page, 'step1_terms', 'confirm');
  // step 2: the pensioner's data
  await page.locator('section.step[data-element="step2_data"]').getByText('محمد احمدی').waitFor();
  await decide(page, 'step2_data', 'confirm');
  // step 3: himself and his wife register (the son whose dependency ended is not listed)
  const step3 = page.locator('section.step[data-element="step3_select"]');
  await step3.waitFor();
  assert.equal(await step3.locator('table.persons tbody tr').count(), 4);
  assert.equal(await step3.locator('input[data-nid="6101010104"]').count(), 0);
  await step3.locator(`input[data-nid="${NID}"]`).check();
  await step3.locator(`input[data-nid="${SPOUSE}"]`).check();
  await shot(page, 'applicant-step3');
  await decide(page, 'step3_select', 'confirm');
  // step 4, then back to 3 and again
  await page.locator('section.step[data-element="step4_review"]').waitFor();
  assert.match(await page.locator('ol.stepper li.current').innerText(), /تایید نهایی/);
  await decide(page, 'step4_review', 'back');
  await step3.waitFor();
  await step3.locator(`input[data-nid="${NID}"]`).check();
  await step3.locator(`input[data-nid="${SPOUSE}"]`).check();
  await decide(page, 'step3_select', 'confirm');
  const step4 = page.locator('section.step[data-element="step4_review"]');
  await step4.locator('table.final-statuses').waitFor();
  assert.match(await step4.innerText(), /زهرا احمدی[\s\S]*ثبت‌نام[\s\S]*دارد/);
  await shot(page, 'applicant-step4');
  await decide(page, 'step4_review', 'confirm');
  await page.getByText('در حال بررسی کانون بازنشستگان و مستمری‌بگیران').first().waitFor();
  // the API agrees: the draft went 1-2-3-4-3-4, and the changes are those chosen
  const x = await apiAs('op', 'GET', `/v1/instances/${instanceId}`);
  assert.deepEqual(x.data.variables.changes, [{ national_id: NID, action: 'register' }, { national_id: SPOUSE, action: 'register' }]);
  assert.equal(x.data.history.filter((h) => h.event === 'ELEMENT_ACTIVATED' && h.element === 'step3_select').length, 2);
  assert.deepEqual(page.outside, [], 'nothing is loaded from outside');
  await page.goto(base + '/#/my');
  await page.locator(`[data-instance="${instanceId}"]`).waitFor();
  await shot(page, 'applicant-my-requests');
  await page.context().close();
});

test('the county association approves from its cartable', async () => {
  const page = await signIn('kanoon');
  const row = page.locator('tr[data-element="association_review"]');
  await row.waitFor();
  await shot(page, 'staff-cartable-association');
  await row.getByRole('link').first().click();
  await page.getByTestId('claim').click();
  await page.getByTestId('unclaim').waitFor();                     // claimed by kanoon
  await page.locator('table.final-statuses').waitFor();
  await shot(page, 'staff-task-association');
  await page.locator('button[data-decision="approve"]').click();
  await page.getByRole('heading', { name: 'کارتابل' }).waitFor();
  await page.getByText('کاری در کارتابل شما نیست.').waitFor();
  await page.context().close();
});

test('branch 1201 filters its cartable, transfers to the paying branch 1305, and can no longer open the task', async () => {
  const page = await signIn('br1201');
  await page.locator('#process').selectOption('supplementary-insurance');
  await page.getByRole('button', { name: 'جستجو' }).click();
  await page.locator('#status_text').selectOption('در حال بررسی - نیاز به رسیدگی شعبه');
  await page.getByRole('button', { name: 'جستجو' }).click();
  await page.waitForURL(/status_text=/);
  const row = page.locator('tr[data-element="branch_review"]');
  await row.waitFor();
  branchTaskId = Number(await row.getAttribute('data-task'));
  await shot(page, 'staff-cartable-branch');
  await row.getByRole('link').first().click();
  await page.locator('#transfer_branch').waitFor();
  await page.locator('table.final-statuses').waitFor();
  await shot(page, 'staff-task-branch');
  await page.locator('#transfer_branch').fill('1305');
  await page.getByRole('button', { name: 'انتقال' }).click();
  await page.getByText('کاری در کارتابل شما نیست.').waitFor();
  // another branch's task: the console shows "not in your cartable", the API says 404
  await page.goto(`${base}/#/tasks/${branchTaskId}`);
  await page.getByText('این کار در کارتابل شما نیست').waitFor();
  assert.equal(await page.locator('form.task-form').count(), 0);
  assert.equal((await apiAs('br1201', 'GET', `/v1/tasks/${branchTaskId}`)).status, 404);
  assert.equal((await apiAs('br1201', 'POST', `/v1/tasks/${branchTaskId}/complete`, { data: { branch_decision: 'accept' } })).status, 404);
  await page.context().close();
});

test('branch 1305 accepts, and the pensioner sees the final status', async () => {
  const page = await signIn('br1305');
  await page.locator(`tr[data-task="${branchTaskId}"]`).getByRole('link').first().click();
  await page.locator('button[data-decision="accept"]').click();
  await page.getByText('کاری در کارتابل شما نیست.').waitFor();
  await page.context().close();

  const app = await signIn('pensioner', { viewport: { width: 390, height: 844 }, mobile: true });
  const card = app.locator(`[data-instance="${instanceId}"]`);
  await card.getByText('مختومه - تایید نهایی').waitFor();
  await shot(app, 'applicant-mobile-my-requests');
  await card.getByRole('link').click();
  await app.getByTestId('status').getByText('مختومه - تایید نهایی').waitFor();
  await shot(app, 'applicant-mobile-request');
  await app.context().close();
  const x = await apiAs('op', 'GET', `/v1/instances/${instanceId}`);
  assert.equal(x.data.status, 'completed');
  assert.ok(x.data.history.some((h) => h.event === 'TASK_TRANSFERRED'));
});

test('an operator sees the process with waiting counts, and retries an incident', async () => {
  // more requests wait at step 1 (counts on the diagram, a backlog): the
  // pensioner's second one, and another pensioner's through the portal's message
  const more = await apiAs('pensioner', 'POST', '/v1/my/requests', { message: 'supplementary-request' });
  assert.equal(more.status, 201);
  const other = await apiAs('op', 'POST', '/v1/messages', { name: 'supplementary-request', correlation_key: '4112233401', payload: { national_id: '4112233401' } });
  assert.equal(other.data.result, 'started');
  await waitFor(async () => (await apiAs('op', 'GET', '/v1/instances?status=active&waiting_at=step1_terms')).data.items.length === 2,
    'two requests at step 1');
  // the SMS gateway fails once: a single-attempt SMS becomes an incident
  await fetch(`http://127.0.0.1:${smsPort}/control`, { method: 'POST', body: JSON.stringify({ fail: 1 }) });
  const started = await apiAs('op', 'POST', '/v1/instances', { process: 'console-notify', variables: { mobile: '09121110001', branch: '1201' } });
  assert.equal(started.status, 201);
  const broken = started.data.id;
  await waitFor(async () => (await apiAs('op', 'GET', `/v1/incidents?instance=${broken}`)).data.items.length, 'the incident');

  const page = await signIn('op');
  await page.getByRole('heading', { name: 'نمای کلی' }).waitFor();
  await page.locator('table.backlog').waitFor();
  await shot(page, 'operator-overview');
  // instances with filters
  await page.goto(`${base}/#/instances?process=supplementary-insurance`);
  await page.locator(`tr[data-instance="${instanceId}"]`).waitFor();
  await shot(page, 'operator-instances');
  // the waiting request: diagram with this instance's token and counts per element
  await page.setViewportSize({ width: 1280, height: 1100 });
  await page.goto(`${base}/#/instances/${more.data.id}`);
  await page.locator('.diagram[data-ready="true"]').waitFor({ timeout: 20000 });
  await page.locator('.djs-element.rv-here[data-element-id="step1_terms"]').waitFor();
  const count = page.locator('.rv-count[data-element="step1_terms"]');
  assert.equal(await count.getAttribute('data-count'), '2');
  assert.ok(await page.locator('tr.gw').count() > 0, 'gateway decisions in the history');
  await shot(page, 'operator-instance', { fullPage: false });
  // the finished one: history with the gateway reasons
  await page.goto(`${base}/#/instances/${instanceId}`);
  await page.locator('.diagram[data-ready="true"]').waitFor({ timeout: 20000 });
  await page.locator('#only_gw').check();
  await page.getByText('branch_decision == "accept"').first().waitFor();
  await page.locator('table.history').scrollIntoViewIfNeeded();
  await page.locator('h2', { hasText: 'سابقه' }).evaluate((e) => e.scrollIntoView());
  await shot(page, 'operator-instance-history', { fullPage: false });
  // incidents: retry
  await page.goto(`${base}/#/incidents`);
  const inc = page.locator('tr[data-incident]').filter({ hasText: 'send_sms' });
  await inc.waitFor();
  assert.match(await inc.innerText(), /500/);
  await shot(page, 'operator-incidents');
  await inc.locator('button[data-retry]').click();
  await page.getByText('خطای بازی نیست.').waitFor();
  const after = await apiAs('op', 'GET', `/v1/instances/${broken}`);
  assert.equal(after.data.incidents.filter((i) => i.state === 'open').length, 0);
  assert.ok(after.data.tokens.some((t) => t.element === 'follow_up'), 'the case went on after the retry');
  assert.deepEqual(page.outside, [], 'nothing is loaded from outside');
  await page.context().close();
});

test('the server serves only the console files', async () => {
  const r = await fetch(base + '/');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/html/);
  assert.match(r.headers.get('content-security-policy'), /default-src 'self'/);
  for (const p of ['/assets/', '/../../etc/passwd', '/.vite/manifest.json', '/index.html%2e', '/src/main.js', '/assets']) {
    const x = await fetch(base + p);
    assert.ok(x.status === 404 || x.status === 400, p + ' -> ' + x.status);
  }
});
