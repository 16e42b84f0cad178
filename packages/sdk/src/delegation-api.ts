import type { BrokerClient } from './broker-client.js';
import type { DelegationDetail, DelegationList, DelegationRequest, DelegationView, RevokeDelegationResponse } from './wire/delegations.js';

/** The delegation routes (docs/PROTOCOL.md §12), signed as the caller's identity. */

const delegationPath = (id: string) => `/v1/delegations/${encodeURIComponent(id)}`;

export function createDelegation(client: BrokerClient, request: DelegationRequest) {
  return client.request<DelegationView>('POST', '/v1/delegations', request);
}

/** The delegations the caller gave and received. */
export function listDelegations(client: BrokerClient) {
  return client.request<DelegationList>('GET', '/v1/delegations');
}

export function getDelegation(client: BrokerClient, id: string) {
  return client.request<DelegationDetail>('GET', delegationPath(id));
}

export function revokeDelegation(client: BrokerClient, id: string, reason: string) {
  return client.request<RevokeDelegationResponse>('POST', `${delegationPath(id)}/revoke`, { reason });
}
