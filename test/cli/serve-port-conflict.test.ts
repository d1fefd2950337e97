/**
 * Issue 10, item 11: a first `serve` that cannot listen (the port is taken) must not store a
 * generated admin key it never shows. The next start, on a free port, shows one and it works.
 * A real conflict: a loopback listener of this test holds the port.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore, killAll, lockstep, servingUrl, start, type Store } from './harness.ts';

describeEachStore('lockstep serve on a port in use', (newStore) => {
  let store: Store;
  let holder: Server;
  let port = 0;

  beforeAll(async () => {
    store = await newStore();
    holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    port = (holder.address() as { port: number }).port;
  });
  afterAll(async () => {
    killAll();
    await new Promise((resolve) => holder.close(resolve));
    await store.drop();
  });

  it('fails without showing or storing a key; the next start shows one that works', async () => {
    const failed = await lockstep(['serve', '--port', String(port), '--db', store.db]);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/EADDRINUSE|address already in use/);
    expect(failed.stderr).not.toContain('ADMIN API key');
    const db = store.open();
    try {
      expect(await db.all("SELECT id FROM api_keys WHERE revoked_at IS NULL")).toEqual([]);
    } finally {
      await db.close();
    }

    const server = start(['serve', '--port', '0', '--workers', '0', '--db', store.db]);
    let stderr = '';
    server.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const url = await servingUrl(server);
    const key = /ADMIN API key[\s\S]*?\n\s+(lsk_\S+)\n/.exec(stderr)?.[1];
    expect(key).toBeDefined();
    const res = await fetch(`${url}/v1/jobs`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    server.kill('SIGTERM');
  });
});
