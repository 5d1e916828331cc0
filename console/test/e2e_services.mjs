// End-to-end tests of what the console builds from the API rather than from
// its own lists (docs/console.md): the applicants' start forms (GET
// /v1/definitions: startable, start_form), the premium slip's period picker
// (months only up to Esfand), the operator's waiting counts (one call to GET
// /v1/definitions/{p}/{v}/waiting), step names in the overview, and the
// cartable's overdue badge by the server's clock (GET /v1/me "now").
// Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core
// (launch helpers from lib.mjs),
// against a real `ravand serve` on loopback with a temporary database at a
// fixed clock. Run by `meson test --suite console` or directly:
//   RAVAND=build/ravand RAVAND_FAKE_SMS=build/adapters/ravand-fake-sms node --test test/e2e_services.mjs
// Exit 77 (skipped) when Chromium, playwright-core or the built console is missing.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SRC, prerequisites, ravandCli, addPrincipals, waitFor, startServer, launchBrowser, apiClient,
  browserSession } from './lib.mjs';

const chromium = await prerequisites();
// 1404/09/15 (Tehran), late in the year: a premium slip may cover Azar to Esfand only
const NOW = '2025-12-06T09:00:00+03:30';
const INSURED = '0650451252';   // tests/fixtures/premium: self-employed

const tmp = mkdtempSync(join(tmpdir(), 'ravand-console-svc-'));
const DB = join(tmp, 'console.db');
const procs = [];
const env = { base: null, browser: null, tokens: {} };
const cli = ravandCli(DB, NOW);
const apiAs = apiClient(env);
const session = browserSession(env);

// A branch task whose due date comes from a variable: one due before the
// server's (fixed) clock, one after it but before the browser's.
const DUE_BPMN = `<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:rv="urn:ravand:bpmn:1" id="defs_due" targetNamespace="urn:ravand:tests">
  <bpmn:process id="console-due" name="رسیدگی با مهلت" isExecutable="true">
    <bpmn:startEvent id="start" name="شروع"/>
    <bpmn:userTask id="review" name="رسیدگی شعبه با مهلت" rv:candidateGroups="branch" rv:branch="branch" rv:due="=due_at"/>
    <bpmn:endEvent id="end" name="پایان"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
`;

before(async () => {
  const bpmn = readdirSync(join(SRC, 'processes')).filter((f) => f.endsWith('.bpmn')).map((f) => join('processes', f));
  cli('deploy', '--scripts', 'scripts', ...bpmn);
  writeFileSync(join(tmp, 'due.bpmn'), DUE_BPMN);
  cli('deploy', join(tmp, 'due.bpmn'));
  // the premium records, with the insured's last year (1403) paid in full and
  // this year paid up to Aban: at 1404/09/15 the first unpaid month is Azar
  const rec = join(tmp, 'records');
  mkdirSync(rec);
  for (const f of readdirSync(join(SRC, 'tests/fixtures/premium'))) {
    let text = readFileSync(join(SRC, 'tests/fixtures/premium', f), 'utf8');
    if (f === 'statements.csv') {
      const lines = text.trimEnd().split('\n').filter((l) => !/^0650451252,1404-(09|1[0-2]),/.test(l));
      for (let m = 1; m <= 12; m++) lines.push(`${INSURED},1403-${String(m).padStart(2, '0')},12000000,12000000,1403/${String(m).padStart(2, '0')}/20`);
      text = lines.join('\n') + '\n';
    }
    writeFileSync(join(rec, f), text);
  }
  cli('records', 'load', rec);
  addPrincipals(cli, {
    insured: ['--role', 'applicant', '--national-id', INSURED],
    br1: ['--role', 'branch', '--branch', 'B1'],
    op: ['--role', 'operator'],
  }, env.tokens);
  // no --applicant-starts: what an applicant may start is the models' rv:startableBy
  ({ base: env.base } = await startServer({ tmp, db: DB, now: NOW, procs }));
  env.browser = await launchBrowser(chromium);
});

after(async () => {
  await env.browser?.close().catch(() => {});
  for (const p of procs) p.kill('SIGTERM');
  rmSync(tmp, { recursive: true, force: true });
});

afterEach(async () => {
  const dir = process.env.RAVAND_CONSOLE_FAILSHOTS;
  for (const [i, p] of session.pages.entries()) {
    if (dir && !p.isClosed()) await p.screenshot({ path: join(dir, `svc-fail-${i}.png`), fullPage: true }).catch(() => {});
  }
  session.pages.length = 0;
});

/** A signed-in page of `who`; page.calls lists the API paths it asks for. */
async function signIn(who) {
  const page = await session.signIn(who, { viewport: { width: 1280, height: 1000 } });
  page.calls = [];
  page.on('request', (r) => { if (r.url().startsWith(env.base + '/v1/')) page.calls.push(r.url().slice(env.base.length)); });
  return page;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const optionTexts = (sel) => sel.locator('option').evaluateAll((os) => os.map((o) => [o.value, o.textContent]));

let slipId;

test('an applicant files a premium slip from the start form the API describes, and picks a period up to Esfand', async () => {
  const page = await signIn('insured');
  await page.goto(env.base + '/#/new');
  // the services are what the models open to applicants (GET /v1/definitions "startable")
  const links = page.locator('ul.services a[data-process]');
  await links.first().waitFor();
  const shown = await links.evaluateAll((as) => as.map((a) => a.dataset.process));
  const defs = (await apiAs('insured', 'GET', '/v1/definitions')).data.items;
  const open = [...new Set(defs.filter((d) => d.startable || d.start_messages).map((d) => d.process))];
  assert.deepEqual([...shown].sort(), open.sort(), 'the services listed are the startable ones');
  assert.ok(shown.includes('premium-slip') && shown.includes('voluntary-contract'));
  assert.ok(!shown.includes('org-onboarding'), 'a process opened to organisations only is not offered');

  await page.locator('a[data-process="premium-slip"]').click();
  const form = page.locator('form[data-process="premium-slip"]');
  await form.waitFor();
  // the fields and labels of the model's start event; channel is set by the portal, agency_code is for agencies
  const fields = await form.locator('[data-field]').evaluateAll((es) => es.map((e) => e.dataset.field));
  assert.deepEqual(fields, ['mobile', 'category', 'wage_daily_rials']);
  assert.equal((await form.locator('label[for="start_category"]').innerText()).replace(/\s*\*$/, ''), 'نوع بیمه');
  assert.match(await form.locator('label[for="start_wage_daily_rials"]').innerText(), /^دستمزد روزانه مبنای قرارداد \(ریال\)\s*\*$/);
  assert.equal(await form.locator('label[for="start_mobile"] .req').count(), 0, 'mobile is optional in the model');
  assert.deepEqual(await optionTexts(form.locator('#start_category')), [['', '— انتخاب کنید —'],
    ['voluntary', 'بیمه اختیاری'], ['self12', 'مشاغل آزاد ۱۲٪'], ['self14', 'مشاغل آزاد ۱۴٪'], ['self18', 'مشاغل آزاد ۱۸٪']]);
  // required fields are asked for before anything is sent
  await form.getByRole('button', { name: 'ثبت درخواست' }).click();
  await form.getByText('«نوع بیمه» را وارد کنید').waitFor();
  await form.locator('#start_category').selectOption('self14');
  await form.locator('#start_wage_daily_rials').fill('۴٬۰۰۰٬۰۰۰');
  await form.locator('#start_mobile').fill('۰۹۱۳۱۱۱۱۱۱۱');
  // Until `held` is cleared the browser is shown the request as it is before
  // the adapters answer (the server's own reply with its open steps left out),
  // so the request page is surely drawn before the period step exists,
  // however fast the adapters are.
  let held = true;
  await page.route(/\/v1\/my\/requests\/\d+$/, async (route) => {
    if (!held || route.request().method() !== 'GET') return route.continue();
    const res = await route.fetch();
    return route.fulfill({ response: res, json: { ...(await res.json()), tasks: [] } });
  });
  await form.getByRole('button', { name: 'ثبت درخواست' }).click();
  await page.waitForURL(/#\/my\/\d+$/);
  slipId = Number(/#\/my\/(\d+)/.exec(page.url())[1]);
  await page.getByTestId('waiting').waitFor();
  await page.evaluate(() => { window.rvSamePage = true; });     // gone if the page is ever reloaded
  const polls = () => page.calls.filter((u) => u === `/v1/my/requests/${slipId}`).length;
  const x = await apiAs('op', 'GET', `/v1/instances/${slipId}`);
  assert.equal(x.data.process, 'premium-slip');
  assert.equal(x.data.business_key, INSURED);
  for (const [k, v] of Object.entries({ channel: 'online', category: 'self14', wage_daily_rials: 4000000, mobile: '09131111111' }))
    assert.equal(x.data.variables[k], v, k);
  assert.ok(!('agency_code' in x.data.variables));

  // with nothing to do yet, the request page looks again by itself (every 2 s) ...
  await waitFor(() => polls() >= 3, 'two polls of the request', 10000);
  // ... but not while the tab is hidden ...
  const visibility = (hidden) => page.evaluate((hide) => {
    for (const k of ['hidden', 'visibilityState']) delete document[k];
    if (hide) {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    }
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
  await visibility(true);
  await sleep(2500);                 // a poll under way ends
  let n = polls();
  await sleep(4500);
  assert.equal(polls(), n, 'no polls while the tab is hidden');
  // ... at once when it is shown again ...
  await visibility(false);
  await waitFor(() => polls() > n, 'a poll as soon as the tab is shown', 1500);
  // ... and not once the applicant has left the page
  await page.evaluate(() => { location.hash = '#/my'; });
  await page.getByTestId('my-requests').waitFor();
  await sleep(500);
  n = polls();
  await sleep(4500);
  assert.equal(polls(), n, 'no polls once the page is left');

  // the period: from the first unpaid month (Azar 1404) to Esfand, never beyond;
  // it appears on the open page once the adapters have answered, without a reload
  await waitFor(async () => (await apiAs('op', 'GET', `/v1/instances/${slipId}`)).data.tokens.some((t) => t.element === 'choose_period'),
    'the period step', 20000);
  await page.evaluate((id) => { location.hash = `#/my/${id}`; }, slipId);
  await page.getByTestId('waiting').waitFor();
  held = false;
  const step = page.locator('section.step[data-element="choose_period"]');
  await step.waitFor({ timeout: 6000 });
  assert.equal(await page.evaluate(() => window.rvSamePage), true, 'the step came without a reload');
  n = polls();
  await sleep(4500);
  assert.equal(polls(), n, 'no polls once the applicant has a step');
  const months = await optionTexts(step.locator('#f_months'));
  assert.deepEqual(months.map(([v]) => v), ['', '1', '2', '3', '4'], 'four months: Azar, Dey, Bahman, Esfand');
  assert.equal(months[1][1], '۱ ماه: آذر ۱۴۰۴');
  assert.equal(months[4][1], '۴ ماه: آذر تا اسفند ۱۴۰۴');
  await step.locator('#f_months').selectOption('2');
  await step.getByRole('button', { name: 'ثبت و ارسال' }).click();
  await page.getByTestId('status').getByText('برگ پرداخت صادر شد - در انتظار پرداخت').waitFor({ timeout: 20000 });
  const y = await apiAs('op', 'GET', `/v1/instances/${slipId}`);
  assert.equal(y.data.variables.months, 2);
  assert.ok(y.data.tokens.some((t) => t.element === 'await_payment'), 'the slip waits for its payment');
  assert.deepEqual(page.outside, []);
  await page.context().close();
});

test('the voluntary contract start form is built from the model', async () => {
  const page = await signIn('insured');
  await page.goto(env.base + '/#/new');
  await page.locator('a[data-process="voluntary-contract"]').click();
  const form = page.locator('form[data-process="voluntary-contract"]');
  await form.waitFor();
  const fields = await form.locator('[data-field]').evaluateAll((es) => es.map((e) => e.dataset.field));
  assert.deepEqual(fields, ['mobile']);
  assert.equal(await form.locator('label[for="start_mobile"]').innerText(), 'تلفن همراه (از ورود به سامانه)');
  await form.locator('#start_mobile').fill('09131111111');
  await form.getByRole('button', { name: 'ثبت درخواست' }).click();
  await page.waitForURL(/#\/my\/\d+$/);
  const id = Number(/#\/my\/(\d+)/.exec(page.url())[1]);
  await waitFor(async () => (await page.getByTestId('status').innerText()).trim(), 'a status');
  const x = await apiAs('op', 'GET', `/v1/instances/${id}`);
  assert.equal(x.data.process, 'voluntary-contract');
  assert.equal(x.data.variables.mobile, '09131111111');
  await page.context().close();
});

test('the operator sees waiting counts from one call, and step names in the overview', async () => {
  // two more premium slips wait at the period step
  for (let i = 0; i < 2; i++) {
    const r = await apiAs('insured', 'POST', '/v1/my/requests', { process: 'premium-slip',
      variables: { channel: 'online', category: 'self12', wage_daily_rials: 3000000 } });
    assert.equal(r.status, 201);
  }
  await waitFor(async () => (await apiAs('op', 'GET', '/v1/instances?process=premium-slip&status=active&waiting_at=choose_period')).data.items.length === 2,
    'two slips at the period step');
  const version = (await apiAs('op', 'GET', `/v1/instances/${slipId}`)).data.version;
  const want = (await apiAs('op', 'GET', `/v1/definitions/premium-slip/${version}/waiting`)).data;
  assert.equal(want.choose_period, 2);
  assert.equal(want.await_payment, 1);

  const page = await signIn('op');
  // overview: the backlog shows the step's name from the definitions, the id stays in the link
  await page.locator('table.backlog').waitFor();
  const step = page.locator('table.backlog a[data-element="choose_period"]');
  await step.first().waitFor();
  assert.equal(await step.first().innerText(), 'انتخاب دوره پرداخت (یک ماه تا پایان اسفند)');
  assert.match(await step.first().getAttribute('href'), /waiting_at=choose_period/);

  // the instance: badges from GET …/waiting, one call for the whole diagram
  page.calls.length = 0;
  await page.goto(`${env.base}/#/instances/${slipId}`);
  await page.locator('.diagram[data-ready="true"]').waitFor({ timeout: 20000 });
  await page.locator('.djs-element.rv-here[data-element-id="await_payment"]').waitFor();
  const waitingCalls = page.calls.filter((u) => /\/waiting(\?|$)/.test(u));
  assert.deepEqual(waitingCalls, [`/v1/definitions/premium-slip/${version}/waiting`], 'one waiting call');
  assert.equal(page.calls.filter((u) => /waiting_at=/.test(u)).length, 0, 'no list call per element');
  const badges = await page.locator('.rv-count').evaluateAll((es) => Object.fromEntries(es.map((e) => [e.dataset.element, Number(e.dataset.count)])));
  assert.deepEqual(badges, want, 'a badge per element with its count');
  assert.equal(await page.locator('.rv-count[data-element="choose_period"]').innerText(), '۲');

  // the process page draws the same counts, again with one call
  page.calls.length = 0;
  await page.goto(`${env.base}/#/definitions?process=premium-slip&version=${version}`);
  await page.locator('.diagram[data-ready="true"]').waitFor({ timeout: 20000 });
  assert.equal(page.calls.filter((u) => /\/waiting(\?|$)/.test(u)).length, 1);
  assert.equal(await page.locator('.rv-count[data-element="choose_period"]').getAttribute('data-count'), '2');
  assert.deepEqual(page.outside, []);
  await page.context().close();
});

test('the cartable marks a task overdue by the server\'s clock, not the browser\'s', async () => {
  // the server's clock is fixed at 1404/09/15; the browser's is whatever the machine says
  const me = (await apiAs('br1', 'GET', '/v1/me')).data;
  assert.equal(me.now, Date.parse(NOW));
  const late = await apiAs('op', 'POST', '/v1/instances', { process: 'console-due', variables: { branch: 'B1', due_at: '2025-12-01T12:00:00Z' } });
  const soon = await apiAs('op', 'POST', '/v1/instances', { process: 'console-due', variables: { branch: 'B1', due_at: '2025-12-20T12:00:00Z' } });
  assert.equal(late.status, 201);
  assert.equal(soon.status, 201);
  const tasks = (await apiAs('br1', 'GET', '/v1/tasks?process=console-due')).data.items;
  const taskOf = (inst) => tasks.find((t) => t.instance === inst).id;
  // a browser clock after the second due date too: only the server's clock tells them apart
  const page = await signIn('br1');
  if (page.clock) await page.clock.setSystemTime(new Date('2026-06-01T00:00:00Z'));
  await page.goto(`${env.base}/#/cartable?process=console-due`);
  const row = (inst) => page.locator(`tr[data-task="${taskOf(inst)}"]`);
  await row(late.data.id).waitFor();
  assert.equal(await row(late.data.id).locator('.badge.warn').count(), 1, 'past the server\'s now: overdue');
  assert.equal(await row(soon.data.id).locator('.badge.warn').count(), 0, 'before the server\'s now: not overdue');
  await page.context().close();
});
