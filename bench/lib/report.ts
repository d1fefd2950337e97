/** The Markdown report (tables + embedded SVG charts) written beside results.json. */
import type { BenchResults } from './results.ts';
import { fmt, table, type Spread } from '../stats.ts';
import { chart } from './svg.ts';

const ms = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '–' : fmt(v));
const sp = (s: Spread | undefined) => (!s || !Number.isFinite(s.median) ? '–' : s.runs > 1 ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : fmt(s.median));
const num = (v: number | undefined, d = 0) => (v === undefined || !Number.isFinite(v) ? '–' : v.toLocaleString('en', { maximumFractionDigits: d }));
const ratio = (base: number | undefined, x: number | undefined) => (base && x && Number.isFinite(base) && Number.isFinite(x) ? `${(base / x).toFixed(base / x >= 10 ? 0 : 1)}×` : '–');
/** `x` as a multiple of the reference `base` (>1: slower than it) — the "/ floor" ratios. */
const times = (x: number | undefined, base: number | undefined) => (base && x && Number.isFinite(base) && Number.isFinite(x) ? `${(x / base).toFixed(x / base >= 10 ? 0 : 2)}×` : '–');
/** `x` as a percentage of `base` (the HTTP floor: a share of its requests/s). */
const percentOf = (x: number | undefined, base: number | undefined) => (base && x && Number.isFinite(base) && Number.isFinite(x) ? `${Math.round((100 * x) / base)} %` : '–');
const NR = (r: { notRun?: string }) => `not run: ${r.notRun}`;
const name = (r: { system: string; engine: string }) => `${r.system} (${r.engine})`;

export function renderReport(res: BenchResults): { md: string; svgs: Record<string, string> } {
  const svgs: Record<string, string> = {};
  const md: string[] = [];
  const s = res.scenarios;
  md.push(`# Lockstep benchmark — ${res.mode} mode`, '');
  md.push(`**Machine:** ${res.machine.line}`, '');
  md.push(`**Command:** \`${res.command}\` — started ${res.startedAt}, ${res.elapsedSeconds.toFixed(0)} s.`, '');
  md.push(`Sizes: ${Object.entries(res.sizes).map(([k, v]) => `${k} ${v}`).join(', ')}.`, '');
  md.push('Times are medians over repeated runs with (min–max) when the mode repeats (`reps` > 1). Ratios are "how many times faster than" the reference (>1: faster).', '');

  md.push('## Headline', '');
  md.push(headline(res), '');
  md.push('## Systems', '');
  md.push(table(['system', 'engine', 'status'], res.systems.map((x) => [x.system, x.engine, x.status]))), md.push('');

  // 1 — membership
  md.push('## 1. Membership change latency', '');
  md.push('Add then remove one subject to a group carrying the given number of assignments; the subject already holds a standing set (3 groups, `standing` assignments). Lockstep `async*` return before the fan-out (mode column); the naive baseline recomputes and rewrites the whole effective set inline.', '');
  const mrows = s.membership;
  md.push(
    table(
      ['group', 'system', 'add p50', 'add p99', 'add max', 'remove p50', 'remove p99', 'remove max', 'add p50 vs naive', 'remove p50 vs naive', 'add p50 / floor', 'remove p50 / floor', 'modes'],
      mrows.map((r) => {
        if (r.notRun) return [`${r.assignments}`, name(r), NR(r), '', '', '', '', '', '', '', '', '', ''];
        const floor = mrows.find((x) => x.system === 'floor' && x.group === r.group && x.engine === r.engine && !x.notRun);
        const naive = mrows.find((x) => x.system === 'naive rewrite' && x.group === r.group && (x.engine === r.engine || (r.engine !== 'sqlite' && r.engine !== 'postgres' && x.engine === 'sqlite')) && !x.notRun);
        return [
          `${r.assignments}`,
          name(r),
          sp(r.add?.p50),
          sp(r.add?.p99),
          sp(r.add?.max),
          sp(r.remove?.p50),
          sp(r.remove?.p99),
          sp(r.remove?.max),
          r.system === 'naive rewrite' ? '1×' : ratio(naive?.add?.p50.median, r.add?.p50.median),
          r.system === 'naive rewrite' ? '1×' : ratio(naive?.remove?.p50.median, r.remove?.p50.median),
          times(r.add?.p50.median, floor?.add?.p50.median),
          times(r.remove?.p50.median, floor?.remove?.p50.median),
          Object.entries(r.add?.modes ?? {}).concat(Object.entries(r.remove?.modes ?? {}).filter(([k]) => !(k in (r.add?.modes ?? {})))).map(([k, v]) => `${k}×${v}`).join(' '),
        ];
      }),
    ),
  );
  md.push('', '(peers: ratios against the naive baseline on SQLite)', '');
  md.push(floorLine(mrows), '');
  for (const g of ['small', 'big']) {
    const rs = mrows.filter((r) => r.group === g && r.cdf);
    if (!rs.length) continue;
    const file = `membership-cdf-${g}.svg`;
    svgs[file] = chart({
      title: `Membership add+remove latency CDF, group with ${rs[0]!.assignments} assignments`,
      x: 'latency (ms, log)',
      y: 'fraction of changes',
      logX: true,
      series: rs.map((r) => ({ name: name(r), points: [...r.cdf!.add, ...r.cdf!.remove].map(([, v]) => v).sort((a, b) => a - b).map((v, i, a) => [v, (i + 1) / a.length] as [number, number]) })),
    });
    md.push(`![${file}](${file})`, '');
  }

  // 2 — propagation
  md.push('## 2. Propagation under load', '');
  md.push(`Membership changes at ${res.sizes.rate}/s for ${res.sizes.seconds}s over ${res.sizes.subjects} subjects, with a probe loop checking every subject under observation. Achieved: writes issued ÷ (the offered window + the drain of the writes still in flight at its end); issued/s (no drain): the same writes ÷ the time the generator ran; drain: from its end until the last write returned. Grant lag: write returned → first allowed check. Revocation window: write returned → last stale allow.`, '');
  md.push(
    table(
      ['system', 'achieved/s', 'issued/s (no drain)', 'drain', 'write p50', 'write p99', 'grants', 'grant lag p50', 'grant lag p99', 'grant lag max', 'never granted', 'revocations', 'with stale allows', 'stale allows', 'window p50', 'window p99', 'window max', 'checks'],
      s.propagation.map((r) =>
        r.notRun
          ? [name(r), NR(r), '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '']
          : [name(r), num(r.achievedRate), num(r.issuedRate), ms(r.drainMs), ms(r.writes?.p50), ms(r.writes?.p99), num(r.grants), ms(r.grantLag?.p50), ms(r.grantLag?.p99), ms(r.grantLag?.max), num(r.neverGranted), num(r.revocations), num(r.revocationsWithStaleAllows), num(r.staleAllows), ms(r.revokeWindow?.p50), ms(r.revokeWindow?.p99), ms(r.revokeWindow?.max), num(r.checks)],
      ),
    ),
  );
  md.push('');
  const pr = s.propagation.filter((r) => !r.notRun);
  svgs['propagation-grant-lag.svg'] = chart({ title: 'Grant lag over time', x: 'time of the write (s)', y: 'lag until first allow (ms, log)', logY: true, scatter: true, series: pr.map((r) => ({ name: name(r), points: r.grantTimeline ?? [] })) });
  svgs['propagation-stale-allows.svg'] = chart({
    title: 'Revocation window over time (stale allows)',
    x: 'time of the write (s)',
    y: 'window: last stale allow (ms)',
    scatter: true,
    series: pr.map((r) => ({ name: `${name(r)}: ${num(r.staleAllows)} stale`, points: (r.revokeTimeline ?? []).map(([t, w]) => [t, w] as [number, number]) })),
  });
  md.push('![propagation-grant-lag.svg](propagation-grant-lag.svg)', '', '![propagation-stale-allows.svg](propagation-stale-allows.svg)', '');

  // 3 — large group
  md.push('## 3. Large group', '');
  md.push(`${num(res.sizes.members)} members × ${num(res.sizes.assignments)} assignments. Lockstep: backfill of the read model by a \`group:\` job in a child process (its peak RSS), then the group is deleted: time until a verified check denies, until an unverified one (verify never) does, and the cleanup.`, '');
  md.push(
    table(
      ['system', 'rows loaded', 'load s', 'rows/s', 'peak RSS MB', 'delete', 'delete mode', 'time to deny', 'to deny, unverified', 'cleanup s', 'cleanup rows/s', 'note'],
      s.largeGroup.map((r) =>
        r.notRun
          ? [name(r), NR(r), '', '', '', '', '', '', '', '', '', '']
          : [name(r), num(r.rows), num(r.loadSeconds, 2), num(r.rowsPerSecond), num(r.peakRssMb), ms(r.deleteMs), r.deleteMode ?? '', ms(r.timeToDenyMs), ms(r.timeToDenyUnverifiedMs), num(r.cleanupSeconds, 2), num(r.cleanupRowsPerSecond), r.note ?? ''],
      ),
    ),
  );
  md.push('');

  // 4 — checks
  md.push('## 4. Checks', '');
  md.push('An allowed check inherited through the hierarchy (group viewer on the workspace, reading a project). In-process: sequential latency, and throughput with 16 concurrent callers.', '');
  const ip = s.checks.inProcess;
  const spiceRef = ip.find((x) => x.system === 'spicedb minimize_latency' && !x.notRun);
  md.push(
    table(
      ['system', 'p50', 'p99', 'max', 'checks/s (16 callers)', 'p50 vs spicedb minimize_latency'],
      ip.map((r) => (r.notRun ? [name(r), NR(r), '', '', '', ''] : [name(r), sp(r.p50), sp(r.p99), sp(r.max), r.perSecond ? (r.perSecond.runs > 1 ? `${num(r.perSecond.median)} (${num(r.perSecond.min)}–${num(r.perSecond.max)})` : num(r.perSecond.median)) : '–', ratio(spiceRef?.p50?.median, r.p50?.median)])),
    ),
  );
  md.push('');
  svgs['checks-cdf.svg'] = chart({ title: 'Check latency CDF (in-process)', x: 'latency (ms, log)', y: 'fraction of checks', logX: true, series: ip.filter((r) => r.cdf).map((r) => ({ name: name(r), points: r.cdf!.map(([q, v]) => [v, q] as [number, number]) })) });
  md.push('![checks-cdf.svg](checks-cdf.svg)', '');
  md.push(`Over HTTP (autocannon, ${res.sizes.httpConnections} connections, ${res.sizes.httpSeconds}s each; Lockstep's own server with authentication; peers behind a minimal fastify route; the floor: a bare fastify route returning a constant behind the same bearer check, on the same database, right after Lockstep's run):`, '');
  const spiceHttp = s.checks.http.find((x) => x.system === 'spicedb minimize_latency' && !x.notRun);
  const httpFloor = (engine: string) => s.checks.http.find((x) => x.system.startsWith('floor http') && x.engine === engine && !x.notRun);
  md.push(
    table(
      ['system', 'requests', 'req/s', 'p50', 'p99', 'max', 'errors', 'non-2xx', 'req/s vs spicedb minimize_latency', 'req/s / floor'],
      s.checks.http.map((r) =>
        r.notRun
          ? [name(r), NR(r), '', '', '', '', '', '', '', '']
          : [name(r), num(r.requests), num(r.perSecond), ms(r.p50), ms(r.p99), ms(r.max), num(r.errors), num(r.non2xx), ratio(r.perSecond, spiceHttp?.perSecond), percentOf(r.perSecond, httpFloor(r.engine)?.perSecond)],
      ),
    ),
  );
  md.push('');
  md.push(httpFloorLine(s.checks.http), '');

  // 5 — crash
  md.push('## 5. Crash and resume', '');
  md.push(`A \`group:\` backfill (${num(res.sizes.crashMembers)} members × ${num(res.sizes.crashAssignments)} assignments) in a worker child process, SIGKILLed after a third of its batches; a new worker process resumes once the lease expires. Work redone is read from job_batches.`, '');
  md.push(
    table(
      ['system', 'rows', 'batches (before kill)', 'rows committed', 'rows redone', 'overlapping batches', 'owners', 'killed at', 'resume gap', 'total', 'batch time (sum)', 'read-model rows'],
      s.crash.map((r) =>
        r.notRun
          ? [name(r), NR(r), '', '', '', '', '', '', '', '', '', '']
          : [name(r), num(r.rows), `${r.batches} (${r.batchesBeforeKill})`, num(r.rowsCommitted), num(r.rowsRedone), num(r.overlappingBatches), num(r.owners), `${num(r.killedAtSeconds, 2)} s`, `${num(r.resumeGapSeconds, 2)} s`, `${num(r.totalSeconds, 2)} s`, `${num(r.uninterruptedEstimateSeconds, 2)} s`, num(r.readModelRows)],
      ),
    ),
  );
  md.push('');

  // 6 — directories
  md.push('## 6. Directory provisioning (SCIM)', '');
  md.push(
    `Lockstep's own server over HTTP with a directory token (8 requests in flight). Provisioning of ${num(res.sizes.scimUsers)} users and ${num(res.sizes.scimGroups)} groups through SCIM, against ${num(res.sizes.scimUsers)} subjects written through /v1 in the same run. A Group PUT replacing ${num(res.sizes.scimReplace)} members and a PATCH removing ${num(res.sizes.scimRemove)} at once (group with 3 assignments, one critical permission): latency, and how many removed members a check still allowed right after the answer (a sample) — 0 means every removed member was denied by the time the request answered; baselines: the same changes as one /v1 membership write per member. Deprovisionings (PATCH active false) at ${num(res.sizes.scimDeprovisionRate)}/s for ${res.sizes.seconds} s while 4 probe loops check the deprovisioned users: stale allows = checks that started after a deprovisioning answered and allowed.`,
    '',
  );
  const d = s.directories ?? [];
  md.push(
    table(
      ['system', 'users/s', 'groups/s', '/v1 subjects/s', 'vs /v1', 'PUT (members)', 'allowed after answer', '/v1 equivalent', 'PATCH remove (members)', 'allowed after answer', '/v1 equivalent', 'deprovisions/s (offered)', 'deprovision p50 / p99', 'probe checks', 'stale allows'],
      d.map((r) =>
        r.notRun
          ? [name(r), NR(r), '', '', '', '', '', '', '', '', '', '', '', '', '']
          : [
              name(r),
              num(r.usersPerSecond),
              num(r.groupsPerSecond),
              num(r.v1SubjectsPerSecond),
              r.usersPerSecond && r.v1SubjectsPerSecond ? `${(r.usersPerSecond / r.v1SubjectsPerSecond).toFixed(2)}×` : '–',
              `${ms(r.putMs)} (${num(r.replaceMembers)})`,
              `${num(r.putStillAllowed)} of ${num(r.putSampled)}`,
              ms(r.v1ReplaceMs),
              `${ms(r.patchMs)} (${num(r.removeMembers)})`,
              `${num(r.patchStillAllowed)} of ${num(r.patchSampled)}`,
              ms(r.v1RemoveMs),
              `${num(r.deprovisionAchieved)} (${num(r.deprovisionOffered)})`,
              `${ms(r.deprovisionP50)} / ${ms(r.deprovisionP99)}`,
              num(r.probeChecks),
              num(r.staleAllows),
            ],
      ),
    ),
  );
  md.push('');

  // 7 — nested groups
  md.push('## 7. Nested groups', '');
  const nc = s.nested?.checks ?? [];
  const ne = s.nested?.edges ?? [];
  md.push(
    `Checks by nesting depth: an allowed project.read inherited from the workspace, of a subject whose own group is the given number of nested levels below the group holding viewer (flat: its own group holds it; ${num(res.sizes.nestedMembers)} subjects at the bottom of each chain). Lockstep: minimize_latency with verification (the proof walks the membership path up from the subject), default policy; SpiceDB embedded (memdb) on the same groups as \`group#member\` relationships. In-process: sequential calls; HTTP: autocannon, ${num(res.sizes.httpConnections)} connections, ${res.sizes.httpSeconds} s; "vs flat": p50 of the flat case / p50 at this depth.`,
    '',
  );
  const depthLabel = (d: number) => (d === 0 ? 'flat' : String(d));
  const flatOf = (r: { system: string; engine: string; via: string }) => nc.find((x) => x.system === r.system && x.engine === r.engine && x.via === r.via && x.depth === 0 && !x.notRun);
  md.push(
    table(
      ['system', 'via', 'depth', 'n', 'p50', 'p99', 'max', 'req/s', 'p50 vs flat'],
      nc.map((r) =>
        r.notRun
          ? [name(r), r.via, depthLabel(r.depth), NR(r), '', '', '', '', '']
          : [name(r), r.via, depthLabel(r.depth), num(r.n), ms(r.p50), ms(r.p99), ms(r.max), r.via === 'http' ? num(r.perSecond) : '–', r.depth === 0 ? '1×' : ratio(flatOf(r)?.p50, r.p50)],
      ),
    ),
  );
  md.push(
    '',
    `A mid-level edge over ${(res.sizes.nestedSubjects ?? []).map((n) => num(n)).join(' and ')} subjects (top ⊃ mid ⊃ 4 teams; viewer for top): the edge mid → top removed, then added back. "until" runs from the write's start until a check of the last subject under the edge (the one a clean-up job reaches last) answers as the write says; "first check" is what the first check after the write's answer said — for a verified revocation it must be "as written", making "until" the write's own latency plus one check ("not yet": the old answer, e.g. an asynchronous grant still pending). "unverified" is the same for a reader with verification never (it waits for the read model); "converged" until no job of the organization is open.`,
    '',
  );
  md.push(
    table(
      ['system', 'subjects', 'op', 'write', 'mode', 'until', 'first check', 'unverified until', 'converged'],
      ne.map((r) =>
        r.notRun
          ? [name(r), num(r.subjects), r.op, NR(r), '', '', '', '', '']
          : [name(r), num(r.subjects), r.op, ms(r.writeMs), r.mode ?? '–', ms(r.untilMs), r.firstCheck ?? '–', ms(r.untilUnverifiedMs), ms(r.convergedMs)],
      ),
    ),
  );
  md.push('');

  // 8 — several serve processes
  md.push(...multiServeSection(res));
  return { md: md.join('\n') + '\n', svgs };
}

/** Scenario 8: 1, 2 and 4 `serve` processes on one store, each count's changes/s as a multiple of 1 process's. */
function multiServeSection(res: BenchResults): string[] {
  const rows = res.scenarios.multiServe ?? [];
  const out = ['## 8. Several serve processes, one organization', ''];
  out.push(
    `1, 2 and 4 real \`lockstep serve\` processes (\`--port 0 --workers 1\`) on one store (a fresh PostgreSQL schema; one SQLite file in WAL mode); ${num(res.sizes.httpConnections)} closed-loop HTTP clients in all, spread over the processes, each toggling the membership of \`team\` (3 assignments) for subjects of its own, ${res.sizes.seconds} s measured after a warm-up. "vs 1" is changes/s ÷ the 1-process figure of the same engine and policy. Probe: checks through another process, at_least_as_fresh at the write's revision — stale allows (after a revocation) and missed grants (after a grant) must be 0. Drift: after the queue drained, read model vs a full recompute (missing / extra), and stored memberships vs the answers the clients got. CPU: cores busy during the measured window — the serve processes together, this load generator, and the whole machine (everything on it, the database server included: where it is near ${num(res.machine.cores)}, the machine's cores are the limit and more processes cannot add throughput).`,
    '',
  );
  out.push(
    table(
      ['system', 'processes', 'changes/s', 'vs 1', 'write p50', 'write p99', 'changes', 'serve CPU', 'client CPU', 'machine CPU', 'errors', 'probes', 'stale allows', 'missed grants', 'probe 503', 'settle', 'drift missing / extra', 'membership mismatch'],
      rows.map((r) =>
        r.notRun
          ? [name(r), num(r.processes), NR(r), '', '', '', '', '', '', '', '', '', '', '', '', '', '', '']
          : [name(r), num(r.processes), num(r.perSecond), r.vsOne === undefined ? '–' : `${r.vsOne.toFixed(2)}×`, ms(r.writes?.p50), ms(r.writes?.p99), num(r.changes), num(r.serveCpu, 2), num(r.clientCpu, 2), num(r.machineCpu, 2), `${num(r.errors)}${r.firstError ? ` (${r.firstError})` : ''}`, num(r.probes), num(r.staleAllows), num(r.missedGrants), num(r.probeUnavailable), ms(r.settleMs), `${num(r.drift?.missing)} / ${num(r.drift?.extra)}`, num(r.membershipMismatch)],
      ),
    ),
  );
  out.push('');
  return out;
}

/**
 * The floor of each engine (one membership row + one change-log row + commit on the same pool,
 * interleaved with the others) and Lockstep sync's smallest membership add as a multiple of it.
 */
function floorLine(rows: BenchResults['scenarios']['membership']): string {
  const small = Math.min(...rows.map((r) => r.assignments));
  const parts = rows
    .filter((r) => r.system === 'floor' && r.assignments === small)
    .map((f) => {
      if (f.notRun) return `${f.engine}: not run`;
      const ls = rows.find((x) => x.system === 'lockstep sync' && x.engine === f.engine && x.assignments === small && !x.notRun);
      return `${f.engine}: add p50 ${sp(f.add?.p50)}, p99 ${sp(f.add?.p99)}; lockstep sync add (${num(small)} assignments) p50 ${times(ls?.add?.p50.median, f.add?.p50.median)} floor, p99 ${times(ls?.add?.p99.median, f.add?.p99.median)}`;
    });
  return parts.length
    ? `**Floor** — the smallest transaction a membership change needs (one membership row, one change-log row, commit) on the same pool, interleaved with the systems above; "/ floor" columns are p50 ÷ floor p50 (1×: at the floor). ${parts.join('; ')}.`
    : '';
}

/** One line per system: membership change on the big group, propagation under load, checks. */
export function headline(res: BenchResults): string {
  const s = res.scenarios;
  const keys: Array<[string, string]> = [];
  for (const r of [...s.membership, ...s.propagation]) if (!keys.some(([a, b]) => a === r.system && b === r.engine)) keys.push([r.system, r.engine]);
  const big = Math.max(0, ...s.membership.map((r) => r.assignments));
  const rows = keys.map(([system, engine]) => {
    const m = s.membership.find((r) => r.system === system && r.engine === engine && r.assignments === big);
    const p = s.propagation.find((r) => r.system === system && r.engine === engine);
    const mm = (v: Spread | undefined) => (m?.notRun ? 'not run' : sp(v));
    return [
      `${system} (${engine})`,
      mm(m?.add?.p50),
      mm(m?.add?.p99),
      mm(m?.remove?.p99),
      p?.notRun ? 'not run' : p ? `${num(p.achievedRate)}/s` : '–',
      p?.notRun ? '' : ms(p?.grantLag?.p99),
      p?.notRun ? '' : `${num(p?.staleAllows)} in ${num(p?.revocationsWithStaleAllows)}/${num(p?.revocations)}`,
      p?.notRun ? '' : ms(p?.revokeWindow?.max),
    ];
  });
  return table([`system`, `add p50 (${num(big)} asg.)`, 'add p99', 'remove p99', 'changes/s under load', 'grant lag p99', 'stale allows (in revocations)', 'revocation window max'], rows);
}

/** Lockstep's HTTP checks as a share of the HTTP floor's requests/s, per engine whose floor ran. */
function httpFloorLine(rows: BenchResults['scenarios']['checks']['http']): string {
  const parts: string[] = [];
  for (const engine of ['sqlite', 'postgres']) {
    const floor = rows.find((x) => x.system.startsWith('floor http') && x.engine === engine && !x.notRun);
    const ls = rows.find((x) => x.system.startsWith('lockstep http') && x.engine === engine && !x.notRun);
    if (floor && ls) parts.push(`${engine}: floor ${num(floor.perSecond)} req/s, lockstep checks ${num(ls.perSecond)} req/s = ${percentOf(ls.perSecond, floor.perSecond)} of the floor`);
  }
  return parts.length ? `**HTTP floor** — ${parts.join('; ')}.` : '**HTTP floor** — not measured in this run.';
}
