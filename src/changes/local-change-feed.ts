import type { ChangeRepository } from '../store/repositories/changes.js';
import { type FeedStatus, SubscribedFeed } from './change-feed.js';

/**
 * The feed on an embedded (SQLite) store, which one broker process uses alone: every write is this
 * process's, serialised by SQLite, so ids ascend in commit order and the feed is read
 * synchronously (one indexed statement, on the idle writer) whenever a cache is about to be
 * used. Nothing is ever stale; there is nothing to wait for.
 */
export class LocalChangeFeed extends SubscribedFeed {
  #cursor = 0;

  private constructor(private readonly changes: ChangeRepository) {
    super();
  }

  /** `changes`: Store.repos.changes, which reads committed rows only. */
  static async open(changes: ChangeRepository): Promise<LocalChangeFeed> {
    const feed = new LocalChangeFeed(changes);
    feed.#cursor = await changes.lastId();
    return feed;
  }

  sync(): boolean {
    // Undefined while only a connection inside a transaction could read (it would see uncommitted rows).
    const changes = this.changes.afterSync(this.#cursor);
    if (!changes) return false;
    for (const change of changes) {
      this.#cursor = change.id;
      this.deliver(change.kind, change.key);
    }
    return true;
  }

  async ensureCurrent(): Promise<void> {}

  /** Nothing to wait for: a cache reads the feed synchronously (sync()) before every use. */
  async catchUp(): Promise<void> {}

  status(): FeedStatus {
    return { current: true, lagMs: 0 };
  }

  async close(): Promise<void> {}
}
