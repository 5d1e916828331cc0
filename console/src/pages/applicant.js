// pages/applicant.js -- the portal: my requests, one request with its open
// steps (forms), and new requests (the services open to applicants).
import { get, post, withQuery, errorText, processNames, definitions } from '../api.js';
import { h, clear, fill, notice, badge, statusKind, table } from '../ui.js';
import { faDate, faDateTime, faDigits, asciiDigits, valueLabel, parseDateInput } from '../fa.js';
import { taskForm } from '../forms.js';
import { displayView } from '../display.js';

// The portal steps of the supplementary insurance directive (directive 000).
const SUPP_STEPS = [
  ['step1_terms', 'شرایط قرارداد'],
  ['step2_data', 'اطلاعات مستمری‌بگیر'],
  ['step3_select', 'ثبت‌نام / انصراف افراد'],
  ['step4_review', 'تایید نهایی'],
];

const STEP_HELP = {
  step1_terms: 'نکات و شرایط قرارداد بیمه تکمیلی درمان و عمر دوره جاری را مطالعه کنید و برای ادامه «تایید و ادامه» را بزنید.',
  step2_data: 'اطلاعات هویتی و مستمری خود را بررسی کنید. اگر اطلاعات مغایرت دارد، درخواست غیرحضوری ادامه نمی‌یابد و باید به آخرین شعبه‌ای که پرونده شما در آن فعال است مراجعه کنید.',
  step3_select: 'برای خودتان و افراد تبعی، ثبت‌نام یا انصراف را انتخاب کنید. افراد تبعی که تاریخ خاتمه کفالت آنان گذشته است نمایش داده نمی‌شوند.',
  step4_review: 'وضعیت جدید بیمه تکمیلی افراد را بررسی کنید. «ثبت نهایی» درخواست را برای کانون بازنشستگان شهرستان می‌فرستد؛ برای اصلاح به گام ۳ بازگردید.',
};

const DECISION_LABELS = {
  step2_data: { confirm: 'اطلاعات صحیح است؛ ادامه' },
  step4_review: { confirm: 'ثبت نهایی', back: 'بازگشت به گام ۳' },
};

// How the portal presents the services the models open to applicants. What
// a service asks for at the start comes from the API (GET /v1/definitions:
// "startable", "start_form", "start_messages": the start event's rv:fields);
// here only the Persian title and text, values the portal sets itself
// (fixed: not shown) and fields that are for other channels (hide).
export const SERVICE_TEXT = {
  'supplementary-insurance': { title: 'بیمه تکمیلی درمان و عمر مستمری‌بگیران و افراد تبعی',
    text: 'ثبت‌نام یا انصراف خود و افراد تبعی در چهار گام.' },
  'marriage-grant': { title: 'کمک هزینه ازدواج', text: 'ثبت اطلاعات ازدواج برای دریافت کمک هزینه.' },
  'marriage-objection': { title: 'پشتیبانی کمک هزینه ازدواج (اعتراض)', text: 'اعتراض به نتیجه و بارگذاری تصاویر مدارک.' },
  'premium-slip': { title: 'صدور برگ پرداخت حق بیمه', text: 'مشاغل آزاد و بیمه اختیاری؛ دوره پرداخت تا پایان اسفند.',
    fixed: { channel: 'online' }, hide: ['agency_code'] },
  'voluntary-contract': { title: 'انعقاد قرارداد بیمه اختیاری', text: 'ادامه بیمه به صورت اختیاری.' },
  'coverage-inquiry': { title: 'استعلام وضعیت بیمه‌ای و مستمری', text: 'صدور گواهی وضعیت برای ارائه به مراجع.' },
};

// Persian words for start-form enum values (others: fa.js VALUE_LABELS, else as they are).
const START_VALUE_LABELS = {
  category: { self12: 'مشاغل آزاد ۱۲٪', self14: 'مشاغل آزاد ۱۴٪', self18: 'مشاغل آزاد ۱۸٪', voluntary: 'بیمه اختیاری' },
};

/** The services this applicant may start: [{process, title, text, message?, fields, fixed}], from the latest versions. */
export async function startableServices() {
  const latest = {};
  for (const d of await definitions()) if (!latest[d.process] || latest[d.process].version < d.version) latest[d.process] = d;
  const order = Object.keys(SERVICE_TEXT);
  const rank = (p) => (order.includes(p) ? order.indexOf(p) : order.length);
  const out = [];
  for (const d of Object.values(latest)) {
    const msg = (d.start_messages || [])[0];
    if (!d.startable && !msg) continue;
    const t = SERVICE_TEXT[d.process] || {};
    const hide = new Set([...(t.hide || []), ...Object.keys(t.fixed || {})]);
    out.push({
      process: d.process, title: t.title || d.name || d.process, text: t.text || msg?.name || '',
      // a message start reaches the applicant's open request if there is one
      message: d.startable ? null : msg.message,
      fields: ((d.startable ? d.start_form : msg.form) || []).filter((f) => !hide.has(f.id)),
      fixed: t.fixed || {},
    });
  }
  return out.sort((a, b) => rank(a.process) - rank(b.process) || a.title.localeCompare(b.title, 'fa'));
}
export async function myRequests(main, { query, navigate }) {
  const offset = Number(query.offset || 0);
  const [r, names] = await Promise.all([
    get(withQuery('/v1/my/requests', { limit: 20, offset: offset || '' })),
    processNames().catch(() => ({})),
  ]);
  fill(main, 
    h('div', { class: 'page-head' }, h('h1', {}, 'درخواست‌های من'),
      h('a', { class: 'button primary', href: '#/new' }, 'درخواست جدید')),
    r.items.length ? h('ul', { class: 'cards requests', 'data-testid': 'my-requests' }, r.items.map((x) =>
      h('li', { class: 'card request', 'data-instance': x.id },
        h('a', { href: `#/my/${x.id}`, class: 'stretch' },
          h('div', { class: 'title' }, x.process_name || names[x.process] || x.process),
          h('div', { class: 'status' }, badge(x.status_label || x.status_text || '', statusKind(x.status))),
          h('div', { class: 'meta muted' }, `شماره ${faDigits(x.id)} — ثبت ${faDate(x.started)}`,
            x.ended ? ` — پایان ${faDate(x.ended)}` : ''))))) :
      h('p', { class: 'empty' }, 'هنوز درخواستی ثبت نکرده‌اید.'),
    pager(offset, 20, r.more, (o) => navigate('/my', { offset: o })));
}

export function pager(offset, limit, more, go) {
  if (!offset && !more) return null;
  return h('div', { class: 'pager' },
    h('button', { type: 'button', class: 'secondary', disabled: offset <= 0, onclick: () => go(Math.max(0, offset - limit)) }, 'قبلی'),
    h('span', { class: 'muted' }, `از ${faDigits(offset + 1)}`),
    h('button', { type: 'button', class: 'secondary', disabled: !more, onclick: () => go(offset + limit) }, 'بعدی'));
}

function stepper(current) {
  const ix = SUPP_STEPS.findIndex(([e]) => e === current);
  return h('ol', { class: 'stepper', 'aria-label': 'گام‌ها' }, SUPP_STEPS.map(([e, t], i) =>
    h('li', { class: i < ix ? 'done' : i === ix ? 'current' : '', 'aria-current': i === ix ? 'step' : null },
      h('span', { class: 'n' }, faDigits(i + 1)), h('span', { class: 't' }, t))));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The request page looks again by itself while the applicant has nothing to
// do and the request is still running: a step that comes only once the
// adapters have answered (the premium slip's period) then shows without a
// reload. Polite: one call every POLL_MS, at most POLL_MAX per page view
// (adapters answer in seconds; what staff do takes days, so after that a
// button looks again), none while the tab is hidden (it looks again as soon
// as the tab is shown), and none once the page is left -- the router renders
// every page into a new <main>, so a detached one means the applicant moved on.
const POLL_MS = 2000;
const POLL_MAX = 60;

/** Still running with no open step of the applicant's: worth looking again. */
const awaitsOthers = (r) => r.status === 'active' && !r.ended && !r.tasks.length;

/** What the page shows of a request; a poll redraws only when it changed. */
const shown = (r) => JSON.stringify([r.status, r.status_text, r.status_label, r.ended, r.history.length,
  r.tasks.map((t) => t.id)]);

/** One request; waits a moment for its first step when the engine is still looking things up. */
export async function request(main, { params }) {
  const id = params[0];
  let r = await get(`/v1/my/requests/${id}`);
  for (let i = 0; i < 15 && r.status === 'active' && !r.tasks.length && !r.status_text; i++) {
    await sleep(300);
    r = await get(`/v1/my/requests/${id}`);
  }
  const view = {};             // this rendering of the page; a newer one (reload) stops our polls
  main.rvRequestView = view;
  drawRequest(main, r, () => request(main, { params }));
  if (awaitsOthers(r)) watch(main, view, id, r, params);
}

/** Poll the request while awaitsOthers (see POLL_MS). */
function watch(main, view, id, r0, params) {
  let polls = 0;
  let last = shown(r0);
  const alive = () => main.isConnected && main.rvRequestView === view;
  const onShow = () => {
    if (document.hidden) return;
    document.removeEventListener('visibilitychange', onShow);
    tick();
  };
  const next = () => {
    if (!alive()) return;
    if (polls >= POLL_MAX) {
      main.querySelector('[data-testid="waiting"]')?.append(' ',
        h('button', { type: 'button', class: 'secondary', 'data-testid': 'look-again', onclick: () => request(main, { params }) },
          'به‌روزرسانی'));
      return;
    }
    setTimeout(tick, POLL_MS);
  };
  async function tick() {
    if (!alive()) return;
    if (document.hidden) {             // looked at again once the tab is shown
      document.addEventListener('visibilitychange', onShow);
      return;
    }
    polls++;
    let r;
    try {
      r = await get(`/v1/my/requests/${id}`);
    } catch (e) {
      if (e.status >= 400 && e.status < 500 && e.status !== 429) return;   // gone, or signed out: stop
      return next();                                                      // a blip: try again later
    }
    if (!alive()) return;
    if (shown(r) !== last) {
      last = shown(r);
      drawRequest(main, r, () => request(main, { params }));
    }
    if (awaitsOthers(r)) next();
  }
  next();
}

function drawRequest(main, r, reload) {
  const steps = r.tasks.map((t) => {
    const isSupp = r.process === 'supplementary-insurance' && SUPP_STEPS.some(([e]) => e === t.element);
    return h('section', { class: 'card step', 'data-element': t.element },
      isSupp ? stepper(t.element) : null,
      h('h2', {}, t.name),
      STEP_HELP[t.element] ? h('p', {}, STEP_HELP[t.element]) : null,
      t.due ? h('p', { class: 'muted' }, `مهلت: ${faDateTime(t.due)}`) : null,
      displayView(t.display),
      taskForm(t, async (data) => {
        await post(`/v1/tasks/${t.id}/complete`, Object.keys(data).length ? { data } : {});
        await sleep(150);
        await reload();
      }, { decisionLabels: DECISION_LABELS[t.element], errorText }));
  });
  fill(main, 
    h('p', {}, h('a', { href: '#/my' }, '→ درخواست‌های من')),
    h('div', { class: 'page-head' }, h('h1', {}, r.process_name || r.process),
      h('span', { class: 'muted' }, `شماره ${faDigits(r.id)}`)),
    h('div', { class: 'card status-card' },
      h('div', { class: 'label' }, r.status === 'active' ? 'وضعیت' : 'نتیجه'),
      h('div', { class: 'big', 'data-testid': 'status' }, r.status_label || r.status_text || ''),
      h('div', { class: 'muted' }, `ثبت: ${faDateTime(r.started)}`, r.ended ? ` — پایان: ${faDateTime(r.ended)}` : '')),
    steps.length ? h('div', { class: 'steps' }, steps) : (r.status === 'active' ? h('p', { class: 'muted', 'data-testid': 'waiting' }, 'درخواست شما در دست بررسی است؛ اقدامی از طرف شما لازم نیست.') : null),
    h('section', { class: 'card' }, h('h2', {}, 'سابقه وضعیت'),
      r.history.length ? h('ol', { class: 'timeline' }, r.history.map((x) =>
        h('li', {}, h('time', {}, faDateTime(x.at)), h('span', {}, x.status_text)))) : h('p', { class: 'empty' }, '—')));
}

export async function services(main) {
  const list = await startableServices().catch(() => []);
  fill(main, h('h1', {}, 'درخواست جدید'),
    list.length ? h('ul', { class: 'cards services' }, list.map((s) => h('li', { class: 'card' },
      h('a', { href: `#/new/${s.process}`, class: 'stretch', 'data-process': s.process },
        h('div', { class: 'title' }, s.title), h('div', { class: 'muted' }, s.text))))) :
      h('p', { class: 'empty' }, 'در حال حاضر خدمتی برای درخواست از این سامانه نیست.'));
}

// One start-form field: {el, value(): [present, value] | throws message}.
function startField(f) {
  const id = 'start_' + f.id;
  const label = h('label', { for: id }, f.label || f.id, f.required ? h('span', { class: 'req' }, ' *') : null);
  let input;
  if (f.type === 'enum') {
    input = h('select', { id, name: f.id }, h('option', { value: '' }, '— انتخاب کنید —'),
      (f.values || []).map((v) => h('option', { value: v }, START_VALUE_LABELS[f.id]?.[v] || valueLabel(v))));
  } else if (f.type === 'boolean') {
    input = h('input', { id, name: f.id, type: 'checkbox' });
    return { el: h('div', { class: 'field check', 'data-field': f.id }, input, label), value: () => [true, input.checked] };
  } else {
    const numeric = f.type === 'long' || /mobile|national_id/.test(f.id);
    input = h('input', { id, name: f.id, dir: 'ltr', autocomplete: 'off', inputmode: numeric ? 'numeric' : null,
      placeholder: f.type === 'date' ? '۱۴۰۴/۰۹/۱۵' : null });
  }
  const el = h('div', { class: 'field', 'data-field': f.id }, label, input);
  return { el, value: () => {
    const raw = asciiDigits(input.value.trim());
    if (!raw) return [false];
    if (f.type === 'long') {
      const t = raw.replace(/[,٬\s]/g, '');
      if (!/^-?\d+$/.test(t)) throw `«${f.label}» باید عدد باشد`;
      return [true, Number(t)];
    }
    if (f.type === 'date') {
      const iso = parseDateInput(raw);
      if (!iso) throw `«${f.label}» تاریخ معتبر نیست`;
      return [true, iso];
    }
    return [true, raw];
  } };
}

export async function start(main, { params, me, navigate }) {
  const svc = (await startableServices()).find((s) => s.process === params[0]);
  if (!svc) throw Object.assign(new Error('unknown'), { status: 404 });
  const msg = h('div', { class: 'msg' });
  const fields = svc.fields.map((f) => [f, startField(f)]);
  const form = h('form', { class: 'card task-form', 'data-process': svc.process, novalidate: true },
    h('h1', {}, svc.title), h('p', {}, svc.text),
    fields.map(([, w]) => w.el),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'ثبت درخواست')), msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(msg);
    const vars = { ...svc.fixed };
    try {
      for (const [f, w] of fields) {
        const [present, v] = w.value();
        if (present) vars[f.id] = v;
        else if (f.required) throw `«${f.label || f.id}» را وارد کنید`;
      }
    } catch (e) {
      msg.append(notice('error', String(e)));
      return;
    }
    try {
      // The applicant files the request (the server adds the national ID and
      // the business key); a message start reaches the open request if there
      // is one (one open request per pensioner). request_key: a double click
      // files one request.
      const key = 'console-' + (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
      const body = { ...(svc.message ? { message: svc.message } : { process: svc.process }), request_key: key };
      if (Object.keys(vars).length) body.variables = vars;
      const r = await post('/v1/my/requests', body);
      navigate(`/my/${r.id}`);
    } catch (e) {
      msg.append(notice('error', e.status === 403 ? 'این خدمت در حال حاضر از طریق این سامانه قابل درخواست نیست.' : errorText(e)));
    }
  });
  fill(main, h('p', {}, h('a', { href: '#/new' }, '→ خدمات')), form);
}

export { table };
