import type { Kysely, Migration } from 'kysely';

/** Credential backends (sealed root secrets), grants and leases. */
export function leases(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('backends')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('config', 'text', (c) => c.notNull())
        .addColumn('sealed_secret', 'text', (c) => c.notNull())
        .addColumn('wrapped_key', 'text', (c) => c.notNull())
        .addColumn('wrapping_key_uri', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('created_by', 'text')
        .execute();
      await db.schema
        .createTable('grants')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('backend', 'text', (c) => c.notNull().references('backends.name'))
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('max_ttl_ms', 'bigint', (c) => c.notNull())
        .addColumn('default_ttl_ms', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('created_by', 'text')
        .execute();
      await db.schema.createIndex('grants_backend_role').on('grants').columns(['backend', 'role']).execute();
      await db.schema
        .createTable('leases')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('identity_id', 'text', (c) => c.notNull().references('identities.id'))
        .addColumn('backend', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        // No foreign key: a lease outlives the grant it was issued under.
        .addColumn('grant_id', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('revocation', 'text', (c) => c.notNull())
        .addColumn('issued_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('max_expires_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .addColumn('revoked_by', 'text')
        .addColumn('revocation_reason', 'text')
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_attempt_at', 'bigint')
        .addColumn('last_error', 'text')
        .execute();
      // The reaper's two queries (due expiries, due retries) and the pending sweep at start.
      await db.schema.createIndex('leases_state_expires_at').on('leases').columns(['state', 'expires_at']).execute();
      await db.schema.createIndex('leases_state_next_attempt_at').on('leases').columns(['state', 'next_attempt_at']).execute();
      await db.schema.createIndex('leases_identity').on('leases').columns(['identity_id', 'state']).execute();
      await db.schema.createIndex('leases_backend').on('leases').columns(['backend', 'state']).execute();
    },
  };
}
