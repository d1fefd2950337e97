// Just enough of the Prometheus text format to read one histogram, and the quantile estimate
// Prometheus itself uses (histogram_quantile: linear interpolation inside the bucket).

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function parseLabels(text) {
  const labels = {};
  for (const m of (text ?? '').matchAll(LABEL)) labels[m[1]] = m[2].replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
  return labels;
}

function parseValue(v) {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  return Number(v);
}

/**
 * The `<name>` histogram grouped by one label: `Map(groupValue → {buckets: [{le, count}], count, sum})`,
 * buckets sorted by `le` and summed over the other labels (e.g. `result`).
 */
export function readHistogram(text, name, groupBy) {
  const groups = new Map();
  const group = (key) => {
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { les: new Map(), count: 0, sum: 0 }));
    return g;
  };
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m || !m[1].startsWith(name)) continue;
    const suffix = m[1].slice(name.length);
    const labels = parseLabels(m[2]);
    const value = parseValue(m[3]);
    const g = group(labels[groupBy] ?? '');
    if (suffix === '_bucket') {
      const le = parseValue(labels.le);
      g.les.set(le, (g.les.get(le) ?? 0) + value);
    } else if (suffix === '_count') g.count += value;
    else if (suffix === '_sum') g.sum += value;
  }
  const out = new Map();
  for (const [key, g] of groups) {
    const buckets = [...g.les].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
    out.set(key, { buckets, count: g.count, sum: g.sum });
  }
  return out;
}

/**
 * Estimates the q-quantile (0..1) from cumulative buckets, as Prometheus' histogram_quantile does:
 * linear within the bucket that holds the rank; the +Inf bucket answers its lower bound. Null when
 * there are no observations.
 */
export function quantile(q, buckets) {
  if (buckets.length === 0) return null;
  const total = buckets[buckets.length - 1].count;
  if (!(total > 0)) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe;
      if (b.count === prevCount) return b.le;
      return prevLe + ((b.le - prevLe) * (rank - prevCount)) / (b.count - prevCount);
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}
