/** `lockstep audit export [--org ORG] [--since ISO]`: the change log as JSON lines on stdout. */
import type { Command } from 'commander';
import { exportChanges } from '../audit/export.ts';
import { notFound } from '../domain/errors.ts';
import { parseOrgId } from '../domain/model.ts';
import { addDbOptions, withStore, type DbOptions } from './database.ts';
import { UsageError } from './errors.ts';

interface ExportOptions extends DbOptions {
  org?: string;
  since?: string;
}

export function registerAudit(program: Command) {
  const audit = program.command('audit').description('The audit trail: every committed change, who made it, when it took effect');
  addDbOptions(
    audit
      .command('export')
      .description('Write the change log as JSON lines (one receipt per line, oldest first)')
      .option('--org <org>', 'only this organization')
      .option('--since <time>', 'ISO 8601 time; changes decided at or after it'),
  ).action(async (opts: ExportOptions) => {
    const since = opts.since === undefined ? 0 : Date.parse(opts.since);
    if (Number.isNaN(since)) throw new UsageError(`--since must be an ISO 8601 time, got '${opts.since}'`);
    await withStore(opts, async (db) => {
      // An organization that does not exist is an error (exit 5), not an empty export.
      if (opts.org !== undefined && !(await db.get('SELECT 1 AS x FROM organizations WHERE id = $1', [parseOrgId(opts.org, 'org')]))) {
        throw notFound('org', 'organization', opts.org);
      }
      for await (const line of exportChanges(db, { ...(opts.org ? { org: opts.org } : {}), since, now: Date.now() })) {
        if (!process.stdout.write(`${JSON.stringify(line)}\n`)) await new Promise((r) => process.stdout.once('drain', r));
      }
    });
  });
}
