/**
 * `lockstep check`: one authorization check against the store, or against a server with `--url`,
 * printed as JSON (the same shape as `POST …/check`) — as a table instead when stdout is a terminal
 * and `--json` is not given. Exit 0 when allowed, 3 when denied, so a script can write
 * `if lockstep check …; then`.
 */
import type { Command } from 'commander';
import { CONSISTENCY_MODES, type ConsistencyMode } from '../domain/model.ts';
import type { CheckRequest } from '../domain/contract.ts';
import { addDbOptions, withStore, type DbOptions } from './database.ts';
import { EXIT, UsageError } from './errors.ts';
import { addRemoteOptions, remote, type RemoteOptions } from './remote.ts';
import { formatTable } from './table.ts';

interface CheckOptions extends DbOptions, RemoteOptions {
  json?: boolean;
  org: string;
  subject: string;
  permission: string;
  resource: string;
  consistency?: string;
  revision?: string;
}

function request(opts: CheckOptions): CheckRequest {
  const req: CheckRequest = { subject: opts.subject, permission: opts.permission, resource: opts.resource };
  if (opts.revision !== undefined && opts.consistency === undefined) opts.consistency = 'at_least_as_fresh';
  if (opts.consistency !== undefined) {
    if (!CONSISTENCY_MODES.includes(opts.consistency as ConsistencyMode)) {
      throw new UsageError(`--consistency must be one of ${CONSISTENCY_MODES.join(', ')}`);
    }
    if (opts.revision !== undefined && !/^\d+$/.test(opts.revision)) throw new UsageError(`--revision must be a number, got '${opts.revision}'`);
    req.consistency = {
      mode: opts.consistency as ConsistencyMode,
      ...(opts.revision === undefined ? {} : { revision: Number(opts.revision) }),
    };
  }
  return req;
}

async function check(opts: CheckOptions) {
  const req = request(opts);
  const client = remote(opts);
  const result = client ? await client.check(opts.org, req) : await withStore(opts, (_db, lockstep) => lockstep.check(opts.org, req));
  if (opts.json || !process.stdout.isTTY) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    const via = result.via ? `${result.via.role} on ${result.via.resource} (assignment ${result.via.assignment}${result.via.group ? `, group ${result.via.group}` : ''})` : '';
    process.stdout.write(
      `${formatTable(['ALLOWED', 'REVISION', 'EVALUATED', 'CONSISTENCY', 'VERIFIED', 'VIA'], [[String(result.allowed), result.revision, result.evaluatedAgainst, result.consistency, String(result.verified), via]])}\n`,
    );
  }
  if (!result.allowed) process.exitCode = EXIT.DENIED;
}

export function registerCheck(program: Command) {
  addRemoteOptions(addDbOptions(
    program
      .command('check')
      .description('Check whether a subject has a permission on a resource; exit 0 if allowed, 3 if denied')
      .requiredOption('--org <org>', 'organization id')
      .requiredOption('--subject <id>', 'subject id')
      .requiredOption('--permission <slug>', 'permission slug, e.g. project.read')
      .requiredOption('--resource <type:id>', 'resource reference, e.g. project:apollo')
      .option('--consistency <mode>', `${CONSISTENCY_MODES.join(' | ')} (default: the engine's, by risk tier)`)
      .option('--revision <n>', 'with at_least_as_fresh: the revision to be at least as fresh as')
      .option('--json', 'print JSON even on a terminal'),
  )).action(check);
}
