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
import { applyCommand, createOracleState, oracleCheck, type Command } from '../../src/domain/oracle.ts';
import { createWorker, type Worker } from '../../src/propagation/worker.ts';
import type { Database } from '../../src/storage/database.ts';
import { describeEachEngine } from '../helpers/engines.ts';

interface OrgSpec {
  permissions?: Record<string, string>;
  roles?: Record<string, string[]>;
  /** ref → parent ref or null; parents listed before their children. */
  resources?: Record<string, string | null>;
  /** id → kind, or { kind, active }. */
  subjects?: Record<string, string | { kind: string; active?: boolean }>;
  /** id → member subject ids. */
  groups?: Record<string, string[]>;
  /** [principal, role, resource] */
  assignments?: [string, string, string][];
}
type Check = [org: string, subject: string, permission: string, resource: string];
interface Step {
  /** `{ method: [org, ...args], error?: CODE }`, method one of the `Lockstep` writes below. */
  do?: Record<string, unknown>[];
  allow?: Check[];
  deny?: Check[];
}
interface Scenario {
  description: string;
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
  for (const [id, members] of Object.entries(o.groups ?? {})) {
    cmds.push({ kind: 'putGroup', org, id });
    for (const subject of members) cmds.push({ kind: 'addMember', org, group: id, subject });
  }
  for (const [principal, role, resource] of o.assignments ?? []) cmds.push({ kind: 'createAssignment', org, principal, role, resource });
  return cmds;
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
      case 'addMember': return { kind: 'addMember', org, group: s(0), subject: s(1) };
      case 'removeMember': return { kind: 'removeMember', org, group: s(0), subject: s(1) };
      case 'putRole': return { kind: 'putRole', org, slug: s(0), permissions: a.slice(1) as string[] };
      case 'createAssignment': return { kind: 'createAssignment', org, principal: s(0), role: s(1), resource: s(2) };
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
  settle(): Promise<void>;
  allowed(org: string, subject: string, permission: string, resource: string): Promise<boolean[]>;
}

function oracleTarget(): Target {
  const state = createOracleState();
  let n = 0;
  return {
    async apply(cmd) {
      const r = applyCommand(state, cmd, `asg_${++n}`);
      return r.ok ? null : r.code;
    },
    async settle() {},
    async allowed(org, subject, permission, resource) {
      const r = oracleCheck(state, org, subject, permission, resource);
      if (!r.ok) throw new Error(`check failed: ${r.code} on ${r.field}`);
      return [r.allowed];
    },
  };
}

function engineTarget(ls: Lockstep, worker: Worker): Target {
  const call = (c: Command) => {
    switch (c.kind) {
      case 'putOrganization': return ls.putOrganization(c.org, {});
      case 'putPermission': return ls.putPermission(c.org, c.slug, { risk: c.risk });
      case 'putRole': return ls.putRole(c.org, c.slug, { permissions: c.permissions });
      case 'putResource': return ls.putResource(c.org, c.type, c.id, { parent: c.parent ?? null });
      case 'deleteResource': return ls.deleteResource(c.org, c.type, c.id);
      case 'putSubject': return ls.putSubject(c.org, c.id, { kind: c.subjectKind, ...(c.active === undefined ? {} : { active: c.active }) });
      case 'deleteSubject': return ls.deleteSubject(c.org, c.id);
      case 'putGroup': return ls.putGroup(c.org, c.id, {});
      case 'deleteGroup': return ls.deleteGroup(c.org, c.id);
      case 'addMember': return ls.addMember(c.org, c.group, c.subject);
      case 'removeMember': return ls.removeMember(c.org, c.group, c.subject);
      case 'createAssignment': return ls.createAssignment(c.org, { principal: c.principal, role: c.role, resource: c.resource });
      case 'deleteAssignment': return ls.deleteAssignment(c.org, c.id);
    }
  };
  return {
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
  const prefix = `sc${++runs}.`;
  const orgOf = (o: string) => prefix + o;
  for (const [org, spec] of Object.entries(s.organizations)) {
    for (const cmd of setup(orgOf(org), spec)) expect(await target.apply(cmd), `setup ${JSON.stringify(cmd)}`).toBeNull();
  }
  await target.settle();
  for (const [i, step] of s.steps.entries()) {
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
  beforeAll(async () => {
    db = await engine.open();
    ls = createLockstep(db);
    worker = createWorker({ db });
  });
  afterAll(() => db?.close());
  for (const f of files) it(f, () => play(load(f), engineTarget(ls, worker)));
});
