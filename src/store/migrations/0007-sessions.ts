import { type Kysely, type Migration, sql } from 'kysely';
import type { SqlDialect } from '../database.js';

/**
 * Session keys (src/sessions/): one row per session certificate an identity registered, kept after
 * expiry so that `tessera audit verify` can check the proofs signed by the session key. Rows are
 * watched by the change feed (kind `session`, as 0006 does for identities), so ending a session on
 * one broker drops it from every replica's cache. Frozen code: imports nothing live.
 */
export function sessions(dialect: SqlDialect): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('sessions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('identity_id', 'text', (c) => c.notNull().references('identities.id'))
        // the primary key that certified it: its sessions end with that key's grace after a rotation
        .addColumn('key_id', 'text', (c) => c.notNull())
        .addColumn('generation', 'bigint', (c) => c.notNull())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('certificate', 'text', (c) => c.notNull())
        .addColumn('issued_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema.createIndex('sessions_identity_generation').on('sessions').columns(['identity_id', 'generation']).execute();
      if (dialect === 'postgres') {
        // tessera_record_change() is 0006's trigger function: it records (kind, key) from its arguments.
        await sql`CREATE TRIGGER sessions_changes AFTER INSERT OR UPDATE OR DELETE ON sessions
          FOR EACH ROW EXECUTE FUNCTION tessera_record_change('session', 'id')`.execute(db);
      } else {
        for (const [operation, row] of [['INSERT', 'NEW'], ['UPDATE', 'NEW'], ['DELETE', 'OLD']] as const) {
          await sql`CREATE TRIGGER ${sql.id(`sessions_changes_${operation.toLowerCase()}`)} AFTER ${sql.raw(operation)} ON sessions
            BEGIN INSERT INTO changes (kind, key) VALUES ('session', ${sql.raw(`${row}.id`)}); END`.execute(db);
        }
      }
    },
  };
}
