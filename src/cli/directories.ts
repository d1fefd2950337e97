/**
 * `lockstep directories create | list | rotate`: SCIM directories, managed directly in the store
 * like `keys`. `create` and `rotate` print the token once, alone on stdout
 * (`TOKEN=$(lockstep directories create …)`); the SCIM base URL to give the identity provider goes
 * to stderr. The base URL is built from `--public-url` (default: $LOCKSTEP_PUBLIC_URL, else
 * http://LOCKSTEP_HOST:LOCKSTEP_PORT). It was `--url` until `--url` came to mean "the server to
 * talk to" for the remote commands; `--url` here is now refused with that explanation.
 */
import { Option, type Command } from 'commander';
import { createDirectoryStore, PROVIDERS, type DirectoryInfo } from '../directories/directories.ts';
import type { Config } from '../config/config.ts';
import { addDbOptions, withStore, type DbOptions } from './database.ts';
import { UsageError } from './errors.ts';

type UrlOption = { publicUrl?: string; url?: string };
const baseOf = (opts: UrlOption, config: Config, id: string) =>
  `${(opts.publicUrl ?? config.publicUrl ?? `http://${config.host}:${config.port}`).replace(/\/+$/, '')}/scim/v2/${id}`;

/** The renamed option: a clear usage error rather than a silent change of meaning. */
function refuseOldUrl(opts: UrlOption) {
  if (opts.url !== undefined) {
    throw new UsageError(`directories: --url is now --public-url (the server's public base URL, for the SCIM base URL); --url names a server for the remote commands`);
  }
}

function table(rows: (DirectoryInfo & { scimBaseUrl: string })[]): string {
  const head = ['ID', 'NAME', 'PROVIDER', 'USERS', 'GROUPS', 'REQUESTS', 'ERRORS', 'LAST REQUEST', 'SCIM BASE URL'];
  const cells = rows.map((r) => [
    r.id,
    r.name,
    r.provider,
    String(r.counts.users),
    String(r.counts.groups),
    String(r.counts.requests),
    String(r.counts.errors),
    r.lastRequest ? `${r.lastRequest.at} ${r.lastRequest.operation} ${r.lastRequest.status}` : '',
    r.scimBaseUrl,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  return [head, ...cells].map((c) => c.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export function registerDirectories(program: Command) {
  const dirs = program.command('directories').description('Create, list and rotate the tokens of SCIM directories (Okta, Entra ID, …)');
  const url = '--public-url <base>', urlHelp = 'public base URL of the server, for the SCIM base URL (default $LOCKSTEP_PUBLIC_URL, else http://HOST:PORT)';
  const oldUrl = () => new Option('--url <base>', 'renamed --public-url').hideHelp();

  addDbOptions(
    dirs
      .command('create')
      .description('Create a directory and print its bearer token once')
      .requiredOption('--org <org>', 'organization the directory provisions into')
      .requiredOption('--name <name>', 'a label, e.g. "Okta production"')
      .option('--provider <provider>', PROVIDERS.join(' | '), 'generic')
      .option(url, urlHelp)
      .addOption(oldUrl())
      .option('--json', 'print {id, name, provider, scimBaseUrl, token} as JSON'),
  ).action(async (opts: DbOptions & UrlOption & { org: string; name: string; provider: string; json?: boolean }) => {
    refuseOldUrl(opts);
    const out = await withStore(opts, async (db, _l, config) => {
      const d = await createDirectoryStore(db).create(opts.org, { name: opts.name, provider: opts.provider });
      return { id: d.id, name: d.name, provider: d.provider, scimBaseUrl: baseOf(opts, config, d.id), token: d.token };
    });
    if (opts.json) process.stdout.write(`${JSON.stringify(out)}\n`);
    else {
      process.stdout.write(`${out.token}\n`);
      process.stderr.write(`created ${out.provider} directory ${out.id}; SCIM base URL ${out.scimBaseUrl}; the token is shown only this once\n`);
    }
  });

  addDbOptions(
    dirs
      .command('list')
      .description("List an organization's directories (never their tokens)")
      .requiredOption('--org <org>', 'organization')
      .option(url, urlHelp)
      .addOption(oldUrl())
      .option('--json', 'print JSON'),
  ).action(async (opts: DbOptions & UrlOption & { org: string; json?: boolean }) => {
    refuseOldUrl(opts);
    const rows = await withStore(opts, async (db, _l, config) =>
      (await createDirectoryStore(db).list(opts.org)).directories.map((d) => ({ ...d, scimBaseUrl: baseOf(opts, config, d.id) })),
    );
    process.stdout.write(opts.json ? `${JSON.stringify(rows, null, 2)}\n` : rows.length === 0 ? '(no directories)\n' : `${table(rows)}\n`);
  });

  addDbOptions(
    dirs
      .command('rotate')
      .description('Give a directory a new token; the old one stops working at once')
      .argument('<id>', 'directory id, as `directories list` shows it')
      .requiredOption('--org <org>', 'organization')
      .option(url, urlHelp)
      .addOption(oldUrl())
      .option('--json', 'print {id, scimBaseUrl, token} as JSON'),
  ).action(async (id: string, opts: DbOptions & UrlOption & { org: string; json?: boolean }) => {
    refuseOldUrl(opts);
    const out = await withStore(opts, async (db, _l, config) => {
      const d = await createDirectoryStore(db).rotate(opts.org, id);
      return { id: d.id, scimBaseUrl: baseOf(opts, config, d.id), token: d.token };
    });
    if (opts.json) process.stdout.write(`${JSON.stringify(out)}\n`);
    else {
      process.stdout.write(`${out.token}\n`);
      process.stderr.write(`rotated the token of directory ${out.id}; the previous token no longer works\n`);
    }
  });
}
