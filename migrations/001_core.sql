-- Lockstep core schema: the policy (source of truth), the change log and the read model.
-- Portable DDL: runs unchanged on SQLite and PostgreSQL. Times are epoch milliseconds (BIGINT),
-- booleans are SMALLINT 0/1, risk tiers are ranks (1 standard, 2 high, 3 critical) so that
-- "the highest tier" is MAX().

CREATE TABLE organizations (
  id         TEXT PRIMARY KEY,
  name       TEXT,
  revision   BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL
);

CREATE TABLE permissions (
  org_id TEXT NOT NULL REFERENCES organizations (id),
  slug   TEXT NOT NULL,
  risk   SMALLINT NOT NULL CHECK (risk BETWEEN 1 AND 3),
  PRIMARY KEY (org_id, slug)
);

CREATE TABLE roles (
  org_id TEXT NOT NULL REFERENCES organizations (id),
  slug   TEXT NOT NULL,
  PRIMARY KEY (org_id, slug)
);

CREATE TABLE role_permissions (
  org_id     TEXT NOT NULL,
  role       TEXT NOT NULL,
  permission TEXT NOT NULL,
  PRIMARY KEY (org_id, role, permission),
  FOREIGN KEY (org_id, role) REFERENCES roles (org_id, slug),
  FOREIGN KEY (org_id, permission) REFERENCES permissions (org_id, slug)
);
CREATE INDEX role_permissions_by_permission ON role_permissions (org_id, permission, role);

-- ref is 'type:id'; the parent chain is acyclic and at most 32 deep (enforced by the write side).
CREATE TABLE resources (
  org_id TEXT NOT NULL REFERENCES organizations (id),
  ref    TEXT NOT NULL,
  parent TEXT,
  PRIMARY KEY (org_id, ref),
  FOREIGN KEY (org_id, parent) REFERENCES resources (org_id, ref)
);
CREATE INDEX resources_by_parent ON resources (org_id, parent);

CREATE TABLE subjects (
  org_id TEXT NOT NULL REFERENCES organizations (id),
  id     TEXT NOT NULL,
  kind   TEXT NOT NULL CHECK (kind IN ('user', 'service_account', 'agent')),
  active SMALLINT NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  PRIMARY KEY (org_id, id)
);

CREATE TABLE groups (
  org_id TEXT NOT NULL REFERENCES organizations (id),
  id     TEXT NOT NULL,
  name   TEXT,
  PRIMARY KEY (org_id, id)
);

CREATE TABLE memberships (
  org_id     TEXT NOT NULL,
  group_id   TEXT NOT NULL,
  subject_id TEXT NOT NULL,
  PRIMARY KEY (org_id, group_id, subject_id),
  FOREIGN KEY (org_id, group_id) REFERENCES groups (org_id, id),
  FOREIGN KEY (org_id, subject_id) REFERENCES subjects (org_id, id)
);
CREATE INDEX memberships_by_subject ON memberships (org_id, subject_id, group_id);

-- principal_type is 'subject' or 'group'; the principal's existence is checked by the write side
-- (a polymorphic reference cannot be a foreign key).
CREATE TABLE assignments (
  org_id         TEXT NOT NULL,
  id             TEXT NOT NULL,
  principal_type TEXT NOT NULL CHECK (principal_type IN ('subject', 'group')),
  principal_id   TEXT NOT NULL,
  role           TEXT NOT NULL,
  resource       TEXT NOT NULL,
  created_at     BIGINT NOT NULL,
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, principal_type, principal_id, role, resource),
  FOREIGN KEY (org_id, role) REFERENCES roles (org_id, slug),
  FOREIGN KEY (org_id, resource) REFERENCES resources (org_id, ref)
);
CREATE INDEX assignments_by_role ON assignments (org_id, role);
-- Source-of-truth checks probe (principal, resource) for each ancestor of the checked resource.
CREATE INDEX assignments_by_principal_resource ON assignments (org_id, principal_type, principal_id, resource);
CREATE INDEX assignments_by_resource ON assignments (org_id, resource);

-- The read model: one row per derivation of (subject, role, resource). (subject, assignment)
-- identifies a derivation; the resource sits in the key so that a check's probe — subject, then
-- each ancestor resource — is a primary-key range scan.
-- Only indexes that fill in subject order: a backfill inserts subject after subject, and an index
-- keyed by resource or assignment would take each row to a different page (docs/architecture.md,
-- "Storage", quotes the measurement; the benchmark's large-group scenario measures the backfill).
-- Derived data, so no foreign keys either; checks verify provenance against the tables above.
CREATE TABLE effective_assignments (
  org_id        TEXT NOT NULL,
  subject_id    TEXT NOT NULL,
  resource      TEXT NOT NULL,
  assignment_id TEXT NOT NULL,
  role          TEXT NOT NULL,
  group_id      TEXT,
  PRIMARY KEY (org_id, subject_id, resource, assignment_id)
);
CREATE INDEX effective_by_group ON effective_assignments (org_id, group_id, subject_id);

-- What the read model should hold, computed from the source tables. Writes insert from it, the
-- fully consistent check reads it, the drift audit diffs against it: one definition for all three.
CREATE VIEW desired_effective_assignments AS
SELECT a.org_id, a.principal_id AS subject_id, a.id AS assignment_id, a.role, a.resource, CAST(NULL AS TEXT) AS group_id
  FROM assignments a
  JOIN subjects s ON s.org_id = a.org_id AND s.id = a.principal_id AND s.active = 1
 WHERE a.principal_type = 'subject'
UNION ALL
SELECT a.org_id, m.subject_id, a.id, a.role, a.resource, m.group_id
  FROM assignments a
  JOIN memberships m ON m.org_id = a.org_id AND m.group_id = a.principal_id
  JOIN subjects s ON s.org_id = m.org_id AND s.id = m.subject_id AND s.active = 1
 WHERE a.principal_type = 'group';

-- The change log: one row per committed policy write; the audit log and the source of receipts.
CREATE TABLE changes (
  org_id       TEXT NOT NULL REFERENCES organizations (id),
  revision     BIGINT NOT NULL,
  kind         TEXT NOT NULL,
  direction    TEXT NOT NULL CHECK (direction IN ('grant', 'revoke', 'both', 'none')),
  tier         SMALLINT,
  mode         TEXT NOT NULL CHECK (mode IN ('sync', 'async')),
  actor        TEXT,
  request_id   TEXT,
  body         TEXT NOT NULL,
  decided_at   BIGINT NOT NULL,
  effective_at BIGINT,
  rows_added   BIGINT NOT NULL DEFAULT 0,
  rows_removed BIGINT NOT NULL DEFAULT 0,
  -- The propagation target: its SLO, and for an asynchronous change the job scope that carries it
  -- (effective_at is set when a job on that scope covering this revision completes).
  slo_ms       BIGINT,
  job_scope    TEXT,
  job_id       TEXT,
  PRIMARY KEY (org_id, revision)
);
CREATE INDEX changes_by_decided ON changes (org_id, decided_at);
CREATE INDEX changes_pending ON changes (org_id, job_scope, revision) WHERE effective_at IS NULL;

-- Bearer API keys, stored as SHA-256 hashes. org_id is NULL for admin keys.
CREATE TABLE api_keys (
  id         TEXT PRIMARY KEY,
  org_id     TEXT,
  scope      TEXT NOT NULL CHECK (scope IN ('admin', 'write', 'check')),
  name       TEXT,
  hash       TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT
);
