import type { Kysely, Migration } from 'kysely';

/** Proxied leases (credential proxy): the lease token's hash, and scope constraints on grants and leases. */
export function proxyLeases(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      // SQLite adds one column per ALTER TABLE.
      await db.schema.alterTable('grants').addColumn('constraints', 'text', (c) => c.notNull().defaultTo('{}')).execute();
      await db.schema.alterTable('leases').addColumn('constraints', 'text', (c) => c.notNull().defaultTo('{}')).execute();
      await db.schema.alterTable('leases').addColumn('token_hash', 'text').execute();
      // The proxy's per-request lookup. NULLs (non-proxied leases) are distinct in both dialects.
      await db.schema.createIndex('leases_token_hash').unique().on('leases').column('token_hash').execute();
    },
  };
}
