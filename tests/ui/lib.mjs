// Shared by the browser tests of the web UI (tests/ui/*.mjs, run by
// tests/e2e/t06xx-ui-*.sh): settings from the environment, checks, tokens,
// psql, the browser, and console watching. playwright-core is pinned in
// package.json and drives Debian's chromium; it never downloads a browser.
import { createRequire } from 'node:module';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}
export const URL_ = env('URL'), PGPORT = env('PGPORT'), PGUSER = env('PGUSER');

export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}
export const ok = what => console.log(`ok - ${what}`);

/* A JWT as Supabase issues them: HS256 over JWT_SECRET (or another secret: a forged one). */
export function jwt(claims, secret = env('JWT_SECRET')) {
  const b64 = o => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const signing = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64(Object.assign({ iat: now, exp: now + 3600 }, claims));
  return signing + '.' + crypto.createHmac('sha256', secret).update(signing).digest('base64url');
}

export const PSQL_ARGS = ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', PGPORT, '-U', PGUSER];
export function psql(db, sql) {
  return execFileSync('psql', [...PSQL_ARGS, '-d', db, '-c', sql], { encoding: 'utf8' }).trim();
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--headless=new', '--disable-dev-shm-usage'], // root in CI; small /dev/shm in containers
  });
}

/* Console errors and page errors fail the run. The only exceptions are the
 * browser's own "Failed to load resource" lines for answers a step expects
 * (a refused token is a 401, a refused schedule a 400): expectStatus(), and
 * expectNothing() when the step is over. */
export const problems = [];
let expected = [];
export function expectStatus(status, urlPart) { expected.push({ status, urlPart }); }
export function expectNothing() { expected = []; }
export function watch(page, who) {
  page.on('pageerror', e => problems.push(`${who}: page error: ${e.message}`));
  page.on('console', m => {
    if (m.type() !== 'error') return;
    const text = m.text(), url = (m.location() && m.location().url) || '';
    const st = /status of (\d+)/.exec(text);
    if (st && expected.some(x => String(x.status) === st[1] && url.includes(x.urlPart))) return;
    problems.push(`${who}: console error: ${text} (${url})`);
  });
}

/* A fresh browser context (its own session storage) signed in with token;
 * waits for the projects list. opts.context: more context options; opts.clock:
 * the page's clock is installed first (driven by the test). Returns [context, page]. */
export async function signedIn(browser, token, who, opts = {}) {
  const c = await browser.newContext(Object.assign({ viewport: { width: 1280, height: 860 } }, opts.context));
  c.setDefaultTimeout(60000); // generous: CI runs this beside other tests, under sanitizers too
  const pg = await c.newPage();
  watch(pg, who);
  if (opts.clock) await pg.clock.install();
  await pg.goto(URL_);
  await pg.fill('#token', token);
  await pg.click('form button[type=submit]');
  await pg.waitForSelector('table.data, .empty h3');
  return [c, pg];
}

/* Runs the steps with a browser; prints FAIL and exits 1 on a failed check
 * or any console problem. */
export async function run(steps) {
  const browser = await launch();
  let failed = false;
  try {
    await steps(browser);
  } catch (e) {
    failed = true;
    console.error(`FAIL: ${e.message}`);
  } finally {
    await browser.close();
  }
  if (problems.length) {
    failed = true;
    console.error('FAIL: console errors:\n  ' + problems.join('\n  '));
  } else if (!failed) {
    ok('no console errors');
  }
  process.exit(failed ? 1 : 0);
}
