import { isDeepStrictEqual } from 'node:util';
import { type Compilable, CompiledQuery, type Kysely, type QueryResult } from 'kysely';
import { sqliteIfIdle } from './sync-sqlite.js';
import type { Database } from './schema.js';

/**
 * A query on a hot path, built and compiled by kysely once per dialect and then run with fresh
 * parameters: building and compiling the query costs more than running it (SQLite), and the SQL
 * text stays the same, so SQLite's statement cache (database.ts) finds it prepared.
 *
 * `build` makes the query from `sample` parameters; the first compile checks that the compiled
 * parameters are exactly `sample`, in that order (constants go in as literals), so a call's
 * parameters are known to land where the builder put them.
 */
export interface Precompiled<R> {
  (db: Kysely<Database>, parameters: unknown[]): Promise<QueryResult<R>>;
  /** The SQL text for `db`'s dialect, for running the query synchronously (database.ts SyncSqlite). */
  sql(db: Kysely<Database>): string;
}

export function precompiled<R>(build: (db: Kysely<Database>, ...parameters: any[]) => Compilable<R>, sample: readonly unknown[]): Precompiled<R> {
  // Keyed by the dialect adapter, which a Kysely instance shares with its transactions.
  const compiled = new WeakMap<object, string>();
  const sqlFor = (db: Kysely<Database>): string => {
    const adapter = db.getExecutor().adapter;
    let sql = compiled.get(adapter);
    if (sql === undefined) {
      const query = build(db, ...sample).compile();
      if (!isDeepStrictEqual(query.parameters, sample)) throw new Error(`precompiled query: parameters ${JSON.stringify(query.parameters)} are not the sample ${JSON.stringify(sample)}`);
      sql = query.sql;
      compiled.set(adapter, sql);
    }
    return sql;
  };
  const run = (db: Kysely<Database>, parameters: unknown[]): Promise<QueryResult<R>> => {
    const sql = sqlFor(db);
    // On an idle SQLite connection the statement runs at once: one cached statement, no promise
    // chain, and a write commits on its own without queueing on kysely's connection mutex.
    const statement = sqliteIfIdle(db)?.prepare(sql);
    if (statement?.reader) return Promise.resolve({ rows: statement.all(parameters) as R[] });
    if (statement) return Promise.resolve({ rows: [], numAffectedRows: BigInt(statement.run(parameters).changes) });
    return db.executeQuery<R>(CompiledQuery.raw(sql, parameters));
  };
  return Object.assign(run, { sql: sqlFor });
}
