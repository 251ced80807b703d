// Point-in-time recovery from the Backups page (tests/e2e/t0620-ui-pitr.sh): the
// window the service reports, a restore to TARGET (UTC, "YYYY-MM-DDTHH:MM:SS")
// started and followed in the browser. The shell checks the database after it.
import path from 'node:path';
import { env, URL_, check, ok, jwt, signedIn, run } from './lib.mjs';

const TARGET = env('TARGET'), SHOTS = env('SHOTS'), PID = 'pitr1';
const owner = jwt({ role: 'authenticated', sub: 'user-owner' });

await run(async browser => {
  // the service moves the WAL into the repository on its own: wait until the window reaches the target
  let w = null;
  for (let i = 0; i < 200; i++) {
    w = await (await fetch(`${URL_}platform/projects/${PID}/pitr`, { headers: { Authorization: `Bearer ${owner}` } })).json();
    if (w.enabled && w.latest && w.latest >= `${TARGET}Z`) break;
    await new Promise(r => setTimeout(r, 300));
  }
  check(w.enabled && w.earliest && w.earliest < `${TARGET}Z` && w.latest >= `${TARGET}Z`, `window: ${JSON.stringify(w)}`);

  const [ctx, page] = await signedIn(browser, owner, 'owner', { context: { timezoneId: 'Europe/Berlin' } });
  await page.click('a.row-link');
  await page.waitForSelector('#pitr-window');
  const shown = await page.textContent('#pitr-window');
  const hms = iso => `${iso.slice(11, 19)} UTC`; // the UI writes times as "Nov 25, 2026 21:14:07 UTC"
  check(shown.includes(hms(w.earliest)) && shown.includes(hms(w.latest)), `the window is the service's ${w.earliest} to ${w.latest}: ${shown}`);
  check(await page.getAttribute('#pitr-time', 'min') === w.earliest.slice(0, 19), 'the picker starts at the earliest time');
  ok(`the Backups page shows the recoverable window the service reports (${w.earliest} to ${w.latest})`);

  // the browser keeps a datetime-local value normalized: a whole minute without ":00"
  await page.fill('#pitr-time', TARGET.endsWith(':00') ? TARGET.slice(0, 16) : TARGET);
  check(/\(local\)/.test(await page.textContent('#pitr-help')), 'the picked time is also shown in local time');
  for (const [label, size] of [['phone', { width: 390, height: 844 }], ['desktop', { width: 1280, height: 860 }]]) {
    await page.setViewportSize(size);
    await page.screenshot({ path: path.join(SHOTS, `pitr-window-${label}.png`), fullPage: true });
  }
  await page.click('#pitr button:has-text("Restore to this time")');
  await page.waitForSelector('dialog[open] button:has-text("Restore Project")');
  const dlg = await page.textContent('dialog[open]');
  check(dlg.includes('This will overwrite current project data') && dlg.includes(hms(TARGET)), `confirmation: ${dlg}`);
  await page.click('dialog[open] button:has-text("Restore Project")');
  await page.waitForSelector('.job[data-kind=pitr]');
  await page.waitForSelector('.job[data-kind=pitr] button:has-text("Dismiss"):visible', { timeout: 300000 });
  const job = await page.textContent('.job[data-kind=pitr]');
  check(/100 %/.test(job) && /Completed\./.test(job), `the restore job: ${job}`);
  await page.screenshot({ path: path.join(SHOTS, 'pitr-restored-desktop.png'), fullPage: true });
  ok('the restore to the picked second runs as a job followed live on the page, to Completed');
  await ctx.close();
});
