/**
 * JSON shapes of the lease routes, as the broker sends them: the route schemas of the broker and
 * the types of the SDK and CLI (which print them as they are).
 */
import { type Static, Type } from '@sinclair/typebox';
import { NullableString, StringEnum } from './common.js';
import { Address, IdentityView } from './identities.js';

/** `pending` from intent until the upstream credential exists (docs/PROTOCOL.md §5.2). */
export const LEASE_STATES = ['pending', 'active', 'expired', 'revoked', 'revocation-pending'] as const;
export const LeaseState = StringEnum(LEASE_STATES);
export type LeaseState = Static<typeof LeaseState>;

export const BackendName = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' });
export const RoleName = Type.String({ minLength: 1, maxLength: 63 });
export const LeaseId = Type.String({ maxLength: 128 });
/** The longest TTL any lease, grant or ticket may ask for: 365 days. */
export const MAX_TTL_SECONDS = 365 * 24 * 3600;
export const TtlSeconds = Type.Integer({ minimum: 1, maximum: MAX_TTL_SECONDS });

export const LeaseIdParams = Type.Object({ id: LeaseId });
export type LeaseIdParams = Static<typeof LeaseIdParams>;

export const PostgresCredential = Type.Object(
  { host: Type.String(), port: Type.Integer(), database: Type.String(), username: Type.String(), password: Type.String() },
  { additionalProperties: false },
);
export type PostgresCredential = Static<typeof PostgresCredential>;

/** HTTP API backends: point the official SDK at base_url with api_key as its key. */
export const ApiCredential = Type.Object({ base_url: Type.String(), api_key: Type.String() }, { additionalProperties: false });
export type ApiCredential = Static<typeof ApiCredential>;

/** Only the fields each backend type declares for its credential are ever serialised. */
export const LeaseCredential = Type.Union([PostgresCredential, ApiCredential]);
/** A backend's credential: PostgreSQL's shape, or whatever another backend type returns. */
export type LeaseCredential = PostgresCredential | ApiCredential | Readonly<Record<string, unknown>>;

export const DelegationId = Type.String({ pattern: '^dlg_[A-Za-z0-9_-]{1,64}$' });

/**
 * A chain in RFC 8693 nested-`act` shape: `sub` (and for a user `iss`) is whom the chain acts for;
 * the outermost `act` is the current actor, each nested `act` the actor before it.
 */
export interface ActClaim {
  readonly sub: string;
  readonly iss?: string;
  readonly act?: ActClaim;
}
export const ActClaim = Type.Unsafe<ActClaim>({ type: 'object', additionalProperties: true, required: ['sub'], properties: { sub: { type: 'string' }, iss: { type: 'string' } } });
export const NullableActClaim = Type.Unsafe<ActClaim | null>({ anyOf: [ActClaim, { type: 'null' }] });

/** `POST /v1/leases`. */
export const LeaseRequest = Type.Object(
  {
    backend: BackendName,
    role: RoleName,
    ttl_seconds: Type.Optional(TtlSeconds),
    /** lease under this delegation (docs/PROTOCOL.md §12.3); default: the caller's own grant, else the one delegation that applies */
    delegation: Type.Optional(DelegationId),
  },
  { additionalProperties: false },
);
export type LeaseRequest = Static<typeof LeaseRequest>;

/** `POST /v1/leases` -> 201. */
export const LeaseResponse = Type.Object({
  lease_id: Type.String(),
  backend: Type.String(),
  /** postgres, stripe, openai, http, openai-admin: what shape `credential` has (a newer broker may add types) */
  backend_type: Type.String(),
  role: Type.String(),
  issued_at: Type.String(),
  expires_at: Type.String(),
  renewable: Type.Boolean(),
  /** the delegation the lease was issued under, and its chain; null for a lease under the caller's own grant */
  delegation_id: NullableString,
  act: NullableActClaim,
  credential: LeaseCredential,
});
export type LeaseResponse<C extends LeaseCredential = LeaseCredential> = Omit<Static<typeof LeaseResponse>, 'credential'> & { readonly credential: C };

/** `POST /v1/leases/:id/renew`. */
export const RenewRequest = Type.Object({ ttl_seconds: Type.Optional(TtlSeconds) }, { additionalProperties: false });
export type RenewRequest = Static<typeof RenewRequest>;

export const RenewResponse = Type.Object({ lease_id: Type.String(), expires_at: Type.String(), renewable: Type.Boolean() });
export type RenewResponse = Static<typeof RenewResponse>;

/** `DELETE /v1/leases/:id`; last_error: why the lease is left revocation-pending (the broker keeps retrying it). */
export const RevokeResponse = Type.Object({ lease_id: Type.String(), backend: Type.String(), state: LeaseState, last_error: NullableString });
export type RevokeResponse = Static<typeof RevokeResponse>;

/** A lease as the admin (and its owner, `GET /v1/leases/:id`) sees it: never the credential. */
export const LeaseRecord = Type.Object({
  lease_id: Type.String(),
  identity_id: Type.String(),
  address: NullableString,
  backend: Type.String(),
  role: Type.String(),
  state: LeaseState,
  issued_at: Type.String(),
  expires_at: Type.String(),
  max_expires_at: Type.String(),
  renewable: Type.Boolean(),
  revoked_at: NullableString,
  revoked_by: NullableString,
  revocation_reason: NullableString,
  last_error: NullableString,
  delegation_id: NullableString,
  act: NullableActClaim,
});
export type LeaseRecord = Static<typeof LeaseRecord>;

/** `GET /v1/admin/leases`. */
export const LeaseListQuery = Type.Object(
  { identity: Type.Optional(Type.String()), backend: Type.Optional(Type.String()), state: Type.Optional(LeaseState) },
  { additionalProperties: false },
);
export type LeaseListQuery = Static<typeof LeaseListQuery>;

export const LeaseList = Type.Object({ leases: Type.Array(LeaseRecord) });
export type LeaseList = Static<typeof LeaseList>;

/**
 * `POST /v1/admin/leases/revoke` and `/retry`, and the `leases` part of an identity revocation.
 * `failures` lists (the first 100 of) the leases left revocation-pending, with the upstream's reason.
 */
export const BulkRevokeResponse = Type.Object({
  revoked: Type.Integer(),
  /** Leases left revocation-pending; the broker keeps retrying them. */
  pending: Type.Integer(),
  failures: Type.Array(Type.Object({ lease_id: Type.String(), backend: Type.String(), error: Type.String() })),
});
export type BulkRevokeResponse = Static<typeof BulkRevokeResponse>;

/** `POST /v1/admin/leases/revoke`: an identity, a backend or both. */
export const BulkRevokeRequest = Type.Object(
  { identity: Type.Optional(Address), backend: Type.Optional(BackendName), reason: Type.String({ minLength: 1, maxLength: 1000 }) },
  { additionalProperties: false },
);
export type BulkRevokeRequest = Static<typeof BulkRevokeRequest>;

/** `POST /v1/admin/leases/retry`: one lease, a backend, or every revocation-pending lease. */
export const RetryRevocationsRequest = Type.Object({ lease: Type.Optional(LeaseId), backend: Type.Optional(BackendName) }, { additionalProperties: false });
export type RetryRevocationsRequest = Static<typeof RetryRevocationsRequest>;

/** `POST /v1/admin/identities/:address/revoke`: the identity is revoked first, then its live leases. */
export const RevokeIdentityResponse = Type.Object({
  identity: IdentityView,
  leases: BulkRevokeResponse,
  /** the delegations the identity gave or received, those below them, and the leases obtained through them (docs/PROTOCOL.md §12) */
  delegations: Type.Object({ revoked: Type.Integer(), leases: Type.Object({ revoked: Type.Integer(), pending: Type.Integer() }) }),
});
export type RevokeIdentityResponse = Static<typeof RevokeIdentityResponse>;
