/**
 * The PostgreSQL pool of the batched check statement (`Database.genericPlans`, docs/adr/0018-* and
 * 0024-*): its sessions plan generically, without sequential scans and without JIT, and the other
 * pools keep the server's defaults. On a small world — where the planner, left to itself, scans
 * and hashes whole tables (the organization, the permissions, the memberships) in the statement's
 * per-item sub-plans — the batched statement's plan there is index probes only.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import { SYNC_POLICY } from '../../src/domain/propagation.ts';
import type { Database, Sql, Statement } from '../../src/storage/database.ts';
import { describePostgresOnly } from '../helpers/engines.ts';

interface PlanNode {
  'Node Type': string;
  'Subplan Name'?: string;
  Plans?: PlanNode[];
}
const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)];

describePostgresOnly('the batched check statement’s pool', (engine) => {
  let db: Database;
  beforeAll(async () => {
    db = await engine.open();
  });
  afterAll(async () => {
    await db?.close();
  });

  it('plans generically, without sequential scans or JIT; the other pools keep the defaults', async () => {
    const show = async (on: Sql, name: string) => Object.values((await on.get<Record<string, string>>(`SHOW ${name}`))!)[0];
    expect(await show(db.genericPlans!, 'plan_cache_mode')).toBe('force_generic_plan');
    expect(await show(db.genericPlans!, 'enable_seqscan')).toBe('off');
    expect(await show(db.genericPlans!, 'jit')).toBe('off');
    expect(await show(db, 'plan_cache_mode')).toBe('auto');
    expect(await show(db, 'enable_seqscan')).toBe('on');
    expect(await db.transaction((tx) => show(tx, 'enable_seqscan'))).toBe('on');
  });

  it('runs the batched statement on a small world as index probes: no sequential scan, no hashed sub-plan', async () => {
    const seen: Array<{ statement: Statement; params: readonly unknown[] }> = [];
    const g = db.genericPlans!;
    const all: Sql['all'] = async (s: Statement, p?: readonly unknown[]) => {
      seen.push({ statement: s, params: p ?? [] });
      return g.all(s, p);
    };
    const ls = createLockstep({ ...db, genericPlans: { ...g, all } }, { defaultPolicy: SYNC_POLICY });
    await ls.putOrganization('o', {});
    await ls.putPermission('o', 'doc.read', { risk: 'standard' });
    await ls.putRole('o', 'viewer', { permissions: ['doc.read'] });
    await ls.putResource('o', 'folder', 'f', {});
    await ls.putResource('o', 'doc', 'd', { parent: 'folder:f' });
    for (const s of ['s1', 's2', 's3']) await ls.putSubject('o', s, { kind: 'user' });
    await ls.putGroup('o', 'g', {});
    await ls.addMember('o', 'g', 's1');
    await ls.createAssignment('o', { principal: 'group:g', role: 'viewer', resource: 'folder:f' });
    await db.run('ANALYZE');
    const answers = await Promise.all(['s1', 's2', 's1', 's3'].map((subject) => ls.check('o', { subject, permission: 'doc.read', resource: 'doc:d' })));
    expect(answers.map((a) => a.allowed)).toEqual([true, false, true, false]);
    const batch = seen.find((s) => (s.params[0] as unknown[]).length > 1) ?? seen[0]!;
    expect(typeof batch.statement).toBe('string');
    const explained = await g.get<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (FORMAT JSON) ${batch.statement as string}`, batch.params);
    const planNodes = nodes(explained!['QUERY PLAN'][0].Plan);
    expect(planNodes.filter((n) => n['Node Type'] === 'Index Scan' || n['Node Type'] === 'Index Only Scan').length).toBeGreaterThan(5);
    expect(planNodes.filter((n) => n['Node Type'] === 'Seq Scan')).toEqual([]);
    expect(planNodes.filter((n) => /^hashed /.test(n['Subplan Name'] ?? ''))).toEqual([]);
  });
});
