/**
 * The benchmark harness: Lockstep (sync; async + verification; async, verification never) on SQLite
 * and PostgreSQL, the naive synchronous baseline, SpiceDB embedded and node-casbin, through the
 * scenarios, in one process run (scenario 8: several `serve` child processes on one store). Writes report.md, results.json and the SVG charts under
 * bench/results/<timestamp>-<mode>/ (or --out DIR). Progress on stderr.
 *
 *   npm run bench -- [--smoke|--quick|--full] [--engines sqlite,postgres] [--pg URL] [--out DIR] [--scenarios 1,2,3,4,5,6,7,8] [--rate N]
 *
 * `--rate N`: scenario 2's offered membership changes per second instead of the mode's.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createProgress } from '../src/cli/progress.ts';
import { SIZES, type Ctx, type Mode } from './lib/context.ts';
import { postgresUnavailable, type Engine } from './lib/lockstep.ts';
import { renderReport } from './lib/report.ts';
import type { BenchResults } from './lib/results.ts';
import { checks } from './scenarios/checks.ts';
import { crash } from './scenarios/crash.ts';
import { largeGroup } from './scenarios/large-group.ts';
import { membership } from './scenarios/membership.ts';
import { propagation } from './scenarios/propagation.ts';
import { directories } from './scenarios/directories.ts';
import { nested } from './scenarios/nested.ts';
import { multiServe } from './scenarios/multi-serve.ts';

export type { BenchResults } from './lib/results.ts';

export interface BenchOptions {
  mode: Mode;
  engines: Engine[];
  pg: string;
  out?: string;
  scenarios?: number[];
  /** scenario 2's offered rate (changes/s), instead of the mode's */
  rate?: number;
  command?: string;
  /** progress and log lines (default: stderr) */
  stream?: NodeJS.WriteStream;
}

export const SYSTEMS: Array<{ system: string; engines: string[] }> = [
  { system: 'lockstep sync', engines: ['sqlite', 'postgres'] },
  { system: 'lockstep async+verify', engines: ['sqlite', 'postgres'] },
  { system: 'lockstep async verify-never', engines: ['sqlite', 'postgres'] },
  { system: 'naive rewrite', engines: ['sqlite', 'postgres'] },
  { system: 'floor', engines: ['sqlite', 'postgres'] },
  { system: 'lockstep scim', engines: ['sqlite', 'postgres'] },
  { system: 'spicedb minimize_latency', engines: ['memdb'] },
  { system: 'spicedb at_least_as_fresh', engines: ['memdb'] },
  { system: 'spicedb fully_consistent', engines: ['memdb'] },
  { system: 'casbin plain', engines: ['memory'] },
  { system: 'casbin cached', engines: ['memory'] },
];

export function machine() {
  const c = cpus();
  const m = {
    cpu: c[0]?.model.trim() ?? 'unknown',
    cores: c.length,
    ramGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
  };
  return { ...m, line: `${m.cpu}, ${m.cores} cores, ${m.ramGb} GiB RAM, node ${m.node}, ${m.platform}, ${m.date}` };
}

export async function runBench(opts: BenchOptions): Promise<{ dir: string; results: BenchResults }> {
  const stream = opts.stream ?? process.stderr;
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const size = { ...SIZES[opts.mode], ...(opts.rate === undefined ? {} : { rate: opts.rate }) };
  const pgDown = opts.engines.includes('postgres') ? await postgresUnavailable(opts.pg) : null;
  const tmp = mkdtempSync(join(tmpdir(), 'lockstep-bench-'));
  const wanted = new Set(opts.scenarios ?? [1, 2, 3, 4, 5, 6, 7, 8]);
  const steps = [...wanted].length;
  const bar = stream.isTTY ? createProgress(steps, stream, { label: 'bench', unit: 'scenarios', threshold: 0 }) : null;
  let done = 0;
  const ctx: Ctx = {
    mode: opts.mode,
    size,
    engines: opts.engines,
    pg: opts.pg,
    pgDown,
    tmp,
    log: (msg) => {
      if (!bar) stream.write(`[bench ${((performance.now() - started) / 1000).toFixed(0)}s] ${msg}\n`);
    },
  };
  if (pgDown) stream.write(`[bench] PostgreSQL runs are reported as not run: ${pgDown}\n`);
  const skipped = (n: number) => `scenario ${n} not selected (--scenarios)`;
  const results: BenchResults = {
    mode: opts.mode,
    command: opts.command ?? `npm run bench -- --${opts.mode} --engines ${opts.engines.join(',')}`,
    startedAt,
    elapsedSeconds: 0,
    machine: machine(),
    sizes: size,
    systems: [],
    scenarios: { membership: [], propagation: [], largeGroup: [], checks: { inProcess: [], http: [] }, crash: [], directories: [], nested: { checks: [], edges: [] }, multiServe: [] },
  };
  const step = async <T>(n: number, label: string, fn: () => Promise<T>, fallback: () => T): Promise<T> => {
    if (!wanted.has(n)) return fallback();
    ctx.log(`scenario ${n}: ${label}`);
    try {
      return await fn();
    } finally {
      bar?.update(++done, steps);
    }
  };
  try {
    results.scenarios.membership = await step(1, 'membership change latency', () => membership(ctx), () => []);
    results.scenarios.propagation = await step(2, 'propagation under load', () => propagation(ctx), () => []);
    results.scenarios.largeGroup = await step(3, 'large group', () => largeGroup(ctx), () => []);
    results.scenarios.checks = await step(4, 'checks', () => checks(ctx), () => ({ inProcess: [], http: [] }));
    results.scenarios.crash = await step(5, 'crash and resume', () => crash(ctx), () => []);
    results.scenarios.directories = await step(6, 'directory provisioning (SCIM)', () => directories(ctx), () => []);
    results.scenarios.nested = await step(7, 'nested groups', () => nested(ctx), () => ({ checks: [], edges: [] }));
    results.scenarios.multiServe = await step(8, 'several serve processes, one organization', () => multiServe(ctx), () => []);
  } finally {
    bar?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
  for (const n of [1, 2, 3, 4, 5, 6, 7, 8]) if (!wanted.has(n)) stream.write(`[bench] ${skipped(n)}\n`);
  // Systems: ran somewhere, or the reasons they did not.
  const all = [
    ...results.scenarios.membership,
    ...results.scenarios.propagation,
    ...results.scenarios.largeGroup,
    ...results.scenarios.checks.inProcess,
    ...results.scenarios.checks.http,
    ...results.scenarios.crash,
    ...results.scenarios.directories,
    ...(results.scenarios.nested?.checks ?? []),
    ...(results.scenarios.nested?.edges ?? []),
    ...(results.scenarios.multiServe ?? []),
  ] as Array<{ system: string; engine: string; notRun?: string }>;
  for (const { system, engines } of SYSTEMS) {
    for (const engine of engines) {
      const fam = system.split(' ')[0]!;
      const mine = all.filter((r) => r.engine === engine && (r.system === system || (fam !== 'naive' && r.system.startsWith(fam) && (fam !== 'lockstep' || !LS_CONFIG_ROW.test(r.system)))));
      const ran = mine.filter((r) => !r.notRun).length;
      const reasons = [...new Set(mine.filter((r) => r.notRun && !r.notRun.startsWith('not applicable') && !r.notRun.startsWith('same read path')).map((r) => r.notRun!))];
      results.systems.push({ system, engine, status: ran > 0 ? `ran (${ran} measurements)${reasons.length ? `; not run in some: ${reasons.join('; ')}` : ''}` : `not run: ${reasons.join('; ') || 'no measurement'}` });
    }
  }
  results.elapsedSeconds = (performance.now() - started) / 1000;
  const stamp = startedAt.replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  const dir = opts.out ?? join(new URL('.', import.meta.url).pathname, 'results', `${stamp}-${opts.mode}`);
  mkdirSync(dir, { recursive: true });
  const { md, svgs } = renderReport(results);
  writeFileSync(join(dir, 'results.json'), JSON.stringify(results) + '\n');
  writeFileSync(join(dir, 'report.md'), md);
  for (const [f, svg] of Object.entries(svgs)) writeFileSync(join(dir, f), svg);
  stream.write(`[bench] done in ${results.elapsedSeconds.toFixed(0)}s: ${join(dir, 'report.md')}\n`);
  return { dir, results };
}

/** Lockstep rows whose system names a configuration other than the one being tallied. */
const LS_CONFIG_ROW = /^lockstep (sync|async\+verify|async verify-never)$/;

export function parseBenchArgs(argv: string[]): BenchOptions {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      smoke: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      full: { type: 'boolean', default: false },
      engines: { type: 'string', default: 'sqlite,postgres' },
      pg: { type: 'string', default: process.env.LOCKSTEP_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test' },
      out: { type: 'string' },
      scenarios: { type: 'string' },
      rate: { type: 'string' },
    },
  });
  const modes = (['smoke', 'quick', 'full'] as const).filter((m) => a[m]);
  if (modes.length > 1) throw new Error('choose one of --smoke, --quick, --full');
  const engines = a.engines!.split(',').map((e) => e.trim()).filter(Boolean);
  for (const e of engines) if (e !== 'sqlite' && e !== 'postgres') throw new Error(`--engines: unknown engine '${e}' (sqlite, postgres)`);
  const scenarios = a.scenarios?.split(',').map(Number);
  if (scenarios?.some((n) => !Number.isInteger(n) || n < 1 || n > 8)) throw new Error('--scenarios: numbers 1-8, comma-separated');
  const rate = a.rate === undefined ? undefined : Number(a.rate);
  if (rate !== undefined && !(Number.isInteger(rate) && rate > 0)) throw new Error('--rate: a positive integer (changes/s offered in scenario 2)');
  return { mode: modes[0] ?? 'quick', engines: engines as Engine[], pg: a.pg!, ...(a.out ? { out: a.out } : {}), ...(scenarios ? { scenarios } : {}), ...(rate === undefined ? {} : { rate }), command: `npm run bench -- ${argv.join(' ')}`.trim() };
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  let opts: BenchOptions;
  try {
    opts = parseBenchArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`USAGE: ${(e as Error).message}\n`);
    process.exit(64); // `lockstep bench` maps this status to a usage error
  }
  // `lockstep bench` runs this file as a child and names itself in the report.
  const { dir } = await runBench({ ...opts, ...(process.env.LOCKSTEP_BENCH_COMMAND ? { command: process.env.LOCKSTEP_BENCH_COMMAND } : {}) });
  process.stdout.write(`${dir}/report.md\n`);
}
