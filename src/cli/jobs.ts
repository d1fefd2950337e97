/** `lockstep jobs list | retry ID`: the reconciliation queue, in the database or on a server (`--url`). */
import type { Command } from 'commander';
import { JOB_STATES, type JobState } from '../domain/contract.ts';
import { data } from '../../packages/client/src/index.ts';
import { addDbOptions, withStore, type DbOptions } from './database.ts';
import { UsageError } from './errors.ts';
import { addRemoteOptions, remote, type RemoteOptions } from './remote.ts';
import { formatTable } from './table.ts';

interface ListOptions extends DbOptions, RemoteOptions {
  org?: string;
  state?: string;
  json?: boolean;
}

/** At most this many jobs are listed (the server's pages are followed up to it). */
const MAX_JOBS = 1000;

interface JobLine {
  id?: string;
  state?: string;
  org?: string;
  scope?: string;
  direction?: string;
  progress?: { done?: number; total?: number | null };
  batches?: number;
  rowsAdded?: number;
  rowsRemoved?: number;
  attempts?: number;
  lastError?: string | null;
}

export function jobsTable(list: JobLine[]): string {
  return formatTable(
    ['ID', 'STATE', 'ORG', 'SCOPE', 'DIRECTION', 'MEMBERS', 'BATCHES', 'ROWS +/-', 'ATTEMPTS', 'LAST ERROR'],
    list.map((j) => [j.id, j.state, j.org, j.scope, j.direction, `${j.progress?.done ?? 0}/${j.progress?.total ?? '?'}`, j.batches, `+${j.rowsAdded ?? 0}/-${j.rowsRemoved ?? 0}`, j.attempts, j.lastError ?? '']),
  );
}

async function listRemote(opts: ListOptions, client: NonNullable<ReturnType<typeof remote>>): Promise<JobLine[]> {
  const out: JobLine[] = [];
  let cursor: string | undefined;
  do {
    const page = await data(
      client.api.GET('/v1/jobs', {
        params: { query: { ...(opts.org ? { org: opts.org } : {}), ...(opts.state ? { state: opts.state as JobState } : {}), limit: String(Math.min(1000, MAX_JOBS - out.length)), ...(cursor ? { cursor } : {}) } },
      }),
    );
    out.push(...page.jobs);
    cursor = page.next ?? undefined;
  } while (cursor !== undefined && out.length < MAX_JOBS);
  return out;
}

export function registerJobs(program: Command) {
  const jobs = program.command('jobs').description('Inspect and retry reconciliation jobs');
  addRemoteOptions(
    addDbOptions(
      jobs
        .command('list')
        .description('List jobs with state, checkpoint and progress')
        .option('--org <org>', 'only this organization')
        .option('--state <state>', JOB_STATES.join(' | '))
        .option('--json', 'print JSON'),
    ),
  ).action(async (opts: ListOptions) => {
    if (opts.state !== undefined && !JOB_STATES.includes(opts.state as JobState)) throw new UsageError(`--state must be one of ${JOB_STATES.join(', ')}`);
    const client = remote(opts);
    const list: JobLine[] = client
      ? await listRemote(opts, client)
      : await withStore(opts, (_db, ls) => ls.listJobs({ ...(opts.org ? { org: opts.org } : {}), ...(opts.state ? { states: [opts.state as JobState] } : {}), limit: MAX_JOBS }));
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      return;
    }
    process.stdout.write(list.length === 0 ? 'no jobs\n' : `${jobsTable(list)}\n`);
  });
  addRemoteOptions(addDbOptions(jobs.command('retry').description('Put a failed job back in the queue; it resumes at its checkpoint').argument('<id>', 'job id'))).action(
    async (id: string, opts: DbOptions & RemoteOptions) => {
      const client = remote(opts);
      const job = client ? await data(client.api.POST('/v1/jobs/{id}/retry', { params: { path: { id } } })) : await withStore(opts, (_db, ls) => ls.retryJob(id));
      process.stdout.write(`${job.id} is ${job.state}; a worker will resume it at checkpoint ${job.checkpoint ?? '(start)'}\n`);
    },
  );
}
