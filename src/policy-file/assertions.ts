/**
 * `lockstep test`: runs a policy file's `assertions` (docs/policy-file.md, Assertions). Each
 * assertion gets the file applied to a fresh store — one shared by the assertions without `after:`
 * writes, one of its own otherwise — then its writes in order, then its checks, each decided on the
 * source tables (`fully_consistent`: the policy's meaning, whatever the propagation mode). The
 * caller supplies the stores (the CLI: in-memory SQLite).
 */
import type { CheckResult, Lockstep } from '../domain/contract.ts';
import { LockstepError } from '../domain/errors.ts';
import { applyPolicyFile } from './apply.ts';
import { formatPath } from './path.ts';
import type { AssertionSpec, CheckSpec, PolicyFile, WriteSpec } from './parse.ts';

export interface Store {
  lockstep: Lockstep;
  close(): Promise<void>;
}

export interface CheckOutcome {
  check: CheckSpec;
  line: number | undefined;
  expected: 'allowed' | 'denied';
  actual: 'allowed' | 'denied' | 'error';
  /** How it was allowed (an unexpected allow is explained by its derivation). */
  via?: CheckResult['via'];
  error?: string;
}

export interface AssertionOutcome {
  name: string;
  org: string;
  line: number | undefined;
  passed: boolean;
  checks: CheckOutcome[];
  /** A write of `after:` that failed: the assertion's checks were not run. */
  writeError?: { line: number | undefined; message: string };
}

export interface TestReport {
  file: string;
  passed: boolean;
  assertions: AssertionOutcome[];
}

export async function runAssertions(file: PolicyFile, fresh: () => Promise<Store>): Promise<TestReport> {
  const loaded = async () => {
    const store = await fresh();
    try {
      await applyPolicyFile(store.lockstep, file, { ctx: { actor: 'cli:test' } });
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  };
  let shared: Store | undefined;
  const outcomes: AssertionOutcome[] = [];
  try {
    for (const a of file.assertions) {
      const own = a.after.length > 0;
      const store = own ? await loaded() : (shared ??= await loaded());
      try {
        outcomes.push(await runOne(file, a, store.lockstep));
      } finally {
        if (own) await store.close();
      }
    }
  } finally {
    await shared?.close();
  }
  return { file: file.source, passed: outcomes.every((o) => o.passed), assertions: outcomes };
}

async function runOne(file: PolicyFile, a: AssertionSpec, ls: Lockstep): Promise<AssertionOutcome> {
  const base = { name: a.name, org: a.org, line: file.lineOf(a.path) };
  for (const w of a.after) {
    try {
      await write(ls, a.org, w);
    } catch (e) {
      if (!(e instanceof LockstepError)) throw e;
      return { ...base, passed: false, checks: [], writeError: { line: file.lineOf(w.path), message: `${e.code}: ${e.message}` } };
    }
  }
  const checks: CheckOutcome[] = [];
  for (const [expected, list] of [['allowed', a.allowed], ['denied', a.denied]] as const) {
    for (const c of list) {
      const line = file.lineOf(c.path);
      try {
        const r = await ls.check(a.org, { subject: c.subject, permission: c.permission, resource: c.resource, consistency: { mode: 'fully_consistent' } });
        checks.push({ check: c, line, expected, actual: r.allowed ? 'allowed' : 'denied', ...(r.via ? { via: r.via } : {}) });
      } catch (e) {
        if (!(e instanceof LockstepError)) throw e;
        checks.push({ check: c, line, expected, actual: 'error', error: `${e.code}: ${e.message}` });
      }
    }
  }
  return { ...base, passed: checks.every((c) => c.actual === c.expected), checks };
}

async function write(ls: Lockstep, org: string, w: WriteSpec): Promise<void> {
  const ctx = { actor: 'cli:test' };
  switch (w.op) {
    case 'add_member': await ls.addMember(org, w.group, w.member, {}, ctx); return;
    case 'remove_member': await ls.removeMember(org, w.group, w.member, ctx); return;
    case 'assign': await ls.createAssignment(org, { principal: w.principal, role: w.role, resource: w.resource }, ctx); return;
    case 'unassign': {
      // createAssignment is idempotent on (principal, role, resource): it names the existing one
      const r = await ls.createAssignment(org, { principal: w.principal, role: w.role, resource: w.resource }, ctx);
      await ls.deleteAssignment(org, r.id, ctx);
      if (r.created) throw new LockstepError('NOT_FOUND', `no assignment of role ${w.role} to ${w.principal} on ${w.resource}`, { field: 'unassign' });
      return;
    }
    case 'activate':
    case 'deactivate': {
      const s = await ls.getSubject(org, w.subject);
      await ls.putSubject(org, w.subject, { kind: s.kind, active: w.op === 'activate' }, ctx);
      return;
    }
    case 'delete_subject': await ls.deleteSubject(org, w.subject, ctx); return;
    case 'move_resource': {
      const i = w.resource.indexOf(':');
      await ls.putResource(org, w.resource.slice(0, i), w.resource.slice(i + 1), { parent: w.parent }, ctx);
      return;
    }
  }
}

const describeVia = (via: NonNullable<CheckResult['via']>) =>
  `role ${via.role} on ${via.resource}, ${via.group === null ? 'assigned directly' : `through group ${(via.chain ?? [via.group]).join(' → ')}`} (assignment ${via.assignment})`;

/** The report as a reader of a CI log wants it: every assertion, and for a failed check a diff. */
export function formatTestReport(r: TestReport): string {
  const lines: string[] = [];
  let failedChecks = 0;
  let checks = 0;
  for (const a of r.assertions) {
    lines.push(`${a.passed ? 'PASS' : 'FAIL'}  ${a.name}${a.line === undefined ? '' : `  (line ${a.line})`}`);
    if (a.writeError) lines.push(`      after: the write at line ${a.writeError.line ?? '?'} failed: ${a.writeError.message}`);
    for (const c of a.checks) {
      checks++;
      if (c.actual === c.expected) continue;
      failedChecks++;
      lines.push(`      ${c.expected}: ${c.check.subject} ${c.check.permission} ${c.check.resource}  (${formatPath(c.check.path)}, line ${c.line ?? '?'})`);
      lines.push(`        - expected: ${c.expected}`);
      lines.push(`        + actual:   ${c.actual}${c.via ? ` via ${describeVia(c.via)}` : c.error ? ` — ${c.error}` : ''}`);
    }
  }
  const failed = r.assertions.filter((a) => !a.passed).length;
  lines.push(
    '',
    `${r.file}: ${r.assertions.length} assertions, ${r.assertions.length - failed} passed, ${failed} failed` +
      ` (${checks} checks, ${failedChecks} failed)`,
  );
  return lines.join('\n');
}
