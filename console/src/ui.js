// ui.js -- building the DOM safely (text is always text: no innerHTML with data).
import { faDigits, valueLabel } from './fa.js';

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Replace el's children (arrays flattened; null, undefined and false skipped). */
export function fill(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

export function link(href, ...children) {
  return h('a', { href }, ...children);
}

export function notice(kind, text) {
  return h('div', { class: 'notice ' + kind, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** A table; cols: [{title, cell(row) -> Node|string, class?}]. */
export function table(cols, rows, opts = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, opts.empty || 'موردی نیست.');
  return h('div', { class: 'table-wrap' },
    h('table', { class: opts.class || '' },
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c.title)))),
      h('tbody', {}, rows.map((r) => h('tr', opts.rowAttrs ? opts.rowAttrs(r) : {},
        cols.map((c) => h('td', { 'data-label': c.title, class: c.class || '' }, c.cell(r))))))));
}

export function badge(text, kind) {
  return h('span', { class: 'badge ' + (kind || '') }, text);
}

export function statusKind(status) {
  return { active: 'info', completed: 'ok', canceled: 'muted', terminated: 'warn' }[status] || '';
}

/** A variable's value, readable: objects/arrays as lists or small tables. */
export function valueView(v, depth = 0) {
  if (v === null || v === undefined) return h('span', { class: 'muted' }, '—');
  if (typeof v === 'boolean') return valueLabel(String(v));
  if (typeof v === 'number') return h('span', { class: 'num' }, faDigits(v));
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    if (!v.length) return h('span', { class: 'muted' }, '[]');
    if (v.every((x) => x && typeof x === 'object' && !Array.isArray(x)) && depth < 2) {
      const keys = [...new Set(v.flatMap((x) => Object.keys(x)))];
      return table(keys.map((k) => ({ title: k, cell: (r) => valueView(r[k], depth + 1) })), v, { class: 'mini' });
    }
    return h('ul', { class: 'vlist' }, v.map((x) => h('li', {}, valueView(x, depth + 1))));
  }
  if (depth > 2) return h('code', {}, JSON.stringify(v));
  return h('dl', { class: 'kv' }, Object.entries(v).map(([k, x]) => [h('dt', {}, k), h('dd', {}, valueView(x, depth + 1))]));
}

export function busy(btn, p) {
  btn.disabled = true;
  btn.classList.add('busy');
  return Promise.resolve(p).finally(() => {
    btn.disabled = false;
    btn.classList.remove('busy');
  });
}
