import { type Kysely, type Migration, sql } from 'kysely';
import type { SqlDialect } from '../database.js';

/**
 * Grants go back on the change feed (0011 took them off): every lease request read them from the
 * database, and they change only when an admin creates or revokes one. Brokers now cache them
 * (src/leases/grant-service.ts) and drop the cache on any grant change. Frozen code: imports nothing live.
 */
export function grantChanges(dialect: SqlDialect): Migration {
  return {
    async up(db: Kysely<unknown>) {
      if (dialect === 'postgres') {
        // tessera_record_change() is 0006's trigger function: it records (kind, key) from its arguments.
        await sql`CREATE TRIGGER grants_changes AFTER INSERT OR UPDATE OR DELETE ON grants
          FOR EACH ROW EXECUTE FUNCTION tessera_record_change('grant', 'id')`.execute(db);
      } else {
        for (const [operation, row] of [['INSERT', 'NEW'], ['UPDATE', 'NEW'], ['DELETE', 'OLD']] as const) {
          await sql`CREATE TRIGGER ${sql.id(`grants_changes_${operation.toLowerCase()}`)} AFTER ${sql.raw(operation)} ON grants
            BEGIN INSERT INTO changes (kind, key) VALUES ('grant', ${sql.raw(`${row}.id`)}); END`.execute(db);
        }
      }
    },
  };
}
