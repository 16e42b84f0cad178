import { type Kysely, sql } from 'kysely';
import { precompiled } from '../precompiled.js';
import type { ChangeKind, Database } from '../schema.js';
import { sqliteIfIdle } from '../sync-sqlite.js';

export interface Change {
  readonly id: number;
  readonly kind: ChangeKind;
  readonly key: string;
}

/**
 * The change feed's table (written by triggers, migrations 0006 and 0011). The PostgreSQL feed
 * (src/changes/postgres-change-feed.ts) reads it by committing transaction instead.
 */
export interface ChangeRepository {
  /** The highest change id, 0 when there is none. */
  lastId(): Promise<number>;
  /**
   * Changes with ids above `after`, in id order, read synchronously from the embedded (SQLite)
   * store's read connection; undefined when that cannot be done now (PostgreSQL, or an in-memory
   * store whose only connection is inside a transaction).
   */
  afterSync(after: number): Change[] | undefined;
  /** Deletes changes written (by the database clock) before `before`. */
  pruneBefore(before: number): Promise<void>;
}

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
    return sqliteIfIdle(this.reader)?.all<Change>(changesAfter.sql(this.reader), [after]);
  }

  async pruneBefore(before: number): Promise<void> {
    await this.db.deleteFrom('changes').where('at', '<', before).execute();
  }
}
