// The lag chart: one SVG line chart of propagation lag over decision time, with a dashed line per
// SLO. Lag spans sub-millisecond inline writes to minutes-long jobs, so the y axis is log-like
// (log10(1 + ms)), which also keeps 0 ms on the chart.

import { fmtMs, fmtTime, s } from './dom.js';

const W = 560;
const H = 210;
const M = { top: 14, right: 14, bottom: 26, left: 56 };
const Y_TICKS = [0, 10, 100, 1000, 10_000, 60_000, 600_000, 3_600_000];

const yv = (ms) => Math.log10(1 + Math.max(0, ms));

/**
 * @param points  [{revision, kind, tier, t (ms epoch), lagMs, pending, sloMs, sloMet}], any order
 * @param slos    [{sloMs, label}] horizontal lines
 * @param opts    {now, emptyText}
 */
export function lagChart(points, slos, opts) {
  const pts = [...points].sort((a, b) => a.t - b.t || a.revision - b.revision);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;

  const top = Math.max(yv(1000), ...pts.map((p) => yv(p.lagMs)), ...slos.map((l) => yv(l.sloMs))) * 1.08;
  const y = (ms) => M.top + ph - (yv(ms) / top) * ph;

  // Time runs up to now, so the chart moves while nothing happens and pending points keep rising.
  const t1 = Math.max(opts.now, pts.length ? pts[pts.length - 1].t : 0);
  const t0 = Math.min(pts.length ? pts[0].t : t1, t1 - 30_000);
  const x = (t) => M.left + ((t - t0) / (t1 - t0)) * pw;

  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'lag', 'aria-label': opts.label, 'data-points': pts.length });

  // Axes and grid.
  for (const ms of Y_TICKS.filter((v) => yv(v) <= top)) {
    svg.append(
      s('line', { class: 'grid', x1: M.left, x2: W - M.right, y1: y(ms), y2: y(ms) }),
      s('text', { class: 'tick', x: M.left - 6, y: y(ms) + 3.5, 'text-anchor': 'end' }, ms === 0 ? '0' : fmtMs(ms)),
    );
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    const anchor = i === 0 ? 'start' : i === 4 ? 'end' : 'middle';
    svg.append(s('text', { class: 'tick', x: x(t), y: H - 8, 'text-anchor': anchor }, fmtTime(new Date(t).toISOString()).slice(0, 8)));
  }
  svg.append(s('line', { class: 'axis', x1: M.left, x2: M.left, y1: M.top, y2: M.top + ph }));
  svg.append(s('line', { class: 'axis', x1: M.left, x2: W - M.right, y1: M.top + ph, y2: M.top + ph }));

  // SLO lines, labelled at the right end: above the line, or below it when that would overlap the
  // label of the line just above.
  let lastLabelY = -Infinity;
  for (const l of [...slos].sort((a, b) => b.sloMs - a.sloMs)) {
    const ly = y(l.sloMs);
    const labelY = ly - 4 - lastLabelY < 11 ? ly + 11 : ly - 4;
    lastLabelY = labelY;
    svg.append(
      s('line', { class: 'slo', x1: M.left, x2: W - M.right, y1: ly, y2: ly, 'data-slo-ms': l.sloMs }),
      s('text', { class: 'slo-label', x: W - M.right - 4, y: labelY, 'text-anchor': 'end' }, l.label),
    );
  }

  if (pts.length === 0) {
    svg.append(s('text', { class: 'empty', x: M.left + pw / 2, y: M.top + ph / 2, 'text-anchor': 'middle' }, opts.emptyText));
    return svg;
  }

  // One line per tier: tiers have different SLOs (and often modes), so joining them would zigzag.
  const tiers = new Map();
  for (const p of pts) tiers.set(p.tier ?? '', [...(tiers.get(p.tier ?? '') ?? []), p]);
  for (const [tier, series] of tiers) {
    if (series.length < 2) continue;
    svg.append(s('polyline', { class: `line tier-${tier || 'none'}`, points: series.map((p) => `${x(p.t).toFixed(1)},${y(p.lagMs).toFixed(1)}`).join(' ') }));
  }
  for (const p of pts) {
    const cls = `${p.pending ? 'pending ' : ''}${p.sloMet === false ? 'missed' : 'met'}`;
    const tip = `r${p.revision} ${p.kind}${p.tier ? ` (${p.tier})` : ''}: ${p.pending ? 'pending for ' : ''}${fmtMs(p.lagMs)}` +
      (p.sloMs !== null && p.sloMs !== undefined ? ` — SLO ${fmtMs(p.sloMs)}` : '');
    svg.append(s('circle', { class: `point ${cls}`, cx: x(p.t).toFixed(1), cy: y(p.lagMs).toFixed(1), r: 4, 'data-revision': p.revision }, s('title', {}, tip)));
  }
  return svg;
}
