/**
 * `lockstep apply -f policy.yaml`: validates the whole file first (every problem reported, nothing
 * written), then applies it in one transaction. Idempotent: a second run reports nothing changed.
 */
import type { Command } from 'commander';
import { applyPolicyFile, OBJECT_KINDS, type ApplyReport } from '../policy-file/apply.ts';
import { readPolicyFile } from '../policy-file/parse.ts';
import { addDbOptions, withStore, type DbOptions } from './database.ts';
import { createProgress } from './progress.ts';
import { createWorker } from '../propagation/worker.ts';

interface ApplyOptions extends DbOptions {
  file: string;
  /** false with --no-wait */
  wait?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

export function formatReport(r: ApplyReport, seconds: number, leftPending = true): string {
  const lines = [
    `${r.dryRun ? 'dry run of' : 'applied'} ${r.file}: ${r.writes} writes, ${r.changed} changed, in ${seconds.toFixed(2)} s${r.dryRun ? ' (rolled back: nothing was written)' : ''}`,
  ];
  if (r.pending > 0 && leftPending) {
    lines.push(
      `${r.pending} of them grant asynchronously: propagation is pending until a worker (lockstep serve) runs the queued jobs;` +
        ' fully_consistent checks see them now',
    );
  }
  for (const o of r.organizations) {
    lines.push('', `organization ${o.id}: revision ${o.revision}`, `  ${'kind'.padEnd(13)} created  updated  unchanged`);
    for (const k of OBJECT_KINDS) {
      const c = o.counts[k];
      if (c.created + c.updated + c.unchanged === 0) continue;
      lines.push(`  ${k.padEnd(13)} ${String(c.created).padStart(7)}  ${String(c.updated).padStart(7)}  ${String(c.unchanged).padStart(9)}`);
    }
  }
  return lines.join('\n');
}

async function apply(opts: ApplyOptions) {
  const file = await readPolicyFile(opts.file);
  const started = performance.now();
  let propagated = 0;
  const report = await withStore(opts, async (db, lockstep, config) => {
    const progress = createProgress(file.writes);
    let r: ApplyReport;
    try {
      r = await applyPolicyFile(lockstep, file, {
        dryRun: opts.dryRun === true,
        ctx: { actor: 'cli:apply' },
        onProgress: (done, total) => progress.update(done, total),
      });
    } finally {
      progress.stop();
    }
    // Asynchronous grants were committed with their jobs; unless told otherwise, run those jobs
    // here so the read model is current when apply returns (a running server's workers would too).
    if (!r.dryRun && r.pending > 0 && opts.wait !== false) {
      propagated = await createWorker({ db, batchSize: config.batchSize, maxBatchRows: config.batchRows, verify: config.verify }).drain();
    }
    return r;
  });
  const seconds = (performance.now() - started) / 1000;
  const waited = propagated > 0 ? `\npropagated the pending grants: ${propagated} reconciliation jobs run` : '';
  process.stdout.write(opts.json ? `${JSON.stringify({ ...report, jobsRun: propagated }, null, 2)}\n` : `${formatReport(report, seconds, opts.wait === false)}${waited}\n`);
}

export function registerApply(program: Command) {
  addDbOptions(
    program
      .command('apply')
      .description('Apply a declarative policy file (YAML) in one transaction; additive and idempotent')
      .requiredOption('-f, --file <path>', 'the policy file (see docs/policy-file.md)')
      .option('--dry-run', 'validate and apply in a transaction that is rolled back; report what would change')
      .option('--json', 'print the report as JSON')
      .option('--no-wait', 'leave asynchronous grants to the workers instead of propagating them before exiting'),
  ).action(apply);
}
