// pages/staff.js -- cartables of branch, association, committee, IT and
// organisation users: the list with the directive's filters, one task with
// the request's data, its form, claim / release, transfer, comments.
import { get, post, withQuery, errorText, processNames } from '../api.js';
import { h, clear, fill, notice, table, badge, valueView, busy } from '../ui.js';
import { faDate, faDateTime, faDigits, faRials, parseDateInput, isoToJalali, asciiDigits, TASK_STATE } from '../fa.js';
import { taskForm } from '../forms.js';
import { pager } from './applicant.js';
import { personView, finalStatusesView, documentsView } from '../display.js';

const PAGE = 25;

function filterForm(query, names, statusTexts, me, navigate) {
  const sel = (id, label, options, value) => h('div', { class: 'field' }, h('label', { for: id }, label),
    h('select', { id, name: id }, options.map(([v, t]) => h('option', { value: v, selected: v === (value || '') }, t))));
  const inp = (id, label, value, attrs = {}) => h('div', { class: 'field' }, h('label', { for: id }, label),
    h('input', { id, name: id, value: value || '', autocomplete: 'off', ...attrs }));
  const form = h('form', { class: 'filters card', 'aria-label': 'فیلترها' },
    sel('process', 'نوع درخواست', [['', 'همه'], ...Object.entries(names)], query.process),
    sel('status_text', 'وضعیت درخواست', [['', 'همه'], ...statusTexts.map((s) => [s, s])], query.status_text),
    sel('who', 'کارپذیر', [['', 'همه'], ['me', 'کارهای من'], ['unassigned', 'برداشته‌نشده']], query.who),
    inp('business_key', 'کد ملی', query.business_key ? faDigits(query.business_key) : '', { inputmode: 'numeric', dir: 'ltr' }),
    inp('due_to', 'مهلت تا (شمسی)', query.due_to ? isoToJalali(query.due_to) : '', { placeholder: '۱۴۰۴/۰۹/۳۰', dir: 'ltr' }),
    sel('state', 'حالت', [['', 'باز'], ['completed', 'انجام شده'], ['all', 'همه']], query.state),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'جستجو'),
      h('a', { href: '#/cartable', class: 'button secondary' }, 'پاک کردن')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const q = {};
    for (const [k, v] of f.entries()) if (v) q[k] = k === 'business_key' ? asciiDigits(v) : v;
    if (q.due_to) q.due_to = parseDateInput(q.due_to) || '';
    navigate('/cartable', q);
  });
  return form;
}

export async function cartable(main, { query, me, navigate }) {
  const offset = Number(query.offset || 0);
  const params = {
    process: query.process, status_text: query.status_text, business_key: query.business_key,
    due_to: query.due_to, state: query.state, limit: PAGE, offset: offset || '',
    assignee: query.who === 'me' ? 'me' : '', unassigned: query.who === 'unassigned' ? 'true' : '',
  };
  // overdue is decided by the server's clock ("now" of /v1/me: the server's
  // time, or its virtual clock under --now), not the browser's
  const [r, names, clock] = await Promise.all([get(withQuery('/v1/tasks', params)), processNames(),
    get('/v1/me').catch(() => ({}))]);
  const statusTexts = [...new Set([query.status_text, ...r.items.map((t) => t.status_text)].filter(Boolean))];
  const now = Number.isFinite(clock.now) ? clock.now : Date.now();
  const [what, tid, to] = String(query.done || '').split(':');
  const done = what === 'complete' ? notice('ok', `کار ${faDigits(tid)} انجام شد.`)
    : what === 'transfer' ? notice('ok', `کار ${faDigits(tid)} به شعبه ${faDigits(to)} منتقل شد.`) : null;
  fill(main, done,
    h('div', { class: 'page-head' }, h('h1', {}, 'کارتابل'), h('span', { class: 'muted' }, r.items.length ? `${faDigits(offset + r.items.length)}${r.more ? '+' : ''} مورد` : '')),
    filterForm(query, names, statusTexts, me, navigate),
    table([
      { title: 'شماره', cell: (t) => h('a', { href: `#/tasks/${t.id}` }, faDigits(t.id)) },
      { title: 'نوع درخواست', cell: (t) => names[t.process] || t.process },
      { title: 'مرحله', cell: (t) => h('a', { href: `#/tasks/${t.id}` }, t.name || t.element) },
      { title: 'وضعیت', cell: (t) => t.status_text || TASK_STATE[t.state] || t.state },
      { title: 'کد ملی', cell: (t) => faDigits(t.business_key || '') },
      { title: 'شعبه / شهرستان', cell: (t) => [t.branch ? faDigits(t.branch) : '', t.branch && t.county ? ' / ' : '', t.county || ''] },
      { title: 'ایجاد', cell: (t) => faDate(t.created) },
      { title: 'مهلت', cell: (t) => t.due ? badge(faDate(t.due), t.due < now && t.state === 'open' ? 'warn' : '') : '—' },
      { title: 'کارپذیر', cell: (t) => t.assignee || '—' },
    ], r.items, { class: 'cartable', empty: 'کاری در کارتابل شما نیست.', rowAttrs: (t) => ({ 'data-task': t.id, 'data-element': t.element }) }),
    pager(offset, PAGE, r.more, (o) => navigate('/cartable', { ...query, offset: o })));
}

// The request's data, as the directive's screens show it; the rest under "all data".
function requestData(vars) {
  if (!vars || !Object.keys(vars).length) return null;
  const p = vars.person;
  const parts = [];
  if (p && typeof p === 'object') parts.push(h('h3', {}, 'متقاضی'), personView(p));
  if (Array.isArray(vars.final_statuses)) parts.push(h('h3', {}, 'وضعیت جدید بیمه تکمیلی افراد'), finalStatusesView(vars.final_statuses));
  if (vars.monthly_premium_rials !== undefined) parts.push(h('p', {}, 'حق بیمه ماهانه: ', faRials(vars.monthly_premium_rials)));
  parts.push(documentsView(vars));                     // images of the request: download with the token
  parts.push(h('details', {}, h('summary', {}, 'همه اطلاعات درخواست'), valueView(vars)));
  return h('section', { class: 'card' }, h('h2', {}, 'اطلاعات درخواست'), parts);
}

export async function task(main, { params, me, navigate }) {
  const id = params[0];
  let t;
  try {
    t = await get(`/v1/tasks/${id}`);
  } catch (e) {
    if (e.status === 404) {
      fill(main, h('p', {}, h('a', { href: '#/cartable' }, '→ کارتابل')),
        notice('error', 'این کار در کارتابل شما نیست (یا وجود ندارد).'));
      return;
    }
    throw e;
  }
  const [names, comments] = await Promise.all([processNames(), get(`/v1/tasks/${id}/comments`).catch(() => ({ items: [] }))]);
  const msg = h('div', { class: 'msg', 'aria-live': 'polite' });
  const reload = () => task(main, { params, me, navigate });
  const act = (btn, p, after) => busy(btn, p.then(after || reload).catch((e) => { fill(msg, notice('error', errorText(e))); }));
  const open = t.state === 'open';
  const mine = t.assignee === me.name;
  const heldByOther = t.assignee && !mine;

  const claimBtn = open && !t.assignee ? h('button', { type: 'button', class: 'secondary', 'data-testid': 'claim',
    onclick: () => act(claimBtn, post(`/v1/tasks/${id}/claim`)) }, 'برداشتن کار') : null;
  const releaseBtn = open && mine ? h('button', { type: 'button', class: 'secondary', 'data-testid': 'unclaim',
    onclick: () => act(releaseBtn, post(`/v1/tasks/${id}/unclaim`)) }, 'رها کردن کار') : null;

  let transfer = null;
  if (open && me.role === 'branch' && !heldByOther) {
    const to = h('input', { id: 'transfer_branch', inputmode: 'numeric', dir: 'ltr', autocomplete: 'off', required: true });
    const reason = h('input', { id: 'transfer_reason', value: 'عملیات - تغییر شعبه بیمه‌پردازی' });
    const btn = h('button', { type: 'submit', class: 'secondary' }, 'انتقال');
    transfer = h('form', { class: 'card transfer', onsubmit: (ev) => {
      ev.preventDefault();
      const branch = asciiDigits(to.value.trim());
      if (!branch) return;
      act(btn, post(`/v1/tasks/${id}/transfer`, { branch, reason: reason.value.trim() || 'تغییر شعبه' }),
        () => navigate('/cartable', { done: `transfer:${id}:${branch}` }));
    } },
    h('h2', {}, 'تغییر شعبه بیمه‌پردازی'),
    h('p', { class: 'muted' }, 'اگر شعبه پرداخت مستمری تغییر کرده است، کار را پیش از پذیرش به شعبه اصلی فعلی بفرستید.'),
    h('div', { class: 'row' },
      h('div', { class: 'field' }, h('label', { for: 'transfer_branch' }, 'کد شعبه مقصد'), to),
      h('div', { class: 'field grow' }, h('label', { for: 'transfer_reason' }, 'علت'), reason)),
    h('div', { class: 'actions' }, btn));
  }

  const commentText = h('textarea', { id: 'comment', rows: 2, 'aria-label': 'یادداشت' });
  const commentBtn = h('button', { type: 'submit', class: 'secondary' }, 'افزودن یادداشت');
  const commentsBox = h('section', { class: 'card' }, h('h2', {}, 'یادداشت‌ها'),
    comments.items?.length ? h('ul', { class: 'comments' }, comments.items.map((c) =>
      h('li', {}, h('div', { class: 'muted' }, `${c.author || c.principal || ''} — ${faDateTime(c.at || c.created)}`), h('div', {}, c.text)))) :
      h('p', { class: 'empty' }, 'یادداشتی نیست.'),
    open ? h('form', { class: 'comment-form', onsubmit: (ev) => {
      ev.preventDefault();
      if (!commentText.value.trim()) return;
      act(commentBtn, post(`/v1/tasks/${id}/comments`, { text: commentText.value.trim() }));
    } }, commentText, commentBtn) : null);

  fill(main, 
    h('p', {}, h('a', { href: '#/cartable' }, '→ کارتابل')),
    h('div', { class: 'page-head' }, h('h1', {}, t.name || t.element), badge(TASK_STATE[t.state] || t.state, open ? 'info' : 'muted')),
    h('section', { class: 'card' }, h('dl', { class: 'kv' },
      [['نوع درخواست', names[t.process] || t.process], ['شماره درخواست', faDigits(t.instance)], ['وضعیت', t.status_text],
        ['کد ملی', faDigits(t.business_key || '')], ['شعبه', faDigits(t.branch || '')], ['شهرستان', t.county],
        ['ایجاد', faDateTime(t.created)], ['مهلت', t.due ? faDateTime(t.due) : ''], ['کارپذیر', t.assignee || 'برداشته نشده'],
        ['انجام‌دهنده', t.completed_by], ['انجام', t.completed ? faDateTime(t.completed) : '']]
        .filter(([, v]) => v).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      h('div', { class: 'actions' }, claimBtn, releaseBtn), msg),
    requestData(t.variables),
    open && !heldByOther ? h('section', { class: 'card' }, h('h2', {}, 'اقدام'),
      taskForm(t, async (data) => {
        await post(`/v1/tasks/${id}/complete`, Object.keys(data).length ? { data } : {});
        navigate('/cartable', { done: `complete:${id}` });
      }, { errorText })) :
      heldByOther ? notice('info', `این کار را ${t.assignee} برداشته است.`) : null,
    transfer,
    commentsBox);
}

