/**
 * `lockstep targets add | list | replay`: delivery targets, managed directly in the store like
 * `keys` (the same functions the HTTP routes call). `add` prints the secret once, alone on stdout.
 */
import type { Command } from 'commander';
import { createTargets, type Target } from '../delivery/targets.ts';
import { addDbOptions, withStore, type DbOptions } from './database.ts';
import { UsageError } from './errors.ts';

function table(rows: Target[]): string {
  const head = ['ID', 'NAME', 'KIND', 'STATE', 'CRITICAL', 'BACKLOG', 'PARKED', 'LAG_P99_MS', 'URL'];
  const cells = rows.map((r) => [r.id, r.name, r.kind, r.state, r.critical ? 'yes' : '', String(r.backlog), String(r.parked), r.lagMs.p99 === null ? '' : String(r.lagMs.p99), r.url ?? '']);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  return [head, ...cells].map((c) => c.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export function registerTargets(program: Command) {
  const targets = program.command('targets').description('Add, list and replay delivery targets (webhook, SSF)');

  addDbOptions(
    targets
      .command('add')
      .description('Add a target; it receives every change committed from now on. Prints its secret once')
      .requiredOption('--org <org>', 'organization')
      .requiredOption('--name <name>', 'a label')
      .requiredOption('--url <url>', 'https URL (private addresses need LOCKSTEP_TARGETS_ALLOW_PRIVATE=1)')
      .option('--kind <kind>', 'webhook | ssf', 'webhook')
      .option('--critical', 'count it in the revocation window and in ?confirm=')
      .option('--json', 'print the target (with its secret) as JSON'),
  ).action(async (opts: DbOptions & { org: string; name: string; url: string; kind: string; critical?: boolean; json?: boolean }) => {
    const t = await withStore(opts, (db, _ls, config) =>
      createTargets({ db, now: Date.now, allowPrivate: config.targetsAllowPrivate }).create(opts.org, { name: opts.name, kind: opts.kind, url: opts.url, critical: opts.critical === true }),
    );
    if (opts.json) process.stdout.write(`${JSON.stringify(t, null, 2)}\n`);
    else {
      process.stdout.write(`${t.secret}\n`);
      process.stderr.write(`added ${t.kind} target ${t.id} (${t.name}) for organization ${opts.org}; its secret is shown only this once\n`);
    }
  });

  addDbOptions(targets.command('list').description('Targets with state, backlog, parked and lag').requiredOption('--org <org>', 'organization').option('--json', 'print JSON')).action(
    async (opts: DbOptions & { org: string; json?: boolean }) => {
      const rows = await withStore(opts, (db, _ls, config) => createTargets({ db, now: Date.now, allowPrivate: config.targetsAllowPrivate }).list(opts.org)).then((r) => r.targets);
      process.stdout.write(opts.json ? `${JSON.stringify(rows, null, 2)}\n` : rows.length === 0 ? '(no targets)\n' : `${table(rows)}\n`);
    },
  );

  addDbOptions(
    targets
      .command('replay')
      .description('Re-deliver the events of every revision after --from (a running server or worker sends them)')
      .requiredOption('--org <org>', 'organization')
      .requiredOption('--from <revision>', 'revision: events of later revisions are re-delivered')
      .argument('<id>', 'target id'),
  ).action(async (id: string, opts: DbOptions & { org: string; from: string }) => {
    if (!/^\d{1,15}$/.test(opts.from)) throw new UsageError(`--from must be a revision number, got '${opts.from}'`);
    const r = await withStore(opts, (db, _ls, config) =>
      createTargets({ db, now: Date.now, allowPrivate: config.targetsAllowPrivate }).replay(opts.org, id, { fromRevision: Number(opts.from) }),
    );
    process.stdout.write(`queued ${r.queued} messages for ${r.id} (revisions after ${r.fromRevision})\n`);
  });
}
