/**
 * The benchmark's policy model, shared by every system: permissions project.read (standard),
 * project.write (high), project.delete (critical); roles viewer ⊂ editor ⊂ admin; a workspace with
 * projects under it; groups carrying role assignments; subjects in groups. Each system loads the same
 * `Dataset` in its own terms (Lockstep tables, SpiceDB relationships, casbin policies).
 */
export const ORG = 'bench';
export const PERMISSIONS = [
  ['project.read', 'standard'],
  ['project.write', 'high'],
  ['project.delete', 'critical'],
] as const;
export const ROLES: Record<string, string[]> = {
  viewer: ['project.read'],
  editor: ['project.read', 'project.write'],
  admin: ['project.read', 'project.write', 'project.delete'],
};
export type Role = keyof typeof ROLES & string;

export interface Dataset {
  /** projects p000000 … under workspace:ws */
  projects: number;
  /** group id → its assignments [role, resource] */
  groups: Record<string, Array<[string, string]>>;
  subjects: string[];
  /** [group, subject] */
  members: Array<[string, string]>;
}

export const pad = (i: number) => String(i).padStart(6, '0');
export const project = (i: number) => `project:p${pad(i)}`;
export const user = (i: number) => `u${pad(i)}`;

/**
 * The membership/check data set: a small group (3 assignments: viewer on the workspace, editor and
 * admin on one project each), a big group (`big` editor assignments, one per project), and three
 * "standing" groups whose `standing` viewer assignments every measured subject already holds — so
 * that a subject's effective set is realistic and the naive rewrite pays what it would in production.
 */
export function coreDataset(big: number, standing: number, subjects = 20): Dataset {
  const projects = Math.max(big, standing, 3);
  const groups: Dataset['groups'] = {
    small: [
      ['viewer', 'workspace:ws'],
      ['editor', project(1)],
      ['admin', project(2)],
    ],
    big: Array.from({ length: big }, (_, i) => ['editor', project(i)] as [string, string]),
  };
  const per = Math.ceil(standing / 3);
  for (let g = 0; g < 3; g++) groups[`std${g}`] = Array.from({ length: per }, (_, i) => ['viewer', project((g * per + i) % projects)] as [string, string]);
  const subs = Array.from({ length: subjects }, (_, i) => user(i));
  const members: Dataset['members'] = [];
  // Measured subjects u0…u9 hold the standing set; u10…u19 are background members of `small`.
  for (let i = 0; i < Math.min(10, subjects); i++) for (let g = 0; g < 3; g++) members.push([`std${g}`, user(i)]);
  for (let i = 10; i < subjects; i++) members.push(['small', user(i)]);
  return { projects, groups, subjects: subs, members };
}

/** Propagation data set: a `team` group with viewer on three projects; `n` subjects, none members. */
export function propagationDataset(n: number): Dataset {
  return {
    projects: 3,
    groups: { team: [0, 1, 2].map((i) => ['viewer', project(i)] as [string, string]) },
    subjects: Array.from({ length: n }, (_, i) => user(i)),
    members: [],
  };
}

/** Large group: `m` members of `everyone`, which carries `a` viewer assignments (one per project). */
export function largeDataset(m: number, a: number): Dataset {
  return {
    projects: a,
    groups: { everyone: Array.from({ length: a }, (_, i) => ['viewer', project(i)] as [string, string]) },
    subjects: Array.from({ length: m }, (_, i) => user(i)),
    members: Array.from({ length: m }, (_, i) => ['everyone', user(i)] as [string, string]),
  };
}
