// Browser checks of the web UI, run by tests/e2e/t0610-ui-browser.sh against a
// real `supamanager serve` (URL) and the project abc123 on a real PostgreSQL
// (PGPORT). playwright-core (pinned in package.json) drives Debian's chromium;
// it never downloads a browser. Every step prints "ok - ..."; the first
// failed check throws, and any console error or page error fails the run.
import crypto from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  env, URL_, PGPORT, PGUSER, PSQL_ARGS, check, ok, jwt, psql, watch, expectStatus, expectNothing, signedIn, run,
} from './lib.mjs';

const PROJECT_DIR = env('PROJECT_DIR'), SHOTS = env('SHOTS'), T = env('T');
const PID = 'abc123';

const tokens = {
  service: jwt({ role: 'service_role' }),
  owner: jwt({ role: 'authenticated', sub: 'user-owner' }),
  stranger: jwt({ role: 'authenticated', sub: 'user-stranger' }),
  member: jwt({ role: 'authenticated', sub: 'user-member' }),
  expired: jwt({ role: 'authenticated', sub: 'user-owner', exp: Math.floor(Date.now() / 1000) - 120 }),
  forged: jwt({ role: 'service_role' }, 'not-the-secret-of-this-service'),
};

/* Holds an ACCESS EXCLUSIVE lock on a table until release(): pg_dump waits
 * for it, so a backup stays running for as long as the test needs. */
async function holdLock(table) {
  const p = spawn('psql', [...PSQL_ARGS, '-d', 'proj'],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    let out = '';
    p.stdout.on('data', d => { out += d; if (out.includes('locked')) resolve(); });
    p.on('exit', code => reject(new Error(`psql holding the lock exited ${code}`)));
    p.stdin.write(`BEGIN; LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n`);
  });
  return () => new Promise(resolve => {
    p.removeAllListeners('exit');
    p.on('exit', resolve);
    p.stdin.end('COMMIT;\n');
  });
}

/* name -> sha256 of every file under dir (what "storage did not change" means) */
function treeDigest(dir) {
  const out = {};
  const walk = d => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out[path.relative(dir, p)] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return JSON.stringify(out);
}

const DESKTOP = { width: 1280, height: 860 }, PHONE = { width: 390, height: 844 };
const shots = [];
async function shot(page, name) {
  for (const [label, size] of [['phone', PHONE], ['desktop', DESKTOP]]) {
    await page.setViewportSize(size);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForTimeout(200); // let the chart redraw at the new width (cosmetic only)
    if (label === 'desktop') await checkContrast(page, name);
    else await checkFits(page, name);
    const file = path.join(SHOTS, `${name}-${label}.png`);
    await page.screenshot({ path: file, fullPage: true });
    shots.push(file);
  }
}

/* WCAG contrast of every visible text on the page (not disabled controls, not the
 * chart's SVG): at least 4.5:1, or 3:1 for large text. Backgrounds with alpha are
 * blended over what is under them. Returns the failures. */
function lowContrast(page) {
  return page.evaluate(() => {
    const parse = c => {
      const m = /rgba?\(([^)]+)\)/.exec(c || '');
      if (!m) return null;
      const v = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1];
    };
    const blend = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3])).concat(1);
    const lum = c => {
      const f = x => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); };
      return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
    };
    const background = el => {
      const layers = [];
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
      }
      let col = [255, 255, 255, 1];
      for (let i = layers.length - 1; i >= 0; i--) col = blend(layers[i], col);
      return col;
    };
    const bad = [];
    for (const el of document.querySelectorAll('body *')) {
      if (el.closest('svg, :disabled, [aria-disabled=true], [aria-hidden=true], .visually-hidden, [hidden]')) continue; // decoration, disabled
      if (!Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim())) continue;
      if (!el.getClientRects().length) continue;
      let faded = false;
      for (let e = el; e; e = e.parentElement) if (Number(getComputedStyle(e).opacity) < 1) faded = true;
      const cs = getComputedStyle(el);
      if (faded || cs.visibility !== 'visible') continue;
      const bg = background(el);
      let fg = parse(cs.color);
      if (fg[3] < 1) fg = blend(fg, bg);
      const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      const ratio = (a + 0.05) / (b + 0.05);
      const size = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
      const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
      if (ratio < need) bad.push(`'${el.textContent.trim().slice(0, 40)}' ${ratio.toFixed(2)}:1 (${cs.color} on rgb(${bg.slice(0, 3).map(Math.round)}))`);
    }
    return bad;
  });
}
/* Form controls without a name a screen reader can say (label, aria-label, aria-labelledby). */
function unlabelled(page) {
  return page.evaluate(() => Array.from(document.querySelectorAll('input, select, textarea'))
    .filter(e => e.type !== 'hidden' && e.getClientRects().length && !(e.labels && e.labels.length) &&
      !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
    .map(e => `${e.tagName.toLowerCase()}#${e.id || '?'}`));
}
const contrastFailures = [], a11yFailures = [];
async function checkContrast(page, screen) {
  for (const b of await lowContrast(page)) contrastFailures.push(`${screen}: ${b}`);
  for (const b of await unlabelled(page)) a11yFailures.push(`${screen}: ${b} has no label`);
}
/* At phone width nothing may stick out sideways (the page must not scroll horizontally). */
async function checkFits(page, screen) {
  const [sw, w] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  if (sw > w) a11yFailures.push(`${screen}: ${sw} px wide at a ${w} px phone width`);
}

await run(async browser => {
  // ---- the files and their headers, without a browser ----
  {
    const r = await fetch(URL_);
    const csp = r.headers.get('content-security-policy') || '';
    check(r.status === 200 && /text\/html/.test(r.headers.get('content-type')), `GET / ${r.status}`);
    check(/script-src 'self'/.test(csp) && /frame-ancestors 'none'/.test(csp) && !/unsafe-inline/.test(csp), `CSP: ${csp}`);
    check(r.headers.get('x-frame-options') === 'DENY' && r.headers.get('x-content-type-options') === 'nosniff' &&
      r.headers.get('referrer-policy') === 'no-referrer', 'security headers');
    const etag = r.headers.get('etag');
    const r2 = await fetch(URL_, { headers: { 'If-None-Match': etag } });
    check(r2.status === 304, `revalidation answers 304: ${r2.status}`);
    const inm = async v => (await fetch(URL_, { headers: { 'If-None-Match': v } })).status;
    check(await inm(`"0000000000000000", W/${etag}`) === 304 && await inm('*') === 304 && await inm('"0000000000000000"') === 200 &&
      await inm(etag.slice(0, -2) + '"') === 200, 'If-None-Match: lists, weak tags and * match; other tags do not');
    check((await fetch(URL_ + 'ui/style.css', { headers: { 'If-None-Match': etag } })).status === 200, 'each file has its own tag');
    const r3 = await fetch(URL_ + 'ui/app.js');
    check(r3.status === 200 && /javascript/.test(r3.headers.get('content-type')), 'app.js');
    const r4 = await fetch(URL_ + 'ui/..%2fopenapi.json');
    const r5 = await fetch(URL_ + 'ui/secret.js');
    check(r4.status === 404 && r5.status === 404, `unknown UI files are 404: ${r4.status} ${r5.status}`);
    ok('GET / and /ui/* serve the embedded files with CSP, nosniff, no-referrer, DENY framing and ETags; other names 404');
  }

  const ctx = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true, timezoneId: 'America/New_York' });
  // records the highest value each progress bar showed (bars are re-drawn often)
  await ctx.addInitScript(() => {
    window.__bars = {};
    const note = b => {
      if (b.getAttribute && b.getAttribute('role') === 'progressbar') {
        const k = b.getAttribute('aria-label'), v = Number(b.getAttribute('aria-valuenow'));
        window.__bars[k] = Math.max(window.__bars[k] || 0, v);
      }
    };
    // from the records themselves: a bar may be gone from the page by the time this runs
    new MutationObserver(records => {
      for (const r of records) {
        if (r.type === 'attributes') note(r.target);
        for (const n of r.addedNodes) if (n.querySelectorAll) [n, ...n.querySelectorAll('[role=progressbar]')].forEach(note);
      }
    }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['aria-valuenow'] });
  });
  ctx.setDefaultTimeout(60000); // generous: CI runs this beside other tests, under sanitizers too
  const page = await ctx.newPage();
  watch(page, 'owner');
  // every request the page makes, to check that it uses the public API only
  const requested = new Set();
  ctx.on('request', r => { if (r.url().startsWith(URL_)) requested.add(`${r.method()} ${new URL(r.url()).pathname}`); });

  // ---- sign-in ----
  await page.goto(URL_);
  await page.waitForSelector('#token');
  check(page.url().endsWith('#/signin'), `signed-out start page: ${page.url()}`);
  await shot(page, '01-signin');
  const signIn = async tok => {
    await page.fill('#token', tok);
    await page.click('form button[type=submit]');
  };
  await signIn('not a token');
  await page.waitForSelector('#token-error .notice-error');
  check(/not a JWT/.test(await page.textContent('#token-error')), 'a non-JWT is explained');
  expectStatus(401, '/platform/projects');
  await signIn(tokens.expired);
  await page.waitForFunction(() => /expired/.test(document.querySelector('#token-error').textContent));
  check(/This token has expired/.test(await page.textContent('#token-error')), 'expired token message');
  await signIn(tokens.forged);
  await page.waitForFunction(() => /forged/.test(document.querySelector('#token-error').textContent));
  check(await page.getAttribute('#token', 'aria-invalid') === 'true', 'the field is marked invalid');
  await shot(page, '02-signin-forged');
  check(await page.evaluate(() => sessionStorage.getItem('supamanager.token')) === null, 'a refused token is not kept');
  expectNothing();
  ok('sign-in explains a non-JWT, an expired token and a forged one, and keeps none of them');

  await signIn(tokens.owner);
  await page.waitForSelector('table.data a.row-link');
  check(await page.evaluate(() => sessionStorage.getItem('supamanager.token')) === tokens.owner, 'the token is in sessionStorage');
  check(await page.evaluate(() => localStorage.length) === 0 && !page.url().includes(tokens.owner.slice(0, 20)), 'not in localStorage nor the URL');
  check((await page.textContent('table.data')).includes('My App') && (await page.textContent('#who-name')) === 'user-owner', 'projects list');
  await shot(page, '03-projects');
  ok('sign-in with the owner\'s token: kept in sessionStorage only, the projects list shows the project');

  // ---- the Backups page, empty ----
  const pitrAsked = page.waitForResponse(r => r.url().endsWith(`/projects/${PID}/pitr`));
  await page.click('a.row-link');
  await page.waitForSelector('.empty h3');
  const pitrOff = await pitrAsked;
  check(pitrOff.status() === 200 && (await pitrOff.json()).enabled === false, 'the service says PITR is off for the project');
  check(/No backups yet/.test(await page.textContent('.empty')) && /Create the first backup/.test(await page.textContent('.empty')), 'empty state');
  check(!(await page.isVisible('#pitr')), 'no PITR panel while PITR is off');
  await shot(page, '04-backups-empty');
  ok('the Backups page of a project without backups says what to do');

  // ---- create a backup; its bar survives a reload and reaches 100 % ----
  const release = await holdLock('public.comments');
  await page.click('.toolbar button:has-text("Create backup")');
  await page.waitForSelector('dialog[open] #create-type');
  check(await page.evaluate(() => document.activeElement && document.activeElement.id) === 'create-type', 'focus in the dialog');
  const types = await page.$$eval('#create-type option', os => os.map(o => o.value));
  check(types.join() === 'FULL,DATABASE,STORAGE,INCREMENTAL', `types: ${types}`);
  await shot(page, '05-create-dialog');
  await page.selectOption('#create-type', 'FULL');
  await page.click('dialog[open] button:has-text("Create")');
  await page.waitForSelector('tr[data-status=CREATING] [role=progressbar]');
  const bid = await page.getAttribute('tr[data-status=CREATING]', 'data-id');
  await shot(page, '06-backup-progress');
  expectStatus(409, `/projects/${PID}/backups`);
  await page.click('.toolbar button:has-text("Create backup")');
  await page.click('dialog[open] button:has-text("Create")');
  await page.waitForSelector('dialog[open] .notice-error');
  const busy = await page.textContent('dialog[open] .notice-error');
  check(/The backup was not started: .*busy/.test(busy), `a second backup meanwhile: ${busy}`);
  await page.click('dialog[open] button:has-text("Cancel")');
  expectNothing();
  await page.reload();
  await page.waitForSelector(`tr[data-id="${bid}"][data-status=CREATING] [role=progressbar]`);
  // the phase comes with the events (the backup waits for the lock in its database dump)
  await page.waitForFunction(id => /dump|database|storage|config|globals/.test(document.querySelector(`tr[data-id="${id}"] .phase`).textContent), bid);
  ok(`the backup ${bid} shows a progress bar, still there after a reload`);
  await release();
  await page.waitForSelector(`tr[data-id="${bid}"][data-status=COMPLETED] button:has-text("Download")`, { timeout: 120000 });
  const most = await page.evaluate(id => window.__bars[`Progress of ${id}`], bid);
  check(most === 100, `the bar reached ${most} %`);
  const row = await page.textContent(`tr[data-id="${bid}"]`);
  check(/UTC/.test(row) && /\(local\)/.test(row) && /Full/.test(row) && /Completed/.test(row) && /[0-9.]+ (KB|MB)/.test(row), `row: ${row}`);
  check(/^Total: 1 backup \| [0-9.]+ (KB|MB)$/.test(await page.textContent('#totals')), 'totals');
  check(await page.$$eval('svg.chart rect.bar-size', r => r.length) === 1, 'the chart has one bar');
  await shot(page, '07-backups');
  ok('after the lock is released the bar reaches 100 %, the row shows UTC and local times, type, badge, size, Download; totals; chart');

  // ---- download: a signed link with its expiry, an archive with database.dump ----
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`tr[data-id="${bid}"] button:has-text("Download")`)]);
  const file = path.join(T, 'ui-download.tar.gz');
  await dl.saveAs(file);
  const names = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n');
  check(names.includes('database.dump') && names.includes('metadata.json'), `archive: ${names.slice(0, 8)}`);
  await page.waitForSelector('dialog[open] [data-expires]');
  const exp = await page.getAttribute('dialog[open] [data-expires]', 'data-expires');
  const left = (Date.parse(exp) - Date.now()) / 60000;
  check(left > 50 && left <= 61 && /expires .* UTC/.test(await page.textContent('dialog[open] [data-expires]')), `expiry ${exp}`);
  check(!dl.url().includes(tokens.owner) && /sig=/.test(dl.url()), 'a signed link, no token');
  await shot(page, '08-download');
  await page.keyboard.press('Escape');
  await page.waitForSelector('dialog[open]', { state: 'detached' });
  ok('Download fetches a signed link (expiry shown, about an hour) and the browser saves an archive with database.dump');

  // ---- restore the database only ----
  psql('proj', 'DELETE FROM public.comments');
  fs.writeFileSync(path.join(PROJECT_DIR, 'storage', 'added-after-the-backup.txt'), 'kept by a database-only restore\n');
  const storageBefore = treeDigest(path.join(PROJECT_DIR, 'storage'));
  await page.focus(`tr[data-id="${bid}"] button:has-text("Restore")`);
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog[open] #restore-database');
  const dlgText = await page.textContent('dialog[open]');
  for (const want of ['Restore backup', `Backup:${bid}`, 'Created:', 'UTC', 'Size:', 'Restore Options:', 'Database', 'Storage Files',
    'Configuration', 'Warning: This will overwrite current project data', 'Cancel', 'Restore Project']) {
    check(dlgText.includes(want), `the restore dialog says '${want}': ${dlgText}`);
  }
  check(await page.isChecked('#restore-database') && await page.isChecked('#restore-storage') && await page.isChecked('#restore-config'), 'all ticked');
  // keyboard: Tab and Shift+Tab stay inside the dialog
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press(i < 5 ? 'Tab' : 'Shift+Tab');
    check(await page.evaluate(() => !!document.activeElement.closest('dialog[open]')), `focus left the dialog after ${i + 1} Tab presses`);
  }
  await shot(page, '09-restore-dialog');
  await page.uncheck('#restore-storage');
  await page.uncheck('#restore-config');
  await page.click('dialog[open] button:has-text("Restore Project")');
  await page.waitForSelector('dialog[open] [role=progressbar]');
  await page.waitForSelector('#restore-result', { timeout: 180000 });
  const result = await page.textContent('#restore-result');
  check(/Restore completed/.test(result) && /database/.test(result), `restore result: ${result}`);
  check(await page.evaluate(() => window.__bars['Restore progress']) === 100, 'the restore bar reached 100 %');
  await shot(page, '10-restore-done');
  check(psql('proj', 'SELECT count(*) FROM public.comments') === '5000', 'the comments are back');
  check(treeDigest(path.join(PROJECT_DIR, 'storage')) === storageBefore, 'the storage did not change');
  await page.click('dialog[open] button:has-text("Close")');
  check(await page.evaluate(id => document.activeElement && document.activeElement.getAttribute('aria-label') === `Restore ${id}`, bid),
    'focus returns to the Restore button');
  ok('restore with only Database ticked (dialog as specified, kept focus, live progress): the database is back, storage unchanged');

  // ---- schedule ----
  await page.click('a:has-text("Configure schedule")');
  await page.waitForSelector('#schedule-form');
  await page.check('#sch-enabled');
  await page.selectOption('#sch-frequency', 'daily');
  await page.fill('#sch-time', '03:30');
  await page.selectOption('#sch-type', 'FULL');
  await page.fill('#sch-retention', '5');
  await page.click('#schedule-form button[type=submit]');
  await page.waitForFunction(() => /Next backup: .* 03:30 UTC/.test(document.querySelector('#next-run').textContent));
  const sched = await (await fetch(`${URL_}platform/projects/${PID}/backup-schedule`, { headers: { Authorization: `Bearer ${tokens.owner}` } })).json();
  check(sched.enabled && sched.time === '03:30' && sched.retention === 5 && sched.next_run_at.endsWith('T03:30:00Z'), `stored: ${JSON.stringify(sched)}`);
  const day = new Date(sched.next_run_at).toLocaleDateString('en-US', { timeZone: 'UTC', month: 'long', day: 'numeric', year: 'numeric' });
  check((await page.textContent('#next-run')).includes(`${day} 03:30 UTC`), `next run shown is the server's ${sched.next_run_at}`);
  await shot(page, '11-schedule');
  ok(`the schedule is saved and the server's next run is shown (${sched.next_run_at})`);
  expectStatus(400, '/backup-schedule');
  await page.fill('#sch-time', '25:00');
  await page.click('#schedule-form button[type=submit]');
  await page.waitForSelector('#sch-time-error:not([hidden])');
  const terr = await page.textContent('#sch-time-error');
  check(/'time' must be "HH:MM"/.test(terr) && await page.getAttribute('#sch-time', 'aria-invalid') === 'true', `time error: ${terr}`);
  check(await page.evaluate(() => document.activeElement.id) === 'sch-time', 'focus on the refused field');
  await shot(page, '12-schedule-error');
  await page.fill('#sch-time', '03:30');
  await page.fill('#sch-retention', '0');
  await page.click('#schedule-form button[type=submit]');
  await page.waitForSelector('#sch-retention-error:not([hidden])');
  check(/'retention' must be a whole number/.test(await page.textContent('#sch-retention-error')) && await page.isHidden('#sch-time-error'),
    'retention error beside retention only');
  expectNothing();
  const still = await (await fetch(`${URL_}platform/projects/${PID}/backup-schedule`, { headers: { Authorization: `Bearer ${tokens.owner}` } })).json();
  check(still.time === '03:30' && still.retention === 5, 'refused schedules changed nothing');
  ok('a bad schedule shows the server\'s message beside the field it names, and changes nothing');

  // ---- backup storage: the local default, an S3 location saved from the form (PATCH stores the
  // settings only: no S3 server is asked, so none runs here), refused values, and back ----
  const projectDoc = async () => {
    const r = await fetch(`${URL_}platform/projects/${PID}`, { headers: { Authorization: `Bearer ${tokens.owner}` } });
    check(r.status === 200, `GET /platform/projects/${PID}: ${r.status}`);
    return r.json();
  };
  const storeBefore = (await projectDoc()).store;
  check(storeBefore === null, `the project starts on the default store: ${storeBefore}`);
  await page.click('nav.tabs a:has-text("Storage")');
  await page.waitForSelector('#store-form');
  check(page.url().endsWith(`#/projects/${PID}/storage`), `storage page: ${page.url()}`);
  const localText = await page.textContent('#store-current');
  check(await page.getAttribute('#store-current', 'data-kind') === 'default' && /Local directory \(the default\)/.test(localText) &&
    localText.includes(`/backups/${PID}`) && await page.textContent('#store-kind') === 'Local', `local default shown: ${localText}`);
  check(await page.inputValue('#store-store') === '' && await page.inputValue('#store-s3_endpoint') === '', 'the form starts empty (the default)');
  const note = await page.textContent('#store-note');
  check(/new repository/.test(note) && /already taken stay where they are/.test(note), `the note on future backups: ${note}`);

  // "Check this store", twice: the checks of the saved store (here the local default), and one result on the page
  for (let i = 0; i < 2; i++) {
    const answered = page.waitForResponse(r => r.request().method() === 'POST' && r.url().endsWith(`/platform/projects/${PID}/store/check`));
    await page.click('#store-check');
    check((await answered).status() === 200, 'POST store/check answers 200');
    await page.waitForSelector('#store-check-result');
    await page.waitForFunction(() => !document.querySelector('#store-check').disabled);
  }
  const checkLines = sel => page.$$eval(`${sel} li`, ls => ls.map(l => `${l.dataset.step} ${l.dataset.status}: ${l.textContent}`));
  check(await page.getAttribute('#store-check-result', 'data-ok') === 'true' &&
    /^the store is usable: write, read, list and delete all work/.test(await page.textContent('#store-check-result')),
    `the check result: ${await page.textContent('#store-check-result')}`);
  check(JSON.stringify(await checkLines('#store-check-result')) === JSON.stringify([
    'write ok: write ✓ ok: a 4 KiB probe object', 'read ok: read ✓ ok: the probe object read back intact',
    'list ok: list ✓ ok: the listing shows the probe object', 'delete ok: delete ✓ ok: the probe object is gone']),
  `the check lines: ${await checkLines('#store-check-result')}`);
  check(await page.$$eval('#storage .notice', ns => ns.filter(n => n.closest('#store-check-out')).length) === 1,
    'checking twice shows one result, not two');
  ok('Check this store (clicked twice) shows one result: the store is usable, and one ok line per check');
  const S3LOC = 's3://ui-backups/supabase/abc123';
  await page.fill('#store-store', S3LOC);
  await page.fill('#store-s3_endpoint', 'http://127.0.0.1:9000');
  await page.fill('#store-s3_region', 'eu-west-1');
  await page.fill('#store-s3_storage_class', 'STANDARD_IA');
  await page.click('#store-form button[type=submit]');
  await page.waitForSelector('#store-current[data-kind=s3]');
  const savedStore = (await projectDoc()).store;
  check(savedStore === `${S3LOC}?endpoint=http://127.0.0.1:9000&region=eu-west-1&storage_class=STANDARD_IA`, `the API returns the saved store: ${savedStore}`);
  await page.reload();
  await page.waitForSelector('#store-current[data-kind=s3]');
  const fact = async k => (await page.textContent(`#store-current [data-fact=${k}]`)).trim();
  check(await fact('location') === S3LOC && await fact('endpoint') === 'http://127.0.0.1:9000' && await fact('region') === 'eu-west-1' &&
    await fact('storage_class') === 'STANDARD_IA' && await page.textContent('#store-kind') === 'S3', `after a reload the panel shows them: ${await page.textContent('#store-current')}`);
  check(await page.inputValue('#store-store') === S3LOC && await page.inputValue('#store-s3_region') === 'eu-west-1' &&
    await page.inputValue('#store-s3_storage_class') === 'STANDARD_IA', 'and the form holds them');
  await shot(page, '20-storage');
  ok('the storage panel shows the local default; an s3:// store with endpoint, region and storage class saved from the form is what the API returns, and is shown after a reload');

  // "Check these settings": proposed settings are checked before they are saved (and are not saved)
  {
    const dead = await new Promise(resolve => { const srv = net.createServer(); srv.listen(0, '127.0.0.1', () => { const pt = srv.address().port; srv.close(() => resolve(pt)); }); });
    await page.fill('#store-s3_endpoint', `http://127.0.0.1:${dead}`);
    await page.click('#store-check-form');
    await page.waitForSelector('#store-check-form-result');
    const text = await page.textContent('#store-check-form-result');
    const lines = await checkLines('#store-check-form-result');
    check(await page.getAttribute('#store-check-form-result', 'data-ok') === 'false' &&
      /^the store is NOT usable for backups: cannot write 'supabase\/abc123\/check\/probe-[0-9a-f]+' in S3 bucket 'ui-backups': Failed to connect/.test(text) &&
      text.includes(`What to do: Check the S3 endpoint (http://127.0.0.1:${dead}) and that the server is reachable.`), `the check of proposed settings: ${text}`);
    check(lines.length === 4 && /^write failed: write ✕ error: cannot write /.test(lines[0]) && lines[1] === 'read skipped: read – skipped: needs the probe object' &&
      /^list failed: list ✕ error: cannot list 'supabase\/abc123\/check\/' in S3 bucket 'ui-backups': Failed to connect/.test(lines[2]) &&
      lines[3] === 'delete skipped: delete – skipped: needs the probe object', `the lines: ${lines.join(' | ')}`);
    check(!text.includes(env('AWS_SECRET_ACCESS_KEY')), 'the secret is not on the page');
    check((await projectDoc()).store === savedStore, 'checking proposed settings saved nothing');
    await shot(page, '23-storage-check-error');
    await page.fill('#store-s3_endpoint', 'http://127.0.0.1:9000');
    ok('Check these settings checks the form\'s settings before a save: error lines name the unreachable endpoint and what to do, and nothing is saved');
  }

  expectStatus(400, `/platform/projects/${PID}`);
  for (const [field, value, want] of [
    ['store', 's3://', /invalid S3 bucket name in 's3:\/\/'/],
    ['store', 'ftp://x', /'store' must be s3:\/\/BUCKET\[\/PREFIX\] or an absolute directory path, not 'ftp:\/\/x'/],
    ['s3_endpoint', 'ftp://h', /S3 endpoint 'ftp:\/\/h' is not a URL/],
  ]) {
    const was = await page.inputValue(`#store-${field}`);
    await page.fill(`#store-${field}`, value);
    await page.click('#store-form button[type=submit]');
    await page.waitForSelector(`#store-${field}-error:not([hidden])`);
    const msg = await page.textContent(`#store-${field}-error`);
    check(want.test(msg) && await page.getAttribute(`#store-${field}`, 'aria-invalid') === 'true', `${field} ${value}: ${msg}`);
    check(await page.evaluate(() => document.activeElement.id) === `store-${field}`, `focus on the refused field (${field})`);
    check(await page.$$eval('#store-form .field-error:not([hidden])', es => es.length) === 1, 'the message is beside that field only');
    if (value === 's3://') await shot(page, '21-storage-error');
    check((await projectDoc()).store === savedStore, `a refused ${field} ${value} changed nothing`);
    await page.fill(`#store-${field}`, was);
  }
  expectNothing();
  check(await fact('location') === S3LOC, 'the panel still shows the saved store');
  ok('a refused store (s3://, ftp://x) or endpoint shows the server\'s message beside its field, takes the focus there, and changes nothing');

  // settings of the location the form has no field for (set through the API) are shown and kept
  {
    const r = await fetch(`${URL_}platform/projects/${PID}`, {
      method: 'PATCH', headers: { Authorization: `Bearer ${tokens.owner}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ store: `${S3LOC}?sse=AES256&parallel=8`, s3_endpoint: 'http://127.0.0.1:9000', s3_storage_class: 'STANDARD_IA' }),
    });
    check(r.status === 200, `PATCH through the API: ${r.status}`);
    await page.reload();
    await page.waitForSelector('#store-current [data-fact=other]');
    check(await fact('other') === 'sse=AES256, parallel=8' && await page.inputValue('#store-store') === `${S3LOC}?sse=AES256&parallel=8`,
      `other settings shown: ${await fact('other')}`);
    await page.fill('#store-s3_region', 'eu-central-1');
    await page.click('#store-form button[type=submit]');
    await page.waitForFunction(() => /eu-central-1/.test(document.querySelector('#store-current [data-fact=region]').textContent));
    const kept = (await projectDoc()).store;
    check(kept === `${S3LOC}?endpoint=http://127.0.0.1:9000&region=eu-central-1&storage_class=STANDARD_IA&sse=AES256&parallel=8`,
      `a form save keeps the other settings: ${kept}`);
    ok('settings of the location without a field of their own (sse, parallel) are shown, and a save from the form keeps them');
  }

  // the same save twice: one toast says it, not two
  for (let i = 0; i < 2; i++) {
    const answered = page.waitForResponse(r => r.request().method() === 'PATCH' && r.url().endsWith(`/platform/projects/${PID}`));
    await page.click('#store-form button[type=submit]');
    check((await answered).status() === 200, 'the PATCH answers 200');
    await page.waitForFunction(() => !document.querySelector('#store-form button[type=submit]').disabled);
  }
  check(await page.$$eval('#toasts .toast', ts => ts.filter(t => /Storage settings saved/.test(t.textContent)).length) === 1 &&
    await page.$$eval('#toasts .toast', ts => ts.length) <= 3, `toasts after saving twice: ${await page.textContent('#toasts')}`);
  ok('saving twice shows one "saved" notice, not two (at most three notices at once)');

  // back to the default: the steps below back up and export from the local repository
  for (const k of ['store', 's3_endpoint', 's3_region', 's3_storage_class']) await page.fill(`#store-${k}`, '');
  await page.click('#store-form button[type=submit]');
  await page.waitForSelector('#store-current[data-kind=default]');
  check((await projectDoc()).store === storeBefore, 'the project is back on its previous store');
  ok('an empty form puts the project back on the default local store');

  // ---- export, delete ----
  await page.click('nav.tabs a:has-text("Backups")');
  await page.waitForSelector(`tr[data-id="${bid}"]`);
  await page.click('.toolbar button:has-text("Export")');
  await page.waitForSelector('dialog[open] #export-backup');
  await page.selectOption('#export-backup', bid);
  await page.click('dialog[open] button:has-text("Export")');
  await page.waitForSelector('.job[data-kind=export] a.download-link', { timeout: 120000 });
  check(/expires .* UTC/.test(await page.textContent('.job[data-kind=export]')), 'the export link shows its expiry');
  await shot(page, '13-export');
  ok('Export runs as a job and offers a signed link with its expiry');

  const safety = await page.getAttribute('tr[data-id]:not([data-id="' + bid + '"])', 'data-id');
  const listed = await (await fetch(`${URL_}platform/projects/${PID}/backups`, { headers: { Authorization: `Bearer ${tokens.owner}` } })).json();
  check(JSON.stringify(await page.$$eval('#backups tbody tr', rs => rs.map(r => r.dataset.id))) === JSON.stringify(listed.backups.map(b => b.id)) &&
    listed.backups[0].id === safety && Date.parse(listed.backups[0].created_at) >= Date.parse(listed.backups[1].created_at),
  'the list is newest first (the safety backup taken by the restore above the backup)');
  await page.click(`tr[data-id="${safety}"] button:has-text("Delete")`);
  await page.waitForSelector('dialog[open] button:has-text("Delete backup")');
  check((await page.textContent('dialog[open]')).includes(safety) && /cannot be undone/.test(await page.textContent('dialog[open]')), 'delete confirmation');
  await shot(page, '14-delete-confirm');
  await page.click('dialog[open] button:has-text("Cancel")');
  check(await page.isVisible(`tr[data-id="${safety}"]`), 'Cancel keeps the backup');
  await page.click(`tr[data-id="${safety}"] button:has-text("Delete")`);
  await page.click('dialog[open] button:has-text("Delete backup")');
  await page.waitForSelector(`tr[data-id="${safety}"]`, { state: 'detached', timeout: 120000 });
  check(/^Total: 1 backup/.test(await page.textContent('#totals')), 'one backup left');
  ok('Delete asks first (Cancel keeps it), then deletes');

  // ---- a backup that fails shows the service's message ----
  const storage = path.join(PROJECT_DIR, 'storage');
  fs.renameSync(storage, storage + '.away');
  try {
    await page.click('.toolbar button:has-text("Create backup")');
    await page.selectOption('#create-type', 'STORAGE');
    await page.click('dialog[open] button:has-text("Create")');
    await page.waitForSelector('tr[data-status=FAILED] .err-line', { timeout: 120000 });
  } finally {
    fs.renameSync(storage + '.away', storage);
  }
  const failedRow = await page.textContent('tr[data-status=FAILED]');
  check(/Failed/.test(failedRow) && /storage directory '.*' is missing/.test(failedRow) && !/Download/.test(failedRow), `failed row: ${failedRow}`);
  ok('a backup that fails is listed as Failed with the service\'s message, without Restore or Download');

  // ---- paging through hundreds of backups (list answers made by the test) ----
  const many = 260;
  const fake = i => ({ id: `backup_${PID}_2026${String(1000000 + i)}`, created_at: new Date(Date.now() - i * 3600e3).toISOString(),
    type: 'FULL', status: 'COMPLETED', size: 1e6 + i, duration_s: 2, kind: 'scheduled', checksums: {} });
  const asked = [];
  await page.route(`**/platform/projects/${PID}/backups?*`, r => {
    const u = new URL(r.request().url());
    const limit = Number(u.searchParams.get('limit')), offset = Number(u.searchParams.get('offset'));
    asked.push(offset);
    const backups = [];
    for (let i = offset; i < Math.min(many, offset + limit); i++) backups.push(fake(i));
    r.fulfill({ json: { backups, total_count: many, total_size: many * 1e6 } });
  });
  await page.reload();
  await page.waitForSelector('nav.pager');
  check(/Page 1 of 11/.test(await page.textContent('nav.pager')) && await page.$$eval('#backups tbody tr', r => r.length) === 25, 'page 1 of 11');
  check(/^Total: 260 backups \| 260 MB$/.test(await page.textContent('#totals')), `totals: ${await page.textContent('#totals')}`);
  await page.click('nav.pager button:has-text("Next")');
  await page.waitForFunction(() => /Page 2 of 11/.test(document.querySelector('nav.pager').textContent));
  check(await page.isVisible(`tr[data-id="${fake(25).id}"]`) && asked.includes(25) && page.url().endsWith('?page=2'), 'page 2 shows backups 26 to 50');
  await shot(page, '15-paging');
  await page.unroute(`**/platform/projects/${PID}/backups?*`);
  await page.goto(URL_ + `#/projects/${PID}`);
  await page.waitForSelector('#totals');
  ok('hundreds of backups are paged 25 at a time (Page 1 of 11, Next asks for offset 25)');

  // ---- the PITR window: its answers are made by the test here (a real WAL archive
  // is t0700's work); the real service answered enabled: false above ----
  let pitrBody = null;
  const jobId = await page.getAttribute('.job[data-kind=export]', 'data-job');
  const earliest = new Date(Date.now() - 6 * 3600e3), latest = new Date(Date.now() - 60e3);
  let pitrDoc = { enabled: true, earliest: earliest.toISOString(), latest: latest.toISOString(), lag_seconds: 12 };
  await page.route(`**/platform/projects/${PID}/pitr`, r => r.fulfill({ json: pitrDoc }));
  await page.route(`**/platform/projects/${PID}/pitr/restore`, r => {
    pitrBody = r.request().postDataJSON();
    r.fulfill({ status: 202, json: { job_id: jobId, status: 'QUEUED' } });
  });
  await page.reload();
  await page.waitForSelector('#pitr input[type=datetime-local]');
  const pitrText = await page.textContent('#pitr');
  check(/Point-in-time recovery/.test(pitrText) && /UTC/.test(pitrText) && /12 s/.test(pitrText), `pitr panel: ${pitrText}`);
  // a whole minute: the browser writes the value without ":00" (a valid normalized
  // datetime-local), which the page must still send as a full UTC time
  const target = new Date(latest.getTime() - 3600e3);
  target.setUTCSeconds(0, 0);
  const local = target.toISOString().slice(0, 19);
  await page.fill('#pitr-time', local.slice(0, 16));
  await shot(page, '16-pitr');
  await page.click('#pitr button:has-text("Restore to this time")');
  await page.waitForSelector('dialog[open] button:has-text("Restore Project")');
  await page.click('dialog[open] button:has-text("Restore Project")');
  await page.waitForSelector(`.job[data-kind=pitr]`);
  check(pitrBody && pitrBody.target_time === local + 'Z', `PITR request: ${JSON.stringify(pitrBody)}`);
  pitrDoc = { enabled: false, earliest: null, latest: null, lag_seconds: 0 };
  await page.reload();
  await page.waitForSelector('#totals');
  check(!(await page.isVisible('#pitr')), 'hidden when PITR is off');
  ok('the PITR panel shows the window and lag, sends the picked time as UTC (a whole minute, which the browser writes without seconds, too), and hides itself when PITR is off');

  // ---- sign out ----
  await page.click('#sign-out');
  await page.waitForSelector('#token');
  await page.unrouteAll();
  check(await page.evaluate(() => sessionStorage.getItem('supamanager.token')) === null, 'signed out');
  ok('sign-out forgets the token');

  // ---- import as the service role, with upload progress ----
  await signIn(tokens.service);
  await page.waitForSelector('.toolbar button:has-text("Import project")');
  await page.click('.toolbar button:has-text("Import project")');
  await page.waitForSelector('dialog[open] #import-file');
  await page.setInputFiles('#import-file', file);
  await page.fill('#import-name', 'Imported App');
  await page.fill('#import-id', 'imported1');
  await page.fill('#import-db', `postgresql://${PGUSER}@127.0.0.1:${PGPORT}/imported`);
  await page.fill('#import-storage', path.join(T, 'imported', 'storage'));
  await page.click('dialog[open] button:has-text("Import")');
  await page.waitForSelector('#import-result', { timeout: 180000 });
  check(/Imported/.test(await page.textContent('#import-result')), `import: ${await page.textContent('#import-result')}`);
  check(await page.evaluate(() => window.__bars['Upload progress']) === 100, 'the upload bar reached 100 %');
  check(psql('imported', 'SELECT count(*) FROM public.comments') === '5000', 'the imported database');
  await shot(page, '17-import');
  await page.click('dialog[open] a:has-text("Imported App")');
  await page.waitForSelector('#totals, .empty h3');
  ok('Import uploads with a progress bar and creates the project');

  // ---- a member of the project's organization may look, not change ----
  {
    const [ctx3, p3] = await signedIn(browser, tokens.member, 'member');
    check(/View only/.test(await p3.textContent('table.data')), 'the member sees the project as view only');
    await p3.click('a.row-link');
    await p3.waitForSelector('#totals');
    check(await p3.isDisabled('.toolbar button:has-text("Create backup")') && await p3.isDisabled('#backups button:has-text("Restore") >> nth=0') &&
      await p3.isDisabled('#backups button:has-text("Delete") >> nth=0'), 'the member cannot create, restore or delete');
    check(/may view this project's backups but not change them/.test(await p3.textContent('main')), 'and is told so');
    await shot(p3, '19-backups-member');
    await p3.click('nav.tabs a:has-text("Storage")');
    await p3.waitForSelector('#store-current');
    check(await p3.getAttribute('#store-current', 'data-kind') === 'default' && !(await p3.$('#store-form')) && !(await p3.$('#store-store')) && !(await p3.$('#store-check')) &&
      /Only the project's owner or an admin/.test(await p3.textContent('#store-readonly')), 'the member sees the storage settings without a form or a check button');
    await shot(p3, '22-storage-member');
    await ctx3.close();
    ok('a member of the organization sees the backups and the storage settings read-only (buttons disabled, no storage form, and says why)');
  }

  // ---- the page signs out when the token expires (the page's clock is driven) ----
  {
    const expiring = jwt({ role: 'authenticated', sub: 'user-owner', exp: Math.floor(Date.now() / 1000) + 600 });
    const [c, pg] = await signedIn(browser, expiring, 'expiring', { clock: true });
    await pg.clock.fastForward('10:30');
    await pg.waitForSelector('#token');
    check(/Your token expired at .* UTC: sign in with a new one/.test(await pg.textContent('#token-error')) &&
      await pg.evaluate(() => sessionStorage.getItem('supamanager.token')) === null, 'signed out at expiry, and says why');
    await c.close();
    ok('when the token expires the page signs out and says so');
  }

  // ---- a stranger sees no project ----
  const [ctx2, p2] = await signedIn(browser, tokens.stranger, 'stranger');
  check(/No projects/.test(await p2.textContent('.empty')) && !(await p2.isVisible('a.row-link')), 'stranger');
  await shot(p2, '18-projects-stranger');
  await p2.goto(URL_ + `#/projects/${PID}`);
  await p2.waitForSelector('.notice-error');
  check(/unknown project/.test(await p2.textContent('main')), 'a stranger cannot open the project');
  await ctx2.close();
  ok('a stranger\'s token sees no projects and cannot open one');

  check(!contrastFailures.length, `text below the WCAG contrast minimum:\n  ${contrastFailures.join('\n  ')}`);
  ok(`every text on the ${shots.length / 2} screens meets the WCAG AA contrast minimum`);
  check(!a11yFailures.length, `accessibility:\n  ${a11yFailures.join('\n  ')}`);
  ok('every form control has a label, and no screen is wider than a phone');

  // ---- the page used the public API only: its own files, /openapi.json, documented paths, signed links ----
  const spec = await (await fetch(URL_ + 'openapi.json')).json();
  const documented = Object.entries(spec.paths).flatMap(([p, ops]) => Object.keys(ops).map(m =>
    new RegExp(`^${m.toUpperCase()} ${p.replace(/\{[^}]+\}/g, '[^/]+')}$`)));
  const outside = [...requested].filter(r => !/^GET \/(ui\/[a-z]+\.[a-z]+)?$/.test(r) && !documented.some(re => re.test(r)));
  check(!outside.length, `requests outside the documented API: ${outside.join(', ')}`);
  ok(`the page made ${requested.size} kinds of request, all to its own files or to paths documented in /openapi.json`);

  // ---- the token never reached a log or a URL ----
  const log = fs.readFileSync(env('SERVICE_LOG'), 'utf8');
  for (const [name, t] of Object.entries(tokens)) check(!log.includes(t.split('.')[2]), `the ${name} token is in the service log`);
  check(!/sig=/.test(log), 'a signed link is in the service log');
  ok('no token and no signed link in the service log');
  await ctx.close();
  ok(`${shots.length} screenshots in ${SHOTS}`);
});
