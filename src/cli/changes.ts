/**
 * `lockstep changes --org ORG`: the change log's receipts, newest first — what changed, when it
 * was enforced, whether it met its SLO. From the database, or a server's `GET …/changes` with
 * `--url`. A table on stdout; `--json` prints `{changes, next}`, and `--before NEXT` the next page.
 */
import type { Command } from 'commander';
import type { Direction } from '../domain/model.ts';
import { data } from '../../packages/client/src/index.ts';
import { addDbOptions, withStore, type DbOptions } from './database.ts';
import { UsageError } from './errors.ts';
import { addRemoteOptions, remote, type RemoteOptions } from './remote.ts';
import { formatTable } from './table.ts';

const DIRECTIONS = ['grant', 'revoke', 'both', 'none'] as const;

interface ChangesOptions extends DbOptions, RemoteOptions {
  org: string;
  direction?: string;
  since?: string;
  until?: string;
  before?: string;
  limit?: string;
  json?: boolean;
}

interface ChangeLine {
  revision?: number;
  kind?: string;
  direction?: string;
  tier?: string | null;
  mode?: string;
  status?: string;
  decidedAt?: string;
  lagMs?: number | null;
  sloMs?: number | null;
  sloMet?: boolean | null;
  actor?: string | null;
}

export function registerChanges(program: Command) {
  addRemoteOptions(
    addDbOptions(
      program
        .command('changes')
        .description("An organization's change receipts, newest first (enforcement lag and SLO per change)")
        .requiredOption('--org <org>', 'organization id')
        .option('--direction <d>', DIRECTIONS.join(' | '))
        .option('--since <time>', 'RFC 3339 time: changes decided at or after it')
        .option('--until <time>', 'RFC 3339 time: changes decided at or before it')
        .option('--before <revision>', 'only revisions below this one (the `next` of the previous page)')
        .option('--limit <n>', 'receipts to show, 1–1000 (default 50)')
        .option('--json', 'print JSON'),
    ),
  ).action(async (opts: ChangesOptions) => {
    if (opts.direction !== undefined && !DIRECTIONS.includes(opts.direction as Direction)) throw new UsageError(`--direction must be one of ${DIRECTIONS.join(', ')}`);
    if (opts.limit !== undefined && !/^([1-9][0-9]{0,2}|1000)$/.test(opts.limit)) throw new UsageError(`--limit must be 1–1000, got '${opts.limit}'`);
    if (opts.before !== undefined && !/^[1-9][0-9]{0,14}$/.test(opts.before)) throw new UsageError(`--before must be a revision, got '${opts.before}'`);
    const q = {
      ...(opts.direction ? { direction: opts.direction as Direction } : {}),
      ...(opts.since ? { since: opts.since } : {}),
      ...(opts.until ? { until: opts.until } : {}),
    };
    const client = remote(opts);
    const page: { changes: ChangeLine[]; next: number | null } = client
      ? await data(
          client.api.GET('/v1/organizations/{org}/changes', {
            params: { path: { org: opts.org }, query: { ...q, ...(opts.before ? { before: opts.before } : {}), ...(opts.limit ? { limit: opts.limit } : {}) } },
          }),
        )
      : await withStore(opts, (_db, ls) =>
          ls.listChanges(opts.org, { ...q, ...(opts.before ? { before: Number(opts.before) } : {}), ...(opts.limit ? { limit: Number(opts.limit) } : {}) }),
        );
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(page, null, 2)}\n`);
      return;
    }
    if (page.changes.length === 0) {
      process.stdout.write('no changes\n');
      return;
    }
    const slo = (c: ChangeLine) => (c.sloMet === null || c.sloMet === undefined ? '' : c.sloMet ? 'met' : 'MISSED');
    process.stdout.write(
      `${formatTable(
        ['REVISION', 'KIND', 'DIRECTION', 'TIER', 'MODE', 'STATUS', 'DECIDED', 'LAG MS', 'SLO MS', 'SLO', 'ACTOR'],
        page.changes.map((c) => [c.revision, c.kind, c.direction, c.tier, c.mode, c.status, c.decidedAt, c.lagMs, c.sloMs, slo(c), c.actor]),
      )}\n`,
    );
    if (page.next !== null) process.stdout.write(`more: --before ${page.next}\n`);
  });
}
