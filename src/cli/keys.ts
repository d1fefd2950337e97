/**
 * `lockstep keys create | list | revoke`: API keys, managed directly in the store (an operator
 * with the database needs no key to make one). `create` prints the key once, alone on stdout, so
 * `KEY=$(lockstep keys create …)` works; what it is goes to stderr.
 */
import type { Command } from 'commander';
import { createKey, KEY_SCOPES, revokeKey, type KeyScope } from '../api/keys.ts';
import { LockstepError } from '../domain/errors.ts';
import type { Database } from '../storage/database.ts';
import { addDbOptions, withStore, type DbOptions } from './database.ts';
import { UsageError } from './errors.ts';

interface KeyRow {
  id: string;
  scope: KeyScope;
  org: string | null;
  name: string | null;
  createdAt: string;
  revokedAt: string | null;
}

// api/keys.ts has no listing yet; this read is the CLI's own (no secrets: hashes are not selected).
async function listKeys(db: Database, org: string | undefined, all: boolean): Promise<KeyRow[]> {
  const rows = await db.all<{ id: string; scope: KeyScope; org_id: string | null; name: string | null; created_at: number; revoked_at: number | null }>(
    `SELECT id, scope, org_id, name, created_at, revoked_at FROM api_keys
      WHERE ($1 = '' OR org_id = $1) AND ($2 = 1 OR revoked_at IS NULL) ORDER BY created_at, id`,
    [org ?? '', all ? 1 : 0],
  );
  const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());
  return rows.map((r) => ({ id: r.id, scope: r.scope, org: r.org_id, name: r.name, createdAt: iso(r.created_at)!, revokedAt: iso(r.revoked_at) }));
}

function table(rows: KeyRow[]): string {
  const head = ['ID', 'SCOPE', 'ORG', 'NAME', 'CREATED', 'REVOKED'];
  const cells = rows.map((r) => [r.id, r.scope, r.org ?? '*', r.name ?? '', r.createdAt, r.revokedAt ?? '']);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  return [head, ...cells].map((c) => c.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export function registerKeys(program: Command) {
  const keys = program.command('keys').description('Create, list and revoke API keys');

  addDbOptions(
    keys
      .command('create')
      .description('Create an API key and print it once')
      .requiredOption('--scope <scope>', KEY_SCOPES.join(' | '))
      .option('--org <org>', 'organization the key is limited to (required for check and write, refused for admin)')
      .option('--name <name>', 'a label to recognise the key by')
      .option('--json', 'print {id, key, scope, org, name} as JSON'),
  ).action(async (opts: DbOptions & { scope: string; org?: string; name?: string; json?: boolean }) => {
    if (opts.scope !== 'admin' && opts.org === undefined) throw new UsageError(`a ${opts.scope} key belongs to one organization: give --org ORG`);
    // A flag combination, like the line above: a usage error (2), not a validation of data (4).
    if (opts.scope === 'admin' && opts.org !== undefined) throw new UsageError('an admin key spans every organization: give no --org');
    const created = await withStore(opts, (db) =>
      createKey(db, {
        scope: opts.scope as KeyScope,
        ...(opts.org === undefined ? {} : { org: opts.org }),
        ...(opts.name === undefined ? {} : { name: opts.name }),
      }),
    );
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ ...created, scope: opts.scope, org: opts.org ?? null, name: opts.name ?? null })}\n`);
    } else {
      process.stdout.write(`${created.key}\n`);
      process.stderr.write(`created ${opts.scope} key ${created.id}${opts.org ? ` for organization ${opts.org}` : ''}; it is shown only this once\n`);
    }
  });

  addDbOptions(
    keys
      .command('list')
      .description('List API keys (never the keys themselves)')
      .option('--org <org>', 'only the keys of this organization')
      .option('--all', 'include revoked keys')
      .option('--json', 'print JSON'),
  ).action(async (opts: DbOptions & { org?: string; all?: boolean; json?: boolean }) => {
    const rows = await withStore(opts, (db) => listKeys(db, opts.org, opts.all === true));
    process.stdout.write(opts.json ? `${JSON.stringify(rows, null, 2)}\n` : rows.length === 0 ? '(no keys)\n' : `${table(rows)}\n`);
  });

  addDbOptions(keys.command('revoke').description('Revoke an API key by id (takes effect on the next request)').argument('<id>', 'key id, as `keys list` shows it')).action(
    async (id: string, opts: DbOptions) => {
      const revoked = await withStore(opts, (db) => revokeKey(db, id));
      if (!revoked) throw new LockstepError('NOT_FOUND', `no active API key with id '${id}'`, { field: 'id' });
      process.stdout.write(`revoked key ${id}\n`);
    },
  );
}
