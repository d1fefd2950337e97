/** What every system under test offers the scenarios. */
export interface WriteOutcome {
  /** what a read-your-write check passes back: a Lockstep revision, a SpiceDB ZedToken */
  token?: unknown;
  mode?: 'sync' | 'async';
}

export interface System {
  addMember(group: string, subject: string): Promise<WriteOutcome>;
  removeMember(group: string, subject: string): Promise<WriteOutcome>;
  /** `token`: the token of the subject's last write (used by SpiceDB at_least_as_fresh). */
  check(subject: string, permission: string, resource: string, token?: unknown): Promise<boolean>;
  close(): Promise<void>;
}

/** A measurement that did not run, and why: reported, never silently left out. */
export interface NotRun {
  notRun: string;
}
export const notRun = (e: unknown): NotRun => ({ notRun: e instanceof Error ? e.message.split('\n')[0]! : String(e) });
export const isNotRun = (x: unknown): x is NotRun => typeof x === 'object' && x !== null && 'notRun' in x;
