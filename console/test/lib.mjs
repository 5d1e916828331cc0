// lib.mjs -- what the console's browser tests share (e2e.mjs, e2e_marriage.mjs):
// the paths and prerequisites (exit 77 when Chromium, playwright-core or the
// built console is missing), the fake SMS gateway and `ravand serve` on
// loopback, headless Chromium, signed-in pages and screenshots.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';

const HERE = dirname(fileURLToPath(import.meta.url));
export const CONSOLE = resolve(HERE, '..');
export const SRC = resolve(process.env.RAVAND_SOURCE || join(CONSOLE, '..'));
export const RAVAND = resolve(process.env.RAVAND || join(SRC, 'build', 'ravand'));
export const FAKE_SMS = resolve(process.env.RAVAND_FAKE_SMS || join(dirname(RAVAND), 'adapters', 'ravand-fake-sms'));
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const DIST = resolve(process.env.RAVAND_CONSOLE_DIST || join(CONSOLE, 'dist'));
export const SHOTS = process.env.RAVAND_CONSOLE_SHOTS ? resolve(process.env.RAVAND_CONSOLE_SHOTS) : null;

export function skip(why) {
  console.log(`# SKIP console e2e: ${why}`);
  process.exit(77);
}

/** Check what the browser tests need (else exit 77); returns playwright's chromium. */
export async function prerequisites() {
  for (const [what, p] of [['chromium', CHROMIUM], ['ravand', RAVAND], ['ravand-fake-sms', FAKE_SMS],
    ['the built console (npm ci && npm run build in console/)', join(DIST, 'index.html')]]) {
    if (!existsSync(p)) skip(`${what} not found at ${p}`);
  }
  try {
    return (await import('playwright-core')).chromium;
  } catch {
    return skip('playwright-core is not installed (npm ci in console/)');
  }
}

/** `ravand --db DB --now NOW ARGS...` from the source root; returns stdout. */
export const ravandCli = (db, now) => (...args) =>
  execFileSync(RAVAND, ['--db', db, '--now', now, ...args], { cwd: SRC, encoding: 'utf8' });

/** Add principals ({name: [ravand principal add args]}) and fill tokens. */
export function addPrincipals(cli, people, tokens) {
  for (const [name, args] of Object.entries(people)) {
    cli('principal', 'add', name, ...args);
    tokens[name] = cli('principal', 'token', name).trim().split('\n').pop().trim();
  }
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
    s.on('error', rej);
  });
}

export async function waitFor(fn, what, ms = 10000) {
  const t0 = Date.now();
  for (;;) {
    try { const v = await fn(); if (v) return v; } catch { /* not yet */ }
    if (Date.now() - t0 > ms) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The fake SMS gateway and `ravand serve` (the console from DIST, no rate
 * limits) on free loopback ports; the processes go to procs.
 * Returns { base, smsPort }.
 */
export async function startServer({ tmp, db, now, procs, args = [] }) {
  const portFile = join(tmp, 'sms.port');
  procs.push(spawn(FAKE_SMS, ['--port', '0', '--port-file', portFile], { stdio: 'ignore' }));
  const smsPort = await waitFor(() => existsSync(portFile) && readFileSync(portFile, 'utf8').trim(), 'the SMS gateway');
  const cfg = join(tmp, 'ravand.json');
  writeFileSync(cfg, JSON.stringify({ sms: { url: `http://127.0.0.1:${smsPort}/send`, sender: 'ravand-test' } }));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const serve = spawn(RAVAND, ['--db', db, '--now', now, '--config', cfg, 'serve', '--listen', `127.0.0.1:${port}`,
    ...args, '--console', DIST, '--rate', '-1', '--rate-addr', '-1'], { cwd: SRC, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  serve.stderr.on('data', (d) => { log += d; });
  serve.on('exit', (code) => { if (code) console.log('# ravand serve exited', code, log); });
  procs.push(serve);
  await waitFor(async () => (await fetch(base + '/healthz')).ok, 'ravand serve');
  return { base, smsPort };
}

export function launchBrowser(chromium) {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    // playwright gives every launch a fresh, empty user-data-dir of its own
  });
}

/** A call to the API as `who` (tokens[who]): { status, data }. */
export const apiClient = (env) => async (who, method, path, body) => {
  const res = await fetch(env.base + path, {
    method, headers: { Authorization: 'Bearer ' + env.tokens[who], ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = (res.headers.get('content-type') || '').includes('json') ? await res.json() : await res.text();
  return { status: res.status, data };
};

/**
 * Signed-in pages over env = { browser, base, tokens } (filled in by the
 * test's before()): signIn(who, opts), shot(page, name), and the pages opened.
 */
export function browserSession(env) {
  const pages = [];
  async function shot(page, name, opts = {}) {
    if (!SHOTS) return;
    mkdirSync(SHOTS, { recursive: true });
    await page.evaluate(() => document.fonts.ready);
    await page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: opts.fullPage ?? true });
  }
  /** A signed-in page of `who` (each in its own browser context). */
  async function signIn(who, opts = {}) {
    const ctx = await env.browser.newContext({ locale: 'fa-IR', viewport: opts.viewport || { width: 1280, height: 860 },
      deviceScaleFactor: 1, isMobile: !!opts.mobile, hasTouch: !!opts.mobile, acceptDownloads: true });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => { console.log('# page error:', e.message); });
    page.on('console', (m) => { if (m.type() === 'error') console.log('# console:', m.text()); });
    pages.push(page);
    const outside = [];
    page.on('request', (r) => {
      const u = r.url();
      if (!u.startsWith(env.base) && !u.startsWith('data:') && !u.startsWith('blob:' + env.base)) outside.push(u);
    });
    page.outside = outside;
    await page.goto(env.base + '/');
    await page.locator('#token').fill(env.tokens[who]);
    if (opts.shot) await shot(page, opts.shot);
    await page.getByRole('button', { name: 'ورود' }).click();
    await page.getByTestId('user').waitFor();
    return page;
  }
  return { signIn, shot, pages };
}
