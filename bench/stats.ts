/** Latency statistics and the report helpers every benchmark shares. */
export interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(samplesMs: number[]): Summary {
  const s = [...samplesMs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] ?? NaN, mean: s.reduce((a, b) => a + b, 0) / (s.length || 1) };
}

/** Times `fn` `n` times (after `warmup` untimed calls) and returns milliseconds per call. */
export async function time(n: number, fn: (i: number) => Promise<unknown>, warmup = Math.min(50, n)): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn(-1 - i);
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn(i);
    out[i] = Number(process.hrtime.bigint() - t) / 1e6;
  }
  return out;
}

export const fmt = (ms: number) => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);
export const peakRssMb = () => process.resourceUsage().maxRSS / 1024;

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  return [line(cells[0]!), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...cells.slice(1).map(line)].join('\n');
}

/** Up to `points` (quantile, value) pairs of the sorted samples: enough to draw a CDF, small to store. */
export function cdf(samplesMs: number[], points = 60): Array<[number, number]> {
  const s = [...samplesMs].sort((a, b) => a - b);
  if (s.length === 0) return [];
  const out: Array<[number, number]> = [];
  const qs = new Set<number>();
  for (let k = 0; k <= points; k++) qs.add(k / points);
  for (const q of [0.9, 0.95, 0.99, 0.999]) qs.add(q);
  for (const q of [...qs].sort((a, b) => a - b)) out.push([q, s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!]);
  return out;
}

/** Keeps at most `n` evenly spaced elements (charts and JSON stay small). */
export function thin<T>(xs: T[], n = 400): T[] {
  if (xs.length <= n) return xs;
  const step = xs.length / n;
  return Array.from({ length: n }, (_, i) => xs[Math.floor(i * step)]!);
}

/** Median, min and max of one metric over repeated runs. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number;
}
export function spread(xs: number[]): Spread {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return { median: NaN, min: NaN, max: NaN, runs: 0 };
  const mid = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { median: mid, min: s[0]!, max: s[s.length - 1]!, runs: s.length };
}

export const round = (x: number, d = 3) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const nowMs = () => performance.now();
