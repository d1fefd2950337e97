/**
 * The CLI against a server that says "not now": a 429 after failed authentications (exit 13 with
 * when to retry, not retried), a 503 to an at_least_as_fresh check the read model cannot reach
 * (retried as the client does, each retry said on stderr, then exit 9) — and `apply --url
 * --no-wait`, which returns at the commit with the grants pending. A real `lockstep serve` with no
 * workers, both engines.
 */
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { EXIT } from '../../src/cli/errors.ts';
import type { ApplyReport } from '../../src/policy-file/apply.ts';
import { describeEachStore, lockstep, ROOT, servedStore } from './harness.ts';


describeEachStore('lockstep --url: 429 and 503 answers', (newStore) => {
  const { url, remote } = servedStore(newStore, {
    serveArgs: ['--workers', '0'],
    env: { LOCKSTEP_FRESHNESS_TIMEOUT_MS: '50', LOCKSTEP_AUTH_FAILURE_LIMIT: '2' },
  });

  it('apply --no-wait returns at the commit; a check at its revision is retried on 503, then exits 9', async () => {
    const applied = await remote('apply', '-f', join(ROOT, 'examples/acme.yaml'), '--no-wait', '--json');
    expect(applied.code, applied.stderr).toBe(EXIT.OK);
    const report = JSON.parse(applied.stdout) as ApplyReport & { propagation: string };
    expect(report.pending).toBeGreaterThan(0);
    expect(report.propagation).toBe('pending');
    const pending = JSON.parse((await remote('jobs', 'list', '--org', 'acme', '--state', 'pending', '--json')).stdout) as unknown[];
    expect(pending.length).toBeGreaterThan(0);

    // No worker: the read model never reaches the apply's revision.
    const revision = String(report.organizations[0]!.revision);
    const r = await remote('check', '--org', 'acme', '--subject', 'tomas.smith', '--permission', 'project.write', '--resource', 'project:web', '--revision', revision);
    expect(r.code).toBe(EXIT.UNAVAILABLE);
    const retries = r.stderr.split('\n').filter((l) => /^UNAVAILABLE: .*; retrying in \d+\.\d s \(attempt [23] of 3\)$/.test(l));
    expect(retries).toHaveLength(2);
    expect(r.stderr).toMatch(new RegExp(`^UNAVAILABLE: .*revision ${revision}.*\\(consistency\\.revision\\)$`, 'm'));
    // fully_consistent needs no read model: allowed at once, no retry
    const full = await remote('check', '--org', 'acme', '--subject', 'tomas.smith', '--permission', 'project.write', '--resource', 'project:web', '--consistency', 'fully_consistent');
    expect(full.code, full.stderr).toBe(EXIT.OK);
    expect(full.stderr).not.toContain('retrying');
  });

  it('a bad key is 12 until the limit, then 429: exit 13 with when to retry, no retry; a valid key still works', async () => {
    const bad = (n: number) => lockstep(['jobs', 'list', '--url', url(), '--key', `lsk_0000000000000000_wrong${n}`]);
    const first = await bad(1);
    expect(first.code).toBe(EXIT.AUTH);
    let limited = first;
    for (let i = 2; i <= 4 && limited.code !== EXIT.RATE_LIMITED; i++) limited = await bad(i);
    expect(limited.code).toBe(EXIT.RATE_LIMITED);
    expect(limited.stderr).toMatch(/^RATE_LIMITED: too many failed authentications .*\(retry after \d+ s; check the key\)$/m);
    expect(limited.stderr).not.toContain('retrying');
    const ok = await remote('jobs', 'list', '--org', 'acme', '--json');
    expect(ok.code, ok.stderr).toBe(EXIT.OK);
  });
});
