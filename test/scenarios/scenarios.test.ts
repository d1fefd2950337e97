/**
 * Scenario files: a policy (organizations with permissions, roles, resources, subjects, groups and
 * assignments) and steps of writes with the allow/deny table expected after each. Every file runs
 * against the oracle and against the engine on each storage engine (both consistency modes).
 * Several are mapped from public conformance suites; each file says from where and how.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createLockstep } from '../../src/app.ts';
import type { Lockstep } from '../../src/domain/contract.ts';
import { isLockstepError } from '../../src/domain/errors.ts';
import { applyCommand, createOracleState, dueExpiries, oracleCheck, type Command } from '../../src/domain/oracle.ts';
import { createWorker, type Worker } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';
import { callEngine } from '../helpers/oracle-commands.ts';

interface OrgSpec {
  permissions?: Record<string, string>;
  roles?: Record<string, string[]>;
  /** ref → parent ref or null; parents listed before their children. */
  resources?: Record<string, string | null>;
  /** id → kind, or { kind, active }. */
  subjects?: Record<string, string | { kind: string; active?: boolean }>;
  /**
   * id → members: a subject id (or `subject:ID`), or `group:ID` for a nested group; `[member,
   * expiresAt]` for a time-bound one. Every group is created before any member is added.
   */
  groups?: Record<string, (string | [string, string])[]>;
  /** [principal, role, resource, expiresAt?] */
  assignments?: ([string, string, string] | [string, string, string, string])[];
}
type Check = [org: string, subject: string, permission: string, resource: string];
interface Step {
  /** Moves the clock (RFC 3339) before the step's writes; the expiry job runs at every settle. */
  at?: string;
  /** `{ method: [org, ...args], error?: CODE }`, method one of the `Lockstep` writes below. */
  do?: Record<string, unknown>[];
  allow?: Check[];
  deny?: Check[];
}
interface Scenario {
  description: string;
  /** The clock's start (RFC 3339); default 2026-01-01T00:00:00Z. */
  now?: string;
  organizations: Record<string, OrgSpec>;
  steps: Step[];
}

const dir = dirname(fileURLToPath(import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
const load = (f: string) => parse(readFileSync(join(dir, f), 'utf8')) as Scenario;

/** The policy of one organization as write commands, in dependency order. */
function setup(org: string, o: OrgSpec): Command[] {
  const cmds: Command[] = [{ kind: 'putOrganization', org }];
  for (const [slug, risk] of Object.entries(o.permissions ?? {})) cmds.push({ kind: 'putPermission', org, slug, risk });
  for (const [slug, permissions] of Object.entries(o.roles ?? {})) cmds.push({ kind: 'putRole', org, slug, permissions });
  for (const [ref, parent] of Object.entries(o.resources ?? {})) {
    const [type, id] = ref.split(':') as [string, string];
    cmds.push({ kind: 'putResource', org, type, id, parent });
  }
  for (const [id, s] of Object.entries(o.subjects ?? {})) {
    const { kind, active } = typeof s === 'string' ? { kind: s, active: undefined } : s;
    cmds.push({ kind: 'putSubject', org, id, subjectKind: kind, ...(active === undefined ? {} : { active }) });
  }
  for (const id of Object.keys(o.groups ?? {})) cmds.push({ kind: 'putGroup', org, id });
  for (const [id, members] of Object.entries(o.groups ?? {})) {
    for (const m of members) {
      const [member, expiresAt] = typeof m === 'string' ? [m, undefined] : m;
      cmds.push(memberCommand(org, id, member, true, expiresAt));
    }
  }
  for (const [principal, role, resource, expiresAt] of o.assignments ?? []) {
    cmds.push({ kind: 'createAssignment', org, principal, role, resource, ...(expiresAt ? { expiresAt } : {}) });
  }
  return cmds;
}

/** `group:ID` is a nested group, anything else (`subject:ID` or a bare id) a subject. */
function memberCommand(org: string, group: string, member: string, add: boolean, expiresAt?: string): Command {
  const exp = expiresAt ? { expiresAt } : {};
  if (member.startsWith('group:')) return add ? { kind: 'addGroupMember', org, group, member: member.slice(6), ...exp } : { kind: 'removeGroupMember', org, group, member: member.slice(6) };
  const subject = member.startsWith('subject:') ? member.slice(8) : member;
  return add ? { kind: 'addMember', org, group, subject, ...exp } : { kind: 'removeMember', org, group, subject };
}

/** `{ removeMember: [org, group, subject] }` → a command (positional arguments as in `Lockstep`). */
function stepCommand(spec: Record<string, unknown>, orgOf: (o: string) => string): { cmd: Command; error?: string } {
  const [method, raw] = Object.entries(spec).find(([k]) => k !== 'error')!;
  const [o, ...a] = raw as [string, ...(string | boolean | null)[]];
  const org = orgOf(o);
  const s = (i: number) => a[i] as string;
  const cmd: Command = (() => {
    switch (method) {
      case 'putResource': return { kind: 'putResource', org, type: s(0), id: s(1), parent: (a[2] ?? null) as string | null };
      case 'deleteResource': return { kind: 'deleteResource', org, type: s(0), id: s(1) };
      case 'putSubject': return { kind: 'putSubject', org, id: s(0), subjectKind: s(1), ...(a[2] === undefined ? {} : { active: a[2] as boolean }) };
      case 'deleteSubject': return { kind: 'deleteSubject', org, id: s(0) };
      case 'deleteGroup': return { kind: 'deleteGroup', org, id: s(0) };
      case 'addMember': return memberCommand(org, s(0), s(1), true, a[2] as string | undefined);
      case 'removeMember': return memberCommand(org, s(0), s(1), false);
      case 'putRole': return { kind: 'putRole', org, slug: s(0), permissions: a.slice(1) as string[] };
      case 'createAssignment': return { kind: 'createAssignment', org, principal: s(0), role: s(1), resource: s(2), ...(a[3] ? { expiresAt: s(3) } : {}) };
      default: throw new Error(`unknown step method ${method}`);
    }
  })();
  return { cmd, error: spec.error as string | undefined };
}

/**
 * What a scenario needs of an evaluator: apply a write (→ error code or null), let pending
 * propagation finish, and answer a check.
 */
interface Target {
  apply(cmd: Command): Promise<string | null>;
  /** Runs the expiry job and lets pending propagation finish. */
  settle(): Promise<void>;
  /** The clock every write, check and expiry reads. */
  clock: { now: number };
  allowed(org: string, subject: string, permission: string, resource: string): Promise<boolean[]>;
}

function oracleTarget(): Target {
  const state = createOracleState();
  const clock = { now: 0 };
  let n = 0;
  return {
    clock,
    async apply(cmd) {
      const r = applyCommand(state, cmd, `asg_${++n}`, clock.now);
      return r.ok ? null : r.code;
    },
    async settle() {
      for (const org of state.orgs.keys()) for (const c of dueExpiries(state, org, clock.now)) applyCommand(state, c, 'never', clock.now);
    },
    async allowed(org, subject, permission, resource) {
      const r = oracleCheck(state, org, subject, permission, resource, clock.now);
      if (!r.ok) throw new Error(`check failed: ${r.code} on ${r.field}`);
      return [r.allowed];
    },
  };
}

function engineTarget(ls: Lockstep, worker: Worker, clock: { now: number }): Target {
  const call = (c: Command) => callEngine(ls, c);
  return {
    clock,
    async apply(cmd) {
      try {
        await call(cmd);
        return null;
      } catch (e) {
        if (isLockstepError(e)) return e.code;
        throw e;
      }
    },
    async settle() {
      await ls.expireDue();
      await worker.drain();
    },
    async allowed(org, subject, permission, resource) {
      const modes = ['minimize_latency', 'fully_consistent'] as const;
      return Promise.all(modes.map(async (mode) => (await ls.check(org, { subject, permission, resource, consistency: { mode } })).allowed));
    },
  };
}

let runs = 0;
async function play(s: Scenario, target: Target) {
  target.clock.now = Date.parse(s.now ?? '2026-01-01T00:00:00Z');
  const prefix = `sc${++runs}.`;
  const orgOf = (o: string) => prefix + o;
  for (const [org, spec] of Object.entries(s.organizations)) {
    for (const cmd of setup(orgOf(org), spec)) expect(await target.apply(cmd), `setup ${JSON.stringify(cmd)}`).toBeNull();
  }
  await target.settle();
  for (const [i, step] of s.steps.entries()) {
    if (step.at !== undefined) target.clock.now = Date.parse(step.at);
    for (const spec of step.do ?? []) {
      const { cmd, error } = stepCommand(spec, orgOf);
      expect(await target.apply(cmd), `step ${i + 1}: ${JSON.stringify(spec)}`).toBe(error ?? null);
    }
    await target.settle();
    for (const [want, list] of [[true, step.allow], [false, step.deny]] as const) {
      for (const [org, subject, permission, resource] of list ?? []) {
        const got = await target.allowed(orgOf(org), subject, permission, resource);
        expect(got, `step ${i + 1}: ${want ? 'allow' : 'deny'} ${subject} ${permission} ${resource} in ${org}`).toEqual(got.map(() => want));
      }
    }
  }
}

describe('scenarios [oracle]', () => {
  for (const f of files) it(f, () => play(load(f), oracleTarget()));
});

describeEachEngine('scenarios', (engine) => {
  let db: Database;
  let ls: Lockstep;
  let worker: Worker;
  const clock = { now: 0 };
  beforeAll(async () => {
    db = await engine.open();
    ls = createLockstep(db, { now: () => clock.now });
    worker = createWorker({ db, now: () => clock.now });
  });
  afterAll(() => db?.close());
  for (const f of files) it(f, () => play(load(f), engineTarget(ls, worker, clock)));
});
