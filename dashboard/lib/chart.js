// The lag chart, drawn by uPlot (served from the installed npm package: /dashboard/vendor/uplot.js).
// One scatter series per risk tier (colour + legend), one for changes still pending (hollow, at
// their age so far), and one dashed SLO line per tier. Lag spans sub-millisecond inline writes to
// minutes-long jobs, so the y scale is asinh: logarithmic above 1 ms, linear through 0, so 0 ms is
// a visible row above the axis. The time axis fits the points (a burst spreads across the width
// instead of sitting at one edge). Points are translucent and outlined so that overlaps read as
// darker (fill 45 % opaque); the legend shows the hovered change, and a table below lists every point.

import uPlot from '../vendor/uplot.js';
import { fmtMs, fmtTime, h } from './dom.js';

export const TIERS = ['standard', 'high', 'critical'];
export const TIER_COLOURS = { standard: '#2f5fd0', high: '#c26a00', critical: '#a01a7d', none: '#66707c' };
const PENDING_COLOUR = '#66707c';
const Y_TICKS = [0, 1, 10, 100, 1000, 10_000, 60_000, 600_000, 3_600_000];
const HEIGHT = 240;

const alpha = (hex, a) => hex + Math.round(a * 255).toString(16).padStart(2, '0');

/**
 * Draws (or redraws in place) the chart for `points` into `box`.
 * @param box     the container; keeps the uPlot instance as `box.uplot` between polls
 * @param points  [{revision, kind, tier, t (ms epoch), lagMs, pending, sloMs, sloMet}], any order
 * @param slos    [{tier, sloMs}] one dashed line each
 * @param opts    {label, emptyText}
 */
export function drawLagChart(box, points, slos, opts) {
  const pts = [...points].sort((a, b) => a.t - b.t || a.revision - b.revision);
  if (pts.length === 0) {
    destroy(box);
    box.replaceChildren(h('p', { class: 'empty chart-empty' }, opts.emptyText));
    return;
  }
  const tiers = TIERS.filter((t) => pts.some((p) => !p.pending && p.tier === t));
  const untiered = pts.some((p) => !p.pending && !TIERS.includes(p.tier));
  const hasPending = pts.some((p) => p.pending);
  const lines = [...slos].filter((l) => l.sloMs !== null && l.sloMs !== undefined).sort((a, b) => TIERS.indexOf(a.tier) - TIERS.indexOf(b.tier));

  // The x values are the points' times between the two ends of the range: the ends carry only the
  // SLO lines, so that a line spans the plot even when a single point is charted.
  const range = xRange(pts);
  const xs = [range[0], ...pts.map((p) => p.t / 1000), range[1]];
  const column = (pick) => [null, ...pts.map((p) => (pick(p) ? p.lagMs : null)), null];
  const series = [];
  const data = [xs];
  for (const tier of tiers) {
    series.push(pointSeries(tier, TIER_COLOURS[tier], false));
    data.push(column((p) => !p.pending && p.tier === tier));
  }
  if (untiered) {
    series.push(pointSeries('no tier', TIER_COLOURS.none, false));
    data.push(column((p) => !p.pending && !TIERS.includes(p.tier)));
  }
  if (hasPending) {
    series.push(pointSeries('pending (age so far)', PENDING_COLOUR, true));
    data.push(column((p) => p.pending));
  }
  for (const l of lines) {
    const colour = TIER_COLOURS[l.tier] ?? TIER_COLOURS.none;
    series.push({ label: `SLO ${l.tier ?? ''}`.trim(), class: 'slo-line', stroke: colour, width: 1.5, dash: [6, 4], points: { show: false }, value: () => fmtMs(l.sloMs) });
    data.push(xs.map(() => l.sloMs));
  }

  const top = Math.max(1000, ...pts.map((p) => p.lagMs * 3), ...lines.map((l) => l.sloMs * 3));
  const shape = JSON.stringify(series.map((s) => s.label));
  // Read by the scale and legend callbacks, which outlive this call (setData reuses the instance).
  box.chartState = { pts, top, range };

  if (box.uplot && box.uplot.shape === shape) {
    box.uplot.setData(data);
  } else {
    destroy(box);
    box.replaceChildren();
    const state = () => box.chartState;
    const u = new uPlot({
      width: Math.max(240, Math.floor(box.clientWidth || 560)),
      height: HEIGHT,
      legend: { live: true },
      cursor: { points: { size: 12 }, focus: { prox: 16 } },
      focus: { alpha: 0.35 },
      scales: {
        x: { time: true, range: () => state().range },
        y: { distr: 4, asinh: 1, range: () => [-0.6, state().top] },
      },
      axes: [
        { values: (_u, splits) => timeLabels(splits), space: 80, size: 34, font: '12px system-ui, sans-serif', stroke: '#4a535e', grid: { stroke: '#eceef1' }, ticks: { stroke: '#d5d9de' } },
        {
          splits: () => Y_TICKS.filter((v) => v <= state().top),
          values: (_u, splits) => splits.map((v) => fmtMs(v)),
          size: 60, font: '12px system-ui, sans-serif', stroke: '#4a535e', grid: { stroke: '#eceef1' }, ticks: { stroke: '#d5d9de' },
        },
      ],
      series: [{ label: 'change', value: (_u, _v, _si, idx) => (state().pts[idx - 1] ? describePoint(state().pts[idx - 1]) : 'hover a point') }, ...series],
    }, data, box);
    u.shape = shape;
    box.uplot = u;
    observeWidth(box);
  }
  box.dataset.points = String(pts.length);
  box.setAttribute('aria-label', `${opts.label}: ${pts.length} changes`);
}

/** The points' time span, padded by 4 % each side (half a second round a lone instant): the data fills the width. */
function xRange(pts) {
  const [x0, x1] = [pts[0].t / 1000, pts[pts.length - 1].t / 1000];
  const pad = x1 > x0 ? (x1 - x0) * 0.04 : 0.5;
  return [x0 - pad, x1 + pad];
}

function pointSeries(label, colour, hollow) {
  return {
    label,
    stroke: colour,
    fill: hollow ? '#ffffff' : alpha(colour, 0.45), // the legend's swatch; no area is drawn (no path)
    paths: () => null, // a scatter plot: points only, no joining line
    points: { show: true, size: 10, width: hollow ? 2 : 1.5, stroke: colour, fill: hollow ? '#ffffff' : alpha(colour, 0.45) },
    value: (_u, v) => (v === null || v === undefined ? '—' : fmtMs(v)),
  };
}

export function describePoint(p) {
  return `r${p.revision} ${p.kind}${p.tier ? ` (${p.tier})` : ''}: ${p.pending ? 'pending for ' : ''}${fmtMs(p.lagMs)}` +
    (p.sloMs !== null && p.sloMs !== undefined ? ` · SLO ${fmtMs(p.sloMs)}` : '');
}

/** hh:mm:ss labels, with milliseconds when neighbouring labels would read the same. */
function timeLabels(splits) {
  const full = splits.map((s) => fmtTime(new Date(s * 1000).toISOString()));
  const short = full.map((t) => t.slice(0, 8));
  return new Set(short).size === short.length ? short : full.map((t) => t.slice(3));
}

function observeWidth(box) {
  if (box.resizeObserver) return;
  box.resizeObserver = new ResizeObserver(() => {
    const w = Math.max(240, Math.floor(box.clientWidth));
    if (box.uplot && Math.abs(box.uplot.width - w) > 2) box.uplot.setSize({ width: w, height: HEIGHT });
  });
  box.resizeObserver.observe(box);
}

function destroy(box) {
  if (box.uplot) box.uplot.destroy();
  box.uplot = undefined;
}
