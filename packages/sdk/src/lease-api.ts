import type { BrokerClient } from './broker-client.js';
import type { LeaseCredential, LeaseRecord, LeaseResponse, RenewResponse, RevokeResponse } from './wire/leases.js';

/** The node-side lease routes, signed as the caller's identity. */

const leasePath = (leaseId: string) => `/v1/leases/${encodeURIComponent(leaseId)}`;
const ttlBody = (ttlSeconds: number | undefined) => (ttlSeconds === undefined ? {} : { ttl_seconds: ttlSeconds });

/** `delegation`: lease under that delegation (docs/PROTOCOL.md §12.3). */
export function issueLease<C extends LeaseCredential>(client: BrokerClient, backend: string, role: string, ttlSeconds?: number, delegation?: string) {
  return client.request<LeaseResponse<C>>('POST', '/v1/leases', { backend, role, ...ttlBody(ttlSeconds), ...(delegation !== undefined && { delegation }) });
}

export function renewLease(client: BrokerClient, leaseId: string, ttlSeconds?: number) {
  return client.request<RenewResponse>('POST', `${leasePath(leaseId)}/renew`, ttlBody(ttlSeconds));
}

export function revokeLease(client: BrokerClient, leaseId: string) {
  return client.request<RevokeResponse>('DELETE', leasePath(leaseId));
}

export function getLease(client: BrokerClient, leaseId: string) {
  return client.request<LeaseRecord>('GET', leasePath(leaseId));
}
