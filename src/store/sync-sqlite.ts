import type SqliteDatabase from 'better-sqlite3';
import type { Kysely, SqliteDatabase as SqliteConnection } from 'kysely';
import type { Database } from './schema.js';

const STATEMENT_CACHE_LIMIT = 500;

/**
 * A better-sqlite3 connection as kysely's SqliteDialect uses it, plus synchronous statement runs
 * for hot paths, where kysely's promise chain per query would cost more than the query.
 *
 * Kysely prepares every query anew; re-preparing the same few hot statements costs more than
 * running them, so statements are cached by SQL text. A statement still being iterated (a streamed
 * read) is busy, so a second user of the same SQL gets a fresh one.
 */
export class SyncSqlite implements SqliteConnection {
  readonly #cache = new Map<string, SqliteDatabase.Statement>();

  constructor(readonly database: SqliteDatabase.Database) {}

  prepare(sql: string): SqliteDatabase.Statement {
    const cached = this.#cache.get(sql);
    if (cached && !cached.busy) return cached;
    const statement = this.database.prepare(sql);
    if (!cached && this.#cache.size < STATEMENT_CACHE_LIMIT) this.#cache.set(sql, statement);
    return statement;
  }

  close(): void {
    this.database.close();
  }

  all<R>(sql: string, parameters: readonly unknown[]): R[] {
    return this.prepare(sql).all(parameters) as R[];
  }

  run(sql: string, parameters: readonly unknown[]): void {
    this.prepare(sql).run(parameters);
  }

  /** `work` inside BEGIN IMMEDIATE ... COMMIT, rolled back if it throws; `work` must not yield. */
  transaction<T>(work: () => T): T {
    this.run('begin immediate', []);
    try {
      const result = work();
      this.run('commit', []);
      return result;
    } catch (error) {
      if (this.database.inTransaction) this.run('rollback', []);
      throw error;
    }
  }
}

const sqliteConnections = new WeakMap<Kysely<Database>, SyncSqlite>();

/** Makes `connection` the one sqliteIfIdle() finds behind `db` (database.ts, when it opens a store). */
export function registerSqlite(db: Kysely<Database>, connection: SyncSqlite): void {
  sqliteConnections.set(db, connection);
}

/**
 * The SQLite connection behind a Kysely that openStore() opened (undefined on PostgreSQL and for
 * transactions), to run statements synchronously outside kysely, if a statement run on it now
 * stands alone: Store.reader's read-only connection always; the writer's only while no transaction
 * is open on it, since a transaction kysely holds open across an await would take in whatever runs
 * meanwhile. Such work must finish synchronously: kysely shares the connection.
 */
export function sqliteIfIdle(db: Kysely<Database>): SyncSqlite | undefined {
  const connection = sqliteConnections.get(db);
  return connection && (connection.database.readonly || !connection.database.inTransaction) ? connection : undefined;
}

/**
 * The SQLite connection behind `db` whatever its state, for statements a caller runs inside a
 * transaction it holds open synchronously on it (SyncSqlite.transaction); undefined on PostgreSQL.
 */
export function sqliteOf(db: Kysely<Database>): SyncSqlite | undefined {
  return sqliteConnections.get(db);
}
