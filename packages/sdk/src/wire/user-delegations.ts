/** JSON shapes of user delegations: an agent acting for a user (docs/PROTOCOL.md §13.3). */
import { type Static, Type } from '@sinclair/typebox';
import { GrantConstraints } from './backends.js';
import { BackendName, RoleName, TtlSeconds } from './leases.js';

/** `POST /v1/delegations/user`: the user's token and what the agent asks to do for that user. */
export const UserDelegationRequest = Type.Object(
  {
    /** the user's ID token or JWT access token; the broker keeps only its SHA-256 and claims */
    token: Type.String({ minLength: 1, maxLength: 16 * 1024 }),
    backend: BackendName,
    role: RoleName,
    /** at least as tight as the agent's grant; left out, the grant's are inherited */
    constraints: Type.Optional(GrantConstraints),
    /** capped by the token's exp */
    ttl_seconds: TtlSeconds,
    purpose: Type.String({ minLength: 1, maxLength: 512 }),
  },
  { additionalProperties: false },
);
export type UserDelegationRequest = Static<typeof UserDelegationRequest>;

/** The user at a chain's root: the token's issuer and subject. */
export const ActingFor = Type.Object({ iss: Type.String(), sub: Type.String() });
export type ActingFor = Static<typeof ActingFor>;

export const UserDelegationView = Type.Object({
  delegation_id: Type.String(),
  acting_for: ActingFor,
  /** the agent's address */
  delegatee: Type.String(),
  backend: Type.String(),
  role: Type.String(),
  constraints: GrantConstraints,
  purpose: Type.String(),
  expires_at: Type.String(),
  /** SHA-256 (base64url) of the user's token, as the audit log records it */
  token_sha256: Type.String(),
});
export type UserDelegationView = Static<typeof UserDelegationView>;
