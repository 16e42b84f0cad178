import { type Kysely, type Migration, sql } from 'kysely';
import type { SqlDialect } from '../database.js';

/** The tables 0006 watched whose rows no replica caches: they are read from the database on every use. */
const UNCACHED = [
  { table: 'leases', kind: 'lease' },
  { table: 'grants', kind: 'grant' },
] as const;

/**
 * The change feed records only what replicas cache (identities, backends). Every lease issue
 * wrote two change rows and woke every replica with a NOTIFY to read them, for no reader.
 * Frozen code: imports nothing live.
 */
export function changeKinds(dialect: SqlDialect): Migration {
  return {
    async up(db: Kysely<unknown>) {
      for (const { table, kind } of UNCACHED) {
        if (dialect === 'postgres') {
          await sql`DROP TRIGGER IF EXISTS ${sql.id(`${table}_changes`)} ON ${sql.table(table)}`.execute(db);
        } else {
          for (const operation of ['insert', 'update', 'delete']) await sql`DROP TRIGGER IF EXISTS ${sql.id(`${table}_changes_${operation}`)}`.execute(db);
        }
        await sql`DELETE FROM changes WHERE kind = ${sql.lit(kind)}`.execute(db);
      }
    },
  };
}
