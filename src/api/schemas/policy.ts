/** Schemas of the policy write routes (and the object getters): validation and OpenAPI both. */
import {
  bearer,
  deleteHeaders,
  displayName,
  errorResponses,
  expiresAt,
  idParams,
  memberParams,
  nextCursor,
  orgParams,
  pageQuery,
  permissionSlug,
  principalRef,
  RESOURCE_REF_PATTERN,
  resourceParams,
  resourceRef,
  roleSlug,
  slugParams,
  writeErrorResponses,
  writeResult,
} from './common.ts';

/** A request body of these fields; `example` is the body /docs shows (and a test validates). */
const body = (properties: Record<string, unknown>, required: string[], example: Record<string, unknown>) =>
  ({ type: 'object', properties, required, additionalProperties: false, examples: [example] }) as const;

const write = (tag: string, summary: string, params: object, requestBody?: object) => ({
  tags: [tag],
  summary,
  security: bearer,
  params,
  ...(requestBody ? { body: requestBody } : {}),
  response: { 200: { description: 'committed (or already so)', ...writeResult }, ...writeErrorResponses },
});

const remove = (tag: string, summary: string, params: object) => ({
  tags: [tag],
  summary,
  security: bearer,
  params,
  response: {
    200: { description: 'deleted (or already absent); the revision and status are also in the Lockstep-Revision and Lockstep-Propagation headers', ...writeResult, headers: deleteHeaders },
    ...writeErrorResponses,
  },
});

export const putOrganization = write('organizations', 'Create or rename an organization (admin keys only)', orgParams, body({ name: displayName }, [], { name: 'Acme' }));
export const getOrganization = {
  tags: ['organizations'],
  summary: 'Read an organization and its current revision',
  security: bearer,
  params: orgParams,
  response: {
    200: {
      type: 'object',
      required: ['id', 'name', 'revision'],
      properties: { id: { type: 'string' }, name: { type: ['string', 'null'] }, revision: { type: 'integer' } },
    },
    ...errorResponses,
  },
};

export const listOrganizations = {
  tags: ['organizations'],
  summary: "The organizations this key may see: every one for an admin key, the key's own for the others (a dashboard's organization picker)",
  security: bearer,
  response: {
    200: {
      type: 'object',
      required: ['organizations', 'key'],
      properties: {
        organizations: {
          type: 'array',
          items: { type: 'object', required: ['id', 'name', 'revision'], properties: { id: { type: 'string' }, name: { type: ['string', 'null'] }, revision: { type: 'integer' } } },
        },
        key: {
          type: 'object',
          required: ['scope', 'org'],
          description: 'the key that asked: its scope, and its organization (null: an admin key of every organization)',
          properties: { scope: { type: 'string', enum: ['check', 'write', 'admin'] }, org: { type: ['string', 'null'] } },
        },
      },
      examples: [{ organizations: [{ id: 'acme', name: 'Acme', revision: 42 }], key: { scope: 'write', org: 'acme' } }],
    },
    ...errorResponses,
  },
};

export const putPermission = write(
  'permissions',
  'Create a permission or change its risk tier',
  slugParams(permissionSlug),
  body({ risk: { type: 'string', enum: ['standard', 'high', 'critical'] } }, ['risk'], { risk: 'critical' }),
);

export const putRole = write(
  'roles',
  "Create a role or replace its set of permissions (a policy change that fans out to every holder)",
  slugParams(roleSlug),
  body({ permissions: { type: 'array', items: permissionSlug, maxItems: 1000 } }, ['permissions'], { permissions: ['project.read', 'project.delete'] }),
);

export const putResource = write(
  'resources',
  'Create a resource or re-parent it',
  resourceParams,
  body({ parent: { anyOf: [{ type: 'string', pattern: RESOURCE_REF_PATTERN }, { type: 'null' }], description: "parent 'type:id', or null for a root", examples: ['workspace:platform'] } }, [], {
    parent: 'workspace:platform',
  }),
);
export const deleteResource = remove('resources', 'Delete a resource, its subtree and every assignment on them', resourceParams);

export const putSubject = write(
  'subjects',
  'Create a subject, or activate / deactivate it (kind cannot change)',
  idParams('subject'),
  body({ kind: { type: 'string', enum: ['user', 'service_account', 'agent'] }, active: { type: 'boolean' } }, ['kind'], { kind: 'user', active: true }),
);
export const deleteSubject = remove('subjects', 'Delete a subject, its memberships and direct assignments', idParams('subject'));
export const getSubject = {
  tags: ['subjects'],
  summary: 'Read a subject',
  security: bearer,
  params: idParams('subject'),
  response: {
    200: {
      type: 'object',
      required: ['id', 'kind', 'active'],
      properties: { id: { type: 'string' }, kind: { type: 'string' }, active: { type: 'boolean' } },
    },
    ...errorResponses,
  },
};

export const putGroup = write('groups', 'Create or rename a group', idParams('group'), body({ name: displayName }, [], { name: 'Engineering' }));
export const deleteGroup = remove('groups', 'Delete a group, its memberships and its assignments', idParams('group'));
export const putMember = write(
  'groups',
  "Add a subject (or, as 'group:ID', a nested group) to a group, optionally until expiresAt; again with another expiresAt changes it",
  memberParams,
  body({ expiresAt }, [], { expiresAt: '2026-12-31T17:00:00Z' }),
);
export const deleteMember = remove('groups', "Remove a subject (or 'group:ID') from a group", memberParams);
export const listMembers = {
  tags: ['groups'],
  summary: 'List the members of a group: subjects and nested groups, with their expiry, a page at a time (ordered by member)',
  security: bearer,
  params: idParams('group'),
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: { kind: { type: 'string', enum: ['subject', 'group'], description: 'only subjects, or only nested groups', examples: ['subject'] }, ...pageQuery(['subject:alice']) },
  },
  response: {
    200: {
      type: 'object',
      required: ['members', 'next'],
      properties: {
        next: nextCursor,
        members: {
          type: 'array',
          items: {
            type: 'object',
            required: ['member', 'expiresAt'],
            properties: { member: { type: 'string', description: "'subject:ID' or 'group:ID'" }, expiresAt: { type: ['string', 'null'] } },
          },
        },
      },
    },
    ...errorResponses,
  },
};

export const postAssignment = {
  tags: ['assignments'],
  summary: 'Assign a role on a resource to a subject or group (idempotent on the natural key)',
  security: bearer,
  params: orgParams,
  body: body({ principal: principalRef, role: roleSlug, resource: resourceRef, expiresAt }, ['principal', 'role', 'resource'], {
    principal: 'group:eng',
    role: 'editor',
    resource: 'workspace:platform',
  }),
  response: {
    ...Object.fromEntries(
      ([
        [201, 'created'],
        [200, 'the same (principal, role, resource) already existed; its id, nothing changed'],
      ] as const).map(([status, description]) => [
        status,
        { description, type: 'object', required: ['id', ...writeResult.required], properties: { id: { type: 'string' }, ...writeResult.properties } },
      ]),
    ),
    ...writeErrorResponses,
  },
};
export const deleteAssignment = remove('assignments', 'Delete an assignment', idParams('assignment'));
export const getAssignment = {
  tags: ['assignments'],
  summary: 'Read an assignment',
  security: bearer,
  params: idParams('assignment'),
  response: {
    200: {
      type: 'object',
      required: ['id', 'principal', 'role', 'resource', 'expiresAt'],
      properties: { id: { type: 'string' }, principal: { type: 'string' }, role: { type: 'string' }, resource: { type: 'string' }, expiresAt: { type: ['string', 'null'] } },
    },
    ...errorResponses,
  },
};
