/**
 * The delivery benchmark in its smallest mode: the STRUCTURE of what it writes (every phase and
 * target present, the files written) and the counts that must hold whatever the speed — the group
 * deletion's messages carry exactly its members × assignments, the healthy targets acknowledge every
 * message, the failing one none. Never its times.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { runDeliveryBench } from '../../bench/delivery/run.ts';

const out = mkdtempSync(join(tmpdir(), 'lockstep-bench-delivery-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

it('bench:delivery --smoke writes its report with every phase and target', { timeout: 120_000 }, async () => {
  const { dir, results } = await runDeliveryBench({ mode: 'smoke', engine: 'sqlite', pg: '', out: join(out, 'r'), log: () => undefined });
  expect(existsSync(join(dir, 'report.md'))).toBe(true);
  expect(JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')).mode).toBe('smoke');
  const md = readFileSync(join(dir, 'report.md'), 'utf8');
  for (const h of ['## A. Revocations, then grants', '## B. Deleting a large group', results.machine.line]) expect(md).toContain(h);
  const n = results.sizes.rate * results.sizes.seconds;
  expect(results.load.map((l) => [l.phase, l.writes])).toEqual([['revoke', n], ['grant', n]]);
  for (const phase of ['revoke', 'grant'] as const) {
    for (const target of ['healthy-1', 'healthy-2']) {
      const w = results.windows.find((x) => x.phase === phase && x.target === target)!;
      expect(w, `${phase} ${target}`).toMatchObject({ messages: n, acked: n, pending: 0, parked: 0 });
      expect(Number.isFinite(w.windowMs!.p99)).toBe(true);
    }
    expect(results.windows.find((x) => x.phase === phase && x.target === 'failing')).toMatchObject({ messages: n, acked: 0 });
  }
  const g = results.groupDelete!;
  expect(g.pairs).toBe(results.sizes.members * results.sizes.assignments);
  expect(Object.values(g.entries)).toEqual([g.pairs, g.pairs]);
  for (const r of Object.values(g.requests)) {
    expect(r).toBeGreaterThan(0);
    expect(r).toBeLessThan(g.pairs / 10);
  }
  expect(Object.values(g.lastAckMs).every((v) => typeof v === 'number')).toBe(true);
});
