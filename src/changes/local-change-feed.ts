import { type Kysely, sql } from 'kysely';
import { sqliteIfIdle } from '../store/database.js';
import { precompiled } from '../store/precompiled.js';
import type { ChangeKind, Database } from '../store/schema.js';
import { type FeedStatus, SubscribedFeed } from './change-feed.js';

const changesAfter = precompiled<{ id: number; kind: ChangeKind; key: string }>(
  (db, after: number) => db.selectFrom('changes').select(['id', 'kind', 'key']).where('id', '>', after).orderBy('id'),
  [0],
);
const lastChange = precompiled<{ id: number | null }>((db) => db.selectFrom('changes').select(sql<number | null>`max(id)`.as('id')), []);

/**
 * The feed on an embedded (SQLite) store, which one broker process uses alone: every write is this
 * process's, serialised by SQLite, so ids ascend in commit order and the feed is read
 * synchronously (one indexed statement on the read connection) whenever a cache is about to be
 * used. Nothing is ever stale; there is nothing to wait for.
 */
export class LocalChangeFeed extends SubscribedFeed {
  #cursor = 0;

  private constructor(private readonly reader: Kysely<Database>) {
    super();
  }

  /** `reader`: Store.reader, which sees committed rows only (the writer's own connection in-memory). */
  static async open(reader: Kysely<Database>): Promise<LocalChangeFeed> {
    const feed = new LocalChangeFeed(reader);
    feed.#cursor = (await lastChange(reader, [])).rows[0]?.id ?? 0;
    return feed;
  }

  sync(): boolean {
    // An in-memory store reads through the writer, which would also see a transaction still open.
    const sqlite = sqliteIfIdle(this.reader);
    if (!sqlite) return false;
    for (const change of sqlite.all<{ id: number; kind: ChangeKind; key: string }>(changesAfter.sql(this.reader), [this.#cursor])) {
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
