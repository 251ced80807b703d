// SupaManager Backup web UI: sign-in, projects, the Backups page (create with
// live progress, restore, download, delete, export, import, a size/duration
// chart), the schedule form and the backup storage settings. Vanilla JS on
// the public API only (api.js).
// DOM is built with h() and textContent: no innerHTML, no inline styles.
import * as api from './api.js';
import { drawChart } from './chart.js';

const PAGE_SIZE = 25;
const CHART_POINTS = 60;

/* ---------- DOM ---------- */

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, String(v));
  }
  for (const c of kids.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function button(label, attrs = {}) {
  return h('button', Object.assign({ type: 'button', class: 'btn' }, attrs), label);
}

function setBusy(btn, busy, label) {
  if (busy) {
    btn.dataset.label = btn.textContent;
    btn.disabled = true;
    btn.replaceChildren(h('span', { class: 'spin', 'aria-hidden': 'true' }), label || btn.textContent);
  } else {
    btn.disabled = false;
    btn.replaceChildren(btn.dataset.label || label || '');
  }
}

const $ = (sel, root = document) => root.querySelector(sel);

/* ---------- formatting ---------- */

const TYPES = {
  FULL: 'Full',
  DATABASE: 'Database only',
  STORAGE: 'Storage only',
  INCREMENTAL: 'Incremental',
};
const TYPE_OPTIONS = [
  ['FULL', 'Full backup (Database + Storage + Config)'],
  ['DATABASE', 'Database only'],
  ['STORAGE', 'Storage only'],
  ['INCREMENTAL', 'Incremental (only what changed is read)'],
];

function fmtBytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  n = Number(n);
  if (n < 1000) return `${Math.round(n)} B`;
  const units = ['KB', 'MB', 'GB', 'TB', 'PB'];
  let u = -1;
  do { n /= 1000; u++; } while (n >= 1000 && u < units.length - 1);
  return `${n >= 100 ? Math.round(n) : n.toFixed(1)} ${units[u]}`;
}

function fmtSecs(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return '—';
  s = Number(s);
  if (s < 10) return `${Math.round(s * 10) / 10} s`;
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) {
    const m = Math.floor(s / 60), r = Math.round(s % 60);
    return r ? `${m} min ${r} s` : `${m} min`;
  }
  if (s < 86400 * 2) {
    const hr = Math.floor(s / 3600), m = Math.round((s % 3600) / 60);
    return m ? `${hr} h ${m} min` : `${hr} h`;
  }
  return `${Math.round(s / 86400)} days`;
}

/* datetime-local values, read and written as UTC: "YYYY-MM-DDTHH:MM[:SS]" */
function utcInputValue(iso) {
  const d = parseTime(iso);
  return d ? d.toISOString().slice(0, 19) : '';
}
function fromUtcInput(v) {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(v || '')) return null;
  return v.length === 16 ? `${v}:00Z` : `${v}Z`;
}

/* Does the API (its /openapi.json) offer this path? Asked once per page load. */
let apiPathsP = null;
async function apiOffers(pathTemplate) {
  if (!apiPathsP) apiPathsP = api.get('/openapi.json').then(d => new Set(Object.keys((d && d.paths) || {}))).catch(() => new Set());
  return (await apiPathsP).has(pathTemplate);
}

function parseTime(iso) {
  if (!iso) return null;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? null : d;
}

const utcFmt = new Intl.DateTimeFormat('en-US', {
  timeZone: 'UTC', month: 'short', day: 'numeric', year: 'numeric', hour: '2-digit', minute: '2-digit',
  hourCycle: 'h23',
});
const utcLong = new Intl.DateTimeFormat('en-US', {
  timeZone: 'UTC', month: 'long', day: 'numeric', year: 'numeric', hour: '2-digit', minute: '2-digit',
  hourCycle: 'h23',
});
const localFmt = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', year: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short',
});
const shortDate = new Intl.DateTimeFormat('en-US', { timeZone: 'UTC', month: 'short', day: 'numeric' });
const shortDateTime = new Intl.DateTimeFormat('en-US', {
  timeZone: 'UTC', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
});

/* "Mar 15, 2025 02:00 UTC"; long: "March 15, ..."; secs: "02:00:07 UTC" (PITR) */
function fmtUtc(iso, long, secs) {
  const d = parseTime(iso);
  if (!d) return '—';
  const o = {};
  for (const part of (long ? utcLong : utcFmt).formatToParts(d)) o[part.type] = part.value;
  const ss = secs ? `:${String(d.getUTCSeconds()).padStart(2, '0')}` : '';
  return `${o.month} ${o.day}, ${o.year} ${o.hour}:${o.minute}${ss} UTC`;
}
function fmtLocal(iso) {
  const d = parseTime(iso);
  return d ? `${localFmt.format(d)} (local)` : '';
}
function fmtFromNow(iso) {
  const d = parseTime(iso);
  if (!d) return '';
  const s = (d.getTime() - Date.now()) / 1000;
  if (Math.abs(s) < 45) return s >= 0 ? 'in less than a minute' : 'just now';
  return s > 0 ? `in ${fmtSecs(s)}` : `${fmtSecs(-s)} ago`;
}

function typeLabel(t) { return TYPES[t] || t || '—'; }

function statusBadge(status) {
  const map = {
    COMPLETED: ['badge-ok', '✓ Completed'],
    CREATING: ['badge-run', 'Creating'],
    QUEUED: ['badge-run', 'Queued'],
    RUNNING: ['badge-run', 'Running'],
    FAILED: ['badge-fail', '✕ Failed'],
    INTERRUPTED: ['badge-warn', 'Interrupted'],
  };
  const [cls, text] = map[status] || ['', status || 'unknown'];
  return h('span', { class: `badge ${cls}` }, text);
}

/* ---------- toasts ---------- */

/* A toast replaces the previous one of its area (the same action repeated says
 * its latest outcome once), and at most MAX_TOASTS are shown: the oldest go. */
const MAX_TOASTS = 3;
function toast(message, kind = 'ok', area = message) {
  const box = $('#toasts');
  for (const old of box.children) if (old.dataset.area === area) old.remove();
  const t = h('div', { class: `toast ${kind}`, 'data-area': area }, message);
  box.append(t);
  while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
  setTimeout(() => t.remove(), kind === 'err' ? 10000 : 6000);
}

/* ---------- dialogs: native modal <dialog>, focus kept inside ---------- */

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), ' +
  'select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

function focusables(root) {
  return Array.from(root.querySelectorAll(FOCUSABLE)).filter(e => e.getClientRects().length > 0);
}

/* Opens a modal dialog. title: text; returns {dlg, body, foot, close, setTitle}.
 * Escape and Cancel close it (unless opts.onCancel returns false); focus
 * returns to what had it before. */
const openDialogs = new Set();

function openDialog(title, opts = {}) {
  const opener = document.activeElement;
  const cleanups_ = [];
  const titleId = 'dlg-' + Math.random().toString(36).slice(2, 9);
  const heading = h('h2', { id: titleId }, title);
  const body = h('div', { class: 'dlg-body' });
  const foot = h('div', { class: 'dlg-foot' });
  const dlg = h('dialog', { 'aria-labelledby': titleId, class: opts.class },
    h('div', { class: 'dlg-head' }, heading), body, foot);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    openDialogs.delete(self);
    for (const fn of cleanups_.splice(0)) fn();
    if (dlg.open) dlg.close();
    dlg.remove();
    if (opts.onClose) opts.onClose();
    // the opener may have been redrawn meanwhile (a list refresh): its twin has the same label
    const label = opener && opener.getAttribute && opener.getAttribute('aria-label');
    const back = opener && document.contains(opener) ? opener
      : label ? document.querySelector(`button[aria-label="${CSS.escape(label)}"]`) : null;
    if (back && typeof back.focus === 'function') back.focus();
    else $('#main').focus();
  };
  dlg.addEventListener('cancel', e => {
    e.preventDefault();
    close();
  });
  dlg.addEventListener('keydown', e => {
    if (e.key !== 'Tab') return;
    const f = focusables(dlg);
    if (!f.length) { e.preventDefault(); return; }
    const first = f[0], last = f[f.length - 1];
    if (e.shiftKey && (document.activeElement === first || !dlg.contains(document.activeElement))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (document.activeElement === last || !dlg.contains(document.activeElement))) {
      e.preventDefault();
      first.focus();
    }
  });
  document.body.append(dlg);
  const self = {
    dlg, body, foot, close,
    /* fn runs when the dialog closes, however it is closed */
    onClose(fn) { cleanups_.push(fn); },
    setTitle(t) { heading.textContent = t; },
    show() {
      dlg.showModal();
      const want = dlg.querySelector('[data-autofocus]') || focusables(body)[0] || focusables(foot)[0];
      if (want) want.focus();
    },
  };
  openDialogs.add(self);
  return self;
}

/* A confirmation dialog; resolves true when confirmed. */
function confirmDialog(title, lines, confirmLabel, danger) {
  return new Promise(resolve => {
    let answer = false;
    const d = openDialog(title, { onClose: () => resolve(answer) });
    d.body.append(...lines.map(l => (l instanceof Node ? l : h('p', {}, l))));
    const cancel = button('Cancel', { onclick: () => d.close(), 'data-autofocus': true });
    const ok = button(confirmLabel, { class: danger ? 'btn btn-danger' : 'btn btn-primary', onclick: () => { answer = true; d.close(); } });
    d.foot.append(cancel, ok);
    d.show();
  });
}

/* ---------- live progress: Server-Sent Events, one stream per path ---------- */

class Stream {
  constructor(path) {
    this.path = path;
    this.fns = new Set();
    this.last = null;
    this.ended = false;
    this.ctrl = new AbortController();
    this.run();
  }
  emit(ev, data) {
    for (const fn of Array.from(this.fns)) {
      try { fn(ev, data); } catch (e) { reportError(e); }
    }
  }
  async run() {
    for (let attempt = 0; attempt < 60 && !this.ended && !this.ctrl.signal.aborted; attempt++) {
      try {
        await api.events(this.path, (ev, data) => {
          if (ev === 'done') this.ended = true;
          if (data && typeof data === 'object') this.last = data;
          this.emit(ev, data);
        }, this.ctrl.signal);
      } catch (e) {
        if (e && e.name === 'AbortError') return;
        if (e instanceof api.ApiError && e.status >= 400 && e.status < 500) {
          this.ended = true;
          this.emit('error', { error: e.code, message: e.message });
          return;
        }
      }
      // the stream dropped before "done" (service restart, network): look again
      if (!this.ended) await new Promise(r => setTimeout(r, 1000));
    }
  }
  stop() { this.ctrl.abort(); }
}
const streams = new Map();

/* Calls fn(event, data) for the stream at path; returns the unsubscribe. */
function follow(path, fn) {
  let s = streams.get(path);
  if (!s || (s.ended && !s.fns.size)) {
    s = new Stream(path);
    streams.set(path, s);
  }
  s.fns.add(fn);
  if (s.last) fn(s.ended ? 'done' : 'progress', s.last);
  return () => {
    s.fns.delete(fn);
    if (!s.fns.size) {
      s.stop();
      if (streams.get(path) === s) streams.delete(path);
    }
  };
}

function stopAllStreams() {
  for (const s of streams.values()) s.stop();
  streams.clear();
}

/* Jobs started from this tab (restore, delete, export, import), kept in
 * sessionStorage so their progress survives a reload. Job ids are no secret. */
const JOBS_KEY = 'supamanager.jobs';
function trackedJobs() {
  try { return JSON.parse(sessionStorage.getItem(JOBS_KEY) || '[]'); } catch { return []; }
}
function trackJob(j) {
  const all = trackedJobs().filter(x => x.id !== j.id);
  all.push(j);
  sessionStorage.setItem(JOBS_KEY, JSON.stringify(all.slice(-20)));
}
function untrackJob(id) {
  sessionStorage.setItem(JOBS_KEY, JSON.stringify(trackedJobs().filter(x => x.id !== id)));
}

/* A progress widget: {el, update(state)} where state is a job's or a
 * backup's {progress, phase, rate, eta_s, status}. */
function progressWidget(label, big) {
  const fill = h('div', { class: 'bar-fill' });
  const bar = h('div', {
    class: 'bar run', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0',
    'aria-label': label,
  }, fill);
  const pct = h('span', { class: 'pct' }, '0 %');
  const phase = h('span', { class: 'phase' }, 'starting');
  const extra = h('span', { class: 'extra' });
  const el = h('div', { class: 'progress' + (big ? ' progress-lg' : '') }, bar,
    h('div', { class: 'progress-meta' }, h('span', {}, pct, ' · ', phase), extra));
  return {
    el,
    update(st) {
      if (!st) return;
      let p = Number(st.progress) || 0;
      if (st.status === 'COMPLETED') p = 100;
      p = Math.max(0, Math.min(100, p));
      fill.style.width = p + '%';
      bar.setAttribute('aria-valuenow', String(Math.round(p)));
      bar.classList.toggle('run', st.status !== 'COMPLETED' && st.status !== 'FAILED');
      bar.classList.toggle('fail', st.status === 'FAILED' || st.status === 'INTERRUPTED');
      pct.textContent = `${Math.floor(p)} %`;
      phase.textContent = st.status === 'COMPLETED' ? 'completed'
        : st.status === 'FAILED' ? 'failed' : st.status === 'INTERRUPTED' ? 'interrupted'
          : st.status === 'QUEUED' ? 'waiting for a free worker' : (st.phase || 'starting');
      const bits = [];
      if (st.rate > 0 && st.status !== 'COMPLETED') bits.push(`${fmtBytes(st.rate)}/s`);
      if (st.eta_s !== null && st.eta_s !== undefined && st.status !== 'COMPLETED' && st.eta_s >= 0) {
        bits.push(`about ${fmtSecs(st.eta_s)} left`);
      }
      extra.textContent = bits.join(' · ');
    },
  };
}

/* ---------- session ---------- */

let claims = null;

function whoText(c) {
  if (!c) return '';
  if (c.role === 'service_role') return 'service role';
  return c.sub ? `${c.sub}` : c.role || 'signed in';
}

function showWho() {
  const who = $('#who');
  if (claims) {
    $('#who-name').textContent = whoText(claims);
    const exp = claims.exp ? new Date(claims.exp * 1000).toISOString() : null;
    $('#who-name').title = exp ? `token expires ${fmtUtc(exp)}` : '';
    who.hidden = false;
  } else {
    who.hidden = true;
  }
  watchExpiry();
}

/* Signs out when the token expires, instead of at the next refused call. */
let expiryTimer = null;
function watchExpiry() {
  clearTimeout(expiryTimer);
  expiryTimer = null;
  const ms = claims && claims.exp ? claims.exp * 1000 - Date.now() : NaN;
  if (!(ms <= 2147483647)) return; // beyond setTimeout's reach (24.8 days): a refused call does it
  const at = fmtUtc(new Date(claims.exp * 1000).toISOString(), false, true);
  expiryTimer = setTimeout(() => signOut(`Your token expired at ${at}: sign in with a new one.`), Math.max(0, ms));
}

function signOut(message) {
  api.session.clear();
  sessionStorage.removeItem(JOBS_KEY);
  claims = null;
  stopAllStreams();
  showWho();
  signinMessage = message || null;
  if (location.hash !== '#/signin') location.hash = '#/signin';
  else render();
}

let signinMessage = null;
api.onUnauthorized(err => {
  if (!api.session.token) return;
  signOut(`Your session ended: ${err.message}. Sign in again with a valid token.`);
});

/* What a refused token means, in words, with the server's own message. */
function explainAuth(err) {
  const m = err.message || '';
  if (/expired/i.test(m)) return ['This token has expired: ask for a new one.', m];
  if (/signature/i.test(m)) {
    return ['This token was not signed with this service\'s JWT secret: it is forged, or it belongs to another installation.', m];
  }
  if (/not valid before/i.test(m)) return ['This token is not valid yet (its nbf is in the future).', m];
  if (/malformed/i.test(m)) return ['This is not a valid JWT.', m];
  return ['The service refused this token.', m];
}

/* ---------- views ---------- */

let cleanups = [];
function onLeave(fn) { cleanups.push(fn); }

function setCrumbs(items) {
  const nav = $('#crumbs');
  nav.replaceChildren();
  items.forEach((it, i) => {
    if (i) nav.append(h('span', { class: 'sep', 'aria-hidden': 'true' }, '/'));
    const last = i === items.length - 1;
    nav.append(it.href && !last ? h('a', { href: it.href }, it.text) : h('span', { 'aria-current': last ? 'page' : null }, it.text));
  });
}

function errorBox(err, what) {
  return h('div', { class: 'notice notice-error', role: 'alert' },
    h('strong', {}, what ? `${what}: ` : ''), err.message || String(err));
}

function signinView(main) {
  document.title = 'Sign in · SupaManager Backup';
  setCrumbs([]);
  const msg = signinMessage;
  signinMessage = null;
  const ta = h('textarea', {
    id: 'token', name: 'token', rows: '5', autocomplete: 'off', spellcheck: 'false', required: true,
    'aria-describedby': 'token-help token-error', placeholder: 'eyJhbGciOiJIUzI1NiIs…',
  });
  const err = h('div', { id: 'token-error', class: 'stack', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  const form = h('form', { class: 'stacked', novalidate: true },
    h('div', { class: 'field' },
      h('label', { for: 'token' }, 'Access token (JWT)'),
      ta,
      h('div', { id: 'token-help', class: 'field-help' },
        'The service-role key of your Supabase setup, or a user\'s access token, signed with the service\'s JWT_SECRET. ' +
        'It is kept in this browser tab only (session storage), sent only in the Authorization header, and forgotten when the tab closes. ' +
        'With supamanager serve --demo, use the token it printed.')),
    err,
    h('div', { class: 'form-actions left' }, submit));
  if (msg) err.append(h('div', { class: 'notice notice-warn' }, msg));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    err.replaceChildren();
    ta.removeAttribute('aria-invalid');
    const token = ta.value.trim().replace(/^Bearer\s+/i, '');
    const fail = (...lines) => {
      ta.setAttribute('aria-invalid', 'true');
      err.append(h('div', { class: 'notice notice-error' }, h('strong', {}, lines[0]),
        lines[1] ? h('div', { class: 'small' }, `The service says: ${lines[1]}`) : null));
      ta.focus();
    };
    if (!token) return fail('Paste a token first.');
    if (token.split('.').length !== 3 || !api.jwtClaims(token)) {
      return fail('This is not a JWT: a JWT is three base64url parts separated by dots (header.payload.signature).');
    }
    setBusy(submit, true, 'Signing in…');
    try {
      await api.get('/platform/projects', { token });
      api.session.set(token);
      claims = api.jwtClaims(token);
      showWho();
      location.hash = '#/projects';
    } catch (e2) {
      if (e2 instanceof api.ApiError && e2.status === 401) fail(...explainAuth(e2));
      else fail('Cannot sign in.', e2.message);
    } finally {
      setBusy(submit, false);
    }
  });
  main.append(h('div', { class: 'signin card' }, h('div', { class: 'card-body' },
    h('h1', { tabindex: '-1' }, 'Sign in'),
    h('p', { class: 'muted' }, 'Backups and restores of your self-hosted Supabase projects.'),
    form)));
  ta.focus();
}

async function projectsView(main) {
  document.title = 'Projects · SupaManager Backup';
  setCrumbs([{ text: 'Projects' }]);
  const head = h('div', { class: 'page-head' },
    h('div', {}, h('h1', { tabindex: '-1' }, 'Projects'),
      h('div', { class: 'sub' }, 'The projects this token may see.')),
    h('div', { class: 'toolbar' }));
  const box = h('div', { class: 'card' }, h('p', { class: 'card-body loading' }, 'Loading projects…'));
  main.append(head, box);
  let projects, orgs = [];
  try {
    [projects, orgs] = await Promise.all([api.get('/platform/projects'), api.get('/platform/organizations').catch(() => [])]);
  } catch (e) {
    box.replaceChildren(h('div', { class: 'card-body' }, errorBox(e, 'Cannot list the projects')));
    return;
  }
  // an import names the server's database and directories: the operator's (service role) only
  const canImport = !!(claims && claims.role === 'service_role');
  if (canImport) {
    $('.toolbar', head).append(button('Import project', { class: 'btn', onclick: () => importDialog(orgs) }));
  }
  if (!projects.length) {
    const who = claims && claims.role !== 'service_role' && claims.sub ? ` (user ${claims.sub})` : '';
    box.replaceChildren(h('div', { class: 'empty' },
      h('h3', {}, 'No projects'),
      claims && claims.role === 'service_role'
        ? h('p', {}, 'No project is registered yet. Register one with supamanager project add, or import an export with Import project.')
        : h('p', {}, `This token${who} does not own a project and is not a member of an organization that has one. ` +
          'Ask a project\'s owner or an admin of its organization to add you.')));
    return;
  }
  const rows = projects.map(p => h('tr', {},
    h('td', { 'data-label': 'Name' }, h('a', { class: 'row-link', href: `#/projects/${encodeURIComponent(p.id)}` }, p.name || p.id)),
    h('td', { 'data-label': 'ID', class: 'id-cell' }, p.id),
    h('td', { 'data-label': 'Organization' }, p.org_id || h('span', { class: 'muted' }, '—')),
    h('td', { 'data-label': 'Access' }, p.can_manage ? h('span', { class: 'badge badge-ok' }, 'Manage')
      : h('span', { class: 'badge' }, 'View only')),
    h('td', { 'data-label': 'Created' }, fmtUtc(p.created_at))));
  box.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'data cards' },
    h('caption', { class: 'visually-hidden' }, 'Projects'),
    h('thead', {}, h('tr', {}, ['Name', 'ID', 'Organization', 'Access', 'Created'].map(t => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows))),
  h('div', { class: 'table-foot' }, `${projects.length} project${projects.length === 1 ? '' : 's'}`));
}

/* The project, with can_manage (from the list: what this caller may do). */
async function loadProject(id) {
  const list = await api.get('/platform/projects');
  const p = list.find(x => x.id === id);
  if (!p) throw new api.ApiError(404, { message: `unknown project '${id}' (or this token may not see it)` });
  return p;
}

const TABS = {
  backups: { tab: 'Backups', title: 'Backups' },
  schedule: { tab: 'Schedule', title: 'Automated backups' },
  storage: { tab: 'Storage', title: 'Backup storage' },
};

function projectHeader(main, p, tab) {
  const t = TABS[tab];
  setCrumbs([{ text: 'Projects', href: '#/projects' }, { text: p.name || p.id, href: `#/projects/${encodeURIComponent(p.id)}` },
    { text: t.tab }]);
  document.title = `${t.tab} · ${p.name || p.id} · SupaManager Backup`;
  const base = `#/projects/${encodeURIComponent(p.id)}`;
  const toolbar = h('div', { class: 'toolbar' });
  main.append(
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', { tabindex: '-1' }, t.title),
        h('div', { class: 'sub' }, 'Project: ', h('strong', {}, p.name || p.id), ` (${p.id})`)),
      toolbar),
    h('nav', { class: 'tabs', 'aria-label': 'Project sections' },
      Object.entries(TABS).map(([k, v]) => h('a', { href: k === 'backups' ? base : `${base}/${k}`, 'aria-current': tab === k ? 'page' : null }, v.tab))));
  if (!p.can_manage) {
    main.append(h('div', { class: 'notice' }, 'You may view this project\'s backups but not change them: ask its owner or an admin of its organization.'));
  }
  return toolbar;
}

function statsRow(sched, totals) {
  const st = (sched && sched.status) || {};
  const cards = [];
  cards.push(h('div', { class: 'stat' }, h('div', { class: 'label' }, 'Newest good backup (RPO)'),
    h('div', { class: 'value', 'data-stat': 'rpo' }, st.rpo_s !== null && st.rpo_s !== undefined ? `${fmtSecs(st.rpo_s)} old` : 'none yet'),
    h('div', { class: 'hint' }, st.last_success_at ? fmtUtc(st.last_success_at) : 'Create a backup to start')));
  cards.push(h('div', { class: 'stat' }, h('div', { class: 'label' }, 'Restore time (RTO)'),
    h('div', { class: 'value', 'data-stat': 'rto' }, st.rto_s !== null && st.rto_s !== undefined ? fmtSecs(st.rto_s) : 'not measured'),
    h('div', { class: 'hint' }, st.last_restore_test_at ? `restore test ${fmtUtc(st.last_restore_test_at)}` : 'weekly restore tests measure it')));
  let schedText = 'Off', schedHint = 'no automated backups';
  if (sched && sched.enabled) {
    schedText = sched.frequency === 'hourly' ? `Hourly at :${(sched.time || '00:00').slice(3)}`
      : `${sched.frequency === 'weekly' ? 'Sundays' : 'Daily'} ${sched.time} UTC`;
    schedHint = sched.next_run_at ? `next ${fmtFromNow(sched.next_run_at)}` : '';
  }
  cards.push(h('div', { class: 'stat' }, h('div', { class: 'label' }, 'Schedule'),
    h('div', { class: 'value', 'data-stat': 'schedule' }, schedText), h('div', { class: 'hint' }, schedHint)));
  const overdue = !!st.overdue;
  cards.push(h('div', { class: 'stat' }, h('div', { class: 'label' }, 'Status'),
    h('div', { class: 'value', 'data-stat': 'overdue' }, overdue ? h('span', { class: 'badge badge-fail' }, 'Overdue')
      : sched && sched.enabled ? h('span', { class: 'badge badge-ok' }, 'On schedule') : h('span', { class: 'badge' }, 'Manual')),
    h('div', { class: 'hint' }, overdue && st.overdue_since ? `since ${fmtUtc(st.overdue_since)}`
      : totals ? `${totals.count} backup${totals.count === 1 ? '' : 's'}, ${fmtBytes(totals.size)}` : '')));
  return h('div', { class: 'stats' }, cards);
}

/* ----- the Backups page ----- */

async function backupsView(main, params, query) {
  const pid = params.id;
  let page = Math.max(1, parseInt(query.get('page') || '1', 10) || 1);
  let p;
  try {
    p = await loadProject(pid);
  } catch (e) {
    setCrumbs([{ text: 'Projects', href: '#/projects' }, { text: pid }]);
    main.append(errorBox(e, 'Cannot open the project'), h('p', {}, h('a', { href: '#/projects' }, 'Back to the projects')));
    return;
  }
  const toolbar = projectHeader(main, p, 'backups');
  const base = `/platform/projects/${encodeURIComponent(pid)}`;
  const createBtn = button('Create backup', { class: 'btn btn-primary', disabled: !p.can_manage, onclick: () => createDialog() });
  toolbar.append(createBtn,
    h('a', { class: 'btn', href: `#/projects/${encodeURIComponent(pid)}/schedule` }, 'Configure schedule'),
    button('Export', { disabled: !p.can_manage, onclick: () => exportDialog() }));

  const statsBox = h('div', {});
  const jobsBox = h('section', { class: 'card jobs', 'aria-label': 'Operations in progress', hidden: true });
  const chartBox = h('div', { class: 'card-body' });
  const chartCard = h('section', { class: 'card', 'aria-labelledby': 'chart-h' },
    h('div', { class: 'card-head' }, h('h2', { id: 'chart-h' }, 'Size and duration'),
      h('div', { class: 'legend', 'aria-hidden': 'true' }, h('span', {}, h('span', { class: 'sw sw-size' }), 'size'),
        h('span', {}, h('span', { class: 'sw sw-dur' }), 'duration'))),
    chartBox);
  const listBody = h('div', {}, h('p', { class: 'card-body loading' }, 'Loading backups…'));
  const countText = h('span', { class: 'muted small' });
  const refreshBtn = button('Refresh', { class: 'btn btn-ghost btn-sm', onclick: () => refresh() });
  const listCard = h('section', { class: 'card', 'aria-labelledby': 'list-h' },
    h('div', { class: 'card-head' }, h('div', { class: 'inline' }, h('h2', { id: 'list-h' }, 'Backups'), countText), refreshBtn),
    listBody);
  const pitrBox = h('section', { class: 'card', id: 'pitr', 'aria-labelledby': 'pitr-h', hidden: true });
  main.append(statsBox, jobsBox, listCard, pitrBox, chartCard);

  let alive = true;
  const subs = new Map(); // backup id -> unsubscribe
  const widgets = new Map(); // backup id -> progress widget
  let chartPoints = [];
  onLeave(() => {
    alive = false;
    for (const un of subs.values()) un();
    subs.clear();
  });
  const onResize = debounce(() => drawChart(chartBox, chartPoints, chartFmt), 150);
  window.addEventListener('resize', onResize);
  onLeave(() => window.removeEventListener('resize', onResize));

  let refreshing = null, again = false, shownKey = null;
  // backups the scheduler or someone else starts show up without a reload
  const poll = setInterval(() => { if (document.visibilityState === 'visible') refresh(); }, 30000);
  onLeave(() => clearInterval(poll));
  async function refresh() {
    if (refreshing) {
      again = true; // something changed while a refresh was under way: look once more after it
      return refreshing;
    }
    refreshing = (async () => {
      try {
        const [list, recent, sched] = await Promise.all([
          api.get(`${base}/backups?limit=${PAGE_SIZE}&offset=${(page - 1) * PAGE_SIZE}`),
          api.get(`${base}/backups?limit=${CHART_POINTS}&offset=0`),
          api.get(`${base}/backup-schedule`).catch(() => null),
        ]);
        if (!alive) return;
        if (!list.backups.length && page > 1 && list.total_count > 0) {
          page = Math.ceil(list.total_count / PAGE_SIZE);
          again = true;
          return;
        }
        statsBox.replaceChildren(statsRow(sched, { count: list.total_count, size: list.total_size }));
        // redraw only what changed: a redrawn table would take the keyboard focus away
        const key = JSON.stringify([page, list.total_count, list.total_size,
          list.backups.map(b => [b.id, b.status, b.size, b.error])]);
        if (key !== shownKey) {
          shownKey = key;
          renderList(list);
          chartPoints = recent.backups.filter(b => b.status === 'COMPLETED').reverse()
            .map(b => ({ id: b.id, at: parseTime(b.created_at), size: b.size, duration: b.duration_s }));
          drawChart(chartBox, chartPoints, chartFmt);
        }
        loadPitr();
      } catch (e) {
        shownKey = null;
        if (alive) listBody.replaceChildren(h('div', { class: 'card-body' }, errorBox(e, 'Cannot list the backups')));
      }
    })();
    try { await refreshing; } finally { refreshing = null; }
    if (again && alive) {
      again = false;
      await refresh();
    }
  }

  function renderList(list) {
    const total = list.total_count;
    countText.textContent = total ? `${total} total` : '';
    // follow the running ones; stop following the others
    const running = new Set(list.backups.filter(b => b.status === 'CREATING').map(b => b.id));
    for (const [id, un] of subs) if (!running.has(id)) { un(); subs.delete(id); }
    widgets.clear();
    if (!total) {
      listBody.replaceChildren(h('div', { class: 'empty' },
        h('h3', {}, 'No backups yet'),
        h('p', {}, p.can_manage
          ? 'Create the first backup of this project now with Create backup, or configure a schedule so backups are taken automatically.'
          : 'This project has no backups yet. Its owner can create one, or configure a schedule.'),
        p.can_manage ? h('div', { class: 'toolbar center' },
          button('Create backup', { class: 'btn btn-primary', onclick: () => createDialog() }),
          h('a', { class: 'btn', href: `#/projects/${encodeURIComponent(pid)}/schedule` }, 'Configure schedule')) : null));
      return;
    }
    const rows = list.backups.map(b => backupRow(b));
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    const prev = button('Previous', { class: 'btn btn-sm', disabled: page <= 1, onclick: () => goPage(page - 1) });
    const next = button('Next', { class: 'btn btn-sm', disabled: page >= pages, onclick: () => goPage(page + 1) });
    listBody.replaceChildren(
      h('div', { class: 'table-wrap' }, h('table', { class: 'data cards', id: 'backups' },
        h('caption', { class: 'visually-hidden' }, 'Backups, newest first'),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Backup'), h('th', { scope: 'col' }, 'Created'), h('th', { scope: 'col' }, 'Type'),
          h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col', class: 'num' }, 'Size'),
          h('th', { scope: 'col', class: 'num' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
        h('tbody', {}, rows))),
      h('div', { class: 'table-foot' },
        h('span', { id: 'totals' }, `Total: ${total} backup${total === 1 ? '' : 's'} | ${fmtBytes(list.total_size)}`),
        pages > 1 ? h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev,
          h('span', { 'aria-live': 'polite' }, `Page ${page} of ${pages}`), next) : null));
  }

  function goPage(n) {
    page = n;
    history.replaceState(null, '', `#/projects/${encodeURIComponent(pid)}${n > 1 ? `?page=${n}` : ''}`);
    refresh().then(() => { const t = $('#backups', listBody); if (t) $('#list-h').scrollIntoView({ block: 'nearest' }); });
  }

  function backupRow(b) {
    const id = b.id;
    const statusCell = h('td', { 'data-label': 'Status' }, statusBadge(b.status));
    if (b.status === 'CREATING') {
      const w = progressWidget(`Progress of ${id}`);
      w.update(Object.assign({ status: 'RUNNING' }, b));
      statusCell.append(w.el);
      widgets.set(id, w);
      if (!subs.has(id)) {
        subs.set(id, follow(`${base}/backups/${encodeURIComponent(id)}/events`, (ev, data) => {
          if (!alive) return;
          const wid = widgets.get(id);
          if (ev === 'done') {
            if (data && data.status === 'FAILED') toast(`Backup ${id} failed: ${data.error || 'see the list'}`, 'err', `backup-${id}`);
            else if (data && data.status === 'COMPLETED') toast(`Backup ${id} completed`, 'ok', `backup-${id}`);
            if (wid) wid.update(Object.assign({}, data, { status: data && data.status === 'COMPLETED' ? 'COMPLETED' : data && data.status }));
            const un = subs.get(id);
            subs.delete(id);
            if (un) setTimeout(un, 0);
            refresh();
          } else if (ev === 'error') {
            refresh();
          } else if (wid) {
            wid.update(Object.assign({}, data, { status: data.status === 'QUEUED' ? 'QUEUED' : 'RUNNING' }));
          }
        }));
      }
    }
    if (b.error && b.status !== 'CREATING') statusCell.append(h('div', { class: 'err-line' }, b.error));
    const actions = h('td', { class: 'actions' });
    const done = b.status === 'COMPLETED';
    if (done) {
      actions.append(
        button('Restore', { class: 'btn btn-sm', disabled: !p.can_manage, 'aria-label': `Restore ${id}`, onclick: () => restoreDialog(b) }),
        button('Download', { class: 'btn btn-sm', disabled: !p.can_manage, 'aria-label': `Download ${id}`, onclick: e => download(b, e.currentTarget) }));
    }
    if (b.status !== 'CREATING') {
      actions.append(button('Delete', { class: 'btn btn-sm', disabled: !p.can_manage, 'aria-label': `Delete ${id}`, onclick: () => deleteDialog(b) }));
    }
    return h('tr', { 'data-id': id, 'data-status': b.status },
      h('td', { 'data-label': 'Backup' }, h('div', { class: 'id-cell' }, id),
        b.kind && b.kind !== 'manual' ? h('span', { class: 'badge badge-kind' }, b.kind) : null),
      h('td', { 'data-label': 'Created' }, h('div', {}, fmtUtc(b.created_at)), h('div', { class: 'sub-line' }, fmtLocal(b.created_at))),
      h('td', { 'data-label': 'Type' }, typeLabel(b.type)),
      statusCell,
      h('td', { 'data-label': 'Size', class: 'num' }, done ? fmtBytes(b.size) : '—'),
      actions);
  }

  /* --- create --- */
  function createDialog() {
    const d = openDialog('Create backup');
    const sel = h('select', { id: 'create-type', name: 'type' }, TYPE_OPTIONS.map(([v, t]) => h('option', { value: v }, t)));
    const comp = h('input', { type: 'checkbox', id: 'create-comp', checked: true });
    const enc = h('input', { type: 'checkbox', id: 'create-enc' });
    const err = h('div', { role: 'alert' });
    d.body.append(h('form', { class: 'stacked', id: 'create-form' },
      h('div', { class: 'field' }, h('label', { for: 'create-type' }, 'Backup type'), sel,
        h('div', { class: 'field-help' }, 'Every backup is a complete snapshot; data already stored is never stored twice.')),
      h('details', { class: 'advanced' }, h('summary', {}, 'Downloadable archive'),
        h('label', { class: 'check', for: 'create-comp' }, comp, 'Compress it (gzip)'),
        h('label', { class: 'check', for: 'create-enc' }, enc, 'Encrypt it (OpenPGP with the service\'s ENCRYPTION_SECRET)'),
        h('div', { class: 'field-help' }, 'The repository always compresses and encrypts; these choose how the archive you download is made.')),
      err));
    const create = button('Create', { class: 'btn btn-primary' });
    d.foot.append(button('Cancel', { onclick: () => d.close() }), create);
    const submit = async () => {
      err.replaceChildren();
      setBusy(create, true, 'Creating…');
      try {
        const r = await api.post(`${base}/backups`, { type: sel.value, compression: comp.checked, encryption: enc.checked });
        d.close();
        toast(`Backup ${r.backup_id} started${r.estimated_time ? ` (estimated time: ${r.estimated_time})` : ''}`, 'ok', `backup-${r.backup_id}`);
        page = 1;
        history.replaceState(null, '', `#/projects/${encodeURIComponent(pid)}`);
        refresh();
      } catch (e) {
        err.replaceChildren(errorBox(e, 'The backup was not started'));
        setBusy(create, false);
      }
    };
    create.addEventListener('click', submit);
    $('#create-form', d.body).addEventListener('submit', e => { e.preventDefault(); submit(); });
    d.show();
  }

  /* --- restore: the dialog of the specification, then live progress --- */
  function restoreDialog(b) {
    const parts = Object.keys(b.checksums || {});
    const has = { database: parts.includes('database'), storage: parts.includes('storage'), config: parts.includes('config') };
    if (!parts.length) { has.database = b.type !== 'STORAGE'; has.storage = b.type !== 'DATABASE'; has.config = b.type !== 'DATABASE' && b.type !== 'STORAGE'; }
    let jobId = null;
    const d = openDialog('Restore backup');
    const box = (key, label) => {
      const input = h('input', { type: 'checkbox', id: `restore-${key}`, name: key, checked: has[key], disabled: !has[key] });
      return h('label', { class: 'check' + (has[key] ? '' : ' disabled'), for: `restore-${key}` }, input, label,
        has[key] ? null : h('span', { class: 'muted small' }, '(not in this backup)'));
    };
    const err = h('div', { role: 'alert' });
    const form = h('div', {},
      h('dl', { class: 'facts' },
        h('dt', {}, 'Backup:'), h('dd', { class: 'mono' }, b.id),
        h('dt', {}, 'Created:'), h('dd', {}, fmtUtc(b.created_at, true)),
        h('dt', {}, 'Size:'), h('dd', {}, fmtBytes(b.size))),
      h('fieldset', {}, h('legend', {}, 'Restore Options:'),
        box('database', 'Database'), box('storage', 'Storage Files'), box('config', 'Configuration')),
      h('div', { class: 'notice notice-warn', id: 'restore-warning' }, h('strong', {}, '⚠ Warning: '),
        'This will overwrite current project data.',
        h('div', { class: 'small' }, 'A safety backup of the current state is taken first; the project is paused while the restored data is swapped in.')),
      err);
    d.body.append(form);
    const cancel = button('Cancel', { onclick: () => d.close() });
    const go = button('Restore Project', { class: 'btn btn-danger' });
    d.foot.append(cancel, go);
    go.addEventListener('click', async () => {
      const want = {
        database: $('#restore-database', d.body).checked,
        storage: $('#restore-storage', d.body).checked,
        config: $('#restore-config', d.body).checked,
      };
      err.replaceChildren();
      if (!want.database && !want.storage && !want.config) {
        err.append(h('div', { class: 'notice notice-error' }, 'Tick at least one part to restore.'));
        return;
      }
      setBusy(go, true, 'Starting…');
      try {
        const r = await api.post(`${base}/backups/${encodeURIComponent(b.id)}/restore`, want);
        jobId = r.job_id || r.id;
        const what = ['database', 'storage', 'config'].filter(k => want[k]).map(k => ({ database: 'database', storage: 'storage files', config: 'configuration' })[k]);
        trackJob({ id: jobId, kind: 'restore', project: pid, backup: b.id, label: `Restore of ${b.id} (${what.join(', ')})` });
        showRestoreProgress(d, jobId, b, what);
        renderJobs();
      } catch (e) {
        err.replaceChildren(errorBox(e, 'The restore was not started'));
        setBusy(go, false);
      }
    });
    d.show();
    $('#restore-database', d.body).disabled ? cancel.focus() : $('#restore-database', d.body).focus();
  }

  function showRestoreProgress(d, jobId, b, what) {
    d.setTitle(`Restoring ${b.id}`);
    const w = progressWidget('Restore progress', true);
    const steps = ['Safety backup', 'Restore beside the live data', 'Pause', 'Swap', 'Resume', 'Done'];
    const stepEls = steps.map(s => h('li', {}, s));
    const result = h('div', { role: 'status', 'aria-live': 'polite' });
    const lead = h('p', {}, `Restoring ${what.join(', ')} of project ${p.name || pid} from ${b.id}.`);
    d.body.replaceChildren(
      lead,
      w.el, h('ol', { class: 'steps', 'aria-label': 'Steps' }, stepEls), result);
    const close = button('Close', { class: 'btn', 'data-autofocus': true, onclick: () => d.close() });
    d.foot.replaceChildren(h('span', { class: 'muted small', id: 'restore-bg' }, 'Closing this keeps the restore running; its progress stays on the page.'), close);
    close.focus();
    // the phases of a restore job; the safety backup reports its own (dump, database, ...)
    let reached = 0;
    const stepOf = phase => {
      phase = phase || '';
      let i = 0;
      if (/^(stage|restore|verify)/.test(phase)) i = 1;
      else if (/^pause/.test(phase)) i = 2;
      else if (/^swap/.test(phase)) i = 3;
      else if (/^resume/.test(phase)) i = 4;
      reached = Math.max(reached, i);
      return reached;
    };
    const un = follow(`/platform/jobs/${encodeURIComponent(jobId)}/events`, (ev, st) => {
      if (ev === 'error') {
        result.replaceChildren(h('div', { class: 'notice notice-error' }, st.message));
        return;
      }
      w.update(st);
      const now = st.status === 'COMPLETED' ? 5 : stepOf(st.phase);
      stepEls.forEach((li, i) => { li.className = i < now || st.status === 'COMPLETED' ? 'done' : i === now ? 'now' : ''; });
      if (ev === 'done') {
        $('#restore-bg', d.foot) && $('#restore-bg', d.foot).remove();
        if (st.status === 'COMPLETED') {
          d.setTitle('Restore completed');
          lead.textContent = `Restored ${what.join(', ')} of project ${p.name || pid} from ${b.id}.`;
          result.replaceChildren(h('div', { class: 'notice notice-ok', id: 'restore-result' },
            h('strong', {}, '✓ Restore completed. '),
            `The project's ${what.join(', ')} now hold${what.length === 1 && what[0] !== 'storage files' ? 's' : ''} the data of ${b.id} (${fmtUtc(b.created_at)}). ` +
            'A safety backup of the state before the restore is listed with the backups; supamanager restore --undo puts it back.'));
        } else {
          d.setTitle('Restore failed');
          result.replaceChildren(h('div', { class: 'notice notice-error', id: 'restore-result' },
            h('strong', {}, `✕ The restore ${st.status === 'INTERRUPTED' ? 'was interrupted' : 'failed'}: `), st.error || 'no reason given',
            st.hint ? h('div', { class: 'small' }, st.hint) : null));
        }
        refresh();
      }
    });
    d.onClose(un);
  }

  /* --- download: a signed link, then the browser downloads it --- */
  async function download(b, btn) {
    setBusy(btn, true, 'Preparing…');
    try {
      const link = await api.get(`${base}/backups/${encodeURIComponent(b.id)}/download`);
      setBusy(btn, false);
      startDownload(link.download_url);
      linkDialog(`Download ${b.id}`, link, 'The download has started.');
    } catch (e) {
      setBusy(btn, false);
      toast(`Cannot download ${b.id}: ${e.message}`, 'err', `download-${b.id}`);
    }
  }

  /* --- delete --- */
  async function deleteDialog(b) {
    const yes = await confirmDialog('Delete backup', [
      h('p', {}, 'Delete ', h('strong', { class: 'mono' }, b.id), ` (${typeLabel(b.type)}, ${fmtUtc(b.created_at)})?`),
      h('div', { class: 'notice notice-warn' }, 'Its data is removed from the repository and the space is freed. This cannot be undone; other backups are not affected.'),
    ], 'Delete backup', true);
    if (!yes) return;
    try {
      const r = await api.del(`${base}/backups/${encodeURIComponent(b.id)}`);
      trackJob({ id: r.job_id || r.id, kind: 'delete', project: pid, backup: b.id, label: `Deletion of ${b.id}` });
      renderJobs();
    } catch (e) {
      toast(`Cannot delete ${b.id}: ${e.message}`, 'err', `delete-${b.id}`);
    }
  }

  /* --- export: a job, then a signed link --- */
  async function exportDialog() {
    const d = openDialog('Export project');
    let done = [];
    try {
      const r = await api.get(`${base}/backups?limit=200`);
      done = r.backups.filter(b => b.status === 'COMPLETED');
    } catch { /* shown below */ }
    if (!done.length) {
      d.body.append(h('p', {}, 'There is no completed backup to export yet: create a Full backup first.'));
      d.foot.append(button('Close', { onclick: () => d.close() }));
      d.show();
      return;
    }
    const sel = h('select', { id: 'export-backup' }, done.map(b => h('option', { value: b.id },
      `${b.id} · ${typeLabel(b.type)} · ${fmtBytes(b.size)}`)));
    const full = done.find(b => b.type === 'FULL');
    if (full) sel.value = full.id;
    const comp = h('select', { id: 'export-comp' }, h('option', { value: 'gzip' }, 'gzip (.tar.gz)'),
      h('option', { value: 'zstd' }, 'zstd (.tar.zst)'), h('option', { value: 'none' }, 'none (.tar)'));
    const enc = h('input', { type: 'checkbox', id: 'export-enc' });
    const err = h('div', { role: 'alert' });
    d.body.append(h('form', { class: 'stacked' },
      h('p', { class: 'muted' }, 'One archive with database.dump, globals.sql, storage/, config/ and metadata.json, for another SupaManager (Import project) or for restoring by hand with tar and pg_restore.'),
      h('div', { class: 'field' }, h('label', { for: 'export-backup' }, 'Backup'), sel),
      h('div', { class: 'field' }, h('label', { for: 'export-comp' }, 'Compression'), comp),
      h('label', { class: 'check', for: 'export-enc' }, enc, 'Encrypt (OpenPGP, passphrase: the service\'s ENCRYPTION_SECRET)'),
      err));
    const go = button('Export', { class: 'btn btn-primary' });
    d.foot.append(button('Cancel', { onclick: () => d.close() }), go);
    go.addEventListener('click', async () => {
      err.replaceChildren();
      setBusy(go, true, 'Starting…');
      try {
        const r = await api.post(`${base}/export`, { backup_id: sel.value, compression: comp.value, encryption: enc.checked });
        const jobId = r.job_id || r.id;
        trackJob({ id: jobId, kind: 'export', project: pid, backup: sel.value, label: `Export of ${sel.value}` });
        d.close();
        renderJobs();
      } catch (e) {
        err.replaceChildren(errorBox(e, 'The export was not started'));
        setBusy(go, false);
      }
    });
    d.show();
  }

  /* --- point-in-time recovery: shown only when the API offers it and it is on --- */
  // how far the WAL archive trails the database, in seconds (null: unknown)
  const pitrLag = w => {
    const v = w.lag_seconds ?? w.archive_lag_s;
    return typeof v === 'number' && v >= 0 ? v : null;
  };
  let pitrShown = null; // the window last drawn (JSON), so a refresh does not reset the picker
  async function loadPitr() {
    let w = null;
    if (await apiOffers('/platform/projects/{id}/pitr')) {
      try { w = await api.get(`${base}/pitr`); } catch { w = null; } // 404: not for this project
    }
    if (!alive) return;
    if (!w || !w.enabled) {
      pitrBox.hidden = true;
      pitrShown = null;
      return;
    }
    const key = JSON.stringify([w.earliest, w.latest, pitrLag(w)]);
    if (key !== pitrShown) {
      pitrShown = key;
      renderPitr(w);
    }
    pitrBox.hidden = false;
  }

  function renderPitr(w) {
    const input = h('input', {
      type: 'datetime-local', id: 'pitr-time', name: 'target_time', step: '1',
      min: w.earliest ? utcInputValue(w.earliest) : null, max: w.latest ? utcInputValue(w.latest) : null,
      'aria-describedby': 'pitr-help pitr-error', disabled: !p.can_manage || !w.earliest,
    });
    const help = h('div', { class: 'field-help', id: 'pitr-help' }, 'Time in UTC, to the second.');
    const err = h('div', { id: 'pitr-error', class: 'field-error', role: 'alert', hidden: true });
    const go = button('Restore to this time', { class: 'btn btn-danger', disabled: !p.can_manage || !w.earliest });
    input.addEventListener('input', () => {
      const d = parseTime(fromUtcInput(input.value));
      help.textContent = d ? `Time in UTC, to the second: ${fmtLocal(d.toISOString())}.` : 'Time in UTC, to the second.';
    });
    const fail = msg => {
      err.textContent = msg;
      err.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    };
    go.addEventListener('click', async () => {
      err.hidden = true;
      input.removeAttribute('aria-invalid');
      const target = fromUtcInput(input.value);
      const d = parseTime(target);
      if (!d) return fail('Pick the date and time (UTC) to restore to.');
      if ((w.earliest && d < parseTime(w.earliest)) || (w.latest && d > parseTime(w.latest))) {
        return fail(`Pick a time inside the recoverable window: ${fmtUtc(w.earliest, false, true)} to ${fmtUtc(w.latest, false, true)}.`);
      }
      const yes = await confirmDialog('Point-in-time restore', [
        h('dl', { class: 'facts' }, h('dt', {}, 'Project:'), h('dd', {}, `${p.name || pid} (${pid})`),
          h('dt', {}, 'Restore to:'), h('dd', {}, fmtUtc(target, true, true)), h('dt', {}, ''), h('dd', { class: 'muted' }, fmtLocal(target))),
        h('div', { class: 'notice notice-warn' }, h('strong', {}, '⚠ Warning: '), 'This will overwrite current project data.',
          h('div', { class: 'small' }, 'The database is brought back to how it was at that moment; changes made after it are lost.')),
      ], 'Restore Project', true);
      if (!yes) return;
      setBusy(go, true, 'Starting…');
      try {
        const r = await api.post(`${base}/pitr/restore`, { target_time: target });
        trackJob({ id: r.job_id || r.id, kind: 'pitr', project: pid, label: `Point-in-time restore to ${fmtUtc(target, false, true)}` });
        renderJobs();
      } catch (e) {
        fail(e.message);
      } finally {
        setBusy(go, false);
      }
    });
    const lag = pitrLag(w);
    pitrBox.replaceChildren(
      h('div', { class: 'card-head' }, h('h2', { id: 'pitr-h' }, 'Point-in-time recovery'),
        lag === null ? null : h('span', { class: `badge ${lag > 600 ? 'badge-warn' : 'badge-ok'}` }, `WAL lag ${fmtSecs(lag)}`)),
      h('div', { class: 'card-body' },
        w.earliest
          ? h('p', { id: 'pitr-window' }, 'The database can be restored to any moment from ', h('strong', {}, fmtUtc(w.earliest, false, true)),
            w.latest ? [' to ', h('strong', {}, fmtUtc(w.latest, false, true))] : ' on (no WAL archived after it yet)',
            h('span', { class: 'sub-line' }, ` (${fmtLocal(w.earliest)}${w.latest ? ` to ${fmtLocal(w.latest)}` : ''})`))
          : h('p', { id: 'pitr-window' }, 'WAL is being archived; the window opens with the next completed backup.'),
        h('div', { class: 'field inline-field' }, h('label', { for: 'pitr-time' }, 'Restore to (UTC)'),
          h('div', {}, h('div', { class: 'inline' }, input, go), help, err))));
  }

  /* --- operations started from this tab (restore, delete, export) --- */
  const jobSubs = new Map();
  onLeave(() => { for (const un of jobSubs.values()) un(); jobSubs.clear(); });
  function renderJobs() {
    const mine = trackedJobs().filter(j => j.project === pid);
    jobsBox.hidden = !mine.length;
    const items = [];
    for (const j of mine) {
      const w = progressWidget(j.label);
      const out = h('div', { class: 'small' });
      const dismiss = button('Dismiss', { class: 'btn btn-ghost btn-sm', hidden: true, 'aria-label': `Dismiss: ${j.label}`, onclick: () => { untrackJob(j.id); const un = jobSubs.get(j.id); if (un) un(); jobSubs.delete(j.id); renderJobs(); } });
      items.push(h('div', { class: 'job', 'data-job': j.id, 'data-kind': j.kind },
        h('div', {}, h('div', {}, j.label), w.el, out), dismiss));
      const prev = jobSubs.get(j.id);
      if (prev) prev();
      jobSubs.set(j.id, follow(`/platform/jobs/${encodeURIComponent(j.id)}/events`, async (ev, st) => {
        if (ev === 'error') {
          // the job is gone (the service restarted long ago): forget it
          untrackJob(j.id);
          renderJobs();
          return;
        }
        w.update(st);
        if (ev !== 'done') return;
        dismiss.hidden = false;
        if (st.status !== 'COMPLETED') {
          out.replaceChildren(h('div', { class: 'err-line' }, `${st.status === 'INTERRUPTED' ? 'Interrupted' : 'Failed'}: ${st.error || 'no reason given'}`),
            st.hint ? h('div', { class: 'sub-line' }, st.hint) : null);
        } else if (j.kind === 'export') {
          try {
            const link = await api.get(`/platform/jobs/${encodeURIComponent(j.id)}/download`);
            out.replaceChildren(linkBlock(link));
          } catch (e) {
            out.replaceChildren(h('div', { class: 'err-line' }, `The export is ready but no link could be made: ${e.message}`));
          }
        } else {
          out.replaceChildren(h('span', { class: 'muted' }, j.kind === 'delete' ? 'Deleted; the space is freed.' : 'Completed.'));
        }
        if (!j.refreshed) {
          j.refreshed = true;
          refresh();
        }
      }));
    }
    jobsBox.replaceChildren(h('div', { class: 'card-head' }, h('h2', {}, 'Operations')), ...items);
  }

  await refresh();
  renderJobs();
}

const chartFmt = {
  bytes: fmtBytes,
  secs: fmtSecs,
  date: (d, spanMs) => (d ? (spanMs < 2 * 86400e3 ? shortDateTime : shortDate).format(d) : ''),
};

function debounce(fn, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

/* Starts a browser download of a signed link (no token involved). */
function startDownload(url) {
  const a = h('a', { href: url, download: '', rel: 'noopener', hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
}

function linkBlock(link) {
  const name = decodeURIComponent((new URL(link.download_url, location.href).pathname.split('/').pop()) || 'archive');
  return h('div', { class: 'link-block' },
    h('a', { href: link.download_url, download: '', class: 'download-link', rel: 'noopener' }, `Download ${name}`),
    link.size ? ` (${fmtBytes(link.size)})` : '',
    h('div', { class: 'sub-line', 'data-expires': link.expires_at },
      `This link expires ${fmtUtc(link.expires_at)} (${fmtFromNow(link.expires_at)}); ask again for a new one.`));
}

function linkDialog(title, link, lead) {
  const d = openDialog(title);
  d.body.append(h('p', {}, lead, ' If it did not, use the link below.'), linkBlock(link));
  d.foot.append(button('Close', { class: 'btn btn-primary', onclick: () => d.close(), 'data-autofocus': true }));
  d.show();
}

/* ----- import (from the projects list) ----- */

function importDialog(orgs) {
  const d = openDialog('Import project');
  const field = (id, label, input, help) => h('div', { class: 'field' }, h('label', { for: id }, label), input,
    help ? h('div', { class: 'field-help' }, help) : null);
  const file = h('input', { type: 'file', id: 'import-file', accept: '.gz,.tgz,.zst,.tar,.gpg', required: true });
  const name = h('input', { type: 'text', id: 'import-name', required: true, autocomplete: 'off' });
  const pidIn = h('input', { type: 'text', id: 'import-id', autocomplete: 'off', placeholder: 'made from the name' });
  const db = h('input', { type: 'text', id: 'import-db', required: true, autocomplete: 'off', placeholder: 'postgresql://supabase_admin:…@127.0.0.1:5432/postgres' });
  const st = h('input', { type: 'text', id: 'import-storage', required: true, autocomplete: 'off', placeholder: '/srv/supabase/volumes/storage' });
  const cf = h('input', { type: 'text', id: 'import-config', autocomplete: 'off' });
  const org = h('select', { id: 'import-org' }, h('option', { value: '' }, claims && claims.role === 'service_role' ? 'none' : 'choose…'),
    (orgs || []).filter(o => claims.role === 'service_role' || o.role === 'admin').map(o => h('option', { value: o.id }, o.name || o.id)));
  const pass = h('input', { type: 'password', id: 'import-pass', autocomplete: 'off' });
  const err = h('div', { role: 'alert' });
  const prog = h('div', {});
  const form = h('form', { class: 'stacked', novalidate: true },
    field('import-file', 'Archive', file, 'An export of SupaManager (.tar.gz, .tar.zst, .tar, or .gpg when encrypted).'),
    field('import-name', 'New project name', name),
    field('import-id', 'Project id (optional)', pidIn, '3-40 lowercase letters, digits and -.'),
    field('import-db', 'Database URL', db, 'Where the new project\'s database lives (a superuser; the database is created if missing).'),
    field('import-storage', 'Storage directory', st),
    field('import-config', 'Config directory (optional)', cf),
    field('import-org', 'Organization', org),
    field('import-pass', 'Passphrase (encrypted archives)', pass));
  d.body.append(form, prog, err);
  const go = button('Import', { class: 'btn btn-primary' });
  const cancel = button('Cancel', { onclick: () => d.close() });
  d.foot.append(cancel, go);
  go.addEventListener('click', async () => {
    err.replaceChildren();
    if (!file.files.length) { err.append(h('div', { class: 'notice notice-error' }, 'Choose the archive to import.')); file.focus(); return; }
    const fd = new FormData();
    fd.append('new_project_name', name.value.trim());
    if (pidIn.value.trim()) fd.append('id', pidIn.value.trim());
    fd.append('db_url', db.value.trim());
    fd.append('storage_dir', st.value.trim());
    if (cf.value.trim()) fd.append('config_dir', cf.value.trim());
    if (org.value) fd.append('org_id', org.value);
    if (pass.value) fd.append('passphrase', pass.value);
    fd.append('file', file.files[0]);
    const w = progressWidget('Upload progress', true);
    prog.replaceChildren(h('p', { class: 'small muted' }, `Uploading ${file.files[0].name}…`), w.el);
    form.hidden = true; // the progress and the outcome take its place
    setBusy(go, true, 'Uploading…');
    try {
      const r = await api.upload('/platform/projects/import', fd, (n, total) => {
        w.update({ progress: (100 * n) / total, phase: `uploaded ${fmtBytes(n)} of ${fmtBytes(total)}`, status: 'RUNNING' });
      });
      w.update({ progress: 100, status: 'COMPLETED' });
      const jobId = r.job_id || r.id;
      const newId = r.project_id;
      const jw = progressWidget('Import progress', true);
      prog.replaceChildren(h('p', { class: 'small' }, `Uploaded. Importing into the new project ${newId}…`), jw.el);
      setBusy(go, true, 'Importing…');
      const un = follow(`/platform/jobs/${encodeURIComponent(jobId)}/events`, (ev, s) => {
        if (ev === 'error') { err.replaceChildren(errorBox(s, 'The import cannot be followed')); return; }
        jw.update(s);
        if (ev !== 'done') return;
        setBusy(go, false);
        go.hidden = true;
        cancel.textContent = 'Close';
        if (s.status === 'COMPLETED') {
          const open = h('a', { href: `#/projects/${encodeURIComponent(newId)}`, onclick: () => d.close() }, name.value.trim() || newId);
          prog.append(h('div', { class: 'notice notice-ok', id: 'import-result' }, h('strong', {}, '✓ Imported. '), 'Open ', open, '.'));
          open.focus();
        } else {
          prog.append(h('div', { class: 'notice notice-error', id: 'import-result' }, h('strong', {}, '✕ The import failed: '), s.error || '',
            s.hint ? h('div', { class: 'small' }, s.hint) : null));
        }
      });
      d.onClose(() => { un(); if (location.hash === '#/projects') render(); });
    } catch (e) {
      prog.replaceChildren();
      form.hidden = false;
      err.replaceChildren(errorBox(e, 'The import was not started'));
      setBusy(go, false);
    }
  });
  d.show();
}

/* ----- the schedule ----- */

const SCHEDULE_FIELDS = ['enabled', 'frequency', 'time', 'type', 'retention', 'keep_daily', 'keep_weekly', 'keep_monthly', 'verify', 'restore_test'];

/* A project's sub-page (schedule, storage): its header with the tab and a
 * way back, and a holder saying what loads. null when the project cannot be
 * read (the error is shown). */
async function projectPage(main, pid, tab, loading) {
  let p;
  try {
    p = await loadProject(pid);
  } catch (e) {
    setCrumbs([{ text: 'Projects', href: '#/projects' }, { text: pid }]);
    main.append(errorBox(e, 'Cannot open the project'));
    return null;
  }
  const toolbar = projectHeader(main, p, tab);
  toolbar.append(h('a', { class: 'btn', href: `#/projects/${encodeURIComponent(pid)}` }, 'Back to backups'));
  const holder = h('div', {}, h('p', { class: 'loading' }, loading));
  main.append(holder);
  return { p, toolbar, holder };
}

async function scheduleView(main, params) {
  const pid = params.id;
  const page = await projectPage(main, pid, 'schedule', 'Loading the schedule…');
  if (!page) return;
  const { p, holder } = page;
  const path = `/platform/projects/${encodeURIComponent(pid)}/backup-schedule`;
  let s;
  try {
    s = await api.get(path);
  } catch (e) {
    holder.replaceChildren(errorBox(e, 'Cannot read the schedule'));
    return;
  }

  const inputs = {
    enabled: h('input', { type: 'checkbox', id: 'sch-enabled', name: 'enabled' }),
    frequency: h('select', { id: 'sch-frequency', name: 'frequency' },
      h('option', { value: 'hourly' }, 'Hourly'), h('option', { value: 'daily' }, 'Daily'), h('option', { value: 'weekly' }, 'Weekly (Sunday)')),
    time: h('input', { type: 'text', id: 'sch-time', name: 'time', inputmode: 'numeric', autocomplete: 'off', placeholder: 'HH:MM', maxlength: '5' }),
    type: h('select', { id: 'sch-type', name: 'type' }, TYPE_OPTIONS.map(([v, t]) => h('option', { value: v }, t.replace(/ \(.*/, '')))),
    retention: h('input', { type: 'number', id: 'sch-retention', name: 'retention', min: '1', max: '1000', step: '1' }),
    keep_daily: h('input', { type: 'number', id: 'sch-keep_daily', name: 'keep_daily', min: '0', max: '1000' }),
    keep_weekly: h('input', { type: 'number', id: 'sch-keep_weekly', name: 'keep_weekly', min: '0', max: '1000' }),
    keep_monthly: h('input', { type: 'number', id: 'sch-keep_monthly', name: 'keep_monthly', min: '0', max: '1000' }),
    verify: h('input', { type: 'checkbox', id: 'sch-verify', name: 'verify' }),
    restore_test: h('select', { id: 'sch-restore_test', name: 'restore_test' }, h('option', { value: 'never' }, 'Never'), h('option', { value: 'weekly' }, 'Weekly')),
  };
  const errs = {};
  for (const k of SCHEDULE_FIELDS) {
    errs[k] = h('div', { class: 'field-error', id: `sch-${k}-error`, hidden: true });
    inputs[k].setAttribute('aria-describedby', [`sch-${k}-error`, inputs[k].getAttribute('aria-describedby')].filter(Boolean).join(' '));
  }
  function fill(doc) {
    inputs.enabled.checked = !!doc.enabled;
    inputs.frequency.value = doc.frequency || 'daily';
    inputs.time.value = doc.time || '02:00';
    inputs.type.value = doc.type || 'FULL';
    for (const k of ['retention', 'keep_daily', 'keep_weekly', 'keep_monthly']) inputs[k].value = doc[k] ?? '';
    inputs.verify.checked = !!doc.verify;
    inputs.restore_test.value = doc.restore_test || 'never';
  }
  fill(s);
  const row = (k, label, control, help) => h('div', { class: 'field' },
    h('label', { for: `sch-${k}` }, label),
    h('div', {}, control, help ? h('div', { class: 'field-help', id: `sch-${k}-help` }, help) : null, errs[k]));
  if (inputs.time) inputs.time.setAttribute('aria-describedby', 'sch-time-help sch-time-error');
  const nextRun = h('div', { class: 'next-run', id: 'next-run', role: 'status', 'aria-live': 'polite' });
  const formErr = h('div', { role: 'alert', id: 'sch-form-error' });
  const save = h('button', { type: 'submit', class: 'btn btn-primary', disabled: !p.can_manage }, 'Save schedule');
  const fieldset = h('fieldset', { disabled: !p.can_manage },
    h('div', { class: 'field' }, h('span', { class: 'label' }, 'Automated backups'),
      h('div', {}, h('label', { class: 'check', for: 'sch-enabled' }, inputs.enabled, 'Enable automated backups'), errs.enabled)),
    row('frequency', 'Frequency', inputs.frequency),
    row('time', 'Time (UTC)', inputs.time, 'HH:MM, 24-hour, UTC. Hourly backups use the minutes only.'),
    row('type', 'Backup type', inputs.type),
    row('retention', 'Retention', h('div', { class: 'inline' }, inputs.retention, h('span', { class: 'muted' }, 'backups')),
      'Keep this many of the newest scheduled backups; older ones are deleted and their space freed.'),
    h('details', { class: 'advanced' }, h('summary', {}, 'More retention and checks'),
      row('keep_daily', 'Also keep daily', h('div', { class: 'inline' }, inputs.keep_daily, h('span', { class: 'muted' }, 'days'))),
      row('keep_weekly', 'Also keep weekly', h('div', { class: 'inline' }, inputs.keep_weekly, h('span', { class: 'muted' }, 'weeks'))),
      row('keep_monthly', 'Also keep monthly', h('div', { class: 'inline' }, inputs.keep_monthly, h('span', { class: 'muted' }, 'months'))),
      h('div', { class: 'field' }, h('span', { class: 'label' }, 'Verify'),
        h('div', {}, h('label', { class: 'check', for: 'sch-verify' }, inputs.verify, 'Verify each new scheduled backup'), errs.verify)),
      row('restore_test', 'Restore test', inputs.restore_test, 'Weekly: restore the database into a scratch database and compare row counts; its duration is the measured RTO.')));
  const form = h('form', { novalidate: true, id: 'schedule-form' }, fieldset, nextRun, formErr,
    h('div', { class: 'form-actions left' }, save));
  const statusBox = h('div', {});
  const runsBox = h('div', {});
  holder.replaceChildren(
    h('section', { class: 'card', 'aria-labelledby': 'sch-h' }, h('div', { class: 'card-head' }, h('h2', { id: 'sch-h' }, 'Automated Backups')),
      h('div', { class: 'card-body' }, form)),
    statusBox, runsBox);

  function showState(doc) {
    nextRun.replaceChildren(doc.enabled && doc.next_run_at
      ? h('span', {}, h('strong', {}, 'Next backup: '), fmtUtc(doc.next_run_at, true), h('span', { class: 'muted' }, ` (${fmtFromNow(doc.next_run_at)}; ${fmtLocal(doc.next_run_at)})`))
      : h('span', { class: 'muted' }, doc.enabled ? 'Next backup: not planned' : 'Automated backups are off: enable them to have backups taken for you.'));
    statusBox.replaceChildren(h('h2', { class: 'visually-hidden' }, 'How the project stands'), statsRow(doc, null));
    const runs = doc.runs || [];
    runsBox.replaceChildren(h('section', { class: 'card', 'aria-labelledby': 'runs-h' },
      h('div', { class: 'card-head' }, h('h2', { id: 'runs-h' }, 'Recent scheduled runs')),
      runs.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'data cards' },
        h('thead', {}, h('tr', {}, ['Slot (UTC)', 'Status', 'Backup', 'Reason'].map(t => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, runs.map(r => h('tr', {},
          h('td', { 'data-label': 'Slot' }, fmtUtc(r.slot)),
          h('td', { 'data-label': 'Status' }, statusBadge(r.status === 'SKIPPED' ? 'INTERRUPTED' : r.status === 'STARTED' ? 'RUNNING' : r.status),
            r.status === 'SKIPPED' ? h('span', { class: 'sub-line' }, ' skipped') : null),
          h('td', { 'data-label': 'Backup', class: 'id-cell' }, r.backup_id || '—'),
          h('td', { 'data-label': 'Reason' }, r.reason || '')))))) : h('p', { class: 'card-body muted' }, 'No scheduled run yet.')));
  }
  showState(s);

  function clearErrors() {
    formErr.replaceChildren();
    for (const k of SCHEDULE_FIELDS) {
      errs[k].hidden = true;
      errs[k].textContent = '';
      inputs[k].removeAttribute('aria-invalid');
    }
  }
  const num = v => (/^-?\d+$/.test(v.trim()) ? Number(v.trim()) : v.trim());
  form.addEventListener('submit', async e => {
    e.preventDefault();
    clearErrors();
    const body = {
      enabled: inputs.enabled.checked,
      frequency: inputs.frequency.value,
      time: inputs.time.value.trim(),
      type: inputs.type.value,
      retention: num(inputs.retention.value),
      keep_daily: num(inputs.keep_daily.value || '0'),
      keep_weekly: num(inputs.keep_weekly.value || '0'),
      keep_monthly: num(inputs.keep_monthly.value || '0'),
      verify: inputs.verify.checked,
      restore_test: inputs.restore_test.value,
    };
    setBusy(save, true, 'Saving…');
    try {
      s = await api.put(path, body);
      fill(s);
      showState(s);
      toast('Schedule saved', 'ok', 'schedule');
    } catch (err) {
      // the server names the field it refuses: show its message beside it
      const m = /'([a-z_]+)(?:\.[a-z_]+)?'/.exec(err.message || '');
      let key = m && SCHEDULE_FIELDS.includes(m[1]) ? m[1] : null;
      if (!key && /frequency/.test(err.message)) key = 'frequency';
      if (!key && /backup type/.test(err.message)) key = 'type';
      if (key && err.status === 400) {
        errs[key].textContent = err.message;
        errs[key].hidden = false;
        inputs[key].setAttribute('aria-invalid', 'true');
        const det = inputs[key].closest('details');
        if (det) det.open = true;
        formErr.append(h('p', { class: 'visually-hidden' }, `Not saved: ${err.message}`));
        inputs[key].focus();
      } else {
        formErr.append(errorBox(err, 'The schedule was not saved'));
      }
    } finally {
      setBusy(save, false);
    }
  });
}

/* ----- backup storage: where the project's repository lives ----- */

const STORE_FIELDS = ['store', 's3_endpoint', 's3_region', 's3_storage_class'];
const STORE_FOLDED = { endpoint: 's3_endpoint', region: 's3_region', storage_class: 's3_storage_class' };

/* The project's store as the API returns it (one location string, or null for
 * the default directory) taken apart: {kind: 'default'|'dir'|'s3', base (the
 * location without the settings folded from the form's fields), bucket,
 * prefix, s3_endpoint, s3_region, s3_storage_class, other: [[name, value]]}. */
function parseStore(store) {
  if (!store) return { kind: 'default', base: '' };
  if (!store.startsWith('s3://')) return { kind: 'dir', base: store, path: store };
  const q = store.indexOf('?');
  const loc = q < 0 ? store : store.slice(0, q);
  const rest = loc.slice(5), slash = rest.indexOf('/');
  const out = {
    kind: 's3', bucket: slash < 0 ? rest : rest.slice(0, slash), prefix: slash < 0 ? '' : rest.slice(slash + 1),
    s3_endpoint: '', s3_region: '', s3_storage_class: '', other: [],
  };
  const kept = [];
  for (const part of q < 0 ? [] : store.slice(q + 1).split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq), raw = eq < 0 ? '' : part.slice(eq + 1);
    let val = raw;
    try { val = decodeURIComponent(raw); } catch { /* shown as it is */ }
    if (STORE_FOLDED[name]) out[STORE_FOLDED[name]] = val;
    else { out.other.push([name, val]); kept.push(part); }
  }
  out.base = loc + (kept.length ? `?${kept.join('&')}` : '');
  return out;
}

/* The server's message names what it refuses: which of the form's fields is it? */
function storeFieldOf(message) {
  const m = /'(store|s3_endpoint|s3_region|s3_storage_class)'/.exec(message || '');
  if (m) return m[1];
  if (/S3 endpoint/.test(message)) return 's3_endpoint';
  return 'store'; // the bucket, the prefix, a setting in the location, S3 settings without an s3:// store
}

function storeFacts(st, pid) {
  const dflt = txt => h('span', { class: 'muted' }, txt);
  if (st.kind !== 's3') {
    return h('dl', { class: 'facts', id: 'store-current', 'data-kind': st.kind },
      h('dt', {}, 'Location:'),
      h('dd', {}, st.kind === 'default'
        ? [h('strong', {}, 'Local directory (the default)'), h('div', { class: 'sub-line mono' }, `<service home>/backups/${pid}`)]
        : [h('strong', {}, 'Local directory '), h('span', { class: 'mono' }, st.path)]),
      h('dt', {}, 'Where:'), h('dd', {}, 'on the disk of the machine that runs supamanager serve'));
  }
  return h('dl', { class: 'facts', id: 'store-current', 'data-kind': 's3' },
    h('dt', {}, 'Location:'), h('dd', { class: 'mono', 'data-fact': 'location' }, `s3://${st.bucket}${st.prefix ? '/' + st.prefix : ''}`),
    h('dt', {}, 'Endpoint:'), h('dd', { 'data-fact': 'endpoint' }, st.s3_endpoint || dflt('AWS (the service\'s AWS_ENDPOINT_URL, if set)')),
    h('dt', {}, 'Region:'), h('dd', { 'data-fact': 'region' }, st.s3_region || dflt('the service\'s AWS_REGION, else us-east-1')),
    h('dt', {}, 'Storage class:'), h('dd', { 'data-fact': 'storage_class' }, st.s3_storage_class || dflt('the bucket\'s default')),
    st.other.length ? [h('dt', {}, 'Other settings:'), h('dd', { class: 'mono', 'data-fact': 'other' }, st.other.map(([k, v]) => `${k}=${v}`).join(', '))] : null);
}

/* The outcome of POST .../store/check: the verdict, then one line per check
 * (ok, error with what to fix, or skipped). */
function storeCheckResult(doc, id) {
  const label = { ok: '✓ ok', failed: '✕ error', skipped: '– skipped' };
  return h('div', { class: `notice ${doc.ok ? 'notice-ok' : 'notice-error'} store-check`, id, 'data-ok': String(doc.ok) },
    h('strong', {}, doc.message),
    doc.hint ? h('div', { class: 'small' }, `What to do: ${doc.hint}`) : null,
    h('ul', { class: 'check-lines' }, (doc.checks || []).map(c => h('li', { 'data-step': c.step, 'data-status': c.status },
      h('strong', {}, `${c.step} ${label[c.status] || c.status}`), `: ${c.message}`,
      c.hint && c.hint !== doc.hint ? h('div', { class: 'small' }, c.hint) : null))));
}

/* Runs a store check (body: {} for the saved store, or the form's settings) and
 * shows its outcome in box, replacing the previous one. */
async function runStoreCheck(path, body, btn, box, id) {
  setBusy(btn, true, 'Checking…');
  box.replaceChildren(h('p', { class: 'small muted' }, 'Writing, reading, listing and deleting a probe object (up to half a minute)…'));
  try {
    box.replaceChildren(storeCheckResult(await api.post(`${path}/store/check`, body), id));
  } catch (err) {
    box.replaceChildren(errorBox(err, 'The store was not checked'));
    return err;
  } finally {
    setBusy(btn, false);
  }
  return null;
}

async function storageView(main, params) {
  const pid = params.id;
  let doc;
  const path = `/platform/projects/${encodeURIComponent(pid)}`;
  const page = await projectPage(main, pid, 'storage', 'Loading the storage settings…');
  if (!page) return;
  const { p, holder } = page;
  try {
    doc = await api.get(path);
  } catch (e) {
    holder.replaceChildren(errorBox(e, 'Cannot read the project'));
    return;
  }
  let st = parseStore(doc.store);
  const current = h('div', {});
  const showCurrent = () => current.replaceChildren(storeFacts(st, pid));
  showCurrent();
  const panel = h('section', { class: 'card', id: 'storage', 'aria-labelledby': 'store-h' },
    h('div', { class: 'card-head' }, h('h2', { id: 'store-h' }, 'Where the backups live'),
      h('span', { class: 'badge', id: 'store-kind' }, st.kind === 's3' ? 'S3' : 'Local')),
    h('div', { class: 'card-body' }, current));
  holder.replaceChildren(panel);
  const kindBadge = $('#store-kind', panel);
  if (!p.can_manage) {
    panel.lastChild.append(h('p', { class: 'muted small', id: 'store-readonly' },
      'Only the project\'s owner or an admin of its organization can change where its backups are stored.'));
    return;
  }
  // checking writes a probe object: the same right as changing the settings
  const checkBtn = button('Check this store', { id: 'store-check' });
  const checkOut = h('div', { id: 'store-check-out', role: 'status' });
  checkBtn.addEventListener('click', () => runStoreCheck(path, {}, checkBtn, checkOut, 'store-check-result'));
  panel.lastChild.append(h('div', { class: 'check-row' }, checkBtn,
    h('span', { class: 'small muted' }, 'Writes, reads, lists and deletes a small probe object under check/, with the service\'s credentials.')), checkOut);

  const inputs = {
    store: h('input', { type: 'text', id: 'store-store', name: 'store', autocomplete: 'off', spellcheck: 'false', placeholder: 's3://BUCKET/PREFIX' }),
    s3_endpoint: h('input', { type: 'url', id: 'store-s3_endpoint', name: 's3_endpoint', autocomplete: 'off', spellcheck: 'false', placeholder: 'https://HOST[:PORT]' }),
    s3_region: h('input', { type: 'text', id: 'store-s3_region', name: 's3_region', autocomplete: 'off', spellcheck: 'false', placeholder: 'us-east-1' }),
    s3_storage_class: h('input', { type: 'text', id: 'store-s3_storage_class', name: 's3_storage_class', autocomplete: 'off', spellcheck: 'false', placeholder: 'STANDARD_IA', list: 'store-classes' }),
  };
  const classes = h('datalist', { id: 'store-classes' },
    ['STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR', 'GLACIER', 'DEEP_ARCHIVE'].map(c => h('option', { value: c })));
  const helps = {
    store: 'Empty: the default local directory. Or s3://BUCKET/PREFIX for S3-compatible object storage (AWS S3, Ceph RGW, MinIO), or an absolute directory path on the service\'s machine.',
    s3_endpoint: 'S3 only: https://HOST[:PORT] of Ceph RGW, MinIO, … Empty: AWS (or the service\'s AWS_ENDPOINT_URL).',
    s3_region: 'S3 only. Empty: the service\'s default region.',
    s3_storage_class: 'S3 only: the storage class of the objects written from now on. Empty: the bucket\'s default.',
  };
  const errs = {};
  for (const k of STORE_FIELDS) {
    errs[k] = h('div', { class: 'field-error', id: `store-${k}-error`, hidden: true });
    inputs[k].setAttribute('aria-describedby', `store-${k}-help store-${k}-error`);
  }
  const fill = () => {
    inputs.store.value = st.base;
    for (const k of ['s3_endpoint', 's3_region', 's3_storage_class']) inputs[k].value = st[k] || '';
  };
  fill();
  const row = (k, label, extra) => h('div', { class: 'field' },
    h('label', { for: `store-${k}` }, label),
    h('div', {}, inputs[k], extra, h('div', { class: 'field-help', id: `store-${k}-help` }, helps[k]), errs[k]));
  const formErr = h('div', { role: 'alert', id: 'store-form-error' });
  const save = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save storage settings');
  const tryBtn = button('Check these settings', { id: 'store-check-form' });
  const tryOut = h('div', { id: 'store-check-form-out', role: 'status' });
  const form = h('form', { novalidate: true, id: 'store-form', 'aria-labelledby': 'store-form-h' },
    h('h3', { id: 'store-form-h', class: 'form-title' }, 'Change where backups are stored'),
    h('div', { class: 'notice notice-warn', id: 'store-note' }, h('strong', {}, 'Future backups only. '),
      'A new location points this project\'s next backups at a new repository there. Backups already taken stay where they are and are not copied; ' +
      'restores read the repository the project points at, so copy it first (supamanager repo copy) to keep older backups restorable. ' +
      'The credentials are the service\'s own (its AWS_* variables or credentials file): use Check these settings before saving them.'),
    h('fieldset', {},
      h('legend', { class: 'visually-hidden' }, 'Storage settings'),
      row('store', 'Location'),
      row('s3_endpoint', 'S3 endpoint'),
      row('s3_region', 'S3 region'),
      row('s3_storage_class', 'Storage class', classes)),
    formErr,
    tryOut,
    h('div', { class: 'form-actions left' }, save, tryBtn));
  panel.lastChild.append(form);

  function clearErrors() {
    formErr.replaceChildren();
    for (const k of STORE_FIELDS) {
      errs[k].hidden = true;
      errs[k].textContent = '';
      inputs[k].removeAttribute('aria-invalid');
    }
  }
  const showRefused = (err, what) => {
    const key = storeFieldOf(err.message);
    errs[key].textContent = err.message;
    errs[key].hidden = false;
    inputs[key].setAttribute('aria-invalid', 'true');
    formErr.append(h('p', { class: 'visually-hidden' }, `${what}: ${err.message}`));
    inputs[key].focus();
  };
  const formBody = () => {
    const body = {};
    for (const k of STORE_FIELDS) body[k] = inputs[k].value.trim();
    return body;
  };
  tryBtn.addEventListener('click', async () => {
    clearErrors();
    const err = await runStoreCheck(path, formBody(), tryBtn, tryOut, 'store-check-form-result');
    if (err && err.status === 400) {
      tryOut.replaceChildren();
      showRefused(err, 'Not checked');
    }
  });
  form.addEventListener('submit', async e => {
    e.preventDefault();
    clearErrors();
    tryOut.replaceChildren();
    const body = formBody();
    checkOut.replaceChildren(); // it was about the store before this save
    setBusy(save, true, 'Saving…');
    try {
      doc = await api.patch(path, body);
      st = parseStore(doc.store);
      fill();
      showCurrent();
      kindBadge.textContent = st.kind === 's3' ? 'S3' : 'Local';
      formErr.append(h('p', { class: 'visually-hidden' }, 'Storage settings saved.'));
      toast('Storage settings saved: the next backup goes to the new location', 'ok', 'storage');
    } catch (err) {
      if (err.status === 400) showRefused(err, 'Not saved');
      else formErr.append(errorBox(err, 'The storage settings were not saved'));
    } finally {
      setBusy(save, false);
    }
  });
}

/* ---------- router ---------- */

const ROUTES = [
  [/^#\/signin$/, signinView, false],
  [/^#\/projects$/, projectsView, true],
  [/^#\/projects\/([^/?]+)\/schedule$/, scheduleView, true],
  [/^#\/projects\/([^/?]+)\/storage$/, storageView, true],
  [/^#\/projects\/([^/?]+)$/, backupsView, true],
];

let renderSeq = 0;
async function render(focusHeading) {
  for (const fn of cleanups.splice(0)) {
    try { fn(); } catch (e) { reportError(e); }
  }
  for (const d of Array.from(openDialogs)) d.close();
  const seq = ++renderSeq;
  let hash = location.hash || '';
  if (!hash.startsWith('#/')) {
    hash = api.session.token ? '#/projects' : '#/signin';
    history.replaceState(null, '', hash);
  }
  const [pathPart, queryPart] = hash.split('?');
  const main = $('#main');
  main.replaceChildren();
  if (!api.session.token && pathPart !== '#/signin') {
    if (location.hash !== '#/signin') history.replaceState(null, '', '#/signin');
    signinView(main);
    return;
  }
  if (api.session.token && pathPart === '#/signin') {
    history.replaceState(null, '', '#/projects');
    return render(focusHeading);
  }
  for (const [re, view] of ROUTES) {
    const m = re.exec(pathPart);
    if (!m) continue;
    const params = m[1] ? { id: decodeURIComponent(m[1]) } : {};
    try {
      await view(main, params, new URLSearchParams(queryPart || ''));
    } catch (e) {
      if (seq === renderSeq) main.append(errorBox(e, 'Something went wrong'));
      reportError(e);
    }
    if (focusHeading && seq === renderSeq) {
      const h1 = $('h1', main);
      if (h1 && !main.contains(document.activeElement)) h1.focus();
    }
    return;
  }
  setCrumbs([]);
  main.append(h('div', { class: 'empty' }, h('h1', { tabindex: '-1' }, 'Not found'),
    h('p', {}, 'There is no such page.'), h('a', { class: 'btn', href: '#/projects' }, 'Projects')));
}

function reportError(e) {
  // a bug in the page: keep it visible to people and to the browser tests
  console.error('supamanager ui:', e && e.message ? e.message : e);
}

function start() {
  const t = api.session.token;
  claims = t ? api.jwtClaims(t) : null;
  if (t && !claims) api.session.clear();
  showWho();
  $('#sign-out').addEventListener('click', () => signOut('You signed out.'));
  $('#skip-link').addEventListener('click', e => { e.preventDefault(); $('#main').focus(); });
  window.addEventListener('hashchange', () => render(true));
  render(false);
}

start();
