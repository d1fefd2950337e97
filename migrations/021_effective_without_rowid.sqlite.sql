-- The read model as a WITHOUT ROWID table (SQLite only; docs/adr/0020-*): its primary key becomes the
-- table's own B-tree, so an inserted row updates two B-trees (the table, effective_by_group) instead
-- of three (the rowid table, the primary-key index, effective_by_group), and a check's probe reads
-- the row from the primary key without a second lookup. Nothing reads the rowid of this table.
-- SQLite cannot change a table's storage in place: the table is rebuilt (create, copy, drop, rename)
-- in this migration's transaction, and its index and the delivery diff triggers of
-- 007_delivery.sqlite.sql, which the drop removes, are recreated unchanged.
CREATE TABLE effective_assignments_rebuilt (
  org_id        TEXT NOT NULL,
  subject_id    TEXT NOT NULL,
  resource      TEXT NOT NULL,
  assignment_id TEXT NOT NULL,
  role          TEXT NOT NULL,
  group_id      TEXT,
  PRIMARY KEY (org_id, subject_id, resource, assignment_id)
) WITHOUT ROWID;
INSERT INTO effective_assignments_rebuilt (org_id, subject_id, resource, assignment_id, role, group_id)
SELECT org_id, subject_id, resource, assignment_id, role, group_id FROM effective_assignments ORDER BY org_id, subject_id, resource, assignment_id;
DROP TABLE effective_assignments;
ALTER TABLE effective_assignments_rebuilt RENAME TO effective_assignments;
CREATE INDEX effective_by_group ON effective_assignments (org_id, group_id, subject_id);
CREATE TRIGGER effective_diff_insert AFTER INSERT ON effective_assignments
WHEN EXISTS (SELECT 1 FROM event_streams WHERE org_id = NEW.org_id)
BEGIN
  INSERT INTO effective_diff (org_id, subject_id, role, resource, op) VALUES (NEW.org_id, NEW.subject_id, NEW.role, NEW.resource, 1);
END;
CREATE TRIGGER effective_diff_delete AFTER DELETE ON effective_assignments
WHEN EXISTS (SELECT 1 FROM event_streams WHERE org_id = OLD.org_id)
BEGIN
  INSERT INTO effective_diff (org_id, subject_id, role, resource, op) VALUES (OLD.org_id, OLD.subject_id, OLD.role, OLD.resource, -1);
END;
