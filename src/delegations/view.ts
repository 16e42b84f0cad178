import type { DelegationView } from '@tessera-broker/sdk/wire';
import type { Delegation } from '../store/repositories/delegations.js';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The JSON view of a delegation (docs/PROTOCOL.md §12); `addresses` maps identity ids to addresses. */
export function delegationView(delegation: Delegation, addresses: ReadonlyMap<string, string>): DelegationView {
  return {
    delegation_id: delegation.id,
    parent_id: delegation.parentId,
    root_kind: delegation.rootKind,
    delegator_identity_id: delegation.delegatorIdentityId,
    delegator: delegation.delegatorIdentityId === null ? null : (addresses.get(delegation.delegatorIdentityId) ?? null),
    delegator_user: delegation.delegatorUser === null ? null : { ...delegation.delegatorUser, claims: { ...delegation.delegatorUser.claims } },
    delegatee_identity_id: delegation.delegateeIdentityId,
    delegatee: addresses.get(delegation.delegateeIdentityId) ?? null,
    backend: delegation.backend,
    role: delegation.role,
    constraints: { ...delegation.constraints },
    purpose: delegation.purpose,
    depth: delegation.depth,
    created_at: iso(delegation.createdAt)!,
    expires_at: iso(delegation.expiresAt)!,
    status: delegation.status,
    revoked_at: iso(delegation.revokedAt),
    revoked_by: delegation.revokedBy,
    revoked_reason: delegation.revokedReason,
  };
}
