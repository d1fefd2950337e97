-- Where an API key came from: 'env' (LOCKSTEP_ADMIN_KEY, registered by serve on start),
-- 'generated' (printed once by the first start without one) or 'created' (keys create, createKey).
-- Rotation: serve revokes every active 'env' key but the one LOCKSTEP_ADMIN_KEY names now, so the
-- environment's key is the only environment-provided key that works (src/api/keys.ts).
ALTER TABLE api_keys ADD COLUMN origin TEXT NOT NULL DEFAULT 'created' CHECK (origin IN ('created', 'generated', 'env'));
-- Keys registered before this migration are recognised by the names their code gave them.
UPDATE api_keys SET origin = 'env' WHERE scope = 'admin' AND name = 'LOCKSTEP_ADMIN_KEY';
UPDATE api_keys SET origin = 'generated' WHERE scope = 'admin' AND name = 'generated on first start';
