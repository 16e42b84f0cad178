import { type Kysely, type Migration, sql } from 'kysely';
import type { SqlDialect } from '../database.js';
import { createChangeTriggers } from './change-triggers.js';

/**
 * Key rotation (issue 13 §2). `identity_keys`: every key an identity has had, keyed by its RFC 7638
 * thumbprint (the `kid` of its proofs); the identity id stays the thumbprint of the first one. A
 * superseded key has `not_after` (the end of its grace period) and, once the broker has audited it,
 * `retired_at`. `broker_keys`: superseded authority and wrapping keys, so that JWKS can publish the
 * old authority key during the overlap. Both tables feed the change feed (0006): a key change on one
 * broker reaches every replica. Frozen code: imports nothing live.
 */
export function keyRotation(dialect: SqlDialect): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('identity_keys')
        .addColumn('key_id', 'text', (c) => c.primaryKey())
        .addColumn('identity_id', 'text', (c) => c.notNull().references('identities.id'))
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('key_uri', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('not_after', 'bigint')
        .addColumn('retired_at', 'bigint')
        .execute();
      await db.schema.createIndex('identity_keys_identity').on('identity_keys').column('identity_id').execute();
      // Every identity so far has exactly its first key, whose thumbprint is its id.
      await sql`INSERT INTO identity_keys (key_id, identity_id, public_key, key_uri, created_at)
        SELECT id, id, public_key, key_uri, created_at FROM identities`.execute(db);

      await db.schema
        .createTable('broker_keys')
        .addColumn('uri', 'text', (c) => c.primaryKey())
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('kid', 'text')
        .addColumn('public_key', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('not_after', 'bigint', (c) => c.notNull())
        .addColumn('retired_at', 'bigint')
        .execute();

      // identity_keys changes are changes of their identity; broker_keys ones are keyed by purpose.
      const watched = [
        { table: 'identity_keys', kind: 'identity', key: 'identity_id' },
        { table: 'broker_keys', kind: 'broker_key', key: 'purpose' },
      ] as const;
      for (const table of watched) await createChangeTriggers(db, dialect, table);
    },
  };
}
