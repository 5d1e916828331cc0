// main.js -- the console's shell: sign-in, the header, hash routing by role.
import '@fontsource/vazirmatn/arabic-400.css';
import '@fontsource/vazirmatn/arabic-700.css';
import '@fontsource/vazirmatn/latin-400.css';
import '@fontsource/vazirmatn/latin-700.css';
import './style.css';
import { get, getToken, setToken, errorText, resetCaches } from './api.js';
import { h, clear, fill, notice } from './ui.js';
import { ROLE_LABELS, faDigits } from './fa.js';
import * as operator from './pages/operator.js';
import * as staff from './pages/staff.js';
import * as applicant from './pages/applicant.js';

const STAFF = ['branch', 'association', 'committee', 'it_admin', 'organisation'];

const ROUTES = [
  // [pattern, roles, page]
  [/^\/overview$/, ['operator'], operator.overview],
  [/^\/instances$/, ['operator'], operator.instances],
  [/^\/instances\/(\d+)$/, ['operator'], operator.instance],
  [/^\/incidents$/, ['operator'], operator.incidents],
  [/^\/definitions$/, ['analyst', 'operator'], operator.definitions],
  [/^\/cartable$/, STAFF, staff.cartable],
  [/^\/tasks\/(\d+)$/, STAFF, staff.task],
  [/^\/my$/, ['applicant'], applicant.myRequests],
  [/^\/my\/(\d+)$/, ['applicant'], applicant.request],
  [/^\/new$/, ['applicant'], applicant.services],
  [/^\/new\/([\w.-]+)$/, ['applicant'], applicant.start],
];

const NAV = {
  operator: [['#/overview', 'نمای کلی'], ['#/instances', 'پرونده‌ها'], ['#/incidents', 'خطاها'], ['#/definitions', 'فرایندها']],
  analyst: [['#/definitions', 'فرایندها']],
  applicant: [['#/my', 'درخواست‌های من'], ['#/new', 'درخواست جدید']],
};
for (const r of STAFF) NAV[r] = [['#/cartable', 'کارتابل']];

const HOME = { operator: '#/overview', analyst: '#/definitions', applicant: '#/my' };

let me = null;
const app = document.getElementById('app');

export function currentUser() {
  return me;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = raw.split('?');
  return { path, query: Object.fromEntries(new URLSearchParams(qs || '')) };
}

export function navigate(path, query) {
  const qs = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== '' && v != null)).toString() : '';
  const next = '#' + path + (qs ? '?' + qs : '');
  if (location.hash === next) render();
  else location.hash = next;
}

function header() {
  const links = (NAV[me.role] || []).map(([href, text]) =>
    h('a', { href, class: location.hash.startsWith(href) ? 'active' : '' }, text));
  const scope = me.scope || {};
  const where = scope.branch ? `شعبه ${faDigits(scope.branch)}` : scope.county ? `شهرستان ${scope.county}`
    : scope.organisation ? scope.organisation : '';
  return h('header', { class: 'top' },
    h('div', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }, 'ر'), 'رَوَند'),
    h('nav', { 'aria-label': 'منو' }, links),
    h('div', { class: 'who' },
      h('span', { class: 'user', 'data-testid': 'user' }, me.name),
      h('span', { class: 'role' }, ROLE_LABELS[me.role] || me.role, where ? ' — ' + where : ''),
      h('button', { class: 'link', type: 'button', onclick: signOut }, 'خروج')));
}

function signOut() {
  setToken(null);
  me = null;
  resetCaches();
  location.hash = '#/signin';
  render();
}

function signInPage(message) {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    dir: 'ltr', placeholder: 'rvt_…', required: true });
  const msg = h('div', { class: 'msg' }, message ? notice('error', message) : null);
  const form = h('form', { class: 'card signin', onsubmit: async (ev) => {
    ev.preventDefault();
    setToken(input.value.trim());
    try {
      me = await get('/v1/me');
      resetCaches();
      location.hash = HOME[me.role] || '#/cartable';
      render();
    } catch (e) {
      setToken(null);
      fill(msg, notice('error', e.status === 401 ? 'توکن معتبر نیست.' : errorText(e)));
    }
  } },
  h('h1', {}, 'ورود به میز کار رَوَند'),
  h('p', { class: 'muted' }, 'توکن دسترسی خود را وارد کنید (از راهبر سامانه، با فرمان ravand principal token دریافت می‌شود).'),
  h('label', { for: 'token' }, 'توکن دسترسی'),
  input,
  h('button', { type: 'submit', class: 'primary' }, 'ورود'),
  msg);
  fill(app, h('main', { class: 'center' }, form));
  input.focus();
}

async function render() {
  if (!getToken()) return signInPage();
  if (!me) {
    try {
      me = await get('/v1/me');
    } catch (e) {
      setToken(null);
      return signInPage(e.status === 401 ? 'نشست شما به پایان رسیده است؛ دوباره وارد شوید.' : errorText(e));
    }
  }
  const { path, query } = parseHash();
  if (path === '/' || path === '/signin') {
    location.replace(HOME[me.role] || '#/cartable');
    return;
  }
  const main = h('main', { id: 'main' });
  fill(app, header(), main);
  for (const [re, roles, page] of ROUTES) {
    const m = re.exec(path);
    if (!m) continue;
    if (!roles.includes(me.role)) {
      main.append(notice('error', 'این صفحه برای نقش شما نیست.'));
      return;
    }
    main.append(h('p', { class: 'loading' }, 'در حال بارگذاری…'));
    try {
      await page(main, { params: m.slice(1), query, me, navigate });
    } catch (e) {
      fill(main, notice('error', errorText(e)));
    }
    main.querySelector('.loading')?.remove();
    return;
  }
  main.append(notice('error', 'صفحه پیدا نشد.'));
}

window.addEventListener('hashchange', render);
window.addEventListener('ravand:unauthorized', () => {
  setToken(null);
  me = null;
  signInPage('نشست شما معتبر نیست؛ دوباره وارد شوید.');
});
render();
