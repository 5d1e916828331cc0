// display.js -- what a step shows its applicant: the variables the model
// names in rv:display, sent by the API as `display` on the applicant's tasks
// (staff get all variables). Known names get their own view; the rest a
// labelled value.
import { h, notice, table, valueView } from './ui.js';
import { faDigits, faRials, faNumber } from './fa.js';
import { getToken, ApiError, errorText } from './api.js';

const LABELS = {
  period_label: 'دوره قرارداد',
  hidden_count: 'افراد تبعی نمایش‌داده‌نشده',
  monthly_premium_rials: 'حق بیمه ماهانه',
  grant_rials: 'مبلغ کمک هزینه',
  full_name: 'نام',
  paid_days: 'روزهای پرداخت‌شده',
  last_paid_period: 'آخرین دوره پرداخت‌شده',
  last_wage_rials: 'آخرین دستمزد',
  premium_rate_percent: 'نرخ حق بیمه (درصد)',
  wage_base_rials: 'دستمزد مبنا',
  start_date_j: 'تاریخ شروع',
  contract_no: 'شماره قرارداد',
  contract_date_j: 'تاریخ قرارداد',
  payment_id: 'شناسه پرداخت',
  slip_amount: 'مبلغ برگ پرداخت',
  payment_deadline_j: 'مهلت پرداخت',
  exam_deadline_j: 'مهلت معاینات',
  slip_period: 'دوره برگ پرداخت',
  first_period: 'اولین ماه پرداخت‌نشده',
  max_months: 'حداکثر ماه‌های قابل پرداخت',
  last_allowed_period: 'آخرین ماه مجاز (اسفند)',
  category: 'نوع بیمه',
  valid_until_text: 'اعتبار تا',
  fetch_count: 'تعداد دریافت سند',
  document: 'سند',
  fetches: 'دریافت‌ها',
  certificate_image: 'تصویر عقدنامه',
  id_marriage_page_image: 'تصویر صفحه ازدواج شناسنامه',
};

const ERRORS = ['step3_errors', 'declaration_errors', 'objection_errors', 'period_error', 'wage_error'];
// shown by a form widget instead (forms.js)
const IN_FORM = new Set(['persons']);

export function personView(p) {
  return h('dl', { class: 'kv' },
    [['نام', `${p.first_name || ''} ${p.last_name || ''}`.trim()], ['نام پدر', p.father_name], ['کد ملی', faDigits(p.national_id || '')],
      ['تاریخ تولد', faDigits(p.birth_date || '')], ['شماره مستمری', faDigits(p.pension_no || '')],
      ['شعبه', faDigits(p.branch || '')], ['شهرستان', p.county], ['تلفن همراه', faDigits(p.mobile || '')]]
      .filter(([, v]) => v).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function finalStatusesView(rows) {
  return table([
    { title: 'نام', cell: (x) => x.name },
    { title: 'نسبت', cell: (x) => x.relation_label },
    { title: 'کد ملی', cell: (x) => faDigits(x.national_id) },
    { title: 'وضعیت فعلی', cell: (x) => x.status_label },
    { title: 'عملیات', cell: (x) => x.action_label || '—' },
    { title: 'وضعیت جدید', cell: (x) => x.new_status_label },
  ], rows, { class: 'final-statuses' });
}

function scalar(k, v) {
  if (typeof v === 'number' && /_rials$|^slip_amount$/.test(k)) return faRials(v);
  if (typeof v === 'number') return faNumber(v);
  if (typeof v === 'string') return faDigits(v);
  return valueView(v);
}

/** The display block of one step, or null. */
export function displayView(d) {
  if (!d || typeof d !== 'object' || !Object.keys(d).length) return null;
  const out = [];
  for (const k of ERRORS) {
    const e = d[k];
    if (!e || (Array.isArray(e) && !e.length)) continue;
    out.push(notice('error', Array.isArray(e) ? e.join('، ') : String(e)));
  }
  if (Array.isArray(d.terms)) {
    out.push(h('h3', {}, 'نکات و شرایط قرارداد', d.period_label ? ` — دوره ${d.period_label}` : ''),
      h('ol', { class: 'terms' }, d.terms.map((t) => h('li', {}, faDigits(t)))));
  }
  if (d.person && typeof d.person === 'object') out.push(h('h3', {}, 'اطلاعات مستمری‌بگیر'), personView(d.person));
  if (Array.isArray(d.final_statuses)) out.push(h('h3', {}, 'وضعیت جدید بیمه تکمیلی افراد'), finalStatusesView(d.final_statuses));
  if (d.hidden_count) {
    out.push(h('p', { class: 'muted' }, `${faDigits(d.hidden_count)} نفر از افراد تبعی به دلیل پایان کفالت پیش از تاریخ درخواست نمایش داده نمی‌شوند.`));
  }
  const done = new Set([...ERRORS, 'terms', 'person', 'final_statuses', 'hidden_count', ...IN_FORM]);
  if (Array.isArray(d.terms)) done.add('period_label');
  const rest = Object.entries(d).filter(([k, v]) => !done.has(k) && v !== null && v !== undefined && v !== '');
  if (rest.length) {
    out.push(h('dl', { class: 'kv' }, rest.map(([k, v]) => [h('dt', {}, LABELS[k] || k), h('dd', {}, scalar(k, v))])));
  }
  return out.length ? h('div', { class: 'display' }, out) : null;
}

// --- documents (the portal's document store): variables holding doc:sha256-… ---

const DOC_RE = /^doc:sha256-([0-9a-f]{64})$/;
const DOC_EXT = { 'image/jpeg': 'jpg', 'image/png': 'png', 'application/pdf': 'pdf' };

/**
 * Download a document with the bearer token and hand it to the browser as a
 * blob URL (the CSP allows nothing from elsewhere, and a plain link would go
 * without the token). Resolves when the download was started.
 */
export async function downloadDocument(docId, name) {
  const m = DOC_RE.exec(docId);
  if (!m) throw new Error('not a document id');
  const res = await fetch(`/v1/documents/${m[1]}`, { cache: 'no-store', headers: { Authorization: 'Bearer ' + (getToken() || '') } });
  if (!res.ok) {
    const ct = res.headers.get('Content-Type') || '';
    throw new ApiError(res.status, ct.includes('json') ? await res.json() : null);
  }
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: `${name || m[1].slice(0, 16)}.${DOC_EXT[blob.type] || 'bin'}`, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** [name, docId] of the variables that hold document ids (also in lists). */
export function documentRefs(vars) {
  const out = [];
  for (const [k, v] of Object.entries(vars || {})) {
    for (const x of Array.isArray(v) ? v : [v]) if (typeof x === 'string' && DOC_RE.test(x)) out.push([k, x]);
  }
  return out;
}

/** The request's documents as download buttons, or null when it has none. */
export function documentsView(vars) {
  const refs = documentRefs(vars);
  if (!refs.length) return null;
  const msg = h('div', { class: 'msg', 'aria-live': 'polite' });
  return h('div', { class: 'documents', 'data-testid': 'documents' }, h('h3', {}, 'مدارک بارگذاری‌شده'),
    h('ul', {}, refs.map(([k, id]) => {
      const b = h('button', { type: 'button', class: 'link', 'data-doc': id, onclick: async () => {
        msg.textContent = '';
        b.disabled = true;
        try { await downloadDocument(id, k); } catch (e) { msg.append(notice('error', errorText(e))); } finally { b.disabled = false; }
      } }, `دریافت ${LABELS[k] || k}`);
      return h('li', {}, b);
    })), msg);
}
