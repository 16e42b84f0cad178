import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { TesseraError } from '../errors.js';
import { migrateToLatest } from './migrations/index.js';
import { type Repositories, repositoriesOn } from './repositories/index.js';
import type { Database } from './schema.js';
import { registerSqlite, SyncSqlite } from './sync-sqlite.js';
import { WalCheckpointer } from './wal-checkpointer.js';

export { sqliteIfIdle, SyncSqlite } from './sync-sqlite.js';

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
  /** The repositories (src/store/repositories/): domain code's only way to the tables. */
  readonly repos: Repositories;
  /**
   * A unit of work: `work` gets repositories bound to one transaction, committed when it resolves
   * and rolled back when it throws, so multi-table writes (a row, its audit event, its change row)
   * land together or not at all.
   */
  transaction<T>(work: (repos: Repositories) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

type Connections = Omit<Store, 'repos' | 'transaction'>;

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
  const connections = url.startsWith('postgres://') || url.startsWith('postgresql://') ? openPostgres(url) : openSqlite(url, options);
  await migrateToLatest(connections.db as Kysely<unknown>, connections.dialect);
  const { db, reader } = connections;
  return {
    ...connections,
    repos: repositoriesOn(db, reader),
    transaction: (work) => db.transaction().execute((trx) => work(repositoriesOn(trx))),
  };
}

function openSqlite(url: string, { create = true, backgroundCheckpoints = false }: StoreOptions): Connections {
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
  registerSqlite(db, writer);
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
  registerSqlite(reader, connection);
  return reader;
}

function openPostgres(url: string): Connections {
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
