// pages/applicant.js -- the portal: my requests, one request with its open
// steps (forms), and new requests (the services open to applicants).
import { get, post, withQuery, errorText, processNames, definitions } from '../api.js';
import { h, clear, fill, notice, badge, statusKind, table } from '../ui.js';
import { faDate, faDateTime, faDigits, asciiDigits } from '../fa.js';
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

// Services an applicant can ask for in the portal, with what each needs at the start.
export const SERVICES = [
  { process: 'supplementary-insurance', message: 'supplementary-request', title: 'بیمه تکمیلی درمان و عمر مستمری‌بگیران و افراد تبعی',
    text: 'ثبت‌نام یا انصراف خود و افراد تبعی در چهار گام.', single: true },
  { process: 'marriage-grant', title: 'کمک هزینه ازدواج', text: 'ثبت اطلاعات ازدواج برای دریافت کمک هزینه.' },
  { process: 'marriage-objection', title: 'پشتیبانی کمک هزینه ازدواج (اعتراض)', text: 'اعتراض به نتیجه و بارگذاری تصاویر مدارک.' },
  { process: 'premium-slip', title: 'صدور برگ پرداخت حق بیمه', text: 'مشاغل آزاد و بیمه اختیاری؛ دوره پرداخت تا پایان اسفند.',
    fields: [
      { id: 'mobile', label: 'تلفن همراه', type: 'string', required: true },
      { id: 'category', label: 'نوع بیمه', type: 'enum', required: true, values: ['self12', 'self14', 'self18', 'voluntary'],
        labels: { self12: 'مشاغل آزاد ۱۲٪', self14: 'مشاغل آزاد ۱۴٪', self18: 'مشاغل آزاد ۱۸٪', voluntary: 'بیمه اختیاری' } },
      { id: 'wage_daily_rials', label: 'دستمزد روزانه مبنای قرارداد (ریال)', type: 'long', required: true },
    ], fixed: { channel: 'online' } },
  { process: 'voluntary-contract', title: 'انعقاد قرارداد بیمه اختیاری', text: 'ادامه بیمه به صورت اختیاری.',
    fields: [{ id: 'mobile', label: 'تلفن همراه', type: 'string', required: true }] },
  { process: 'coverage-inquiry', title: 'استعلام وضعیت بیمه‌ای و مستمری', text: 'صدور گواهی وضعیت برای ارائه به مراجع.' },
];

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

/** One request; waits a moment for its first step when the engine is still looking things up. */
export async function request(main, { params }) {
  const id = params[0];
  let r = await get(`/v1/my/requests/${id}`);
  for (let i = 0; i < 15 && r.status === 'active' && !r.tasks.length && !r.status_text; i++) {
    await sleep(300);
    r = await get(`/v1/my/requests/${id}`);
  }
  const reload = () => request(main, { params });
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
    steps.length ? h('div', { class: 'steps' }, steps) : (r.status === 'active' ? h('p', { class: 'muted' }, 'درخواست شما در دست بررسی است؛ اقدامی از طرف شما لازم نیست.') : null),
    h('section', { class: 'card' }, h('h2', {}, 'سابقه وضعیت'),
      r.history.length ? h('ol', { class: 'timeline' }, r.history.map((x) =>
        h('li', {}, h('time', {}, faDateTime(x.at)), h('span', {}, x.status_text)))) : h('p', { class: 'empty' }, '—')));
}

export async function services(main) {
  const defs = await definitions().catch(() => []);
  const deployed = new Set(defs.map((d) => d.process));
  const list = SERVICES.filter((s) => deployed.has(s.process));
  fill(main, h('h1', {}, 'درخواست جدید'),
    h('ul', { class: 'cards services' }, list.map((s) => h('li', { class: 'card' },
      h('a', { href: `#/new/${s.process}`, class: 'stretch', 'data-process': s.process },
        h('div', { class: 'title' }, s.title), h('div', { class: 'muted' }, s.text))))));
}

export async function start(main, { params, me, navigate }) {
  const svc = SERVICES.find((s) => s.process === params[0]);
  if (!svc) throw Object.assign(new Error('unknown'), { status: 404 });
  const msg = h('div', { class: 'msg' });
  const inputs = {};
  const form = h('form', { class: 'card task-form' },
    h('h1', {}, svc.title), h('p', {}, svc.text),
    (svc.fields || []).map((f) => {
      const id = 'start_' + f.id;
      const input = f.type === 'enum'
        ? h('select', { id }, h('option', { value: '' }, '— انتخاب کنید —'), f.values.map((v) => h('option', { value: v }, f.labels?.[v] || v)))
        : h('input', { id, dir: 'ltr', inputmode: f.type === 'long' || f.id === 'mobile' ? 'numeric' : null });
      inputs[f.id] = [f, input];
      return h('div', { class: 'field' }, h('label', { for: id }, f.label, h('span', { class: 'req' }, ' *')), input);
    }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'ثبت درخواست')), msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(msg);
    const vars = { ...(svc.fixed || {}) };
    for (const [k, [f, input]] of Object.entries(inputs)) {
      const v = asciiDigits(input.value.trim());
      if (!v) { msg.append(notice('error', `«${f.label}» را وارد کنید`)); return; }
      if (f.type === 'long') {
        if (!/^\d+$/.test(v.replace(/[,٬]/g, ''))) { msg.append(notice('error', `«${f.label}» باید عدد باشد`)); return; }
        vars[k] = Number(v.replace(/[,٬]/g, ''));
      } else vars[k] = v;
    }
    try {
      // The applicant files the request (the server adds the national ID and
      // the business key); a message start reaches the open request if there
      // is one (one open request per pensioner). request_key: a double click
      // files one request.
      const key = 'console-' + (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
      const body = { ...(svc.message ? { message: svc.message } : { process: svc.process }), request_key: key };
      if (Object.keys(vars).length) body.variables = vars;
      let r;
      try {
        r = await post('/v1/my/requests', body);
      } catch (e) {
        if (e.status !== 404 && e.status !== 405) throw e;
        // an older server: start the process directly, one open request kept by the console
        if (svc.single) {
          const open = await get(withQuery('/v1/my/requests', { process: svc.process, status: 'active', limit: 1 }));
          if (open.items.length) { navigate(`/my/${open.items[0].id}`); return; }
        }
        r = await post('/v1/instances', { process: svc.process, variables: { ...vars, national_id: me.scope.national_id }, request_key: key });
      }
      navigate(`/my/${r.id}`);
    } catch (e) {
      msg.append(notice('error', e.status === 403 || e.status === 400 && /open/.test(e.problem?.detail || '')
        ? 'این خدمت در حال حاضر از طریق این سامانه قابل درخواست نیست.' : errorText(e)));
    }
  });
  fill(main, h('p', {}, h('a', { href: '#/new' }, '→ خدمات')), form);
}

export { table };
