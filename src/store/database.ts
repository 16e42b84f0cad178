import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, type SqliteDatabase as SqliteConnection } from 'kysely';
import pg from 'pg';
import { TesseraError } from '../errors.js';
import { migrateToLatest } from './migrations/index.js';
import type { Database } from './schema.js';

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
export async function openStore(url: string, options: { create?: boolean } = {}): Promise<Store> {
  const store = url.startsWith('postgres://') || url.startsWith('postgresql://') ? openPostgres(url) : openSqlite(url, options.create ?? true);
  await migrateToLatest(store.db as Kysely<unknown>, store.dialect);
  return store;
}

function openSqlite(url: string, create: boolean): Store {
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
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
  sqliteConnections.set(db, database);
  const reader = new Kysely<Database>({ dialect: new SqliteDialect({ database: async () => withStatementCache(openReader(path)) }) });
  return {
    db,
    reader,
    dialect: 'sqlite',
    close: async () => {
      await reader.destroy();
      await db.destroy();
    },
  };
}

const sqliteConnections = new WeakMap<Kysely<Database>, SqliteDatabase.Database>();

/**
 * The better-sqlite3 connection behind a Kysely that openStore() opened on SQLite (undefined on
 * PostgreSQL and for transactions), for bulk reads that would spend most of their time in the query
 * builder (the audit export). Such reads must finish synchronously: kysely shares the connection.
 */
export function sqliteConnection(db: Kysely<Database>): SqliteDatabase.Database | undefined {
  return sqliteConnections.get(db);
}

/** Opened on first use, after the writer has created and migrated the file. */
function openReader(path: string): SqliteDatabase.Database {
  const reader = new SqliteDatabase(path, { readonly: true, fileMustExist: true });
  reader.pragma('busy_timeout = 5000');
  return reader;
}

const STATEMENT_CACHE_LIMIT = 500;

/**
 * Kysely prepares every query anew; on the proof and lease hot paths re-preparing the same few
 * statements costs more than running them. A statement still being iterated (a streamed read) is
 * busy, so a second user of the same SQL gets a fresh one.
 */
function withStatementCache(database: SqliteDatabase.Database): SqliteConnection {
  const cache = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => database.close(),
    prepare(sql: string) {
      const cached = cache.get(sql);
      if (cached && !cached.busy) return cached;
      const statement = database.prepare(sql);
      if (!cached && cache.size < STATEMENT_CACHE_LIMIT) cache.set(sql, statement);
      return statement;
    },
  };
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
