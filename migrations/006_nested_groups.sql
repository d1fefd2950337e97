-- Nested groups and time-bound access.
-- A group may be a member of a group (group_members: member_id is nested in group_id). The graph is
-- acyclic and no chain is longer than 16 groups (enforced by the write side, src/domain/groups.ts).
-- Memberships, nested edges and assignments may carry expires_at (epoch ms): from that instant they
-- derive nothing for a verified check; the expiry job then deletes them, one change-log entry each.

ALTER TABLE memberships ADD COLUMN expires_at BIGINT;
ALTER TABLE assignments ADD COLUMN expires_at BIGINT;

CREATE TABLE group_members (
  org_id     TEXT NOT NULL,
  group_id   TEXT NOT NULL,
  member_id  TEXT NOT NULL,
  expires_at BIGINT,
  PRIMARY KEY (org_id, group_id, member_id),
  FOREIGN KEY (org_id, group_id) REFERENCES groups (org_id, id),
  FOREIGN KEY (org_id, member_id) REFERENCES groups (org_id, id)
);
CREATE INDEX group_members_by_member ON group_members (org_id, member_id, group_id);

-- The closure of group_members, reflexive, counted: (ancestor, descendant) with the number of
-- distinct paths between them (1 for a group and itself), maintained in the edge write's transaction
-- (src/derivation/closure.ts). Structure only: it ignores expiry. Derivation joins it; a check's
-- proof of a path walks group_members instead, comparing expiry with the clock (docs/adr/0012-*).
CREATE TABLE group_closure (
  org_id        TEXT NOT NULL,
  ancestor_id   TEXT NOT NULL,
  descendant_id TEXT NOT NULL,
  paths         BIGINT NOT NULL,
  PRIMARY KEY (org_id, ancestor_id, descendant_id)
);
CREATE INDEX group_closure_by_descendant ON group_closure (org_id, descendant_id, ancestor_id);
INSERT INTO group_closure (org_id, ancestor_id, descendant_id, paths) SELECT org_id, id, id, 1 FROM groups;

-- What the expiry job looks for.
CREATE INDEX memberships_expiring ON memberships (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX group_members_expiring ON group_members (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX assignments_expiring ON assignments (expires_at) WHERE expires_at IS NOT NULL;

-- The ad-hoc view follows the rule: a group assignment reaches every member of the group's
-- descendants (one row per subject and assignment, whatever the number of paths).
DROP VIEW desired_effective_assignments;
CREATE VIEW desired_effective_assignments AS
SELECT a.org_id, a.principal_id AS subject_id, a.id AS assignment_id, a.role, a.resource, CAST(NULL AS TEXT) AS group_id
  FROM assignments a
  JOIN subjects s ON s.org_id = a.org_id AND s.id = a.principal_id AND s.active = 1
 WHERE a.principal_type = 'subject'
UNION
SELECT a.org_id, m.subject_id, a.id, a.role, a.resource, a.principal_id
  FROM assignments a
  JOIN group_closure c ON c.org_id = a.org_id AND c.ancestor_id = a.principal_id
  JOIN memberships m ON m.org_id = c.org_id AND m.group_id = c.descendant_id
  JOIN subjects s ON s.org_id = m.org_id AND s.id = m.subject_id AND s.active = 1
 WHERE a.principal_type = 'group';
