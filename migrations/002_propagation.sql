-- Asynchronous propagation: per-organization policy, the job queue and its batch log.

CREATE TABLE propagation_policies (
  org_id     TEXT PRIMARY KEY REFERENCES organizations (id),
  policy     TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);

-- One row per reconciliation job. scope is 'subject:ID', 'group:ID', 'assignment:ID' or
-- 'organization:ID'. States (closed set):
--   pending   waiting to be claimed; at most one per (org, scope), and new changes coalesce into it
--   running   owned by `owner` until `lease_expires_at` (renewed by heartbeat); an expired lease is
--             taken over and the job resumes at its checkpoint
--   retrying  a batch failed; claimable again at run_at (backoff), resumes at its checkpoint
--   done      every batch committed
--   failed    parked after max attempts, with last_error; retried only by hand
-- A pending job is not claimed while another job of its scope is running or retrying: one owner per key.
CREATE TABLE jobs (
  id               TEXT PRIMARY KEY,
  org_id           TEXT NOT NULL,
  scope            TEXT NOT NULL,
  state            TEXT NOT NULL CHECK (state IN ('pending', 'running', 'retrying', 'done', 'failed')),
  direction        TEXT NOT NULL CHECK (direction IN ('grant', 'revoke', 'both', 'none')),
  priority         SMALLINT NOT NULL,
  target_revision  BIGINT NOT NULL,
  -- The checkpoint: the last subject id whose rows are reconciled (NULL: from the start).
  checkpoint       TEXT,
  done_members     BIGINT NOT NULL DEFAULT 0,
  total_members    BIGINT,
  batches          BIGINT NOT NULL DEFAULT 0,
  rows_added       BIGINT NOT NULL DEFAULT 0,
  rows_removed     BIGINT NOT NULL DEFAULT 0,
  attempts         INTEGER NOT NULL DEFAULT 0,
  claims           INTEGER NOT NULL DEFAULT 0,
  owner            TEXT,
  lease_expires_at BIGINT,
  run_at           BIGINT NOT NULL,
  last_error       TEXT,
  created_at       BIGINT NOT NULL,
  started_at       BIGINT,
  finished_at      BIGINT
);
CREATE UNIQUE INDEX jobs_one_pending ON jobs (org_id, scope) WHERE state = 'pending';
CREATE INDEX jobs_by_state ON jobs (state, priority, created_at);
CREATE INDEX jobs_by_scope ON jobs (org_id, scope, state);

-- Every committed batch, written in the batch's own transaction: the proof of who did what, and of
-- a resumed job continuing where it stopped rather than starting again.
CREATE TABLE job_batches (
  job_id        TEXT NOT NULL,
  seq           BIGINT NOT NULL,
  owner         TEXT NOT NULL,
  first_subject TEXT,
  last_subject  TEXT,
  members       BIGINT NOT NULL,
  rows_added    BIGINT NOT NULL,
  rows_removed  BIGINT NOT NULL,
  started_at    BIGINT NOT NULL,
  committed_at  BIGINT NOT NULL,
  PRIMARY KEY (job_id, seq)
);
