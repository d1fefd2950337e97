/**
 * One delivery attempt of one message to one push target: a Standard Webhooks request, or SSF
 * push (RFC 8935) of one SET per subject. The outcome is classified for the engine: acknowledged,
 * gone (410: the target asked to be disabled) or failed (anything else, timeouts included).
 */
import type { AccessItem, EventType } from '../domain/delivery.ts';
import { signSet, signWebhook, SSF_EVENTS, type KeyStore } from './signing.ts';
import { validSecrets, type TargetRow } from './targets.ts';
import { checkTargetUrl, type Lookup } from './url-guard.ts';

export interface OutMessage {
  org: string;
  revision: number;
  seq: number;
  generation: number;
  type: EventType;
  subjects: string[];
  access: AccessItem[];
  decidedAt: number;
  enforcedAt: number;
  createdAt: number;
}

export type Outcome = { kind: 'acked'; status: number } | { kind: 'gone'; status: number } | { kind: 'failed'; error: string };

export interface SendEnv {
  keys: KeyStore;
  issuer: () => string;
  allowPrivate: boolean;
  lookup?: Lookup | undefined;
  timeoutMs: number;
  now: () => number;
}

/** The idempotency key of a message: stable across retries; a replay (generation > 0) is a new message. */
export const messageId = (m: Pick<OutMessage, 'org' | 'revision' | 'seq' | 'generation'>) =>
  `msg_${m.org}_${m.revision}_${m.seq}${m.generation > 0 ? `_g${m.generation}` : ''}`;

/** The webhook body: the same bytes on every retry (its timestamp is the event's). */
export function webhookBody(m: OutMessage): string {
  return JSON.stringify({
    type: m.type,
    timestamp: new Date(m.createdAt).toISOString(),
    data: {
      organization: m.org,
      revision: m.revision,
      subjects: m.subjects,
      access: m.access,
      decidedAt: new Date(m.decidedAt).toISOString(),
      enforcedAt: new Date(m.enforcedAt).toISOString(),
    },
  });
}

async function post(url: string, headers: Record<string, string>, body: string, env: SendEnv): Promise<{ status: number } | { error: string }> {
  try {
    await checkTargetUrl(url, env);
    const res = await fetch(url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(env.timeoutMs) });
    await res.arrayBuffer().catch(() => undefined);
    return { status: res.status };
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    if (err.name === 'TimeoutError') return { error: `timeout after ${env.timeoutMs} ms` };
    return { error: `${err.cause?.code ?? err.name}: ${err.message}`.slice(0, 500) };
  }
}

export async function sendMessage(t: TargetRow, m: OutMessage, env: SendEnv): Promise<Outcome> {
  const id = messageId(m);
  if (t.kind === 'webhook') {
    const body = webhookBody(m);
    const ts = Math.floor(env.now() / 1000);
    const r = await post(
      t.url!,
      {
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(ts),
        'webhook-signature': signWebhook(validSecrets(t, env.now()), id, ts, body),
        'user-agent': 'lockstep',
      },
      body,
      env,
    );
    return classify(r, (s) => s >= 200 && s < 300);
  }
  // SSF push: one SET per subject (CAEP events are about one subject); 202 acknowledges each.
  for (const [i, jwt] of (await setsOf(t, m, id, env)).entries()) {
    const r = await post(t.url!, { 'content-type': 'application/secevent+jwt', accept: 'application/json', 'user-agent': 'lockstep' }, jwt, env);
    const o = classify(r, (s) => s === 202);
    if (o.kind !== 'acked') return o.kind === 'failed' ? { kind: 'failed', error: `SET ${i + 1}/${m.subjects.length}: ${o.error}` } : o;
  }
  return { kind: 'acked', status: 202 };
}

function classify(r: { status: number } | { error: string }, ok: (status: number) => boolean): Outcome {
  if ('error' in r) return { kind: 'failed', error: r.error };
  if (ok(r.status)) return { kind: 'acked', status: r.status };
  if (r.status === 410) return { kind: 'gone', status: 410 };
  return { kind: 'failed', error: `HTTP ${r.status}` };
}

/** The SETs of a message, one per subject; jti = message id + subject index (stable across retries). */
export function setsOf(t: Pick<TargetRow, 'url' | 'id'>, m: OutMessage, id: string, env: Pick<SendEnv, 'keys' | 'issuer' | 'now'>): Promise<string[]> {
  const eventTimestamp = Math.floor(m.enforcedAt / 1000);
  return Promise.all(
    m.subjects.map((subject, i) => {
      const events =
        m.type === 'subject.deprovisioned'
          ? { [SSF_EVENTS.sessionRevoked]: { event_timestamp: eventTimestamp, initiating_entity: 'policy', reason_admin: { en: 'subject deprovisioned' } } }
          : {
              [SSF_EVENTS.tokenClaimsChange]: {
                event_timestamp: eventTimestamp,
                initiating_entity: 'policy',
                claims: { lockstep_access: { [m.type === 'access.revoked' ? 'revoked' : 'granted']: m.access } },
              },
            };
      return signSet(env.keys, { jti: `${id}.${i}`, iss: env.issuer(), aud: t.url ?? t.id, txn: String(m.revision), sub_id: { format: 'opaque', id: subject }, events }, env.now());
    }),
  );
}
