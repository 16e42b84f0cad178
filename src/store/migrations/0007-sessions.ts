import type { Kysely, Migration } from 'kysely';
import type { SqlDialect } from '../database.js';
import { createChangeTriggers } from './change-triggers.js';

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
      await createChangeTriggers(db, dialect, { table: 'sessions', kind: 'session', key: 'id' });
    },
  };
}
