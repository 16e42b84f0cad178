import type { ChangeFeed } from '../changes/change-feed.js';
import { FeedCache } from '../changes/feed-cache.js';
import type { Repositories } from '../store/repositories/index.js';
import type { Identity, IdentityKey } from './identity.js';

/** An identity and its keys by key id, as cached between requests. */
export interface KnownIdentity {
  readonly identity: Identity;
  readonly keys: ReadonlyMap<string, IdentityKey>;
}

/**
 * Identities and their keys between requests, dropped by the change feed when any broker changes
 * them (an identity_keys change is a change of its identity, migration 0008). One cache for the
 * authenticator and the delegation chain checks, so a delegated lease costs no identity query the
 * caller's own authentication did not already pay for. Readers inside a transaction that must see
 * its own state read through its repositories instead.
 */
export class IdentityCache {
  readonly #cache: FeedCache<KnownIdentity>;

  constructor(
    /** Store.repos: the lookups read through Store.reader, not queueing behind other requests' transactions. */
    private readonly repos: Pick<Repositories, 'identities' | 'identityKeys'>,
    feed: ChangeFeed,
  ) {
    this.#cache = new FeedCache(feed, 'identity');
  }

  get(identityId: string): Promise<KnownIdentity | undefined> {
    return this.#cache.get(identityId, async () => {
      const identity = await this.repos.identities.findById(identityId);
      if (!identity) return undefined;
      const keys = await this.repos.identityKeys.forIdentity(identityId);
      return { identity, keys: new Map(keys.map((key) => [key.keyId, key])) };
    });
  }

  /** The identities of `ids` that exist, by id (as IdentityRepository.findByIds). */
  async findByIds(ids: readonly string[]): Promise<Map<string, Identity>> {
    const known = await Promise.all([...new Set(ids)].map((id) => this.get(id)));
    return new Map(known.flatMap((entry) => (entry ? [[entry.identity.id, entry.identity] as const] : [])));
  }

  close(): void {
    this.#cache.close();
  }
}
