/**
 * The Tessera SDK for TypeScript agents:
 *
 *   const tessera = await createClient({ broker: 'http://127.0.0.1:8700', key: 'pkcs11:token=tessera;object=...' });
 *   const lease = await tessera.lease<PostgresCredential>('orders-db', { role: 'readonly', ttl: '5m' });
 *   const renewer = tessera.autoRenew(lease, { onError: console.error });
 *   ...
 *   await renewer.stop();
 *   await tessera.revoke(lease.id);
 *   await tessera.close();
 *
 * Broker errors are BrokerRequestError with the stable `code` and HTTP `status` of docs/PROTOCOL.md;
 * invalid arguments and key store failures are TesseraError (same two fields).
 */
import { type ClientOptions, TesseraClient } from './client.js';

export { BrokerRequestError } from '../client/broker-client.js';
export { TesseraError } from '../errors.js';
export type { IdentityView } from '../identity/identity.js';
export type { Signer } from '../keys/key-store.js';
export { type AutoRenewEnd, type AutoRenewer, type AutoRenewOptions, type AutoRenewTimers, systemTimers } from './auto-renew.js';
export { type ClientOptions, type LeaseOptions, TesseraClient } from './client.js';
export { isPostgresCredential, type Lease, type Renewal } from './lease.js';
export type { Ttl } from './ttl.js';
export type { LeaseCredential, LeaseState, PostgresCredential } from './wire.js';

/** Connects to the broker as the identity whose key is `key` (fetches the broker's discovery document). */
export function createClient(options: ClientOptions): Promise<TesseraClient> {
  return TesseraClient.create(options);
}
