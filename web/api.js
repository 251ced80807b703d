// The public API, as the web UI uses it: JSON calls, Server-Sent Events read
// with fetch (EventSource cannot send an Authorization header, and the token
// must never go into a URL), uploads with progress, and the session's token.
//
// The token lives in sessionStorage only: it is gone when the tab closes, it
// is sent only in the Authorization header, and nothing here logs it.

const TOKEN_KEY = 'supamanager.token';

export const session = {
  get token() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
  },
  set(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  clear() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* storage disabled */ }
  },
};

/* Claims of a JWT, decoded for display only (the server verifies it). */
export function jwtClaims(token) {
  const parts = String(token || '').split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(Array.from(atob(b64 + '==='.slice((b64.length + 3) % 4)),
      c => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''));
    const claims = JSON.parse(json);
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/* An error answer of the API: {error, message, request_id}. */
export class ApiError extends Error {
  constructor(status, doc, fallback) {
    super((doc && doc.message) || fallback || `the server answered ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = (doc && doc.error) || (status === 0 ? 'network' : 'http_' + status);
    this.requestId = doc && doc.request_id;
  }
}

const listeners = new Set();
/* fn(err) is called when the API says the token is no longer good (401). */
export function onUnauthorized(fn) { listeners.add(fn); }
function unauthorized(err) { for (const fn of listeners) fn(err); }

function headers(extra) {
  const h = Object.assign({}, extra);
  const t = session.token;
  if (t) h.Authorization = 'Bearer ' + t;
  return h;
}

function networkError(e) {
  return new ApiError(0, null, 'the service cannot be reached (' + (e && e.message ? e.message : 'network error') +
    '): is supamanager serve running?');
}

/* method, path (under this origin), optional JSON body. Resolves to the
 * parsed answer; rejects with ApiError. opts.token overrides the session's
 * (used to check a token before keeping it). */
export async function call(method, path, body, opts = {}) {
  const h = headers({ Accept: 'application/json' });
  if (opts.token) h.Authorization = 'Bearer ' + opts.token;
  const init = { method, headers: h, cache: 'no-store', credentials: 'omit', signal: opts.signal };
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw networkError(e);
  }
  const text = await r.text();
  let doc = null;
  try { doc = text ? JSON.parse(text) : null; } catch { doc = null; }
  if (!r.ok) {
    const err = new ApiError(r.status, doc);
    if (r.status === 401 && !opts.token) unauthorized(err);
    throw err;
  }
  return doc;
}

export const get = (path, opts) => call('GET', path, undefined, opts);
export const post = (path, body, opts) => call('POST', path, body === undefined ? {} : body, opts);
export const put = (path, body, opts) => call('PUT', path, body, opts);
export const patch = (path, body, opts) => call('PATCH', path, body, opts);
export const del = (path, opts) => call('DELETE', path, undefined, opts);

/* Reads a Server-Sent Events stream: onEvent(name, data) for each event
 * (data parsed as JSON when it is JSON). Resolves when the stream ends;
 * rejects with ApiError (or AbortError when signal aborts). */
export async function events(path, onEvent, signal) {
  let r;
  try {
    r = await fetch(path, {
      headers: headers({ Accept: 'text/event-stream' }), cache: 'no-store', credentials: 'omit', signal,
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw networkError(e);
  }
  if (!r.ok || !r.body) {
    let doc = null;
    try { doc = await r.json(); } catch { doc = null; }
    const err = new ApiError(r.status, doc);
    if (r.status === 401) unauthorized(err);
    throw err;
  }
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (!line || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') name = val;
        else if (field === 'data') data.push(val);
      }
      if (!data.length) continue;
      let parsed = data.join('\n');
      try { parsed = JSON.parse(parsed); } catch { /* plain text */ }
      onEvent(name, parsed);
    }
  }
}

/* POSTs a multipart form with upload progress: onProgress(loaded, total).
 * Resolves to the parsed answer; rejects with ApiError. */
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', path);
    const t = session.token;
    if (t) x.setRequestHeader('Authorization', 'Bearer ' + t);
    x.setRequestHeader('Accept', 'application/json');
    x.upload.onprogress = e => { if (e.lengthComputable && onProgress) onProgress(e.loaded, e.total); };
    x.onload = () => {
      let doc = null;
      try { doc = x.responseText ? JSON.parse(x.responseText) : null; } catch { doc = null; }
      if (x.status >= 200 && x.status < 300) return resolve(doc);
      const err = new ApiError(x.status, doc);
      if (x.status === 401) unauthorized(err);
      reject(err);
    };
    x.onerror = () => reject(networkError({ message: 'the upload was interrupted' }));
    x.send(form);
  });
}
