/**
 * The concurrent probe of nested groups and expiry (issue 12), on both engines: the engine over a
 * real database, checks in flight while the write commits (or the clock crosses the instant).
 *
 *  - Edge removal: a 3-level hierarchy top ⊃ dept ⊃ team1..4 holds 2,000 subjects under `dept`
 *    (plus control subjects under `other` ⊂ top); viewer on the workspace for top. While four check
 *    loops run, the mid-level edge dept → top is removed, its clean-up left to a job (inline budget
 *    0) or done inline. Every check that started after the DELETE's response denies a cut-off subject
 *    — verification proves the path, whatever the read model still holds — and every check that
 *    answered at a revision at or after the removal's denies too; controls stay allowed.
 *  - Expiry: an assignment (to a nested group) and 200 memberships (two levels under the assigned
 *    group) expire while checks run. The clock is injected (`now`, as the expiry job and checks
 *    take it); every check whose clock read was at or after an instant denies what that instant
 *    ended, before the expiry job has run; the job then writes one change per item, decided at it.
 *
 * Counts are asserted, never times.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLockstep } from '../../src/app.ts';
import type { CheckResult, Lockstep } from '../../src/domain/contract.ts';
import { createWorker } from '../../src/propagation/worker.ts';
import type { Database, Sql } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';

const SUBJECTS = 2000;
const CONTROLS = 40;
const PROBES = 4;
/** Checks each phase must see at least (after the removal, after each instant). */
const AFTER = 200;
const sid = (i: number) => `u${String(i).padStart(4, '0')}`;
const cid = (i: number) => `c${String(i).padStart(2, '0')}`;

/** Subjects and their memberships in bulk (the fixture, not the thing under test), in one transaction. */
async function bulkMembers(db: Database, org: string, members: [group: string, subject: string][]) {
  await db.transaction(async (tx: Sql) => {
    for (let i = 0; i < members.length; i += 200) {
      const chunk = members.slice(i, i + 200);
      const p: unknown[] = [];
      await tx.run(`INSERT INTO subjects (org_id, id, kind, active) VALUES ${chunk.map(([, s]) => (p.push(org, s), `($${p.length - 1}, $${p.length}, 'user', 1)`)).join(', ')}`, p);
      const q: unknown[] = [];
      await tx.run(`INSERT INTO memberships (org_id, group_id, subject_id) VALUES ${chunk.map(([g, s]) => (q.push(org, g, s), `($${q.length - 2}, $${q.length - 1}, $${q.length})`)).join(', ')}`, q);
    }
  });
}

interface Probe {
  subject: string;
  /** what the probe loop knew when it sent the check */
  phase: number;
  /** the injected clock the check read */
  clock: number;
  result: CheckResult;
}

describeEachEngine('concurrent probe: nested edge removal and expiry', (engine) => {
  let db: Database;
  let clock = Date.UTC(2031, 0, 1);
  let ls: Lockstep;
  beforeAll(async () => {
    db = await engine.open();
    ls = createLockstep(db, { now: () => clock });
  });
  afterAll(async () => {
    await db?.close();
  });

  const drain = () => createWorker({ db, batchSize: 500, now: () => clock }).drain();

  async function base(org: string) {
    await ls.putOrganization(org, {});
    await ls.putPermission(org, 'doc.read', { risk: 'standard' });
    await ls.putRole(org, 'viewer', { permissions: ['doc.read'] });
    await ls.putResource(org, 'ws', 'main', {});
    await ls.putResource(org, 'doc', '1', { parent: 'ws:main' });
  }

  /**
   * Check loops over `pick(k)` until `stop()`, pushing to `out` as they go; each records the phase it
   * saw when it sent the check (the caller moves `phase.n` forward only once the write's response is
   * in, or after it moved the clock) and the clock the check read.
   */
  async function probe(org: string, pick: (k: number) => string, phase: { n: number }, out: Probe[], stop: () => boolean): Promise<void> {
    await Promise.all(
      Array.from({ length: PROBES }, async (_, w) => {
        for (let k = w; !stop(); k += PROBES) {
          const subject = pick(k);
          const seen = phase.n;
          const at = clock;
          const result = await ls.check(org, { subject, permission: 'doc.read', resource: 'doc:1', consistency: { mode: 'minimize_latency' } });
          out.push({ subject, phase: seen, clock: at, result });
          // yield, so that the writer and the other loops interleave on SQLite's single connection too
          await new Promise((r) => setImmediate(r));
        }
      }),
    );
  }
  /** Resolves once `n` probes of phase `ph` are in. */
  async function until(out: Probe[], ph: number, n: number) {
    for (let i = 0; out.filter((p) => p.phase === ph).length < n; i++) {
      expect(i, `${n} checks in phase ${ph}`).toBeLessThan(60_000);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  for (const cleanup of ['job', 'inline'] as const) {
    it(`removing a mid-level edge over ${SUBJECTS} subjects while checks run: zero stale allows (clean-up ${cleanup})`, { timeout: 180_000 }, async () => {
      const org = `np${cleanup}`;
      await base(org);
      for (const g of ['top', 'dept', 'team1', 'team2', 'team3', 'team4', 'other']) await ls.putGroup(org, g, {});
      await bulkMembers(db, org, [
        ...Array.from({ length: SUBJECTS }, (_, i): [string, string] => [`team${1 + (i % 4)}`, sid(i)]),
        ...Array.from({ length: CONTROLS }, (_, i): [string, string] => ['other', cid(i)]),
      ]);
      for (const t of ['team1', 'team2', 'team3', 'team4']) await ls.addMember(org, 'dept', `group:${t}`);
      await ls.addMember(org, 'top', 'group:dept');
      await ls.addMember(org, 'top', 'group:other');
      await ls.createAssignment(org, { principal: 'group:top', role: 'viewer', resource: 'ws:main' });
      await drain();
      expect(await ls.auditDrift(org)).toMatchObject({ missing: 0, extra: 0 });
      expect((await ls.readModel(org)).length).toBe(SUBJECTS + CONTROLS);
      await ls.putPropagationPolicy(org, { revoke: { standard: { mode: 'sync' } }, inlineBudget: cleanup === 'job' ? 0 : 10_000 });

      const phase = { n: 0 };
      const out: Probe[] = [];
      let done = false;
      // mostly cut-off subjects, every fifth a control
      const pick = (k: number) => (k % 5 === 4 ? cid(k % CONTROLS) : sid((k * 7919) % SUBJECTS));
      const probes = probe(org, pick, phase, out, () => done);
      await until(out, 0, 40);
      phase.n = 1; // the DELETE is in flight
      const removed = await ls.removeMember(org, 'top', 'group:dept');
      phase.n = 2; // its response is in
      expect(removed.propagation.mode).toBe(cleanup === 'job' ? 'async' : 'sync');
      await until(out, 2, AFTER);
      done = true;
      await probes;

      const cutOff = (p: Probe) => p.subject.startsWith('u');
      const before = out.filter((p) => p.phase === 0 && cutOff(p));
      const inFlight = out.filter((p) => p.phase === 1);
      const after = out.filter((p) => p.phase === 2 && cutOff(p));
      const atOrAfterRevision = out.filter((p) => cutOff(p) && p.result.revision >= removed.revision);
      const controls = out.filter((p) => !cutOff(p));
      expect(before.length, 'checks before the removal').toBeGreaterThan(0);
      expect(before.filter((p) => p.result.allowed).length, 'the fixture grants before the removal').toBe(before.length);
      expect(after.length, 'cut-off checks started after the removal').toBeGreaterThan(AFTER / 2);
      expect(after.filter((p) => p.result.allowed).length, 'stale allows after the removal').toBe(0);
      expect(atOrAfterRevision.length).toBeGreaterThanOrEqual(after.length);
      expect(atOrAfterRevision.filter((p) => p.result.allowed).length, 'allows at or after the removal revision').toBe(0);
      expect(controls.length).toBeGreaterThan(0);
      expect(controls.filter((p) => !p.result.allowed).length, 'controls denied').toBe(0);
      console.log(`${engine.name} edge removal (clean-up ${cleanup}): ${before.length} cut-off checks before, ${inFlight.length} during, ${after.length} after (0 allowed), ${controls.length} controls`);
      if (cleanup === 'job') {
        // the read model still held the rows: verification, not clean-up, made the denials
        expect((await ls.readModel(org)).filter((r) => r.subject.startsWith('u')).length).toBe(SUBJECTS);
        await drain();
      }
      expect((await ls.readModel(org)).filter((r) => r.subject.startsWith('u'))).toEqual([]);
      expect(await ls.auditDrift(org)).toMatchObject({ missing: 0, extra: 0 });
    });
  }

  it('an assignment and memberships expiring while checks run: zero allows after each instant', { timeout: 180_000 }, async () => {
    const org = 'npexp';
    await base(org);
    const MEMBERS = 200;
    const HOLDERS = 400;
    // A ⊃ B ⊃ C with a standing assignment on A: C's 200 memberships end at t1 (controls stay in C);
    // E ⊃ F with an assignment on E that ends at t2, reaching F's 400 subjects.
    for (const g of ['A', 'B', 'C', 'E', 'F']) await ls.putGroup(org, g, {});
    const m = (i: number) => `m${String(i).padStart(3, '0')}`;
    await bulkMembers(db, org, [
      ...Array.from({ length: HOLDERS }, (_, i): [string, string] => ['F', sid(i)]),
      ...Array.from({ length: CONTROLS }, (_, i): [string, string] => ['C', cid(i)]),
    ]);
    for (let i = 0; i < MEMBERS; i++) await ls.putSubject(org, m(i), { kind: 'user' });
    await ls.addMember(org, 'A', 'group:B');
    await ls.addMember(org, 'B', 'group:C');
    await ls.addMember(org, 'E', 'group:F');
    await ls.createAssignment(org, { principal: 'group:A', role: 'viewer', resource: 'ws:main' });
    const t1 = clock + 60_000;
    const t2 = clock + 120_000;
    for (let i = 0; i < MEMBERS; i++) await ls.addMember(org, 'C', m(i), { expiresAt: new Date(t1).toISOString() });
    const temp = await ls.createAssignment(org, { principal: 'group:E', role: 'viewer', resource: 'ws:main', expiresAt: new Date(t2).toISOString() });
    await drain();
    expect((await ls.readModel(org)).length).toBe(MEMBERS + HOLDERS + CONTROLS);

    const phase = { n: 0 };
    const out: Probe[] = [];
    let done = false;
    const pick = (k: number) => (k % 5 === 4 ? cid(k % CONTROLS) : k % 5 < 2 ? m((k * 31) % MEMBERS) : sid((k * 7919) % HOLDERS));
    const probes = probe(org, pick, phase, out, () => done);
    await until(out, 0, 60);
    clock = t1; // the memberships' instant
    phase.n = 1;
    await until(out, 1, AFTER);
    // nothing has run the expiry job: the denials are the checks' own comparison with the clock
    expect(Number((await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1 AND expires_at IS NOT NULL', [org]))!.n)).toBe(MEMBERS);
    clock = t2; // the assignment's instant; the expiry job runs while the checks go on
    phase.n = 2;
    const removed = ls.expireDue({ org });
    await until(out, 2, AFTER);
    expect(await removed).toBe(MEMBERS + 1);
    done = true;
    await probes;

    const isMember = (p: Probe) => p.subject.startsWith('m');
    const isHolder = (p: Probe) => p.subject.startsWith('u');
    const allowed = (ps: Probe[]) => ps.filter((p) => p.result.allowed).length;
    const membersBefore = out.filter((p) => isMember(p) && p.clock < t1);
    const membersAfter = out.filter((p) => isMember(p) && p.clock >= t1);
    const holdersBefore = out.filter((p) => isHolder(p) && p.clock < t2);
    const holdersAfter = out.filter((p) => isHolder(p) && p.clock >= t2);
    const controls = out.filter((p) => p.subject.startsWith('c'));
    expect(membersBefore.length).toBeGreaterThan(0);
    expect(allowed(membersBefore), 'memberships grant before t1').toBe(membersBefore.length);
    expect(membersAfter.length).toBeGreaterThan(AFTER / 3);
    expect(allowed(membersAfter), 'allows after the memberships expired').toBe(0);
    expect(holdersBefore.length).toBeGreaterThan(0);
    expect(allowed(holdersBefore), 'the assignment grants before t2').toBe(holdersBefore.length);
    expect(holdersAfter.length).toBeGreaterThan(AFTER / 3);
    expect(allowed(holdersAfter), 'allows after the assignment expired').toBe(0);
    expect(controls.length).toBeGreaterThan(0);
    expect(allowed(controls), 'controls').toBe(controls.length);
    console.log(
      `${engine.name} expiry: memberships ${membersBefore.length} checks before t1, ${membersAfter.length} after (0 allowed); ` +
        `assignment ${holdersBefore.length} before t2, ${holdersAfter.length} after (0 allowed); ${controls.length} controls`,
    );

    // the expiry job's receipts: one change per item, decided at its instant
    const { changes } = await ls.listChanges(org, { limit: 1000, since: new Date(t1 - 1).toISOString() });
    const expired = changes.filter((c) => c.kind.endsWith('.expired'));
    expect(expired.filter((c) => c.kind === 'membership.expired').map((c) => c.decidedAt)).toEqual(Array(MEMBERS).fill(new Date(t1).toISOString()));
    const [asg] = expired.filter((c) => c.kind === 'assignment.expired');
    expect(asg).toMatchObject({ decidedAt: new Date(t2).toISOString(), direction: 'revoke' });
    expect((asg!.body as { id: string }).id).toBe(temp.id);
    await drain();
    expect((await ls.readModel(org)).map((r) => r.subject).sort()).toEqual(Array.from({ length: CONTROLS }, (_, i) => cid(i)));
    expect(await ls.auditDrift(org)).toMatchObject({ missing: 0, extra: 0 });
  });
});
