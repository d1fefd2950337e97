/**
 * A store migrated by a newer Lockstep is refused (src/storage/migrations.ts refuseNewerStore),
 * both engines, real databases: `migrate` — which `serve`, `worker` and every command that opens a
 * store run first — fails with UNAVAILABLE naming the unknown migration, and changes nothing; the
 * CLI exits with UNAVAILABLE's status (9) and says so on stderr, for `migrate` and for `serve`.
 */
import { afterAll, expect, it } from 'vitest';
import { LockstepError } from '../../src/domain/errors.ts';
import type { Database } from '../../src/storage/database.ts';
import { loadMigrations } from '../../src/storage/migrations.ts';
import { childEnv, describeEachStore, killAll, lockstep } from '../cli/harness.ts';
import { describeEachEngine } from '../helpers/engines.ts';

const FUTURE = { version: 999, name: '999_from_a_newer_lockstep.sql' };
const fromTheFuture = (db: Database) => db.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [FUTURE.version, FUTURE.name, 0]);
const versions = async (db: Database) => (await db.all<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version')).map((r) => Number(r.version));

describeEachEngine('a store a newer Lockstep migrated', (engine) => {
  it('is refused by migrate with UNAVAILABLE, naming the migration; nothing is applied', async () => {
    // Migrated part way, then a newer process applied a migration this version does not have.
    const known = loadMigrations(engine.name).map((m) => m.version);
    const db = await engine.open({ through: known[known.length - 2] });
    try {
      await fromTheFuture(db);
      const before = await versions(db);
      const err = await db.migrate().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LockstepError);
      expect((err as LockstepError).code).toBe('UNAVAILABLE');
      expect((err as LockstepError).message).toContain(FUTURE.name);
      expect((err as LockstepError).message).toMatch(/migrations up to \d{3}/);
      // The one migration this version would still have applied was not.
      expect(await versions(db)).toEqual(before);
      expect(before).not.toContain(known[known.length - 1]);
    } finally {
      await db.close();
    }
  });

  it('an up-to-date store migrates as before (nothing to apply)', async () => {
    const db = await engine.open();
    try {
      expect(await db.migrate()).toEqual([]);
    } finally {
      await db.close();
    }
  });
});

describeEachStore('the CLI on a store a newer Lockstep migrated', (newStore) => {
  afterAll(() => killAll());

  it('migrate and serve exit 9 (UNAVAILABLE) and say why', async () => {
    const store = await newStore();
    try {
      expect((await lockstep(['migrate'], childEnv({ LOCKSTEP_DB: store.db }))).code).toBe(0);
      const db = store.open();
      try {
        await fromTheFuture(db);
      } finally {
        await db.close();
      }
      for (const args of [['migrate'], ['serve', '--port', '0']]) {
        const run = await lockstep(args, childEnv({ LOCKSTEP_DB: store.db }));
        expect(run.code, `${args[0]}: ${run.stderr}`).toBe(9);
        expect(run.stderr).toContain('migrated by a newer Lockstep');
        expect(run.stderr).toContain(FUTURE.name);
      }
    } finally {
      await store.drop();
    }
  });
});
