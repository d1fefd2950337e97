/**
 * API keys over HTTP: list, create, revoke — admin keys only (a check or write key is refused with
 * 403 whatever organization it names, so it can neither see nor make keys, its own organization's
 * included). The key made by POST is in its answer and nowhere else: not stored in clear, not
 * logged (request and response bodies never reach the log).
 */
import type { FastifyInstance } from 'fastify';
import { LockstepError } from '../../domain/errors.ts';
import type { Database } from '../../storage/database.ts';
import { createKey, getKey, listKeys, type KeyScope } from '../keys.ts';
import * as s from '../schemas/keys.ts';

export function keyRoutes(app: FastifyInstance, db: Database) {
  const admin = { config: { access: 'admin' as const } };

  app.get<{ Querystring: { org?: string; revoked?: 'true' | 'false' } }>('/v1/keys', { schema: s.listKeys, ...admin }, async (req) => ({
    keys: await listKeys(db, { ...(req.query.org === undefined ? {} : { org: req.query.org }), revoked: req.query.revoked === 'true' }),
  }));

  app.post<{ Body: { scope: KeyScope; org?: string; name?: string } }>('/v1/keys', { schema: s.createKey, ...admin }, async (req, reply) => {
    const made = await createKey(db, req.body);
    const info = await getKey(db, made.id);
    req.log.info({ keyId: made.id, scope: req.body.scope, org: req.body.org ?? null, by: req.apiKey?.id }, 'API key created');
    return reply.code(201).send({ ...info, key: made.key });
  });

  app.delete<{ Params: { id: string } }>('/v1/keys/:id', { schema: s.revokeKey, ...admin }, async (req) => {
    const { id } = req.params;
    const changed = await db.transaction(async (tx) => {
      const key = await getKey(tx, id);
      if (!key) throw new LockstepError('NOT_FOUND', `no API key with id '${id}'`, { field: 'id' });
      if (key.revokedAt !== null) return false;
      if (key.scope === 'admin') {
        // Locked, so two revocations at once cannot each leave the other as the last one.
        const active = await tx.all<{ id: string }>(`SELECT id FROM api_keys WHERE scope = 'admin' AND revoked_at IS NULL${tx.forUpdate}`);
        // Over HTTP, the last admin key would lock every administrator out until a restart.
        if (active.every((k) => k.id === id)) throw new LockstepError('CONFLICT', `'${id}' is the last active admin key; create another admin key first`, { field: 'id' });
      }
      await tx.run('UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [Date.now(), id]);
      return true;
    });
    if (changed) req.log.info({ keyId: id, by: req.apiKey?.id }, 'API key revoked');
    return { key: (await getKey(db, id))!, changed };
  });
}
