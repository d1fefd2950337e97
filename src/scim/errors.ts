/**
 * SCIM protocol errors (RFC 7644 §3.12). They carry the HTTP status and `scimType` themselves: the
 * SCIM edge is the one place that renders them, as `urn:ietf:params:scim:api:messages:2.0:Error`
 * bodies with the status as a string.
 */
export const SCIM_ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

export type ScimType =
  | 'invalidFilter'
  | 'tooMany'
  | 'uniqueness'
  | 'mutability'
  | 'invalidSyntax'
  | 'invalidPath'
  | 'noTarget'
  | 'invalidValue'
  | 'invalidVers'
  | 'sensitive';

export class ScimError extends Error {
  override readonly name = 'ScimError';
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 412 | 413 | 415 | 429 | 500 | 501 | 503,
    message: string,
    readonly scimType?: ScimType,
  ) {
    super(message);
  }
}

export const badRequest = (scimType: ScimType, message: string) => new ScimError(400, message, scimType);

export interface ScimErrorBody {
  schemas: [typeof SCIM_ERROR_SCHEMA];
  status: string;
  scimType?: ScimType;
  detail: string;
}

export function scimErrorBody(status: number, detail: string, scimType?: ScimType): ScimErrorBody {
  return { schemas: [SCIM_ERROR_SCHEMA], status: String(status), ...(scimType ? { scimType } : {}), detail };
}
