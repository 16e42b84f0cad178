import type { ActClaim, LeaseCredential, LeaseResponse, PostgresCredential, RenewResponse } from './wire/leases.js';

/** A lease on a backend credential, as the SDK returns it. */
export interface Lease<C extends LeaseCredential = LeaseCredential> {
  readonly id: string;
  readonly backend: string;
  /** postgres, stripe, openai, http, openai-admin: what shape `credential` has. */
  readonly backendType: string;
  readonly role: string;
  readonly issuedAt: Date;
  readonly expiresAt: Date;
  /** False once the lease cannot be extended (its grant's max TTL is reached). */
  readonly renewable: boolean;
  /** The delegation the lease was issued under, and its chain (RFC 8693 `act`); null under the caller's own grant. */
  readonly delegationId: string | null;
  readonly act: ActClaim | null;
  readonly credential: C;
}

export interface Renewal {
  readonly leaseId: string;
  readonly expiresAt: Date;
  readonly renewable: boolean;
}

export function leaseFromWire<C extends LeaseCredential>(wire: LeaseResponse<C>): Lease<C> {
  return {
    id: wire.lease_id,
    backend: wire.backend,
    backendType: wire.backend_type,
    role: wire.role,
    issuedAt: new Date(wire.issued_at),
    expiresAt: new Date(wire.expires_at),
    renewable: wire.renewable,
    delegationId: wire.delegation_id,
    act: wire.act,
    credential: wire.credential,
  };
}

export function renewalFromWire(wire: RenewResponse): Renewal {
  return { leaseId: wire.lease_id, expiresAt: new Date(wire.expires_at), renewable: wire.renewable };
}

export function isPostgresCredential(credential: LeaseCredential): credential is PostgresCredential {
  const c = credential as Partial<Record<keyof PostgresCredential, unknown>>;
  return (
    typeof c.host === 'string' &&
    typeof c.port === 'number' &&
    typeof c.database === 'string' &&
    typeof c.username === 'string' &&
    typeof c.password === 'string'
  );
}
