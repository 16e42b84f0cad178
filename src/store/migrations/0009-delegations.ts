import type { Kysely, Migration } from 'kysely';

/**
 * Delegations (src/delegations/): an agent (or, for helper userauth's user delegations, a user)
 * hands part of its authority to another identity; a delegation may itself be delegated further
 * (parent_id). Leases record the delegation they were issued under and the chain in RFC 8693
 * `act` form. Like leases, delegations are read from the database on every use, so no replica
 * caches them and the change feed does not record them. Frozen code: imports nothing live.
 */
export function delegations(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('delegations')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('parent_id', 'text', (c) => c.references('delegations.id'))
        .addColumn('root_kind', 'text', (c) => c.notNull())
        // null when the delegator is a user (delegator_user then holds {iss, sub, claims})
        .addColumn('delegator_identity_id', 'text', (c) => c.references('identities.id'))
        .addColumn('delegator_user', 'text')
        .addColumn('delegatee_identity_id', 'text', (c) => c.notNull().references('identities.id'))
        .addColumn('backend', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('constraints', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('depth', 'integer', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .addColumn('revoked_by', 'text')
        .addColumn('revoked_reason', 'text')
        // JSON: the delegator's signed request (proof JWS and exact body), checked offline by `audit verify`
        .addColumn('evidence', 'text', (c) => c.notNull())
        .execute();
      // A lease request looks up the caller's active delegations; a cascade walks children.
      await db.schema.createIndex('delegations_delegatee').on('delegations').columns(['delegatee_identity_id', 'status']).execute();
      await db.schema.createIndex('delegations_delegator').on('delegations').columns(['delegator_identity_id', 'status']).execute();
      await db.schema.createIndex('delegations_parent').on('delegations').column('parent_id').execute();

      await db.schema.alterTable('leases').addColumn('delegation_id', 'text').execute();
      // JSON {sub, act: {...}}: the chain the lease acts under, copied so the proxy needs no join.
      await db.schema.alterTable('leases').addColumn('act', 'text').execute();
      await db.schema.createIndex('leases_delegation').on('leases').columns(['delegation_id', 'state']).execute();
    },
  };
}
