-- Open jobs of an organization (anything not done: pending, running, retrying, or parked as
-- failed), for the membership writes' question "is the read model in step?" (src/policy/
-- membership-commands.ts): one probe of a small index, whatever the number of done jobs kept.
CREATE INDEX jobs_open ON jobs (org_id) WHERE state <> 'done';
