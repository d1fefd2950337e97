/**
 * The benchmark suite in its smallest mode: checks the STRUCTURE of what it writes — every system
 * and every scenario present, each with numbers or a "not run" reason, the files written — never
 * its times. PostgreSQL rows are measured when the server is reachable and "not run" otherwise.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runBench, SYSTEMS, type BenchResults } from '../../bench/run.ts';
import { HTTP_FLOOR } from '../../bench/scenarios/checks.ts';

const out = mkdtempSync(join(tmpdir(), 'lockstep-bench-smoke-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const ENGINES = ['sqlite', 'postgres'];
const CONFIGS = ['lockstep sync', 'lockstep async+verify', 'lockstep async verify-never', 'naive rewrite'];
const SPICE = ['spicedb minimize_latency', 'spicedb at_least_as_fresh', 'spicedb fully_consistent'];
const CASBIN = ['casbin plain', 'casbin cached'];

type Row = { system: string; engine: string; notRun?: string } & Record<string, unknown>;

/**
 * Lockstep's own rows must be measured: on SQLite always, on PostgreSQL whenever the server is
 * reachable (global-setup decides; LOCKSTEP_REQUIRE_POSTGRES makes it so). A peer may be "not run".
 */
const mustRun = (system: string, engine: string) => system.startsWith('lockstep') && (engine === 'sqlite' || (engine === 'postgres' && Boolean(process.env.LOCKSTEP_TEST_PG)));

/** The row exists, and either has a finite number at `path` or says why it did not run (never for a Lockstep system that must run). */
function expectMeasured(rows: Row[], system: string, engine: string, path: string, extra: (r: Row) => boolean = () => true) {
  const row = rows.find((r) => r.system === system && r.engine === engine && extra(r));
  expect(row, `${system} (${engine}) present`).toBeDefined();
  if (mustRun(system, engine)) expect(row!.notRun, `${system} (${engine}) did not run`).toBeUndefined();
  if (row!.notRun !== undefined) {
    expect(typeof row!.notRun, `${system} (${engine}) reason`).toBe('string');
    expect(row!.notRun.length).toBeGreaterThan(0);
    return;
  }
  const v = path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], row);
  expect(typeof v === 'number' && Number.isFinite(v), `${system} (${engine}) ${path} = ${String(v)}`).toBe(true);
}

describe('lockstep bench --smoke', () => {
  let res: BenchResults;
  let dir: string;

  it('runs every scenario and writes the report, the JSON and the charts', async () => {
    ({ dir, results: res } = await runBench({ mode: 'smoke', engines: ['sqlite', 'postgres'], pg: process.env.LOCKSTEP_TEST_PG || 'postgres://postgres@127.0.0.1:5432/test', out: join(out, 'r') }));
    for (const f of ['report.md', 'results.json', 'membership-cdf-small.svg', 'membership-cdf-big.svg', 'propagation-grant-lag.svg', 'propagation-stale-allows.svg', 'checks-cdf.svg']) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    const json = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as BenchResults;
    expect(json.mode).toBe('smoke');
    for (const k of ['cpu', 'cores', 'ramGb', 'node', 'date', 'line'] as const) expect(json.machine[k], k).toBeTruthy();
    const md = readFileSync(join(dir, 'report.md'), 'utf8');
    expect(md).toContain(json.machine.line);
    // the floor line, with a ratio for each engine whose floor ran
    expect(md).toMatch(/\*\*Floor\*\* .*sqlite: add p50 [\d.]+ (ms|µs), .*lockstep sync add \(\d+ assignments\) p50 [\d.]+× floor/);
    expect(md).toContain('add p50 / floor');
    for (const h of ['## Systems', '## 1. Membership change latency', '## 2. Propagation under load', '## 3. Large group', '## 4. Checks', '## 5. Crash and resume', '## 6. Directory provisioning (SCIM)', '## 7. Nested groups', '## 8. Several serve processes, one organization']) expect(md).toContain(h);
    for (const svg of ['membership-cdf-small.svg', 'checks-cdf.svg']) {
      expect(md).toContain(`](${svg})`);
      expect(readFileSync(join(dir, svg), 'utf8')).toMatch(/^<svg [\s\S]*<\/svg>$/);
    }
  }, 300_000);

  it('lists every system with its status: ran, or not run with a reason', () => {
    for (const { system, engines } of SYSTEMS) {
      for (const engine of engines) {
        const s = res.systems.find((x) => x.system === system && x.engine === engine);
        expect(s, `${system} (${engine})`).toBeDefined();
        expect(s!.status).toMatch(mustRun(system, engine) ? /^ran \(\d+ measurements\)/ : /^(ran \(\d+ measurements\)|not run: .+)/);
      }
    }
  });

  it('scenario 1: membership add/remove for every system, small and big group', () => {
    const rows = res.scenarios.membership as unknown as Row[];
    for (const g of ['small', 'big']) {
      const inGroup = (r: Row) => r.group === g;
      for (const e of ENGINES) for (const s of CONFIGS) expectMeasured(rows, s, e, 'add.p50.median', inGroup), expectMeasured(rows, s, e, 'remove.p99.median', inGroup);
      // the floor of each engine, measured in the same run (a Lockstep figure: it must run where Lockstep does)
      for (const e of ENGINES) {
        expectMeasured(rows, 'floor', e, 'add.p50.median', inGroup), expectMeasured(rows, 'floor', e, 'remove.p50.median', inGroup);
        const floor = rows.find((r) => r.system === 'floor' && r.engine === e && inGroup(r));
        if (mustRun('lockstep sync', e)) expect(floor?.notRun, `floor (${e}) did not run`).toBeUndefined();
      }
      expectMeasured(rows, 'spicedb (write)', 'memdb', 'add.p50.median', inGroup);
      for (const s of CASBIN) expectMeasured(rows, s, 'memory', 'remove.max.median', inGroup);
    }
  });

  it('scenario 2: propagation under load for every system', () => {
    const rows = res.scenarios.propagation as unknown as Row[];
    for (const e of ENGINES) for (const s of CONFIGS) expectMeasured(rows, s, e, 'staleAllows'), expectMeasured(rows, s, e, 'writes.n');
    for (const s of SPICE) expectMeasured(rows, s, 'memdb', 'staleAllows');
    for (const s of CASBIN) expectMeasured(rows, s, 'memory', 'staleAllows');
    for (const r of rows.filter((x) => !x.notRun)) {
      expect(typeof r.grants).toBe('number');
      expect(typeof r.revocations).toBe('number');
      expect(typeof r.checks).toBe('number');
    }
  });

  it('scenario 3: large group for Lockstep on both engines and the peers', () => {
    const rows = res.scenarios.largeGroup as unknown as Row[];
    for (const e of ENGINES) expectMeasured(rows, 'lockstep', e, 'rowsPerSecond'), expectMeasured(rows, 'lockstep', e, 'cleanupRowsPerSecond'), expectMeasured(rows, 'lockstep', e, 'peakRssMb');
    for (const s of SPICE) expectMeasured(rows, s, 'memdb', 'timeToDenyMs');
    for (const s of CASBIN) expectMeasured(rows, s, 'memory', 'deleteMs');
  });

  it('scenario 4: checks in-process and over HTTP', () => {
    const ip = res.scenarios.checks.inProcess as unknown as Row[];
    for (const e of ENGINES) for (const s of ['lockstep minimize_latency, verify always', 'lockstep minimize_latency, verify never', 'lockstep fully_consistent']) expectMeasured(ip, s, e, 'p99.median');
    for (const s of SPICE) expectMeasured(ip, s, 'memdb', 'perSecond.median');
    for (const s of CASBIN) expectMeasured(ip, s, 'memory', 'p50.median');
    const http = res.scenarios.checks.http as unknown as Row[];
    for (const e of ENGINES) expectMeasured(http, 'lockstep http (verify always)', e, 'perSecond');
    // The HTTP floor runs wherever Lockstep's HTTP row ran (same engine, same key), and the report
    // gives each engine's checks as a share of it.
    for (const e of ENGINES) {
      expectMeasured(http, HTTP_FLOOR, e, 'perSecond');
      if (!http.find((r) => r.system === 'lockstep http (verify always)' && r.engine === e)?.notRun) expect(http.find((r) => r.system === HTTP_FLOOR && r.engine === e)?.notRun, `${HTTP_FLOOR} (${e})`).toBeUndefined();
    }
    const md = readFileSync(join(dir, 'report.md'), 'utf8');
    expect(md).toContain('req/s / floor');
    expect(md).toMatch(/\*\*HTTP floor\*\* — sqlite: floor [\d,]+ req\/s, lockstep checks [\d,]+ req\/s = \d+ % of the floor/);
    if (process.env.LOCKSTEP_TEST_PG) expect(md).toMatch(/postgres: floor [\d,]+ req\/s, lockstep checks [\d,]+ req\/s = \d+ % of the floor/);
    for (const s of [...SPICE, ...CASBIN]) expectMeasured(http, s, s.startsWith('spicedb') ? 'memdb' : 'memory', 'p99');
  });

  it('scenario 5: crash and resume reports the work redone', () => {
    const rows = res.scenarios.crash as unknown as Row[];
    for (const e of ENGINES) expectMeasured(rows, 'lockstep', e, 'rowsRedone'), expectMeasured(rows, 'lockstep', e, 'totalSeconds');
    for (const s of ['naive rewrite', 'spicedb', 'casbin']) expect(rows.find((r) => r.system === s)?.notRun).toMatch(/not applicable/);
  });

  it('scenario 6: SCIM provisioning, group replacement and removal, deprovisionings with a probe', () => {
    const rows = res.scenarios.directories as unknown as Row[];
    for (const e of ENGINES) {
      for (const k of ['usersPerSecond', 'groupsPerSecond', 'v1SubjectsPerSecond', 'putMs', 'patchMs', 'deprovisionAchieved', 'probeChecks', 'staleAllows']) expectMeasured(rows, 'lockstep scim', e, k);
      const r = rows.find((x) => x.system === 'lockstep scim' && x.engine === e && !x.notRun);
      // Structure, and the safety figures the scenario exists to show (not times).
      if (r) expect([r.putStillAllowed, r.patchStillAllowed, r.staleAllows]).toEqual([0, 0, 0]);
    }
  });

  it('scenario 7: nested groups — checks by depth in-process and over HTTP, a mid-level edge removed and added, SpiceDB beside', () => {
    const nested = res.scenarios.nested!;
    const checks = nested.checks as unknown as Row[];
    for (const depth of [0, 1, 3, 6]) {
      for (const via of ['in-process', 'http']) {
        const at = (r: Row) => r.depth === depth && r.via === via;
        for (const e of ENGINES) expectMeasured(checks, 'lockstep (verify always)', e, 'p99', at);
        for (const m of ['minimize_latency', 'fully_consistent']) expectMeasured(checks, `spicedb ${m}`, 'memdb', 'p50', at);
      }
    }
    const edges = nested.edges as unknown as Row[];
    for (const n of res.sizes.nestedSubjects) {
      for (const op of ['remove', 'add']) {
        const at = (r: Row) => r.subjects === n && r.op === op;
        for (const e of ENGINES) {
          expectMeasured(edges, 'lockstep (verify always)', e, 'writeMs', at);
          expectMeasured(edges, 'lockstep (verify always)', e, 'convergedMs', at);
          const r = edges.find((x) => x.system === 'lockstep (verify always)' && x.engine === e && at(x) && !x.notRun);
          // The safety figure the scenario exists to show (not a time): a verified check right
          // after the removal's answer denies, however many subjects the edge cut off.
          if (r && op === 'remove') expect(r.firstCheck, `${e} remove over ${n}`).toBe('as written');
        }
        for (const m of ['minimize_latency', 'fully_consistent']) expectMeasured(edges, `spicedb ${m}`, 'memdb', 'writeMs', at);
      }
    }
  });

  it('scenario 8: serve processes on one store — changes/s per process count with the ratio to one, and the audit after each run', () => {
    const rows = (res.scenarios.multiServe ?? []) as unknown as Row[];
    for (const e of ENGINES) {
      for (const s of ['lockstep sync', 'lockstep async+verify']) {
        for (const n of [1, 2]) {
          const at = (r: Row) => r.processes === n;
          expectMeasured(rows, s, e, 'perSecond', at), expectMeasured(rows, s, e, 'writes.p99', at);
          const r = rows.find((x) => x.system === s && x.engine === e && at(x) && !x.notRun);
          if (!r) continue;
          if (n > 1) expect(typeof r.vsOne, `${s} (${e}) ${n} processes: ratio to 1`).toBe('number');
          // The machine's CPU in the window (Linux): at least what the serve processes used, at most every core.
          if (typeof r.serveCpu === 'number') expect(r.machineCpu as number, `${s} (${e}) ${n} processes: machine CPU`).toBeGreaterThanOrEqual((r.serveCpu as number) * 0.9);
          if (typeof r.machineCpu === 'number') expect(r.machineCpu).toBeLessThanOrEqual(res.machine.cores * 1.05);
          // The safety figures the scenario exists to show (not times): nothing stale, nothing lost.
          // (A failed write is counted in errors and its subject left out of the comparison.)
          expect(typeof r.errors).toBe('number');
          expect([r.staleAllows, r.missedGrants, r.membershipMismatch, r.failedJobs, r.drift], `${s} (${e}) ${n} processes`).toEqual([0, 0, 0, 0, { missing: 0, extra: 0, pendingJobs: 0 }]);
        }
      }
    }
  });
});
