// pages/operator.js -- for operators: overview (backlog per cartable,
// incidents), instances with filters, one instance (diagram, variables,
// history with gateway reasons, incidents with retry), incidents, processes.
import { get, post, api, withQuery, errorText, processNames, definitions, parseMetrics, elementNames,
  waitingCounts } from '../api.js';
import { h, clear, fill, notice, table, badge, statusKind, valueView, busy } from '../ui.js';
import { faDate, faDateTime, faDigits, faNumber, parseDateInput, isoToJalali, asciiDigits,
  INSTANCE_STATUS, HISTORY_EVENTS, groupsLabel } from '../fa.js';
import { pager } from './applicant.js';

const PAGE = 25;

const ELEMENT_TYPES = {
  userTask: 'کار انسانی', serviceTask: 'سرویس', sendTask: 'ارسال', receiveTask: 'دریافت پیام',
  subProcess: 'زیرفرایند', callActivity: 'فراخوانی فرایند', intermediateCatchEvent: 'رویداد میانی',
  boundaryEvent: 'رویداد مرزی', eventBasedGateway: 'درگاه رویدادی', exclusiveGateway: 'درگاه انحصاری',
  parallelGateway: 'درگاه موازی', inclusiveGateway: 'درگاه فراگیر', businessRuleTask: 'قاعده', scriptTask: 'اسکریپت',
};

// --- overview ------------------------------------------------------------

export async function overview(main) {
  const [metricsText, inc, names, steps] = await Promise.all([
    api('GET', '/metrics'), get('/v1/incidents?limit=10'), processNames(), elementNames().catch(() => ({}))]);
  const m = parseMetrics(metricsText);
  const one = (name) => m.find((x) => x.name === name)?.value ?? 0;
  const byStatus = Object.fromEntries(m.filter((x) => x.name === 'ravand_instances').map((x) => [x.labels.status, x.value]));
  const backlog = m.filter((x) => x.name === 'ravand_task_backlog' && x.value > 0)
    .sort((a, b) => b.value - a.value);
  const cartable = (l) => {
    const office = l.branch ? `شعبه ${faDigits(l.branch)}` : l.county ? `شهرستان ${l.county}` : '';
    return [groupsLabel(l.candidate_groups) || '—', office ? ' — ' + office : ''];
  };
  fill(main, 
    h('h1', {}, 'نمای کلی'),
    h('div', { class: 'stats' },
      stat('پرونده‌های در جریان', byStatus.active || 0, '#/instances?status=active'),
      stat('مختومه', byStatus.completed || 0, '#/instances?status=completed'),
      stat('کارهای باز', backlog.reduce((s, x) => s + x.value, 0)),
      stat('کارهای دیرکرد', one('ravand_tasks_overdue'), null, one('ravand_tasks_overdue') ? 'warn' : ''),
      stat('خطاهای باز', one('ravand_incidents_open'), '#/incidents', one('ravand_incidents_open') ? 'bad' : '')),
    h('section', { class: 'card' }, h('h2', {}, 'کارهای منتظر در هر کارتابل'),
      table([
        { title: 'فرایند', cell: (x) => names[x.labels.process] || x.labels.process },
        { title: 'مرحله', cell: (x) => h('a', { href: `#/instances?process=${encodeURIComponent(x.labels.process)}&waiting_at=${encodeURIComponent(x.labels.element)}&status=active`,
          title: x.labels.element, 'data-element': x.labels.element }, steps[x.labels.process]?.[x.labels.element] || x.labels.element) },
        { title: 'کارتابل', cell: (x) => cartable(x.labels) },
        { title: 'تعداد', cell: (x) => h('strong', { class: 'num' }, faNumber(x.value)), class: 'num' },
      ], backlog, { class: 'backlog', empty: 'کار منتظری نیست.' })),
    h('section', { class: 'card' }, h('h2', {}, 'آخرین خطاهای باز'), incidentsTable(inc.items, names, () => overview(main))));
}

function stat(label, value, href, kind = '') {
  const body = [h('div', { class: 'value' }, faNumber(value)), h('div', { class: 'label' }, label)];
  return href ? h('a', { class: 'stat ' + kind, href }, body) : h('div', { class: 'stat ' + kind }, body);
}

function incidentsTable(items, names, after) {
  return table([
    { title: 'شماره', cell: (x) => faDigits(x.id) },
    { title: 'پرونده', cell: (x) => h('a', { href: `#/instances/${x.instance}` }, faDigits(x.instance)) },
    { title: 'فرایند', cell: (x) => names[x.process] || x.process || '' },
    { title: 'مرحله', cell: (x) => x.element },
    { title: 'خطا', cell: (x) => h('code', { class: 'err', dir: 'ltr' }, x.message || x.kind || '') },
    { title: 'زمان', cell: (x) => faDateTime(x.created) },
    { title: '', cell: (x) => x.state === 'open' || !x.state ? retryButton(x, after) : badge('رفع شده', 'ok') },
  ], items, { class: 'incidents', empty: 'خطای بازی نیست.', rowAttrs: (x) => ({ 'data-incident': x.id }) });
}

function retryButton(x, after) {
  const b = h('button', { type: 'button', class: 'primary small', 'data-retry': x.id, onclick: async () => {
    await busy(b, post(`/v1/incidents/${x.id}/retry`).then(() => new Promise((r) => setTimeout(r, 300))).then(after)
      .catch((e) => b.replaceWith(notice('error', errorText(e)))));
  } }, 'تلاش دوباره');
  return b;
}

// --- incidents -------------------------------------------------------------

export async function incidents(main, { query, navigate }) {
  const state = query.state || 'open';
  const offset = Number(query.offset || 0);
  const [r, names] = await Promise.all([
    get(withQuery('/v1/incidents', { state, process: query.process, limit: PAGE, offset: offset || '' })), processNames()]);
  fill(main, 
    h('div', { class: 'page-head' }, h('h1', {}, 'خطاها'),
      h('div', { class: 'tabs' }, [['open', 'باز'], ['resolved', 'رفع شده'], ['all', 'همه']].map(([v, t]) =>
        h('a', { href: `#/incidents?state=${v}`, class: v === state ? 'active' : '' }, t)))),
    incidentsTable(r.items, names, () => incidents(main, { query, navigate })),
    pager(offset, PAGE, r.more, (o) => navigate('/incidents', { ...query, offset: o })));
}

// --- instances ---------------------------------------------------------------

export async function instances(main, { query, navigate }) {
  const offset = Number(query.offset || 0);
  const params = {
    process: query.process, status: query.status, business_key: query.business_key, waiting_at: query.waiting_at,
    incident: query.incident, started_from: query.started_from, started_to: query.started_to,
    limit: PAGE, offset: offset || '',
  };
  const [r, names] = await Promise.all([get(withQuery('/v1/instances', params)), processNames()]);
  const sel = (id, label, options) => h('div', { class: 'field' }, h('label', { for: id }, label),
    h('select', { id, name: id }, options.map(([v, t]) => h('option', { value: v, selected: v === (query[id] || '') }, t))));
  const inp = (id, label, value, attrs = {}) => h('div', { class: 'field' }, h('label', { for: id }, label),
    h('input', { id, name: id, value: value || '', autocomplete: 'off', ...attrs }));
  const form = h('form', { class: 'filters card', 'aria-label': 'فیلترها' },
    sel('process', 'فرایند', [['', 'همه'], ...Object.entries(names)]),
    sel('status', 'وضعیت', [['', 'همه'], ...Object.entries(INSTANCE_STATUS)]),
    inp('business_key', 'کد ملی', query.business_key ? faDigits(query.business_key) : '', { dir: 'ltr', inputmode: 'numeric' }),
    inp('waiting_at', 'منتظر در مرحله (شناسه)', query.waiting_at, { dir: 'ltr' }),
    sel('incident', 'خطا', [['', 'همه'], ['true', 'دارای خطای باز'], ['false', 'بدون خطا']]),
    inp('started_from', 'شروع از (شمسی)', query.started_from ? isoToJalali(query.started_from) : '', { dir: 'ltr', placeholder: '۱۴۰۴/۰۹/۰۱' }),
    inp('started_to', 'شروع تا (شمسی)', query.started_to ? isoToJalali(query.started_to) : '', { dir: 'ltr', placeholder: '۱۴۰۴/۰۹/۳۰' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'جستجو'),
      h('a', { href: '#/instances', class: 'button secondary' }, 'پاک کردن')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = {};
    for (const [k, v] of new FormData(form).entries()) if (v) q[k] = k === 'business_key' ? asciiDigits(v) : v;
    for (const k of ['started_from', 'started_to']) if (q[k]) q[k] = parseDateInput(q[k]) || '';
    navigate('/instances', q);
  });
  fill(main, h('h1', {}, 'پرونده‌ها'), form,
    table([
      { title: 'شماره', cell: (x) => h('a', { href: `#/instances/${x.id}` }, faDigits(x.id)) },
      { title: 'فرایند', cell: (x) => names[x.process] || x.process },
      { title: 'کد ملی', cell: (x) => faDigits(x.business_key || '') },
      { title: 'وضعیت', cell: (x) => badge(INSTANCE_STATUS[x.status] || x.status, statusKind(x.status)) },
      { title: 'وضعیت برای متقاضی', cell: (x) => x.status_text || '' },
      { title: 'شروع', cell: (x) => faDateTime(x.started) },
    ], r.items, { class: 'instances', rowAttrs: (x) => ({ 'data-instance': x.id }) }),
    pager(offset, PAGE, r.more, (o) => navigate('/instances', { ...query, offset: o })));
}

function historyRow(x, names) {
  const isGw = x.event === 'GATEWAY_DECISION';
  return h('tr', { class: isGw ? 'gw' : x.event.startsWith('INCIDENT') ? 'bad' : '' },
    h('td', { 'data-label': 'زمان' }, faDateTime(x.at)),
    h('td', { 'data-label': 'رویداد' }, HISTORY_EVENTS[x.event] || x.event, h('small', { class: 'muted', dir: 'ltr' }, ' ', x.event)),
    h('td', { 'data-label': 'مرحله' }, x.element ? (names[x.element] && names[x.element] !== x.element ? `${names[x.element]} (${x.element})` : x.element) : ''),
    h('td', { 'data-label': 'جزئیات' }, x.detail ? h(isGw ? 'code' : 'span', { dir: isGw ? 'ltr' : null, class: isGw ? 'reason' : '' }, x.detail) : ''));
}

export async function instance(main, { params }) {
  const id = params[0];
  const [x, names] = await Promise.all([get(`/v1/instances/${id}`), processNames()]);
  const reload = () => instance(main, { params });
  const diagramBox = h('div', { class: 'diagram', 'data-testid': 'diagram' });
  const diagramMsg = h('div', { class: 'msg' });
  const elementNames = {};
  for (const t of x.tokens || []) elementNames[t.element] = t.name;
  const showGw = h('input', { type: 'checkbox', id: 'only_gw' });
  const histBody = h('tbody');
  const fillHistory = () => {
    fill(histBody, ...(x.history || []).filter((r) => !showGw.checked || r.event === 'GATEWAY_DECISION' || r.event.startsWith('INCIDENT') || r.event === 'TASK_TRANSFERRED').map((r) => historyRow(r, elementNames)));
  };
  showGw.addEventListener('change', fillHistory);

  const cancelBtn = x.status === 'active' ? h('button', { type: 'button', class: 'danger small', onclick: async () => {
    const reason = prompt('علت لغو پرونده:');
    if (reason === null) return;
    await busy(cancelBtn, post(`/v1/instances/${id}/cancel`, reason ? { reason } : {}).then(reload)
      .catch((e) => diagramMsg.append(notice('error', errorText(e)))));
  } }, 'لغو پرونده') : null;

  fill(main, 
    h('p', {}, h('a', { href: '#/instances' }, '→ پرونده‌ها')),
    h('div', { class: 'page-head' }, h('h1', {}, `${names[x.process] || x.process} — پرونده ${faDigits(x.id)}`),
      badge(INSTANCE_STATUS[x.status] || x.status, statusKind(x.status)), cancelBtn),
    h('section', { class: 'card' }, h('dl', { class: 'kv' },
      [['فرایند', `${x.process} (نسخه ${faDigits(x.version)})`], ['کد ملی', faDigits(x.business_key || '')],
        ['وضعیت برای متقاضی', x.status_text], ['شروع', faDateTime(x.started)], ['پایان', x.ended ? faDateTime(x.ended) : '']]
        .filter(([, v]) => v).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))),
    h('section', { class: 'card' }, h('h2', {}, 'نمودار فرایند'),
      h('p', { class: 'muted legend' }, h('span', { class: 'swatch here' }), ' جای این پرونده   ',
        h('span', { class: 'swatch count' }, '۳'), ' تعداد پرونده‌های در جریان منتظر در هر مرحله   ',
        h('span', { class: 'swatch incident' }), ' خطا'),
      diagramBox, diagramMsg),
    (x.incidents || []).length ? h('section', { class: 'card' }, h('h2', {}, 'خطاها'),
      incidentsTable(x.incidents.map((i) => ({ ...i, instance: x.id, process: x.process })), names, reload)) : null,
    h('section', { class: 'card' }, h('h2', {}, 'منتظر در'), table([
      { title: 'مرحله', cell: (t) => t.name || t.element },
      { title: 'شناسه', cell: (t) => h('code', { dir: 'ltr' }, t.element) },
      { title: 'نوع', cell: (t) => ELEMENT_TYPES[t.type] || t.type },
      { title: 'حالت', cell: (t) => (t.state === 'waiting' ? 'منتظر' : t.state) },
    ], x.tokens || [], { empty: 'توکنی منتظر نیست.' })),
    (x.tasks || []).length ? h('section', { class: 'card' }, h('h2', {}, 'کارها'), table([
      { title: 'شماره', cell: (t) => faDigits(t.id) },
      { title: 'مرحله', cell: (t) => t.element },
      { title: 'حالت', cell: (t) => t.state },
      { title: 'کارپذیر', cell: (t) => t.assignee || '—' },
      { title: 'شعبه / شهرستان', cell: (t) => [faDigits(t.branch || ''), t.county ? ' ' + t.county : ''] },
      { title: 'مهلت', cell: (t) => faDateTime(t.due) || '—' },
    ], x.tasks)) : null,
    (x.timers || []).length || (x.jobs || []).length || (x.subscriptions || []).length ? h('section', { class: 'card' }, h('h2', {}, 'زمان‌سنج‌ها، سرویس‌ها و پیام‌ها'),
      table([
        { title: 'نوع', cell: (r) => r.kind },
        { title: 'مرحله', cell: (r) => r.element },
        { title: 'جزئیات', cell: (r) => r.detail },
      ], [
        ...(x.timers || []).map((t) => ({ kind: 'زمان‌سنج', element: t.element, detail: faDateTime(t.due) })),
        ...(x.jobs || []).map((j) => ({ kind: `سرویس ${j.adapter}`, element: j.element, detail: `${j.state} — تلاش ${faDigits(j.attempts)}${j.last_error ? ' — ' + j.last_error : ''}` })),
        ...(x.subscriptions || []).map((s) => ({ kind: s.kind === 'message' ? 'پیام' : s.kind, element: s.element, detail: `${s.name}${s.corr_key ? ' / ' + faDigits(s.corr_key) : ''}` })),
      ])) : null,
    h('section', { class: 'card' }, h('h2', {}, 'متغیرها'), valueView(x.variables || {})),
    h('section', { class: 'card' }, h('h2', {}, 'سابقه'),
      h('label', { class: 'check', for: 'only_gw' }, showGw, ' فقط تصمیم‌های درگاه، خطاها و انتقال‌ها'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'history' },
        h('thead', {}, h('tr', {}, ['زمان', 'رویداد', 'مرحله', 'جزئیات'].map((t) => h('th', {}, t)))), histBody))));
  fillHistory();

  // the diagram: XML from the definitions endpoint, then markers and counts
  try {
    const [{ drawProcess }, xml] = await Promise.all([
      import('../diagram.js'), api('GET', `/v1/definitions/${encodeURIComponent(x.process)}/${x.version}/xml`)]);
    const d = await drawProcess(diagramBox, xml);
    for (const w of d.waitable) elementNames[w.id] = elementNames[w.id] || w.name;
    fillHistory();
    d.mark((x.tokens || []).map((t) => t.element));
    d.incident((x.incidents || []).filter((i) => i.state !== 'resolved').map((i) => i.element));
    d.focus([...(x.incidents || []).filter((i) => i.state !== 'resolved').map((i) => i.element),
      ...(x.tokens || []).map((t) => t.element)]);
    // how many active instances of this version wait at each element: one call
    d.counts(await waitingCounts(x.process, x.version).catch(() => ({})));
    diagramBox.dataset.ready = 'true';
  } catch (e) {
    diagramMsg.append(notice('error', 'نمودار نمایش داده نشد: ' + (e.status ? errorText(e) : e.message)));
  }
}

// --- process definitions (operators and analysts) ---------------------------------------

export async function definitions_(main, { query, navigate }) {
  const defs = await definitions();
  const latest = {};
  for (const d of defs) if (!latest[d.process] || latest[d.process].version < d.version) latest[d.process] = d;
  const sel = query.process ? defs.find((d) => d.process === query.process && String(d.version) === String(query.version || latest[query.process]?.version)) : null;
  const box = h('div', { class: 'diagram' });
  fill(main, h('h1', {}, 'فرایندها'),
    table([
      { title: 'فرایند', cell: (d) => h('a', { href: `#/definitions?process=${encodeURIComponent(d.process)}&version=${d.version}` }, d.name || d.process) },
      { title: 'شناسه', cell: (d) => h('code', { dir: 'ltr' }, d.process) },
      { title: 'نسخه', cell: (d) => faDigits(d.version) },
      { title: 'استقرار', cell: (d) => faDateTime(d.created) },
    ], Object.values(latest)),
    sel ? h('section', { class: 'card' }, h('h2', {}, `${sel.name || sel.process} — نسخه ${faDigits(sel.version)}`), box) : null);
  if (sel) {
    const [{ drawProcess }, xml, counts] = await Promise.all([import('../diagram.js'),
      api('GET', `/v1/definitions/${encodeURIComponent(sel.process)}/${sel.version}/xml`),
      waitingCounts(sel.process, sel.version).catch(() => ({}))]);
    const d = await drawProcess(box, xml);
    d.counts(counts);
    box.dataset.ready = 'true';
  }
}
export { definitions_ as definitions };
