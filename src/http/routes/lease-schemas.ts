import { BACKEND_FACTORIES } from '../../backends/registry.js';
import { errorBodySchema } from '../plugins/error-handler.js';
import { errorResponses } from '../schemas.js';
import { LEASE_STATES } from '../../leases/lease.js';

const nullableString = { type: ['string', 'null'] } as const;

/** Errors of routes that talk to an upstream backend, on top of the usual ones. */
export const upstreamErrorResponses = { ...errorResponses, 502: errorBodySchema, 503: errorBodySchema } as const;

export const backendNameSchema = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' } as const;
export const roleNameSchema = { type: 'string', minLength: 1, maxLength: 63 } as const;
export const leaseIdParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 128 } } } as const;
export const ttlSecondsSchema = { type: 'integer', minimum: 1, maximum: 365 * 24 * 3600 } as const;

export const leaseViewSchema = {
  type: 'object',
  required: ['lease_id', 'identity_id', 'backend', 'role', 'state', 'issued_at', 'expires_at', 'max_expires_at', 'renewable'],
  properties: {
    lease_id: { type: 'string' },
    identity_id: { type: 'string' },
    address: nullableString,
    backend: { type: 'string' },
    role: { type: 'string' },
    state: { type: 'string', enum: LEASE_STATES },
    issued_at: { type: 'string' },
    expires_at: { type: 'string' },
    max_expires_at: { type: 'string' },
    renewable: { type: 'boolean' },
    revoked_at: nullableString,
    revoked_by: nullableString,
    revocation_reason: nullableString,
    last_error: nullableString,
  },
} as const;

/** Only the fields each backend type declares for its credential are ever serialised. */
export const credentialSchema = { anyOf: Object.values(BACKEND_FACTORIES).map((factory) => factory.credentialSchema) };

/** `failures` lists (the first 100 of) the leases left revocation-pending, with the upstream's reason. */
export const revocationCountsSchema = {
  type: 'object',
  required: ['revoked', 'pending', 'failures'],
  properties: {
    revoked: { type: 'integer' },
    pending: { type: 'integer' },
    failures: {
      type: 'array',
      items: {
        type: 'object',
        required: ['lease_id', 'backend', 'error'],
        properties: { lease_id: { type: 'string' }, backend: { type: 'string' }, error: { type: 'string' } },
      },
    },
  },
} as const;
