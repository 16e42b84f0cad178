import type { IdentityView } from '@tessera-broker/sdk/wire';
import { base64url } from '../crypto/encoding.js';
import type { IdentityTable } from '../store/schema.js';

export type IdentityRole = IdentityTable['role'];
export type IdentityStatus = IdentityTable['status'];

export interface Identity {
  /** RFC 7638 thumbprint of the initial public key: stays the id when the key rotates. */
  readonly id: string;
  readonly address: string;
  readonly role: IdentityRole;
  readonly status: IdentityStatus;
  /** The current key (identity_keys holds every key the identity has had). */
  readonly publicKey: Uint8Array;
  readonly keyUri: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly createdAt: number;
  readonly enrolledAt: number | null;
  readonly revokedAt: number | null;
  readonly revokedBy: string | null;
  readonly revocationReason: string | null;
}

/**
 * One of an identity's keys (src/store/repositories/identity-keys.ts). Proofs name the key that
 * signed them (`kid` = its thumbprint); the first key's thumbprint is the identity id for good.
 */
export interface IdentityKey {
  readonly keyId: string;
  readonly identityId: string;
  readonly publicKey: Uint8Array;
  readonly keyUri: string;
  readonly createdAt: number;
  /** Superseded keys: proofs signed after this instant are refused (`key_retired`). Null for the current key. */
  readonly notAfter: number | null;
  readonly retiredAt: number | null;
}

/** Whether a proof signed by `key` at `now` (epoch ms) is still acceptable. */
export const keyAcceptsAt = (key: IdentityKey, now: number): boolean => key.notAfter === null || now < key.notAfter;

/** The JSON view of an identity in API responses (never includes key material beyond the public key). */
export function identityView(identity: Identity): IdentityView {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    identity_id: identity.id,
    address: identity.address,
    role: identity.role,
    status: identity.status,
    public_key: base64url.encode(identity.publicKey),
    key_uri: identity.keyUri,
    attributes: identity.attributes,
    created_at: new Date(identity.createdAt).toISOString(),
    enrolled_at: iso(identity.enrolledAt),
    revoked_at: iso(identity.revokedAt),
    revoked_by: identity.revokedBy,
    revocation_reason: identity.revocationReason,
  };
}

export type { IdentityView };

