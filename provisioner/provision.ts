import { randomBytes } from 'node:crypto';
import { BrokerClient, BrokerRequestError } from '@tessera-broker/sdk';
import { base64url } from '../src/crypto/encoding.js';
import { TesseraError } from '../src/errors.js';
import type { IdentityView } from '../src/identity/identity.js';
import type { KeyStore, KeyStoreKind } from '../src/keys/key-store.js';
import { keyStoreKindOf } from '../src/keys/registry.js';
import type { RotateIdentityKeyResponse } from '@tessera-broker/sdk/wire';

export interface ProvisionRequest {
  readonly address: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly ticketTtlSeconds?: number;
  /** `reviewer`: may read everything (review page, audit) and change nothing; default `agent` */
  readonly role?: ProvisionRole;
}

export const PROVISION_ROLES = ['agent', 'reviewer'] as const;
export type ProvisionRole = (typeof PROVISION_ROLES)[number];

export interface TicketResponse {
  readonly identity_id: string;
  readonly address: string;
  readonly ticket: string;
  readonly ticket_expires_at: string;
}

export interface ProvisionResult extends TicketResponse {
  readonly key_uri: string;
  readonly public_key: string;
}

const identityPath = (address: string) => `/v1/admin/identities/${encodeURIComponent(address)}`;

/**
 * Provisions an agent: its primary Ed25519 key is generated inside `keyStore` (the private key never
 * leaves it), the identity is registered with the broker, and a one-time enrollment ticket is issued.
 */
export async function provisionAgent(admin: BrokerClient, keyStore: KeyStore, request: ProvisionRequest): Promise<ProvisionResult> {
  // Refuse before touching the key store, so a duplicate address leaves no stray key behind.
  try {
    await admin.request<IdentityView>('GET', identityPath(request.address));
    throw new TesseraError('conflict', `Identity conflict: address ${request.address} is already provisioned.`);
  } catch (error) {
    if (!(error instanceof BrokerRequestError && error.code === 'not_found')) throw error;
  }

  const signer = await keyStore.createSigningKey({
    label: `tessera-${request.role ?? 'agent'}-${request.address}-${randomBytes(3).toString('hex')}`,
    tags: { 'tessera:address': request.address },
  });
  const publicKey = base64url.encode(signer.publicKey);
  await admin.request<IdentityView>('POST', '/v1/admin/identities', {
    address: request.address,
    public_key: publicKey,
    key_uri: signer.uri,
    attributes: request.attributes,
    role: request.role ?? 'agent',
  });
  const ticket = await issueTicket(admin, request.address, request.ticketTtlSeconds);
  return { ...ticket, key_uri: signer.uri, public_key: publicKey };
}

export function issueTicket(admin: BrokerClient, address: string, ttlSeconds?: number): Promise<TicketResponse> {
  return admin.request<TicketResponse>('POST', `${identityPath(address)}/tickets`, ttlSeconds === undefined ? {} : { ttl_seconds: ttlSeconds });
}

/**
 * Rotates an identity's primary key: a new key is generated in the key store that holds the current
 * one (the private key never leaves it) and registered as the identity's key; the identity id stays,
 * and the old key is accepted for `graceSeconds` more (default 600). The node switches to the
 * returned key_uri (TESSERA_KEY, or `tessera enroll`'s remembered key) within the grace.
 */
export async function rotateIdentityKey(
  admin: BrokerClient,
  keyStores: { get(kind: KeyStoreKind): Promise<KeyStore> },
  address: string,
  graceSeconds?: number,
): Promise<RotateIdentityKeyResponse> {
  const current = await admin.request<IdentityView>('GET', identityPath(address));
  if (current.status === 'revoked') throw new TesseraError('identity_revoked', `Identity ${address} is revoked; its key cannot be rotated.`);
  const keyStore = await keyStores.get(keyStoreKindOf(current.key_uri));
  const signer = await keyStore.createSigningKey({
    label: `tessera-${current.role}-${address}-${randomBytes(3).toString('hex')}`,
    tags: { 'tessera:address': address },
  });
  return admin.request<RotateIdentityKeyResponse>('POST', `${identityPath(address)}/keys`, {
    public_key: base64url.encode(signer.publicKey),
    key_uri: signer.uri,
    ...(graceSeconds !== undefined && { grace_seconds: graceSeconds }),
  });
}
