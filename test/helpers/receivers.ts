/**
 * Real HTTP receivers on loopback for the delivery tests. Every request is recorded in arrival
 * order with its headers and body; a webhook receiver verifies each signature with the reference
 * implementation (`standardwebhooks`), an SSF receiver each SET with `jose` against the server's
 * published JWKS. `behave(n)` scripts the answer to the n-th request (1-based): a status, or
 * 'hang' (never answer: the sender's timeout fires), so one receiver can fail, time out, recover.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { Webhook } from 'standardwebhooks';

export interface Received {
  n: number;
  at: number;
  headers: Record<string, string>;
  body: string;
  /** Parsed webhook body, or verified SET payload. */
  payload: { type?: string; data?: { revision: number; subjects: string[]; access: { role: string; resource: string }[] } } & JWTPayload;
  verified: boolean;
  error?: string;
  status: number | 'hang';
}

export interface Receiver {
  url: string;
  received: Received[];
  /** Requests that verified and were answered 2xx/202. */
  acked(): Received[];
  /** Secrets the webhook verifier accepts (set after creating the target). */
  secrets: string[];
  behave: (n: number, r: IncomingMessage) => number | 'hang';
  close(): Promise<void>;
}

export async function startReceiver(opts: { kind?: 'webhook' | 'ssf'; jwksUrl?: string; behave?: (n: number) => number | 'hang'; delayMs?: number } = {}): Promise<Receiver> {
  const kind = opts.kind ?? 'webhook';
  const received: Received[] = [];
  const hanging = new Set<ServerResponse>();
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  const rec: Receiver = {
    url: '',
    received,
    secrets: [],
    behave: opts.behave ?? (() => (kind === 'ssf' ? 202 : 200)),
    acked: () => received.filter((r) => r.verified && r.status !== 'hang' && (kind === 'ssf' ? r.status === 202 : r.status >= 200 && r.status < 300)),
    close: async () => {
      for (const res of hanging) res.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
        const entry: Received = { n: received.length + 1, at: Date.now(), headers, body, payload: {}, verified: false, status: 200 };
        received.push(entry);
        try {
          if (kind === 'webhook') {
            let lastError: unknown;
            for (const secret of rec.secrets) {
              try {
                entry.payload = new Webhook(secret).verify(body, headers) as Received['payload'];
                entry.verified = true;
                break;
              } catch (e) {
                lastError = e;
              }
            }
            if (!entry.verified) throw lastError ?? new Error('no secret configured');
          } else {
            jwks ??= createRemoteJWKSet(new URL(opts.jwksUrl!));
            if (headers['content-type'] !== 'application/secevent+jwt') throw new Error(`content-type ${headers['content-type']}`);
            const { payload, protectedHeader } = await jwtVerify(body, jwks, { typ: 'secevent+jwt', algorithms: ['ES256'] });
            void protectedHeader;
            entry.payload = payload as Received['payload'];
            entry.verified = true;
          }
        } catch (e) {
          entry.error = String((e as Error).message ?? e);
        }
        const status = entry.verified ? rec.behave(entry.n, req) : 401;
        entry.status = status;
        if (status === 'hang') {
          hanging.add(res);
          return;
        }
        if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
        res.writeHead(status).end();
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  rec.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return rec;
}

/** Polls `cond` every 20 ms until it holds or `ms` pass; returns whether it held. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}
