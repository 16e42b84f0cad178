import type { ChangeFeed, ChangeKind } from './change-feed.js';

export interface FeedCacheOptions {
  /** Entries kept at most; past it the oldest go. Default 10,000. */
  readonly maxEntries?: number;
  /** The entries are keyed by something other than the row (e.g. a query): any change of the kind drops them all. */
  readonly dropAllOnChange?: boolean;
}

/**
 * A read-through cache of one kind of row, kept correct by the change feed: a change on any
 * replica drops the row's entry here (or every entry). A value is only stored if no change was
 * delivered while it was being read (it may predate that change), and the cache is bypassed
 * whenever the feed cannot vouch for it (a stale replica; an in-memory SQLite store inside a transaction).
 */
export class FeedCache<V> {
  readonly #entries = new Map<string, V>();
  readonly #unsubscribe: () => void;
  readonly #maxEntries: number;

  constructor(
    private readonly feed: ChangeFeed,
    private readonly kind: ChangeKind,
    { maxEntries = 10_000, dropAllOnChange = false }: FeedCacheOptions = {},
  ) {
    this.#maxEntries = maxEntries;
    this.#unsubscribe = feed.subscribe(kind, (_kind, key) => this.invalidate(dropAllOnChange ? null : key));
  }

  /** The cached value of `key`, or `load()`'s (stored if the feed allows). `undefined` is not cached. */
  async get(key: string, load: () => Promise<V | undefined>): Promise<V | undefined> {
    if (!this.feed.sync()) return load();
    const cached = this.#entries.get(key);
    if (cached !== undefined) return cached;
    const version = this.feed.version(this.kind);
    const value = await load();
    if (value !== undefined && this.feed.sync() && this.feed.version(this.kind) === version) {
      if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
      this.#entries.set(key, value);
    }
    return value;
  }

  /** Drops `key`'s entry, or every entry for null. */
  invalidate(key: string | null): void {
    if (key === null) this.#entries.clear();
    else this.#entries.delete(key);
  }

  close(): void {
    this.#unsubscribe();
    this.#entries.clear();
  }
}
