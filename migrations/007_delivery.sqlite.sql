-- Read-model diff for event recording (SQLite: row triggers), only for organizations with a stream.
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
