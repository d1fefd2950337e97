/**
 * `lockstep keys create | list | revoke`: API keys, managed directly in the store (an operator
 * with the database needs no key to make one), or with `--url` through a server's /v1/keys routes
 * (an admin key; the server refuses to revoke its last admin key). `create` prints the key once, alone on stdout, so
 * `KEY=$(lockstep keys create …)` works; what it is goes to stderr.
 */
import type { Command } from 'commander';
import { createKey, KEY_SCOPES, listKeys, revokeKey, type KeyInfo, type KeyScope } from '../api/keys.ts';
import { LockstepError } from '../domain/errors.ts';
import { data } from '../../packages/client/src/index.ts';
import { addDbOptions, withStore, type DbOptions } from './database.ts';
import { UsageError } from './errors.ts';
import { addRemoteOptions, remote, type RemoteOptions } from './remote.ts';
import { formatTable } from './table.ts';

type KeyLine = Pick<KeyInfo, 'id' | 'scope' | 'org' | 'name' | 'createdAt' | 'revokedAt'>;

const table = (rows: KeyLine[]) =>
  formatTable(
    ['ID', 'SCOPE', 'ORG', 'NAME', 'CREATED', 'REVOKED'],
    rows.map((r) => [r.id, r.scope, r.org ?? '*', r.name ?? '', r.createdAt, r.revokedAt ?? '']),
  );
const line = ({ id, scope, org, name, createdAt, revokedAt }: KeyLine): KeyLine => ({ id, scope, org, name, createdAt, revokedAt });

export function registerKeys(program: Command) {
  const keys = program.command('keys').description('Create, list and revoke API keys (in the database, or on a server with --url and an admin key)');

  addRemoteOptions(addDbOptions(
    keys
      .command('create')
      .description('Create an API key and print it once')
      .requiredOption('--scope <scope>', KEY_SCOPES.join(' | '))
      .option('--org <org>', 'organization the key is limited to (required for check and write, refused for admin)')
      .option('--name <name>', 'a label to recognise the key by')
      .option('--json', 'print {id, key, scope, org, name} as JSON'),
  )).action(async (opts: DbOptions & RemoteOptions & { scope: string; org?: string; name?: string; json?: boolean }) => {
    if (opts.scope !== 'admin' && opts.org === undefined) throw new UsageError(`a ${opts.scope} key belongs to one organization: give --org ORG`);
    // A flag combination, like the line above: a usage error (2), not a validation of data (4).
    if (opts.scope === 'admin' && opts.org !== undefined) throw new UsageError('an admin key spans every organization: give no --org');
    const spec = {
      scope: opts.scope as KeyScope,
      ...(opts.org === undefined ? {} : { org: opts.org }),
      ...(opts.name === undefined ? {} : { name: opts.name }),
    };
    const client = remote(opts);
    const created = client ? await data(client.api.POST('/v1/keys', { body: spec })) : await withStore(opts, (db) => createKey(db, spec));
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ id: created.id, key: created.key, scope: opts.scope, org: opts.org ?? null, name: opts.name ?? null })}\n`);
    } else {
      process.stdout.write(`${created.key}\n`);
      process.stderr.write(`created ${opts.scope} key ${created.id}${opts.org ? ` for organization ${opts.org}` : ''}; it is shown only this once\n`);
    }
  });

  addRemoteOptions(addDbOptions(
    keys
      .command('list')
      .description('List API keys (never the keys themselves)')
      .option('--org <org>', 'only the keys of this organization')
      .option('--all', 'include revoked keys')
      .option('--json', 'print JSON'),
  )).action(async (opts: DbOptions & RemoteOptions & { org?: string; all?: boolean; json?: boolean }) => {
    const filter = { ...(opts.org === undefined ? {} : { org: opts.org }), revoked: opts.all === true };
    const client = remote(opts);
    const rows = (
      client
        ? (await data(client.api.GET('/v1/keys', { params: { query: { ...(opts.org === undefined ? {} : { org: opts.org }), revoked: filter.revoked ? 'true' : 'false' } } }))).keys
        : await withStore(opts, (db) => listKeys(db, filter))
    ).map(line);
    process.stdout.write(opts.json ? `${JSON.stringify(rows, null, 2)}\n` : rows.length === 0 ? '(no keys)\n' : `${table(rows)}\n`);
  });

  addRemoteOptions(addDbOptions(keys.command('revoke').description('Revoke an API key by id (takes effect on the next request)').argument('<id>', 'key id, as `keys list` shows it'))).action(
    async (id: string, opts: DbOptions & RemoteOptions) => {
      const client = remote(opts);
      if (client) {
        // The server refuses to revoke its last admin key (CONFLICT); a revoked key is "already".
        const r = await data(client.api.DELETE('/v1/keys/{id}', { params: { path: { id } } }));
        process.stdout.write(r.changed ? `revoked key ${id}\n` : `key ${id} was already revoked (at ${r.key.revokedAt})\n`);
        return;
      }
      const revoked = await withStore(opts, (db) => revokeKey(db, id));
      if (!revoked) throw new LockstepError('NOT_FOUND', `no active API key with id '${id}'`, { field: 'id' });
      process.stdout.write(`revoked key ${id}\n`);
    },
  );
}
