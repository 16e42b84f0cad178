import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, type SqliteDatabase as SqliteConnection } from 'kysely';
import pg from 'pg';
import { TesseraError } from '../errors.js';
import { migrateToLatest } from './migrations/index.js';
import type { Database } from './schema.js';
import { WalCheckpointer } from './wal-checkpointer.js';

export type SqlDialect = 'sqlite' | 'postgres';

export interface Store {
  readonly db: Kysely<Database>;
  /**
   * For per-request reads on hot paths (proof and lease-token lookups). On SQLite a second,
   * read-only connection: WAL lets it read committed state while the single writer connection is
   * inside a transaction, instead of queueing behind it. On PostgreSQL the same pool as `db`.
   */
  readonly reader: Kysely<Database>;
  readonly dialect: SqlDialect;
  close(): Promise<void>;
}

const INT8_OID = 20;

/**
 * Opens (and migrates) the broker's database. `url` is `sqlite:<path>` for the embedded default or
 * `postgres://...` for deployments that scale out.
 */
export interface StoreOptions {
  /** Create the SQLite file if missing (default true). */
  readonly create?: boolean;
  /** SQLite: checkpoint the WAL from a background thread (a long-running broker; see WalCheckpointer). */
  readonly backgroundCheckpoints?: boolean;
}

export async function openStore(url: string, options: StoreOptions = {}): Promise<Store> {
  const store = url.startsWith('postgres://') || url.startsWith('postgresql://') ? openPostgres(url) : openSqlite(url, options);
  await migrateToLatest(store.db as Kysely<unknown>, store.dialect);
  return store;
}

function openSqlite(url: string, { create = true, backgroundCheckpoints = false }: StoreOptions): Store {
  if (!url.startsWith('sqlite:')) {
    throw new TesseraError('config_invalid', 'TESSERA_DATABASE_URL must start with sqlite: or postgres://');
  }
  const path = url.slice('sqlite:'.length);
  const exists = path === ':memory:' || existsSync(path);
  if (!exists && !create) throw new TesseraError('config_invalid', `No database at ${path}: run "tessera init" first.`);
  if (!exists) mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const database = new SqliteDatabase(path);
  // SQLite gives its WAL and shared-memory files the database file's mode.
  if (!exists) chmodSync(path, 0o600);
  // WAL keeps readers off the writer's back; NORMAL sync is durable across process crashes.
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = NORMAL');
  database.pragma('busy_timeout = 5000');
  database.pragma('foreign_keys = ON');
  const writer = new SyncSqlite(database);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: writer }) });
  sqliteConnections.set(db, writer);
  const reader = path === ':memory:' ? db : openReader(path);
  const checkpointer = backgroundCheckpoints && reader !== db ? new WalCheckpointer(database, path) : undefined;
  return {
    db,
    reader,
    dialect: 'sqlite',
    close: async () => {
      await checkpointer?.close();
      if (reader !== db) await reader.destroy();
      await db.destroy();
    },
  };
}

/** The writer has created the file and switched it to WAL; later schema changes SQLite notices itself. */
function openReader(path: string): Kysely<Database> {
  const database = new SqliteDatabase(path, { readonly: true, fileMustExist: true });
  database.pragma('busy_timeout = 5000');
  const connection = new SyncSqlite(database);
  const reader = new Kysely<Database>({ dialect: new SqliteDialect({ database: connection }) });
  sqliteConnections.set(reader, connection);
  return reader;
}

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

function openPostgres(url: string): Store {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    // Times are epoch ms in bigint columns; they fit a JS number exactly.
    types: { getTypeParser: (oid: number, format?: any) => (oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format)) },
  });
  // An idle connection the server drops (restart, failover, pg_terminate_backend) errors outside
  // any query; pg discards it and the next query connects afresh. Unhandled, it would end the process.
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { db, reader: db, dialect: 'postgres', close: () => db.destroy() };
}
