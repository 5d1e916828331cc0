// display.js -- what a step shows its applicant: the variables the model
// names in rv:display, sent by the API as `display` on the applicant's tasks
// (staff get all variables). Known names get their own view; the rest a
// labelled value.
import { h, notice, table, valueView } from './ui.js';
import { faDigits, faRials, faNumber } from './fa.js';

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
