import type { RevocationHandle } from '../backends/credential-backend.js';
import { TesseraError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import type { LeaseRow } from '../store/repositories/leases.js';
import type { LeaseState } from '../store/schema.js';

export type { LeaseRow };

/** States in which an upstream credential may still exist. */
export const LIVE_STATES: readonly LeaseState[] = ['pending', 'active', 'revocation-pending'];

/**
 * Only agents hold upstream credentials: an admin or reviewer key that leased could act upstream
 * beyond its role (a reviewer matching an `attr:` grant, say), whatever the grants say.
 */
export function leaseRoleRefusal(identity: Pick<Identity, 'role'>): TesseraError | null {
  return identity.role === 'agent' ? null : new TesseraError('role_cannot_lease', `A ${identity.role} identity cannot lease credentials.`);
}

export const revocationHandleOf = (row: LeaseRow): RevocationHandle => JSON.parse(row.revocation) as RevocationHandle;

export const isRenewable = (row: Pick<LeaseRow, 'state' | 'expires_at' | 'max_expires_at'>): boolean =>
  row.state === 'active' && row.expires_at < row.max_expires_at;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The JSON view of a lease (docs/PROTOCOL.md); never the credential. */
export function leaseView(row: LeaseRow, address: string | null) {
  return {
    lease_id: row.id,
    identity_id: row.identity_id,
    address,
    backend: row.backend,
    role: row.role,
    state: row.state,
    issued_at: iso(row.issued_at),
    expires_at: iso(row.expires_at),
    max_expires_at: iso(row.max_expires_at),
    renewable: isRenewable(row),
    revoked_at: iso(row.revoked_at),
    revoked_by: row.revoked_by,
    revocation_reason: row.revocation_reason,
    last_error: row.last_error,
    delegation_id: row.delegation_id,
    act: row.act === null ? null : (JSON.parse(row.act) as Record<string, unknown>),
  };
}

export const toIso = (ms: number): string => new Date(ms).toISOString();
