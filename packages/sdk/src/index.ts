/**
 * The Tessera SDK for agents (Node.js, ESM):
 *
 *   const tessera = await createClient({ broker: 'http://127.0.0.1:8700', key: 'pkcs11:token=tessera;object=...' });
 *   const lease = await tessera.lease<PostgresCredential>('orders-db', { role: 'readonly', ttl: '5m' });
 *   const renewer = tessera.autoRenew(lease, { onError: console.error });
 *   ...
 *   await renewer.stop();
 *   await tessera.revoke(lease.id);
 *   await tessera.close();
 *
 * Options left out come from the environment: TESSERA_URL, TESSERA_KEY, and for a PKCS#11 key
 * TESSERA_PKCS11_MODULE (default: SoftHSM2), TESSERA_PKCS11_PIN or TESSERA_PKCS11_PIN_FILE.
 * pkcs11js and @aws-sdk/client-kms are optional peer dependencies, loaded only for their key URIs.
 *
 * Broker errors are BrokerRequestError with the stable `code` and HTTP `status` of docs/PROTOCOL.md;
 * invalid arguments, missing settings and key store failures are TesseraError (same two fields).
 */
import { type ClientOptions, TesseraClient } from './client.js';

export { type AutoRenewEnd, type AutoRenewer, type AutoRenewOptions, type AutoRenewTimers, systemTimers } from './auto-renew.js';
export { BrokerClient, BrokerRequestError, type ConnectOptions, DEFAULT_SESSION_LIFETIME_SECONDS, fetchDiscovery } from './broker-client.js';
export { type ActForOptions, type ClientOptions, type DelegateOptions, type LeaseOptions, TesseraClient } from './client.js';
export { createDelegation, getDelegation, listDelegations, revokeDelegation } from './delegation-api.js';
export { parseDuration } from './duration.js';
export { ERROR_CODES, type ErrorCode, TesseraError } from './errors.js';
export { ed25519PublicJwk, keyThumbprint, signCompactJws } from './jws.js';
export { isPostgresCredential, type Lease, type Renewal } from './lease.js';
export { getLease, issueLease, renewLease, revokeLease } from './lease-api.js';
export { bodyHash, createProof, PROOF_MAX_SKEW_SECONDS, PROOF_SCHEME, PROOF_TYPE, type ProofClaims, type ProofTarget } from './proof.js';
export { createSessionCertificate, SESSION_CERTIFICATE_TYPE, SESSION_ID_PREFIX, type SessionCertificateClaims, sessionIdOf, type SessionTerms } from './sessions/certificate.js';
export { memorySessionSigner } from './sessions/memory-signer.js';
export { isThrottling, nextGeneration } from './sessions/session-keys.js';
export { type KeySettings, openSigner } from './signers/open-signer.js';
export type { Pkcs11Settings } from './signers/pkcs11-signer.js';
export type { OpenedSigner, Signer } from './signers/signer.js';
export { type Ttl, ttlSeconds } from './ttl.js';
export { createUserDelegation } from './user-delegation-api.js';
export type { Discovery } from './wire/discovery.js';
export type { DelegationDetail, DelegationView, RevokeDelegationResponse } from './wire/delegations.js';
export type { IdentityView } from './wire/identities.js';
export type { ActingFor, UserDelegationView } from './wire/user-delegations.js';
export type { ActClaim, ApiCredential, BulkRevokeResponse, LeaseCredential, LeaseRecord, LeaseResponse, LeaseState, PostgresCredential, RenewResponse, RevokeResponse } from './wire/leases.js';
export { LEASE_STATES } from './wire/leases.js';

/** Connects to the broker as the identity whose key is `key` (fetches the broker's discovery document). */
export function createClient(options: ClientOptions = {}): Promise<TesseraClient> {
  return TesseraClient.create(options);
}
