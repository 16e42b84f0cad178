import type { Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../database.js';
import { createChangeTriggers } from './change-triggers.js';

/**
 * Grants go back on the change feed (0011 took them off): every lease request read them from the
 * database, and they change only when an admin creates or revokes one. Brokers now cache them
 * (src/leases/grant-service.ts) and drop the cache on any grant change. Frozen code: imports nothing live.
 */
export function grantChanges(dialect: SqlDialect): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await createChangeTriggers(db, dialect, { table: 'grants', kind: 'grant', key: 'id' });
    },
  };
}
