/**
 * A policy write retried after a transient failure answers for what its committed attempt did.
 *
 * The failure is injected after the commit (the acknowledgement lost, as when the connection drops
 * between COMMIT and its reply): `runWrite` treats it as transient and runs the command again, and
 * that attempt finds the committed row. The answer must describe that attempt — no stale state from
 * the first one (item 4 of issue 9: `created` used to survive the retry, so the API answered 201 with
 * `changed: false`).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { SYNC_POLICY } from '../../src/domain/propagation.ts';
import { compileStatement } from '../../src/storage/sql.ts';
import type { Database, Sql, Statement } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';

/**
 * `db`, except that the first transaction that inserts into `table` after `arm()` commits and then
 * rejects with a connection reset (a transient error: the writer retries).
 */
function loseAckAfterInsert(db: Database, table: string) {
  let armed = false;
  const failures: string[] = [];
  const wrapped: Database = {
    ...db,
    transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
      let inserted = false;
      const watch = (tx: Sql): Sql => {
        const seen = (s: Statement, p?: readonly unknown[]) => {
          if (compileStatement(s, p).text.trimStart().startsWith(`INSERT INTO ${table} `)) inserted = true;
        };
        return {
          ...tx,
          all: (s, p) => (seen(s, p), tx.all(s, p)),
          get: (s, p) => (seen(s, p), tx.get(s, p)),
          run: (s, p) => (seen(s, p), tx.run(s, p)),
        };
      };
      return db.transaction((tx) => fn(watch(tx))).then((result) => {
        if (armed && inserted) {
          armed = false;
          failures.push(table);
          throw Object.assign(new Error('connection reset after COMMIT'), { code: 'ECONNRESET' });
        }
        return result;
      });
    },
  };
  return { db: wrapped, arm: () => (armed = true), failures };
}

describeEachEngine('a write retried after a lost acknowledgement', (engine) => {
  let raw: Database;
  let ls: Lockstep;
  let fault: ReturnType<typeof loseAckAfterInsert>;
  const org = 'retry1';
  beforeAll(async () => {
    raw = await engine.open();
    fault = loseAckAfterInsert(raw, 'assignments');
    ls = createLockstep(fault.db, { defaultPolicy: SYNC_POLICY });
    await ls.putOrganization(org, {});
    await ls.putPermission(org, 'doc.read', { risk: 'standard' });
    await ls.putRole(org, 'viewer', { permissions: ['doc.read'] });
    await ls.putResource(org, 'doc', 'd1', {});
    await ls.putSubject(org, 'alice', { kind: 'user' });
  });
  afterAll(() => raw.close());

  it('createAssignment answers created = changed, for the attempt that found the committed row', async () => {
    const before = (await ls.getOrganization(org)).revision;
    fault.arm();
    const r = await ls.createAssignment(org, { principal: 'subject:alice', role: 'viewer', resource: 'doc:d1' });
    expect(fault.failures).toEqual(['assignments']); // the fault did fire, after the commit
    // The first attempt committed revision before + 1; the retry found the assignment and changed nothing.
    expect((await ls.getOrganization(org)).revision).toBe(before + 1);
    expect(r.changed).toBe(false);
    expect(r.created).toBe(r.changed);
    expect(r.revision).toBe(before + 1);
    const logged = (await ls.listChanges(org, { limit: 1 })).changes[0]!;
    expect(logged.kind).toBe('assignment.create');
    expect((logged.body as { id: string }).id).toBe(r.id);
    expect((await ls.getAssignment(org, r.id)).principal).toBe('subject:alice');
  });
});
