import type { IdentityRepository } from '../store/repositories/identities.js';

export interface AddressedEvent {
  readonly actor_address: string | null;
  readonly identity_address: string | null;
}

/** Adds the addresses of each event's actor and subject: reviewers read addresses, not key thumbprints. */
export async function withAddresses<E extends { actor: string | null; identity_id: string | null }>(identities: IdentityRepository, events: readonly E[]): Promise<(E & AddressedEvent)[]> {
  const ids = [...new Set(events.flatMap((event) => [event.actor, event.identity_id]).filter((id): id is string => id !== null))];
  const addressOf = await identities.addresses(ids);
  const lookup = (id: string | null) => (id === null ? null : (addressOf.get(id) ?? null));
  return events.map((event) => ({ ...event, actor_address: lookup(event.actor), identity_address: lookup(event.identity_id) }));
}
