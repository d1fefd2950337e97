/** Shared set-up of suites that drive one engine's database through a Lockstep in process. */
import { afterAll, beforeAll } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import type { Database } from '../../src/storage/database.ts';
import type { TestEngine } from './engines.ts';

/**
 * Opens a fresh database of `engine` and a Lockstep over it before the suite's tests, hands both to
 * `use`, and closes the database after the tests.
 */
export function lockstepSuite(engine: TestEngine, use: (made: { db: Database; ls: Lockstep }) => void): void {
  let db: Database | undefined;
  beforeAll(async () => {
    db = await engine.open();
    use({ db, ls: createLockstep(db) });
  });
  afterAll(async () => {
    await db?.close();
  });
}
