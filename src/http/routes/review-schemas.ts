import { AUDIT_OUTCOMES, MAX_AUDIT_LIMIT, RFC3339_PATTERN } from '../../review/audit-filter.js';

const nullableString = { type: ['string', 'null'] } as const;

/** The audit filters (src/review/audit-filter.ts) as a query string: admin and review routes alike. */
export const auditQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    identity: { type: 'string', maxLength: 256 },
    actor: { type: 'string', maxLength: 256 },
    lease: { type: 'string', maxLength: 128 },
    backend: { type: 'string', maxLength: 63 },
    action: { type: 'string', maxLength: 128 },
    outcome: { type: 'string', enum: AUDIT_OUTCOMES },
    since: { type: 'string', pattern: RFC3339_PATTERN },
    until: { type: 'string', pattern: RFC3339_PATTERN },
    after: { type: 'integer', minimum: 0 },
    before: { type: 'integer', minimum: 1 },
    order: { type: 'string', enum: ['asc', 'desc'] },
    limit: { type: 'integer', minimum: 1, maximum: MAX_AUDIT_LIMIT },
  },
} as const;

/** An audit event (docs/PROTOCOL.md §8.1, `at` as RFC 3339); review routes add the two addresses and proof_withheld_until. */
export const auditEventSchema = {
  type: 'object',
  properties: {
    seq: { type: 'integer' },
    at: { type: 'string' },
    actor: nullableString,
    action: { type: 'string' },
    outcome: { type: 'string' },
    identity_id: nullableString,
    reason: nullableString,
    details: { type: 'object', additionalProperties: true },
    proof: nullableString,
    prev_hash: { type: 'string' },
    hash: { type: 'string' },
    actor_address: nullableString,
    identity_address: nullableString,
    proof_withheld_until: nullableString,
  },
} as const;

export const auditEventsSchema = { type: 'object', required: ['events'], properties: { events: { type: 'array', items: auditEventSchema } } } as const;
