import { CompiledQuery, type Kysely, sql } from 'kysely';
import { precompiled } from '../precompiled.js';
import type { ChangeKind, Database } from '../schema.js';
import { sqliteIfIdle } from '../sync-sqlite.js';

export interface Change {
  readonly id: number;
  readonly kind: ChangeKind;
  readonly key: string;
}

/** What a PostgreSQL feed read returns: the changes committed since the previous read, and this read's snapshot. */
export interface SnapshotRead {
  readonly snapshot: string;
  /** In id order. */
  readonly changes: readonly Omit<Change, 'id'>[];
}

/** A connection of the feed's own (its LISTEN connection, a pg.Client): reads run there, not on the pool. */
export interface FeedConnection {
  query(text: string, parameters: unknown[]): Promise<{ rows: any[] }>;
}

/**
 * The change feed's table (written by triggers, migrations 0006 and 0011). The PostgreSQL feed
 * (src/changes/postgres-change-feed.ts) reads it by committing transaction instead (the
 * *Snapshot methods: PostgreSQL only).
 */
export interface ChangeRepository {
  /** The highest change id, 0 when there is none. */
  lastId(): Promise<number>;
  /**
   * Changes with ids above `after`, in id order, read synchronously from the embedded (SQLite)
   * store's committed state (on the writer while no transaction is open on it, else the read
   * connection); undefined when that cannot be done now (PostgreSQL, or an in-memory store whose
   * only connection is inside a transaction).
   */
  afterSync(after: number): Change[] | undefined;
  /** Deletes changes written (by the database clock) before `before`. */
  pruneBefore(before: number): Promise<void>;
  /** PostgreSQL: the current snapshot, where a feed starts (on `connection` if given, else the pool). */
  currentSnapshot(connection?: FeedConnection): Promise<string>;
  /**
   * PostgreSQL: the rows whose transactions are visible now but were not in `snapshot`, with the
   * snapshot of now, in one statement: transactions that commit out of id order are neither
   * skipped nor read twice (a plain `id > cursor` would skip a row whose transaction committed
   * after a later id was read).
   */
  changesSinceSnapshot(snapshot: string, connection?: FeedConnection): Promise<SnapshotRead>;
}

const CURRENT_SNAPSHOT = 'SELECT pg_current_snapshot()::text AS snapshot';

/** pg_current_snapshot() is the statement's own; the LEFT JOIN returns it when nothing changed. */
const CHANGES_SINCE = `
  WITH now AS (SELECT pg_current_snapshot() AS snapshot)
  SELECT now.snapshot::text AS snapshot, changes.kind, changes.key
    FROM now LEFT JOIN changes
      ON changes.tx >= pg_snapshot_xmin($1::pg_snapshot)
     AND NOT pg_visible_in_snapshot(changes.tx, $1::pg_snapshot)
   ORDER BY changes.id`;

const changesAfter = precompiled<Change>((db, after: number) => db.selectFrom('changes').select(['id', 'kind', 'key']).where('id', '>', after).orderBy('id'), [0]);
const lastChange = precompiled<{ id: number | null }>((db) => db.selectFrom('changes').select(sql<number | null>`max(id)`.as('id')), []);

export class SqlChangeRepository implements ChangeRepository {
  constructor(
    private readonly db: Kysely<Database>,
    /** Store.reader, which sees committed rows only (the writer's own connection in-memory). */
    private readonly reader: Kysely<Database>,
  ) {}

  async lastId(): Promise<number> {
    return (await lastChange(this.reader, [])).rows[0]?.id ?? 0;
  }

  afterSync(after: number): Change[] | undefined {
    // The idle writer sees exactly the committed rows too, and its page cache survives its own
    // commits; the reader's is dropped at every commit, so each read there re-reads its pages.
    const db = sqliteIfIdle(this.db) ? this.db : this.reader;
    return sqliteIfIdle(db)?.all<Change>(changesAfter.sql(db), [after]);
  }

  async pruneBefore(before: number): Promise<void> {
    await this.db.deleteFrom('changes').where('at', '<', before).execute();
  }

  async currentSnapshot(connection?: FeedConnection): Promise<string> {
    return (await this.#query<{ snapshot: string }>(CURRENT_SNAPSHOT, [], connection))[0]!.snapshot;
  }

  async changesSinceSnapshot(snapshot: string, connection?: FeedConnection): Promise<SnapshotRead> {
    const rows = await this.#query<{ snapshot: string; kind: ChangeKind | null; key: string | null }>(CHANGES_SINCE, [snapshot], connection);
    return { snapshot: rows[0]!.snapshot, changes: rows.flatMap((row) => (row.kind === null ? [] : [{ kind: row.kind, key: row.key! }])) };
  }

  async #query<R>(text: string, parameters: unknown[], connection: FeedConnection | undefined): Promise<R[]> {
    if (connection) return (await connection.query(text, parameters)).rows as R[];
    return (await this.db.executeQuery<R>(CompiledQuery.raw(text, parameters))).rows;
  }
}
