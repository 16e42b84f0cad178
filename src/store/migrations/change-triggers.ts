import { type Kysely, sql } from 'kysely';
import type { SqlDialect } from '../database.js';

/** A table whose row changes the change feed records: the change kind, and the column that keys it. */
export interface WatchedTable {
  readonly table: string;
  readonly kind: string;
  readonly key: string;
}

/**
 * The triggers that record each changed row of the table in `changes` (0006's design): on
 * PostgreSQL one row trigger calling 0006's tessera_record_change(kind, key column), on SQLite one
 * trigger per operation. Migrations 0006, 0007, 0008 and 0013 create theirs with it, so what it
 * sends must never change. Frozen code: imports nothing live.
 */
export async function createChangeTriggers(db: Kysely<unknown>, dialect: SqlDialect, { table, kind, key }: WatchedTable): Promise<void> {
  if (dialect === 'postgres') {
    await sql`CREATE TRIGGER ${sql.id(`${table}_changes`)} AFTER INSERT OR UPDATE OR DELETE ON ${sql.table(table)}
      FOR EACH ROW EXECUTE FUNCTION tessera_record_change(${sql.lit(kind)}, ${sql.lit(key)})`.execute(db);
    return;
  }
  for (const [operation, row] of [['INSERT', 'NEW'], ['UPDATE', 'NEW'], ['DELETE', 'OLD']] as const) {
    await sql`CREATE TRIGGER ${sql.id(`${table}_changes_${operation.toLowerCase()}`)} AFTER ${sql.raw(operation)} ON ${sql.table(table)}
      BEGIN INSERT INTO changes (kind, key) VALUES (${sql.lit(kind)}, ${sql.raw(`${row}.${key}`)}); END`.execute(db);
  }
}
