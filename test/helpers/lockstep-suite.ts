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

/**
 * The world of the write-locking suites in `org`: `doc.read` (standard risk) granted by the role
 * `reader` on `doc:d` to the group `g`, and the users `subjects`, none of them a member yet.
 */
export async function readerWorld(ls: Lockstep, org: string, subjects: readonly string[]): Promise<void> {
  await ls.putOrganization(org, {});
  await ls.putPermission(org, 'doc.read', { risk: 'standard' });
  await ls.putRole(org, 'reader', { permissions: ['doc.read'] });
  await ls.putResource(org, 'doc', 'd', {});
  await ls.putGroup(org, 'g', {});
  await ls.createAssignment(org, { principal: 'group:g', role: 'reader', resource: 'doc:d' });
  for (const s of subjects) await ls.putSubject(org, s, { kind: 'user' });
}
