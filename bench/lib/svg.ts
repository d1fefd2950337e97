/** Hand-written SVG charts for the report: line charts (latency CDFs) and scatter timelines. */
export interface Series {
  name: string;
  points: Array<[number, number]>;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939', '#843c39', '#7b4173'];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function ticks(lo: number, hi: number, log: boolean): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (log) {
    // A zero (or tiny) lower bound would start the decades at -Infinity: at most 12 decades below hi.
    const top = Math.ceil(Math.log10(Math.max(hi, 1e-9)));
    const bottom = Math.max(Math.floor(Math.log10(Math.max(lo, 1e-9))), top - 12);
    const out: number[] = [];
    for (let e = bottom; e <= top; e++) out.push(10 ** e);
    return out;
  }
  const span = hi - lo || 1;
  const step = 10 ** Math.floor(Math.log10(span / 5));
  const mult = span / step > 25 ? 5 : span / step > 10 ? 2 : 1;
  const s = step * mult;
  if (!Number.isFinite(s) || s <= 0) return [lo, hi];
  const out: number[] = [];
  for (let v = Math.ceil(lo / s) * s; v <= hi + 1e-9; v += s) out.push(+v.toPrecision(6));
  return out;
}
const label = (v: number) => (Math.abs(v) >= 1000 ? `${+(v / 1000).toPrecision(3)}k` : Math.abs(v) < 0.01 && v !== 0 ? v.toExponential(0) : `${+v.toPrecision(3)}`);

export function chart(opts: { title: string; x: string; y: string; series: Series[]; logX?: boolean; logY?: boolean; scatter?: boolean }): string {
  const W = 760;
  const H = 380;
  const L = 70;
  const R = 230;
  const T = 36;
  const B = 48;
  const all = opts.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const floor = (v: number, log?: boolean) => (log ? Math.max(v, 1e-3) : v);
  let xs = all.map(([x]) => floor(x, opts.logX));
  let ys = all.map(([, y]) => floor(y, opts.logY));
  if (xs.length === 0) (xs = [0, 1]), (ys = [0, 1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (!opts.logY) y0 = Math.min(0, y0);
  if (!opts.logX && opts.scatter) x0 = Math.min(0, x0);
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) y1 = y0 + 1;
  const f = (v: number, lo: number, hi: number, log?: boolean) => (log ? (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo) || 1) : (v - lo) / (hi - lo));
  const px = (x: number) => L + f(floor(x, opts.logX), x0, x1, opts.logX) * (W - L - R);
  const py = (y: number) => H - B - f(floor(y, opts.logY), y0, y1, opts.logY) * (H - T - B);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="20" font-size="14" font-weight="bold">${esc(opts.title)}</text>`,
    `<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">${esc(opts.x)}</text>`,
    `<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(opts.y)}</text>`,
  ];
  for (const t of ticks(x0, x1, !!opts.logX).filter((t) => t >= x0 * 0.999 && t <= x1 * 1.001)) {
    out.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${T}" y2="${H - B}" stroke="#eee"/><text x="${px(t)}" y="${H - B + 14}" text-anchor="middle">${label(t)}</text>`);
  }
  for (const t of ticks(y0, y1, !!opts.logY).filter((t) => t >= y0 * 0.999 && t <= y1 * 1.001)) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${py(t)}" y2="${py(t)}" stroke="#eee"/><text x="${L - 4}" y="${py(t) + 4}" text-anchor="end">${label(t)}</text>`);
  }
  out.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#999"/>`);
  opts.series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length]!;
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (opts.scatter) for (const [x, y] of pts) out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="2" fill="${c}" fill-opacity="0.6"/>`);
    else if (pts.length) out.push(`<polyline fill="none" stroke="${c}" stroke-width="1.6" points="${pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`);
    const ly = T + 6 + i * 16;
    out.push(`<rect x="${W - R + 10}" y="${ly}" width="10" height="10" fill="${c}"/><text x="${W - R + 24}" y="${ly + 9}">${esc(s.name)}${pts.length ? '' : ' (no points)'}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
