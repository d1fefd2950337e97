-- A write's locks and the organization's state it decides on, in one round trip
-- (docs/adr/0026-write-round-trips.md). The function takes the write locks of
-- migrations/018_write_locks.postgres.sql, then reads the organization's revision and propagation
-- policy. It is VOLATILE: under READ COMMITTED each statement it runs takes a fresh snapshot, so
-- the read after the wait sees every change committed while the locks were waited for (the calling
-- statement's own snapshot, taken before the wait, reads nothing).
CREATE FUNCTION lockstep_lock_frame(org TEXT, subjects TEXT[])
RETURNS TABLE (revision BIGINT, policy TEXT) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM lockstep_lock(org, subjects);
  RETURN QUERY SELECT o.revision, p.policy FROM organizations o LEFT JOIN propagation_policies p ON p.org_id = o.id WHERE o.id = org;
END $$;
