/** Schema of POST /v1/apply: a policy file applied in one transaction (docs/policy-file.md). */
import { OBJECT_KINDS } from '../../policy-file/apply.ts';
import { bearer, NAME_PATTERN, writeErrorResponses } from './common.ts';

const counts = {
  type: 'object',
  required: ['created', 'updated', 'unchanged'],
  properties: { created: { type: 'integer' }, updated: { type: 'integer' }, unchanged: { type: 'integer' } },
} as const;

export const applyPolicy = {
  tags: ['policy file'],
  summary:
    'Apply a policy file (its YAML text) in one transaction: every write commits or none does; with dryRun, rolled back and reported. ' +
    'A write key may apply a file that names only its own organization, and may not create or rename it',
  security: bearer,
  body: {
    type: 'object',
    required: ['policy'],
    additionalProperties: false,
    properties: {
      policy: { type: 'string', minLength: 1, description: 'the policy file, YAML (or JSON) text as lockstep apply -f reads it' },
      source: { type: 'string', maxLength: 256, pattern: NAME_PATTERN, description: 'the file name, for messages (default "policy file")', examples: ['acme.yaml'] },
      dryRun: { type: 'boolean', description: 'apply, report, and roll back: nothing is written' },
    },
    examples: [{ source: 'acme.yaml', policy: 'organizations:\n  acme:\n    name: Acme\n    permissions:\n      project.read: { risk: standard }\n', dryRun: true }],
  },
  response: {
    200: {
      description: 'committed (or, with dryRun, what would have been)',
      type: 'object',
      required: ['file', 'dryRun', 'writes', 'changed', 'pending', 'organizations'],
      properties: {
        file: { type: 'string' },
        dryRun: { type: 'boolean' },
        writes: { type: 'integer' },
        changed: { type: 'integer', description: 'writes that changed something' },
        pending: { type: 'integer', description: "changed writes whose propagation is pending: the server's workers run their jobs" },
        organizations: {
          type: 'array',
          items: {
            type: 'object',
            required: ['id', 'revision', 'counts'],
            properties: {
              id: { type: 'string' },
              revision: { type: 'integer', description: "the organization's revision after the apply: pass it as at_least_as_fresh" },
              counts: { type: 'object', required: [...OBJECT_KINDS], properties: Object.fromEntries(OBJECT_KINDS.map((k) => [k, counts])) },
            },
          },
        },
      },
    },
    ...writeErrorResponses,
  },
};
