/** Re-renders report.md and the charts of a results directory from its results.json. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderReport } from './lib/report.ts';
import type { BenchResults } from './lib/results.ts';

const dir = process.argv[2];
if (!dir) throw new Error('usage: node --import tsx bench/render.ts <results dir>');
const { md, svgs } = renderReport(JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as BenchResults);
writeFileSync(join(dir, 'report.md'), md);
for (const [f, svg] of Object.entries(svgs)) writeFileSync(join(dir, f), svg);
