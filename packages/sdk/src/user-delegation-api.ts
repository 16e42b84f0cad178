import type { BrokerClient } from './broker-client.js';
import type { UserDelegationRequest, UserDelegationView } from './wire/user-delegations.js';

/**
 * `POST /v1/delegations/user` (docs/PROTOCOL.md §13.3): the user's token and the caller's proof
 * become a delegation rooted at the user. The token travels once, in the body the proof covers.
 */
export function createUserDelegation(client: BrokerClient, request: UserDelegationRequest) {
  return client.request<UserDelegationView>('POST', '/v1/delegations/user', request);
}
