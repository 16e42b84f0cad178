/** JSON shapes of the audit and review routes (docs/PROTOCOL.md §7-§9). */
import { type Static, Type } from '@sinclair/typebox';
import { NullableString, StringEnum } from './common.js';
import { IdentityView } from './identities.js';
import { DelegationView } from './delegations.js';
import { LeaseRecord } from './leases.js';

export const AUDIT_OUTCOMES = ['success', 'denied', 'failure'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];
export const MAX_AUDIT_LIMIT = 1000;
/** RFC 3339 date-time with a zone: what the `since`/`until` filters take. */
export const RFC3339_PATTERN = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:\\d{2})$';

/** The audit filters as a query string: admin and review routes alike. */
export const AuditListQuery = Type.Object(
  {
    identity: Type.Optional(Type.String({ maxLength: 256 })),
    actor: Type.Optional(Type.String({ maxLength: 256 })),
    lease: Type.Optional(Type.String({ maxLength: 128 })),
    backend: Type.Optional(Type.String({ maxLength: 63 })),
    /** the subject a delegation chain acts for: `details.act.sub` (docs/PROTOCOL.md §13.5) */
    on_behalf_of: Type.Optional(Type.String({ maxLength: 256 })),
    action: Type.Optional(Type.String({ maxLength: 128 })),
    outcome: Type.Optional(StringEnum(AUDIT_OUTCOMES)),
    since: Type.Optional(Type.String({ pattern: RFC3339_PATTERN })),
    until: Type.Optional(Type.String({ pattern: RFC3339_PATTERN })),
    after: Type.Optional(Type.Integer({ minimum: 0 })),
    before: Type.Optional(Type.Integer({ minimum: 1 })),
    order: Type.Optional(StringEnum(['asc', 'desc'] as const)),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_AUDIT_LIMIT })),
  },
  { additionalProperties: false },
);
export type AuditListQuery = Static<typeof AuditListQuery>;

/** An audit event (docs/PROTOCOL.md §8.1, `at` as RFC 3339); review routes add the two addresses and proof_withheld_until. */
export const AuditEvent = Type.Object({
  seq: Type.Optional(Type.Integer()),
  at: Type.Optional(Type.String()),
  actor: Type.Optional(NullableString),
  action: Type.Optional(Type.String()),
  outcome: Type.Optional(Type.String()),
  identity_id: Type.Optional(NullableString),
  reason: Type.Optional(NullableString),
  details: Type.Optional(Type.Unsafe<Record<string, unknown>>({ type: 'object', additionalProperties: true })),
  proof: Type.Optional(NullableString),
  prev_hash: Type.Optional(Type.String()),
  hash: Type.Optional(Type.String()),
  actor_address: Type.Optional(NullableString),
  identity_address: Type.Optional(NullableString),
  proof_withheld_until: Type.Optional(NullableString),
});
export type AuditEvent = Static<typeof AuditEvent>;

export const AuditEventList = Type.Object({ events: Type.Array(AuditEvent) });
export type AuditEventList = Static<typeof AuditEventList>;

/** `GET /v1/admin/audit/export` range: JSON Lines of the records from..to. */
export const AuditExportQuery = Type.Object(
  { from: Type.Optional(Type.Integer({ minimum: 1 })), to: Type.Optional(Type.Integer({ minimum: 1 })) },
  { additionalProperties: false },
);
export type AuditExportQuery = Static<typeof AuditExportQuery>;

/** `POST /v1/review/sessions` (empty body): a one-time login link for the review page. */
export const ReviewSessionRequest = Type.Object({}, { additionalProperties: false });
export const ReviewSession = Type.Object({ login_url: Type.String(), expires_at: Type.String() });
export type ReviewSession = Static<typeof ReviewSession>;

/** `GET /v1/review/identities/:address/timeline`. */
export const IdentityTimeline = Type.Object({
  identity: IdentityView,
  leases: Type.Array(LeaseRecord),
  /** delegations the identity gave and received (docs/PROTOCOL.md §12) */
  delegations: Type.Object({ given: Type.Array(DelegationView), received: Type.Array(DelegationView) }),
  events: Type.Array(AuditEvent),
  truncated: Type.Boolean(),
});
export type IdentityTimeline = Static<typeof IdentityTimeline>;

/** `GET /v1/review/chain`: the audit chain verified from `from` to `to`, and the first problem found. */
export const ChainStatus = Type.Object({
  ok: Type.Boolean(),
  from: Type.Integer(),
  to: Type.Integer(),
  head: Type.Object({ seq: Type.Optional(Type.Integer()), hash: Type.Optional(Type.String()) }),
  events: Type.Integer(),
  checkpoints: Type.Integer(),
  proofs: Type.Integer(),
  last_checkpoint: Type.Unsafe<{ seq?: number; at?: string } | null>({ type: ['object', 'null'], properties: { seq: { type: 'integer' }, at: { type: 'string' } } }),
  problem: Type.Unsafe<{ seq?: number; code?: string; message?: string } | null>({
    type: ['object', 'null'],
    properties: { seq: { type: 'integer' }, code: { type: 'string' }, message: { type: 'string' } },
  }),
  checked_at: Type.String(),
});
export type ChainStatus = Static<typeof ChainStatus>;
