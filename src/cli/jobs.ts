/** `lockstep jobs list | retry ID`: the reconciliation queue. */
import type { Command } from 'commander';
import { JOB_STATES, type JobState } from '../domain/contract.ts';
import { addDbOptions, withStore, type DbOptions } from './database.ts';
import { UsageError } from './errors.ts';

interface ListOptions extends DbOptions {
  org?: string;
  state?: string;
  json?: boolean;
}

export function registerJobs(program: Command) {
  const jobs = program.command('jobs').description('Inspect and retry reconciliation jobs');
  addDbOptions(
    jobs
      .command('list')
      .description('List jobs with state, checkpoint and progress')
      .option('--org <org>', 'only this organization')
      .option('--state <state>', JOB_STATES.join(' | '))
      .option('--json', 'print JSON'),
  ).action(async (opts: ListOptions) => {
    if (opts.state !== undefined && !JOB_STATES.includes(opts.state as JobState)) throw new UsageError(`--state must be one of ${JOB_STATES.join(', ')}`);
    const list = await withStore(opts, (_db, ls) =>
      ls.listJobs({ ...(opts.org ? { org: opts.org } : {}), ...(opts.state ? { states: [opts.state as JobState] } : {}), limit: 1000 }),
    );
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      return;
    }
    for (const j of list) {
      const total = j.progress.total ?? '?';
      process.stdout.write(
        `${j.id}  ${j.state.padEnd(8)}  ${j.org}  ${j.scope}  ${j.direction}  ${j.progress.done}/${total} members  ` +
          `batches ${j.batches}  +${j.rowsAdded}/-${j.rowsRemoved} rows  attempts ${j.attempts}${j.lastError ? `  last error: ${j.lastError}` : ''}\n`,
      );
    }
    if (list.length === 0) process.stdout.write('no jobs\n');
  });
  addDbOptions(jobs.command('retry').description('Put a failed job back in the queue; it resumes at its checkpoint').argument('<id>', 'job id')).action(
    async (id: string, opts: DbOptions) => {
      const job = await withStore(opts, (_db, ls) => ls.retryJob(id));
      process.stdout.write(`${job.id} is ${job.state}; a worker will resume it at checkpoint ${job.checkpoint ?? '(start)'}\n`);
    },
  );
}
