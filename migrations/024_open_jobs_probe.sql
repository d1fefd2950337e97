-- "Has the organization an open job?" (src/propagation/queue.ts `openJobProbe`), asked by every
-- membership write and group delete under its locks: jobs_open (migration 013) is rebuilt on the
-- expression `org_id || ''`, which the probe compares and no other index holds, so no other index
-- of `jobs` can be planned for it. On the plain column, PostgreSQL — with the queue's statistics
-- from when it was small (ANALYZE at load, then hundreds of jobs a second) — probed jobs_by_scope
-- (org_id, scope, state) and walked every job of the organization, done ones included: 2.3–4.3 ms
-- a write at 5,000 done jobs, 10–14 ms at 20,000 (docs/adr/0027-open-jobs-probe.md).
DROP INDEX jobs_open;
CREATE INDEX jobs_open ON jobs ((org_id || '')) WHERE state <> 'done';
