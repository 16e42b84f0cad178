/**
 * JSON shapes of delegations (docs/PROTOCOL.md §12): an agent hands part of its lease authority to
 * another agent; every lease under a chain names it in RFC 8693 `act` form.
 */
import { type Static, Type } from '@sinclair/typebox';
import { NullableString, StringEnum } from './common.js';
import { Address } from './identities.js';
import { GrantConstraints } from './backends.js';
import { BackendName, DelegationId, RoleName, TtlSeconds } from './leases.js';

/** `POST /v1/delegations`: the request body is kept, with its proof, as the delegator's evidence. */
export const DelegationRequest = Type.Object(
  {
    /** the sub-agent's address */
    delegatee: Address,
    backend: BackendName,
    role: RoleName,
    /** at least as tight as the delegator's; left out: the delegator's are inherited */
    constraints: Type.Optional(GrantConstraints),
    ttl_seconds: TtlSeconds,
    purpose: Type.String({ minLength: 1, maxLength: 1000 }),
    /** the delegation the delegator received and delegates from; default: its own grant, else the one delegation that applies */
    parent: Type.Optional(DelegationId),
  },
  { additionalProperties: false },
);
export type DelegationRequest = Static<typeof DelegationRequest>;

export const DelegationStatus = StringEnum(['active', 'revoked'] as const);

/** A delegation as its delegator, delegatee and admins see it. */
export const DelegationView = Type.Object({
  delegation_id: Type.String(),
  parent_id: NullableString,
  root_kind: StringEnum(['agent', 'user'] as const),
  delegator_identity_id: NullableString,
  /** the delegator's address; null for a user */
  delegator: NullableString,
  /** a user delegator: {iss, sub, claims} */
  delegator_user: Type.Union([Type.Object({ iss: Type.String(), sub: Type.String(), claims: Type.Record(Type.String(), Type.Unknown()) }), Type.Null()]),
  delegatee_identity_id: Type.String(),
  delegatee: NullableString,
  backend: Type.String(),
  role: Type.String(),
  constraints: Type.Record(Type.String(), Type.String()),
  purpose: Type.String(),
  depth: Type.Integer(),
  created_at: Type.String(),
  expires_at: Type.String(),
  status: DelegationStatus,
  revoked_at: NullableString,
  revoked_by: NullableString,
  revoked_reason: NullableString,
});
export type DelegationView = Static<typeof DelegationView>;

/** `GET /v1/delegations/:id`: the delegation, its chain (root first) and the delegator's stored evidence. */
export const DelegationDetail = Type.Object({
  delegation: DelegationView,
  chain: Type.Array(DelegationView),
  evidence: Type.Unknown(),
});
export type DelegationDetail = Static<typeof DelegationDetail>;

export const DelegationIdParams = Type.Object({ id: DelegationId });
export type DelegationIdParams = Static<typeof DelegationIdParams>;

/** `GET /v1/delegations` (the caller's given and received) and `GET /v1/admin/delegations`. */
export const DelegationListQuery = Type.Object(
  { delegator: Type.Optional(Address), delegatee: Type.Optional(Address), status: Type.Optional(DelegationStatus) },
  { additionalProperties: false },
);
export type DelegationListQuery = Static<typeof DelegationListQuery>;

export const DelegationList = Type.Object({ delegations: Type.Array(DelegationView) });
export type DelegationList = Static<typeof DelegationList>;

/** `POST /v1/delegations/:id/revoke` (a delegator or delegatee in the chain, or an admin). */
export const RevokeDelegationRequest = Type.Object({ reason: Type.String({ minLength: 1, maxLength: 1000 }) }, { additionalProperties: false });
export type RevokeDelegationRequest = Static<typeof RevokeDelegationRequest>;

/** How many delegations the revocation cut (the one named and those below it) and the leases revoked through them. */
export const RevokeDelegationResponse = Type.Object({
  delegation_id: Type.String(),
  delegations_revoked: Type.Integer(),
  leases: Type.Object({ revoked: Type.Integer(), pending: Type.Integer() }),
});
export type RevokeDelegationResponse = Static<typeof RevokeDelegationResponse>;
