/**
 * Issue 10, item 4: the drift audit reads one consistent snapshot outside any write transaction.
 * On SQLite a write transaction is the process's only one, so an audit inside it held every other
 * organization's writes (six concurrent audits: 1.87 s). Both engines, SQLite on a file (an
 * in-memory database has no second connection to read a snapshot from; it keeps the old path).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import type { Database } from '../../src/storage/database.ts';
import { openSqlite } from '../../src/storage/sqlite-engine.ts';
import { postgresEngine } from '../helpers/engines.ts';

const pgUrl = process.env.LOCKSTEP_TEST_PG ?? '';

/** Resolves when `p` settles or after `ms` (a deadlock breaker for the failing case; nothing asserts time). */
const settleOr = (p: Promise<unknown>, ms: number) => Promise.race([p.then(() => undefined, () => undefined), new Promise((r) => setTimeout(r, ms))]);

function suite(name: string, open: () => Promise<{ db: Database; cleanup: () => Promise<void> }>) {
  describe(`drift audit on a snapshot [${name}]`, () => {
    let db: Database;
    let ls: Lockstep;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      ({ db, cleanup } = await open());
      ls = createLockstep(db);
      for (const org of ['snapa', 'snapb']) {
        await ls.putOrganization(org, {});
        await ls.putPermission(org, 'doc.read', { risk: 'critical' });
        await ls.putRole(org, 'viewer', { permissions: ['doc.read'] });
        await ls.putResource(org, 'doc', '1', {});
        await ls.putSubject(org, 'alice', { kind: 'user' });
        await ls.createAssignment(org, { principal: 'subject:alice', role: 'viewer', resource: 'doc:1' });
      }
    });
    afterAll(async () => {
      await cleanup();
    });

    it('a write transaction held open on the organization neither holds the audit up nor shows it uncommitted rows', async () => {
      const order: string[] = [];
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let opened!: () => void;
      const isOpen = new Promise<void>((r) => (opened = r));
      const writer = db.transaction(async (tx) => {
        // Locks the organization's row (PostgreSQL) and holds the write lock (SQLite), with a row
        // the policy does not derive written but not committed.
        await tx.run('UPDATE organizations SET revision = revision WHERE id = $1', ['snapa']);
        await tx.run('INSERT INTO effective_assignments (org_id, subject_id, resource, assignment_id, role, group_id) VALUES ($1, $2, $3, $4, $5, $6)', [
          'snapa', 'mallory', 'doc:1', 'asg_ghost', 'viewer', null,
        ]);
        opened();
        await gate;
        order.push('writer committed');
        throw new Error('rolled back on purpose');
      }).catch(() => undefined);
      await isOpen;
      const audit = ls.auditDrift('snapa').then((r) => {
        order.push('audit answered');
        return r;
      });
      await settleOr(audit, 5000);
      release();
      await writer;
      const report = await audit;
      expect(order).toEqual(['audit answered', 'writer committed']);
      expect(report).toMatchObject({ missing: 0, extra: 0, repairJob: null });
    });

    it('a snapshot stays consistent while another organization commits, and that commit does not wait for it', async () => {
      const order: string[] = [];
      const seen = await db.snapshot(async (tx) => {
        const before = await tx.get<{ n: number }>('SELECT COUNT(*) AS n FROM subjects WHERE org_id = $1', ['snapb']);
        // A write of another organization while the snapshot is open: it commits (before the fix
        // there was no snapshot; a transaction here would have waited for it: a deadlock).
        await ls.putSubject('snapb', `bob${randomBytes(3).toString('hex')}`, { kind: 'user' });
        order.push('write committed');
        const after = await tx.get<{ n: number }>('SELECT COUNT(*) AS n FROM subjects WHERE org_id = $1', ['snapb']);
        order.push('snapshot read');
        return [Number(before!.n), Number(after!.n)];
      });
      expect(order).toEqual(['write committed', 'snapshot read']);
      expect(seen[0]).toBe(seen[1]);
      expect(Number((await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM subjects WHERE org_id = $1', ['snapb']))!.n)).toBe(seen[0]! + 1);
      await expect(db.snapshot((tx) => tx.run("DELETE FROM subjects WHERE org_id = 'snapb'"))).rejects.toThrow();
    });
  });
}

suite('sqlite file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lockstep-snap-'));
  const db = openSqlite(join(dir, 'lockstep.db'));
  await db.migrate();
  return { db, cleanup: async () => (await db.close(), await rm(dir, { recursive: true, force: true })) };
});
if (pgUrl) {
  suite('postgres', async () => {
    const db = await postgresEngine.open();
    return { db, cleanup: () => db.close() };
  });
} else {
  describe.skip('drift audit on a snapshot [postgres]', () => it('needs PostgreSQL', () => undefined));
}
