-- Read-model diff for event recording (PostgreSQL: statement triggers over transition tables, one
-- INSERT … SELECT per statement whatever its row count), only for organizations with a stream.
CREATE FUNCTION effective_diff_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO effective_diff (org_id, subject_id, role, resource, op)
  SELECT n.org_id, n.subject_id, n.role, n.resource, 1 FROM new_rows n
   WHERE EXISTS (SELECT 1 FROM event_streams s WHERE s.org_id = n.org_id);
  RETURN NULL;
END $$;
CREATE FUNCTION effective_diff_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO effective_diff (org_id, subject_id, role, resource, op)
  SELECT o.org_id, o.subject_id, o.role, o.resource, -1 FROM old_rows o
   WHERE EXISTS (SELECT 1 FROM event_streams s WHERE s.org_id = o.org_id);
  RETURN NULL;
END $$;
CREATE TRIGGER effective_diff_insert AFTER INSERT ON effective_assignments
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION effective_diff_insert();
CREATE TRIGGER effective_diff_delete AFTER DELETE ON effective_assignments
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION effective_diff_delete();
