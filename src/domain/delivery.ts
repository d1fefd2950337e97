/**
 * Delivery messages, pure: how a change's effective entries become bounded messages for targets.
 *
 * An effective entry is (subject, role, resource). A change revokes or grants a set of entries; a
 * group deletion revokes members × assignments of them (5,000 × 5,000 = 25 M). Sending one request
 * per entry is out of the question, and so is one request of 25 M entries. A message therefore
 * says "every subject of `subjects` lost (or gained) every entry of `access`": a product, because
 * that is the shape fan-out has (the members of a group × its assignments). Entries are grouped by
 * subject, subjects with the same set of changed entries share a message, and each message is
 * bounded: at most MAX_SUBJECTS subjects, MAX_ACCESS entries and MAX_PAIRS subject × entry pairs.
 * Each message holds subjects of one partition only (a hash of the subject id), so a delivery lane
 * (target × partition) with one owner keeps per-subject order.
 */

export const PARTITIONS = 8;
export const MAX_SUBJECTS = 1000;
export const MAX_ACCESS = 1000;
export const MAX_PAIRS = 10_000;

export const EVENT_TYPES = ['subject.deprovisioned', 'access.revoked', 'access.granted'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Revocations (and deprovisioning) go before grants: priority 0 before 1. */
export const priorityOf = (t: EventType) => (t === 'access.granted' ? 1 : 0);

export interface EntryChange {
  subject: string;
  role: string;
  resource: string;
  op: 'revoked' | 'granted';
}

export interface AccessItem {
  role: string;
  resource: string;
  permissions: string[];
  tier: string | null;
}

export interface Message {
  type: EventType;
  part: number;
  subjects: string[];
  /** Empty for `subject.deprovisioned`. */
  access: AccessItem[];
}

/** FNV-1a over the UTF-16 code units: stable across processes and engines. */
export function partitionOf(subject: string, partitions = PARTITIONS): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < subject.length; i++) {
    h ^= subject.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitions;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function chunk<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/**
 * The messages of one change, in delivery order: deprovisioning, then revocations, then grants;
 * within a type by partition, then by entry set. Deterministic for a given input.
 */
export function buildMessages(
  changes: readonly EntryChange[],
  roleInfo: (role: string) => { permissions: string[]; tier: string | null },
  deprovisioned: readonly string[] = [],
  limits = { subjects: MAX_SUBJECTS, access: MAX_ACCESS, pairs: MAX_PAIRS },
): Message[] {
  const out: Message[] = [];
  const byPart = new Map<number, string[]>();
  for (const s of [...new Set(deprovisioned)].sort(cmp)) {
    const p = partitionOf(s);
    const list = byPart.get(p);
    if (list) list.push(s);
    else byPart.set(p, [s]);
  }
  for (const p of [...byPart.keys()].sort((a, b) => a - b)) {
    for (const subjects of chunk(byPart.get(p)!, limits.subjects)) out.push({ type: 'subject.deprovisioned', part: p, subjects, access: [] });
  }

  for (const op of ['revoked', 'granted'] as const) {
    // subject → its changed entries (sorted keys), then entry set → subjects, per partition.
    const perSubject = new Map<string, Set<string>>();
    for (const c of changes) {
      if (c.op !== op) continue;
      let set = perSubject.get(c.subject);
      if (!set) perSubject.set(c.subject, (set = new Set()));
      set.add(`${c.role}\u0000${c.resource}`);
    }
    const groups = new Map<string, { part: number; keys: string[]; subjects: string[] }>();
    for (const subject of [...perSubject.keys()].sort(cmp)) {
      const keys = [...perSubject.get(subject)!].sort(cmp);
      const part = partitionOf(subject);
      const sig = `${part}\u0001${keys.join('\u0001')}`;
      let g = groups.get(sig);
      if (!g) groups.set(sig, (g = { part, keys, subjects: [] }));
      g.subjects.push(subject);
    }
    const ordered = [...groups.values()].sort((a, b) => a.part - b.part || cmp(a.subjects[0]!, b.subjects[0]!));
    for (const g of ordered) {
      const access = g.keys.map((k) => {
        const [role, resource] = k.split('\u0000') as [string, string];
        return { role, resource, ...roleInfo(role) };
      });
      for (const a of chunk(access, limits.access)) {
        const perMessage = Math.max(1, Math.min(limits.subjects, Math.floor(limits.pairs / a.length)));
        for (const subjects of chunk(g.subjects, perMessage)) out.push({ type: op === 'revoked' ? 'access.revoked' : 'access.granted', part: g.part, subjects, access: a });
      }
    }
  }
  return out;
}

/** The entries a message stands for (tests, receivers' reference expansion). */
export function expandMessage(m: Message): EntryChange[] {
  if (m.type === 'subject.deprovisioned') return [];
  const op = m.type === 'access.revoked' ? 'revoked' : 'granted';
  return m.subjects.flatMap((subject) => m.access.map((a) => ({ subject, role: a.role, resource: a.resource, op })));
}

/**
 * Which pending message of a lane goes next: the earliest revocation that overtakes no earlier-
 * revision message sharing one of its subjects (per-subject order holds: a revocation passes only
 * grants to other subjects, and never a revocation it must follow), else the head. `pending` is in
 * (revision, seq) order.
 */
export function nextInLane<T extends { revision: number; priority: number; subjects: readonly string[] }>(pending: readonly T[]): T | undefined {
  const skipped = new Map<string, number>(); // subject → earliest revision of a message passed over so far
  for (const m of pending) {
    const blocked = m.subjects.some((s) => {
      const r = skipped.get(s);
      return r !== undefined && r < m.revision;
    });
    if (m.priority === 0 && !blocked) return m;
    for (const s of m.subjects) if (!skipped.has(s)) skipped.set(s, m.revision);
  }
  return pending[0];
}

/**
 * Backoff before the next attempt of a failed delivery: exponential with full jitter, capped —
 * retries of many targets that failed together do not arrive together.
 */
export const deliveryBackoffMs = (attempt: number, baseMs: number, maxMs: number, rand = Math.random) =>
  Math.round(Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1)) * (0.5 + rand() / 2));
