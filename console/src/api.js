// api.js -- the ravand API, with the signed-in user's bearer token.
// The token lives in sessionStorage: it is gone when the tab closes.

const KEY = 'ravand.token';

export function getToken() {
  return sessionStorage.getItem(KEY);
}

export function setToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || 'HTTP ' + status);
    this.status = status;
    this.problem = problem || {};
  }
}

// Persian words for the statuses a person meets.
const STATUS_FA = {
  400: 'درخواست نامعتبر است',
  401: 'نشست شما معتبر نیست؛ دوباره وارد شوید',
  403: 'این کار برای نقش شما مجاز نیست',
  404: 'یافت نشد (یا به شما مربوط نیست)',
  409: 'وضعیت این مورد اجازه این کار را نمی‌دهد',
  422: 'قواعد فرایند این کار را نپذیرفت',
  429: 'درخواست‌ها زیاد است؛ کمی صبر کنید',
  503: 'سامانه مشغول است؛ دوباره تلاش کنید',
};

export function errorText(e) {
  if (e instanceof ApiError) {
    const base = STATUS_FA[e.status] || 'خطای سامانه';
    const detail = e.problem.detail && e.status !== 404 ? ` (${e.problem.detail})` : '';
    const rid = e.status >= 500 && e.problem.request_id ? ` — شناسه درخواست: ${e.problem.request_id}` : '';
    return base + detail + rid;
  }
  return 'ارتباط با سامانه برقرار نشد';
}

export async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + (getToken() || '') };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const ct = res.headers.get('Content-Type') || '';
  let data = null;
  if (ct.includes('json')) data = await res.json();
  else data = await res.text();
  if (!res.ok) {
    if (res.status === 401 && path !== '/v1/me') window.dispatchEvent(new CustomEvent('ravand:unauthorized'));
    throw new ApiError(res.status, typeof data === 'object' ? data : null);
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);

/** '/v1/x' + {a: 1, b: ''} -> '/v1/x?a=1' (empty values dropped). */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// Process names, for lists that only carry ids (cached per session).
let defsPromise = null;
export function definitions() {
  if (!defsPromise) {
    defsPromise = get('/v1/definitions').then((r) => r.items || []).catch((e) => {
      defsPromise = null;
      throw e;
    });
  }
  return defsPromise;
}

export function resetCaches() {
  defsPromise = null;
}

export async function processNames() {
  const names = {};
  for (const d of await definitions()) names[d.process] = d.name || d.process;
  return names;
}

/** {process: {element: name}} from the definitions (staff and operators get
 * names; a newer version's name wins, older versions fill in elements it lost). */
export async function elementNames() {
  const out = {};
  const defs = [...await definitions()].sort((a, b) => a.version - b.version);
  for (const d of defs) Object.assign(out[d.process] ||= {}, d.elements || {});
  return out;
}

/** {element: n}: active instances of process/version waiting at each element (one call). */
export function waitingCounts(process, version) {
  return get(`/v1/definitions/${encodeURIComponent(process)}/${encodeURIComponent(version)}/waiting`);
}

/** Parse Prometheus text into [{name, labels, value}]. */
export function parseMetrics(text) {
  const out = [];
  for (const line of String(text).split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /(\w+)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3]))) labels[l[1]] = l[2].replace(/\\"/g, '"').replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}
