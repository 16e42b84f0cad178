import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.js';

export interface AddressedEvent {
  readonly actor_address: string | null;
  readonly identity_address: string | null;
}

/** Adds the addresses of each event's actor and subject: reviewers read addresses, not key thumbprints. */
export async function withAddresses<E extends { actor: string | null; identity_id: string | null }>(db: Kysely<Database>, events: readonly E[]): Promise<(E & AddressedEvent)[]> {
  const ids = [...new Set(events.flatMap((event) => [event.actor, event.identity_id]).filter((id): id is string => id !== null))];
  const rows = ids.length ? await db.selectFrom('identities').select(['id', 'address']).where('id', 'in', ids).execute() : [];
  const addressOf = new Map(rows.map((row) => [row.id, row.address]));
  const lookup = (id: string | null) => (id === null ? null : (addressOf.get(id) ?? null));
  return events.map((event) => ({ ...event, actor_address: lookup(event.actor), identity_address: lookup(event.identity_id) }));
}
