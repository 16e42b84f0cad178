/** JSON shapes of the admin's backend and grant routes. */
import { type Static, Type } from '@sinclair/typebox';
import { StringMap } from './common.js';
import { ATTRIBUTE_KEY_PATTERN, Address } from './identities.js';
import { BackendName, RoleName, TtlSeconds } from './leases.js';
import { RequiredClaims } from './trust.js';

export const BackendNameParams = Type.Object({ name: BackendName });
export type BackendNameParams = Static<typeof BackendNameParams>;

/** Never the root secret: the schema has no field that could carry it. */
export const BackendView = Type.Object({ name: Type.String(), type: Type.String(), roles: Type.Array(Type.String()), created_at: Type.String() });
export type BackendView = Static<typeof BackendView>;

export const BackendList = Type.Object({ backends: Type.Array(BackendView) });
export type BackendList = Static<typeof BackendList>;

export const BackendRemoved = Type.Object({ name: Type.String(), removed: Type.Boolean() });
export type BackendRemoved = Static<typeof BackendRemoved>;

/** An address, or `attr:<key>=<value>` naming every identity with that attribute. */
export const GrantSubject = Type.Union([Address, Type.String({ pattern: `^attr:${ATTRIBUTE_KEY_PATTERN.slice(1, -1)}=.{0,256}$` })]);

/** Scope constraints of proxied backends (docs/PROTOCOL.md §9.3): string values, lists comma-separated. */
export const GrantConstraints = StringMap({ maxProperties: 16, propertyNames: { pattern: '^[a-z][a-z0-9_]{0,31}$' }, maxLength: 1024 });

/** `POST /v1/admin/grants`. */
export const GrantRequest = Type.Object(
  {
    subject: GrantSubject,
    backend: BackendName,
    role: RoleName,
    max_ttl_seconds: TtlSeconds,
    default_ttl_seconds: Type.Optional(TtlSeconds),
    constraints: Type.Optional(GrantConstraints),
    /** Leases must act for a user whose token carried these claims (docs/PROTOCOL.md §13.4); list claims must contain the value. */
    required_user_claims: Type.Optional(RequiredClaims),
  },
  { additionalProperties: false },
);
export type GrantRequest = Static<typeof GrantRequest>;

export const GrantView = Type.Object({
  grant_id: Type.String(),
  subject: Type.String(),
  backend: Type.String(),
  role: Type.String(),
  max_ttl_seconds: Type.Integer(),
  default_ttl_seconds: Type.Integer(),
  /** e.g. {"max_amount": "5000"}. */
  constraints: GrantConstraints,
  required_user_claims: RequiredClaims,
  created_at: Type.String(),
});
export type GrantView = Static<typeof GrantView>;

export const GrantListQuery = Type.Object({ backend: Type.Optional(Type.String()), subject: Type.Optional(Type.String()) }, { additionalProperties: false });
export type GrantListQuery = Static<typeof GrantListQuery>;

export const GrantList = Type.Object({ grants: Type.Array(GrantView) });
export type GrantList = Static<typeof GrantList>;

export const GrantIdParams = Type.Object({ id: Type.String({ maxLength: 128 }) });
export type GrantIdParams = Static<typeof GrantIdParams>;

export const GrantRevoked = Type.Object({ grant_id: Type.String(), revoked: Type.Boolean() });
export type GrantRevoked = Static<typeof GrantRevoked>;
