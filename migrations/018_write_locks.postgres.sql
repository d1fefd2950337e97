-- The write locks of docs/adr/0017-subject-locks.md: transaction-scoped advisory locks, taken by one
-- statement before anything a write or a batch reads. An organization-wide change takes the
-- organization's lock exclusive; subject-scoped work takes it shared, then each subject's lock
-- exclusive in ascending key order (one order for every transaction: no cycle among them). The keys
-- hash the schema too, so two schemas of one database (tests, tenants) do not share locks. A hash
-- collision only adds serialization.
CREATE FUNCTION lockstep_org_key(org TEXT) RETURNS BIGINT LANGUAGE sql STABLE AS $$
  SELECT hashtextextended(current_schema() || E'\x1fo\x1f' || org, 0) $$;
CREATE FUNCTION lockstep_subject_key(org TEXT, subject TEXT) RETURNS BIGINT LANGUAGE sql STABLE AS $$
  SELECT hashtextextended(current_schema() || E'\x1fs\x1f' || org || E'\x1f' || subject, 0) $$;
CREATE FUNCTION lockstep_lock(org TEXT, subjects TEXT[]) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE k BIGINT; n INTEGER := 0;
BEGIN
  IF subjects IS NULL THEN
    PERFORM pg_advisory_xact_lock(lockstep_org_key(org));
    RETURN 0;
  END IF;
  PERFORM pg_advisory_xact_lock_shared(lockstep_org_key(org));
  FOR k IN SELECT DISTINCT lockstep_subject_key(org, s) AS key FROM unnest(subjects) s ORDER BY key LOOP
    PERFORM pg_advisory_xact_lock(k);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;
