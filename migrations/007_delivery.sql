-- Delivery of effective changes to target systems: targets, the events derived from each change,
-- the outbox of per-target deliveries, delivery lanes (one owner per target × subject partition)
-- and the key that signs Security Event Tokens.

-- kind: 'webhook' (Standard Webhooks) or 'ssf' (Shared Signals SETs). delivery: 'push' (we POST to
-- url) or 'poll' (an SSF receiver polls, RFC 8936; url NULL). state is 'active' or 'disabled' (a 410,
-- or by hand); "failing" is derived from consecutive_failures. secret signs webhooks (whsec_…) or
-- authenticates an SSF poller; during a rotation previous_secret stays valid until previous_until.
CREATE TABLE targets (
  org_id               TEXT NOT NULL REFERENCES organizations (id),
  id                   TEXT NOT NULL,
  name                 TEXT NOT NULL,
  kind                 TEXT NOT NULL CHECK (kind IN ('webhook', 'ssf')),
  delivery             TEXT NOT NULL CHECK (delivery IN ('push', 'poll')),
  url                  TEXT,
  critical             SMALLINT NOT NULL DEFAULT 0 CHECK (critical IN (0, 1)),
  state                TEXT NOT NULL CHECK (state IN ('active', 'disabled')),
  secret               TEXT NOT NULL,
  previous_secret      TEXT,
  previous_until       BIGINT,
  from_revision        BIGINT NOT NULL,
  created_at           BIGINT NOT NULL,
  disabled_at          BIGINT,
  disabled_reason      TEXT,
  consecutive_failures INTEGER NOT NULL DEFAULT 0,
  last_error           TEXT,
  last_error_at        BIGINT,
  last_ack_at          BIGINT,
  PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX targets_by_id ON targets (id);

-- Organizations whose read-model changes are recorded as events (from their first target on).
-- The triggers below look here, so an organization without targets pays one index probe per row.
CREATE TABLE event_streams (
  org_id         TEXT PRIMARY KEY REFERENCES organizations (id),
  since_revision BIGINT NOT NULL,
  created_at     BIGINT NOT NULL
);

-- The raw read-model diff of the current transaction, one row per derivation inserted (+1) or
-- deleted (-1), written by triggers on effective_assignments. The same transaction turns it into
-- events and empties it (src/delivery/record-events.ts), so committed rows here are only ever the
-- work of a path that did not collect: the next collection of that organization picks them up.
CREATE TABLE effective_diff (
  org_id     TEXT NOT NULL,
  subject_id TEXT NOT NULL,
  role       TEXT NOT NULL,
  resource   TEXT NOT NULL,
  op         SMALLINT NOT NULL
);
CREATE INDEX effective_diff_by_org ON effective_diff (org_id);

-- One message of effective changes: a type, one subject partition, and bounded lists (see
-- docs/delivery.md). job_id: the reconciliation job whose batch produced it (asynchronous changes).
CREATE TABLE delivery_events (
  org_id      TEXT NOT NULL,
  revision    BIGINT NOT NULL,
  seq         INTEGER NOT NULL,
  type        TEXT NOT NULL,
  part        SMALLINT NOT NULL,
  subjects    TEXT NOT NULL,
  body        TEXT NOT NULL,
  decided_at  BIGINT NOT NULL,
  enforced_at BIGINT NOT NULL,
  job_id      TEXT,
  created_at  BIGINT NOT NULL,
  PRIMARY KEY (org_id, revision, seq)
);
CREATE INDEX delivery_events_by_job ON delivery_events (org_id, job_id);

-- The outbox: one row per (target, event, generation), written in the transaction that wrote the
-- event. generation counts replays (a replayed event is a new message id). States (closed set):
--   pending  not yet acknowledged (attempts counts failures so far)
--   acked    the target answered 2xx (webhook) / 202 (SSF push) / acknowledged a poll
--   parked   gave up after max attempts; counted, visible, put back by a replay
--   dropped  the target was disabled or deleted before delivery
CREATE TABLE deliveries (
  target_id     TEXT NOT NULL,
  org_id        TEXT NOT NULL,
  revision      BIGINT NOT NULL,
  seq           INTEGER NOT NULL,
  generation    INTEGER NOT NULL DEFAULT 0,
  part          SMALLINT NOT NULL,
  priority      SMALLINT NOT NULL,
  state         TEXT NOT NULL CHECK (state IN ('pending', 'acked', 'parked', 'dropped')),
  attempts      INTEGER NOT NULL DEFAULT 0,
  created_at    BIGINT NOT NULL,
  delivered_at  BIGINT,
  acked_at      BIGINT,
  last_error    TEXT,
  PRIMARY KEY (target_id, revision, seq, generation)
);
CREATE INDEX deliveries_lane ON deliveries (target_id, part, state, revision, seq);
CREATE INDEX deliveries_by_change ON deliveries (org_id, revision);

-- One owner per (target, partition): a lease like a job's, and the lane's backoff (run_at) after a
-- failed attempt, so the lane waits while other lanes and targets go on.
CREATE TABLE delivery_lanes (
  target_id        TEXT NOT NULL,
  part             SMALLINT NOT NULL,
  owner            TEXT,
  lease_expires_at BIGINT,
  run_at           BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (target_id, part)
);

-- The key that signs SETs (ES256), published at /.well-known/jwks.json.
CREATE TABLE signing_keys (
  kid         TEXT PRIMARY KEY,
  alg         TEXT NOT NULL,
  private_jwk TEXT NOT NULL,
  public_jwk  TEXT NOT NULL,
  created_at  BIGINT NOT NULL
);

-- When a change's policy write committed: checks enforce a verified revocation from here on.
ALTER TABLE changes ADD COLUMN committed_at BIGINT;
