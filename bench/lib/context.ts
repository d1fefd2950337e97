/** What every scenario receives: the mode and its sizes, the engines, where to put files, progress. */
import type { Engine } from './lockstep.ts';

export type Mode = 'smoke' | 'quick' | 'full';

export interface Sizes {
  /** scenario 1: assignments of the big group; standing assignments every measured subject holds */
  big: number;
  standing: number;
  pairsSmall: number;
  pairsBig: number;
  /** repeated runs of scenarios 1 and 4 (medians with min–max) */
  reps: number;
  /** scenario 2 */
  rate: number;
  seconds: number;
  subjects: number;
  /** scenario 3 */
  members: number;
  assignments: number;
  /** scenario 4 */
  checks: number;
  /** time cap of each latency and each throughput run of scenario 4 (seconds) */
  checkSeconds: number;
  httpSeconds: number;
  httpConnections: number;
  /** scenario 5 */
  crashMembers: number;
  crashAssignments: number;
  crashBatch: number;
  /** scenario 6: SCIM users and groups provisioned, members a Group PUT replaces and a PATCH removes, deprovisionings/s (for `seconds`) */
  scimUsers: number;
  scimGroups: number;
  scimReplace: number;
  scimRemove: number;
  scimDeprovisionRate: number;
  /** scenario 7: subjects at the bottom of each nesting chain; subjects under the mid-level edge */
  nestedMembers: number;
  nestedSubjects: number[];
}

export const SIZES: Record<Mode, Sizes> = {
  smoke: { big: 200, standing: 60, pairsSmall: 10, pairsBig: 4, reps: 1, rate: 200, seconds: 1, subjects: 100, members: 100, assignments: 100, checks: 100, checkSeconds: 1, httpSeconds: 1, httpConnections: 8, crashMembers: 200, crashAssignments: 50, crashBatch: 10, scimUsers: 200, scimGroups: 5, scimReplace: 50, scimRemove: 25, scimDeprovisionRate: 100, nestedMembers: 50, nestedSubjects: [200, 1000] },
  quick: { big: 1000, standing: 300, pairsSmall: 60, pairsBig: 15, reps: 1, rate: 500, seconds: 2, subjects: 400, members: 300, assignments: 300, checks: 2000, checkSeconds: 3, httpSeconds: 2, httpConnections: 16, crashMembers: 1000, crashAssignments: 100, crashBatch: 20, scimUsers: 1000, scimGroups: 20, scimReplace: 400, scimRemove: 200, scimDeprovisionRate: 200, nestedMembers: 200, nestedSubjects: [2000, 20000] },
  full: { big: 5000, standing: 300, pairsSmall: 200, pairsBig: 40, reps: 3, rate: 500, seconds: 10, subjects: 2000, members: 5000, assignments: 5000, checks: 10000, checkSeconds: 15, httpSeconds: 8, httpConnections: 16, crashMembers: 2000, crashAssignments: 500, crashBatch: 20, scimUsers: 10000, scimGroups: 200, scimReplace: 5000, scimRemove: 1000, scimDeprovisionRate: 200, nestedMembers: 1000, nestedSubjects: [2000, 20000] },
};

export interface Ctx {
  mode: Mode;
  size: Sizes;
  engines: Engine[];
  pg: string;
  /** why PostgreSQL cannot be used (null: it can) */
  pgDown: string | null;
  /** a temporary directory for SQLite files, removed at the end */
  tmp: string;
  log(msg: string): void;
}
