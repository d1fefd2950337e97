/**
 * A limit on failed authentication per client address: after `max` failures within `windowMs`,
 * a request from that address whose key fails gets 429 (RATE_LIMITED, Retry-After) instead of 401
 * until the window ends. Only failures count, and a valid key is still accepted from a limited
 * address: clients behind one NAT are not locked out by someone else's bad key, and the limit's
 * point is to make guessing visible and cheap to refuse, not to deny service.
 *
 * Why not @fastify/rate-limit: it counts every request of a route, before authentication, so it
 * would limit good keys as much as bad ones; this counts the outcome. Fixed windows, in memory, per
 * process (each `serve` limits on its own); the table is bounded (`maxClients`, oldest evicted).
 */
export interface AuthFailureLimit {
  /** Failures allowed per address per window; 0 turns the limit off. */
  max: number;
  windowMs: number;
}

export interface FailureVerdict {
  /** This failure is over the limit: answer 429. */
  limited: boolean;
  /** Seconds until the address's window ends (Retry-After). */
  retryAfterSeconds: number;
  /** The first failure over the limit in this window: the one worth a warning in the log. */
  firstOver: boolean;
  failures: number;
}

export function createFailureLimiter(limit: AuthFailureLimit, now: () => number = Date.now, maxClients = 10_000) {
  const windows = new Map<string, { start: number; failures: number }>();
  return {
    fail(client: string): FailureVerdict {
      const t = now();
      let w = windows.get(client);
      if (!w || t - w.start >= limit.windowMs) {
        if (w) windows.delete(client);
        w = { start: t, failures: 0 };
        if (windows.size >= maxClients) windows.delete(windows.keys().next().value!);
        windows.set(client, w);
      }
      w.failures += 1;
      const limited = limit.max > 0 && w.failures > limit.max;
      return {
        limited,
        retryAfterSeconds: Math.max(1, Math.ceil((w.start + limit.windowMs - t) / 1000)),
        firstOver: limited && w.failures === limit.max + 1,
        failures: w.failures,
      };
    },
  };
}

export type FailureLimiter = ReturnType<typeof createFailureLimiter>;
