-- Worker presence (issue 14, /readyz): each running reconciliation worker — in `serve` or
-- `lockstep worker` — upserts its row every few seconds and deletes it when it stops. /readyz,
-- when told how many workers to expect (LOCKSTEP_EXPECT_WORKERS), counts the rows seen recently.
CREATE TABLE worker_presence (
  owner      TEXT PRIMARY KEY,
  started_at BIGINT NOT NULL,
  seen_at    BIGINT NOT NULL
);
CREATE INDEX worker_presence_by_seen ON worker_presence (seen_at);
