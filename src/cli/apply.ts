/**
 * `lockstep apply -f policy.yaml`: validates the whole file first (every problem reported, nothing
 * written), then applies it in one transaction. Idempotent: a second run reports nothing changed.
 * With `--url`, the server does both (POST /v1/apply: the same function, one transaction on its
 * database) and its workers run the asynchronous grants' jobs; the command waits for them unless
 * `--no-wait`.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { data, type LockstepClient } from '../../packages/client/src/index.ts';
import { LockstepError } from '../domain/errors.ts';
import type { JobState } from '../domain/contract.ts';
import { addRemoteOptions, remote, type RemoteOptions } from './remote.ts';
import { Unreachable } from './errors.ts';
import { applyPolicyFile, OBJECT_KINDS, type ApplyReport } from '../policy-file/apply.ts';
import { readPolicyFile } from '../policy-file/parse.ts';
import { addDbOptions, withStore, type DbOptions } from './database.ts';
import { createProgress } from './progress.ts';
import { createWorker } from '../propagation/worker.ts';

interface ApplyOptions extends DbOptions, RemoteOptions {
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

/** How long `apply --url` waits for the server's workers to run the queued jobs. */
const REMOTE_WAIT_MS = 120_000;
const UNFINISHED: JobState[] = ['pending', 'running', 'retrying'];

/** Jobs of these organizations still queued or running on the server. */
async function unfinishedJobs(client: LockstepClient, orgs: string[]): Promise<number> {
  let n = 0;
  for (const org of orgs) {
    for (const state of UNFINISHED) n += (await data(client.api.GET('/v1/jobs', { params: { query: { org, state, limit: '1000' } } }))).jobs.length;
  }
  return n;
}

async function applyRemote(opts: ApplyOptions, client: LockstepClient) {
  let policy: string;
  try {
    policy = await readFile(opts.file, 'utf8');
  } catch (e) {
    throw new LockstepError('VALIDATION', `cannot read ${opts.file}: ${(e as Error).message}`, { field: 'file' });
  }
  const started = performance.now();
  const report = await data(client.api.POST('/v1/apply', { body: { policy, source: opts.file, dryRun: opts.dryRun === true } }));
  let waited: 'effective' | 'pending' = report.pending > 0 ? 'pending' : 'effective';
  if (!report.dryRun && report.pending > 0 && opts.wait !== false) {
    const orgs = report.organizations.map((o) => o.id);
    const deadline = Date.now() + REMOTE_WAIT_MS;
    while ((await unfinishedJobs(client, orgs)) > 0) {
      if (Date.now() > deadline) {
        throw new Unreachable(
          `applied ${opts.file} (committed), but the server's jobs for ${orgs.join(', ')} are still unfinished after ${REMOTE_WAIT_MS / 1000} s: is a worker running? (lockstep jobs list --url …)`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    waited = 'effective';
  }
  const seconds = (performance.now() - started) / 1000;
  const note = report.pending > 0 && waited === 'effective' && !report.dryRun ? "\npropagated the pending grants: the server's workers ran their jobs" : '';
  process.stdout.write(opts.json ? `${JSON.stringify({ ...report, propagation: waited }, null, 2)}\n` : `${formatReport(report, seconds, opts.wait === false)}${note}\n`);
}

async function apply(opts: ApplyOptions) {
  const client = remote(opts);
  if (client) return applyRemote(opts, client);
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
  addRemoteOptions(addDbOptions(
    program
      .command('apply')
      .description('Apply a declarative policy file (YAML) in one transaction; additive and idempotent')
      .requiredOption('-f, --file <path>', 'the policy file (see docs/policy-file.md)')
      .option('--dry-run', 'validate and apply in a transaction that is rolled back; report what would change')
      .option('--json', 'print the report as JSON')
      .option('--no-wait', 'leave asynchronous grants to the workers instead of propagating them (with --url: waiting for them) before exiting'),
  )).action(apply);
}
