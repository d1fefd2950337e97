/**
 * `lockstep drift --org ORG [--repair]`: recompute the organization from scratch and report every
 * read-model row that differs, queued propagation (rows unfinished jobs will write) apart from drift; `--repair` queues a priority organization job and runs it here,
 * through the same batch machinery the workers use, with progress.
 */
import type { Command } from 'commander';
import { createWorker } from '../propagation/worker.ts';
import { addDbOptions, withStore, type DbOptions } from './database.ts';
import { createProgress, type Progress } from './progress.ts';
import { EXIT } from './errors.ts';
import { addRemoteOptions, remote, type RemoteOptions } from './remote.ts';
import { driftRemote } from './drift-remote.ts';

interface DriftOptions extends DbOptions, RemoteOptions {
  waitMs?: string;
  org: string;
  repair?: boolean;
  limit?: string;
  json?: boolean;
}

export function registerDrift(program: Command) {
  addRemoteOptions(addDbOptions(
    program
      .command('drift')
      .description('Audit the read model against the policy; --repair fixes it through a reconciliation job')
      .requiredOption('--org <org>', 'organization id')
      .option('--repair', 'queue an organization job and run it to completion')
      .option('--limit <n>', 'differing rows to list of each kind (default 100; 0: counts only)')
      .option('--wait-ms <ms>', 'with --url --repair: how long to follow the server-run repair job (default 600000)')
      .option('--json', 'print JSON'),
  )).action(async (opts: DriftOptions) => {
    const limit = opts.limit === undefined ? 100 : Number(opts.limit);
    // --url: the server audits and its workers repair (drift-remote.ts)
    const client = remote(opts);
    const result = client ? await driftRemote(client, { ...opts, limit }) : await withStore(opts, async (db, ls, config) => {
      const report = await ls.auditDrift(opts.org, { repair: opts.repair === true, limit });
      if (!report.repairJob) return { report, after: null };
      let progress: Progress | undefined;
      let done = 0;
      const worker = createWorker({
        db,
        batchSize: config.batchSize, maxBatchRows: config.batchRows,
        onEvent: (e) => {
          if (e.type !== 'batch' || e.job.id !== report.repairJob) return;
          const total = Math.max(e.job.total_members ?? 1, 1);
          progress ??= createProgress(total, process.stderr, { label: 'repair', unit: 'subjects', threshold: 1 });
          done += e.members;
          progress.update(Math.min(done, total), total);
        },
      });
      await worker.drain();
      progress?.stop();
      return { report, after: await ls.auditDrift(opts.org, { limit: 0 }) };
    });
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    } else {
      const r = result.report;
      process.stdout.write(`organization ${r.org} at ${r.checkedAt}: ${r.missing} missing rows, ${r.extra} extra rows${r.missing + r.extra === 0 ? ' (no drift)' : ''}\n`);
      if (r.pending.missing + r.pending.extra > 0 || r.pending.jobs > 0) {
        process.stdout.write(`pending (not drift): ${r.pending.missing} rows to add and ${r.pending.extra} to remove by ${r.pending.jobs} unfinished jobs\n`);
      }
      for (const row of r.rows.missing) process.stdout.write(`  missing  ${row.subject}  ${row.role} on ${row.resource}  (assignment ${row.assignment}${row.group ? `, group ${row.group}` : ''})\n`);
      for (const row of r.rows.extra) process.stdout.write(`  extra    ${row.subject}  ${row.role} on ${row.resource}  (assignment ${row.assignment}${row.group ? `, group ${row.group}` : ''})\n`);
      if (result.after) process.stdout.write(`repaired by ${r.repairJob}: now ${result.after.missing} missing, ${result.after.extra} extra\n`);
    }
    // Drift only: rows that queued jobs will write are propagation in progress, exit 0.
    if ((result.after ?? result.report).missing + (result.after ?? result.report).extra > 0) process.exitCode = EXIT.DRIFT;
  });
}
