// forms.js -- a task's form, built from the fields the model declares
// (rv:field: id, label, type string|long|boolean|date|enum|json, required, values).
// The API checks the data again (types, required, enum values, no other field).
import { h, clear, notice, busy, table } from './ui.js';
import { valueLabel, asciiDigits, parseDateInput, faDigits, JALALI_MONTHS } from './fa.js';
import { getToken, ApiError, errorText } from './api.js';

const LONG_TEXT = /reason|text|note|comment|description|corrections/;

/** The decision field: a required enum whose id ends in _decision, shown as buttons. */
function decisionField(fields) {
  return fields.find((f) => f.type === 'enum' && f.required && /_decision$/.test(f.id));
}

// The document store (POST /v1/documents) takes these; the server checks the
// file's first bytes against the type and bounds its size (docs/api.md).
const DOC_TYPES = ['image/jpeg', 'image/png', 'application/pdf'];
const DOC_MAX = 2 * 1024 * 1024;

/** Upload one file; resolves to {id: 'doc:sha256-…', size, type}. */
export async function uploadDocument(file) {
  const res = await fetch('/v1/documents', {
    method: 'POST', cache: 'no-store', body: file,
    headers: { Authorization: 'Bearer ' + (getToken() || ''), 'Content-Type': file.type },
  });
  const data = (res.headers.get('Content-Type') || '').includes('json') ? await res.json() : null;
  if (!res.ok) {
    if (res.status === 401) window.dispatchEvent(new CustomEvent('ravand:unauthorized'));
    throw new ApiError(res.status, data);
  }
  return data;
}

// --- field widgets: each returns {el, value(): [present, value] | throws message} ---

function enumWidget(f) {
  const name = 'f_' + f.id;
  const radios = (f.values || []).map((v) => h('label', { class: 'choice' },
    h('input', { type: 'radio', name, value: v }), ' ', valueLabel(v)));
  const el = h('fieldset', { class: 'field', 'data-field': f.id },
    h('legend', {}, f.label || f.id, f.required ? h('span', { class: 'req' }, ' *') : null), radios);
  return { el, value: () => {
    const c = el.querySelector('input:checked');
    return c ? [true, c.value] : [false];
  } };
}

function booleanWidget(f) {
  const id = 'f_' + f.id;
  const input = h('input', { type: 'checkbox', id });
  const el = h('div', { class: 'field check', 'data-field': f.id }, input, h('label', { for: id }, f.label || f.id));
  return { el, value: () => [true, input.checked] };
}

function textWidget(f, kind) {
  const id = 'f_' + f.id;
  const attrs = { id, name: f.id };
  let input;
  if (kind === 'long') input = h('input', { ...attrs, inputmode: 'numeric', dir: 'ltr', autocomplete: 'off' });
  else if (kind === 'date') input = h('input', { ...attrs, placeholder: '۱۴۰۴/۰۹/۱۵', dir: 'ltr', autocomplete: 'off' });
  else if (kind === 'json') input = h('textarea', { ...attrs, rows: 4, dir: 'ltr', spellcheck: 'false' });
  else if (LONG_TEXT.test(f.id)) input = h('textarea', { ...attrs, rows: 3 });
  else input = h('input', { ...attrs, autocomplete: 'off' });
  const hint = kind === 'date' ? h('small', { class: 'muted' }, 'تاریخ شمسی، مثلاً ۱۴۰۴/۰۹/۱۵') : null;
  const el = h('div', { class: 'field', 'data-field': f.id },
    h('label', { for: id }, f.label || f.id, f.required ? h('span', { class: 'req' }, ' *') : null), input, hint);
  return { el, value: () => {
    const raw = input.value.trim();
    if (raw === '') return [false];
    if (kind === 'long') {
      const t = asciiDigits(raw).replace(/[,٬\s]/g, '');
      if (!/^-?\d+$/.test(t)) throw `«${f.label}» باید عدد صحیح باشد`;
      return [true, Number(t)];
    }
    if (kind === 'date') {
      const iso = parseDateInput(raw);
      if (!iso) throw `«${f.label}» تاریخ معتبر نیست`;
      return [true, iso];
    }
    if (kind === 'json') {
      try { return [true, JSON.parse(raw)]; } catch { throw `«${f.label}» باید JSON معتبر باشد`; }
    }
    return [true, /national_id|mobile|sheba|_no$/.test(f.id) ? asciiDigits(raw) : raw];
  } };
}

// An image (or PDF) for the portal's document store: the file is uploaded
// when chosen (POST /v1/documents) and the form carries its id
// (doc:sha256-…); the server accepts only ids of the user's own uploads.
function imageWidget(f) {
  const id = 'f_' + f.id;
  const input = h('input', { type: 'file', id, accept: DOC_TYPES.join(',') });
  const info = h('small', { class: 'muted', 'data-testid': 'upload-' + f.id, 'aria-live': 'polite' });
  let ref = null, pending = null, failed = null;
  input.addEventListener('change', async () => {
    ref = null;
    failed = null;
    const file = input.files[0];
    if (!file) { info.textContent = ''; return; }
    if (!DOC_TYPES.includes(file.type)) { failed = 'فقط تصویر JPEG یا PNG یا فایل PDF'; info.textContent = failed; return; }
    if (file.size > DOC_MAX) { failed = 'حجم فایل بیش از ۲ مگابایت است'; info.textContent = failed; return; }
    info.textContent = 'در حال بارگذاری…';
    const p = pending = uploadDocument(file);
    try {
      const d = await p;
      if (pending !== p) return;                       // another file was chosen meanwhile
      ref = d.id;
      info.textContent = `${file.name} — ${faDigits(Math.ceil(file.size / 1024))} کیلوبایت — بارگذاری شد`;
      info.dataset.doc = d.id;
    } catch (e) {
      if (pending !== p) return;
      failed = errorText(e);
      info.textContent = 'بارگذاری نشد: ' + failed;
    } finally {
      if (pending === p) pending = null;
    }
  });
  const el = h('div', { class: 'field', 'data-field': f.id },
    h('label', { for: id }, f.label || f.id, f.required ? h('span', { class: 'req' }, ' *') : null), input, info);
  return { el, value: () => {
    if (pending) throw `«${f.label || f.id}» هنوز بارگذاری نشده است؛ چند لحظه صبر کنید`;
    if (failed) throw `«${f.label || f.id}»: ${failed}`;
    return ref ? [true, ref] : [false];
  } };
}

// Premium slip: number of months from the first unpaid month, up to Esfand.
// With the step's display (first_period "1405-01", max_months) each option
// names its months: "۳ ماه: فروردین تا خرداد ۱۴۰۵".
function monthsWidget(f, d) {
  const id = 'f_' + f.id;
  const m = /^(\d{4})-(\d{1,2})$/.exec(String(d?.first_period || ''));
  const first = m ? { jy: +m[1], jm: +m[2] } : null;
  const max = Number(d?.max_months) || (first ? 13 - first.jm : 12);
  const label = (n) => {
    if (!first) return `${faDigits(n)} ماه`;
    const last = first.jm + n - 1;
    return n === 1 ? `۱ ماه: ${JALALI_MONTHS[first.jm - 1]} ${faDigits(first.jy)}`
      : `${faDigits(n)} ماه: ${JALALI_MONTHS[first.jm - 1]} تا ${JALALI_MONTHS[last - 1]} ${faDigits(first.jy)}`;
  };
  const sel = h('select', { id, name: f.id },
    h('option', { value: '' }, '— انتخاب کنید —'),
    Array.from({ length: Math.max(1, Math.min(12, max)) }, (_, i) => h('option', { value: i + 1 }, label(i + 1))));
  const el = h('div', { class: 'field', 'data-field': f.id },
    h('label', { for: id }, f.label || f.id, f.required ? h('span', { class: 'req' }, ' *') : null), sel,
    h('small', { class: 'muted' }, `دوره پرداخت از اولین ماه پرداخت‌نشده سال است و حداکثر تا پایان ${JALALI_MONTHS[11]} ادامه دارد؛ تعداد بیشتر پذیرفته نمی‌شود.`));
  return { el, value: () => (sel.value ? [true, Number(sel.value)] : [false]) };
}

// Supplementary insurance, step 3: who registers or cancels.
// With the persons list (staff, or when the API shows it to the applicant) a
// row per person; without it the applicant enters national IDs.
function changesWidget(f, vars) {
  const persons = Array.isArray(vars?.persons) ? vars.persons : null;   // display (applicant) or variables (staff)
  const rowsBox = h('div', { class: 'rows' });
  const el = h('fieldset', { class: 'field changes', 'data-field': f.id }, h('legend', {}, 'ثبت‌نام / انصراف افراد'));
  if (persons) {
    el.append(table([
      { title: 'انتخاب', cell: (p) => h('input', { type: 'checkbox', 'data-nid': p.national_id, 'data-action': p.allowed_action,
        'aria-label': `${p.allowed_action_label} ${p.name}` }) },
      { title: 'نام', cell: (p) => p.name },
      { title: 'نسبت', cell: (p) => p.relation_label },
      { title: 'کد ملی', cell: (p) => faDigits(p.national_id) },
      { title: 'خاتمه کفالت', cell: (p) => faDigits(p.dependency_end || '—') },
      { title: 'وضعیت فعلی', cell: (p) => p.status_label },
      { title: 'عملیات', cell: (p) => p.allowed_action_label },
    ], persons, { class: 'persons' }));
    return { el, value: () => {
      const ch = [...el.querySelectorAll('input[type=checkbox]:checked')].map((c) => ({ national_id: c.dataset.nid, action: c.dataset.action }));
      return ch.length ? [true, ch] : [false];
    } };
  }
  const addRow = (nid = '', action = 'register') => {
    const row = h('div', { class: 'row change' },
      h('input', { class: 'nid', 'aria-label': 'کد ملی', placeholder: 'کد ملی', inputmode: 'numeric', dir: 'ltr', value: nid }),
      h('select', { class: 'action', 'aria-label': 'عملیات' },
        h('option', { value: 'register' }, 'ثبت‌نام'), h('option', { value: 'cancel' }, 'انصراف')),
      h('button', { type: 'button', class: 'link', onclick: () => row.remove() }, 'حذف'));
    row.querySelector('select').value = action;
    rowsBox.append(row);
    return row;
  };
  el.append(
    h('p', { class: 'muted' }, 'کد ملی هر نفر (خودتان و افراد تبعی) و عملیات مورد نظر را وارد کنید: «ثبت‌نام» برای کسی که بیمه تکمیلی ندارد و «انصراف» برای کسی که دارد.'),
    rowsBox,
    h('button', { type: 'button', class: 'secondary', 'data-testid': 'add-person', onclick: () => addRow().querySelector('input').focus() }, '+ افزودن نفر'));
  addRow();
  return { el, value: () => {
    const ch = [];
    for (const row of rowsBox.querySelectorAll('.change')) {
      const nid = asciiDigits(row.querySelector('.nid').value.trim());
      if (!nid) continue;
      if (!/^\d{10}$/.test(nid)) throw 'کد ملی باید ۱۰ رقم باشد';
      ch.push({ national_id: nid, action: row.querySelector('.action').value });
    }
    return ch.length ? [true, ch] : [false];
  } };
}

function widget(f, task) {
  if (f.type === 'enum') return enumWidget(f);
  if (f.type === 'boolean') return booleanWidget(f);
  if (f.type === 'json' && f.id === 'changes') return changesWidget(f, task.display || task.variables);
  if (f.type === 'string' && /_image$/.test(f.id)) return imageWidget(f);
  if (f.type === 'long' && f.id === 'months') return monthsWidget(f, task.display || task.variables);
  return textWidget(f, f.type);
}

/**
 * The form of task (with .form, and .variables for staff); submit(data)
 * completes it. Returns the form element.
 */
export function taskForm(task, submit, opts = {}) {
  const fields = task.form || [];
  const decision = decisionField(fields);
  const widgets = fields.filter((f) => f !== decision).map((f) => [f, widget(f, task)]);
  const msg = h('div', { class: 'msg', 'aria-live': 'polite' });
  const form = h('form', { class: 'task-form', 'data-task': task.id, novalidate: true });

  const collect = () => {
    const data = {};
    for (const [f, w] of widgets) {
      const [present, v] = w.value();
      if (present) data[f.id] = v;
      else if (f.required) throw `«${f.label || f.id}» را وارد کنید`;
    }
    return data;
  };
  const send = async (btn, extra) => {
    clear(msg);
    let data;
    try {
      data = { ...collect(), ...extra };
    } catch (e) {
      msg.append(notice('error', String(e)));
      return;
    }
    await busy(btn, submit(data).catch((e) => { msg.append(notice('error', opts.errorText ? opts.errorText(e) : String(e))); }));
  };

  for (const [, w] of widgets) form.append(w.el);
  const actions = h('div', { class: 'actions' });
  if (decision) {
    for (const v of decision.values || []) {
      const kind = v === 'withdraw' || v === 'reject' || v === 'mismatch' ? 'danger' : v === 'back' ? 'secondary' : 'primary';
      const label = opts.decisionLabels?.[v] || valueLabel(v);
      const b = h('button', { type: 'button', class: kind, 'data-decision': v, onclick: () => {
        if (v === 'withdraw' && !confirm('درخواست باطل شود؟')) return;
        send(b, { [decision.id]: v });
      } }, label);
      actions.append(b);
    }
  } else {
    const b = h('button', { type: 'submit', class: 'primary' }, opts.submitLabel || 'ثبت و ارسال');
    form.addEventListener('submit', (ev) => { ev.preventDefault(); send(b, {}); });
    actions.append(b);
  }
  form.append(actions, msg);
  return form;
}
