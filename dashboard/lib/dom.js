// Tiny DOM helpers. Everything from the API goes in as text nodes or attribute values, never as
// markup: names, actors and request bodies are user-controlled.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** h('td', {class: 'num'}, 'text', childNode, [more]) */
export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);

/** The same for SVG elements. */
export const s = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

/** Replaces a container's children. */
export function show(container, ...children) {
  container.replaceChildren();
  build(container, {}, children);
  for (const table of container.querySelectorAll('table.grid-table')) labelCells(table);
}

/**
 * Gives every body cell its column's name (`data-label`), unless it has one: on a narrow screen the
 * stylesheet stacks each row into a card and shows the name beside the value.
 */
export function labelCells(table) {
  const heads = [...table.querySelectorAll('thead th')];
  const names = heads.map((th) => th.textContent);
  const rows = [...table.querySelectorAll('tbody tr')];
  // A column of numbers gets a right-aligned heading too.
  heads.forEach((th, i) => {
    if (rows.length && rows.every((tr) => tr.children[i]?.classList.contains('num'))) th.classList.add('num');
  });
  for (const tr of rows) {
    [...tr.children].forEach((td, i) => {
      if (!td.hasAttribute('data-label') && names[i] && !td.hasAttribute('colspan')) td.setAttribute('data-label', names[i]);
    });
  }
}

/** `3 ms`, `1.25 s`, `2.0 min`; `—` for null. */
export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms === 0) return '0 ms';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** Local wall-clock time with milliseconds, for receipts; `—` for null. */
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** `12 s ago`, `3 min ago`. */
export function fmtAgo(iso, now = Date.now()) {
  if (!iso) return '—';
  const ms = Math.max(0, now - Date.parse(iso));
  return `${fmtMs(ms).replace(/\.\d+ (s|min|h)$/, ' $1')} ago`;
}
