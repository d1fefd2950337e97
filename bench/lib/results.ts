/** The shape of a benchmark run's results.json (written by run.ts, read by report.ts and render.ts). */
import type { Mode, Sizes } from './context.ts';
import type { CheckRow, HttpCheckRow } from '../scenarios/checks.ts';
import type { CrashRow } from '../scenarios/crash.ts';
import type { LargeGroupRow } from '../scenarios/large-group.ts';
import type { MembershipRow } from '../scenarios/membership.ts';
import type { PropagationRow } from '../scenarios/propagation.ts';
import type { DirectoryRow } from '../scenarios/directories.ts';
import type { NestedCheckRow, NestedEdgeRow } from '../scenarios/nested.ts';
import type { MultiServeRow } from '../scenarios/multi-serve.ts';

export interface BenchResults {
  mode: Mode;
  command: string;
  startedAt: string;
  elapsedSeconds: number;
  machine: { cpu: string; cores: number; ramGb: number; node: string; platform: string; date: string; line: string };
  sizes: Sizes;
  systems: Array<{ system: string; engine: string; status: string }>;
  scenarios: {
    membership: MembershipRow[];
    propagation: PropagationRow[];
    largeGroup: LargeGroupRow[];
    checks: { inProcess: CheckRow[]; http: HttpCheckRow[] };
    crash: CrashRow[];
    directories: DirectoryRow[];
    /** absent in results written before scenario 7 */
    nested?: { checks: NestedCheckRow[]; edges: NestedEdgeRow[] };
    /** scenario 8; absent in results written before it */
    multiServe?: MultiServeRow[];
  };
}
