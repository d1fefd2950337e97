/**
 * Signatures. Webhooks follow Standard Webhooks: `webhook-signature` is a space-separated list of
 * `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per valid secret (two during a rotation's
 * grace period, so a receiver that has either secret verifies). SSF targets get Security Event
 * Tokens (RFC 8417) signed ES256 with the server's key, published at /.well-known/jwks.json.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import type { Sql } from '../storage/database.ts';

/** A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes. */
export const newWebhookSecret = () => `whsec_${randomBytes(32).toString('base64')}`;
/** An SSF poll token (the receiver's bearer credential for RFC 8936 polling). */
export const newPollToken = () => `lsp_${randomBytes(24).toString('base64url')}`;

export function signWebhook(secrets: readonly string[], id: string, timestampSeconds: number, body: string): string {
  return secrets
    .filter((s) => s.startsWith('whsec_'))
    .map((s) => `v1,${createHmac('sha256', Buffer.from(s.slice('whsec_'.length), 'base64')).update(`${id}.${timestampSeconds}.${body}`).digest('base64')}`)
    .join(' ');
}

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/**
 * The SET signing key: created on first use and stored, so every process (and every restart) signs
 * with the key the JWKS publishes. Two processes racing to create it keep the first one committed.
 */
export function createKeyStore(db: Sql, now: () => number = Date.now) {
  let cached: Promise<SigningKey> | undefined;
  async function load(): Promise<SigningKey> {
    let row = await db.get<{ kid: string; private_jwk: string; public_jwk: string }>('SELECT kid, private_jwk, public_jwk FROM signing_keys ORDER BY created_at, kid LIMIT 1');
    if (!row) {
      const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
      const kid = `ls-${randomBytes(6).toString('hex')}`;
      const pub = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
      const priv = { ...(await exportJWK(privateKey)), kid, alg: 'ES256' };
      await db.run('INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING', [
        kid,
        'ES256',
        JSON.stringify(priv),
        JSON.stringify(pub),
        now(),
      ]);
      row = await db.get('SELECT kid, private_jwk, public_jwk FROM signing_keys ORDER BY created_at, kid LIMIT 1');
    }
    const privateKey = (await importJWK(JSON.parse(row!.private_jwk) as JWK, 'ES256')) as CryptoKey;
    return { kid: row!.kid, privateKey, publicJwk: JSON.parse(row!.public_jwk) as JWK };
  }
  return {
    key(): Promise<SigningKey> {
      cached ??= load().catch((e) => {
        cached = undefined;
        throw e;
      });
      return cached;
    },
    async jwks(): Promise<{ keys: JWK[] }> {
      return { keys: [(await this.key()).publicJwk] };
    },
  };
}
export type KeyStore = ReturnType<typeof createKeyStore>;

export const SSF_EVENTS = {
  sessionRevoked: 'https://schemas.openid.net/secevent/caep/event-type/session-revoked',
  tokenClaimsChange: 'https://schemas.openid.net/secevent/caep/event-type/token-claims-change',
  verification: 'https://schemas.openid.net/secevent/ssf/event-type/verification',
} as const;

export interface SetClaims {
  jti: string;
  iss: string;
  aud: string;
  txn?: string;
  sub_id?: { format: 'opaque'; id: string };
  events: Record<string, unknown>;
}

export async function signSet(keys: KeyStore, claims: SetClaims, nowMs: number): Promise<string> {
  const k = await keys.key();
  const { jti, iss, aud, ...rest } = claims;
  return new SignJWT({ ...rest })
    .setProtectedHeader({ alg: 'ES256', typ: 'secevent+jwt', kid: k.kid })
    .setJti(jti)
    .setIssuer(iss)
    .setAudience(aud)
    .setIssuedAt(Math.floor(nowMs / 1000))
    .sign(k.privateKey);
}
