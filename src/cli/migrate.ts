/** `lockstep migrate`: applies pending schema migrations and says which. */
import type { Command } from 'commander';
import { addDbOptions, configFor, openStore, type DbOptions } from './database.ts';

async function migrate(opts: DbOptions) {
  const config = configFor(opts);
  const db = openStore(config, opts);
  try {
    const applied = await db.migrate();
    process.stdout.write(
      applied.length === 0
        ? `${db.description}: up to date\n`
        : `${db.description}: applied migration${applied.length > 1 ? 's' : ''} ${applied.join(', ')}\n`,
    );
  } finally {
    await db.close();
  }
}

export function registerMigrate(program: Command) {
  addDbOptions(program.command('migrate').description('Apply pending database migrations (serve and the other commands also do this)')).action(migrate);
}
