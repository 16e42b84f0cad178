import type { ChangeKind } from '../store/schema.js';

export type { ChangeKind };

/**
 * What replicas cache, and so what the feed records: identities and their keys (the
 * authenticator), sessions (the session registry, migration 0007), backends (their live instances,
 * built from the stored settings and root secret), superseded broker keys (the authority's
 * current key, migration 0008) and grants (read on every lease request, migration 0013). Leases are
 * read from the database on every use, so their changes need no feed (migration 0011).
 */
export const CHANGE_KINDS: readonly ChangeKind[] = ['identity', 'session', 'backend', 'broker_key', 'grant'];

/**
 * Called once per changed row with its kind and key (an identity or session id, a backend name); `key`
 * null means any row of `kind` may have changed (the feed had a gap), so
 * everything cached of that kind must go.
 */
export type ChangeListener = (kind: ChangeKind, key: string | null) => void;

export interface FeedStatus {
  /** the replica has confirmed within the staleness bound that it has seen every committed change */
  readonly current: boolean;
  /** how long ago, by the broker clock, the last confirmation started; null before the first one */
  readonly lagMs: number | null;
}

/**
 * The changes to identities and backends made by every broker on the database, in commit order,
 * each delivered once: what a replica needs to keep a cache of them correct. Written by triggers
 * in the changing transaction (migrations 0006-changes, 0011-change-kinds).
 */
export interface ChangeFeed {
  /** Calls `listener` for every change of `kinds` from now on; returns unsubscribe. */
  subscribe(kinds: ChangeKind | readonly ChangeKind[], listener: ChangeListener): () => void;
  /**
   * Counts deliveries of `kind`. A cache stores a value it has read only if its kind's version did
   * not move while it read (else the value may predate a change delivered meanwhile): see FeedCache.
   */
  version(kind: ChangeKind): number;
  /**
   * Delivers what can be delivered right now, synchronously; true if the caller may then trust a
   * cache: every change committed before this call has been delivered (SQLite), or the replica is
   * within its staleness bound (PostgreSQL).
   */
  sync(): boolean;
  /**
   * Resolves once the replica is within its staleness bound, reading the feed if it is not;
   * rejects with `replica_stale` if it cannot read it in time. Authenticated requests wait on it.
   */
  ensureCurrent(): Promise<void>;
  /**
   * Resolves after a read of the feed that started after this call (read-your-writes after a local
   * write), or once the staleness bound has passed without one; never rejects.
   */
  catchUp(): Promise<void>;
  status(): FeedStatus;
  close(): Promise<void>;
}

/** A feed's listeners and delivery count, shared by every feed implementation; each reads the changes its own way. */
export abstract class SubscribedFeed implements ChangeFeed {
  readonly #listeners = new Map<ChangeKind, Set<ChangeListener>>(CHANGE_KINDS.map((kind) => [kind, new Set()]));
  readonly #versions = new Map<ChangeKind, number>(CHANGE_KINDS.map((kind) => [kind, 0]));

  version(kind: ChangeKind): number {
    return this.#versions.get(kind)!;
  }

  subscribe(kinds: ChangeKind | readonly ChangeKind[], listener: ChangeListener): () => void {
    const sets = (typeof kinds === 'string' ? [kinds] : kinds).map((kind) => this.#listeners.get(kind)!);
    for (const set of sets) set.add(listener);
    return () => sets.forEach((set) => set.delete(listener));
  }

  protected deliver(kind: ChangeKind, key: string | null): void {
    this.#versions.set(kind, this.#versions.get(kind)! + 1);
    for (const listener of this.#listeners.get(kind)!) listener(kind, key);
  }

  /** After a gap in the feed: everything of every kind may have changed. */
  protected deliverGap(): void {
    for (const kind of CHANGE_KINDS) this.deliver(kind, null);
  }

  abstract sync(): boolean;
  abstract ensureCurrent(): Promise<void>;
  abstract catchUp(): Promise<void>;
  abstract status(): FeedStatus;
  abstract close(): Promise<void>;
}
