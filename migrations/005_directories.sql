-- Directories: identity providers (Okta, Entra ID, any SCIM 2.0 client) that provision users and
-- groups into an organization through SCIM. A directory's users are subjects (kind user), its groups
-- are groups, its group members are memberships; the SCIM id is the subject's / group's id.

CREATE TABLE directories (
  id               TEXT PRIMARY KEY,
  org_id           TEXT NOT NULL REFERENCES organizations (id),
  name             TEXT NOT NULL,
  provider         TEXT NOT NULL CHECK (provider IN ('okta', 'entra', 'generic')),
  -- SHA-256 of the bearer token (lsd_<id>_<secret>); the token itself is shown once, never stored.
  token_hash       TEXT NOT NULL,
  token_created_at BIGINT NOT NULL,
  created_at       BIGINT NOT NULL,
  -- Request bookkeeping for GET …/directories: totals, the last request, recent errors.
  requests         BIGINT NOT NULL DEFAULT 0,
  errors           BIGINT NOT NULL DEFAULT 0,
  last_request_at  BIGINT,
  last_request     TEXT
);
CREATE INDEX directories_by_org ON directories (org_id, created_at);

-- The last errors a directory's requests got (kept bounded by the writer).
CREATE TABLE directory_errors (
  directory_id TEXT NOT NULL,
  at           BIGINT NOT NULL,
  request_id   TEXT NOT NULL,
  operation    TEXT NOT NULL,
  status       SMALLINT NOT NULL,
  scim_type    TEXT,
  detail       TEXT NOT NULL,
  PRIMARY KEY (directory_id, at, request_id)
);

-- The SCIM side of a directory-owned subject or group: the attributes Lockstep does not model
-- (names, emails, the enterprise extension…) as the JSON document the client sent, canonicalised.
-- (org_id, resource_type, id) is the ownership record: /v1 writes to an owned object are refused.
-- Members are not in the document: they are the memberships table.
CREATE TABLE scim_resources (
  org_id        TEXT NOT NULL,
  resource_type TEXT NOT NULL CHECK (resource_type IN ('User', 'Group')),
  id            TEXT NOT NULL,
  directory_id  TEXT NOT NULL REFERENCES directories (id),
  -- userName lower-cased (Users; unique case-insensitively within a directory) or displayName (Groups).
  name_key      TEXT NOT NULL,
  external_id   TEXT,
  document      TEXT NOT NULL,
  version       BIGINT NOT NULL,
  created_at    BIGINT NOT NULL,
  modified_at   BIGINT NOT NULL,
  PRIMARY KEY (org_id, resource_type, id)
);
CREATE UNIQUE INDEX scim_users_unique_name ON scim_resources (directory_id, name_key) WHERE resource_type = 'User';
-- Listing pages in creation order (ties by id): stable while resources are added.
CREATE INDEX scim_resources_by_directory ON scim_resources (directory_id, resource_type, created_at, id);
CREATE INDEX scim_resources_by_name ON scim_resources (directory_id, resource_type, name_key);
CREATE INDEX scim_resources_by_external_id ON scim_resources (directory_id, resource_type, external_id);
